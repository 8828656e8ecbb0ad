//! Chinook (`tests/fixtures/chinook`), a database nobody here wrote: its
//! SQLite file stores date-times as SQLite writes them
//! (`2021-01-01 00:00:00`) in `DATETIME` columns.

use crate::on_both;
use crate::support::*;
use proptest::prelude::*;
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

/// Chinook loaded into a throwaway PostgreSQL database from its own script;
/// `None` when PostgreSQL is not reachable and not required.
async fn chinook_postgres(tag: &'static str) -> Option<String> {
    let url = tokio::task::spawn_blocking(move || throwaway_postgres(tag))
        .await
        .unwrap()?;
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/chinook/Chinook_PostgreSql.sql"),
    )
    .unwrap();
    // the script makes and enters a database of its own first
    let script: String = script
        .lines()
        .filter(|line| {
            !(line.starts_with("DROP DATABASE")
                || line.starts_with("CREATE DATABASE")
                || line.starts_with("\\c "))
        })
        .collect::<Vec<_>>()
        .join("\n");
    execute(Backend::Postgres, &url, &script).await;
    Some(url)
}

/// Chinook's names as one database spells them: snake_case on PostgreSQL
/// (`invoice_line`, `unit_price`), PascalCase in the SQLite file
/// (`InvoiceLine`, `UnitPrice`).
#[derive(Debug, Clone, Copy)]
struct Names(Backend);

impl Names {
    /// A snake_case name as this database spells it.
    fn name(self, snake: &str) -> String {
        match self.0 {
            Backend::Postgres => snake.to_string(),
            Backend::Sqlite => snake
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or(String::new(), |first| {
                        first.to_uppercase().chain(chars).collect()
                    })
                })
                .collect(),
        }
    }

    /// Replaces every `{snake_name}` in `text` with this database's name.
    fn spell(self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("a closed name");
            out.push_str(&rest[..open]);
            out.push_str(&self.name(&rest[open + 1..close]));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Chinook served from either database; `None` when PostgreSQL is not
/// reachable and not required.
async fn serve_chinook(backend: Backend, tag: &'static str) -> Option<Fixture> {
    let url = match backend {
        Backend::Sqlite => chinook_sqlite(tag),
        Backend::Postgres => chinook_postgres(tag).await?,
    };
    Some(Fixture::serve(backend, &url, |_| {}).await)
}

#[derive(Debug, Clone)]
struct ChinookFilter {
    /// `{genre_id}[in]=1,2`: names in braces, spelled per database.
    url: String,
    /// The same question in SQL, independently of brisk.
    sql: String,
    /// Where SQLite needs other SQL (its date-times).
    sqlite_sql: Option<String>,
}

#[derive(Debug, Clone)]
struct ChinookCase {
    table: &'static str,
    key: &'static str,
    fields: Vec<&'static str>,
    filters: Vec<ChinookFilter>,
    sort: Vec<(&'static str, bool)>,
    limit: u32,
    page: u32,
}

fn chinook_filter(url: String, sql: String) -> ChinookFilter {
    ChinookFilter {
        url,
        sql,
        sqlite_sql: None,
    }
}

fn list(numbers: &[u32], separator: &str) -> String {
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

fn track_filter() -> impl Strategy<Value = ChinookFilter> {
    prop_oneof![
        prop::collection::vec(1u32..26, 1..4).prop_map(|ids| chinook_filter(
            format!("{{genre_id}}[in]={}", list(&ids, ",")),
            format!("{{genre_id}} IN ({})", list(&ids, ", "))
        )),
        prop::sample::select(&["0.99", "1.99", "1.00"][..]).prop_map(|p| chinook_filter(
            format!("{{unit_price}}[gte]={p}"),
            format!("{{unit_price}} >= {p}")
        )),
        (0u32..600_000).prop_map(|ms| chinook_filter(
            format!("{{milliseconds}}[lt]={ms}"),
            format!("{{milliseconds}} < {ms}")
        )),
        (0u32..20_000_000)
            .prop_map(|b| chinook_filter(format!("{{bytes}}[gt]={b}"), format!("{{bytes}} > {b}"))),
        any::<bool>().prop_map(|b| chinook_filter(
            format!("{{composer}}[null]={b}"),
            format!("{{composer}} IS {}NULL", if b { "" } else { "NOT " })
        )),
        prop::char::range('A', 'Z').prop_map(|c| chinook_filter(
            format!("{{name}}[like]={c}*"),
            format!("substr({{name}}, 1, 1) = '{c}'")
        )),
        prop::sample::select(&["love", "the", "ma", "x"][..]).prop_map(|s| chinook_filter(
            format!("{{name}}[ilike]=*{}*", s.to_uppercase()),
            format!("lower({{name}}) LIKE '%{s}%'")
        )),
        (1u32..348).prop_map(|id| chinook_filter(
            format!("{{album_id}}={id}"),
            format!("{{album_id}} = {id}")
        )),
    ]
}

const COUNTRIES: &[&str] = &[
    "USA", "Canada", "Brazil", "Germany", "France", "India", "Chile",
];

fn invoice_filter() -> impl Strategy<Value = ChinookFilter> {
    prop_oneof![
        prop::sample::subsequence(COUNTRIES, 1..3).prop_map(|cs| chinook_filter(
            format!("{{billing_country}}[in]={}", cs.join(",")),
            format!(
                "{{billing_country}} IN ({})",
                cs.iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        )),
        any::<bool>().prop_map(|b| chinook_filter(
            format!("{{billing_state}}[null]={b}"),
            format!("{{billing_state}} IS {}NULL", if b { "" } else { "NOT " })
        )),
        (0u32..2500).prop_map(|cents| {
            let total = format!("{}.{:02}", cents / 100, cents % 100);
            chinook_filter(
                format!("{{total}}[gt]={total}"),
                format!("{{total}} > {total}"),
            )
        }),
        prop::collection::vec(1u32..60, 1..4).prop_map(|ids| chinook_filter(
            format!("{{customer_id}}[in]={}", list(&ids, ",")),
            format!("{{customer_id}} IN ({})", list(&ids, ", "))
        )),
        (2021u32..2026, 1u32..13).prop_map(|(year, month)| {
            let day = format!("{year}-{month:02}-01");
            ChinookFilter {
                url: format!("{{invoice_date}}[gte]={day}"),
                sql: format!("{{invoice_date}} >= '{day}'"),
                sqlite_sql: Some(format!("datetime({{invoice_date}}) >= datetime('{day}')")),
            }
        }),
    ]
}

const TRACK_FIELDS: &[&str] = &[
    "track_id",
    "name",
    "album_id",
    "media_type_id",
    "genre_id",
    "composer",
    "milliseconds",
    "bytes",
    "unit_price",
];
/// Without `invoice_date`, which the two databases' SQL spell differently.
const INVOICE_FIELDS: &[&str] = &[
    "invoice_id",
    "customer_id",
    "billing_city",
    "billing_state",
    "billing_country",
    "total",
];

fn chinook_case() -> impl Strategy<Value = ChinookCase> {
    let tracks = (
        prop::sample::subsequence(TRACK_FIELDS, 1..5).prop_shuffle(),
        prop::collection::vec(track_filter(), 0..3),
        prop::sample::subsequence(
            &["name", "composer", "milliseconds", "unit_price", "genre_id"][..],
            0..3,
        )
        .prop_shuffle(),
    )
        .prop_map(|(fields, filters, keys)| ("track", "track_id", fields, filters, keys));
    let invoices = (
        prop::sample::subsequence(INVOICE_FIELDS, 1..5).prop_shuffle(),
        prop::collection::vec(invoice_filter(), 0..3),
        prop::sample::subsequence(
            &["billing_country", "billing_state", "total", "invoice_date"][..],
            0..3,
        )
        .prop_shuffle(),
    )
        .prop_map(|(fields, filters, keys)| ("invoice", "invoice_id", fields, filters, keys));
    (
        prop_oneof![tracks, invoices],
        prop::collection::vec(any::<bool>(), 3),
        1u32..60,
        1u32..5,
    )
        .prop_map(
            |((table, key, fields, filters, keys), directions, limit, page)| ChinookCase {
                table,
                key,
                fields,
                filters,
                sort: keys.into_iter().zip(directions).collect(),
                limit,
                page,
            },
        )
}

impl ChinookCase {
    fn url(&self) -> String {
        let mut params = vec![format!(
            "fields={}",
            self.fields
                .iter()
                .map(|f| format!("{{{f}}}"))
                .collect::<Vec<_>>()
                .join(",")
        )];
        params.extend(self.filters.iter().map(|f| f.url.clone()));
        if !self.sort.is_empty() {
            let keys: Vec<String> = self
                .sort
                .iter()
                .map(|(k, desc)| format!("{}{{{k}}}", if *desc { "-" } else { "" }))
                .collect();
            params.push(format!("sort={}", keys.join(",")));
        }
        params.push(format!("limit={}", self.limit));
        params.push(format!("page={}", self.page));
        format!("/v1/{{{}}}?{}", self.table, params.join("&"))
    }

    fn sql(&self, backend: Backend) -> String {
        let columns: Vec<String> = self.fields.iter().map(|f| format!("{{{f}}}")).collect();
        let mut sql = format!("SELECT {} FROM {{{}}}", columns.join(", "), self.table);
        if !self.filters.is_empty() {
            let conditions: Vec<&str> = self
                .filters
                .iter()
                .map(|f| match (&f.sqlite_sql, backend) {
                    (Some(sqlite), Backend::Sqlite) => sqlite.as_str(),
                    _ => f.sql.as_str(),
                })
                .collect();
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        let mut order: Vec<String> = Vec::new();
        for (key, desc) in &self.sort {
            // NULL sorts as the largest value, on both databases
            order.push(format!(
                "{{{key}}} IS {}NULL",
                if *desc { "NOT " } else { "" }
            ));
            order.push(format!("{{{key}}}{}", if *desc { " DESC" } else { "" }));
        }
        let last_desc = self.sort.last().is_some_and(|(_, d)| *d);
        order.push(format!(
            "{{{}}}{}",
            self.key,
            if last_desc { " DESC" } else { "" }
        ));
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {} OFFSET {}",
            order.join(", "),
            self.limit,
            (self.page - 1) * self.limit
        ));
        sql
    }
}

on_both! {
    async fn random_chinook_reads_match_sql(backend: Backend) {
        let Some(fx) = serve_chinook(backend, "random").await else {
            skipped("Chinook on PostgreSQL");
            return;
        };
        let names = Names(backend);
        random_reads_match_sql(std::sync::Arc::new(fx), chinook_case(), 64, move |case: &ChinookCase| {
            (names.spell(&case.url()), names.spell(&case.sql(backend)))
        })
        .await;
    }

    async fn chinook_embeds_match_sql_joins(backend: Backend) {
        let Some(fx) = serve_chinook(backend, "embeds").await else {
            skipped("Chinook on PostgreSQL");
            return;
        };
        let names = Names(backend);
        let url = names.spell(
            "/v1/{invoice_line}?include={track}.{album}&sort=-{invoice_line_id}&limit=40",
        );
        let lines = fx.data(&url).await;
        assert_eq!(lines.len(), 40);
        let track = names.name("track");
        let album = names.name("album");
        let got: Vec<Value> = lines
            .iter()
            .map(|line| {
                serde_json::json!({
                    "line": line[names.name("invoice_line_id")],
                    "track": line[&track][names.name("name")],
                    "album": line[&track][&album][names.name("title")],
                })
            })
            .collect();
        let want = fx
            .sql(&names.spell(
                "SELECT l.{invoice_line_id} AS line, t.{name} AS track, a.{title} AS album
                 FROM {invoice_line} l JOIN {track} t ON t.{track_id} = l.{track_id}
                 JOIN {album} a ON a.{album_id} = t.{album_id}
                 ORDER BY l.{invoice_line_id} DESC LIMIT 40",
            ))
            .await;
        assert_eq!(got, want.into_iter().map(Value::Object).collect::<Vec<_>>());
    }
}
