//! The demo dataset ("shop", docs/dataset.md): a deterministic
//! generator and loaders into SQLite and PostgreSQL.
//!
//! - [`generate`]: the rows, as plain structs, from a seed and a scale.
//! - [`sqlite`] and [`postgres`]: write them, creating tables and indexes.
//!
//! [`load`] is the entry point.

pub mod generate;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub use generate::Shop;

/// Scale factor and seed of the demo shop.
#[derive(Debug, Clone, Copy)]
pub struct DemoSpec {
    /// Row counts are linear in it: 1 gives 10,000 users, 5,000 products,
    /// 100,000 orders and about 300,000 order items. Must be > 0.
    pub scale: f64,
    pub seed: u64,
}

/// Where [`load`] writes.
pub enum Target<'a> {
    /// A SQLite file, created if missing.
    Sqlite(&'a Path),
    /// A `postgres://` URL.
    Postgres(&'a str),
}

/// Rows written by [`load`] and how long it took.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub users: u64,
    pub products: u64,
    pub orders: u64,
    pub order_items: u64,
    pub elapsed: Duration,
}

/// The four tables, in load order.
pub const TABLES: [&str; 4] = ["users", "products", "orders", "order_items"];

/// Writes the demo shop into the target, creating tables and indexes.
///
/// Refuses with an error naming the tables if any of users, products, orders
/// or order_items already exists, unless `force` (then drops those four
/// tables first, with CASCADE on PostgreSQL).
///
/// Progress goes to stderr: a progress bar per table when stderr is a
/// terminal, else one line per table ("loading orders: 100000 rows"), then a
/// summary line with the elapsed time.
pub async fn load(target: Target<'_>, spec: DemoSpec, force: bool) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let shop = Arc::new(Shop::new(spec)?);
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
    };
    let (counts, place) = match target {
        Target::Sqlite(path) => {
            let path = path.to_path_buf();
            let place = path.display().to_string();
            let shop = Arc::clone(&shop);
            let counts =
                tokio::task::spawn_blocking(move || sqlite::load(&path, &shop, force, progress))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("the SQLite loader panicked or was cancelled: {e}")
                    })??;
            (counts, place)
        }
        Target::Postgres(url) => {
            let counts = postgres::load(url, &shop, force, progress).await?;
            (counts, postgres::redact(url))
        }
    };
    let elapsed = started.elapsed();
    eprintln!(
        "loaded demo shop (scale {}, seed {}) into {place}: {} users, {} products, {} orders, {} order_items in {:.2}s",
        spec.scale,
        spec.seed,
        counts.users,
        counts.products,
        counts.orders,
        counts.order_items,
        elapsed.as_secs_f64()
    );
    Ok(LoadReport {
        users: counts.users,
        products: counts.products,
        orders: counts.orders,
        order_items: counts.order_items,
        elapsed,
    })
}

/// Rows written per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    users: u64,
    products: u64,
    orders: u64,
    order_items: u64,
}

/// The message when tables exist and `force` is not set.
fn refusal(place: &str, existing: &[&str]) -> anyhow::Error {
    anyhow::anyhow!(
        "{place} already has {} {}; pass --force to drop {} and load the demo shop",
        if existing.len() == 1 {
            "table"
        } else {
            "tables"
        },
        existing.join(", "),
        if existing.len() == 1 { "it" } else { "them" },
    )
}

/// Progress reporting on stderr.
#[derive(Debug, Clone, Copy)]
struct Progress {
    tty: bool,
}

impl Progress {
    /// Starts a table of about `expected` rows (0 when unknown).
    fn table(self, name: &'static str, expected: u64) -> TableProgress {
        let bar = self.tty.then(|| {
            let bar = ProgressBar::new(expected);
            let style = ProgressStyle::with_template(
                "loading {prefix:<11} [{bar:30}] {pos:>9}/{len} rows {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name);
            bar
        });
        TableProgress {
            name,
            bar,
            rows: 0,
            pending: 0,
        }
    }
}

struct TableProgress {
    name: &'static str,
    bar: Option<ProgressBar>,
    rows: u64,
    pending: u64,
}

impl TableProgress {
    fn inc(&mut self) {
        self.rows += 1;
        self.pending += 1;
        if self.pending == 4096 {
            if let Some(bar) = &self.bar {
                bar.inc(self.pending);
            }
            self.pending = 0;
        }
    }

    /// Ends the table; returns its row count.
    fn finish(self) -> u64 {
        match &self.bar {
            Some(bar) => {
                bar.set_length(self.rows);
                bar.set_position(self.rows);
                bar.finish();
                // The finished bar stays on its line; the next output goes below.
                eprintln!();
            }
            None => eprintln!("loading {}: {} rows", self.name, self.rows),
        }
        self.rows
    }
}
