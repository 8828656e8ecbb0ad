//! Request metrics kept on the request path with plain atomics (a cache hit
//! pays two clock reads and three atomic adds), and the Prometheus text
//! format that `GET /metrics` answers with, together with the counters other
//! parts keep (cache, gate, Redis, changes).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which route a request took, by the shape of its path: a label with a
/// bounded number of values, whatever clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Collection,
    Row,
    Related,
    OpenApi,
    Health,
    Ready,
    Metrics,
    Other,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Collection,
        Route::Row,
        Route::Related,
        Route::OpenApi,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::Other,
    ];

    /// The route of a request path.
    pub fn of(path: &str) -> Route {
        match path {
            "/v1/openapi.json" => return Route::OpenApi,
            "/healthz" => return Route::Health,
            "/readyz" => return Route::Ready,
            "/metrics" => return Route::Metrics,
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Route::Other;
        };
        match rest.split('/').filter(|s| !s.is_empty()).count() {
            1 => Route::Collection,
            2 => Route::Row,
            3 => Route::Related,
            _ => Route::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Collection => "/v1/{resource}",
            Route::Row => "/v1/{resource}/{id}",
            Route::Related => "/v1/{resource}/{id}/{relation}",
            Route::OpenApi => "/v1/openapi.json",
            Route::Health => "/healthz",
            Route::Ready => "/readyz",
            Route::Metrics => "/metrics",
            Route::Other => "other",
        }
    }
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "other",
];

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Statuses are counted for 100..=599.
const STATUSES: usize = 500;

pub struct Metrics {
    /// [route][method][status - 100]
    requests: Vec<AtomicU64>,
    /// [route][bucket]; the last bucket is +Inf
    latency: Vec<AtomicU64>,
    latency_micros: Vec<AtomicU64>,
    pub auth_failures: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Metrics {
            requests: zeros(Route::ALL.len() * METHODS.len() * STATUSES),
            latency: zeros(Route::ALL.len() * (BUCKETS.len() + 1)),
            latency_micros: zeros(Route::ALL.len()),
            auth_failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: Route, method: &str, status: u16, took: Duration) {
        let method = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        let status = (status.clamp(100, 599) - 100) as usize;
        let r = route as usize;
        self.requests[(r * METHODS.len() + method) * STATUSES + status]
            .fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[r * (BUCKETS.len() + 1) + bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_micros[r].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The request metrics in the Prometheus text format.
    pub fn render(&self, out: &mut Exposition) {
        out.header(
            "brisk_requests_total",
            "counter",
            "Requests answered, by route, method and status.",
        );
        for route in Route::ALL {
            for (m, method) in METHODS.iter().enumerate() {
                for status in 0..STATUSES {
                    let index = ((route as usize) * METHODS.len() + m) * STATUSES + status;
                    let count = self.requests[index].load(Ordering::Relaxed);
                    if count > 0 {
                        out.sample(
                            "brisk_requests_total",
                            &[
                                ("route", route.label()),
                                ("method", method),
                                ("status", &(status + 100).to_string()),
                            ],
                            count as f64,
                        );
                    }
                }
            }
        }
        out.header(
            "brisk_request_duration_seconds",
            "histogram",
            "Time from a request's head to its answer's head, by route.",
        );
        for route in Route::ALL {
            let r = route as usize;
            let mut cumulative = 0;
            for (b, bound) in BUCKETS
                .iter()
                .map(|b| b.to_string())
                .chain(["+Inf".into()])
                .enumerate()
            {
                cumulative += self.latency[r * (BUCKETS.len() + 1) + b].load(Ordering::Relaxed);
                out.sample(
                    "brisk_request_duration_seconds_bucket",
                    &[("route", route.label()), ("le", &bound)],
                    cumulative as f64,
                );
            }
            let micros = self.latency_micros[r].load(Ordering::Relaxed);
            out.sample(
                "brisk_request_duration_seconds_sum",
                &[("route", route.label())],
                micros as f64 / 1e6,
            );
            out.sample(
                "brisk_request_duration_seconds_count",
                &[("route", route.label())],
                cumulative as f64,
            );
        }
        out.counter(
            "brisk_auth_failures_total",
            "Requests refused for missing, bad or expired credentials (401) or a role without the right (403).",
            self.auth_failures.load(Ordering::Relaxed),
        );
        out.counter(
            "brisk_rate_limited_total",
            "Requests refused by a rate limit (429).",
            self.rate_limited.load(Ordering::Relaxed),
        );
    }
}

/// Text in the Prometheus exposition format, metric by metric.
#[derive(Default)]
pub struct Exposition(pub String);

impl Exposition {
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{key}=\"{value}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value as f64);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_have_a_bounded_label() {
        assert_eq!(Route::of("/v1/users"), Route::Collection);
        assert_eq!(Route::of("/v1/users/5"), Route::Row);
        assert_eq!(Route::of("/v1/users/5/orders"), Route::Related);
        assert_eq!(Route::of("/v1/a/b/c/d"), Route::Other);
        assert_eq!(Route::of("/v1/openapi.json"), Route::OpenApi);
        assert_eq!(Route::of("/anything"), Route::Other);
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let metrics = Metrics::default();
        metrics.record(Route::Row, "GET", 200, Duration::from_micros(300));
        metrics.record(Route::Row, "GET", 200, Duration::from_millis(30));
        metrics.record(Route::Collection, "BREW", 405, Duration::from_micros(50));
        let mut out = Exposition::default();
        metrics.render(&mut out);
        let text = out.0;
        assert!(text.contains(
            "brisk_requests_total{route=\"/v1/{resource}/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("method=\"other\",status=\"405\"} 1"));
        assert!(text.contains(
            "brisk_request_duration_seconds_bucket{route=\"/v1/{resource}/{id}\",le=\"0.0005\"} 1"
        ));
        assert!(
            text.contains("brisk_request_duration_seconds_count{route=\"/v1/{resource}/{id}\"} 2")
        );
    }
}
