//! Chinook (`tests/fixtures/chinook`), a database nobody here wrote: its
//! SQLite file stores date-times as SQLite writes them
//! (`2021-01-01 00:00:00`) in `DATETIME` columns.

use crate::support::*;
use serde_json::Value;

/// A copy of the Chinook SQLite file of the test's own.
fn chinook_sqlite(tag: &str) -> String {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/chinook/Chinook_Sqlite.sqlite");
    let copy = std::env::temp_dir()
        .join("brisk-tests")
        .join(format!("chinook-{}-{tag}.sqlite", std::process::id()));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(source, &copy).unwrap();
    copy.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_date_times_are_served_and_compared_as_instants() {
    let db = chinook_sqlite("datetimes");
    let fx = Fixture::serve(Backend::Sqlite, &db, |_| {}).await;
    let first = fx.json("/v1/Invoice/1", 200).await;
    assert_eq!(first["data"]["InvoiceDate"], "2021-01-01T00:00:00Z");
    let document = fx.json("/v1/openapi.json", 200).await;
    let property = &document["components"]["schemas"]["Invoice"]["properties"]["InvoiceDate"];
    assert_eq!(property["format"], "date-time", "{property}");
    // filters find exactly the rows SQL's datetime() comparisons find,
    // however the instant is spelled
    for (query, instant, op) in [
        (
            "InvoiceDate[gte]=2025-06-01T00:00:00Z",
            "2025-06-01T00:00:00Z",
            ">=",
        ),
        (
            "InvoiceDate[lt]=2021-02-01T02:00:00%2B02:00",
            "2021-02-01T02:00:00+02:00",
            "<",
        ),
        (
            "InvoiceDate=2021-01-02T00:00:00Z",
            "2021-01-02T00:00:00Z",
            "=",
        ),
        ("InvoiceDate[gt]=2025-12-01", "2025-12-01", ">"),
        (
            "InvoiceDate[in]=2021-01-01T00:00:00Z,2021-01-11T00:00:00.000Z",
            "",
            "IN",
        ),
    ] {
        let served: Vec<Value> = fx
            .data(&format!(
                "/v1/Invoice?{query}&fields=InvoiceId&sort=InvoiceId&limit=1000"
            ))
            .await
            .iter()
            .map(|row| row["InvoiceId"].clone())
            .collect();
        let condition = if op == "IN" {
            "datetime(InvoiceDate) IN (datetime('2021-01-01T00:00:00Z'), datetime('2021-01-11T00:00:00.000Z'))".to_string()
        } else {
            format!("datetime(InvoiceDate) {op} datetime('{instant}')")
        };
        let want = fx
            .sql_column(&format!(
                "SELECT InvoiceId FROM Invoice WHERE {condition} ORDER BY InvoiceId"
            ))
            .await;
        assert!(!want.is_empty(), "{query}");
        assert_eq!(served, want, "{query}");
    }
    // a date that does not exist is refused on SQLite too
    let problem = fx.json("/v1/Invoice?InvoiceDate[gt]=2024-13-45", 400).await;
    assert_eq!(
        problem["errors"][0]["parameter"], "InvoiceDate[gt]",
        "{problem}"
    );
}
