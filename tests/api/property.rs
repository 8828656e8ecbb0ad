//! Random combinations of fields, filters, sorts and pages, each compared
//! with the same question written directly in SQL.

use crate::on_both;
use crate::support::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Filter {
    /// As brisk spells it in the URL.
    url: String,
    /// As the test spells it in SQL, independently of brisk.
    sql: String,
}

#[derive(Debug, Clone)]
struct Case {
    table: &'static str,
    fields: Option<Vec<&'static str>>,
    filters: Vec<Filter>,
    sort: Vec<(&'static str, bool)>,
    limit: u32,
    page: u32,
}

const PRODUCT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "category",
    "price",
    "stock",
    "description",
    "created_at",
    "updated_at",
];
const USER_COLUMNS: &[&str] = &[
    "id",
    "name",
    "email",
    "profile_picture",
    "country",
    "created_at",
    "updated_at",
];
const CATEGORIES: &[&str] = &[
    "electronics",
    "books",
    "home",
    "garden",
    "toys",
    "sports",
    "clothing",
    "beauty",
    "grocery",
    "automotive",
];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "NL", "XX"];

fn filter(url: String, sql: String) -> Filter {
    Filter { url, sql }
}

fn product_filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        prop::sample::select(CATEGORIES)
            .prop_map(|c| filter(format!("category={c}"), format!("category = '{c}'"))),
        prop::sample::subsequence(CATEGORIES, 1..4).prop_map(|cs| filter(
            format!("category[in]={}", cs.join(",")),
            format!(
                "category IN ({})",
                cs.iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        )),
        (100u32..100_000).prop_map(|cents| {
            let price = format!("{}.{:02}", cents / 100, cents % 100);
            filter(format!("price[gte]={price}"), format!("price >= {price}"))
        }),
        (100u32..100_000).prop_map(|cents| {
            let price = format!("{}.{:02}", cents / 100, cents % 100);
            filter(format!("price[lt]={price}"), format!("price < {price}"))
        }),
        (0u32..500).prop_map(|n| filter(format!("stock[gt]={n}"), format!("stock > {n}"))),
        (0u32..500).prop_map(|n| filter(format!("stock[lte]={n}"), format!("stock <= {n}"))),
        (1u32..500).prop_map(|n| filter(format!("id[ne]={n}"), format!("id <> {n}"))),
        prop::collection::vec(0u32..500, 1..5).prop_map(|ns| filter(
            format!(
                "stock[nin]={}",
                ns.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            ),
            format!(
                "stock NOT IN ({})",
                ns.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            )
        )),
        prop::char::range('A', 'Z').prop_map(|c| filter(
            format!("name[like]={c}*"),
            format!("substr(name, 1, 1) = '{c}'")
        )),
    ]
}

fn user_filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        prop::sample::select(COUNTRIES)
            .prop_map(|c| filter(format!("country={c}"), format!("country = '{c}'"))),
        prop::sample::subsequence(COUNTRIES, 1..4).prop_map(|cs| filter(
            format!("country[in]={}", cs.join(",")),
            format!(
                "country IN ({})",
                cs.iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        )),
        any::<bool>().prop_map(|b| filter(
            format!("profile_picture[null]={b}"),
            format!("profile_picture IS {}NULL", if b { "" } else { "NOT " })
        )),
        (1u32..1000).prop_map(|n| filter(format!("id[gt]={n}"), format!("id > {n}"))),
        prop::sample::select(&["an", "el", "ar", "o"][..]).prop_map(|s| filter(
            format!("name[ilike]=*{}*", s.to_uppercase()),
            format!("lower(name) LIKE '%{s}%'")
        )),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let products = (
        prop::option::of(prop::sample::subsequence(PRODUCT_COLUMNS, 1..5).prop_shuffle()),
        prop::collection::vec(product_filter(), 0..3),
        prop::sample::subsequence(
            &["category", "price", "stock", "name", "created_at"][..],
            0..3,
        )
        .prop_shuffle(),
        prop::collection::vec(any::<bool>(), 3),
    )
        .prop_map(|(fields, filters, keys, directions)| {
            ("products", fields, filters, keys, directions)
        });
    let users = (
        prop::option::of(prop::sample::subsequence(USER_COLUMNS, 1..5).prop_shuffle()),
        prop::collection::vec(user_filter(), 0..3),
        prop::sample::subsequence(
            &["profile_picture", "country", "name", "updated_at"][..],
            0..3,
        )
        .prop_shuffle(),
        prop::collection::vec(any::<bool>(), 3),
    )
        .prop_map(|(fields, filters, keys, directions)| {
            ("users", fields, filters, keys, directions)
        });
    (prop_oneof![products, users], 1u32..60, 1u32..5).prop_map(
        |((table, fields, filters, keys, directions), limit, page)| Case {
            table,
            fields,
            filters,
            sort: keys.into_iter().zip(directions).collect(),
            limit,
            page,
        },
    )
}

impl Case {
    fn url(&self) -> String {
        let mut params = Vec::new();
        if let Some(fields) = &self.fields {
            params.push(format!("fields={}", fields.join(",")));
        }
        params.extend(self.filters.iter().map(|f| f.url.clone()));
        if !self.sort.is_empty() {
            let keys: Vec<String> = self
                .sort
                .iter()
                .enumerate()
                // alternate the two spellings
                .map(|(i, (k, desc))| match (i % 2, desc) {
                    (0, true) => format!("-{k}"),
                    (0, false) => k.to_string(),
                    (_, true) => format!("{k}_desc"),
                    (_, false) => format!("{k}_asc"),
                })
                .collect();
            params.push(format!("sort={}", keys.join(",")));
        }
        params.push(format!("limit={}", self.limit));
        params.push(format!("page={}", self.page));
        format!("/v1/{}?{}", self.table, params.join("&"))
    }

    fn sql(&self) -> String {
        let columns = self
            .fields
            .as_ref()
            .map_or("*".to_string(), |f| f.join(", "));
        let mut sql = format!("SELECT {columns} FROM {}", self.table);
        if !self.filters.is_empty() {
            let conditions: Vec<&str> = self.filters.iter().map(|f| f.sql.as_str()).collect();
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        let mut order: Vec<String> = Vec::new();
        for (key, desc) in &self.sort {
            // NULL sorts as the largest value
            if *key == "profile_picture" {
                order.push(format!(
                    "profile_picture IS {}NULL",
                    if *desc { "NOT " } else { "" }
                ));
            }
            order.push(format!("{key}{}", if *desc { " DESC" } else { "" }));
        }
        let last_desc = self.sort.last().is_some_and(|(_, d)| *d);
        order.push(format!("id{}", if last_desc { " DESC" } else { "" }));
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
    async fn random_reads_match_sql(backend: Backend) {
        let fixture = std::sync::Arc::new(Fixture::shop(backend).await);
        random_reads_match_sql(fixture, case(), 96, |case: &Case| (case.url(), case.sql())).await;
    }
}
