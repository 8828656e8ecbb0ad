//! The JSON-rendering decision: should the database render each row as JSON
//! (`json_object` / `json_build_object`, embeds as correlated subqueries,
//! Rust only concatenates), or should Rust select plain columns and
//! serialise them (embeds as one batched query per relation level, stitched
//! in Rust)? This benchmark decided it for the second, which brisk now does;
//! it keeps the database-rendered SQL of brisk before the switch (commit
//! 8753efa) so that the comparison can be run again.
//!
//! Run: `cargo bench --bench json_rendering` (needs `target/bench/shop.db`
//! and the PostgreSQL database `brisk_bench`, both made by
//! `python3 bench/load.py` or `brisk load-demo --scale 1 --seed 42`).
//! Environment: `JSON_BENCH_ITERATIONS` (default 300), `JSON_BENCH_SQLITE`
//! (default target/bench/shop.db), `JSON_BENCH_PG_URL` (default
//! postgres://root@127.0.0.1:5432/brisk_bench), `JSON_BENCH_MAX_LOAD`
//! (default 0.6: the run first waits, up to 10 minutes, for a 1-minute load
//! average below it).
//!
//! For Q1, Q2 and Q5 of shared/demo-dataset.md, on SQLite and PostgreSQL,
//! one single-threaded runtime, three ways of answering, interleaved
//! round-robin so that drift hits them alike:
//!
//! - `brisk`: `brisk::read::plan` then `brisk::read::execute`, what an
//!   uncached request runs (parse, plan, SQL, brisk's pool, rows rendered in
//!   Rust since the switch, envelope), without HTTP, cache or compression;
//! - `(a) direct`: the database-rendered SQL brisk used before the switch,
//!   on the bench's own connection (no pool, no blocking-thread hop), then
//!   brisk's envelope;
//! - `(b) Rust`: parse and plan as brisk does, hand-written SQL selecting
//!   plain columns on that same own connection, values decoded into Rust,
//!   rows serialised with serde_json, then brisk's envelope. Q5 runs four
//!   statements: the orders page, users by id, order items by order id,
//!   products by id. PostgreSQL numerics are selected as `::float8`;
//!   timestamptz is decoded from its binary form and written as
//!   `YYYY-MM-DDTHH:MM:SS+00:00`, the form PostgreSQL's JSON uses.
//!
//! `(a) direct` against `(b) Rust` isolates the rendering decision;
//! `(a) brisk` shows what the pool and the blocking hop add on top.

use brisk::app::AppState;
use brisk::config::{Config, Settings};
use brisk::read::{ReadPath, execute};
use brisk_query::Dialect;
use brisk_query::envelope::{self, PageInput, Row};
use brisk_query::plan::ReadPlan;
use brisk_query::{QueryParams, ReadRequest, SqlValue, plan_read};
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::types::{FromSql, ToSql, Type};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SQLITE_FILE: &str = "target/bench/shop.db";
const PG_URL: &str = "postgres://root@127.0.0.1:5432/brisk_bench";
const WARMUP: usize = 30;

struct Question {
    id: &'static str,
    resource: &'static str,
    query: &'static str,
}

const QUESTIONS: [Question; 3] = [
    Question {
        id: "Q1",
        resource: "users",
        query: "page=1&limit=10&fields=name,email",
    },
    Question {
        id: "Q2",
        resource: "products",
        query: "page=2&limit=50&category=electronics&sort=price_asc",
    },
    Question {
        id: "Q5",
        resource: "orders",
        query: "limit=50&include=user,order_items.product",
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Approach {
    Read,
    Direct,
    Rust,
}

const APPROACHES: [Approach; 3] = [Approach::Read, Approach::Direct, Approach::Rust];

impl Approach {
    fn label(self) -> &'static str {
        match self {
            Approach::Read => "brisk now: read::plan + read::execute (Rust renders, brisk's pool)",
            Approach::Direct => "(a) direct: database renders, same SQL, own connection",
            Approach::Rust => "(b) Rust renders: plain columns + serde_json, own connection",
        }
    }
}

/// The bench's own connection to one database.
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: tokio_postgres::Client,
        statements: HashMap<String, tokio_postgres::Statement>,
    },
}

struct Target {
    name: &'static str,
    state: Arc<AppState>,
    conn: Conn,
}

/// A body and the time spent waiting for the database while making it.
struct Output {
    body: Bytes,
    db: Duration,
}

// ------------------------------------------------------------------ setup

async fn target(name: &'static str, url: &str) -> Target {
    let mut config = Config::default();
    config.database.url = url.to_string();
    let settings = Settings::from_config(config).expect("settings");
    let app = brisk::app::App::build(&settings)
        .await
        .unwrap_or_else(|e| panic!("cannot build brisk on {url}: {e:#}"));
    let conn = if url.starts_with("postgres") {
        let mut config: tokio_postgres::Config = url.parse().expect("PostgreSQL URL");
        config.application_name("json_rendering_bench");
        config.options("-c TimeZone=UTC");
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        Conn::Postgres {
            client,
            statements: HashMap::new(),
        }
    } else {
        // As brisk opens its read connections (src/db/sqlite.rs).
        let c = rusqlite::Connection::open(url).expect("open SQLite");
        c.execute_batch(
            "PRAGMA query_only = ON; PRAGMA cache_size = -32768;
             PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;",
        )
        .expect("configure SQLite");
        c.set_prepared_statement_cache_capacity(256);
        Conn::Sqlite(c)
    };
    Target {
        name,
        state: app.state,
        conn,
    }
}

// ------------------------------------------------------------------ (a)

async fn answer(target: &mut Target, q: &Question, approach: Approach) -> Output {
    match approach {
        Approach::Read => {
            let path = ReadPath {
                resource: q.resource,
                id: None,
                relation: None,
            };
            let planned = brisk::read::plan(&target.state, path, q.query)
                .unwrap_or_else(|e| panic!("plan failed on {}: {e:?}", q.id));
            let answer = execute(&target.state, &planned)
                .await
                .unwrap_or_else(|e| panic!("execute failed on {}: {e:?}", q.id));
            Output {
                body: answer.body,
                db: answer.db_time,
            }
        }
        Approach::Direct => direct(target, q).await,
        Approach::Rust => rust(target, q).await,
    }
}

fn plan(state: &AppState, q: &Question) -> (QueryParams, ReadPlan) {
    let params = QueryParams::parse(q.query).expect("query parses");
    let request = ReadRequest {
        resource: q.resource,
        id: None,
        relation: None,
        params: &params,
    };
    let plan = plan_read(&state.schema, &request, &state.limits, &state.cursors).expect("plan");
    (params, plan)
}

fn page(
    state: &AppState,
    q: &Question,
    params: &QueryParams,
    plan: &ReadPlan,
    rows: Vec<Row>,
) -> Bytes {
    let path = format!("/v1/{}", q.resource);
    let page = envelope::collection(PageInput {
        path: &path,
        params,
        plan,
        rows,
        total: None,
        cursors: &state.cursors,
    });
    Bytes::from(page.body)
}

/// The database-rendered SQL brisk used before the switch, with its
/// parameters, as its renderer wrote it (commit 8753efa).
fn database_rendered(q: &Question, dialect: Dialect) -> brisk_query::Sql {
    let pg = dialect == Dialect::Postgres;
    let (object, array, cast) = if pg {
        ("json_build_object", "json_build_array", "::text")
    } else {
        ("json_object", "json_array", "")
    };
    let obj = |alias: &str, columns: &[&str], extra: &str| {
        let mut pairs: Vec<String> = columns
            .iter()
            .map(|c| format!("'{c}', {alias}.\"{c}\""))
            .collect();
        if !extra.is_empty() {
            pairs.push(extra.to_string());
        }
        format!("{object}({})", pairs.join(", "))
    };
    // a subquery's JSON loses SQLite's JSON subtype; json() gives it back
    let wrap = |sql: String| if pg { sql } else { format!("json({sql})") };
    let p = |n: usize, ty: &str| {
        if pg {
            format!("${n}::\"pg_catalog\".\"{ty}\"")
        } else {
            format!("?{n}")
        }
    };
    const USERS: [&str; 7] = [
        "id",
        "name",
        "email",
        "profile_picture",
        "country",
        "created_at",
        "updated_at",
    ];
    const PRODUCTS: [&str; 8] = [
        "id",
        "name",
        "category",
        "price",
        "stock",
        "description",
        "created_at",
        "updated_at",
    ];
    const ORDERS: [&str; 6] = [
        "id",
        "user_id",
        "status",
        "total",
        "created_at",
        "updated_at",
    ];
    const ITEMS: [&str; 5] = ["id", "order_id", "product_id", "quantity", "unit_price"];
    let (text, params) = match q.id {
        "Q1" => (
            format!(
                "SELECT {}{cast}, {array}(t0.\"id\"){cast} FROM \"users\" t0 ORDER BY t0.\"id\" LIMIT {}",
                obj("t0", &["name", "email"], ""),
                p(1, "int8")
            ),
            vec![SqlValue::Integer(11)],
        ),
        "Q2" => (
            format!(
                "SELECT {}{cast}, {array}(t0.\"price\", t0.\"id\"){cast} FROM \"products\" t0 WHERE t0.\"category\" = {} \
                 ORDER BY t0.\"price\", t0.\"id\" LIMIT {} OFFSET {}",
                obj("t0", &PRODUCTS, ""),
                p(1, "text"),
                p(2, "int8"),
                p(3, "int8")
            ),
            vec![
                SqlValue::Text("electronics".into()),
                SqlValue::Integer(51),
                SqlValue::Integer(50),
            ],
        ),
        "Q5" => {
            let user = wrap(format!(
                "(SELECT {} FROM \"users\" t1 WHERE t1.\"id\" = t0.\"user_id\")",
                obj("t1", &USERS, "")
            ));
            let product = wrap(format!(
                "(SELECT {} FROM \"products\" t3 WHERE t3.\"id\" = t2.\"product_id\")",
                obj("t3", &PRODUCTS, "")
            ));
            let item = obj("t2", &ITEMS, &format!("'product', {product}"));
            let items = if pg {
                format!(
                    "(SELECT coalesce(json_agg({item} ORDER BY t2.\"id\"), '[]'::json) FROM \"order_items\" t2 WHERE t2.\"order_id\" = t0.\"id\")"
                )
            } else {
                wrap(format!(
                    "(SELECT json_group_array({item} ORDER BY t2.\"id\") FROM \"order_items\" t2 WHERE t2.\"order_id\" = t0.\"id\")"
                ))
            };
            let order = obj(
                "t0",
                &ORDERS,
                &format!("'user', {user}, 'order_items', {items}"),
            );
            (
                format!(
                    "SELECT {order}{cast}, {array}(t0.\"id\"){cast} FROM \"orders\" t0 ORDER BY t0.\"id\" LIMIT {}",
                    p(1, "int8")
                ),
                vec![SqlValue::Integer(51)],
            )
        }
        other => panic!("no database-rendered SQL for {other}"),
    };
    brisk_query::Sql { text, params }
}

/// The database-rendered SQL on the bench's own connection.
async fn direct(target: &mut Target, q: &Question) -> Output {
    let (params, plan) = plan(&target.state, q);
    let sql = database_rendered(q, target.state.db.dialect());
    struct Rendered {
        rows: brisk_query::Sql,
    }
    let sql = Rendered { rows: sql };
    let started = Instant::now();
    let rows: Vec<Row> = match &mut target.conn {
        Conn::Sqlite(c) => {
            let values = sql.rows.params.iter().map(to_sqlite);
            let mut statement = c.prepare_cached(&sql.rows.text).expect("prepare");
            statement
                .query_map(rusqlite::params_from_iter(values), |r| {
                    Ok(Row {
                        json: r.get(0)?,
                        keys: r.get(1)?,
                    })
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        }
        Conn::Postgres { client, statements } => {
            // As brisk binds: every parameter as text, cast by the SQL.
            let texts: Vec<Option<String>> = sql.rows.params.iter().map(|v| v.as_text()).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
            let types = vec![Type::TEXT; texts.len()];
            let statement = prepared(client, statements, &sql.rows.text, &types).await;
            client
                .query(&statement, &refs)
                .await
                .expect("query")
                .iter()
                .map(|r| Row {
                    json: r.get(0),
                    keys: r.get(1),
                })
                .collect()
        }
    };
    let db = started.elapsed();
    Output {
        body: page(&target.state, q, &params, &plan, rows),
        db,
    }
}

fn to_sqlite(value: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Decimal(d) => d
            .parse()
            .map_or_else(|_| Value::Text(d.clone()), Value::Real),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Bool(b) => Value::Integer(i64::from(*b)),
    }
}

async fn prepared(
    client: &tokio_postgres::Client,
    statements: &mut HashMap<String, tokio_postgres::Statement>,
    sql: &str,
    types: &[Type],
) -> tokio_postgres::Statement {
    if let Some(statement) = statements.get(sql) {
        return statement.clone();
    }
    let statement = client.prepare_typed(sql, types).await.expect("prepare");
    statements.insert(sql.to_string(), statement.clone());
    statement
}

// ------------------------------------------------------------------ (b)

/// A column value decoded into Rust.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// PostgreSQL timestamptz: microseconds since 2000-01-01 UTC.
    Time(i64),
}

impl Val {
    fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

/// Rows of plain columns, as a statement returned them.
struct Table {
    names: Vec<String>,
    rows: Vec<Vec<Val>>,
}

impl Table {
    fn column(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("column")
    }

    fn all(&self) -> Vec<usize> {
        (0..self.names.len()).collect()
    }
}

/// A timestamptz in binary: i64 microseconds since 2000-01-01.
struct Timestamp(i64);

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Timestamp(i64::from_be_bytes(raw.try_into()?)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

fn sqlite_table(c: &rusqlite::Connection, sql: &str, params: &[rusqlite::types::Value]) -> Table {
    use rusqlite::types::ValueRef;
    let mut statement = c.prepare_cached(sql).expect("prepare");
    let names: Vec<String> = statement
        .column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let width = names.len();
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), |r| {
            (0..width)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => Val::Null,
                        ValueRef::Integer(i) => Val::Int(i),
                        ValueRef::Real(f) => Val::Real(f),
                        ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(_) => unimplemented!("no blobs in the demo shop"),
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    Table { names, rows }
}

async fn pg_table(
    client: &tokio_postgres::Client,
    statements: &mut HashMap<String, tokio_postgres::Statement>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Table {
    let statement = prepared(client, statements, sql, &[]).await;
    let names = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = client
        .query(&statement, params)
        .await
        .expect("query")
        .iter()
        .map(|row| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let ty = column.type_();
                    let value = if *ty == Type::INT4 {
                        row.get::<_, Option<i32>>(i).map(|v| Val::Int(v.into()))
                    } else if *ty == Type::INT8 {
                        row.get::<_, Option<i64>>(i).map(Val::Int)
                    } else if *ty == Type::FLOAT8 {
                        row.get::<_, Option<f64>>(i).map(Val::Real)
                    } else if *ty == Type::TEXT {
                        row.get::<_, Option<String>>(i).map(Val::Text)
                    } else if *ty == Type::TIMESTAMPTZ {
                        row.get::<_, Option<Timestamp>>(i).map(|t| Val::Time(t.0))
                    } else {
                        panic!("no decoder for {ty}")
                    };
                    value.unwrap_or(Val::Null)
                })
                .collect()
        })
        .collect();
    Table { names, rows }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Int(i) => s.serialize_i64(*i),
            Val::Real(f) => s.serialize_f64(*f),
            Val::Text(t) => s.serialize_str(t),
            Val::Time(micros) => {
                let mut buffer = [0u8; 32];
                s.serialize_str(format_timestamp(*micros, &mut buffer))
            }
        }
    }
}

/// RFC 3339 in UTC the way PostgreSQL's JSON writes timestamptz under
/// `TimeZone=UTC`: `2024-07-15T19:38:15+00:00`, fractions only when present.
fn format_timestamp(micros: i64, buffer: &mut [u8; 32]) -> &str {
    const UNIX_2000: i64 = 946_684_800;
    let seconds = micros.div_euclid(1_000_000) + UNIX_2000;
    let fraction = micros.rem_euclid(1_000_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = String::with_capacity(32);
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push_str("+00:00");
    let len = text.len();
    buffer[..len].copy_from_slice(text.as_bytes());
    std::str::from_utf8(&buffer[..len]).expect("ASCII")
}

/// One output object: some columns of a row, then its embeds.
struct Obj<'a> {
    table: &'a Table,
    row: usize,
    columns: &'a [usize],
    embeds: Vec<(&'static str, Embedded<'a>)>,
}

enum Embedded<'a> {
    One(Option<Obj<'a>>),
    Many(Vec<Obj<'a>>),
}

impl Serialize for Obj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let values = &self.table.rows[self.row];
        let mut map = s.serialize_map(Some(self.columns.len() + self.embeds.len()))?;
        for &i in self.columns {
            map.serialize_entry(&self.table.names[i], &values[i])?;
        }
        for (name, embedded) in &self.embeds {
            map.serialize_entry(name, embedded)?;
        }
        map.end()
    }
}

impl Serialize for Embedded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Embedded::One(one) => one.serialize(s),
            Embedded::Many(many) => {
                let mut seq = s.serialize_seq(Some(many.len()))?;
                for item in many {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// The sort keys of a row as a JSON array, for cursors.
fn keys(table: &Table, row: usize, columns: &[usize]) -> String {
    let values: Vec<&Val> = columns.iter().map(|&i| &table.rows[row][i]).collect();
    serde_json::to_string(&values).expect("keys serialise")
}

/// Rows of one table with the given columns and no embeds, limit + 1 of them.
fn flat_rows(table: &Table, columns: &[usize], key_columns: &[usize]) -> Vec<Row> {
    (0..table.rows.len())
        .map(|row| Row {
            json: serde_json::to_string(&Obj {
                table,
                row,
                columns,
                embeds: Vec::new(),
            })
            .expect("row serialises"),
            keys: keys(table, row, key_columns),
        })
        .collect()
}

async fn rust(target: &mut Target, q: &Question) -> Output {
    let (params, plan) = plan(&target.state, q);
    let mut db = Duration::ZERO;
    let rows = match q.id {
        "Q1" => {
            let sql_sqlite = "SELECT id, name, email FROM users ORDER BY id LIMIT ?1 OFFSET ?2";
            let sql_pg = "SELECT id, name, email FROM users ORDER BY id LIMIT $1 OFFSET $2";
            let (limit, offset) = (11_i64, 0_i64);
            let started = Instant::now();
            let table = match &mut target.conn {
                Conn::Sqlite(c) => sqlite_table(c, sql_sqlite, &[limit.into(), offset.into()]),
                Conn::Postgres { client, statements } => {
                    pg_table(client, statements, sql_pg, &[&limit, &offset]).await
                }
            };
            db += started.elapsed();
            let columns = [table.column("name"), table.column("email")];
            flat_rows(&table, &columns, &[table.column("id")])
        }
        "Q2" => {
            let sql_sqlite = "SELECT p.id, p.name, p.category, p.price, p.stock, p.description, p.created_at, \
                              p.updated_at FROM products p WHERE p.category = ?1 \
                              ORDER BY p.price, p.id LIMIT ?2 OFFSET ?3";
            // Qualified names: a bare `price` in ORDER BY would mean the
            // float8 output column, which no index serves.
            let sql_pg = "SELECT p.id, p.name, p.category, p.price::float8 AS price, p.stock, \
                          p.description, p.created_at, p.updated_at FROM products p \
                          WHERE p.category = $1 ORDER BY p.price, p.id LIMIT $2 OFFSET $3";
            let (category, limit, offset) = ("electronics", 51_i64, 50_i64);
            let started = Instant::now();
            let table = match &mut target.conn {
                Conn::Sqlite(c) => sqlite_table(
                    c,
                    sql_sqlite,
                    &[category.to_string().into(), limit.into(), offset.into()],
                ),
                Conn::Postgres { client, statements } => {
                    pg_table(client, statements, sql_pg, &[&category, &limit, &offset]).await
                }
            };
            db += started.elapsed();
            let key_columns = [table.column("price"), table.column("id")];
            flat_rows(&table, &table.all(), &key_columns)
        }
        "Q5" => q5(target, &mut db).await,
        other => panic!("no hand-written SQL for {other}"),
    };
    Output {
        body: page(&target.state, q, &params, &plan, rows),
        db,
    }
}

/// Runs `SELECT columns FROM table WHERE key IN (ids) [ORDER BY ...]`: on
/// SQLite with one placeholder per id, on PostgreSQL with `= ANY($1)`.
async fn by_keys(
    conn: &mut Conn,
    columns: &str,
    table: &str,
    key: &str,
    ids: &[i64],
    order: &str,
) -> Table {
    match conn {
        Conn::Sqlite(c) => {
            let mut sql = format!("SELECT {columns} FROM {table} WHERE {key} IN (");
            for i in 0..ids.len() {
                let _ = write!(sql, "{}?{}", if i > 0 { ", " } else { "" }, i + 1);
            }
            sql.push(')');
            sql.push_str(order);
            let params: Vec<rusqlite::types::Value> = ids.iter().map(|&i| i.into()).collect();
            sqlite_table(c, &sql, &params)
        }
        Conn::Postgres { client, statements } => {
            let sql = format!("SELECT {columns} FROM {table} WHERE {key} = ANY($1){order}");
            let ids: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
            pg_table(client, statements, &sql, &[&ids]).await
        }
    }
}

/// Orders with user, order items and their products: four statements.
async fn q5(target: &mut Target, db: &mut Duration) -> Vec<Row> {
    let (limit, offset) = (50_usize, 0_i64);
    let postgres = matches!(target.conn, Conn::Postgres { .. });
    let numeric = |column: &str| {
        if postgres {
            format!("{column}::float8 AS {column}")
        } else {
            column.to_string()
        }
    };
    let started = Instant::now();
    let orders_columns = format!(
        "id, user_id, status, {}, created_at, updated_at",
        numeric("total")
    );
    let orders = match &mut target.conn {
        Conn::Sqlite(c) => sqlite_table(
            c,
            &format!("SELECT {orders_columns} FROM orders ORDER BY id LIMIT ?1 OFFSET ?2"),
            &[(limit as i64 + 1).into(), offset.into()],
        ),
        Conn::Postgres { client, statements } => {
            let sql = format!("SELECT {orders_columns} FROM orders ORDER BY id LIMIT $1 OFFSET $2");
            pg_table(client, statements, &sql, &[&(limit as i64 + 1), &offset]).await
        }
    };
    let shown = orders.rows.len().min(limit);
    let (order_id, user_id) = (orders.column("id"), orders.column("user_id"));
    let order_ids: Vec<i64> = orders.rows[..shown]
        .iter()
        .map(|r| r[order_id].int())
        .collect();
    let mut user_ids: Vec<i64> = orders.rows[..shown]
        .iter()
        .map(|r| r[user_id].int())
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users = by_keys(
        &mut target.conn,
        "id, name, email, profile_picture, country, created_at, updated_at",
        "users",
        "id",
        &user_ids,
        "",
    )
    .await;
    let items_columns = format!(
        "id, order_id, product_id, quantity, {}",
        numeric("unit_price")
    );
    let items = by_keys(
        &mut target.conn,
        &items_columns,
        "order_items",
        "order_id",
        &order_ids,
        " ORDER BY order_id, id",
    )
    .await;
    let product_id = items.column("product_id");
    let mut product_ids: Vec<i64> = items.rows.iter().map(|r| r[product_id].int()).collect();
    product_ids.sort_unstable();
    product_ids.dedup();
    let products_columns = format!(
        "id, name, category, {}, stock, description, created_at, updated_at",
        numeric("price")
    );
    let products = by_keys(
        &mut target.conn,
        &products_columns,
        "products",
        "id",
        &product_ids,
        "",
    )
    .await;
    *db += started.elapsed();

    // Stitch: index the related rows by key, items grouped by order.
    let index = |table: &Table| -> HashMap<i64, usize> {
        let id = table.column("id");
        table
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r[id].int(), i))
            .collect()
    };
    let (user_by_id, product_by_id) = (index(&users), index(&products));
    let mut items_by_order: HashMap<i64, Vec<usize>> = HashMap::new();
    let item_order = items.column("order_id");
    for (i, row) in items.rows.iter().enumerate() {
        items_by_order
            .entry(row[item_order].int())
            .or_default()
            .push(i);
    }
    let (order_columns, user_columns) = (orders.all(), users.all());
    let (item_columns, product_columns) = (items.all(), products.all());
    let mut rows: Vec<Row> = (0..shown)
        .map(|row| {
            let values = &orders.rows[row];
            let user = user_by_id.get(&values[user_id].int()).map(|&u| Obj {
                table: &users,
                row: u,
                columns: &user_columns,
                embeds: Vec::new(),
            });
            let order_items = items_by_order
                .get(&values[order_id].int())
                .map(|list| {
                    list.iter()
                        .map(|&i| {
                            let product =
                                product_by_id
                                    .get(&items.rows[i][product_id].int())
                                    .map(|&p| Obj {
                                        table: &products,
                                        row: p,
                                        columns: &product_columns,
                                        embeds: Vec::new(),
                                    });
                            Obj {
                                table: &items,
                                row: i,
                                columns: &item_columns,
                                embeds: vec![("product", Embedded::One(product))],
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let object = Obj {
                table: &orders,
                row,
                columns: &order_columns,
                embeds: vec![
                    ("user", Embedded::One(user)),
                    ("order_items", Embedded::Many(order_items)),
                ],
            };
            Row {
                json: serde_json::to_string(&object).expect("row serialises"),
                keys: keys(&orders, row, &[order_id]),
            }
        })
        .collect();
    // The row past the page only tells the envelope that there is more.
    if orders.rows.len() > shown {
        rows.push(Row {
            json: String::new(),
            keys: String::new(),
        });
    }
    rows
}

// ------------------------------------------------------------------ checks

/// The `data` array with every number as f64.
fn data(body: &[u8]) -> serde_json::Value {
    fn normalise(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Number(n) => {
                *value = serde_json::Value::from(n.as_f64().expect("finite"));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(normalise),
            serde_json::Value::Object(map) => map.values_mut().for_each(normalise),
            _ => {}
        }
    }
    let mut body: serde_json::Value = serde_json::from_slice(body).expect("body is JSON");
    let mut data = body["data"].take();
    normalise(&mut data);
    data
}

/// Whether two bodies hold the same data; prints the first difference.
fn same_data(reference: &[u8], other: &[u8], what: &str) -> bool {
    let (a, b) = (data(reference), data(other));
    if a == b {
        return true;
    }
    let (a, b) = (a.as_array().expect("array"), b.as_array().expect("array"));
    eprintln!("{what}: {} rows against {}", a.len(), b.len());
    if let Some((x, y)) = a.iter().zip(b).find(|(x, y)| x != y) {
        eprintln!("  first difference:\n  {x}\n  {y}");
    }
    false
}

// ------------------------------------------------------------------ timing

struct Stats {
    iterations: usize,
    mean: f64,
    p50: f64,
    p90: f64,
    db_mean: f64,
    bytes: usize,
}

fn stats(times: &mut [Duration], db: &[Duration], bytes: usize) -> Stats {
    times.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let n = times.len();
    Stats {
        iterations: n,
        mean: times.iter().map(|&d| micros(d)).sum::<f64>() / n as f64,
        p50: micros(times[n / 2]),
        p90: micros(times[n * 9 / 10]),
        db_mean: db.iter().map(|&d| micros(d)).sum::<f64>() / n as f64,
        bytes,
    }
}

struct Line {
    database: &'static str,
    question: &'static str,
    approach: Approach,
    stats: Stats,
    same: Option<bool>,
    ratio: f64,
    load: f64,
}

async fn measure(target: &mut Target, q: &Question, iterations: usize, load: f64) -> Vec<Line> {
    // Warm-up, and the outputs to compare.
    let mut bodies = Vec::new();
    let mut warm = [Duration::ZERO; 3];
    for (k, &approach) in APPROACHES.iter().enumerate() {
        let mut body = Bytes::new();
        for _ in 0..WARMUP {
            let started = Instant::now();
            body = answer(target, q, approach).await.body;
            warm[k] += started.elapsed();
        }
        bodies.push(body);
    }
    let slowest = warm.iter().max().expect("three").as_secs_f64() / WARMUP as f64;
    let n = if slowest > 0.005 {
        iterations / 3
    } else {
        iterations
    }
    .max(30);

    let mut times: Vec<Vec<Duration>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
    let mut db: Vec<Vec<Duration>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
    let mut bytes = [0; 3];
    for _ in 0..n {
        for (k, &approach) in APPROACHES.iter().enumerate() {
            let started = Instant::now();
            let output = answer(target, q, approach).await;
            times[k].push(started.elapsed());
            db[k].push(output.db);
            bytes[k] = output.body.len();
        }
    }
    let mut lines: Vec<Line> = APPROACHES
        .iter()
        .enumerate()
        .map(|(k, &approach)| Line {
            database: target.name,
            question: q.id,
            approach,
            stats: stats(&mut times[k], &db[k], bytes[k]),
            same: (k > 0).then(|| {
                same_data(
                    &bodies[0],
                    &bodies[k],
                    &format!("{} {} {}", target.name, q.id, approach.label()),
                )
            }),
            ratio: 0.0,
            load,
        })
        .collect();
    let direct_p50 = lines[1].stats.p50;
    for line in &mut lines {
        line.ratio = line.stats.p50 / direct_p50;
    }
    lines
}

// ------------------------------------------------------------------ report

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Waits (polling every 15 s, up to 10 minutes) for a 1-minute load average
/// below `max`; returns the figure seen when going ahead.
fn wait_for_quiet(max: f64) -> f64 {
    let started = Instant::now();
    loop {
        let load = load_average();
        if load < max || started.elapsed() >= Duration::from_secs(600) {
            if load >= max {
                eprintln!(
                    "WARNING: load average still {load:.2} after 10 minutes; measuring anyway"
                );
            }
            return load;
        }
        eprintln!("load average {load:.2} >= {max}; waiting");
        std::thread::sleep(Duration::from_secs(15));
    }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs (nproc), {model}, Linux {}", kernel.trim())
}

/// `git rev-parse --short HEAD`, with `-dirty` and the changed paths (or
/// their number) when the tree has changes.
fn commit() -> String {
    let head = command("git", &["rev-parse", "--short", "HEAD"]);
    let status = command("git", &["status", "--porcelain"]);
    let changed: Vec<&str> = status.lines().map(|l| l.get(3..).unwrap_or(l)).collect();
    match changed.len() {
        0 => head,
        1..=5 => format!("{head}-dirty ({})", changed.join(", ")),
        n => format!("{head}-dirty ({n} changed paths)"),
    }
}

fn table(lines: &[Line]) -> String {
    let mut out = String::from(
        "| database | question | approach | iterations | mean µs | p50 µs | p90 µs | of which database µs (mean) | p50 / (a) direct p50 | bytes | same data as (a) brisk |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for l in lines {
        let s = &l.stats;
        let same = match l.same {
            None => "(reference)",
            Some(true) => "yes",
            Some(false) => "no",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} |",
            l.database,
            l.question,
            l.approach.label(),
            s.iterations,
            s.mean,
            s.p50,
            s.p90,
            s.db_mean,
            l.ratio,
            s.bytes,
            same
        );
    }
    out
}

fn main() {
    let iterations: usize = std::env::var("JSON_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let pg_url = std::env::var("JSON_BENCH_PG_URL").unwrap_or_else(|_| PG_URL.to_string());
    let max_load: f64 = std::env::var("JSON_BENCH_MAX_LOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.6);
    let sqlite =
        std::env::var("JSON_BENCH_SQLITE").unwrap_or_else(|_| format!("{ROOT}/{SQLITE_FILE}"));
    assert!(
        std::path::Path::new(&sqlite).exists(),
        "{sqlite} is missing: run python3 bench/load.py once, or brisk load-demo --db {sqlite} --scale 1 --seed 42"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start_load = wait_for_quiet(max_load);
    eprintln!("load average {start_load:.2}; measuring");
    let started = time::OffsetDateTime::now_utc();
    let lines = runtime.block_on(async {
        let mut lines = Vec::new();
        for (name, url) in [("sqlite", sqlite.as_str()), ("postgres", pg_url.as_str())] {
            let mut target = target(name, url).await;
            for q in &QUESTIONS {
                let load = load_average();
                eprintln!("{name} {}: load average {load:.2}", q.id);
                lines.extend(measure(&mut target, q, iterations, load).await);
            }
        }
        lines
    });
    let table = table(&lines);
    println!("{table}");
    let loads: Vec<String> = lines
        .iter()
        .step_by(APPROACHES.len())
        .map(|l| format!("{} {} {:.2}", l.database, l.question, l.load))
        .collect();
    let date = format!(
        "{:04}-{:02}-{:02}",
        started.year(),
        u8::from(started.month()),
        started.day()
    );
    let report = format!(
        "# JSON rendering: database or Rust, {date}\n\n\
         - command: `cargo bench --bench json_rendering` (JSON_BENCH_ITERATIONS={iterations})\n\
         - machine: {}\n\
         - brisk commit: {}\n\
         - data: demo shop scale 1, seed 42: SQLite {sqlite}, PostgreSQL {}\n\
         - one current-thread tokio runtime, requests one after another; the three approaches\n  \
           interleaved round-robin after {WARMUP} warm-up runs each; fewer iterations (a third)\n  \
           when one approach takes over 5 ms\n\
         - 1-minute load average: {start_load:.2} at start; before each question: {}\n\
         - \"of which database\": time waiting for the statements and reading the rows (for\n  \
           (a) brisk: brisk's own `db_time`, which includes the pool checkout and the blocking-thread hop on SQLite)\n\
         - (b) on PostgreSQL selects numerics as `::float8`, so `186.70` becomes `186.7`\n  \
           (data compared with every number as f64)\n\n\
         {table}",
        machine(),
        commit(),
        pg_url.rsplit('/').next().unwrap_or_default(),
        loads.join(", "),
    );
    let path = format!("{ROOT}/bench/results/{date}-json-rendering.md");
    std::fs::create_dir_all(format!("{ROOT}/bench/results")).expect("results folder");
    std::fs::write(&path, report).expect("write results");
    eprintln!("wrote {path}");
}
