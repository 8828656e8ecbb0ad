//! Writes made behind brisk's back, noticed and turned into version changes.
//!
//! - SQLite: `PRAGMA data_version` on brisk's own writer connection moves
//!   when any other connection commits to the file, and never for brisk's
//!   own commits. It is polled every `changes.poll_ms`; a move marks every
//!   table changed (SQLite does not say which).
//! - PostgreSQL: statement-level triggers that `brisk install-triggers`
//!   puts on every served table send `NOTIFY brisk_changes, '<origin>|<table>'`
//!   at commit. brisk LISTENs on a connection of its own and marks that table
//!   changed; notifications of its own writes (origin = this instance) are
//!   skipped, since those were announced precisely already. After the
//!   listening connection drops, every table is marked changed once it is
//!   back, since notifications may have been missed.

use crate::app::AppState;
use crate::versions::Change;
use std::sync::Arc;
use std::time::Duration;

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "brisk_changes";

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

async fn poll_sqlite(state: Arc<AppState>) {
    let mut seen: Option<i64> = None;
    let mut ticker = tokio::time::interval(state.change_poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(Ok(version)) = state.db.data_version().await else {
            continue;
        };
        if seen.is_some_and(|before| before != version) {
            tracing::info!("the database file changed outside brisk; every cached answer is stale");
            state
                .stats
                .external_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let changes = state.versions.change_everything(state.next_version().await);
            state.publish(&changes).await;
        }
        seen = Some(version);
    }
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
            let changes = state.versions.change_everything(state.next_version().await);
            state.publish(&changes).await;
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
            let change = Change {
                table: table.to_string(),
                version: state.next_version().await,
                rows: None,
            };
            state.versions.apply(&change);
            state.publish(std::slice::from_ref(&change)).await;
        }
        tracing::warn!("the connection listening for outside changes dropped; reconnecting");
        drop(client);
        pump.abort();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The SQL that installs (or, with `remove`, removes) the change triggers on
/// every table of `schema`. Idempotent: running it twice changes nothing.
pub fn trigger_sql(schema: &str, tables: &[String], remove: bool) -> String {
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
