//! What brisk tells its operators and browsers: Prometheus metrics (read
//! back by Prometheus's own Python parser), CORS, and log lines.

use crate::on_both;
use crate::support::*;
use std::io::Write;
use std::time::Duration;

/// Parses Prometheus text with `prometheus_client` (PyPI) and returns
/// `name value` lines of every sample; `None` when the parser is missing
/// and not required.
fn parse_prometheus(text: &str) -> Option<Vec<String>> {
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       print(s.name, ','.join(f'{k}={v}' for k, v in sorted(s.labels.items())), s.value)\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        assert!(
            !services_required(),
            "prometheus_client is required (pip install prometheus-client)"
        );
        skipped("metrics parsed by prometheus_client");
        return None;
    }
    assert!(
        output.status.success(),
        "prometheus_client refused the metrics: {stderr}\n{text}"
    );
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

on_both! {
    async fn metrics_in_prometheus_text(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        fx.get("/v1/users/5").await;
        fx.get("/v1/users/5").await;
        fx.get("/v1/nope").await;
        fx.get_with("/v1/products?limit=40", &[("accept-encoding", "gzip")]).await;
        let response = fx.get("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "content-type").unwrap().starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.unwrap();
        let Some(samples) = parse_prometheus(&text) else { return };
        let value = |prefix: &str| -> f64 {
            samples
                .iter()
                .find(|s| s.starts_with(prefix))
                .unwrap_or_else(|| panic!("no sample {prefix} in\n{}", samples.join("\n")))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(value("brisk_requests_total method=GET,route=/v1/{resource}/{id},status=200 ") >= 2.0);
        assert!(value("brisk_requests_total method=GET,route=/v1/{resource},status=404 ") >= 1.0);
        assert!(value("brisk_request_duration_seconds_count route=/v1/{resource}/{id} ") >= 2.0);
        assert!(value("brisk_cache_hits_total ") >= 1.0);
        assert!(value("brisk_cache_misses_total ") >= 1.0);
        assert!(value("brisk_compression_saved_bytes_total coding=gzip ") > 0.0);
        assert!(value("brisk_db_capacity ") >= 1.0);
        for name in ["brisk_auth_failures_total", "brisk_rate_limited_total", "brisk_cache_bytes", "brisk_db_waiting"] {
            value(name);
        }
    }

    async fn metrics_on_an_admin_address(backend: Backend) {
        let port = free_port();
        let fx = &Fixture::configured(backend, |c| c.metrics.listen = Some(format!("127.0.0.1:{port}"))).await;
        assert_eq!(fx.get("/metrics").await.status(), 404, "not on the API's address");
        let mut admin = None;
        for _ in 0..50 {
            if let Ok(response) = fx.client.get(format!("http://127.0.0.1:{port}/metrics")).send().await {
                admin = Some(response);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let admin = admin.expect("the admin address answers");
        assert_eq!(admin.status(), 200);
        assert!(admin.text().await.unwrap().contains("brisk_requests_total"));
    }

    async fn cors_for_the_configured_origins(backend: Backend) {
        let fx = &Fixture::configured(backend, |c| c.cors.origins = vec!["https://app.example".into()]).await;
        let preflight = fx
            .client
            .request(reqwest::Method::OPTIONS, fx.url("/v1/users"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204);
        assert_eq!(header(&preflight, "access-control-allow-origin").as_deref(), Some("https://app.example"));
        assert_eq!(header(&preflight, "access-control-max-age").as_deref(), Some("600"));
        assert!(header(&preflight, "access-control-allow-methods").unwrap().contains("PATCH"));
        for _ in 0..2 {
            // a miss, then a hit: both carry the headers
            let read = fx.get_with("/v1/users/3", &[("origin", "https://app.example")]).await;
            assert_eq!(header(&read, "access-control-allow-origin").as_deref(), Some("https://app.example"));
            assert!(header(&read, "access-control-expose-headers").unwrap().contains("etag"));
            let vary: Vec<_> = read.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_string()).collect();
            assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
        }
        let other = fx.get_with("/v1/users/3", &[("origin", "https://evil.example")]).await;
        assert!(header(&other, "access-control-allow-origin").is_none());
        let refused = fx
            .client
            .request(reqwest::Method::OPTIONS, fx.url("/v1/users"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(header(&refused, "access-control-allow-origin").is_none());
        let plain = Fixture::shop(backend).await;
        let no_cors = plain.get_with("/v1/users/3", &[("origin", "https://app.example")]).await;
        assert!(header(&no_cors, "access-control-allow-origin").is_none(), "off unless configured");
    }

    async fn logs_as_text_or_json_lines(backend: Backend) {
        let url = writable_shop(backend, "logs").await;
        for format in ["text", "json"] {
            let server = BriskProcess::start(&url, &[("BRISK_LOG_FORMAT", format)], &format!("logs-{format}")).await;
            reqwest::get(server.url("/healthz")).await.unwrap();
            let log = server.log();
            assert!(!log.contains('\u{1b}'), "no terminal colours in a log file: {log}");
            let line = log.lines().find(|l| l.contains("serving on")).unwrap_or_else(|| panic!("{log}"));
            if format == "json" {
                let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(parsed["fields"]["message"].as_str().unwrap().contains("serving on"));
                assert_eq!(parsed["level"], "INFO");
            } else {
                assert!(line.contains("INFO"), "{line}");
            }
        }
    }
}
