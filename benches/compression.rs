//! Compression of the demo payloads: size, ratio and time per coding and
//! level, with brisk's own `brisk::encoding::compress` (the code a cache
//! miss runs), then the CPU a cache miss pays when every coding is made at
//! once (eager) against only the coding the client asked for (lazy).
//!
//! The payloads are the identity bodies of Q1..Q7 as brisk answers them,
//! fetched from a running brisk by `python3 bench/payloads.py` into
//! `bench/payloads/Q1.json`..`Q7.json` (not committed). Run:
//!
//! ```sh
//! python3 bench/payloads.py --source /tmp/brisk-snap
//! cargo bench --bench compression
//! ```
//!
//! Environment: `COMPRESSION_BENCH_PAYLOADS` (default `bench/payloads`),
//! `COMPRESSION_BENCH_BUDGET_MS` (time spent per payload, coding and level;
//! default 400), `COMPRESSION_BENCH_MAX_ITERATIONS` (default 301),
//! `COMPRESSION_BENCH_OUT` (write the markdown there as well as to stdout).
//! Single-threaded: one compression at a time, as brisk makes a variant.

use brisk::encoding::{Coding, compress};
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The grid: coding, levels. The first level of each list named in
/// `DEFAULTS` is brisk's default.
const GRID: &[(Coding, &[i32])] = &[
    (Coding::Gzip, &[1, 2, 3, 4, 6, 9, 12]),
    (Coding::Deflate, &[1, 6, 12]),
    (Coding::Br, &[1, 2, 3, 4, 5, 11]),
    (Coding::Zstd, &[1, 2, 3, 6, 19]),
];

/// brisk's default levels (docs/configuration.md).
const DEFAULTS: &[(Coding, i32)] = &[
    (Coding::Zstd, 3),
    (Coding::Br, 2),
    (Coding::Gzip, 1),
    (Coding::Deflate, 1),
];

/// The levels the background recompression uses after
/// `compression.recompress_after_hits` hits (docs/caching.md).
const HOT: &[(Coding, i32)] = &[(Coding::Zstd, 19), (Coding::Br, 11), (Coding::Gzip, 12)];

/// Bodies under `compression.min_bytes` go uncompressed.
const MIN_BYTES: usize = 1024;

struct Measured {
    payload: String,
    identity: usize,
    coding: Coding,
    level: i32,
    size: usize,
    median: Duration,
    iterations: usize,
}

#[allow(clippy::disallowed_methods)] // the bench's own knobs, not brisk's configuration
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn decompress(coding: Coding, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        Coding::Zstd => {
            out = zstd::stream::decode_all(bytes).expect("valid zstd");
        }
        Coding::Br => {
            brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid br");
        }
        Coding::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        Coding::Deflate => {
            flate2::read::ZlibDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("valid zlib");
        }
    }
    out
}

/// Median time of `compress(coding, level, body)`, iterating until the
/// budget is spent (at least 3 and at most `max` times, after one warm-up
/// that also checks the bytes decompress to the body).
fn measure(coding: Coding, level: i32, body: &[u8], budget: Duration, max: usize) -> Measured {
    let first = compress(coding, level, body);
    assert_eq!(
        decompress(coding, &first),
        body,
        "{} {level} round trip",
        coding.token()
    );
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 3 || (times.len() < max && started.elapsed() < budget) {
        let t = Instant::now();
        let out = compress(coding, level, std::hint::black_box(body));
        times.push(t.elapsed());
        std::hint::black_box(out);
    }
    times.sort();
    Measured {
        payload: String::new(),
        identity: body.len(),
        coding,
        level,
        size: first.len(),
        median: times[times.len() / 2],
        iterations: times.len(),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let dir = PathBuf::from(env_or(
        "COMPRESSION_BENCH_PAYLOADS",
        String::from("bench/payloads"),
    ));
    let budget = Duration::from_millis(env_or("COMPRESSION_BENCH_BUDGET_MS", 400));
    let max = env_or("COMPRESSION_BENCH_MAX_ITERATIONS", 301usize);
    let mut payloads = Vec::new();
    for q in 1..=7 {
        let path = dir.join(format!("Q{q}.json"));
        let body = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; fetch the payloads first: python3 bench/payloads.py",
                path.display()
            )
        });
        payloads.push((format!("Q{q}"), body));
    }

    let mut results: Vec<Measured> = Vec::new();
    for (name, body) in &payloads {
        for (coding, levels) in GRID {
            for &level in *levels {
                let mut m = measure(*coding, level, body, budget, max);
                m.payload = name.clone();
                eprintln!(
                    "{name} {} {level}: {} -> {} bytes, {:.1} us (n={})",
                    coding.token(),
                    m.identity,
                    m.size,
                    us(m.median),
                    m.iterations
                );
                results.push(m);
            }
        }
    }
    // The hot levels are all in the grid (gzip 12, zstd 19, br 11).
    let find = |payload: &str, coding: Coding, level: i32| {
        results
            .iter()
            .find(|m| m.payload == payload && m.coding == coding && m.level == level)
            .expect("measured")
    };

    let mut out = String::new();
    writeln!(out, "### Size and time per coding and level\n").unwrap();
    writeln!(
        out,
        "Time: median of n runs of `brisk::encoding::compress` on one thread; MB/s = identity MB / median time.\n"
    )
    .unwrap();
    writeln!(
        out,
        "| payload | identity bytes | coding | level | bytes | ratio (bytes/identity) | µs/body | MB/s | n |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for m in &results {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.3} | {:.1} | {:.1} | {} |",
            m.payload,
            m.identity,
            m.coding.token(),
            m.level,
            m.size,
            m.size as f64 / m.identity as f64,
            us(m.median),
            m.identity as f64 / m.median.as_secs_f64() / 1e6,
            m.iterations
        )
        .unwrap();
    }

    writeln!(
        out,
        "\n### A cache miss: eager (all four codings) against lazy (the requested one)\n"
    )
    .unwrap();
    writeln!(
        out,
        "Default levels zstd 3, br 5, gzip 6, deflate 6. Eager = the sum of the four; lazy = the one the client asked for \
         (identity: nothing). Bodies under {MIN_BYTES} bytes are never compressed (0 either way).\n"
    )
    .unwrap();
    writeln!(
        out,
        "| payload | identity bytes | eager µs | lazy zstd 3 µs | lazy br 5 µs | lazy gzip 6 µs | lazy deflate 6 µs | eager ÷ lazy gzip |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for (name, body) in &payloads {
        let t: Vec<f64> = DEFAULTS
            .iter()
            .map(|&(c, l)| {
                if body.len() < MIN_BYTES {
                    0.0
                } else {
                    us(find(name, c, l).median)
                }
            })
            .collect();
        let eager: f64 = t.iter().sum();
        let ratio = if t[2] > 0.0 {
            format!("{:.1}x", eager / t[2])
        } else {
            "n/a".into()
        };
        writeln!(
            out,
            "| {name} | {} | {eager:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {ratio} |",
            body.len(),
            t[0],
            t[1],
            t[2],
            t[3]
        )
        .unwrap();
    }

    writeln!(
        out,
        "\n### Default level against the hot (background) level\n"
    )
    .unwrap();
    writeln!(
        out,
        "| payload | coding | default level bytes | hot level | hot bytes | default ÷ hot | default µs | hot µs |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (name, body) in &payloads {
        if body.len() < MIN_BYTES {
            continue;
        }
        for &(coding, hot) in HOT {
            let default = DEFAULTS.iter().find(|(c, _)| *c == coding).unwrap().1;
            let d = find(name, coding, default);
            let h = find(name, coding, hot);
            writeln!(
                out,
                "| {name} | {} | {} ({}) | {hot} | {} | {:.3} | {:.1} | {:.1} |",
                coding.token(),
                d.size,
                default,
                h.size,
                d.size as f64 / h.size as f64,
                us(d.median),
                us(h.median)
            )
            .unwrap();
        }
    }

    print!("{out}");
    let path: String = env_or("COMPRESSION_BENCH_OUT", String::new());
    if !path.is_empty() {
        std::fs::write(&path, &out).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("wrote {path}");
    }
}
