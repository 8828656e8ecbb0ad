//! The path of a read, one step per line: parse → plan → SQL → database →
//! envelope. Knows no HTTP beyond the answer it returns; the handler turns
//! that into a response.

use crate::app::AppState;
use crate::error::{ApiError, Problem};
use brisk_query::envelope::{self, PageInput};
use brisk_query::plan::{Locate, ReadPlan, ReadRequest};
use brisk_query::sql::{render_collection, render_single};
use brisk_query::{QueryParams, plan_read};
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::time::Duration;

/// What the path of a read names.
#[derive(Debug, Clone, Copy)]
pub struct ReadPath<'a> {
    pub resource: &'a str,
    pub id: Option<&'a str>,
    pub relation: Option<&'a str>,
}

/// A successful read, ready to be sent.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// The RFC 8288 `Link` header of a collection.
    pub link: Option<String>,
    pub db_time: Duration,
}

/// Runs a read from its path and raw query string.
pub async fn read(state: &AppState, path: ReadPath<'_>, query: &str) -> Result<Answer, ApiError> {
    let params = QueryParams::parse(query)?;
    let request = ReadRequest {
        resource: path.resource,
        id: path.id,
        relation: path.relation,
        params: &params,
    };
    let plan = plan_read(&state.schema, &request, &state.limits, &state.cursors)?;
    match &plan {
        ReadPlan::Collection(collection) => {
            let sql = render_collection(collection, state.db.dialect());
            let fetched = state.db.collection(&sql).await?;
            if fetched.parent_missing {
                return Err(parent_not_found(path));
            }
            let page = envelope::collection(PageInput {
                path: &route(path),
                params: &params,
                plan: &plan,
                rows: fetched.rows,
                total: fetched.total,
                cursors: &state.cursors,
            });
            Ok(Answer {
                body: Bytes::from(page.body),
                link: Some(page.link_header),
                db_time: fetched.db_time,
            })
        }
        ReadPlan::Single(single) => {
            let sql = render_single(single, state.db.dialect());
            let fetched = state.db.single(&sql).await?;
            if fetched.parent_missing {
                return Err(parent_not_found(path));
            }
            if fetched.json.is_none() && matches!(single.locate, Locate::Key { .. }) {
                return Err(ApiError::new(
                    Problem::RowNotFound,
                    format!(
                        "{} has no row with {} {}",
                        path.resource,
                        state
                            .schema
                            .resource(path.resource)
                            .and_then(|r| r.row_key())
                            .map_or("key", |c| c.name.as_str()),
                        path.id.unwrap_or_default()
                    ),
                ));
            }
            Ok(Answer {
                body: Bytes::from(envelope::single(fetched.json.as_deref())),
                link: None,
                db_time: fetched.db_time,
            })
        }
    }
}

fn parent_not_found(path: ReadPath<'_>) -> ApiError {
    ApiError::new(
        Problem::RowNotFound,
        format!(
            "{} has no row with key {}, so it has no {}",
            path.resource,
            path.id.unwrap_or_default(),
            path.relation.unwrap_or_default()
        ),
    )
}

/// A path segment: everything but unreserved characters is escaped.
const SEGMENT: &AsciiSet = &CONTROLS
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

/// The route of a read, root-relative, for links.
fn route(path: ReadPath<'_>) -> String {
    let mut route = String::from("/v1");
    for segment in [Some(path.resource), path.id, path.relation]
        .into_iter()
        .flatten()
    {
        route.push('/');
        route.extend(utf8_percent_encode(segment, SEGMENT));
    }
    route
}
