//! Versions of tables and rows. Every cached answer records the versions of
//! what it was built from ([`brisk_query::plan::Dependencies`]); it is
//! current while they are. ETags derive from versions, so a revalidation is
//! answered from them alone, without running the query.
//!
//! A write to rows of table `t` takes a new version from one clock and
//! stamps `t` (every collection over `t`, every answer embedding it) and each
//! written row (single-row answers of those rows only). A change whose rows
//! are unknown (a write behind brisk's back) stamps the table and its
//! *floor*: every row of it counts as changed. Row stamps are kept for at
//! most `MAX_ROW_STAMPS` rows per table; past that they are dropped and the
//! table's floor raised, which costs one extra miss per row answer and is
//! never stale.
//!
//! brisk does not read view definitions, so a view counts as changed by a
//! change to any table.

use brisk_query::plan::Dependencies;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_ROW_STAMPS: usize = 100_000;

pub struct Versions {
    index: HashMap<String, usize>,
    names: Vec<String>,
    tables: Vec<TableState>,
    /// Row stamps, per table: looked up by `&str` on every cache hit of a
    /// single-row answer, so without allocating.
    rows: Vec<RwLock<HashMap<String, u64>>>,
    /// Indexes of the views: stamped by every change to a table.
    views: Vec<usize>,
    clock: AtomicU64,
}

struct TableState {
    version: AtomicU64,
    /// The least version of any row of the table.
    floor: AtomicU64,
    /// Unix seconds of the last change brisk knows of: an upper bound of the
    /// real one, which is what `Last-Modified` may safely say.
    changed_at: AtomicU64,
}

/// The versions of some tables and rows at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    tables: Vec<(usize, u64)>,
    rows: Vec<(usize, String, u64)>,
}

/// What a write changed, as every instance must apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub table: String,
    pub version: u64,
    /// The rows written; `None` when unknown (every row counts as changed).
    pub rows: Option<Vec<String>>,
}

impl Change {
    /// Every row of each of `tables` changed at `version`: a change whose
    /// rows are unknown (made by another program, or while Redis was away).
    pub fn whole_tables(tables: impl IntoIterator<Item = String>, version: u64) -> Vec<Change> {
        tables
            .into_iter()
            .map(|table| Change {
                table,
                version,
                rows: None,
            })
            .collect()
    }
}

impl Versions {
    /// Every table at version 1, last changed at `changed_at`.
    pub fn new<'a>(tables: impl IntoIterator<Item = &'a str>, changed_at: SystemTime) -> Versions {
        let seconds = unix_seconds(changed_at);
        let names: Vec<String> = tables.into_iter().map(str::to_string).collect();
        Versions {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            tables: names
                .iter()
                .map(|_| TableState {
                    version: AtomicU64::new(1),
                    floor: AtomicU64::new(1),
                    changed_at: AtomicU64::new(seconds),
                })
                .collect(),
            rows: names.iter().map(|_| RwLock::default()).collect(),
            names,
            views: Vec::new(),
            clock: AtomicU64::new(1),
        }
    }

    /// Marks these names as views, which every table change stales.
    pub fn with_views<'a>(mut self, views: impl IntoIterator<Item = &'a str>) -> Versions {
        self.views = views
            .into_iter()
            .filter_map(|name| self.index.get(name).copied())
            .collect();
        self
    }

    /// Stamps every view at `version`, after a change to table `changed`.
    fn stamp_views(&self, changed: usize, version: u64) {
        if self.views.contains(&changed) {
            return;
        }
        for &view in &self.views {
            let state = &self.tables[view];
            state
                .changed_at
                .fetch_max(unix_seconds(SystemTime::now()), Ordering::AcqRel);
            state.floor.fetch_max(version, Ordering::AcqRel);
            state.version.fetch_max(version, Ordering::AcqRel);
        }
    }

    /// The current versions of what an answer depends on (names brisk does
    /// not know are left out).
    pub fn snapshot(&self, deps: &Dependencies<'_>) -> Snapshot {
        let mut tables: Vec<(usize, u64)> = deps
            .tables
            .iter()
            .filter_map(|name| self.index.get(*name))
            .map(|&i| (i, self.tables[i].version.load(Ordering::Acquire)))
            .collect();
        tables.sort_unstable();
        tables.dedup();
        let rows = deps
            .rows
            .iter()
            .filter_map(|(table, key)| {
                let i = *self.index.get(*table)?;
                Some((i, key.clone(), self.row_version(i, key)))
            })
            .collect();
        Snapshot { tables, rows }
    }

    fn row_version(&self, table: usize, key: &str) -> u64 {
        let floor = self.tables[table].floor.load(Ordering::Acquire);
        let stamped = self.rows[table]
            .read()
            .expect("row stamps lock")
            .get(key)
            .copied()
            .unwrap_or(0);
        stamped.max(floor)
    }

    /// Whether nothing the snapshot covers has changed since it was taken.
    pub fn is_current(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .tables
            .iter()
            .all(|&(i, version)| self.tables[i].version.load(Ordering::Acquire) == version)
            && snapshot
                .rows
                .iter()
                .all(|(i, key, version)| self.row_version(*i, key) == *version)
    }

    /// The latest change among the snapshot's tables and rows' tables.
    pub fn last_changed(&self, snapshot: &Snapshot) -> SystemTime {
        let seconds = snapshot
            .tables
            .iter()
            .map(|&(i, _)| i)
            .chain(snapshot.rows.iter().map(|(i, _, _)| *i))
            .map(|i| self.tables[i].changed_at.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// The version a change to `table` takes: one past everything seen.
    pub fn next_version(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Applies a change (made here, or reported by another instance).
    pub fn apply(&self, change: &Change) {
        let Some(&i) = self.index.get(&change.table) else {
            return;
        };
        self.clock.fetch_max(change.version, Ordering::AcqRel);
        let state = &self.tables[i];
        state
            .changed_at
            .fetch_max(unix_seconds(SystemTime::now()), Ordering::AcqRel);
        match &change.rows {
            Some(keys) => {
                let mut rows = self.rows[i].write().expect("row stamps lock");
                for key in keys {
                    let stamp = rows.entry(key.clone()).or_insert(0);
                    *stamp = (*stamp).max(change.version);
                }
                if rows.len() > MAX_ROW_STAMPS {
                    // forget the stamps; the floor keeps every row at least this new
                    rows.clear();
                    state.floor.fetch_max(change.version, Ordering::AcqRel);
                }
            }
            None => {
                state.floor.fetch_max(change.version, Ordering::AcqRel);
            }
        }
        // last, so that a reader who sees the new table version sees the rows too
        state.version.fetch_max(change.version, Ordering::AcqRel);
        self.stamp_views(i, change.version);
    }

    /// Takes in state kept elsewhere (Redis): the larger of each version wins.
    pub fn merge(&self, table: &str, version: u64, floor: u64, rows: &HashMap<String, u64>) {
        let Some(&i) = self.index.get(table) else {
            return;
        };
        let state = &self.tables[i];
        self.observe_clock(version.max(floor));
        {
            let mut stamps = self.rows[i].write().expect("row stamps lock");
            for (key, &stamp) in rows {
                self.clock.fetch_max(stamp, Ordering::AcqRel);
                let slot = stamps.entry(key.clone()).or_insert(0);
                *slot = (*slot).max(stamp);
            }
        }
        state.floor.fetch_max(floor, Ordering::AcqRel);
        if state.version.fetch_max(version, Ordering::AcqRel) < version {
            state
                .changed_at
                .fetch_max(unix_seconds(SystemTime::now()), Ordering::AcqRel);
            self.stamp_views(i, version);
        }
    }

    /// The clock: the newest version this instance has seen or made.
    pub fn clock(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    /// Every table with its version.
    pub fn table_versions(&self) -> Vec<(&str, u64)> {
        self.names
            .iter()
            .zip(&self.tables)
            .map(|(name, state)| (name.as_str(), state.version.load(Ordering::Acquire)))
            .collect()
    }

    /// Moves the clock past a version seen elsewhere.
    pub fn observe_clock(&self, version: u64) {
        self.clock.fetch_max(version, Ordering::AcqRel);
    }

    /// The current version of one row (for `If-Match`).
    pub fn current_row(&self, table: &str, key: &str) -> Option<u64> {
        self.index.get(table).map(|&i| self.row_version(i, key))
    }

    pub fn table_names(&self) -> &[String] {
        &self.names
    }
}

impl Snapshot {
    /// Feeds the versions into a hash (for ETags).
    pub fn hash_into(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        for (i, version) in &self.tables {
            hasher.update(&(*i as u64).to_le_bytes());
            hasher.update(&version.to_le_bytes());
        }
        for (i, key, version) in &self.rows {
            hasher.update(&(*i as u64).to_le_bytes());
            hasher.update(key.as_bytes());
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

    fn deps<'a>(tables: &[&'a str], rows: &[(&'a str, &str)]) -> Dependencies<'a> {
        Dependencies {
            tables: tables.to_vec(),
            rows: rows.iter().map(|(t, k)| (*t, k.to_string())).collect(),
        }
    }

    fn write(versions: &Versions, table: &str, rows: Option<&[&str]>) {
        let version = versions.next_version();
        versions.apply(&Change {
            table: table.into(),
            version,
            rows: rows.map(|keys| keys.iter().map(|k| k.to_string()).collect()),
        });
    }

    #[test]
    fn a_write_stales_exactly_what_it_could_change() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let versions = Versions::new(["users", "orders"], start);
        let users = versions.snapshot(&deps(&["users"], &[]));
        let user_5 = versions.snapshot(&deps(&[], &[("users", "5")]));
        let user_6 = versions.snapshot(&deps(&[], &[("users", "6")]));
        let orders_of_5 = versions.snapshot(&deps(&["orders"], &[("users", "5")]));
        let orders = versions.snapshot(&deps(&["orders"], &[]));
        assert_eq!(versions.last_changed(&users), start);
        write(&versions, "users", Some(&["5"]));
        assert!(!versions.is_current(&users), "the collection");
        assert!(!versions.is_current(&user_5), "the row");
        assert!(versions.is_current(&user_6), "another row");
        assert!(
            !versions.is_current(&orders_of_5),
            "a nested route under the row"
        );
        assert!(versions.is_current(&orders), "another table");
        assert!(versions.last_changed(&user_5) > start);
        assert_eq!(versions.last_changed(&orders), start);
        // an outside change of unknown rows stales every row of the table
        write(&versions, "users", None);
        assert!(!versions.is_current(&user_6));
        assert!(versions.is_current(&orders));
    }

    #[test]
    fn a_change_to_any_table_stales_every_view() {
        let versions = Versions::new(["users", "orders", "big_spenders"], UNIX_EPOCH)
            .with_views(["big_spenders"]);
        let view = versions.snapshot(&deps(&["big_spenders"], &[("big_spenders", "3")]));
        let users = versions.snapshot(&deps(&["users"], &[]));
        write(&versions, "orders", Some(&["1"]));
        assert!(!versions.is_current(&view), "the view over orders");
        assert!(versions.is_current(&users), "views do not stale tables");
        let view = versions.snapshot(&deps(&["big_spenders"], &[]));
        versions.merge("users", versions.clock() + 1, 0, &HashMap::new());
        assert!(
            !versions.is_current(&view),
            "a change reported by another instance"
        );
    }

    #[test]
    fn changes_from_elsewhere_apply_in_any_order() {
        let versions = Versions::new(["users"], UNIX_EPOCH);
        let before = versions.snapshot(&deps(&["users"], &[("users", "1")]));
        versions.apply(&Change {
            table: "users".into(),
            version: 9,
            rows: Some(vec!["1".into()]),
        });
        versions.apply(&Change {
            table: "users".into(),
            version: 4,
            rows: Some(vec!["1".into()]),
        });
        let after = versions.snapshot(&deps(&["users"], &[("users", "1")]));
        assert!(!versions.is_current(&before));
        assert_eq!(
            after,
            versions.snapshot(&deps(&["users"], &[("users", "1")]))
        );
        assert_eq!(versions.current_row("users", "1"), Some(9));
        assert!(
            versions.next_version() > 9,
            "the clock moves past what it saw"
        );
    }
}
