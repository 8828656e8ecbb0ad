//! Every error response, as `application/problem+json` (RFC 9457), made
//! in one place from one table of problem types.

use crate::db::DbError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brisk_query::{ErrorKind, QueryErrors};
use serde::Serialize;

/// Where the problem types are documented: `docs/errors.md` names each.
pub const PROBLEM_BASE: &str = "https://brisk.dev/problems/";

/// The problem types brisk emits, beyond the query crate's kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Query(ErrorKind),
    RouteNotFound,
    RowNotFound,
    MethodNotAllowed,
    /// Writes are switched off (`writes = false`).
    WritesDisabled,
    /// `If-Match` (or `If-None-Match` on a write) does not hold.
    PreconditionFailed,
    /// A write would break a unique or foreign key constraint.
    Conflict,
    /// A write breaks a NOT NULL or CHECK constraint, or a value the
    /// database refuses.
    ConstraintViolation,
    /// The request body is not `application/json`, or is encoded.
    UnsupportedMediaType,
    DatabaseUnavailable,
    Timeout,
    Internal,
    /// A status raised outside brisk's handlers (body limit, framework).
    Status(StatusCode),
}

impl Problem {
    pub fn status(self) -> StatusCode {
        match self {
            Problem::Query(ErrorKind::NotFound) | Problem::RouteNotFound | Problem::RowNotFound => {
                StatusCode::NOT_FOUND
            }
            Problem::Query(ErrorKind::InvalidField) => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::Query(_) => StatusCode::BAD_REQUEST,
            Problem::WritesDisabled => StatusCode::FORBIDDEN,
            Problem::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Problem::Conflict => StatusCode::CONFLICT,
            Problem::ConstraintViolation => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Problem::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Problem::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Problem::Status(status) => status,
        }
    }

    /// The `type` URI; `about:blank` for plain HTTP statuses.
    pub fn type_uri(self) -> String {
        let slug = match self {
            Problem::Query(kind) => kind.slug(),
            Problem::RouteNotFound => "route-not-found",
            Problem::RowNotFound => "row-not-found",
            Problem::MethodNotAllowed => "method-not-allowed",
            Problem::WritesDisabled => "writes-disabled",
            Problem::PreconditionFailed => "precondition-failed",
            Problem::Conflict => "conflict",
            Problem::ConstraintViolation => "constraint-violation",
            Problem::UnsupportedMediaType => "unsupported-media-type",
            Problem::DatabaseUnavailable => "database-unavailable",
            Problem::Timeout => "statement-timeout",
            Problem::Internal => "internal-error",
            Problem::Status(_) => return "about:blank".into(),
        };
        format!("{PROBLEM_BASE}{slug}")
    }

    pub fn title(self) -> &'static str {
        match self {
            Problem::Query(kind) => match kind {
                ErrorKind::NotFound => "Not found",
                ErrorKind::UnknownParameter => "Unknown query parameter",
                ErrorKind::UnknownField => "Unknown field",
                ErrorKind::UnknownRelation => "Unknown relation",
                ErrorKind::InvalidValue => "Invalid value",
                ErrorKind::InvalidOperator => "Invalid filter operator",
                ErrorKind::InvalidCursor => "Invalid cursor",
                ErrorKind::Conflict => "Conflicting parameters",
                ErrorKind::Duplicate => "Duplicate parameter",
                ErrorKind::Malformed => "Malformed query string",
                ErrorKind::MalformedBody => "Malformed body",
                ErrorKind::InvalidField => "Invalid field",
            },
            Problem::RouteNotFound => "No such route",
            Problem::RowNotFound => "Row not found",
            Problem::MethodNotAllowed => "Method not allowed",
            Problem::WritesDisabled => "Writes are disabled",
            Problem::PreconditionFailed => "Precondition failed",
            Problem::Conflict => "Conflict",
            Problem::ConstraintViolation => "Constraint violation",
            Problem::UnsupportedMediaType => "Unsupported media type",
            Problem::DatabaseUnavailable => "Database unavailable",
            Problem::Timeout => "Query took too long",
            Problem::Internal => "Internal error",
            Problem::Status(status) => status.canonical_reason().unwrap_or("Error"),
        }
    }

    /// Every documented problem type, for the OpenAPI document.
    pub fn all() -> Vec<Problem> {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::UnknownParameter,
            ErrorKind::UnknownField,
            ErrorKind::UnknownRelation,
            ErrorKind::InvalidValue,
            ErrorKind::InvalidOperator,
            ErrorKind::InvalidCursor,
            ErrorKind::Conflict,
            ErrorKind::Duplicate,
            ErrorKind::Malformed,
            ErrorKind::MalformedBody,
            ErrorKind::InvalidField,
        ];
        kinds
            .into_iter()
            .map(Problem::Query)
            .chain([
                Problem::RouteNotFound,
                Problem::RowNotFound,
                Problem::MethodNotAllowed,
                Problem::WritesDisabled,
                Problem::PreconditionFailed,
                Problem::Conflict,
                Problem::ConstraintViolation,
                Problem::UnsupportedMediaType,
                Problem::DatabaseUnavailable,
                Problem::Timeout,
                Problem::Internal,
            ])
            .collect()
    }
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub problem: Problem,
    pub detail: String,
    /// For bad input: each parameter or field at fault.
    pub errors: Vec<FieldError>,
    /// Extra headers (`Allow` on 405, `Retry-After` on 503).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// One bad part of a request: a query parameter or path part, or a body
/// field named by its JSON pointer (RFC 6901).
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn parameter(parameter: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            parameter: Some(parameter.into()),
            pointer: None,
            detail: detail.into(),
        }
    }

    pub fn pointer(pointer: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            parameter: None,
            pointer: Some(pointer.into()),
            detail: detail.into(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(problem: Problem, detail: impl Into<String>) -> ApiError {
        ApiError {
            problem,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn route_not_found(path: &str) -> ApiError {
        let hint = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => format!("; did you mean {trimmed}?"),
            _ if !path.starts_with("/v1/") => {
                "; resources are served under /v1/, e.g. /v1/users".to_string()
            }
            _ => String::new(),
        };
        ApiError::new(
            Problem::RouteNotFound,
            format!("no route matches {path}{hint}"),
        )
    }

    /// The body as bytes, for callers that build the response themselves.
    pub fn body(&self) -> Vec<u8> {
        let status = self.problem.status();
        serde_json::to_vec(&Body {
            type_uri: self.problem.type_uri(),
            title: self.problem.title(),
            status: status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        })
        .expect("problem bodies serialise")
    }
}

impl From<QueryErrors> for ApiError {
    fn from(errors: QueryErrors) -> ApiError {
        let kind = errors.primary_kind();
        let detail = errors
            .0
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.detail.clone())
            .unwrap_or_default();
        let detail = match errors.0.len() {
            1 => detail,
            n => format!(
                "{detail} (and {} more problem{})",
                n - 1,
                if n > 2 { "s" } else { "" }
            ),
        };
        ApiError {
            problem: Problem::Query(kind),
            detail,
            errors: errors
                .0
                .into_iter()
                .map(|e| match e.kind {
                    ErrorKind::MalformedBody | ErrorKind::InvalidField => {
                        FieldError::pointer(e.parameter, e.detail)
                    }
                    _ => FieldError::parameter(e.parameter, e.detail),
                })
                .collect(),
            headers: Vec::new(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> ApiError {
        match error {
            DbError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::new(
                    Problem::DatabaseUnavailable,
                    "the database is not answering; try again shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            DbError::Timeout => ApiError::new(
                Problem::Timeout,
                "the query ran longer than the server allows; narrow it with filters or a smaller limit",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            DbError::BadValue(reason) => {
                tracing::debug!(%reason, "database refused a value");
                ApiError::new(
                    Problem::Query(ErrorKind::InvalidValue),
                    "a filter value is not valid for its column's type",
                )
            }
            DbError::Internal(reason) => {
                tracing::error!(%reason, "database error");
                ApiError::new(Problem::Internal, "the server failed to answer; the error is logged")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.problem.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
