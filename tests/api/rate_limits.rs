//! Rate limits over real HTTP: 429 with the IETF fields, hits spend the
//! limit as misses do (misses more, when configured), callers behind
//! trusted proxies are told apart, and with Redis every instance spends
//! from one limit, falling back to local limits when Redis goes away.

use crate::access::{access, bearer, key};
use crate::on_both;
use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The value of a structured-field parameter (`r` of `"anonymous";r=4;t=60`).
fn parameter(field: &str, name: &str) -> Option<u64> {
    field
        .split(';')
        .find_map(|p| p.trim().strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

on_both! {
    async fn a_spent_limit_is_429_with_the_fields(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            access(c, "[rate_limit]\nrequests = 5\nwindow_seconds = 3600\n");
        })
        .await;
        let mut remaining = Vec::new();
        for _ in 0..5 {
            // the same URL: from the second request on, cache hits spend too
            let response = fx.get("/v1/users/1").await;
            assert_eq!(response.status(), 200);
            assert_eq!(header(&response, "ratelimit-policy").as_deref(), Some("\"anonymous\";q=5;w=3600"));
            let field = header(&response, "ratelimit").unwrap();
            assert!(field.starts_with("\"anonymous\";"), "{field}");
            remaining.push(parameter(&field, "r").unwrap());
        }
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let refused = fx.get("/v1/users/1").await;
        assert_eq!(refused.status(), 429);
        let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
        assert!((700..=721).contains(&retry_after), "one request every 720 s: {retry_after}");
        let field = header(&refused, "ratelimit").unwrap();
        assert_eq!(parameter(&field, "r"), Some(0));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["type"], "https://iana.org/assignments/http-problem-types#quota-exceeded");
        assert_eq!(body["status"], 429);
        assert_eq!(body["violated-policies"], serde_json::json!(["anonymous"]));
        assert!(body["detail"].as_str().unwrap().contains("5 requests per 3600 s"), "{body}");
        // health and metrics are outside the limit
        assert_eq!(fx.get("/healthz").await.status(), 200);
        let metrics = fx.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("brisk_rate_limited_total 1"), "{metrics}");
    }

    async fn roles_have_their_own_limits_and_misses_cost_more(backend: Backend) {
        let partner = key("partner", "partner", "");
        let snippet = format!(
            "{}\n[rate_limit]\nrequests = 10\nwindow_seconds = 3600\nmiss_cost = 4\n[roles.partner]\nrate_limit = {{ requests = 1000, window_seconds = 3600 }}\n",
            partner.toml
        );
        let fx = Fixture::configured(backend, |c| access(c, &snippet)).await;
        // a miss spends 4, a hit 1: 10 = miss (4) + 6 hits
        let first = fx.get("/v1/products/7").await;
        assert_eq!(parameter(&header(&first, "ratelimit").unwrap(), "r"), Some(6));
        for left in (0..6).rev() {
            let hit = fx.get("/v1/products/7").await;
            assert_eq!(cache_status(&hit), "hit");
            assert_eq!(parameter(&header(&hit, "ratelimit").unwrap(), "r"), Some(left));
        }
        assert_eq!(fx.get("/v1/products/7").await.status(), 429);
        // the partner has its own, larger limit, counted by its key
        let auth = bearer(&partner.key);
        let response = fx.get_with("/v1/products/7", &[(auth.0, &auth.1)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy").as_deref(), Some("\"partner\";q=1000;w=3600"));
    }

    async fn trusted_proxies_forward_the_client(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            access(c, "[rate_limit]\nrequests = 2\nwindow_seconds = 3600\ntrusted_proxies = [\"127.0.0.1\"]\n");
        })
        .await;
        let from = |client: &'static str| {
            let fx = &fx;
            async move { fx.get_with("/v1/users/2", &[("x-forwarded-for", client)]).await.status().as_u16() }
        };
        // each forwarded client has its own two requests
        assert_eq!([from("203.0.113.1").await, from("203.0.113.1").await, from("203.0.113.1").await], [200, 200, 429]);
        assert_eq!([from("203.0.113.2").await, from("203.0.113.2").await], [200, 200]);
        // a spoofed hop in front of the real client does not help
        assert_eq!(from("198.51.100.9, 203.0.113.1").await, 429);
        let forwarded = fx.get_with("/v1/users/2", &[("forwarded", "for=203.0.113.3;proto=https")]).await;
        assert_eq!(forwarded.status(), 200);
    }

    async fn untrusted_peers_cannot_forward(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            access(c, "[rate_limit]\nrequests = 2\nwindow_seconds = 3600\ntrusted_proxies = [\"10.0.0.0/8\"]\n");
        })
        .await;
        let mut statuses = Vec::new();
        for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
            statuses.push(fx.get_with("/v1/users/2", &[("x-forwarded-for", client)]).await.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 429], "the peer (127.0.0.1) is the client");
    }
}

/// A Redis server of the test's own on a free port, so the test can stop
/// it; killed on drop.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(_) => {
                assert!(!services_required(), "redis-server is required");
                return None;
            }
        };
        let url = format!("redis://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(OwnRedis { child, url })
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests admitted by `fixtures`, round robin from several clients, for
/// `seconds`.
async fn hammer(fixtures: &[&Fixture], path: &str, seconds: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let urls: Vec<String> = fixtures.iter().map(|fx| fx.url(path)).collect();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut admitted, mut refused) = (0u64, 0u64);
            let mut n = worker;
            while Instant::now() < deadline {
                let response = client.get(&urls[n % urls.len()]).send().await.unwrap();
                match response.status().as_u16() {
                    200 => admitted += 1,
                    429 => refused += 1,
                    other => panic!("status {other}"),
                }
                n += 1;
            }
            (admitted, refused)
        }));
    }
    let mut totals = (0, 0);
    for task in tasks {
        let (a, r) = task.await.unwrap();
        totals.0 += a;
        totals.1 += r;
    }
    totals
}

on_both! {
    async fn instances_share_one_limit_through_redis(backend: Backend) {
        let Some(redis) = OwnRedis::start() else {
            skipped("rate limits shared through Redis");
            return;
        };
        let configure = |c: &mut brisk::config::Config| {
            c.redis.url = Some(redis.url.clone());
            access(c, "[rate_limit]\nrequests = 20\nwindow_seconds = 1\n");
        };
        let one = Fixture::configured(backend, configure).await;
        let two = Fixture::configured(backend, configure).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        one.get("/v1/users/3").await;
        two.get("/v1/users/3").await;
        // 20 per second with a burst of 20: over 10 s, 20 + 200 at most,
        // whichever instance the requests reach
        let (admitted, refused) = hammer(&[&one, &two], "/v1/users/3", 10).await;
        let expected = 220.0;
        assert!(refused > 0, "the limit was reached");
        assert!(
            (admitted as f64 - expected).abs() <= expected * 0.1,
            "admitted {admitted} in 10 s across two instances (expected about {expected})"
        );
        // a decision made alone during the load (a Redis call slower than
        // its 500 ms timeout on a busy machine) ends with the next shared one
        one.get("/v1/users/3").await;
        let metrics = one.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("brisk_rate_limit_local_fallback 0"), "{metrics}");
    }

    async fn limits_hold_locally_when_redis_dies(backend: Backend) {
        let Some(redis) = OwnRedis::start() else {
            skipped("rate limits when Redis dies");
            return;
        };
        let url = redis.url.clone();
        let fx = Fixture::configured(backend, |c| {
            c.redis.url = Some(url);
            access(c, "[rate_limit]\nrequests = 20\nwindow_seconds = 1\n");
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        fx.get("/v1/users/4").await;
        // Redis is killed 2 s into 6 s of load: every answer is still a
        // 200 or a 429 (hammer fails on anything else), and the limit
        // holds: 20 per second, plus one burst of 20 while shared and one
        // more once local
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(redis);
        });
        let (admitted, refused) = hammer(&[&fx], "/v1/users/4", 6).await;
        killer.await.unwrap();
        assert!(refused > 0, "limited throughout");
        let (least, most) = (0.9 * 20.0 * 6.0, 1.1 * (20.0 * 6.0 + 40.0));
        assert!(
            (least..=most).contains(&(admitted as f64)),
            "admitted {admitted} in 6 s with Redis killed after 2 s (expected {least}..{most})"
        );
        let metrics = fx.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("brisk_rate_limit_local_fallback 1"), "{metrics}");
        let fallbacks = metrics
            .lines()
            .find_map(|l| l.strip_prefix("brisk_rate_limit_local_fallbacks_total "))
            .unwrap();
        assert!(fallbacks.parse::<u64>().unwrap() > 0);
    }
}
