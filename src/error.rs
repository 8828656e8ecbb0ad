//! Every error response, as `application/problem+json` (RFC 9457), made in
//! one place from one table of problem types: [`problems!`] below generates
//! the [`Problem`] enum, each type's status, slug (the last segment of its
//! type URI) and title, and the list the OpenAPI document and
//! `docs/errors.md` are checked against. A new problem is one new row.
//!
//! Errors are not logged here: an [`ApiError`] with a cause the client must
//! not see carries it to the response's extensions, and the routes' one
//! logging layer writes it with the request id.

use crate::db::DbError;
use crate::gate::Refused;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brisk_query::{ErrorKind, QueryError, QueryErrors};
use serde::Serialize;

/// Where the problem types are documented: `docs/errors.md` names each.
pub const PROBLEM_BASE: &str = "https://brisk.dev/problems/";

/// The problem type of a refused rate limit, as the IETF draft registers it.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident => $status:ident, $slug:literal, $title:literal;)*) => {
        /// A problem type brisk sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Problem {
            $($(#[$doc])* $name,)*
        }

        impl Problem {
            /// Every problem type, in the table's order.
            pub const ALL: &[Problem] = &[$(Problem::$name),*];

            pub fn status(self) -> StatusCode {
                match self {
                    $(Problem::$name => StatusCode::$status,)*
                }
            }

            /// The last segment of the type URI.
            pub fn slug(self) -> &'static str {
                match self {
                    $(Problem::$name => $slug,)*
                }
            }

            /// The same for every occurrence (RFC 9457 §3.1.3).
            pub fn title(self) -> &'static str {
                match self {
                    $(Problem::$name => $title,)*
                }
            }
        }
    };
}

problems! {
    /// The resource, row key shape or relation in the path does not exist.
    NotFound => NOT_FOUND, "not-found", "Not found";
    /// The path matches no route.
    RouteNotFound => NOT_FOUND, "route-not-found", "No such route";
    /// A request head HTTP does not allow (no `Host`, or two).
    MalformedRequest => BAD_REQUEST, "malformed-request", "Malformed request";
    /// The path and query are longer than `limits.max_url_bytes`.
    UriTooLong => URI_TOO_LONG, "uri-too-long", "URI too long";
    /// The headers are larger than `limits.max_header_bytes`.
    HeadersTooLarge => REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large", "Request headers too large";
    /// The body did not arrive within `http.body_timeout_ms`.
    RequestTimeout => REQUEST_TIMEOUT, "request-timeout", "Request timeout";
    /// No row with that key (or no parent row for a nested route).
    RowNotFound => NOT_FOUND, "row-not-found", "Row not found";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed";
    UnknownParameter => BAD_REQUEST, "unknown-parameter", "Unknown query parameter";
    UnknownField => BAD_REQUEST, "unknown-field", "Unknown field";
    UnknownRelation => BAD_REQUEST, "unknown-relation", "Unknown relation";
    InvalidValue => BAD_REQUEST, "invalid-value", "Invalid value";
    InvalidOperator => BAD_REQUEST, "invalid-operator", "Invalid filter operator";
    InvalidCursor => BAD_REQUEST, "invalid-cursor", "Invalid cursor";
    ConflictingParameters => BAD_REQUEST, "conflicting-parameters", "Conflicting parameters";
    DuplicateParameter => BAD_REQUEST, "duplicate-parameter", "Duplicate parameter";
    MalformedQuery => BAD_REQUEST, "malformed-query", "Malformed query string";
    MalformedBody => BAD_REQUEST, "malformed-body", "Malformed body";
    /// A body field that is unknown, mistyped, missing or not writable.
    InvalidField => UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field";
    /// The request asks for more than a `limits.*` key allows.
    LimitExceeded => BAD_REQUEST, "limit-exceeded", "Limit exceeded";
    /// `identity;q=0` and no coding brisk has is acceptable.
    NotAcceptable => NOT_ACCEPTABLE, "not-acceptable", "Not acceptable";
    /// The request body is larger than `limits.max_body_bytes`.
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload-too-large", "Body too large";
    /// Writes are switched off (`writes = false`).
    WritesDisabled => FORBIDDEN, "writes-disabled", "Writes are disabled";
    /// Credentials that are malformed, unknown, expired or badly signed
    /// (sent with `WWW-Authenticate`, RFC 6750).
    Unauthorized => UNAUTHORIZED, "unauthorized", "Unauthorized";
    /// The caller's role may not do this (read a resource, write with a
    /// method), or its row rule cannot apply to its credentials.
    Forbidden => FORBIDDEN, "forbidden", "Forbidden";
    /// The caller spent its rate limit (with `Retry-After` and the
    /// `RateLimit` fields); the type is the IANA-registered one.
    QuotaExceeded => TOO_MANY_REQUESTS, "quota-exceeded", "Quota exceeded";
    /// `If-Match` (or `If-None-Match` on a write) does not hold.
    PreconditionFailed => PRECONDITION_FAILED, "precondition-failed", "Precondition failed";
    /// `http.require_if_match` and a write without `If-Match`.
    PreconditionRequired => PRECONDITION_REQUIRED, "precondition-required", "Precondition required";
    /// A write would break a unique or foreign key constraint.
    Conflict => CONFLICT, "conflict", "Conflict";
    /// A write breaks a NOT NULL or CHECK constraint, or a value the
    /// database refuses.
    ConstraintViolation => UNPROCESSABLE_ENTITY, "constraint-violation", "Constraint violation";
    /// The request body is not `application/json`, or is encoded.
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type";
    DatabaseUnavailable => SERVICE_UNAVAILABLE, "database-unavailable", "Database unavailable";
    /// Too many requests wait for the database, or too many connections are open.
    Overloaded => SERVICE_UNAVAILABLE, "overloaded", "Server busy";
    StatementTimeout => SERVICE_UNAVAILABLE, "statement-timeout", "Query took too long";
    Internal => INTERNAL_SERVER_ERROR, "internal-error", "Internal error";
}

impl Problem {
    /// The `type` URI.
    pub fn type_uri(self) -> String {
        match self {
            // draft-ietf-httpapi-ratelimit-headers §5 registers this one
            Problem::QuotaExceeded => QUOTA_EXCEEDED_TYPE.to_string(),
            _ => format!("{PROBLEM_BASE}{}", self.slug()),
        }
    }
}

impl From<ErrorKind> for Problem {
    fn from(kind: ErrorKind) -> Problem {
        match kind {
            ErrorKind::NotFound => Problem::NotFound,
            ErrorKind::UnknownParameter => Problem::UnknownParameter,
            ErrorKind::UnknownField => Problem::UnknownField,
            ErrorKind::UnknownRelation => Problem::UnknownRelation,
            ErrorKind::InvalidValue => Problem::InvalidValue,
            ErrorKind::InvalidOperator => Problem::InvalidOperator,
            ErrorKind::InvalidCursor => Problem::InvalidCursor,
            ErrorKind::Conflict => Problem::ConflictingParameters,
            ErrorKind::Duplicate => Problem::DuplicateParameter,
            ErrorKind::Malformed => Problem::MalformedQuery,
            ErrorKind::MalformedBody => Problem::MalformedBody,
            ErrorKind::InvalidField => Problem::InvalidField,
            ErrorKind::LimitExceeded => Problem::LimitExceeded,
            ErrorKind::Forbidden => Problem::Forbidden,
        }
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
    /// What went wrong inside, for the log only.
    pub cause: Option<Box<Cause>>,
    /// Extension members of the problem (RFC 9457 §3.2), such as the
    /// `violated-policies` of a refused rate limit.
    pub extensions: Vec<(String, serde_json::Value)>,
}

/// The inside story of an error: logged with the request id by the routes'
/// logging layer, never sent.
#[derive(Debug, Clone)]
pub struct Cause {
    pub level: tracing::Level,
    pub message: String,
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
    #[serde(flatten)]
    extensions: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(problem: Problem, detail: impl Into<String>) -> ApiError {
        ApiError {
            problem,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
            extensions: Vec::new(),
        }
    }

    /// Adds an extension member to the problem.
    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> ApiError {
        self.extensions.push((name.to_string(), value));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// Adds what the log (not the client) should know.
    pub fn with_cause(mut self, level: tracing::Level, message: impl Into<String>) -> ApiError {
        self.cause = Some(Box::new(Cause {
            level,
            message: message.into(),
        }));
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

    /// The body as bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            type_uri: self.problem.type_uri(),
            title: self.problem.title(),
            status: self.problem.status().as_u16(),
            detail: &self.detail,
            errors: &self.errors,
            extensions: self.extensions.iter().cloned().collect(),
        })
        .expect("problem bodies serialise")
    }
}

/// Most entries one problem lists in `errors`: the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 20;

/// Longest text (in bytes) a problem quotes from one error, since errors
/// quote what the client sent.
const MAX_QUOTED_BYTES: usize = 300;

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> ApiError {
        QueryErrors::from(error).into()
    }
}

impl From<QueryErrors> for ApiError {
    fn from(errors: QueryErrors) -> ApiError {
        let kind = errors.primary_kind();
        let detail = errors
            .0
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| shorten(&e.detail))
            .unwrap_or_default();
        let detail = match errors.0.len() {
            1 => detail,
            n => format!(
                "{detail} (and {} more problem{})",
                n - 1,
                if n > 2 { "s" } else { "" }
            ),
        };
        let mut error = ApiError::new(Problem::from(kind), detail);
        error.errors = errors
            .0
            .into_iter()
            .take(MAX_LISTED_ERRORS)
            .map(|e| {
                let (parameter, detail) = (shorten(&e.parameter), shorten(&e.detail));
                match e.kind {
                    ErrorKind::MalformedBody | ErrorKind::InvalidField => {
                        FieldError::pointer(parameter, detail)
                    }
                    _ => FieldError::parameter(parameter, detail),
                }
            })
            .collect();
        error
    }
}

/// At most [`MAX_QUOTED_BYTES`] of `text`, cut at a character boundary:
/// how an answer quotes what a client sent.
pub fn shorten(text: &str) -> String {
    if text.len() <= MAX_QUOTED_BYTES {
        return text.to_string();
    }
    let mut end = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> ApiError {
        match error {
            DbError::Unavailable(reason) => ApiError::new(
                Problem::DatabaseUnavailable,
                "the database is not answering; try again shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .with_cause(
                tracing::Level::WARN,
                format!("database unavailable: {reason}"),
            ),
            DbError::Timeout => ApiError::new(
                Problem::StatementTimeout,
                "the statement ran longer than the server allows (database.statement_timeout_ms)",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            DbError::Exceeded(_) => ApiError::new(
                Problem::LimitExceeded,
                "the answer would be larger than limits.max_answer_rows or limits.max_answer_bytes allow",
            ),
            DbError::BadValue(reason) => ApiError::new(
                Problem::InvalidValue,
                "a filter value is not valid for its column's type",
            )
            .with_cause(
                tracing::Level::DEBUG,
                format!("database refused a value: {reason}"),
            ),
            DbError::NotReady(what) => ApiError::new(
                Problem::DatabaseUnavailable,
                format!("the database cannot answer this yet: {what}"),
            ),
            DbError::Internal(reason) => ApiError::new(
                Problem::Internal,
                "the server failed to answer; the error is logged",
            )
            .with_cause(tracing::Level::ERROR, format!("database error: {reason}")),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        let detail = match refused {
            Refused::Full(waiting) => format!(
                "{waiting} requests wait for the database already (limits.max_waiting); retry in a second"
            ),
            Refused::Deadline => "no database connection came free before the request's deadline \
                 (limits.request_timeout_ms); retry in a second"
                .to_string(),
        };
        ApiError::new(Problem::Overloaded, detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
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
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(*cause);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/errors.md is the reference users read: it must list every row
    /// of the table, with its status and title, and nothing else.
    #[test]
    fn the_errors_reference_lists_every_problem() {
        let reference = include_str!("../docs/errors.md");
        let rows: Vec<&str> = reference
            .lines()
            .filter(|line| line.starts_with("| `"))
            .collect();
        for problem in Problem::ALL {
            let row = format!(
                "| `{}` | {} | {} |",
                problem.slug(),
                problem.status().as_u16(),
                problem.title()
            );
            assert!(
                rows.iter().any(|r| r.starts_with(&row)),
                "docs/errors.md has no row starting {row}"
            );
        }
        assert_eq!(
            rows.len(),
            Problem::ALL.len(),
            "docs/errors.md lists a problem type the server does not have"
        );
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<&str> = Problem::ALL.iter().map(|p| p.slug()).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), Problem::ALL.len());
    }
}
