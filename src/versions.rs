//! A version and a last-change time per table. Every cached answer records
//! the versions of the tables it was built from; it is current while they
//! are. ETags derive from versions, so a revalidation is answered from them
//! alone, without running the query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tables of one schema, each with a version and a last-change time.
pub struct Versions {
    index: HashMap<String, usize>,
    tables: Vec<TableState>,
}

struct TableState {
    version: AtomicU64,
    /// Unix seconds of the last change brisk knows of: an upper bound of the
    /// real one, which is what `Last-Modified` may safely say.
    changed_at: AtomicU64,
}

/// The versions of some tables at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    entries: Vec<(usize, u64)>,
}

impl Versions {
    /// All tables start at version 1, last changed at `changed_at`.
    pub fn new<'a>(tables: impl IntoIterator<Item = &'a str>, changed_at: SystemTime) -> Versions {
        let seconds = unix_seconds(changed_at);
        let names: Vec<&str> = tables.into_iter().collect();
        Versions {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i))
                .collect(),
            tables: names
                .iter()
                .map(|_| TableState {
                    version: AtomicU64::new(1),
                    changed_at: AtomicU64::new(seconds),
                })
                .collect(),
        }
    }

    /// The current versions of `tables` (names brisk does not know are left out).
    pub fn snapshot<'a>(&self, tables: impl IntoIterator<Item = &'a str>) -> Snapshot {
        let mut entries: Vec<(usize, u64)> = tables
            .into_iter()
            .filter_map(|name| self.index.get(name))
            .map(|&i| (i, self.tables[i].version.load(Ordering::Acquire)))
            .collect();
        entries.sort_unstable();
        entries.dedup();
        Snapshot { entries }
    }

    /// Whether no table of the snapshot has changed since it was taken.
    pub fn is_current(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .entries
            .iter()
            .all(|&(i, version)| self.tables[i].version.load(Ordering::Acquire) == version)
    }

    /// The latest change among the snapshot's tables.
    pub fn last_changed(&self, snapshot: &Snapshot) -> SystemTime {
        let seconds = snapshot
            .entries
            .iter()
            .map(|&(i, _)| self.tables[i].changed_at.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// Records a change to `table`: every answer built from it stops being current.
    pub fn bump(&self, table: &str) {
        if let Some(&i) = self.index.get(table) {
            let state = &self.tables[i];
            state
                .changed_at
                .fetch_max(unix_seconds(SystemTime::now()), Ordering::AcqRel);
            state.version.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Snapshot {
    /// Feeds the versions into a hash (for ETags).
    pub fn hash_into(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        for (i, version) in &self.entries {
            hasher.update(&(*i as u64).to_le_bytes());
            hasher.update(&version.to_le_bytes());
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_makes_snapshots_of_that_table_stale_and_no_other() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let versions = Versions::new(["users", "orders"], start);
        let users = versions.snapshot(["users"]);
        let both = versions.snapshot(["orders", "users", "nope"]);
        let orders = versions.snapshot(["orders"]);
        assert_eq!(versions.last_changed(&both), start);
        versions.bump("orders");
        assert!(versions.is_current(&users));
        assert!(!versions.is_current(&both));
        assert!(!versions.is_current(&orders));
        assert!(versions.last_changed(&orders) > start);
        assert_eq!(versions.last_changed(&users), start);
    }
}
