//! The databases: connect, introspect, run the statements the query crate
//! rendered and hand back the rows rendered as JSON (by
//! `brisk_query::rows`), and keep the change log and triggers that tell
//! brisk about other programs' writes. Nothing here decides what to query;
//! [`crate::read`] and [`crate::write`] do. This layer imports nothing of
//! the server but its own settings.

mod postgres;
mod sqlite;

use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::encoding::LARGE_BODY;
use brisk_query::Dialect;
use brisk_query::envelope::Row;
use brisk_query::rows::{Budget, Cell, Exceeded, Rendered};
use brisk_query::schema::{ForeignKey, Resource};
use brisk_query::sql::{ReadSql, WriteSql};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use postgres::{ChangeNotifications, PostgresDb};
pub use sqlite::{ChangeLog, LogCounts, SqliteDb, changed_outside};

/// A connection pool to one database, counting the statements it runs.
#[derive(Clone)]
pub struct Database {
    backend: Backend,
    statements: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteDb),
    Postgres(PostgresDb),
}

/// What the database reports about its tables, before naming relations.
pub struct Introspection {
    pub resources: Vec<Resource>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// The rows of a read, rendered, and what else the request asked for.
#[derive(Debug)]
pub struct ReadRows {
    pub rows: Rendered,
    pub total: Option<u64>,
    /// A nested route whose parent row does not exist.
    pub parent_missing: bool,
    /// Statements run: the rows, the count, the parent check, one per embed level.
    pub statements: u64,
    /// Waiting for a connection and running the statements.
    pub db_time: Duration,
    /// Turning the cells into JSON.
    pub render_time: Duration,
}

/// What bounds one read: its deadline (past it, its statements are
/// cancelled) and its budget (rows and bytes; past it, it is refused).
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub deadline: Instant,
    pub budget: Budget,
}

/// A write's precondition, checked in its transaction against the target
/// row as stored (as a GET renders it; `None` when there is none): the
/// write runs only if it holds, whatever other instances or Redis do.
pub type RowCheck = Box<dyn FnOnce(Option<&Row>) -> bool + Send>;

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The [`RowCheck`] did not hold; nothing was written.
    #[error("the precondition does not hold")]
    PreconditionFailed,
    #[error("constraint failed: {0:?}")]
    Constraint(Constraint),
    /// Row `0` (counted from 0) as written would not satisfy the caller's
    /// row rule; nothing was written.
    #[error("row {0} would be outside the row rule")]
    NotVisible(usize),
}

impl WriteError {
    /// Says which row of the write this error came from.
    pub fn at_row(self, row: usize) -> WriteError {
        match self {
            WriteError::Constraint(constraint) => {
                WriteError::Constraint(Constraint { row, ..constraint })
            }
            other => other,
        }
    }
}

/// The first written row that does not satisfy the row rule, when the
/// statements carry the rule's check in `cell` (see `WriteSql::visible`).
pub fn first_invisible(rows: &[Vec<Cell>], cell: Option<usize>) -> Option<usize> {
    let cell = cell?;
    rows.iter()
        .position(|row| !matches!(row.get(cell), Some(Cell::Bool(true) | Cell::Int(1))))
}

/// A constraint the database enforced, with what it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// The columns at fault, when the database says.
    pub columns: Vec<String>,
    /// The constraint's name (CHECK), or the referencing table (a delete of
    /// a row still referenced).
    pub constraint: Option<String>,
    /// Which of the write's rows broke it (counted from 0).
    pub row: usize,
    /// The value the database could not read as its column's type
    /// (`BadValue`), so the answer can name the field that held it.
    pub value: Option<String>,
}

/// The value a PostgreSQL data exception quotes: at its end (`invalid
/// input syntax for type interval: "soon"` → `soon`), or before saying it
/// is out of range (`value "3000000000" is out of range for type integer`).
pub fn refused_value(message: &str) -> Option<&str> {
    let at_end = message
        .rsplit_once(": \"")
        .and_then(|(_, q)| q.strip_suffix('"'));
    at_end.or_else(|| {
        let (before, _) = message.split_once("\" is out of range")?;
        before.rsplit_once('"').map(|(_, value)| value)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    /// A value that references no row.
    ForeignKey,
    /// A deleted row that other rows still reference.
    StillReferenced,
    NotNull,
    Check,
    /// A value the database could not store in its column.
    BadValue,
}

/// Why a statement failed, in the terms a response needs.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (pool exhausted, database down).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The request's deadline (or `database.statement_timeout_ms`) passed.
    #[error("statement timed out")]
    Timeout,
    /// The answer would pass its budget of rows or bytes.
    #[error("the answer exceeds its budget: {0:?}")]
    Exceeded(Exceeded),
    /// The database refused a value the plan could not check (an exotic type).
    #[error("value rejected: {0}")]
    BadValue(String),
    /// The database is in a state that cannot answer this until someone
    /// acts (a materialized view never populated); says what to run.
    #[error("not ready: {0}")]
    NotReady(String),
    /// Anything else: a bug or a schema change under our feet.
    #[error("database error: {0}")]
    Internal(String),
}

impl Database {
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Database> {
        let backend = match &settings.url {
            DatabaseUrl::Sqlite(path) => Backend::Sqlite(SqliteDb::open(path, settings).await?),
            DatabaseUrl::Postgres(url) => {
                Backend::Postgres(PostgresDb::connect(url, settings).await?)
            }
        };
        Ok(Database {
            backend,
            statements: Arc::default(),
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Tables, views, keys and relations (of `schema` on PostgreSQL).
    pub async fn introspect(&self, schemas: &[String]) -> anyhow::Result<Introspection> {
        match &self.backend {
            Backend::Sqlite(db) => db.introspect().await,
            Backend::Postgres(db) => db.introspect(schemas).await,
        }
    }

    /// Installs (or, with `remove`, removes) the triggers through which
    /// other programs' writes to `tables` reach brisk: NOTIFY on PostgreSQL
    /// (in each of `schemas`), a change log on SQLite. Idempotent.
    pub async fn install_triggers(
        &self,
        schemas: &[String],
        tables: &[String],
        remove: bool,
    ) -> Result<(), DbError> {
        match &self.backend {
            Backend::Sqlite(db) => db.install_triggers(tables, remove).await,
            Backend::Postgres(db) => db.install_triggers(schemas, tables, remove).await,
        }
    }

    /// An upper bound of the time the data last changed, before brisk saw
    /// any change itself: the SQLite file's (or its WAL's) modification time,
    /// or now for PostgreSQL, which does not record it.
    pub async fn last_changed(&self) -> SystemTime {
        match &self.backend {
            Backend::Sqlite(db) => db.last_changed(),
            Backend::Postgres(_) => SystemTime::now(),
        }
    }

    /// Runs a read: the rows, the count if asked, the parent check when
    /// there are no rows, one statement per embed level; renders the rows
    /// and hands them to `finish` (the envelope, compression) on the thread
    /// that rendered them: on SQLite the read's one blocking thread, so a
    /// request crosses threads once; on PostgreSQL the async worker, or one
    /// blocking thread for a body over [`LARGE_BODY`]. Bounded by `limits`;
    /// dropping the future cancels the statements.
    pub async fn read<T: Send + 'static>(
        &self,
        sql: Arc<ReadSql>,
        limits: ReadLimits,
        finish: impl FnOnce(ReadRows) -> T + Send + 'static,
    ) -> Result<T, DbError> {
        let (statements, finished) = match &self.backend {
            Backend::Sqlite(db) => db.read(sql, limits, finish).await?,
            Backend::Postgres(db) => {
                let rows = db.read(&sql, limits).await?;
                let statements = rows.statements;
                let finished = if rows.rows.body.len() > LARGE_BODY {
                    tokio::task::spawn_blocking(move || finish(rows))
                        .await
                        .map_err(|e| DbError::Internal(format!("rendering failed: {e}")))?
                } else {
                    finish(rows)
                };
                (statements, finished)
            }
        };
        self.statements.fetch_add(statements, Ordering::Relaxed);
        Ok(finished)
    }

    /// Runs a write's statements in one transaction, after `check` held
    /// for the target row; each returns the row it wrote (rendered as JSON,
    /// with its key), or nothing if no row matched. `origin` names the
    /// instance in PostgreSQL change notifications.
    pub async fn write(
        &self,
        sql: &WriteSql,
        origin: &str,
        check: Option<RowCheck>,
    ) -> Result<Vec<Row>, WriteError> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(sql, check).await,
            Backend::Postgres(db) => db.write(sql, origin, check).await,
        }
    }

    pub fn sqlite(&self) -> Option<&SqliteDb> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db),
            Backend::Postgres(_) => None,
        }
    }

    pub fn postgres(&self) -> Option<&PostgresDb> {
        match &self.backend {
            Backend::Postgres(db) => Some(db),
            Backend::Sqlite(_) => None,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        match &self.backend {
            Backend::Sqlite(db) => db.ping().await,
            Backend::Postgres(db) => db.ping().await,
        }
    }

    /// Read statements run so far (tests count them: a cache hit runs none).
    pub fn statements_run(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
}
