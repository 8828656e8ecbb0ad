//! Every limit over real HTTP, on both databases: the refusal names the
//! limit (a problem+json, never a 5xx but 503 with `Retry-After`), and a
//! request just under it still works.

use crate::on_both;
use crate::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A view that takes far longer than any test waits: on SQLite a recursive
/// count to two billion, on PostgreSQL a sleep.
fn slow_view(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE VIEW slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT count(*) AS n FROM c"
        }
        Backend::Postgres => "CREATE VIEW slow AS SELECT 1 AS n FROM pg_sleep(60)",
    }
}

/// A shop of the test's own with the slow view, served as `configure` says.
async fn with_slow_view(
    backend: Backend,
    tag: &str,
    configure: impl FnOnce(&mut brisk::config::Config),
) -> Fixture {
    let url = writable_shop(backend, tag).await;
    execute(backend, &url, slow_view(backend)).await;
    Fixture::serve(backend, &url, configure).await
}

/// Asserts a problem: status, media type, and a phrase in its detail.
async fn refused(fx: &Fixture, path: &str, status: u16, phrase: &str) -> Value {
    let response = fx.get(path).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    let problem = fx.json_of(response, status, path).await;
    let text = problem.to_string();
    assert!(text.contains(phrase), "{path}: no '{phrase}' in {text}");
    problem
}

/// Sends raw bytes on a new connection and returns what came back until
/// the server closed it (or `wait` passed).
fn raw_exchange(fx: &Fixture, bytes: &[u8], wait: Duration) -> String {
    let address = fx.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

on_both! {
    async fn include_depth(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        fx.data("/v1/orders?limit=2&include=user.orders.user").await;
        let problem = refused(fx, "/v1/orders?limit=2&include=user.orders.user.orders", 400, "limits.max_include_depth").await;
        assert_eq!(problem["type"], "https://brisk.dev/problems/limit-exceeded");
    }

    async fn the_bomb_is_refused_quickly(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let bomb = format!("/v1/orders?include={}", vec!["user.orders"; 40].join("."));
        let started = Instant::now();
        refused(fx, &bomb, 400, "limits.max_include_depth").await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    async fn rows_of_one_answer(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| {
            c.limits.max_limit = 20;
            c.limits.max_answer_rows = 40;
        })
        .await;
        // the orders with the most and the fewest items decide what fits
        let items_of = |ids: &str| format!("SELECT count(*) AS n FROM order_items WHERE order_id IN ({ids})");
        let few: i64 = fx.sql_column(&items_of("1, 2, 3")).await[0].as_i64().unwrap();
        assert!(3 + few <= 40);
        fx.data("/v1/orders?id[in]=1,2,3&include=order_items").await;
        let many: i64 = fx.sql_column(&items_of(&(1..=20).map(|i| i.to_string()).collect::<Vec<_>>().join(","))).await[0]
            .as_i64()
            .unwrap();
        assert!(20 + many > 40, "the test needs more than 40 rows: {many}");
        refused(fx, "/v1/orders?limit=20&include=order_items", 400, "limits.max_answer_rows").await;
    }

    async fn bytes_of_one_answer(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| c.limits.max_answer_bytes = 20_000).await;
        let fits = fx.get("/v1/products?limit=5").await;
        let size = fits.bytes().await.unwrap().len();
        assert!(size < 20_000, "{size}");
        refused(fx, "/v1/products?limit=200", 400, "limits.max_answer_bytes").await;
        // rendering stops at the budget even when embeds multiply one row
        refused(fx, "/v1/users?limit=50&include=orders.order_items", 400, "limits.max_answer_bytes").await;
    }

    async fn filters_lists_and_patterns(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let filters = |n: usize| {
            (0..n).map(|i| format!("name[ne]=x{i}")).collect::<Vec<_>>().join("&")
        };
        fx.data(&format!("/v1/users?limit=1&{}", filters(32))).await;
        refused(fx, &format!("/v1/users?limit=1&{}", filters(33)), 400, "limits.max_filters").await;
        let list = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        fx.data(&format!("/v1/users?limit=1&id[in]={}", list(1000))).await;
        refused(fx, &format!("/v1/users?limit=1&id[in]={}", list(1001)), 400, "limits.max_list_values").await;
        fx.data(&format!("/v1/users?limit=1&name[like]={}", "a".repeat(200))).await;
        refused(fx, &format!("/v1/users?limit=1&name[like]={}", "a".repeat(201)), 400, "limits.max_pattern_length").await;
        fx.data(&format!("/v1/users?limit=1&name[ilike]={}", "a*".repeat(10))).await;
        refused(fx, &format!("/v1/users?limit=1&name[ilike]={}", "a*".repeat(11)), 400, "limits.max_pattern_wildcards").await;
    }

    async fn deep_offsets_point_to_cursors(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        // (page - 1) * limit = 100,000: as deep as limits.max_offset allows
        fx.data("/v1/orders?limit=50&page=2001").await;
        let problem = refused(fx, "/v1/orders?limit=50&page=2002", 400, "limits.max_offset").await;
        assert!(problem["detail"].as_str().unwrap().contains("cursor"), "{problem}");
    }

    async fn long_errors_are_cut_short(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let sort = (0..1500).map(|i| format!("nope{i}")).collect::<Vec<_>>().join(",");
        let response = fx.get(&format!("/v1/users?sort={sort}")).await;
        assert_eq!(response.status(), 400);
        let body = response.bytes().await.unwrap();
        assert!(body.len() < 16 * 1024, "{} bytes", body.len());
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"].as_array().unwrap().len(), 20);
        assert!(problem["detail"].as_str().unwrap().contains("more problems"));
    }

    async fn request_line_and_headers(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let under = format!("/v1/users?limit=1&name={}", "x".repeat(15_000));
        assert_eq!(fx.get(&under).await.status(), 200);
        let over = format!("/v1/users?limit=1&name={}", "x".repeat(17_000));
        refused(fx, &over, 414, "limits.max_url_bytes").await;
        let header = |n: usize| "v".repeat(n);
        let fine = fx.get_with("/v1/users?limit=1", &[("x-note", &header(15_000))]).await;
        assert_eq!(fine.status(), 200);
        let big = fx.get_with("/v1/users?limit=1", &[("x-note", &header(17_000))]).await;
        assert_eq!(big.status(), 431);
        assert_eq!(big.headers()["content-type"], "application/problem+json");
        assert!(big.text().await.unwrap().contains("limits.max_header_bytes"));
    }

    async fn host_headers(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let wait = Duration::from_secs(5);
        let ok = raw_exchange(fx, b"GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n", wait);
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let none = raw_exchange(fx, b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n", wait);
        assert!(none.starts_with("HTTP/1.1 400"), "{none}");
        assert!(none.contains("application/problem+json") && none.contains("Host"), "{none}");
        let two = raw_exchange(fx, b"GET /healthz HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n", wait);
        assert!(two.starts_with("HTTP/1.1 400"), "{two}");
        let old = raw_exchange(fx, b"GET /healthz HTTP/1.0\r\n\r\n", wait);
        assert!(old.starts_with("HTTP/1.0 200"), "HTTP/1.0 needs no Host: {old}");
    }

    async fn request_ids_and_nosniff(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let kept = fx.get_with("/v1/users/1", &[("x-request-id", "trace-42.a:b")]).await;
        assert_eq!(kept.headers()["x-request-id"], "trace-42.a:b");
        assert_eq!(kept.headers()["x-content-type-options"], "nosniff");
        let long = "a".repeat(8000);
        let replaced = fx.get_with("/v1/users/1", &[("x-request-id", &long)]).await;
        let id = replaced.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.len() < 64 && id != long, "{id}");
        let odd = fx.get_with("/v1/users/1", &[("x-request-id", "a b<script>")]).await;
        assert_ne!(odd.headers()["x-request-id"], "a b<script>");
        let hit = fx.get("/v1/users/1").await;
        assert_eq!(hit.headers()["x-content-type-options"], "nosniff", "hits too");
        let error = fx.get("/v1/nope").await;
        assert_eq!(error.headers()["x-content-type-options"], "nosniff", "errors too");
    }

    async fn bodies_too_large_or_too_slow(backend: Backend) {
        let fx = &Fixture::writable(backend, "bodies", |c| c.http.body_timeout_ms = 300).await;
        let wait = Duration::from_secs(5);
        let started = Instant::now();
        let huge = raw_exchange(
            fx,
            b"POST /v1/users HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n{}",
            wait,
        );
        assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
        assert!(huge.contains("limits.max_body_bytes"), "{huge}");
        assert!(started.elapsed() < Duration::from_secs(2), "refused before reading");
        let started = Instant::now();
        let slow = raw_exchange(
            fx,
            b"POST /v1/users HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\":",
            wait,
        );
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
        assert!(slow.contains("http.body_timeout_ms"), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    async fn idle_and_half_sent_connections_are_closed(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| c.http.idle_timeout_ms = 300).await;
        for sent in [&b""[..], b"GET /healthz HTTP/1.1\r\nhost: a\r\n"] {
            let started = Instant::now();
            let answer = raw_exchange(fx, sent, Duration::from_secs(10));
            let took = started.elapsed();
            assert!(took < Duration::from_secs(3), "closed after {took:?}: {answer}");
            assert!(!answer.contains("200 OK"), "{answer}");
        }
        // a keep-alive connection that keeps asking is served throughout
        let client = reqwest::Client::new();
        for _ in 0..3 {
            assert_eq!(client.get(fx.url("/healthz")).send().await.unwrap().status(), 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn connections_beyond_the_cap(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| c.http.max_connections = 2).await;
        let address = fx.base.trim_start_matches("http://").to_string();
        let held: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(&address).unwrap())
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let third = raw_exchange(fx, b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", Duration::from_secs(5));
        assert!(third.starts_with("HTTP/1.1 503"), "{third}");
        assert!(third.contains("retry-after: 1") && third.contains("http.max_connections"), "{third}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = raw_exchange(fx, b"GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n", Duration::from_secs(5));
        assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    }

    async fn a_slow_read_stops_at_its_deadline(backend: Backend) {
        let fx = &with_slow_view(backend, "deadline", |c| {
            c.limits.request_timeout_ms = 500;
            c.database.pool_size = 1;
        })
        .await;
        let started = Instant::now();
        let response = fx.get("/v1/slow").await;
        let took = started.elapsed();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(response.text().await.unwrap().contains("limits.request_timeout_ms"));
        assert!(took < Duration::from_secs(3), "{took:?}");
        // the one connection is healthy and free again
        let started = Instant::now();
        fx.data("/v1/users?limit=1&fields=id").await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    async fn a_client_that_hangs_up_frees_its_connection(backend: Backend) {
        let fx = &with_slow_view(backend, "hangup", |c| {
            c.limits.request_timeout_ms = 60_000;
            c.database.pool_size = 1;
        })
        .await;
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert!(impatient.get(fx.url("/v1/slow")).send().await.is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        // without the cancellation this would wait a minute for the pool's one connection
        let started = Instant::now();
        fx.data("/v1/users?limit=1&fields=id&name[ne]=hangup").await;
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    async fn a_full_queue_sheds_load_at_once(backend: Backend) {
        let fx = &with_slow_view(backend, "shed", |c| {
            c.limits.request_timeout_ms = 2_000;
            c.limits.max_waiting = 1;
            c.database.pool_size = 1;
        })
        .await;
        let slow = |i: usize| {
            let client = fx.client.clone();
            let url = fx.url(&format!("/v1/slow?limit={i}"));
            tokio::spawn(async move {
                let started = Instant::now();
                let response = client.get(url).send().await.unwrap();
                let retry = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry, started.elapsed())
            })
        };
        let running = slow(1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = slow(2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, retry, took) = slow(3).await.unwrap();
        assert_eq!((status, retry), (503, true), "the third is refused");
        assert!(took < Duration::from_millis(500), "at once: {took:?}");
        for task in [running, waiting] {
            let (status, retry, _) = task.await.unwrap();
            assert_eq!((status, retry), (503, true), "the deadline passes for the others");
        }
    }

    async fn recompression_skips_large_answers(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| {
            c.compression.recompress_after_hits = 2;
            c.compression.recompress_max_bytes = 1000;
        })
        .await;
        let path = "/v1/products?limit=100&fields=id,name";
        for _ in 0..5 {
            fx.get_with(path, &[("accept-encoding", "br")]).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let etag = fx.get_with(path, &[("accept-encoding", "br")]).await.headers()["etag"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(etag.ends_with("-br2\""), "left at the default level: {etag}");
    }

    async fn sigterm_finishes_within_the_grace_period(backend: Backend) {
        let shop = writable_shop(backend, "sigterm").await;
        execute(backend, &shop, slow_view(backend)).await;
        let server = BriskProcess::start(&shop, &[("BRISK_HTTP_SHUTDOWN_GRACE_MS", "500")], "sigterm").await;
        let client = reqwest::Client::new();
        let in_flight = tokio::spawn({
            let url = server.url("/v1/slow");
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
        let took = started.elapsed();
        assert!(status.success(), "exit status {status:?}");
        assert!(took < Duration::from_millis(1_500), "grace 500 ms + 1 s, took {took:?}");
        assert!(in_flight.await.unwrap().is_err(), "the slow read was dropped");
    }
}

/// PostgreSQL gets a page and its count pipelined on one connection. When
/// the deadline cancels the page, the count is already queued behind it:
/// the connection must not go back to the pool busy with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_counted_read_leaves_no_statement_behind() {
    if postgres_shop().is_none() {
        skipped("PostgreSQL pipelined cancel");
        return;
    }
    let url = writable_shop(Backend::Postgres, "pipelined_cancel").await;
    execute(
        Backend::Postgres,
        &url,
        "CREATE TABLE nap_control (secs float8 NOT NULL);
         INSERT INTO nap_control VALUES (0);
         CREATE VIEW nap AS SELECT 1 AS n FROM nap_control, LATERAL pg_sleep(nap_control.secs);",
    )
    .await;
    let fx = &Fixture::serve(Backend::Postgres, &url, |c| {
        c.limits.request_timeout_ms = 500;
        c.database.pool_size = 1;
    })
    .await;
    // a quick first run leaves both statements prepared on the one connection,
    // so the next run sends both at once
    fx.data("/v1/nap?count=exact&limit=1").await;
    execute(Backend::Postgres, &url, "UPDATE nap_control SET secs = 30").await;
    let response = fx.get("/v1/nap?count=exact&limit=2").await;
    assert_eq!(response.status(), 503);
    let started = Instant::now();
    fx.data("/v1/users?limit=1&fields=id&name[ne]=pipelined")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?} behind a cancelled read's count",
        started.elapsed()
    );
}
