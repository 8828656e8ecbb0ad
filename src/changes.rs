//! Writes made behind brisk's back, noticed and turned into version changes.
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

use crate::app::AppState;
use crate::versions::Change;
use brisk_query::schema::ResourceKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "brisk_changes";

/// SQLite's change log, and the prefix of its triggers' names.
pub const SQLITE_LOG: &str = "_brisk_changes";

/// The change log's counts, per table.
pub type ChangeLog = HashMap<String, LogCounts>;

/// One table's row in the SQLite change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCounts {
    /// Rows inserted, updated or deleted, counted by the triggers.
    pub changes: i64,
    /// How many of those brisk's own writes made.
    pub by_brisk: i64,
}

/// The tables that another program changed between two reads of the log.
pub fn changed_outside(before: &ChangeLog, after: &ChangeLog) -> Vec<String> {
    let mut tables: Vec<String> = after
        .iter()
        .filter(|(table, now)| {
            let then = before.get(*table).copied().unwrap_or(LogCounts {
                changes: 0,
                by_brisk: 0,
            });
            now.changes - then.changes != now.by_brisk - then.by_brisk
        })
        .map(|(table, _)| table.clone())
        .collect();
    tables.sort();
    tables
}

/// Starts the watcher for the app's database; it runs until the process ends.
pub fn watch(state: &Arc<AppState>) {
    if state.change_poll.is_zero() {
        return;
    }
    let state = state.clone();
    if state.db.postgres().is_some() {
        tokio::spawn(listen_postgres(state));
    } else {
        tokio::spawn(poll_sqlite(state));
    }
}

/// What the SQLite watcher saw last.
enum Seen {
    Nothing,
    Log(ChangeLog),
    DataVersion(i64),
}

async fn poll_sqlite(state: Arc<AppState>) {
    let db = state.db.sqlite().expect("watch checks the backend").clone();
    let tables: Vec<String> = state
        .schema
        .resources()
        .filter(|r| r.kind == ResourceKind::Table)
        .map(|r| r.name.clone())
        .collect();
    let mut seen = Seen::Nothing;
    let mut ticker = tokio::time::interval(state.change_poll);
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
                state.versions.table_names().to_vec()
            }
        };
        state
            .stats
            .external_changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        mark_changed(&state, tables).await;
    }
}

/// Marks every row of `tables` changed, here and on every instance.
async fn mark_changed(state: &AppState, tables: Vec<String>) {
    let version = state.next_version().await;
    state.announce(&Change::whole_tables(tables, version)).await;
}

async fn listen_postgres(state: Arc<AppState>) {
    use futures_util::StreamExt;
    let db = state.db.postgres().expect("checked by watch").clone();
    let mut first = true;
    loop {
        let connected = db.dedicated_connection().await;
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "cannot open the connection that listens for outside changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (sender, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if sender.send(n).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            tracing::warn!(%error, "cannot LISTEN for outside changes; retrying");
            pump.abort();
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if !first {
            // notifications may have been lost while the connection was down
            mark_changed(&state, state.versions.table_names().to_vec()).await;
        }
        first = false;
        while let Some(notification) = notifications.recv().await {
            let payload = notification.payload();
            let (origin, table) = payload.split_once('|').unwrap_or(("", payload));
            if origin == state.instance_id {
                continue;
            }
            state
                .stats
                .external_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            mark_changed(&state, vec![table.to_string()]).await;
        }
        tracing::warn!("the connection listening for outside changes dropped; reconnecting");
        drop(client);
        pump.abort();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The SQLite script that installs (or, with `remove`, removes) the change
/// log and its triggers on `tables`. Idempotent: running it twice changes
/// nothing, and a table's counts survive a reinstall.
pub fn sqlite_trigger_sql(tables: &[String], remove: bool) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let mut sql = String::new();
    if !remove {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {SQLITE_LOG} (tbl TEXT PRIMARY KEY, \
             changes INTEGER NOT NULL DEFAULT 0, by_brisk INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;\n"
        ));
    }
    for table in tables {
        for event in ["insert", "update", "delete"] {
            let trigger = quote(&format!("{SQLITE_LOG}_{table}_{event}"));
            sql.push_str(&format!("DROP TRIGGER IF EXISTS {trigger};\n"));
            if !remove {
                sql.push_str(&format!(
                    "CREATE TRIGGER {trigger} AFTER {} ON {} BEGIN \
                     UPDATE {SQLITE_LOG} SET changes = changes + 1 WHERE tbl = {}; END;\n",
                    event.to_uppercase(),
                    quote(table),
                    literal(table),
                ));
            }
        }
        if !remove {
            sql.push_str(&format!(
                "INSERT OR IGNORE INTO {SQLITE_LOG} (tbl) VALUES ({});\n",
                literal(table)
            ));
        }
    }
    if remove {
        sql.push_str(&format!("DROP TABLE IF EXISTS {SQLITE_LOG};\n"));
    }
    sql
}

/// The SQL that installs (or, with `remove`, removes) the change triggers on
/// every table of `schema`. Idempotent: running it twice changes nothing.
pub fn postgres_trigger_sql(schema: &str, tables: &[String], remove: bool) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let function = format!("{}.brisk_notify", quote(schema));
    let mut sql = String::new();
    if !remove {
        sql.push_str(&format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $brisk$
BEGIN
  PERFORM pg_notify('{CHANNEL}', coalesce(current_setting('brisk.origin', true), '') || '|' || TG_TABLE_NAME);
  RETURN NULL;
END
$brisk$;\n"
        ));
    }
    for table in tables {
        let table = format!("{}.{}", quote(schema), quote(table));
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS brisk_changes ON {table};\n"
        ));
        if !remove {
            sql.push_str(&format!(
                "CREATE TRIGGER brisk_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n"
            ));
        }
    }
    if remove {
        sql.push_str(&format!("DROP FUNCTION IF EXISTS {function}();\n"));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, i64, i64)]) -> ChangeLog {
        pairs
            .iter()
            .map(|&(table, changes, by_brisk)| (table.to_string(), LogCounts { changes, by_brisk }))
            .collect()
    }

    #[test]
    fn only_changes_brisk_did_not_make_count_as_outside() {
        let before = counts(&[("users", 10, 4), ("orders", 3, 3), ("products", 0, 0)]);
        // users: 2 by brisk, 1 by another program; orders: 5 by brisk
        let after = counts(&[("users", 13, 6), ("orders", 8, 8), ("products", 0, 0)]);
        assert_eq!(changed_outside(&before, &after), ["users"]);
        assert!(changed_outside(&after, &after).is_empty());
        // a table new to the log counts from zero
        let later = counts(&[
            ("users", 13, 6),
            ("orders", 8, 8),
            ("products", 0, 0),
            ("tags", 1, 0),
        ]);
        assert_eq!(changed_outside(&after, &later), ["tags"]);
    }

    #[test]
    fn the_sqlite_triggers_count_every_row_change_and_install_idempotently() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE \"odd 'name\" (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
        let tables = ["users".to_string(), "odd 'name".to_string()];
        let install = sqlite_trigger_sql(&tables, false);
        db.execute_batch(&install).unwrap();
        db.execute_batch(
            "INSERT INTO users (name) VALUES ('a'), ('b'), ('c');
             UPDATE users SET name = 'x' WHERE id < 3;
             DELETE FROM users WHERE id = 3;
             INSERT INTO \"odd 'name\" DEFAULT VALUES;",
        )
        .unwrap();
        db.execute_batch(&install).unwrap(); // again: the counts stay
        let count = |table: &str| -> i64 {
            db.query_row(
                &format!("SELECT changes FROM {SQLITE_LOG} WHERE tbl = ?1"),
                [table],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(count("users"), 6);
        assert_eq!(count("odd 'name"), 1);
        let triggers = |db: &rusqlite::Connection| -> i64 {
            db.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(triggers(&db), 6);
        db.execute_batch(&sqlite_trigger_sql(&tables, true))
            .unwrap();
        assert_eq!(triggers(&db), 0);
        let log_tables: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [SQLITE_LOG],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(log_tables, 0, "removal drops the log");
    }
}
