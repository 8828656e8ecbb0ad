//! The databases: connect, introspect, and run the statements the query
//! crate rendered, returning rows as the JSON text the database built.
//! Nothing here decides what to query; [`crate::read`] does.

mod postgres;
mod sqlite;

use crate::config::{DatabaseUrl, Settings};
use brisk_query::Dialect;
use brisk_query::envelope::Row;
use brisk_query::schema::{ForeignKey, Resource};
use brisk_query::sql::{CollectionSql, SingleSql};
use std::time::Duration;

pub use postgres::PostgresDb;
pub use sqlite::SqliteDb;

/// A connection pool to one database.
#[derive(Clone)]
pub enum Database {
    Sqlite(SqliteDb),
    Postgres(PostgresDb),
}

/// What the database reports about its tables, before naming relations.
pub struct Introspection {
    pub resources: Vec<Resource>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// The rows of a page, and what else the request asked for.
#[derive(Debug)]
pub struct CollectionRows {
    pub rows: Vec<Row>,
    pub total: Option<u64>,
    /// A nested route whose parent row does not exist.
    pub parent_missing: bool,
    pub db_time: Duration,
}

#[derive(Debug)]
pub struct SingleRow {
    /// The row as a JSON object, if there is one.
    pub json: Option<String>,
    /// A nested route whose parent row does not exist.
    pub parent_missing: bool,
    pub db_time: Duration,
}

/// Why a statement failed, in the terms a response needs.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (pool exhausted, database down).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement ran past `database.statement_timeout_ms`.
    #[error("statement timed out")]
    Timeout,
    /// The database refused a value the plan could not check (an exotic type).
    #[error("value rejected: {0}")]
    BadValue(String),
    /// Anything else: a bug or a schema change under our feet.
    #[error("database error: {0}")]
    Internal(String),
}

impl Database {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Database> {
        Ok(match &settings.database {
            DatabaseUrl::Sqlite(path) => Database::Sqlite(SqliteDb::open(path, settings).await?),
            DatabaseUrl::Postgres(url) => {
                Database::Postgres(PostgresDb::connect(url, settings).await?)
            }
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(_) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn introspect(&self, schema: &str) -> anyhow::Result<Introspection> {
        match self {
            Database::Sqlite(db) => db.introspect().await,
            Database::Postgres(db) => db.introspect(schema).await,
        }
    }

    /// Runs a page query (and its count, and the parent check when the page
    /// is empty).
    pub async fn collection(&self, sql: &CollectionSql) -> Result<CollectionRows, DbError> {
        match self {
            Database::Sqlite(db) => db.collection(sql).await,
            Database::Postgres(db) => db.collection(sql).await,
        }
    }

    pub async fn single(&self, sql: &SingleSql) -> Result<SingleRow, DbError> {
        match self {
            Database::Sqlite(db) => db.single(sql).await,
            Database::Postgres(db) => db.single(sql).await,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite(db) => db.ping().await,
            Database::Postgres(db) => db.ping().await,
        }
    }
}
