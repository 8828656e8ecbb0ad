//! The path of a read, one step per line: parse → plan → SQL → database →
//! envelope. Knows no HTTP and no cache; [`crate::pipeline`] caches the
//! answer and [`crate::respond`] sends it.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use brisk_query::canonical::{self, At, CanonicalRequest};
use brisk_query::envelope::{self, PageInput};
use brisk_query::plan::{Locate, ReadPlan, ReadRequest};
use brisk_query::sql::{render_collection, render_single};
use brisk_query::{QueryParams, plan_read};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What the path of a read names.
#[derive(Debug, Clone, Copy)]
pub struct ReadPath<'a> {
    pub resource: &'a str,
    pub id: Option<&'a str>,
    pub relation: Option<&'a str>,
}

/// A checked read, not yet run.
#[derive(Debug)]
pub struct PlannedRead {
    pub params: QueryParams,
    pub plan: ReadPlan,
    /// The route, root-relative and escaped: `/v1/users/123/orders`.
    pub route: String,
    /// One spelling for every equivalent request: route and canonical query.
    pub canonical: CanonicalRequest,
    id: Option<String>,
    relation: Option<String>,
    /// Reading the query string.
    pub parse_time: Duration,
    /// Checking it against the schema.
    pub plan_time: Duration,
}

/// A successful read, ready to be sent.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// The RFC 8288 `Link` header of a collection.
    pub link: Option<String>,
    /// Waiting for a connection and running the statements.
    pub db_time: Duration,
    /// Turning rows into the body.
    pub render_time: Duration,
}

/// Parses and plans a read: every check that needs no database.
pub fn plan(state: &AppState, path: ReadPath<'_>, query: &str) -> Result<PlannedRead, ApiError> {
    let started = Instant::now();
    let params = QueryParams::parse(query)?;
    let parsed = Instant::now();
    let request = ReadRequest {
        resource: path.resource,
        id: path.id,
        relation: path.relation,
        params: &params,
    };
    let plan = plan_read(&state.schema, &request, &state.limits, &state.cursors)?;
    // the key as its column reads it: /v1/users/007 and /v1/users/7 are one row
    let key = match &plan {
        ReadPlan::Single(single) => match &single.locate {
            Locate::Key { value, .. } => value.as_text(),
            Locate::Related(scope) => scope.key.as_text(),
        },
        ReadPlan::Collection(collection) => collection.scope.as_ref().and_then(|s| s.key.as_text()),
    };
    let route = canonical::route(path.resource, key.as_deref().or(path.id), path.relation);
    let canonical = CanonicalRequest::new(&route, &canonical::query(&params, &plan, At::Same));
    Ok(PlannedRead {
        params,
        plan,
        route,
        canonical,
        id: path.id.map(str::to_string),
        relation: path.relation.map(str::to_string),
        parse_time: parsed - started,
        plan_time: parsed.elapsed(),
    })
}

impl PlannedRead {
    pub fn resource(&self) -> &str {
        self.plan.resource()
    }

    /// The tables and rows whose changes may change the answer.
    pub fn dependencies(&self) -> brisk_query::plan::Dependencies<'_> {
        self.plan.dependencies()
    }
}

/// Runs a planned read on the database and builds the body.
pub async fn execute(state: &AppState, read: &PlannedRead) -> Result<Answer, ApiError> {
    match &read.plan {
        ReadPlan::Collection(collection) => {
            let sql = render_collection(collection, state.db.dialect());
            let fetched = state.db.read(&sql).await?;
            if fetched.parent_missing {
                return Err(parent_not_found(read));
            }
            let enveloping = Instant::now();
            let page = envelope::collection(PageInput {
                path: &read.route,
                params: &read.params,
                plan: &read.plan,
                rows: fetched.rows,
                total: fetched.total,
                cursors: &state.cursors,
            });
            Ok(Answer {
                body: Bytes::from(page.body),
                link: Some(page.link_header),
                db_time: fetched.db_time,
                render_time: fetched.render_time + enveloping.elapsed(),
            })
        }
        ReadPlan::Single(single) => {
            let sql = render_single(single, state.db.dialect());
            let fetched = state.db.read(&sql).await?;
            let json = fetched.rows.into_iter().next().map(|row| row.json);
            if fetched.parent_missing {
                return Err(parent_not_found(read));
            }
            if let (None, Locate::Key { column, .. }) = (&json, &single.locate) {
                return Err(ApiError::new(
                    Problem::RowNotFound,
                    format!(
                        "{} has no row with {} {}",
                        single.resource,
                        column.name,
                        read.id.as_deref().unwrap_or_default()
                    ),
                ));
            }
            Ok(Answer {
                body: Bytes::from(envelope::single(json.as_deref())),
                link: None,
                db_time: fetched.db_time,
                render_time: fetched.render_time,
            })
        }
    }
}

fn parent_not_found(read: &PlannedRead) -> ApiError {
    let parent = match &read.plan {
        ReadPlan::Collection(plan) => plan.scope.as_ref().map(|s| s.parent.as_str()),
        ReadPlan::Single(plan) => match &plan.locate {
            Locate::Related(scope) => Some(scope.parent.as_str()),
            Locate::Key { .. } => None,
        },
    };
    ApiError::new(
        Problem::RowNotFound,
        format!(
            "{} has no row with key {}, so it has no {}",
            parent.unwrap_or_default(),
            read.id.as_deref().unwrap_or_default(),
            read.relation.as_deref().unwrap_or_default()
        ),
    )
}
