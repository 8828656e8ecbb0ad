//! PostgreSQL through a deadpool-postgres pool, with statements prepared
//! once per connection. Every parameter is sent as text and cast by the SQL
//! to its column's type, so one binding path serves every column type. The
//! change triggers of `brisk install-triggers` NOTIFY brisk, which LISTENs
//! on a connection of its own.

use super::{
    Constraint, ConstraintKind, DbError, Introspection, ReadLimits, ReadRows, RowCheck, WriteError,
    first_invisible,
};
use crate::config::DatabaseSettings;
use anyhow::Context;
use brisk_query::Sql;
use brisk_query::envelope::Row;
use brisk_query::rows::{self, Budget, Cell, EmbedShape, Related, Rows};
use brisk_query::schema::{
    Column, ColumnKind, ForeignKey, Resource, ResourceKind, Writable, resource_name, table_of,
};
use brisk_query::sql::{EmbedQuery, ReadSql, WriteSql, take_rows};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Statement};

/// Prepared statements kept per connection before the cache is emptied, so
/// that clients asking for ever new shapes cannot grow it without bound.
const STATEMENT_CACHE_LIMIT: usize = 512;

#[derive(Clone)]
pub struct PostgresDb {
    pool: Pool,
    config: Arc<tokio_postgres::Config>,
    /// The first schema served, whose tables are named without it.
    default_schema: Arc<str>,
}

impl PostgresDb {
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> anyhow::Result<PostgresDb> {
        let mut config = tokio_postgres::Config::from_str(url)
            .with_context(|| format!("'{}' is not a valid PostgreSQL URL", settings.url))?;
        config.application_name("brisk");
        config.connect_timeout(Duration::from_secs(5));
        // Statements name the first schema's tables unqualified (the others'
        // as "schema"."table"): pinning the search path to it makes them mean
        // that schema's tables, whatever the login role's own search_path
        // (pg_catalog is always searched first).
        config.options(format!(
            "-c statement_timeout={} -c TimeZone=UTC -c search_path={}",
            settings.statement_timeout.as_millis(),
            option_value(&quoted_ident(&settings.schemas[0]))
        ));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .context("cannot build the PostgreSQL pool")?;
        let db = PostgresDb {
            pool,
            config: Arc::new(config),
            default_schema: settings.schemas[0].as_str().into(),
        };
        // one connection of our own first: the pool's errors hide the server's words
        match db.config.connect(NoTls).await {
            Ok((client, connection)) => {
                drop(client);
                let _ = connection.await;
            }
            Err(error) => anyhow::bail!(
                "cannot connect to {}: {}",
                settings.url,
                connect_problem(&error)
            ),
        }
        db.ping()
            .await
            .with_context(|| format!("cannot connect to {}", settings.url))?;
        Ok(db)
    }

    async fn client(&self) -> Result<Object, DbError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        if client.statement_cache.size() > STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        Ok(client)
    }

    /// Runs a read within its deadline and budget. Past the deadline, or
    /// when the future is dropped (a client that hung up), the statement
    /// running is cancelled on the server, so the connection is free again.
    pub async fn read(&self, sql: &ReadSql, limits: ReadLimits) -> Result<ReadRows, DbError> {
        tokio::time::timeout_at(limits.deadline.into(), self.read_rows(sql, limits.budget))
            .await
            .map_err(|_| DbError::Timeout)?
    }

    async fn read_rows(&self, sql: &ReadSql, budget: Budget) -> Result<ReadRows, DbError> {
        let client = CancelOnDrop::lend(self.client().await?);
        let started = Instant::now();
        let statements = AtomicU64::new(1);
        let (cells, total) = match &sql.count {
            // Both statements go out on one connection without waiting for
            // each other: one round trip.
            Some(count) => {
                statements.fetch_add(1, Ordering::Relaxed);
                let (cells, total) = tokio::try_join!(fetch(&client, &sql.rows), async {
                    let statement = prepare(&client, count).await?;
                    let params = texts(count);
                    let row = client
                        .query_one(&statement, &refs(&params))
                        .await
                        .map_err(classify)?;
                    row.try_get::<_, i64>(0).map_err(classify)
                })?;
                (cells, Some(total as u64))
            }
            None => (fetch(&client, &sql.rows).await?, None),
        };
        let parent_missing = match (&sql.parent, cells.is_empty()) {
            (Some(parent), true) => {
                statements.fetch_add(1, Ordering::Relaxed);
                !exists(&client, parent).await?
            }
            _ => false,
        };
        let rows_left =
            Mutex::new(take_rows(budget.max_rows, cells.len()).map_err(DbError::Exceeded)?);
        let related = related(
            &client,
            &sql.embeds,
            &sql.shape.embeds,
            &cells,
            &Fetching {
                statements: &statements,
                rows_left: &rows_left,
            },
        )
        .await?;
        client.done();
        let db_time = started.elapsed();
        let rendering = Instant::now();
        let rows = rows::render_page(&sql.shape, &cells, &related, budget.max_bytes, sql.page)
            .map_err(DbError::Exceeded)?;
        Ok(ReadRows {
            rows,
            total,
            parent_missing,
            statements: statements.into_inner(),
            db_time,
            render_time: rendering.elapsed(),
        })
    }

    /// Runs a write's statements in one transaction.
    pub async fn write(
        &self,
        sql: &WriteSql,
        origin: &str,
        check: Option<RowCheck>,
    ) -> Result<Vec<Row>, WriteError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(classify)?;
        // names this instance in the notifications of `brisk install-triggers`
        let origin_statement = transaction
            .prepare_typed_cached("SELECT set_config('brisk.origin', $1, true)", &[Type::TEXT])
            .await
            .map_err(classify)?;
        transaction
            .execute(&origin_statement, &[&origin])
            .await
            .map_err(classify)?;
        if let (Some(current), Some(check)) = (&sql.current, check) {
            // FOR UPDATE: the row stays as read until this transaction ends
            let types = vec![Type::TEXT; current.sql.params.len()];
            let prepared = transaction
                .prepare_typed_cached(&current.sql.text, &types)
                .await
                .map_err(classify)?;
            let params = texts(&current.sql);
            let found = transaction
                .query_opt(&prepared, &refs(&params))
                .await
                .map_err(classify)?;
            let cells: Vec<Vec<Cell>> = match found {
                Some(row) => vec![decode(&row).map_err(classify)?],
                None => Vec::new(),
            };
            let rendered = rows::render(&current.shape, &cells, &[], usize::MAX)
                .expect("a row has no byte budget");
            if !check(rendered.first()) {
                return Err(WriteError::PreconditionFailed);
            }
        }
        let mut rows = Vec::with_capacity(sql.statements.len());
        for (i, statement) in sql.statements.iter().enumerate() {
            let types = vec![Type::TEXT; statement.params.len()];
            let prepared = transaction
                .prepare_typed_cached(&statement.text, &types)
                .await
                .map_err(classify_write)?;
            let params = texts(statement);
            let row = transaction
                .query_opt(&prepared, &refs(&params))
                .await
                .map_err(|e| classify_write(e).at_row(i))?;
            if let Some(row) = row {
                rows.push(decode(&row).map_err(classify)?);
            }
        }
        if let Some(row) = first_invisible(&rows, sql.visible) {
            // dropping the transaction rolls it back
            return Err(WriteError::NotVisible(row));
        }
        transaction.commit().await.map_err(classify_write)?;
        Ok(rows::render(&sql.shape, &rows, &[], usize::MAX)
            .expect("a write's rows have no byte budget"))
    }

    /// Listens, on a connection of its own, for the notifications of the
    /// change triggers (`brisk install-triggers`), until it drops.
    pub async fn listen_for_changes(&self) -> Result<ChangeNotifications, tokio_postgres::Error> {
        use futures_util::StreamExt;
        let (client, mut connection) = self.config.connect(NoTls).await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let default_schema = self.default_schema.clone();
        let pump = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                        let (origin, table) = notified(notification.payload(), &default_schema);
                        if sender.send((origin, table)).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            pump.abort();
            return Err(error);
        }
        Ok(ChangeNotifications {
            _client: client,
            receiver,
            pump,
        })
    }

    /// Installs (or, with `remove`, removes) the change triggers on the
    /// tables named `tables` (resource names) of the served `schemas`, in
    /// one transaction.
    pub async fn install_triggers(
        &self,
        schemas: &[String],
        tables: &[String],
        remove: bool,
    ) -> Result<(), DbError> {
        let client = self.client().await?;
        let mut script = String::from("BEGIN;\n");
        for schema in schemas {
            let own: Vec<&str> = tables
                .iter()
                .filter_map(|name| match table_of(name) {
                    (Some(of), table) if of == schema => Some(table),
                    (None, table) if *schema == schemas[0] => Some(table),
                    _ => None,
                })
                .collect();
            script.push_str(&trigger_sql(schema, &own, remove));
        }
        script.push_str("COMMIT;");
        client.batch_execute(&script).await.map_err(classify)
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(classify)?;
        Ok(())
    }

    pub async fn introspect(&self, schemas: &[String]) -> anyhow::Result<Introspection> {
        let client = self.client().await?;
        introspect(&client, schemas).await
    }
}

/// The NOTIFY channel the change triggers use.
const CHANNEL: &str = "brisk_changes";

/// Notifications of the change triggers: (origin, table) pairs, where the
/// origin names the brisk instance that wrote, if any.
pub struct ChangeNotifications {
    /// The listening session lives as long as this.
    _client: tokio_postgres::Client,
    receiver: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    pump: tokio::task::JoinHandle<()>,
}

impl ChangeNotifications {
    /// The next notification; `None` once the connection has dropped.
    pub async fn recv(&mut self) -> Option<(String, String)> {
        self.receiver.recv().await
    }
}

impl Drop for ChangeNotifications {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

async fn prepare(client: &Object, sql: &Sql) -> Result<Statement, DbError> {
    let types = vec![Type::TEXT; sql.params.len()];
    client
        .prepare_typed_cached(&sql.text, &types)
        .await
        .map_err(classify)
}

fn texts(sql: &Sql) -> Vec<Option<String>> {
    sql.params.iter().map(|v| v.as_text()).collect()
}

fn refs(params: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Runs a statement and reads its rows as cells.
async fn fetch(client: &Object, sql: &Sql) -> Result<Rows, DbError> {
    let statement = prepare(client, sql).await?;
    let params = texts(sql);
    let rows = client
        .query(&statement, &refs(&params))
        .await
        .map_err(classify)?;
    rows.iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(classify)
}

/// A row's cells: numbers and booleans natively; everything else comes as
/// text (the select list casts what needs it).
fn decode(row: &tokio_postgres::Row) -> Result<Vec<Cell>, tokio_postgres::Error> {
    (0..row.len())
        .map(|i| {
            let cell = match *row.columns()[i].type_() {
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)?
                    .map(|v| Cell::Int(v.into())),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| Cell::Int(v.into())),
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
                Type::FLOAT4 => row
                    .try_get::<_, Option<f32>>(i)?
                    .map(|v| Cell::Float(v.into())),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Cell::Float),
                Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Cell::Bool),
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Bytes),
                _ => row
                    .try_get::<_, Option<&str>>(i)?
                    .map(|v| Cell::Text(v.to_string())),
            };
            Ok(cell.unwrap_or(Cell::Null))
        })
        .collect()
}

/// What fetching the embeds of one read shares across levels.
struct Fetching<'a> {
    statements: &'a AtomicU64,
    /// Rows the answer's budget still allows.
    rows_left: &'a Mutex<usize>,
}

/// The related rows of every embed, level by level; embeds of one level go
/// out together on the connection (pipelined).
fn related<'a>(
    client: &'a Object,
    queries: &'a [EmbedQuery],
    shapes: &'a [EmbedShape],
    parents: &'a [Vec<Cell>],
    fetching: &'a Fetching<'a>,
) -> futures_util::future::BoxFuture<'a, Result<Vec<Related>, DbError>> {
    Box::pin(async move {
        let levels = queries.iter().zip(shapes).map(|(query, shape)| async move {
            let values = rows::join_values(parents, shape.parent_cell);
            let fetched = if values.is_empty() {
                Vec::new()
            } else {
                fetching.statements.fetch_add(1, Ordering::Relaxed);
                let allowed = *fetching.rows_left.lock().expect("budget lock") + 1;
                let fetched = fetch(client, &query.sql(&values, allowed)).await?;
                let mut left = fetching.rows_left.lock().expect("budget lock");
                *left = take_rows(*left, fetched.len()).map_err(DbError::Exceeded)?;
                fetched
            };
            let mut related_rows = Related::new(fetched, shape.child_cell);
            let nested = related(
                client,
                &query.nested,
                &shape.shape.embeds,
                &related_rows.rows,
                fetching,
            )
            .await?;
            related_rows.nested = nested;
            Ok::<_, DbError>(related_rows)
        });
        futures_util::future::try_join_all(levels).await
    })
}

/// A pooled connection lent to one read. Dropped before [`done`](Self::done)
/// (its deadline passed, or its client hung up), it cancels on the server
/// what the connection still runs and leaves the pool: statements go out
/// pipelined (the page and its count), so a cancel can stop the first while
/// the next is already queued, and the connection would come back to the
/// pool busy with it. A second cancel a moment later stops that one too.
struct CancelOnDrop {
    client: Option<Object>,
}

impl CancelOnDrop {
    fn lend(client: Object) -> CancelOnDrop {
        CancelOnDrop {
            client: Some(client),
        }
    }

    /// The read finished: the connection goes back to the pool.
    fn done(mut self) {
        drop(self.client.take());
    }
}

impl std::ops::Deref for CancelOnDrop {
    type Target = Object;

    fn deref(&self) -> &Object {
        self.client.as_ref().expect("lent until done")
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let token = client.cancel_token();
            // out of the pool; closing it ends the session once it is idle
            drop(Object::take(client));
            tokio::spawn(async move {
                let _ = token.cancel_query(NoTls).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = token.cancel_query(NoTls).await;
            });
        }
    }
}

async fn exists(client: &Object, sql: &Sql) -> Result<bool, DbError> {
    let statement = prepare(client, sql).await?;
    let params = texts(sql);
    Ok(client
        .query_opt(&statement, &refs(&params))
        .await
        .map_err(classify)?
        .is_some())
}

/// A failed write: constraint failures named, the rest as for reads.
fn classify_write(error: tokio_postgres::Error) -> WriteError {
    let Some(db) = error.as_db_error() else {
        return WriteError::Db(classify(error));
    };
    // "Key (email)=(a@b.c) already exists." → ["email"]
    let key_columns = || -> Vec<String> {
        db.detail()
            .and_then(|d| d.strip_prefix("Key ("))
            .and_then(|d| d.split_once(")="))
            .map(|(columns, _)| {
                columns
                    .split(", ")
                    .map(|c| c.trim_matches('"').to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let code = db.code().code();
    let (kind, columns, constraint) = match code {
        "23505" => (ConstraintKind::Unique, key_columns(), None),
        "23503"
            if db
                .detail()
                .is_some_and(|d| d.contains("is still referenced")) =>
        {
            (
                ConstraintKind::StillReferenced,
                Vec::new(),
                db.detail()
                    .and_then(|d| d.rsplit_once("from table "))
                    .map(|(_, table)| table.trim_end_matches('.').trim_matches('"').to_string()),
            )
        }
        "23503" => (ConstraintKind::ForeignKey, key_columns(), None),
        "23502" => (
            ConstraintKind::NotNull,
            db.column().map(str::to_string).into_iter().collect(),
            None,
        ),
        "23514" => (
            ConstraintKind::Check,
            Vec::new(),
            db.constraint().map(str::to_string),
        ),
        _ if code.starts_with("22") => (
            ConstraintKind::BadValue,
            db.column().map(str::to_string).into_iter().collect(),
            None,
        ),
        _ => return WriteError::Db(classify(error)),
    };
    WriteError::Constraint(Constraint {
        kind,
        columns,
        constraint,
        row: 0,
        value: super::refused_value(db.message()).map(str::to_string),
    })
}

fn classify(error: tokio_postgres::Error) -> DbError {
    match error.code() {
        Some(code) if *code == SqlState::QUERY_CANCELED => DbError::Timeout,
        // Class 22, data exception: a value the database could not read as
        // its column's type.
        Some(code) if code.code().starts_with("22") => DbError::BadValue(
            error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_string()),
        ),
        Some(code) if code.code().starts_with("08") || code.code().starts_with("57P") => {
            DbError::Unavailable(error.to_string())
        }
        None if error.is_closed() => DbError::Unavailable(error.to_string()),
        Some(code)
            if *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
                && error
                    .as_db_error()
                    .is_some_and(|db| db.message().contains("has not been populated")) =>
        {
            let message = error
                .as_db_error()
                .map(|db| db.message())
                .unwrap_or_default();
            DbError::NotReady(format!(
                "{message}; run REFRESH MATERIALIZED VIEW on it in the database"
            ))
        }
        _ => DbError::Internal(error.as_db_error().map_or_else(
            || error.to_string(),
            |db| format!("{}: {}", db.code().code(), db.message()),
        )),
    }
}

const COLUMNS: &str = "
SELECT c.relname, c.relkind::text, a.attname, a.attnotnull,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
       tn.nspname, t.typname, t.typtype::text, coalesce(bt.typname, t.typname),
       a.attgenerated <> '' OR a.attidentity = 'a', a.atttypmod,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e
             WHERE e.enumtypid = coalesce(bt.oid, t.oid) ORDER BY e.enumsortorder),
       et.typname, et.typtype::text,
       CASE WHEN c.relkind IN ('r', 'p') THEN 28
            ELSE pg_relation_is_updatable(c.oid::regclass, true) END,
       n.nspname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace tn ON tn.oid = t.typnamespace
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd'
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE n.nspname::text = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
ORDER BY n.nspname, c.relname, a.attnum";

const PRIMARY_KEYS: &str = "
SELECT n.nspname::text, c.relname, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
WHERE i.indisprimary AND n.nspname::text = ANY($1::text[])
ORDER BY n.nspname, c.relname, array_position(i.indkey::int2[], a.attnum)";

/// The key of a view that reads one table and shows that table's primary
/// key columns under their own names, updatable: rows of such a view are
/// rows of the table, so the table's key addresses them. (A key column
/// renamed in the view is not recognised; the view then takes POST only.)
const VIEW_KEYS: &str = "
SELECT u.view_schema::text, u.view_name::text, k.column_name::text,
       (SELECT count(*) FROM information_schema.key_column_usage all_k
        WHERE all_k.constraint_schema = t.constraint_schema
          AND all_k.constraint_name = t.constraint_name)
FROM information_schema.view_table_usage u
JOIN information_schema.table_constraints t
  ON t.table_schema = u.table_schema AND t.table_name = u.table_name
 AND t.constraint_type = 'PRIMARY KEY'
JOIN information_schema.key_column_usage k
  ON k.constraint_schema = t.constraint_schema AND k.constraint_name = t.constraint_name
JOIN information_schema.view_column_usage used
  ON used.view_schema = u.view_schema AND used.view_name = u.view_name
 AND used.table_schema = u.table_schema AND used.table_name = u.table_name
 AND used.column_name = k.column_name
JOIN information_schema.columns shown
  ON shown.table_schema = u.view_schema AND shown.table_name = u.view_name
 AND shown.column_name = k.column_name AND shown.is_updatable = 'YES'
WHERE u.view_schema::text = ANY($1::text[])
  AND (SELECT count(*) FROM information_schema.view_table_usage other
       WHERE other.view_schema = u.view_schema AND other.view_name = u.view_name) = 1
ORDER BY u.view_schema, u.view_name, k.ordinal_position";

const FOREIGN_KEYS: &str = "
SELECT n.nspname::text, c.relname, a.attname, rn.nspname::text, rc.relname, ra.attname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
JOIN pg_attribute ra ON ra.attrelid = rc.oid AND ra.attnum = k.confkey[1]
WHERE k.contype = 'f' AND cardinality(k.conkey) = 1
  AND n.nspname::text = ANY($1::text[]) AND rn.nspname::text = ANY($1::text[])
ORDER BY n.nspname, c.relname, k.conname";

/// Reads `schemas` (the first one's tables named as they are, the others'
/// `schema.table`: [`brisk_query::schema::resource_name`]).
async fn introspect(client: &Object, served: &[String]) -> anyhow::Result<Introspection> {
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
            &[],
        )
        .await
        .context("cannot read the PostgreSQL catalog")?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(missing) = served.iter().find(|s| !schemas.contains(s)) {
        anyhow::bail!(
            "the PostgreSQL schema '{missing}' does not exist in this database; set {} to one of: {}",
            if served.len() > 1 {
                "schema.names"
            } else {
                "schema.name"
            },
            schemas.join(", ")
        );
    }
    // None for a table whose name could not be read back (a dotted name
    // in a dotted schema): left out
    let name = |schema: &str, table: &str| {
        let name = resource_name(schema, table, schema == served[0]);
        if name != table && schema.contains('.') {
            tracing::warn!(
                schema,
                table,
                "not served: a dotted table name in a dotted schema cannot be told apart"
            );
            return None;
        }
        Some(name)
    };
    let column_rows = client
        .query(COLUMNS, &[&served])
        .await
        .context("cannot read the PostgreSQL catalog")?;
    let mut resources: Vec<Resource> = Vec::new();
    for row in &column_rows {
        let Some(table) = name(row.get(15), row.get(0)) else {
            continue;
        };
        let relkind: String = row.get(1);
        let type_schema: String = row.get(5);
        let type_name: String = row.get(6);
        let type_kind: String = row.get(7);
        let base_type: String = row.get(8);
        let not_null: bool = row.get(3);
        let typmod: i32 = row.get(10);
        let element: Option<String> = row.get(12);
        let element = element.map(|name| kind_of(&name, &row.get::<_, String>(13)));
        let kind = if element.is_some() {
            ColumnKind::Array
        } else {
            kind_of(&base_type, &type_kind)
        };
        let modifier = u32::try_from(typmod - 4).ok();
        let column = Column {
            nullable: !not_null,
            has_default: row.get(4),
            read_only: row.get(9),
            // varchar(n) and bpchar(n) keep n + 4; numeric(p, s) keeps (p << 16 | s) + 4
            max_chars: modifier.filter(|_| matches!(base_type.as_str(), "varchar" | "bpchar")),
            precision: modifier
                .filter(|_| base_type == "numeric")
                .map(|m| (m >> 16, m & 0xffff)),
            values: row.get(11),
            element,
            searchable: kind == ColumnKind::Text || base_type == "tsvector",
            ..Column::new(
                row.get::<_, String>(2),
                kind,
                format!("{type_schema}.{type_name}"),
            )
        };
        match resources.last_mut() {
            Some(last) if last.name == table => last.columns.push(column),
            _ => {
                // pg_relation_is_updatable: 1 << CMD_UPDATE (2), CMD_INSERT (3), CMD_DELETE (4)
                let events: i32 = row.get(14);
                resources.push(Resource {
                    name: table,
                    kind: if matches!(relkind.as_str(), "v" | "m") {
                        ResourceKind::View
                    } else {
                        ResourceKind::Table
                    },
                    columns: vec![column],
                    primary_key: Vec::new(),
                    relations: Vec::new(),
                    insertable: true,
                    writable: Writable {
                        update: events & 4 != 0,
                        insert: events & 8 != 0,
                        delete: events & 16 != 0,
                    },
                })
            }
        }
    }
    for row in client.query(PRIMARY_KEYS, &[&served]).await? {
        let table = name(row.get(0), row.get(1));
        if let Some(resource) = resources
            .iter_mut()
            .find(|r| Some(&r.name) == table.as_ref())
        {
            resource.primary_key.push(row.get(2));
        }
    }
    let mut view_keys: std::collections::BTreeMap<String, (Vec<String>, i64)> =
        std::collections::BTreeMap::new();
    for row in client.query(VIEW_KEYS, &[&served]).await? {
        let Some(view) = name(row.get(0), row.get(1)) else {
            continue;
        };
        let entry = view_keys.entry(view).or_default();
        entry.0.push(row.get(2));
        entry.1 = row.get(3);
    }
    for (view, (key, size)) in view_keys {
        let resource = resources.iter_mut().find(|r| r.name == view);
        if let Some(resource) = resource.filter(|r| r.writable != Writable::NONE)
            && key.len() as i64 == size
        {
            resource.primary_key = key;
        }
    }
    let foreign_keys = client
        .query(FOREIGN_KEYS, &[&served])
        .await?
        .iter()
        .filter_map(|row| {
            Some(ForeignKey {
                table: name(row.get(0), row.get(1))?,
                column: row.get(2),
                referenced_table: name(row.get(3), row.get(4))?,
                referenced_column: row.get(5),
            })
        })
        .collect();
    Ok(Introspection {
        resources,
        foreign_keys,
    })
}

fn kind_of(base_type: &str, type_kind: &str) -> ColumnKind {
    if matches!(type_kind, "r" | "m") {
        return ColumnKind::Range;
    }
    match base_type {
        "int2" | "int4" | "int8" => ColumnKind::Integer,
        "float4" | "float8" => ColumnKind::Real,
        "numeric" => ColumnKind::Numeric,
        "text" | "varchar" | "bpchar" | "name" | "citext" if type_kind != "e" => ColumnKind::Text,
        "bool" => ColumnKind::Boolean,
        "timestamptz" | "timestamp" => ColumnKind::Timestamp,
        "date" => ColumnKind::Date,
        "uuid" => ColumnKind::Uuid,
        "json" | "jsonb" => ColumnKind::Json,
        "bytea" => ColumnKind::Blob,
        _ => ColumnKind::Other,
    }
}

/// What a change trigger's notification says: the writing instance (empty
/// for other programs), and the resource whose table changed. The payload
/// is a JSON array `[origin, schema, table]`; triggers installed before
/// brisk served several schemas send `origin|table`.
fn notified(payload: &str, default_schema: &str) -> (String, String) {
    if let Ok((origin, schema, table)) = serde_json::from_str::<(String, String, String)>(payload) {
        let name = resource_name(&schema, &table, schema == default_schema);
        return (origin, name);
    }
    let (origin, table) = payload.split_once('|').unwrap_or(("", payload));
    (origin.to_string(), table.to_string())
}

/// The SQL that installs (or, with `remove`, removes) the change triggers on
/// `tables` of `schema`. Idempotent: running it twice changes nothing.
fn trigger_sql(schema: &str, tables: &[&str], remove: bool) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let function = format!("{}.brisk_notify", quote(schema));
    let mut sql = String::new();
    if !remove {
        sql.push_str(&format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $brisk$
BEGIN
  PERFORM pg_notify('{CHANNEL}', json_build_array(coalesce(current_setting('brisk.origin', true), ''), TG_TABLE_SCHEMA, TG_TABLE_NAME)::text);
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

/// A double-quoted identifier, inner quotes doubled.
fn quoted_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value in libpq's `options`, where spaces and backslashes are escaped
/// with a backslash.
fn option_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace(' ', "\\ ")
}

/// What a failed connection says, with what to do about it.
fn connect_problem(error: &tokio_postgres::Error) -> String {
    use tokio_postgres::error::SqlState;
    if let Some(db) = error.as_db_error() {
        let hint = match db.code() {
            code if *code == SqlState::INVALID_CATALOG_NAME => {
                "; create it (createdb) or name an existing database in the URL"
            }
            code if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                "; the server refused the login: check the user and password in the URL"
            }
            _ => "",
        };
        return format!("{}{hint}", db.message());
    }
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return format!("{io} (is PostgreSQL running, and listening there?)");
        }
        source = error.source();
    }
    error.to_string()
}
