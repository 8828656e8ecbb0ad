//! SQLite: a pool of read connections in WAL mode, each used on a blocking
//! thread, with prepared statements cached per connection; one writer; and
//! the change log that `brisk install-triggers` keeps (`_brisk_changes`),
//! through which other programs' writes reach brisk table by table.
//!
//! The pool is a few lines of our own rather than deadpool-sqlite, which
//! runs a `SELECT` on a blocking thread at every checkout to recycle the
//! connection: a second thread hop per request for nothing, since a SQLite
//! connection cannot go stale.

use super::{
    Constraint, ConstraintKind, DbError, Introspection, ReadLimits, ReadRows, RowCheck, WriteError,
    first_invisible,
};
use crate::config::DatabaseSettings;
use anyhow::Context;
use brisk_query::Sql;
use brisk_query::SqlValue;
use brisk_query::envelope::Row;
use brisk_query::rows::Exceeded;
use brisk_query::rows::{self, Cell, Rows};
use brisk_query::schema::{Column, ColumnKind, ForeignKey, Resource, ResourceKind, Writable};
use brisk_query::sql::{ReadSql, WriteSql, fetch_related, take_rows};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, params_from_iter};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a write, a ping or a watcher's read waits for a free
/// connection before it is refused (reads wait until their deadline).
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections, and one writer: SQLite takes one write at a time.
#[derive(Clone)]
pub struct SqliteDb {
    readers: Arc<Pool>,
    writer: Arc<Pool>,
    /// Whether the file holds the change log of `brisk install-triggers`,
    /// as last seen: brisk's writes then record their share of its counts.
    change_log: Arc<AtomicBool>,
}

struct Pool {
    path: PathBuf,
    writable: bool,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    statement_timeout: Duration,
}

impl SqliteDb {
    pub async fn open(path: &Path, settings: &DatabaseSettings) -> anyhow::Result<SqliteDb> {
        let path = path.to_path_buf();
        let size = settings.pool_size;
        let connections = tokio::task::spawn_blocking({
            let path = path.clone();
            move || -> anyhow::Result<Vec<Connection>> {
                if !path.exists() {
                    anyhow::bail!(
                        "{} does not exist; create the demo with `brisk load-demo --db {}` or give another file",
                        path.display(),
                        path.display()
                    );
                }
                let writer = open_connection(&path, true)?;
                writer
                    .pragma_update(None, "journal_mode", "WAL")
                    .with_context(|| format!("cannot switch {} to WAL mode", path.display()))?;
                let mut all = vec![writer];
                for _ in 0..size {
                    all.push(open_connection(&path, false)?);
                }
                Ok(all)
            }
        })
        .await??;
        let mut connections = connections.into_iter();
        let writer = connections.next().expect("opened above");
        let pool = |writable: bool, connections: Vec<Connection>| {
            Arc::new(Pool {
                path: path.clone(),
                writable,
                permits: Arc::new(Semaphore::new(connections.len())),
                idle: Mutex::new(connections),
                statement_timeout: settings.statement_timeout,
            })
        };
        let db = SqliteDb {
            readers: pool(false, connections.collect()),
            writer: pool(true, vec![writer]),
            change_log: Arc::default(),
        };
        db.change_log(&[]).await?;
        Ok(db)
    }

    async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    ) -> Result<R, DbError> {
        let stop = Stop::after(self.readers.statement_timeout);
        self.readers.run(stop, work).await?.map_err(classify)
    }
}

/// When statements on a connection must stop: past the deadline, or once
/// the request that asked for them is gone (its client hung up). SQLite can
/// only be stopped from its progress handler, which checks both.
#[derive(Clone)]
struct Stop {
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

impl Stop {
    fn after(timeout: Duration) -> Stop {
        Stop {
            deadline: Instant::now() + timeout,
            cancelled: Arc::default(),
        }
    }

    fn now(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || Instant::now() > self.deadline
    }
}

/// Cancels the work of a request that is dropped before it is done.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Why a read stopped short.
enum Failure {
    Sqlite(rusqlite::Error),
    Exceeded(Exceeded),
    /// Rendering ended past the deadline.
    Late,
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Failure {
        Failure::Sqlite(error)
    }
}

impl From<Exceeded> for Failure {
    fn from(exceeded: Exceeded) -> Failure {
        Failure::Exceeded(exceeded)
    }
}

impl Pool {
    /// Runs `work` on a pooled connection on a blocking thread. The outer
    /// error is the pool's; the inner one is SQLite's, for the caller to read.
    ///
    /// The blocking task owns the permit and gives the connection back
    /// itself, so a request dropped while it waits (a client that hung up)
    /// never loses a connection.
    async fn run<R: Send + 'static, E: From<rusqlite::Error> + Send + 'static>(
        self: &Arc<Self>,
        stop: Stop,
        work: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<Result<R, E>, DbError> {
        let wait_until = stop.deadline.min(Instant::now() + CHECKOUT_TIMEOUT);
        let permit =
            tokio::time::timeout_at(wait_until.into(), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbError::Unavailable("every SQLite connection is busy".into()))?
                .map_err(|_| DbError::Unavailable("the pool is closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let connection = pool
                .idle
                .lock()
                .expect("pool lock")
                .pop()
                .expect("a permit guarantees an idle connection");
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                connection.progress_handler(1000, Some(move || stop.now()))?;
                let result = work(&connection);
                connection.progress_handler(0, None::<fn() -> bool>)?;
                result
            }));
            match outcome {
                Ok(result) => {
                    pool.idle.lock().expect("pool lock").push(connection);
                    Ok(result)
                }
                Err(_) => {
                    // The connection may be mid-statement; open a fresh one.
                    drop(connection);
                    let fresh = open_connection(&pool.path, pool.writable).map_err(|e| {
                        DbError::Unavailable(format!("cannot reopen SQLite: {e:#}"))
                    })?;
                    pool.idle.lock().expect("pool lock").push(fresh);
                    Err(DbError::Internal("a SQLite statement panicked".into()))
                }
            }
        })
        .await
        .map_err(|e| DbError::Internal(format!("the SQLite worker failed: {e}")))?
    }
}

impl SqliteDb {
    /// Runs a read within its deadline and budget, and `finish` on the
    /// rendered rows on the same blocking thread; dropping the future (a
    /// client that hung up) stops its statements. Returns the statements
    /// run and what `finish` made.
    pub async fn read<T: Send + 'static>(
        &self,
        sql: Arc<ReadSql>,
        limits: ReadLimits,
        finish: impl FnOnce(ReadRows) -> T + Send + 'static,
    ) -> Result<(u64, T), DbError> {
        let started = Instant::now();
        let stop = Stop {
            deadline: limits.deadline,
            cancelled: Arc::default(),
        };
        let _cancel_on_drop = CancelOnDrop(stop.cancelled.clone());
        let deadline = limits.deadline;
        let read = self
            .readers
            .run(stop, move |c| -> Result<(u64, T), Failure> {
                let mut statements = 1;
                let cells = query(c, &sql.rows)?;
                let total = match &sql.count {
                    Some(count) => {
                        statements += 1;
                        let mut statement = c.prepare_cached(&count.text)?;
                        Some(statement.query_row(params(count), |r| r.get::<_, i64>(0))? as u64)
                    }
                    None => None,
                };
                let parent_missing = match (&sql.parent, cells.is_empty()) {
                    (Some(parent), true) => {
                        statements += 1;
                        !exists(c, parent)?
                    }
                    _ => false,
                };
                let mut rows_left = take_rows(limits.budget.max_rows, cells.len())?;
                let related = fetch_related(
                    &sql.embeds,
                    &sql.shape.embeds,
                    &cells,
                    &mut rows_left,
                    &mut |s| {
                        statements += 1;
                        query(c, s).map_err(Failure::from)
                    },
                )?;
                let rendering = Instant::now();
                let rows = rows::render_page(
                    &sql.shape,
                    &cells,
                    &related,
                    limits.budget.max_bytes,
                    sql.page,
                )?;
                if Instant::now() > deadline {
                    return Err(Failure::Late);
                }
                Ok((
                    statements,
                    finish(ReadRows {
                        rows,
                        total,
                        parent_missing,
                        statements,
                        db_time: rendering - started,
                        render_time: rendering.elapsed(),
                    }),
                ))
            });
        match read.await? {
            Ok(read) => Ok(read),
            Err(Failure::Sqlite(error)) => Err(classify(error)),
            Err(Failure::Exceeded(exceeded)) => Err(DbError::Exceeded(exceeded)),
            Err(Failure::Late) => Err(DbError::Timeout),
        }
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    /// The later modification time of the database file and its WAL.
    pub fn last_changed(&self) -> std::time::SystemTime {
        let path = &self.readers.path;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        [path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .max()
            .unwrap_or_else(std::time::SystemTime::now)
    }

    pub async fn introspect(&self) -> anyhow::Result<Introspection> {
        Ok(self.run(introspect).await?)
    }

    /// Runs a write's statements in one transaction on the writer. With the
    /// change log installed, the transaction also adds the row changes its
    /// statements counted in the log to the log's `by_brisk`, so that other
    /// instances tell them from changes made by other programs.
    pub async fn write(
        &self,
        sql: &WriteSql,
        check: Option<RowCheck>,
    ) -> Result<Vec<Row>, WriteError> {
        let sql = sql.clone();
        let logged = self.change_log.load(Ordering::Acquire);
        self.writer
            .run(Stop::after(self.writer.statement_timeout), move |c| {
                // IMMEDIATE: the write lock from the start, so the row read
                // for the precondition is the row written
                c.execute_batch("BEGIN IMMEDIATE")?;
                let written = (|| {
                    if let (Some(current), Some(check)) = (&sql.current, check) {
                        let cells = query(c, &current.sql)?;
                        let rows = rows::render(&current.shape, &cells, &[], usize::MAX)
                            .expect("a row has no byte budget");
                        if !check(rows.first()) {
                            return Ok(Err(WriteError::PreconditionFailed));
                        }
                    }
                    let counted_before = logged.then(|| log_count(c, &sql.table)).flatten();
                    let mut cells = Vec::with_capacity(sql.statements.len());
                    for (i, statement) in sql.statements.iter().enumerate() {
                        match query(c, statement) {
                            Ok(rows) => cells.extend(rows),
                            Err(error) => return Ok(Err(classify_write(error).at_row(i))),
                        }
                    }
                    if let Some(row) = first_invisible(&cells, sql.visible) {
                        return Ok(Err(WriteError::NotVisible(row)));
                    }
                    if let Some(before) = counted_before {
                        let after = log_count(c, &sql.table).unwrap_or(before);
                        c.prepare_cached(&format!(
                            "UPDATE {LOG} SET by_brisk = by_brisk + ?1 WHERE tbl = ?2"
                        ))?
                        .execute(rusqlite::params![after - before, sql.table])?;
                    }
                    Ok(Ok(cells))
                })();
                match written {
                    Ok(Ok(cells)) => c.execute_batch("COMMIT").map(|()| {
                        Ok(rows::render(&sql.shape, &cells, &[], usize::MAX)
                            .expect("a write's rows have no byte budget"))
                    }),
                    outcome => {
                        let _ = c.execute_batch("ROLLBACK");
                        outcome.map(|refused| refused.map(|_| Vec::new()))
                    }
                }
            })
            .await?
            .map_err(classify_write)?
    }

    /// Installs (or, with `remove`, removes) the change log and its
    /// triggers on `tables`, in one transaction on the writer.
    pub async fn install_triggers(&self, tables: &[String], remove: bool) -> Result<(), DbError> {
        let script = format!("BEGIN IMMEDIATE;\n{}COMMIT;", trigger_sql(tables, remove));
        self.writer
            .run(Stop::after(self.writer.statement_timeout), move |c| {
                let installed = c.execute_batch(&script);
                if installed.is_err() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                installed
            })
            .await?
            .map_err(classify)
    }

    /// SQLite's count of commits by other connections, as the writer sees
    /// it: it moves when anything but brisk's own writer changes the file.
    pub async fn data_version(&self) -> Result<i64, DbError> {
        self.writer
            .run(Stop::after(CHECKOUT_TIMEOUT), |c| {
                c.query_row("PRAGMA data_version", [], |r| r.get(0))
            })
            .await?
            .map_err(classify)
    }

    /// The change log's counts for `tables`, or `None` when the file has no
    /// log or some of `tables` lack a row or their three triggers in it (a
    /// table created or recreated after `brisk install-triggers`).
    pub async fn change_log(&self, tables: &[String]) -> Result<Option<ChangeLog>, DbError> {
        let read = self
            .writer
            .run(Stop::after(CHECKOUT_TIMEOUT), |c| {
                let read = || -> Result<ChangeLog, rusqlite::Error> {
                    let mut statement = c.prepare_cached(&format!(
                        "SELECT c.tbl, c.changes, c.by_brisk,
                                (SELECT count(*) FROM sqlite_schema s
                                 WHERE s.type = 'trigger' AND s.tbl_name = c.tbl
                                   AND s.name GLOB '{LOG}_*')
                         FROM {LOG} c"
                    ))?;
                    let rows = statement.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            LogCounts {
                                changes: r.get(1)?,
                                by_brisk: r.get(2)?,
                            },
                            r.get::<_, i64>(3)?,
                        ))
                    })?;
                    let mut log = ChangeLog::new();
                    for row in rows {
                        let (table, counts, triggers) = row?;
                        if triggers == 3 {
                            log.insert(table, counts);
                        }
                    }
                    Ok(log)
                };
                match read() {
                    Ok(log) => Ok(Some(log)),
                    // at preparing, or at running a statement prepared before the log went
                    Err(error) if error.to_string().contains("no such table") => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .await?
            .map_err(classify)?;
        self.change_log.store(read.is_some(), Ordering::Release);
        Ok(read.filter(|log| tables.iter().all(|t| log.contains_key(t))))
    }
}

/// The log's count of row changes to `table`; `None` without a row for it.
fn log_count(c: &Connection, table: &str) -> Option<i64> {
    c.prepare_cached(&format!("SELECT changes FROM {LOG} WHERE tbl = ?1"))
        .and_then(|mut s| s.query_row([table], |r| r.get(0)))
        .ok()
}

fn open_connection(path: &Path, writable: bool) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    connection
        .execute_batch(if writable {
            "PRAGMA foreign_keys = ON;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;"
        } else {
            "PRAGMA query_only = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -32768;
             PRAGMA mmap_size = 268435456;
             PRAGMA temp_store = MEMORY;"
        })
        .with_context(|| format!("cannot configure connection to {}", path.display()))?;
    connection.set_prepared_statement_cache_capacity(256);
    // Plans that do not depend on bound values. Without this, SQLite built
    // with STAT4 (as rusqlite's bundled one is) over an ANALYZEd file
    // re-plans a cached statement at every run whose parameters could
    // change the plan: measured, two thirds of sqlite3_step on Q1.
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .with_context(|| format!("cannot configure connection to {}", path.display()))?;
    Ok(connection)
}

fn params(sql: &Sql) -> impl rusqlite::Params + '_ {
    params_from_iter(sql.params.iter().map(to_sqlite))
}

fn to_sqlite(value: &SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Decimal(d) => d
            .parse()
            .map_or_else(|_| Value::Text(d.clone()), Value::Real),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Bool(b) => Value::Integer(i64::from(*b)),
        SqlValue::Bytes(bytes) => Value::Blob(bytes.clone()),
    }
}

/// Runs a statement and reads its rows as cells.
fn query(c: &Connection, sql: &Sql) -> Result<Rows, rusqlite::Error> {
    let mut statement = c.prepare_cached(&sql.text)?;
    let width = statement.column_count();
    let mut result = statement.query(params(sql))?;
    let mut rows = Vec::new();
    while let Some(row) = result.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Real(f) => Cell::Float(f),
                ValueRef::Text(t) => Cell::Text(text(t)),
                ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
            });
        }
        rows.push(cells);
    }
    Ok(rows)
}

/// SQLite text as a string: checked as UTF-8 (fast), and only text that is
/// not has its bad bytes replaced.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn exists(c: &Connection, sql: &Sql) -> Result<bool, rusqlite::Error> {
    c.prepare_cached(&sql.text)?.exists(params(sql))
}

/// A failed write: constraint failures named, the rest as for reads.
fn classify_write(error: rusqlite::Error) -> WriteError {
    use rusqlite::ffi;
    let (code, message) = match &error {
        rusqlite::Error::SqliteFailure(e, message) => {
            (e.extended_code, message.clone().unwrap_or_default())
        }
        _ => return WriteError::Db(classify(error)),
    };
    // "UNIQUE constraint failed: users.email, users.name" → ["email", "name"]
    let columns = || -> Vec<String> {
        message
            .split_once(": ")
            .map(|(_, list)| {
                list.split(", ")
                    .map(|c| c.rsplit('.').next().unwrap_or(c).to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ConstraintKind::Unique,
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
        ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
        ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
        _ => return WriteError::Db(classify(error)),
    };
    let columns = match kind {
        ConstraintKind::Check | ConstraintKind::ForeignKey => Vec::new(),
        _ => columns(),
    };
    let constraint = match kind {
        ConstraintKind::Check => message.split_once(": ").map(|(_, name)| name.to_string()),
        _ => None,
    };
    WriteError::Constraint(Constraint {
        kind,
        columns,
        constraint,
        row: 0,
        value: None,
    })
}

fn classify(error: rusqlite::Error) -> DbError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => DbError::Timeout,
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            DbError::Unavailable(error.to_string())
        }
        _ => DbError::Internal(error.to_string()),
    }
}

/// Tables and views from `sqlite_schema`, columns from `table_info`, keys
/// from `foreign_key_list` (single-column keys only).
fn introspect(c: &Connection) -> Result<Introspection, rusqlite::Error> {
    // FTS5's shadow tables (`docs_data`, `docs_idx`, ...) are its own
    // storage, not the user's: only the FTS5 table itself is served
    let tables: Vec<(String, String, bool)> = c
        .prepare(
            "SELECT s.name, s.type, coalesce(s.sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%', 0)
             FROM sqlite_schema s
             WHERE s.type IN ('table', 'view') AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND s.name <> ?1
               AND s.name NOT IN (SELECT name FROM pragma_table_list WHERE type = 'shadow')
             ORDER BY s.name",
        )?
        .query_map([LOG], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut resources = Vec::new();
    let mut foreign_keys = Vec::new();
    for (name, kind, full_text) in tables {
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        let key_size: i64 = c.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0",
            [&name],
            |r| r.get(0),
        )?;
        let columns: Vec<Column> = c
            .prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")?
            .query_map([&name], |r| {
                let column: String = r.get(0)?;
                let declared: String = r.get(1)?;
                let not_null: bool = r.get(2)?;
                let has_default: bool = r.get(3)?;
                let pk: i64 = r.get(4)?;
                Ok((column, declared, not_null, has_default, pk))
            })?
            .map(|row| {
                let (column, declared, not_null, has_default, pk) = row?;
                if pk > 0 {
                    primary_key.push((pk, column.clone()));
                }
                // FTS5 columns are untyped text
                let kind = if full_text {
                    ColumnKind::Text
                } else {
                    kind_of(&declared)
                };
                // only a key of one INTEGER column is the rowid, which SQLite fills
                let rowid_alias =
                    key_size == 1 && pk == 1 && declared.eq_ignore_ascii_case("INTEGER");
                let nullable = !not_null && pk == 0;
                Ok(Column {
                    nullable,
                    has_default: has_default || rowid_alias,
                    searchable: full_text,
                    ..Column::new(column, kind, declared)
                })
            })
            .collect::<Result<_, rusqlite::Error>>()?;
        primary_key.sort();
        let keys: Vec<(i64, String, String, Option<String>)> = c
            .prepare("SELECT id, \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")?
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (id, from, table, to) in &keys {
            if keys.iter().filter(|k| k.0 == *id).count() != 1 {
                continue;
            }
            let referenced_column = match to {
                Some(to) => to.clone(),
                None => match primary_key_of(c, table)?.as_slice() {
                    [only] => only.clone(),
                    _ => continue,
                },
            };
            foreign_keys.push(ForeignKey {
                table: name.clone(),
                column: from.clone(),
                referenced_table: table.clone(),
                referenced_column,
            });
        }
        let view = kind == "view";
        resources.push(Resource {
            name,
            kind: if view {
                ResourceKind::View
            } else {
                ResourceKind::Table
            },
            columns,
            primary_key: primary_key.into_iter().map(|(_, c)| c).collect(),
            relations: Vec::new(),
            insertable: true,
            // SQLite writes views only through INSTEAD OF triggers, which
            // brisk does not read
            writable: if view { Writable::NONE } else { Writable::ALL },
        });
    }
    Ok(Introspection {
        resources,
        foreign_keys,
    })
}

fn primary_key_of(c: &Connection, table: &str) -> Result<Vec<String>, rusqlite::Error> {
    c.prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?
        .query_map([table], |r| r.get(0))?
        .collect()
}

/// SQLite's affinity rules (section 3.1 of its datatype page), refined by
/// the names that imply a type a client can check.
fn kind_of(declared: &str) -> ColumnKind {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        ColumnKind::Integer
    } else if upper.contains("BOOL") {
        ColumnKind::Boolean
    } else if upper.contains("CHAR")
        || upper.contains("CLOB")
        || upper.contains("TEXT")
        || upper.contains("JSON")
    {
        ColumnKind::Text
    } else if upper.contains("BLOB") {
        ColumnKind::Blob
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        ColumnKind::Real
    } else if upper.contains("DEC") || upper.contains("NUMERIC") {
        ColumnKind::Numeric
    } else if upper == "DATE" {
        ColumnKind::Date
    } else if upper.contains("DATE") || upper.contains("TIME") {
        ColumnKind::Timestamp
    } else if upper.contains("UUID") {
        ColumnKind::Uuid
    } else {
        ColumnKind::Other
    }
}

/// SQLite's change log, and the prefix of its triggers' names.
const LOG: &str = "_brisk_changes";

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

/// The SQLite script that installs (or, with `remove`, removes) the change
/// log and its triggers on `tables`. Idempotent: running it twice changes
/// nothing, and a table's counts survive a reinstall.
fn trigger_sql(tables: &[String], remove: bool) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let mut sql = String::new();
    if !remove {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {LOG} (tbl TEXT PRIMARY KEY, \
             changes INTEGER NOT NULL DEFAULT 0, by_brisk INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;\n"
        ));
    }
    for table in tables {
        for event in ["insert", "update", "delete"] {
            let trigger = quote(&format!("{LOG}_{table}_{event}"));
            sql.push_str(&format!("DROP TRIGGER IF EXISTS {trigger};\n"));
            if !remove {
                sql.push_str(&format!(
                    "CREATE TRIGGER {trigger} AFTER {} ON {} BEGIN \
                     UPDATE {LOG} SET changes = changes + 1 WHERE tbl = {}; END;\n",
                    event.to_uppercase(),
                    quote(table),
                    literal(table),
                ));
            }
        }
        if !remove {
            sql.push_str(&format!(
                "INSERT OR IGNORE INTO {LOG} (tbl) VALUES ({});\n",
                literal(table)
            ));
        }
    }
    if remove {
        sql.push_str(&format!("DROP TABLE IF EXISTS {LOG};\n"));
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
        let install = trigger_sql(&tables, false);
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
                &format!("SELECT changes FROM {LOG} WHERE tbl = ?1"),
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
        db.execute_batch(&trigger_sql(&tables, true)).unwrap();
        assert_eq!(triggers(&db), 0);
        let log_tables: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [LOG],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(log_tables, 0, "removal drops the log");
    }
}
