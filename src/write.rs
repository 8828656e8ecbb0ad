//! The path of a write: check the body against the schema, check the
//! preconditions, run the statements in one transaction, stamp the versions
//! of what changed (so every cached answer that could hold a changed row
//! stops being served, here and on every instance) and answer with the row
//! as stored.

use crate::access::Viewer;
use crate::cluster::Claim;
use crate::conditional::{self, Etag};
use crate::db::{Constraint, ConstraintKind, RowCheck, WriteError};
use crate::error::{ApiError, FieldError, Problem, shorten};
use crate::state::AppState;
use crate::versions::Change;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use brisk_query::canonical;
use brisk_query::envelope::{self, Row};
use brisk_query::key::RowKey;
use brisk_query::schema::{Cardinality, Resource, ResourceKind};
use brisk_query::sql::render_write;
use brisk_query::write::{
    Assignment, WriteAction, WriteMethod, WritePlan, WriteRequest, plan_write,
};
use bytes::Bytes;
use std::sync::Arc;

/// What a write request brings.
pub struct WriteCall<'a> {
    pub method: WriteMethod,
    pub resource: &'a str,
    pub id: Option<&'a str>,
    /// Who writes: its role decides what it may write, its row rule which
    /// rows; the write takes its turn at the database as its client.
    pub viewer: &'a Viewer,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

pub async fn run(state: &Arc<AppState>, call: WriteCall<'_>) -> Response<Body> {
    match execute(state, call).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn execute(state: &Arc<AppState>, call: WriteCall<'_>) -> Result<Response<Body>, ApiError> {
    if !state.writes.enabled {
        return Err(ApiError::new(
            Problem::WritesDisabled,
            "this server is read-only; set writes = true in brisk.toml (or BRISK_WRITES=true) to allow writes",
        ));
    }
    if let Some(resource) = state.schema.resource(call.resource)
        && let Some(refusal) = resource.refusal(call.method)
    {
        let allow = allowed_methods(resource, call.id.is_some(), true);
        return Err(ApiError::new(
            Problem::MethodNotAllowed,
            format!("{refusal}; {} takes {allow}", call.resource),
        )
        .with_header(
            header::ALLOW,
            HeaderValue::from_str(&allow).expect("method names"),
        ));
    }
    let role = &call.viewer.role;
    if !role.may_write(call.resource, call.method) && state.schema.resource(call.resource).is_some()
    {
        return Err(ApiError::new(
            Problem::Forbidden,
            format!(
                "role {} may not {} {}{}",
                role.name,
                call.method.name(),
                call.resource,
                if role.writes_anything() {
                    ""
                } else {
                    "; it writes nothing: send the credentials of a role that may"
                }
            ),
        ));
    }
    if call.method != WriteMethod::Delete {
        check_media_type(call.headers)?;
    }
    let mut plan = plan_write(
        &role.writes,
        &WriteRequest {
            method: call.method,
            resource: call.resource,
            id: call.id,
            body: Some(&call.body),
            max_rows: state.writes.max_rows,
        },
    )?;
    if !role.rules.is_empty() {
        let rules = role.rules.bind(&state.schema, &|path| {
            crate::auth::claim_at(&call.viewer.claims, path).cloned()
        })?;
        plan.rules = rules.of(&plan.resource).to_vec();
    }
    let resource = role
        .writes
        .resource(&plan.resource)
        .expect("planned against this schema");
    let target = plan.target_key().map(RowKey::text);
    let preconditions = Preconditions::of(call.headers);
    if target.is_some() && preconditions.if_match.is_empty() && state.writes.require_if_match {
        return Err(ApiError::new(
            Problem::PreconditionRequired,
            "this server requires If-Match on PATCH, PUT and DELETE: send the ETag of the row you read",
        ));
    }
    let sql = render_write(&plan, resource, state.db.dialect());
    // Checked in the write's own transaction against the row as stored, so
    // that of several writers with one ETag exactly one wins, on any
    // instance, with or without Redis.
    let check = (target.is_some() && !preconditions.is_empty()).then(|| {
        let preconditions = preconditions.clone();
        Box::new(move |row: Option<&Row>| {
            let current = row.map(|row| Etag::of_content(&envelope::single(Some(&row.json))));
            preconditions.hold(current.as_ref())
        }) as RowCheck
    });
    let deadline = std::time::Instant::now() + state.read_timeout;
    let turn = state.gate.admit(call.viewer.client, deadline.into()).await;
    let _turn = turn.map_err(ApiError::from)?;
    let rows = state
        .db
        .write(&sql, &state.instance_id, check)
        .await
        .map_err(|error| match error {
            WriteError::Db(error) => error.into(),
            WriteError::Constraint(constraint) => constraint_error(constraint, state, &plan),
            WriteError::PreconditionFailed => precondition_failed(&plan, &preconditions),
            WriteError::NotVisible(row) => outside_rule(&plan, row, &role.name),
        })?;
    if target.is_some() && rows.is_empty() {
        return Err(row_not_found(&plan));
    }

    let keys: Vec<String> = rows.iter().map(|row| key_text(&row.keys)).collect();
    let version = match &state.cluster {
        Some(cluster) => match cluster.claim(&plan.resource, &keys).await {
            Claim::Version(version) => version,
            Claim::Unavailable => state.changes.next_version().await,
        },
        None => state.changes.next_version().await,
    };
    let mut changes = vec![Change {
        table: plan.resource.clone(),
        version,
        rows: Some(keys.clone()),
    }];
    // Tables changed as a whole, beyond the rows written: every table for a
    // write through a view (which rows it reaches, the view's definition or
    // its INSTEAD OF triggers decide; and with the tables, every view), and
    // for a delete the tables that referenced the row (it may cascade).
    let whole_tables: Vec<&str> = if resource.kind == ResourceKind::View {
        state
            .schema
            .resources()
            .filter(|r| r.kind == ResourceKind::Table)
            .map(|r| r.name.as_str())
            .collect()
    } else if matches!(plan.action, WriteAction::Delete { .. }) {
        resource
            .relations
            .iter()
            .filter(|r| r.cardinality == Cardinality::ToMany)
            .map(|r| r.target.as_str())
            .collect()
    } else {
        Vec::new()
    };
    changes.extend(whole_tables.into_iter().map(|table| Change {
        table: table.to_string(),
        version,
        rows: None,
    }));
    state.changes.announce(&changes).await;

    let mut response = match &plan.action {
        WriteAction::Delete { .. } => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            return Ok(response);
        }
        WriteAction::Insert { many: true, .. } => {
            let json: Vec<&str> = rows.iter().map(|row| row.json.as_str()).collect();
            let body = envelope::many(&json);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        WriteAction::Insert { .. } | WriteAction::Update { .. } => {
            let key = &keys[0];
            // the row as GET /v1/{table}/{key} renders it, and so its tag
            let body = envelope::single(Some(&rows[0].json));
            let etag = Etag::of_content(&body);
            let mut response = Response::new(Body::from(body));
            let addressable = !plan.key.is_empty();
            if addressable {
                response
                    .headers_mut()
                    .insert(header::ETAG, etag.identity_header());
            }
            if matches!(plan.action, WriteAction::Insert { .. }) {
                *response.status_mut() = StatusCode::CREATED;
            }
            if matches!(plan.action, WriteAction::Insert { .. }) && addressable {
                let location = canonical::route(&plan.resource, Some(key), None);
                if let Ok(location) = HeaderValue::try_from(location) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
            }
            response
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The preconditions of a write to one row (RFC 9110 §13.1.1, §13.1.2).
#[derive(Debug, Clone, Default)]
struct Preconditions {
    if_match: Vec<String>,
    if_none_match: Vec<String>,
}

impl Preconditions {
    fn of(headers: &HeaderMap) -> Preconditions {
        let values = |name| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        Preconditions {
            if_match: values(header::IF_MATCH),
            if_none_match: values(header::IF_NONE_MATCH),
        }
    }

    fn is_empty(&self) -> bool {
        self.if_match.is_empty() && self.if_none_match.is_empty()
    }

    fn star(list: &[String]) -> bool {
        list.iter().any(|v| v.trim() == "*")
    }

    /// Whether they hold for the row as stored (`None`: there is none). A
    /// missing row passes, since the write then answers 404 and §13.2.1
    /// ignores preconditions of a request that would fail anyway; but
    /// `If-Match: *` asks for the row to exist.
    fn hold(&self, current: Option<&Etag>) -> bool {
        let Some(current) = current else {
            return !Self::star(&self.if_match);
        };
        if !self.if_match.is_empty() {
            Self::star(&self.if_match)
                || self
                    .if_match
                    .iter()
                    .any(|list| conditional::strong_match(list, current))
        } else {
            !(Self::star(&self.if_none_match)
                || self
                    .if_none_match
                    .iter()
                    .any(|list| conditional::weak_match(list, current)))
        }
    }
}

fn precondition_failed(plan: &WritePlan, preconditions: &Preconditions) -> ApiError {
    let key = plan.target_key().map(RowKey::text).unwrap_or_default();
    let table = &plan.resource;
    let detail = if Preconditions::star(&preconditions.if_match) {
        "If-Match: * requires the row to exist, and it does not".to_string()
    } else if !preconditions.if_match.is_empty() {
        format!(
            "{table} {key} has changed since that ETag was given; read it again (GET /v1/{table}/{key}) and retry with the new ETag"
        )
    } else {
        format!("If-None-Match holds the current ETag of {table} {key}")
    };
    ApiError::new(Problem::PreconditionFailed, detail)
}

/// A row the write would leave outside the caller's row rule: refused,
/// so no caller can write rows it could not then read.
fn outside_rule(plan: &WritePlan, row: usize, role: &str) -> ApiError {
    let pointer = match plan.action {
        WriteAction::Insert { many: true, .. } => format!("/{row}"),
        _ => String::new(),
    };
    let error = ApiError::new(
        Problem::Forbidden,
        format!(
            "role {role} may write only rows its row rule for {} lets it see, and this one would not be",
            plan.resource
        ),
    );
    ApiError {
        errors: vec![FieldError::pointer(
            pointer,
            "this row would be outside the caller's row rule",
        )],
        ..error
    }
}

/// The methods a resource's collection (or, with `row`, one of its rows)
/// takes, as `Allow` lists them.
pub fn allowed_methods(resource: &Resource, row: bool, writes: bool) -> String {
    let candidates: &[WriteMethod] = if row {
        &[WriteMethod::Patch, WriteMethod::Put, WriteMethod::Delete]
    } else {
        &[WriteMethod::Post]
    };
    let mut allow = String::from("GET, HEAD");
    for method in candidates {
        if writes && resource.accepts(*method) {
            allow.push_str(", ");
            allow.push_str(method.name());
        }
    }
    allow
}

/// A write's body must be JSON, and not content-coded.
fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(coding) = headers.get(header::CONTENT_ENCODING)
        && !coding
            .to_str()
            .is_ok_and(|c| c.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(ApiError::new(
            Problem::UnsupportedMediaType,
            "request bodies must not be compressed; send them without Content-Encoding",
        )
        .with_header(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            Problem::UnsupportedMediaType,
            format!(
                "the body must be application/json, not {}",
                if content_type.is_empty() {
                    "unlabelled"
                } else {
                    content_type
                }
            ),
        ))
    }
}

fn row_not_found(plan: &WritePlan) -> ApiError {
    ApiError::new(
        Problem::RowNotFound,
        format!(
            "{} has no row with {}",
            plan.resource,
            plan.target_key().map(RowKey::describe).unwrap_or_default()
        ),
    )
}

/// The key of a written row, from its rendered JSON array of keys,
/// spelled as a URL segment reads it.
fn key_text(keys: &str) -> String {
    let values = serde_json::from_str::<Vec<serde_json::Value>>(keys).unwrap_or_default();
    brisk_query::key::spell(
        values
            .into_iter()
            .map(|value| match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            })
            .collect(),
    )
}

/// A constraint the database enforced, named for the client.
fn constraint_error(constraint: Constraint, state: &AppState, plan: &WritePlan) -> ApiError {
    let table = &plan.resource;
    let resource = state
        .schema
        .resource(table)
        .expect("planned against this schema");
    let mut constraint = constraint;
    if constraint.kind == ConstraintKind::ForeignKey
        && matches!(plan.action, WriteAction::Delete { .. })
    {
        // SQLite reports a delete of a referenced row as a plain foreign key failure
        constraint.kind = ConstraintKind::StillReferenced;
    }
    if constraint.kind == ConstraintKind::StillReferenced && constraint.constraint.is_none() {
        let referencing: Vec<&str> = resource
            .relations
            .iter()
            .filter(|r| r.cardinality == Cardinality::ToMany)
            .map(|r| r.target.as_str())
            .collect();
        constraint.constraint = Some(referencing.join(" or "));
    }
    // SQLite does not say which foreign key failed: name those written.
    let columns = if constraint.columns.is_empty() && constraint.kind == ConstraintKind::ForeignKey
    {
        let resource = state
            .schema
            .resource(table)
            .expect("planned against this schema");
        written_columns(plan)
            .into_iter()
            .filter(|c| {
                resource
                    .relations
                    .iter()
                    .any(|r| r.cardinality == Cardinality::ToOne && r.local_column == *c)
            })
            .collect()
    } else if constraint.kind == ConstraintKind::BadValue && constraint.columns.is_empty() {
        // PostgreSQL quotes the value, not the column: find who sent it
        refused_columns(plan, constraint.row, constraint.value.as_deref())
    } else {
        constraint.columns.clone()
    };
    // a column the server does not serve is never named
    let served = state.schema.resource(table);
    let columns: Vec<String> = columns
        .into_iter()
        .filter(|c| served.is_some_and(|r| r.column(c).is_some()))
        .collect();
    let list = columns.join(", ");
    let (problem, detail) = match constraint.kind {
        ConstraintKind::Unique => (
            Problem::Conflict,
            format!("{table} already has a row with this {list}; it must be unique"),
        ),
        ConstraintKind::ForeignKey => (
            Problem::Conflict,
            format!("{list} references a row that does not exist"),
        ),
        ConstraintKind::StillReferenced => (
            Problem::Conflict,
            format!(
                "the row is still referenced by {}; change or delete those rows first",
                constraint.constraint.as_deref().unwrap_or("other rows")
            ),
        ),
        ConstraintKind::NotNull if list.is_empty() => (
            Problem::ConstraintViolation,
            format!(
                "the database requires a value for a column that {table} does not show, so this row cannot be written through {table}"
            ),
        ),
        ConstraintKind::NotNull => (
            Problem::ConstraintViolation,
            format!("{list} cannot be null"),
        ),
        ConstraintKind::Check => (
            Problem::ConstraintViolation,
            format!(
                "the row breaks the check constraint {}",
                constraint.constraint.as_deref().unwrap_or("of the table")
            ),
        ),
        ConstraintKind::BadValue => (
            Problem::ConstraintViolation,
            match (columns.as_slice(), &constraint.value) {
                ([column], Some(value)) => {
                    let db_type = resource.column(column).map_or("", |c| c.db_type.as_str());
                    format!(
                        "{column} is {db_type}, and the database cannot read '{}' as one",
                        shorten(value)
                    )
                }
                ([], _) => "a value does not fit its column".to_string(),
                _ => format!("{list} holds a value that does not fit the column"),
            },
        ),
    };
    // a row of a bulk POST is pointed at by its index (docs/writes.md)
    let row = match plan.action {
        WriteAction::Insert { many: true, .. } => format!("/{}", constraint.row),
        _ => String::new(),
    };
    let mut error = ApiError::new(problem, detail.clone());
    error.errors = columns
        .iter()
        .map(|c| FieldError::pointer(format!("{row}/{c}"), detail.clone()))
        .collect();
    if error.errors.is_empty() && !row.is_empty() {
        error.errors.push(FieldError::pointer(row, detail));
    }
    error
}

/// The columns of the write's `row` that were sent `value`.
fn refused_columns(plan: &WritePlan, row: usize, value: Option<&str>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    let assignments: &[Assignment] = match &plan.action {
        WriteAction::Insert { rows, .. } => rows.get(row).map_or(&[], Vec::as_slice),
        WriteAction::Update { set, .. } => set,
        WriteAction::Delete { .. } => &[],
    };
    assignments
        .iter()
        .filter(|a| a.value.as_text().as_deref() == Some(value))
        .map(|a| a.column.name.clone())
        .collect()
}

fn written_columns(plan: &WritePlan) -> Vec<String> {
    let mut columns: Vec<String> = match &plan.action {
        WriteAction::Insert { rows, .. } => rows
            .iter()
            .flatten()
            .map(|a| a.column.name.clone())
            .collect(),
        WriteAction::Update { set, .. } => set.iter().map(|a| a.column.name.clone()).collect(),
        WriteAction::Delete { .. } => Vec::new(),
    };
    columns.sort();
    columns.dedup();
    columns
}
