//! The response body around the rows [`crate::rows`] rendered: `data`,
//! `meta` and `links`, and the matching `Link` header. The rows arrive
//! already written into the body's buffer; the envelope only appends.

use crate::canonical::{self, At};
use crate::cursor::{CursorCodec, Direction};
use crate::params::QueryParams;
use crate::plan::{Position, ReadPlan};
use crate::rows::Rendered;
use serde::Serialize;

/// One row, rendered.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row as a JSON object.
    pub json: String,
    /// Its sort keys as a JSON array.
    pub keys: String,
}

/// A collection body and its `Link` header value.
#[derive(Debug, Clone)]
pub struct Page {
    pub body: Vec<u8>,
    pub link_header: String,
    /// The rows in the page (for metrics and tests).
    pub len: usize,
}

#[derive(Serialize)]
struct Meta<'a> {
    limit: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<String>,
}

/// Everything a collection body is made from.
pub struct PageInput<'a> {
    /// The route without query string, e.g. `/v1/users/123/orders`.
    pub path: &'a str,
    pub params: &'a QueryParams,
    pub plan: &'a ReadPlan,
    /// The page's rows, rendered (in the order shown).
    pub rows: Rendered,
    pub total: Option<u64>,
    pub cursors: &'a CursorCodec,
}

/// From this row on, a page-mode answer's `next` link is a cursor link:
/// an offset costs more the deeper it goes, a cursor the same at any depth.
pub const CURSORS_FROM_ROW: u64 = 10_000;

/// Builds `{"data":[...],"meta":{...},"links":{...}}` and the `Link` header.
pub fn collection(input: PageInput<'_>) -> Page {
    let ReadPlan::Collection(plan) = input.plan else {
        panic!("collection() takes a collection plan");
    };
    let rows = input.rows;
    let has_more = rows.more;
    let (more_after, more_before) = match &plan.window.position {
        Position::Page(page) => (has_more, *page > 1),
        Position::Cursor(Direction::After, _) => (has_more, true),
        Position::Cursor(Direction::Before, _) => (true, has_more),
    };
    let fingerprint = plan.cursors.then(|| plan.fingerprint());
    let cursor = |direction, keys: Option<&String>| {
        let fingerprint = fingerprint.as_deref()?;
        keys.map(|keys| input.cursors.encode(direction, keys, fingerprint))
    };
    let next_cursor = if more_after {
        cursor(Direction::After, rows.last_keys.as_ref())
    } else {
        None
    };
    let prev_cursor = if more_before {
        cursor(Direction::Before, rows.first_keys.as_ref())
    } else {
        None
    };

    let link = |at| {
        format!(
            "{}?{}",
            input.path,
            canonical::query(input.params, input.plan, at)
        )
    };
    let page_number = match plan.window.position {
        Position::Page(page) => Some(page),
        Position::Cursor(..) => None,
    };
    let last_page = input
        .total
        .map(|total| total.div_ceil(plan.window.limit).max(1));
    let links = Links {
        this: link(At::Same),
        first: link(At::Start),
        prev: match (page_number, &prev_cursor) {
            (Some(page), _) if page > 1 => Some(link(At::Page(page - 1))),
            (None, Some(cursor)) => Some(link(At::Cursor(cursor))),
            _ => None,
        },
        next: match (page_number, &next_cursor) {
            // deep pages cost more with every page; cursors cost the same
            (Some(page), Some(cursor)) if page * plan.window.limit >= CURSORS_FROM_ROW => {
                Some(link(At::Cursor(cursor)))
            }
            (Some(page), _) if more_after => Some(link(At::Page(page + 1))),
            (None, Some(cursor)) => Some(link(At::Cursor(cursor))),
            _ => None,
        },
        last: last_page.map(|page| link(At::Page(page))),
    };
    let meta = Meta {
        limit: plan.window.limit,
        page: page_number,
        next_cursor: next_cursor.as_deref(),
        prev_cursor: prev_cursor.as_deref(),
        total: input.total,
    };

    let mut body = rows.body;
    body.reserve(512);
    body.extend_from_slice(b"],\"meta\":");
    serde_json::to_writer(&mut body, &meta).expect("meta serialises");
    body.extend_from_slice(b",\"links\":");
    serde_json::to_writer(&mut body, &links).expect("links serialises");
    body.push(b'}');

    Page {
        body,
        link_header: link_header(&links),
        len: rows.count,
    }
}

/// `{"data":{...}}` from a single row's rendered page; `None` when there
/// is no row.
pub fn single_page(rows: Rendered) -> Option<Vec<u8>> {
    if rows.count == 0 {
        return None;
    }
    let mut body = rows.body;
    body.push(b'}');
    Some(body)
}

/// `{"data":{...}}`, or `{"data":null}` for a to-one relation that is null.
pub fn single(row: Option<&str>) -> Vec<u8> {
    let row = row.unwrap_or("null");
    let mut body = Vec::with_capacity(row.len() + 10);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(row.as_bytes());
    body.push(b'}');
    body
}

/// `{"data":[...]}`: the rows a write created.
pub fn many(rows: &[&str]) -> Vec<u8> {
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 12);
    body.extend_from_slice(b"{\"data\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row.as_bytes());
    }
    body.extend_from_slice(b"]}");
    body
}

/// RFC 8288: `<uri>; rel="next", <uri>; rel="prev", ...`.
fn link_header(links: &Links) -> String {
    let mut parts = vec![format!("<{}>; rel=\"first\"", links.first)];
    for (rel, target) in [
        ("prev", &links.prev),
        ("next", &links.next),
        ("last", &links.last),
    ] {
        if let Some(target) = target {
            parts.push(format!("<{target}>; rel=\"{rel}\""));
        }
    }
    parts.join(", ")
}
