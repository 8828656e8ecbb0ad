//! The path of a read, one step per line: parse → plan → SQL → database →
//! envelope. Knows no HTTP and no cache; [`crate::pipeline`] caches the
//! answer and [`crate::respond`] sends it.

use crate::access::Viewer;
use crate::config::CompressionSettings;
use crate::db::{DbError, ReadLimits, ReadRows, refused_value};
use crate::encoding::{self, AcceptEncoding, Coding, Negotiated};
use crate::error::{ApiError, FieldError, Problem, shorten};
use crate::gate::Client;
use crate::state::AppState;
use axum::http::{HeaderValue, header};
use brisk_query::canonical::{self, At, CanonicalRequest};
use brisk_query::envelope::{self, PageInput};
use brisk_query::plan::{Filter, Locate, ReadPlan, ReadRequest};
use brisk_query::rows::Exceeded;
use brisk_query::sql::{render_collection, render_single};
use brisk_query::{QueryParams, plan_read};
use bytes::Bytes;
use std::sync::Arc;
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
    /// The body in the coding the client takes, if it takes one.
    pub compressed: Option<Compressed>,
    /// The RFC 8288 `Link` header of a collection.
    pub link: Option<String>,
    /// Waiting for a connection and running the statements.
    pub db_time: Duration,
    /// Turning rows into the body.
    pub render_time: Duration,
}

/// A body compressed on the thread that rendered it.
#[derive(Debug, Clone)]
pub struct Compressed {
    pub coding: Coding,
    pub level: i32,
    pub bytes: Bytes,
    /// Compressing it.
    pub time: Duration,
}

/// Parses and plans a read as `viewer` may make it: every check that needs
/// no database, against the schema its role sees, with its row rules.
pub fn plan(
    state: &AppState,
    viewer: &Viewer,
    path: ReadPath<'_>,
    query: &str,
) -> Result<PlannedRead, ApiError> {
    let started = Instant::now();
    let role = &viewer.role;
    if !role.may_read(path.resource) && state.schema.resource(path.resource).is_some() {
        return Err(ApiError::new(
            Problem::Forbidden,
            format!("role {} may not read {}", role.name, path.resource),
        ));
    }
    let params = QueryParams::parse(query)?;
    let parsed = Instant::now();
    let request = ReadRequest {
        resource: path.resource,
        id: path.id,
        relation: path.relation,
        params: &params,
    };
    let mut plan = plan_read(&role.reads, &request, &state.limits, &state.cursors)?;
    if !role.rules.is_empty() {
        let rules = role.rules.bind(&state.schema, &|path| {
            crate::auth::claim_at(&viewer.claims, path).cloned()
        })?;
        plan.restrict_rows(&rules);
    }
    // the key as its column reads it: /v1/users/007 and /v1/users/7 are one row
    let key = match &plan {
        ReadPlan::Single(single) => match &single.locate {
            Locate::Key(key) => Some(key.text()),
            Locate::Related(scope) => Some(scope.key.text()),
        },
        ReadPlan::Collection(collection) => collection.scope.as_ref().map(|s| s.key.text()),
    };
    let route = canonical::route(path.resource, key.as_deref().or(path.id), path.relation);
    let canonical = CanonicalRequest::new(&route, &canonical::query(&params, &plan, At::Same))
        .within(&viewer.partition);
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

    /// Whether the answer is one row by its key, every column, nothing
    /// embedded (`GET /v1/{table}/{key}`): the representation writes check
    /// `If-Match` against, and so tagged by its content.
    pub fn is_row(&self) -> bool {
        matches!(&self.plan, ReadPlan::Single(single) if matches!(single.locate, Locate::Key { .. }))
            && self.params.fields.is_none()
            && self.params.include.is_empty()
    }
}

/// Who asks for a read, and since when: its turn at the database is
/// taken in the client's name, and its deadline runs from `since`.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub client: Client,
    pub since: Instant,
}

/// Runs a planned read on the database and builds the body, within the
/// request's deadline and the answer's budget. With `accept`, the body is
/// also compressed in the coding the client takes (when it takes one), on
/// the thread that rendered it.
pub async fn execute(
    state: &Arc<AppState>,
    read: &Arc<PlannedRead>,
    caller: Caller,
    accept: Option<AcceptEncoding>,
) -> Result<Answer, ApiError> {
    let deadline = caller.since + state.read_timeout;
    let _turn = state
        .gate
        .admit(caller.client, deadline.into())
        .await
        .map_err(ApiError::from)?;
    let limits = ReadLimits {
        deadline,
        budget: state.budget,
    };
    let sql = Arc::new(match &read.plan {
        ReadPlan::Collection(collection) => render_collection(collection, state.db.dialect()),
        ReadPlan::Single(single) => render_single(single, state.db.dialect()),
    });
    let finish = {
        let (state, read) = (state.clone(), read.clone());
        move |fetched: ReadRows| answer(&state, &read, fetched, accept)
    };
    state
        .db
        .read(sql, limits, finish)
        .await
        .map_err(|error| database_error(state, &read.plan, error))?
}

/// The answer made of a read's rendered rows: the envelope around them,
/// and the client's coding of it.
fn answer(
    state: &AppState,
    read: &PlannedRead,
    fetched: ReadRows,
    accept: Option<AcceptEncoding>,
) -> Result<Answer, ApiError> {
    if fetched.parent_missing {
        return Err(parent_not_found(read));
    }
    let enveloping = Instant::now();
    let (body, link) = match &read.plan {
        ReadPlan::Collection(_) => {
            let page = envelope::collection(PageInput {
                path: &read.route,
                params: &read.params,
                plan: &read.plan,
                rows: fetched.rows,
                total: fetched.total,
                cursors: &state.cursors,
            });
            (page.body, Some(page.link_header))
        }
        ReadPlan::Single(single) => match (envelope::single_page(fetched.rows), &single.locate) {
            (Some(body), _) => (body, None),
            (None, Locate::Key(key)) => {
                return Err(ApiError::new(
                    Problem::RowNotFound,
                    format!("{} has no row with {}", single.resource, key.describe()),
                ));
            }
            // a to-one relation that is null
            (None, Locate::Related(_)) => (envelope::single(None), None),
        },
    };
    let body = exact_bytes(body);
    let render_time = fetched.render_time + enveloping.elapsed();
    Ok(Answer {
        compressed: accept.and_then(|accept| compress(&state.compression, accept, &body)),
        body,
        link,
        db_time: fetched.db_time,
        render_time,
    })
}

/// `body` in the coding `accept` chooses for it, if any, at the level of a
/// first answer.
fn compress(
    settings: &CompressionSettings,
    accept: AcceptEncoding,
    body: &[u8],
) -> Option<Compressed> {
    let Negotiated::Encode(coding) = accept.choose(body.len() >= settings.min_bytes) else {
        return None;
    };
    let started = Instant::now();
    let level = settings.levels.level(coding);
    Some(Compressed {
        coding,
        level,
        bytes: encoding::compress(coding, level, body),
        time: started.elapsed(),
    })
}

/// A database failure, with the limits a read ran into named.
fn database_error(state: &AppState, plan: &ReadPlan, error: DbError) -> ApiError {
    match error {
        DbError::BadValue(message) => match refused_filter(plan, &message) {
            Some(filter) => {
                let parameter = format!("{}[{}]", filter.column.name, filter.operator.name());
                let detail = format!(
                    "{} is {}, and the database cannot read '{}' as one",
                    filter.column.name,
                    filter.column.db_type,
                    shorten(refused_value(&message).unwrap_or_default())
                );
                let mut error = ApiError::new(Problem::InvalidValue, detail.clone());
                error.errors = vec![FieldError::parameter(parameter, detail)];
                error
            }
            None => DbError::BadValue(message).into(),
        },
        DbError::Exceeded(Exceeded::Rows) => ApiError::new(
            Problem::LimitExceeded,
            format!(
                "the answer would hold more than {} rows with its embedded relations (limits.max_answer_rows): \
                 ask for fewer rows with limit, or include fewer relations",
                state.budget.max_rows
            ),
        ),
        DbError::Exceeded(Exceeded::Bytes) => ApiError::new(
            Problem::LimitExceeded,
            format!(
                "the answer would be larger than {} bytes (limits.max_answer_bytes): \
                 ask for fewer rows with limit, fewer fields, or fewer included relations",
                state.budget.max_bytes
            ),
        ),
        DbError::Timeout => ApiError::new(
            Problem::StatementTimeout,
            format!(
                "the read took longer than {} ms (limits.request_timeout_ms); narrow it with filters or a smaller limit",
                state.read_timeout.as_millis()
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
        other => other.into(),
    }
}

/// The filter that carried the value the database refused: the one that
/// is that value, else one that holds it (PostgreSQL quotes the bad bound
/// of a range literal, not the literal).
fn refused_filter<'a>(plan: &'a ReadPlan, message: &str) -> Option<&'a Filter> {
    let value = refused_value(message)?;
    let filters = match plan {
        ReadPlan::Collection(collection) => collection.filters.as_slice(),
        ReadPlan::Single(_) => &[],
    };
    let carries = |holds: &dyn Fn(&str) -> bool| {
        filters.iter().find(|filter| {
            filter
                .values
                .iter()
                .any(|v| v.as_text().is_some_and(|text| holds(&text)))
        })
    };
    carries(&|text| text == value).or_else(|| carries(&|text| text.contains(value)))
}

/// A body that holds exactly its bytes: cached answers are weighed by
/// their length, so a grown buffer's spare capacity must not come along.
fn exact_bytes(body: impl Into<Vec<u8>>) -> Bytes {
    let mut body = body.into();
    if body.capacity() - body.len() > body.len() / 8 {
        body.shrink_to_fit();
    }
    Bytes::from(body)
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
