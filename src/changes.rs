//! Every change to the data, made through brisk or behind its back, turned
//! into versions here and on every instance.
//!
//! [`Changes`] stamps brisk's own writes: a version from the cluster's
//! clock when Redis is there (this instance's otherwise), applied here and
//! announced to the others before the write's response goes out.
//!
//! [`watch`] notices writes made by other programs:
//!
//! - SQLite, with `brisk install-triggers`: row triggers count the changes
//!   to each table in the `_brisk_changes` log, and brisk's own writes add
//!   their share to its `by_brisk` column in the same transaction. The log
//!   is read every `changes.poll_ms`; a table whose count grew by more than
//!   brisk's share was changed by another program, and only it is marked
//!   changed. Other brisk instances' writes (announced with their rows over
//!   Redis) are told apart this way too.
//! - SQLite without the triggers: `PRAGMA data_version` on brisk's own
//!   writer connection moves when any other connection commits to the file
//!   (another program, or another brisk instance), and never for brisk's
//!   own commits. It is polled every `changes.poll_ms`; a move marks every
//!   table changed, since SQLite does not say which.
//! - PostgreSQL: statement-level triggers that `brisk install-triggers`
//!   puts on every served table send `NOTIFY brisk_changes, '<origin>|<table>'`
//!   at commit. brisk LISTENs on a connection of its own and marks that table
//!   changed; notifications of its own writes (origin = this instance) are
//!   skipped, since those were announced precisely already. After the
//!   listening connection drops, every table is marked changed once it is
//!   back, since notifications may have been missed.

use crate::cluster::Cluster;
use crate::config::ChangeSettings;
use crate::db::{ChangeLog, Database, PostgresDb, SqliteDb, changed_outside};
use crate::versions::{Change, Versions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where changes go: this instance's versions, and Redis when it is there.
#[derive(Clone)]
pub struct Changes {
    versions: Arc<Versions>,
    cluster: Option<Arc<Cluster>>,
    /// Changes made outside brisk that were noticed.
    outside: Arc<AtomicU64>,
}

impl Changes {
    pub fn new(versions: Arc<Versions>, cluster: Option<Arc<Cluster>>) -> Changes {
        Changes {
            versions,
            cluster,
            outside: Arc::default(),
        }
    }

    /// A version for a change: from the cluster's clock when Redis is there,
    /// else from this instance's.
    pub async fn next_version(&self) -> u64 {
        if let Some(cluster) = &self.cluster
            && let Some(version) = cluster.next_version().await
        {
            self.versions.observe_clock(version);
            return version;
        }
        self.versions.next_version()
    }

    /// Records changes: every answer built from what changed stops being
    /// served here at once, and on every other instance before this returns
    /// (when Redis is there).
    pub async fn announce(&self, changes: &[Change]) {
        for change in changes {
            self.versions.apply(change);
        }
        if let Some(cluster) = &self.cluster {
            cluster.announce(changes).await;
        }
    }

    /// How many changes made by other programs were noticed.
    pub fn outside_changes(&self) -> u64 {
        self.outside.load(Ordering::Relaxed)
    }

    /// Marks every row of `tables` changed by another program, here and on
    /// every instance.
    async fn changed_outside(&self, tables: Vec<String>) {
        self.outside.fetch_add(1, Ordering::Relaxed);
        let version = self.next_version().await;
        self.announce(&Change::whole_tables(tables, version)).await;
    }

    fn every_table(&self) -> Vec<String> {
        self.versions.table_names().to_vec()
    }
}

/// Starts the watcher of writes by other programs; it runs until the
/// process ends. `tables` are the served tables (not views); `origin`
/// names this instance in PostgreSQL notifications.
pub fn watch(
    changes: &Changes,
    db: &Database,
    tables: Vec<String>,
    settings: ChangeSettings,
    origin: &str,
) {
    let Some(poll) = settings.poll else {
        return;
    };
    if let Some(postgres) = db.postgres() {
        tokio::spawn(listen_postgres(
            changes.clone(),
            postgres.clone(),
            origin.to_string(),
        ));
    } else if let Some(sqlite) = db.sqlite() {
        tokio::spawn(poll_sqlite(changes.clone(), sqlite.clone(), tables, poll));
    }
}

/// What the SQLite watcher saw last.
enum Seen {
    Nothing,
    Log(ChangeLog),
    DataVersion(i64),
}

async fn poll_sqlite(changes: Changes, db: SqliteDb, tables: Vec<String>, poll: Duration) {
    let mut seen = Seen::Nothing;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = match db.change_log(&tables).await {
            Ok(Some(log)) => Seen::Log(log),
            Ok(None) => match db.data_version().await {
                Ok(version) => Seen::DataVersion(version),
                Err(_) => continue,
            },
            Err(_) => continue,
        };
        // `None`: every table, since SQLite cannot say which changed
        let changed = match (&seen, &now) {
            (Seen::Nothing, _) => Some(Vec::new()),
            (Seen::Log(before), Seen::Log(after)) => Some(changed_outside(before, after)),
            (Seen::DataVersion(before), Seen::DataVersion(after)) if before == after => {
                Some(Vec::new())
            }
            // a move, or the log appeared or went: what happened is unknown
            _ => None,
        };
        seen = now;
        let tables = match changed {
            Some(tables) if tables.is_empty() => continue,
            Some(tables) => {
                tracing::info!(?tables, "tables changed outside brisk");
                tables
            }
            None => {
                tracing::info!(
                    "the database file changed outside brisk; every cached answer is stale \
                     (`brisk install-triggers` narrows this to the tables changed)"
                );
                changes.every_table()
            }
        };
        changes.changed_outside(tables).await;
    }
}

async fn listen_postgres(changes: Changes, db: PostgresDb, origin: String) {
    let mut first = true;
    loop {
        let mut notifications = match db.listen_for_changes().await {
            Ok(notifications) => notifications,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for outside changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !first {
            // notifications may have been lost while the connection was down
            changes.changed_outside(changes.every_table()).await;
        }
        first = false;
        while let Some((from, table)) = notifications.recv().await {
            if from == origin {
                continue;
            }
            changes.changed_outside(vec![table]).await;
        }
        tracing::warn!("the connection listening for outside changes dropped; reconnecting");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
