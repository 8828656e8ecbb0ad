//! Logs: structured lines on stderr, filtered by `BRISK_LOG` (or `RUST_LOG`),
//! e.g. `BRISK_LOG=brisk=debug`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("BRISK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "brisk=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
