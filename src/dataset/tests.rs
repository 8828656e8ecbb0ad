//! Loader tests: SQLite always, PostgreSQL when `postgres://root@127.0.0.1:5432/test`
//! is reachable (each test uses its own throwaway database).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::generate::{Shop, cents, rfc3339};
use super::*;

const PG_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/test";

fn sqlite_count(path: &Path, table: &str) -> u64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as u64
}

fn sqlite_counts(path: &Path) -> [u64; 4] {
    TABLES.map(|t| sqlite_count(path, t))
}

fn report_counts(r: &LoadReport) -> [u64; 4] {
    [r.users, r.products, r.orders, r.order_items]
}

#[tokio::test]
async fn sqlite_load_refuse_and_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let spec = DemoSpec {
        scale: 0.01,
        seed: 42,
    };

    let report = load(Target::Sqlite(&path), spec, false).await.unwrap();
    assert_eq!(report_counts(&report)[..3], [100, 50, 1_000]);
    assert_eq!(sqlite_counts(&path), report_counts(&report));
    let shop = Shop::new(spec).unwrap();
    assert_eq!(report.order_items, shop.order_items().count() as u64);

    // The rows are the generator's.
    {
        let conn = Connection::open(&path).unwrap();
        let u = shop.user(7);
        let row: (String, String, Option<String>, String, String, String) = conn
            .query_row(
                "SELECT name, email, profile_picture, country, created_at, updated_at FROM users WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                u.name,
                u.email,
                u.profile_picture,
                u.country.to_owned(),
                rfc3339(u.created_at),
                rfc3339(u.updated_at)
            )
        );
        let o = shop.order(1, 1);
        let (total, text): (f64, String) = conn
            .query_row(
                "SELECT total, printf('%.2f', total) FROM orders WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(text, cents(o.total_cents));
        assert_eq!(total, o.total_cents as f64 / 100.0);
        let sum: String = conn
            .query_row(
                "SELECT printf('%.2f', sum(quantity * unit_price)) FROM order_items WHERE order_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, text);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN
                 ('products_category_price', 'orders_user_id', 'order_items_order_id', 'order_items_product_id')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 4);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    // Again without force: refused, naming the tables and --force.
    let err = load(Target::Sqlite(&path), spec, false).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("--force"), "{msg}");
    assert!(
        msg.contains("users, products, orders, order_items"),
        "{msg}"
    );

    // A single existing table is refused too.
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE orders (x)")
        .unwrap();
    let msg = format!(
        "{:#}",
        load(Target::Sqlite(&other), spec, false).await.unwrap_err()
    );
    assert!(
        msg.contains("table orders;") && msg.contains("--force"),
        "{msg}"
    );

    // With force: reloaded, with another seed this time.
    let spec2 = DemoSpec {
        scale: 0.02,
        seed: 43,
    };
    let report2 = load(Target::Sqlite(&path), spec2, true).await.unwrap();
    assert_eq!(report_counts(&report2)[..3], [200, 100, 2_000]);
    assert_eq!(sqlite_counts(&path), report_counts(&report2));
}

/// The admin connection, or None (and a "skipped" line) when unreachable.
async fn pg_admin() -> Option<tokio_postgres::Client> {
    let connect = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Some(client)
        }
        _ => {
            eprintln!("skipped: PostgreSQL not reachable");
            None
        }
    }
}

/// Runs `body` with the URL of a fresh database `<prefix>_<pid>`, dropping
/// it afterwards whatever happened.
async fn with_pg_database<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::FutureExt as _;

    let Some(admin) = pg_admin().await else {
        return;
    };
    let db = format!("{prefix}_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = format!("postgres://root@127.0.0.1:5432/{db}");
    let outcome = std::panic::AssertUnwindSafe(body(url)).catch_unwind().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn postgres_matches_sqlite() {
    with_pg_database("brisk_dataset_test", |url| async move {
        let spec = DemoSpec {
            scale: 0.02,
            seed: 42,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let lite = load(Target::Sqlite(&path), spec, false).await.unwrap();
        let pg = load(Target::Postgres(&url), spec, false).await.unwrap();
        assert_eq!(report_counts(&lite), report_counts(&pg));

        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for (i, table) in TABLES.iter().enumerate() {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n as u64, report_counts(&lite)[i], "{table}");
        }

        // Users 1..20 and a few products and orders, rendered as text on both sides.
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT id, name, email, coalesce(profile_picture, '<null>'), country, created_at, updated_at
                 FROM users WHERE id <= 20 ORDER BY users.id",
            )
            .unwrap();
        let lite_users: Vec<Vec<String>> = stmt
            .query_map([], |r| {
                Ok(vec![
                    r.get::<_, i64>(0)?.to_string(),
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ])
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ts = |col: &str| {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        };
        let pg_users: Vec<Vec<String>> = client
            .query(
                &format!(
                    "SELECT id::text, name, email, coalesce(profile_picture, '<null>'), country, {}, {}
                     FROM users WHERE id <= 20 ORDER BY users.id",
                    ts("created_at"),
                    ts("updated_at")
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (0..7).map(|i| r.get::<_, String>(i)).collect())
            .collect();
        assert_eq!(lite_users.len(), 20);
        assert_eq!(lite_users, pg_users);

        let lite_products: Vec<Vec<String>> = conn
            .prepare(
                "SELECT name, category, printf('%.2f', price), stock, description, created_at
                 FROM products WHERE id <= 10 ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok(vec![
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?.to_string(),
                    r.get(4)?,
                    r.get(5)?,
                ])
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pg_products: Vec<Vec<String>> = client
            .query(
                &format!(
                    "SELECT name, category, price::text, stock::text, description, {}
                     FROM products WHERE id <= 10 ORDER BY id",
                    ts("created_at")
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (0..6).map(|i| r.get::<_, String>(i)).collect())
            .collect();
        assert_eq!(lite_products, pg_products);

        for id in [1i32, 2, 1000] {
            let lite_order: (i64, String, String, String) = conn
                .query_row(
                    "SELECT user_id, status, printf('%.2f', total), created_at FROM orders WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            let row = client
                .query_one(
                    &format!(
                        "SELECT user_id, status, total::text, {} FROM orders WHERE id = $1",
                        ts("created_at")
                    ),
                    &[&id],
                )
                .await
                .unwrap();
            let pg_order = (
                i64::from(row.get::<_, i32>(0)),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
            );
            assert_eq!(lite_order, pg_order, "order {id}");
        }
        let lite_items: String = conn
            .query_row(
                "SELECT group_concat(id || ':' || order_id || ':' || product_id || ':' || quantity || ':' || printf('%.2f', unit_price), ',')
                 FROM (SELECT * FROM order_items WHERE id <= 50 ORDER BY id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let pg_items: String = client
            .query_one(
                "SELECT string_agg(id || ':' || order_id || ':' || product_id || ':' || quantity || ':' || unit_price, ',' ORDER BY id)
                 FROM order_items WHERE id <= 50",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(lite_items, pg_items);

        // Schema: constraints, indexes and identity sequences past the rows.
        let constraints: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE conname IN
                 ('users_pkey', 'users_email_key', 'products_pkey', 'orders_pkey', 'orders_user_id_fkey',
                  'order_items_pkey', 'order_items_order_id_fkey', 'order_items_product_id_fkey')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(constraints, 8);
        let indexes: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE indexname IN
                 ('products_category_price', 'orders_user_id', 'order_items_order_id', 'order_items_product_id')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(indexes, 4);
        let new_id: i32 = client
            .query_one(
                "INSERT INTO users (name, email, country, created_at, updated_at)
                 VALUES ('New User', 'new@example.com', 'US', now(), now()) RETURNING id",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(new_id as u64, lite.users + 1);

        // Refusal and force, as on SQLite.
        let msg = format!(
            "{:#}",
            load(Target::Postgres(&url), spec, false).await.unwrap_err()
        );
        assert!(msg.contains("--force") && msg.contains("users, products"), "{msg}");
        let again = load(Target::Postgres(&url), spec, true).await.unwrap();
        assert_eq!(report_counts(&again), report_counts(&lite));
    })
    .await;
}

/// Scale 1 into SQLite and PostgreSQL, timed. Run with
/// `cargo test --release --bin brisk dataset -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn bench_scale_1() {
    let spec = DemoSpec {
        scale: 1.0,
        seed: 42,
    };
    let path = Path::new("/tmp/shop-bench.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let lite = load(Target::Sqlite(path), spec, true).await.unwrap();
    eprintln!(
        "bench: sqlite scale 1: {:.2}s ({lite:?})",
        lite.elapsed.as_secs_f64()
    );
    with_pg_database("brisk_dataset_bench", |url| async move {
        let pg = load(Target::Postgres(&url), spec, false).await.unwrap();
        eprintln!(
            "bench: postgres scale 1: {:.2}s ({pg:?})",
            pg.elapsed.as_secs_f64()
        );
        assert_eq!(report_counts(&pg), report_counts(&lite));
    })
    .await;
}
