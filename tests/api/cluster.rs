//! Two brisk processes sharing a Redis of the test's own: writes through
//! one are seen through the other, and Redis going away costs no errors.

use crate::on_both;
use crate::support::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server on a free port, for this test only; killed on drop.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// `None` (with a notice) when redis-server is not installed and the
    /// services are not required.
    async fn start() -> Option<Redis> {
        let port = free_port();
        let mut redis = Redis { port, child: None };
        if let Err(error) = redis.spawn().await {
            assert!(
                !services_required(),
                "redis-server is required but cannot start: {error}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: Redis tests (redis-server cannot start: {error})"
            );
            return None;
        }
        Some(redis)
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(std::io::Error::other("redis-server did not listen"))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A brisk instance of the cluster under test: writes on, Redis shared.
async fn instance(db_url: &str, redis_url: &str, prefix: &str, name: &str) -> BriskProcess {
    BriskProcess::start(
        db_url,
        &[
            ("BRISK_REDIS_URL", redis_url),
            ("BRISK_REDIS_PREFIX", prefix),
            ("BRISK_WRITES", "true"),
            ("BRISK_CURSOR_SECRET", "shared by the cluster"),
            ("BRISK_DATABASE_POOL_SIZE", "4"),
        ],
        &format!("{prefix}-{name}"),
    )
    .await
}

async fn json(client: &reqwest::Client, url: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

async fn patch(client: &reqwest::Client, url: &str, body: &str, if_match: Option<&str>) -> u16 {
    let mut request = client
        .patch(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Waits until both instances have (re)joined Redis: a write through `a`
/// shows through `b`.
async fn until_linked(
    client: &reqwest::Client,
    a: &BriskProcess,
    b: &BriskProcess,
    marker: i64,
) -> Duration {
    let started = Instant::now();
    let path = "/v1/products/9?fields=stock";
    json(client, &format!("{}{path}", b.base)).await;
    loop {
        assert_eq!(
            patch(
                client,
                &format!("{}/v1/products/9", a.base),
                &format!("{{\"stock\":{marker}}}"),
                None
            )
            .await,
            200
        );
        let written = Instant::now();
        while written.elapsed() < Duration::from_millis(300) {
            let (_, body, _) = json(client, &format!("{}{path}", b.base)).await;
            if body["data"]["stock"] == marker {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the instances did not link through Redis"
        );
    }
}

on_both! {
    async fn a_write_through_one_instance_is_seen_through_the_other(backend: Backend) {
        let Some(redis) = Redis::start().await else { return };
        let db = writable_shop(backend, "cluster").await;
        if backend == Backend::Sqlite {
            // so that each instance tells the other's writes from other programs'
            install_triggers(&db, false);
        }
        let prefix = format!("brisk-test-{}-{backend:?}", std::process::id());
        let a = instance(&db, &redis.url(), &prefix, "a").await;
        let b = instance(&db, &redis.url(), &prefix, "b").await;
        let client = reqwest::Client::new();
        until_linked(&client, &a, &b, 1).await;
        let users = format!("{}/v1/users?limit=3", b.base);
        json(&client, &users).await;

        // the same answer has the same ETag on both
        let (_, _, on_a) = json(&client, &format!("{}/v1/products/6", a.base)).await;
        let (_, _, on_b) = json(&client, &format!("{}/v1/products/6", b.base)).await;
        assert_eq!(on_a["etag"], on_b["etag"]);

        let mut worst = Duration::ZERO;
        for round in 0..10 {
            let path = format!("{}/v1/products/5?fields=stock", b.base);
            json(&client, &path).await;
            let (_, _, headers) = json(&client, &path).await;
            assert!(headers["server-timing"].to_str().unwrap().contains("cache;desc=hit"), "cached on b");
            let stock = 1000 + round;
            assert_eq!(patch(&client, &format!("{}/v1/products/5", a.base), &format!("{{\"stock\":{stock}}}"), None).await, 200);
            let written = Instant::now();
            loop {
                let (_, body, _) = json(&client, &path).await;
                if body["data"]["stock"] == stock {
                    break;
                }
                assert!(written.elapsed() < Duration::from_millis(100), "round {round}: b still serves the old value after 100 ms");
            }
            worst = worst.max(written.elapsed());
            // and never the old value again
            for _ in 0..20 {
                let (_, body, _) = json(&client, &path).await;
                assert_eq!(body["data"]["stock"], stock, "round {round}: b went back to an old value");
            }
        }
        eprintln!("slowest propagation: {worst:?}");
        // writes to products left b's users answer alone
        let (_, _, headers) = json(&client, &users).await;
        assert!(headers["server-timing"].to_str().unwrap().contains("cache;desc=hit"), "users still cached on b");

        // If-Match holds across instances: a tag read on b wins once
        let (_, _, headers) = json(&client, &format!("{}/v1/products/7", b.base)).await;
        let tag = headers["etag"].to_str().unwrap().to_string();
        assert_eq!(patch(&client, &format!("{}/v1/products/7", a.base), r#"{"stock":1}"#, Some(&tag)).await, 200);
        assert_eq!(patch(&client, &format!("{}/v1/products/7", b.base), r#"{"stock":2}"#, Some(&tag)).await, 412);

        // the second-level cache: an answer made by a serves b
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = "/v1/orders?limit=30&include=user&sort=-total";
        json(&client, &format!("{}{path}", a.base)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let response = client.get(format!("{}{path}", b.base)).send().await.unwrap();
        let timing = response.headers()["server-timing"].to_str().unwrap().to_string();
        assert!(timing.contains("cache;desc=shared"), "{timing}");
        drop(redis);
    }

    async fn redis_going_away_costs_no_errors(backend: Backend) {
        let Some(mut redis) = Redis::start().await else { return };
        let db = writable_shop(backend, "outage").await;
        let prefix = format!("brisk-outage-{}-{backend:?}", std::process::id());
        let a = instance(&db, &redis.url(), &prefix, "a").await;
        let b = instance(&db, &redis.url(), &prefix, "b").await;
        let client = reqwest::Client::new();
        until_linked(&client, &a, &b, 1).await;

        let bases = [a.base.clone(), b.base.clone()];
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut load = Vec::new();
        for worker in 0..4 {
            let (client, bases) = (client.clone(), bases.clone());
            load.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let base = &bases[(worker + n) % 2];
                    let status = if worker == 0 {
                        patch(&client, &format!("{base}/v1/products/{}", 10 + n % 5), &format!("{{\"stock\":{n}}}"), None).await
                    } else {
                        client.get(format!("{base}/v1/products?limit=20&page={}", 1 + n % 3)).send().await.unwrap().status().as_u16()
                    };
                    statuses.push(status);
                }
                statuses
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.stop();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.spawn().await.unwrap();
        let mut statuses = Vec::new();
        for task in load {
            statuses.extend(task.await.unwrap());
        }
        assert!(statuses.len() > 100);
        let errors: Vec<&u16> = statuses.iter().filter(|s| **s >= 500).collect();
        assert!(errors.is_empty(), "{} server errors in {} requests", errors.len(), statuses.len());
        assert!(statuses.iter().all(|s| *s == 200), "all answered");
        // back without a restart
        let took = until_linked(&client, &a, &b, 77).await;
        eprintln!("relinked {took:?} after the load ended");
        for instance in [&a, &b] {
            let log = instance.log();
            assert!(log.contains("lost Redis"), "says so in its log: {log}");
            assert!(log.matches("connected to Redis").count() >= 2, "reconnected: {log}");
        }
    }
}
