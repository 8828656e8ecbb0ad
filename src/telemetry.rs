//! Logs: structured lines on stderr, filtered by `log.filter` (e.g.
//! `brisk=debug`), without terminal colours when stderr is not a terminal.

use crate::config::LogSettings;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Starts logging; later calls (tests start many apps) change nothing.
pub fn init(settings: &LogSettings) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(&settings.filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
