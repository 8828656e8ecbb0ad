//! Loads the demo shop into a SQLite file (blocking; run it on a blocking
//! thread).
//!
//! One transaction with prepared statements, `journal_mode=WAL`,
//! `synchronous=OFF` during the load and `NORMAL` after, indexes created
//! after the rows, then `ANALYZE`.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior, params};

use super::generate::{Shop, Ts};
use super::{Counts, Progress, TABLES, refusal};

/// The DDL of docs/dataset.md, one statement per table.
const CREATE_TABLES: [(&str, &str); 4] = [
    (
        "users",
        "CREATE TABLE users (
  id              INTEGER PRIMARY KEY,
  name            TEXT NOT NULL,
  email           TEXT NOT NULL UNIQUE,
  profile_picture TEXT,
  country         TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL
)",
    ),
    (
        "products",
        "CREATE TABLE products (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  category    TEXT NOT NULL,
  price       REAL NOT NULL,
  stock       INTEGER NOT NULL,
  description TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
)",
    ),
    (
        "orders",
        "CREATE TABLE orders (
  id         INTEGER PRIMARY KEY,
  user_id    INTEGER NOT NULL REFERENCES users(id),
  status     TEXT NOT NULL,
  total      REAL NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
)",
    ),
    (
        "order_items",
        "CREATE TABLE order_items (
  id         INTEGER PRIMARY KEY,
  order_id   INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity   INTEGER NOT NULL,
  unit_price REAL NOT NULL
)",
    ),
];

/// The indexes of docs/dataset.md (name, statement); the same on PostgreSQL.
pub(super) const CREATE_INDEXES: [(&str, &str); 4] = [
    (
        "products_category_price",
        "CREATE INDEX products_category_price ON products(category, price)",
    ),
    (
        "orders_user_id",
        "CREATE INDEX orders_user_id ON orders(user_id)",
    ),
    (
        "order_items_order_id",
        "CREATE INDEX order_items_order_id ON order_items(order_id)",
    ),
    (
        "order_items_product_id",
        "CREATE INDEX order_items_product_id ON order_items(product_id)",
    ),
];

/// Cents as the REAL SQLite stores: `cents / 100` is correctly rounded, so
/// it is the same double as parsing the two-decimal text.
fn real(cents: i64) -> f64 {
    cents as f64 / 100.0
}

pub(super) fn load(
    path: &Path,
    shop: &Shop,
    force: bool,
    progress: Progress,
) -> anyhow::Result<Counts> {
    let place = path.display().to_string();
    let mut conn =
        Connection::open(path).with_context(|| format!("cannot open SQLite database {place}"))?;

    let existing =
        existing_tables(&conn).with_context(|| format!("cannot list the tables of {place}"))?;
    if !existing.is_empty() && !force {
        return Err(refusal(&place, &existing));
    }

    conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0))
        .with_context(|| format!("cannot set journal_mode=WAL on {place}"))?;
    conn.execute_batch("PRAGMA synchronous=OFF")
        .with_context(|| format!("cannot set synchronous=OFF on {place}"))?;

    let counts = {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .with_context(|| format!("cannot begin a transaction on {place}"))?;
        for table in TABLES.iter().rev() {
            if existing.contains(table) {
                tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))
                    .with_context(|| format!("cannot drop table {table} in {place}"))?;
            }
        }
        for (table, sql) in CREATE_TABLES {
            tx.execute_batch(sql)
                .with_context(|| format!("cannot create table {table} in {place}"))?;
        }
        let counts = insert_rows(&tx, shop, progress)
            .with_context(|| format!("cannot insert the demo rows into {place}"))?;
        for (index, sql) in CREATE_INDEXES {
            tx.execute_batch(sql)
                .with_context(|| format!("cannot create index {index} in {place}"))?;
        }
        tx.commit()
            .with_context(|| format!("cannot commit the demo shop into {place}"))?;
        counts
    };

    for table in TABLES {
        conn.execute_batch(&format!("ANALYZE {table}"))
            .with_context(|| format!("cannot analyze table {table} in {place}"))?;
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL")
        .with_context(|| format!("cannot set synchronous=NORMAL on {place}"))?;
    Ok(counts)
}

/// Which of the four tables exist, in [`TABLES`] order.
fn existing_tables(conn: &Connection) -> rusqlite::Result<Vec<&'static str>> {
    let mut stmt =
        conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")?;
    let mut found = Vec::new();
    for table in TABLES {
        if stmt.exists([table])? {
            found.push(table);
        }
    }
    Ok(found)
}

fn insert_rows(conn: &Connection, shop: &Shop, progress: Progress) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();

    let mut stmt = conn.prepare(
        "INSERT INTO users (id, name, email, profile_picture, country, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut bar = progress.table("users", shop.users);
    for u in shop.users() {
        stmt.execute(params![
            u.id,
            u.name,
            u.email,
            u.profile_picture,
            u.country,
            Ts::new(u.created_at).as_str(),
            Ts::new(u.updated_at).as_str(),
        ])
        .context("cannot insert into users")?;
        bar.inc();
    }
    counts.users = bar.finish();

    let mut stmt = conn.prepare(
        "INSERT INTO products (id, name, category, price, stock, description, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut bar = progress.table("products", shop.products);
    for p in shop.products() {
        stmt.execute(params![
            p.id,
            p.name,
            p.category,
            real(p.price_cents),
            p.stock,
            p.description,
            Ts::new(p.created_at).as_str(),
            Ts::new(p.updated_at).as_str(),
        ])
        .context("cannot insert into products")?;
        bar.inc();
    }
    counts.products = bar.finish();

    // Orders first, then items in a second pass over the (cheap) generator,
    // so that each table is loaded as one unit, as on PostgreSQL.
    let mut stmt = conn.prepare(
        "INSERT INTO orders (id, user_id, status, total, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut bar = progress.table("orders", shop.orders);
    let mut items = 0u64;
    for o in shop.orders() {
        stmt.execute(params![
            o.id,
            o.user_id,
            o.status,
            real(o.total_cents),
            Ts::new(o.created_at).as_str(),
            Ts::new(o.updated_at).as_str(),
        ])
        .context("cannot insert into orders")?;
        items += o.items.len() as u64;
        bar.inc();
    }
    counts.orders = bar.finish();

    let mut stmt = conn.prepare(
        "INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut bar = progress.table("order_items", items);
    for it in shop.order_items() {
        stmt.execute(params![
            it.id,
            it.order_id,
            it.product_id,
            it.quantity,
            real(it.unit_price_cents),
        ])
        .context("cannot insert into order_items")?;
        bar.inc();
    }
    counts.order_items = bar.finish();

    Ok(counts)
}
