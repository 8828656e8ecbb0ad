//! What the access layer adds to a cache hit, step by step, in nanoseconds
//! per request on one thread: identifying the caller (no credentials, an
//! API key, a remembered JWT), spending a local rate limit, and writing the
//! headers it adds. Whole requests are measured by `bench/access.py`; this
//! isolates the layer from the noise of a loaded socket. Run:
//!
//! ```sh
//! cargo bench --bench access
//! ```

use axum::http::{HeaderMap, HeaderValue, header};
use brisk::access::Access;
use brisk::config::{Config, Settings};
use brisk::metrics::Metrics;
use brisk::roles::Roles;
use brisk_query::{Limits, Schema};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

const SECRET: &str = "bench secret of at least thirty-two bytes, no more";

fn access(limited: bool) -> (Access, String, String) {
    let issued = brisk::auth::keys::issue("reader", Some("bench")).unwrap();
    let mut toml = format!(
        "[database]\nurl = \"bench.db\"\n[roles.reader]\n[auth.keys.bench]\nrole = \"reader\"\nsha256 = \"{}\"\n\
         [auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\ndefault_role = \"reader\"\n",
        issued.sha256
    );
    if limited {
        toml.push_str("[rate_limit]\nrequests = 1000000000\nwindow_seconds = 60\n");
    }
    let config: Config = toml::from_str(&toml).unwrap();
    let settings = Settings::from_config(config).unwrap();
    let roles = Roles::new(&settings.access, &Schema::default(), Limits::default()).unwrap();
    let documents = roles
        .iter()
        .map(|role| (role.name.to_string(), bytes::Bytes::new()))
        .collect();
    let access = Access::new(&settings.access, roles, None, documents).unwrap();
    let exp = jsonwebtoken::get_current_timestamp() + 86_400;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "bench", "role": "reader", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    (access, issued.key, token)
}

/// Nanoseconds per call of `step`, the median of 7 runs of `n` calls.
fn time(n: u32, mut step: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..n {
                step();
            }
            started.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let metrics = Metrics::default();
    let peer: IpAddr = [203, 0, 113, 7].into();
    let hit_headers = || {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, must-revalidate"),
        );
        headers
    };
    println!("| step | ns per request |\n|---|---:|");
    for (label, limited, credential) in [
        ("anonymous", false, None),
        ("API key", false, Some(false)),
        ("JWT (remembered)", false, Some(true)),
        ("API key + local limit", true, Some(false)),
        ("JWT + local limit", true, Some(true)),
    ] {
        let (access, key, token) = access(limited);
        let mut request = HeaderMap::new();
        if let Some(jwt) = credential {
            let value = format!("Bearer {}", if jwt { &token } else { &key });
            request.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        let whole = time(200_000, || {
            let viewer = access
                .identify(black_box(&request), peer, &metrics)
                .unwrap();
            let spent = runtime
                .block_on(access.spend(&viewer, 1, &metrics))
                .unwrap();
            let mut headers = hit_headers();
            if let Some(spent) = spent {
                spent.write_headers(&mut headers);
            }
            access.finish_headers(&viewer, &mut headers);
            black_box(headers);
        });
        println!("| {label}: identify, spend, headers | {whole:.0} |");
    }
    let baseline = time(200_000, || {
        black_box(hit_headers());
    });
    println!("| (the response header map alone, included above) | {baseline:.0} |");
}
