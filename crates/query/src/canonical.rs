//! One spelling per meaning: the routes and query strings brisk writes in
//! links, the [`CanonicalRequest`] a response cache files an answer under
//! (and its ETag is made from), and the fingerprint a cursor is bound to.
//! `sort=price_asc` and `sort=price` give the same string, and so do
//! parameters in any order.

use crate::params::{Operator, QueryParams};
use crate::plan::{CollectionPlan, ReadPlan};
use crate::value::SqlValue;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// A read in its one spelling: route and canonical query
/// (`/v1/products?category%5Beq%5D=books&sort=id&limit=20`). Equivalent
/// requests have equal keys; the cache files answers under it, and an
/// answer's ETag is made from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalRequest(String);

impl CanonicalRequest {
    /// `route` as [`route`] spells it, `query` as [`query`] does.
    pub fn new(route: &str, query: &str) -> CanonicalRequest {
        CanonicalRequest(format!("{route}?{query}"))
    }

    /// `GET /v1/{resource}/{key}` without parameters: what a write's ETag
    /// (and `If-Match`) is about.
    pub fn row(resource: &str, key: &str) -> CanonicalRequest {
        CanonicalRequest::new(&route(resource, Some(key), None), "")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The request as callers of one partition make it (the server's
    /// callers who see the same rows and columns): answers that differ by
    /// caller never share a key, an ETag or a second-level cache entry. A
    /// route has no space, so the partition cannot run into it.
    pub fn within(self, partition: &str) -> CanonicalRequest {
        if partition.is_empty() {
            self
        } else {
            CanonicalRequest(format!("{partition} {}", self.0))
        }
    }
}

/// A path segment: everything but unreserved characters is escaped.
pub(crate) const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The route of a read, root-relative and escaped: `/v1/users/123/orders`.
/// `key` is a row key as [`crate::key::RowKey::text`] spells it: already
/// a path segment.
pub fn route(resource: &str, key: Option<&str>, relation: Option<&str>) -> String {
    let mut route = String::from("/v1/");
    route.extend(utf8_percent_encode(resource, SEGMENT));
    if let Some(key) = key {
        route.push('/');
        route.push_str(key);
    }
    if let Some(relation) = relation {
        route.push('/');
        route.extend(utf8_percent_encode(relation, SEGMENT));
    }
    route
}

/// Bytes escaped in keys and values: everything that has a meaning in a
/// query string or a `Link` header, plus the brackets RFC 8288 asks for.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'[')
    .add(b']')
    .add(b';')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// Where a link points within a collection.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// The plan's own position (the `self` link, the cache key).
    Same,
    Page(u64),
    Cursor(&'a str),
    /// The first page: neither page nor cursor.
    Start,
}

/// The canonical query string (no `?`) of a read, at the given position.
pub fn query(params: &QueryParams, plan: &ReadPlan, at: At<'_>) -> String {
    let mut q = QueryString::default();
    if let Some(fields) = &params.fields {
        let mut unique: Vec<&str> = Vec::with_capacity(fields.len());
        for f in fields {
            if !unique.contains(&f.as_str()) {
                unique.push(f);
            }
        }
        q.pair("fields", &unique.join(","));
    }
    if !params.include.is_empty() {
        let mut include: Vec<&str> = params.include.iter().map(String::as_str).collect();
        include.sort_unstable();
        include.dedup();
        q.pair("include", &include.join(","));
    }
    if let ReadPlan::Collection(plan) = plan {
        collection_pairs(&mut q, params, plan, at);
    }
    q.0
}

fn collection_pairs(q: &mut QueryString, params: &QueryParams, plan: &CollectionPlan, at: At<'_>) {
    for (key, value) in plan.canonical_filters() {
        q.pair(&key, &value);
    }
    q.pair("sort", &plan.canonical_sort());
    q.pair("limit", &plan.window.limit.to_string());
    match at {
        At::Same => {
            if let Some(cursor) = &params.cursor {
                q.pair("cursor", cursor);
            } else if let Some(page) = params.page.filter(|p| *p > 1) {
                q.pair("page", &page.to_string());
            }
        }
        At::Page(1) | At::Start => {}
        At::Page(page) => q.pair("page", &page.to_string()),
        At::Cursor(cursor) => q.pair("cursor", cursor),
    }
    if plan.count {
        q.pair("count", "exact");
    }
}

impl CollectionPlan {
    /// What a cursor is bound to: the rows' set and order, not the page size
    /// or the fields shown.
    pub fn fingerprint(&self) -> String {
        let mut text = self.resource.clone();
        if let Some(scope) = &self.scope {
            text.push_str(&format!(
                "|{}/{:?}/{}",
                scope.parent, scope.key, scope.relation.name
            ));
        }
        for filter in self.canonical_filters() {
            text.push('|');
            text.push_str(&filter.0);
            text.push('=');
            text.push_str(&filter.1);
        }
        text.push_str("|sort=");
        text.push_str(&self.canonical_sort());
        text
    }

    /// Filters as (key, value) query pairs, sorted, so that equivalent
    /// requests spell them alike.
    pub fn canonical_filters(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .filters
            .iter()
            .map(|f| {
                let path: String = f.path.iter().map(|key| format!("->{key}")).collect();
                let key = format!("{}{path}[{}]", f.column.name, f.operator.name());
                let value = match f.operator {
                    Operator::In | Operator::Nin => f
                        .values
                        .iter()
                        .map(|v| quote_list_item(&v.as_text().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => f
                        .values
                        .first()
                        .and_then(SqlValue::as_text)
                        .unwrap_or_default(),
                };
                (key, value)
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// The sort as `-price,name`, tie-breakers included.
    pub fn canonical_sort(&self) -> String {
        self.order
            .iter()
            .map(|k| {
                if k.descending {
                    format!("-{}", k.column.name)
                } else {
                    k.column.name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn quote_list_item(item: &str) -> String {
    if item.contains([',', '"', '\\']) || item.starts_with('"') {
        format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        item.to_string()
    }
}

#[derive(Default)]
struct QueryString(String);

impl QueryString {
    fn pair(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.extend(utf8_percent_encode(key, QUERY_VALUE));
        self.0.push('=');
        self.0.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::CursorCodec;
    use crate::plan::{Limits, ReadRequest, plan_read};
    use crate::schema::fixtures::shop;

    fn canonical(resource: &str, id: Option<&str>, query_string: &str) -> String {
        let params = QueryParams::parse(query_string).unwrap();
        let request = ReadRequest {
            resource,
            id,
            relation: None,
            params: &params,
        };
        let plan = plan_read(
            &shop(),
            &request,
            &Limits::default(),
            &CursorCodec::new(vec![1]),
        )
        .unwrap();
        query(&params, &plan, At::Same)
    }

    #[test]
    fn equivalent_requests_share_one_spelling() {
        let a = canonical(
            "products",
            None,
            "page=2&limit=50&category=electronics&sort=price_asc",
        );
        let b = canonical(
            "products",
            None,
            "sort=price&category[eq]=electronics&limit=50&page=2",
        );
        assert_eq!(a, b);
        assert_eq!(
            a,
            "category%5Beq%5D=electronics&sort=price,id&limit=50&page=2"
        );
        assert_eq!(
            canonical(
                "products",
                None,
                "include=order_items&fields=name,name,price&page=1"
            ),
            "fields=name,price&include=order_items&sort=id&limit=20"
        );
        assert_eq!(
            canonical(
                "orders",
                None,
                "status[in]=paid,shipped&total[gte]=10&user_id=3"
            ),
            canonical(
                "orders",
                None,
                "user_id=3&total%5Bgte%5D=10&status[in]=paid,shipped&limit=20"
            )
        );
        assert_eq!(canonical("users", Some("1"), "fields=name"), "fields=name");
        assert_eq!(
            canonical("users", None, "name=a%26b=c"),
            "name%5Beq%5D=a%26b%3Dc&sort=id&limit=20"
        );
    }
}
