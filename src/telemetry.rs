//! Logs: structured lines on stderr, filtered by `log.filter` (e.g.
//! `brisk=debug`), as plain text (without terminal colours when stderr is
//! not a terminal) or as JSON lines (`log.format = "json"`).

use crate::config::{LogFormat, LogSettings};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Starts logging; later calls (tests start many apps) change nothing.
pub fn init(settings: &LogSettings) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(&settings.filter))
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match settings.format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => logs.json().try_init(),
    };
}
