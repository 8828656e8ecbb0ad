//! The routes and their handlers: thin, they extract the path and the raw
//! query string, call [`crate::read`], and shape the response. Every error,
//! the framework's own included, leaves as problem+json.

use crate::app::AppState;
use crate::error::{ApiError, Problem};
use crate::read::{ReadPath, read};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use brisk_query::ErrorKind;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/{resource}", get(collection))
        .route("/v1/{resource}/{id}", get(row))
        .route("/v1/{resource}/{id}/{relation}", get(related))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state);
    // The routes sit inside a router of their own so that the layers see
    // the final response, `Allow` included (axum adds it after route layers).
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(problem_for_every_error))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn collection(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let resource = match path {
        Ok(Path(resource)) => resource,
        Err(rejection) => return bad_path(rejection),
    };
    let path = ReadPath {
        resource: &resource,
        id: None,
        relation: None,
    };
    respond(read(&state, path, query.as_deref().unwrap_or_default()).await)
}

async fn row(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let (resource, id) = match path {
        Ok(Path(parts)) => parts,
        Err(rejection) => return bad_path(rejection),
    };
    let path = ReadPath {
        resource: &resource,
        id: Some(&id),
        relation: None,
    };
    respond(read(&state, path, query.as_deref().unwrap_or_default()).await)
}

async fn related(
    State(state): Shared,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let (resource, id, relation) = match path {
        Ok(Path(parts)) => parts,
        Err(rejection) => return bad_path(rejection),
    };
    let path = ReadPath {
        resource: &resource,
        id: Some(&id),
        relation: Some(&relation),
    };
    respond(read(&state, path, query.as_deref().unwrap_or_default()).await)
}

fn respond(answer: Result<crate::read::Answer, ApiError>) -> Response {
    match answer {
        Ok(answer) => {
            let mut response = answer.body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(link) = answer.link.and_then(|l| HeaderValue::try_from(l).ok()) {
                headers.insert(header::LINK, link);
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

fn bad_path(rejection: PathRejection) -> Response {
    ApiError::new(
        Problem::Query(ErrorKind::Malformed),
        format!(
            "the path cannot be read: {}",
            rejection.body_text().to_lowercase()
        ),
    )
    .into_response()
}

async fn openapi(State(state): Shared, RawQuery(query): RawQuery) -> Response {
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
        .into_response()
}

async fn healthz(RawQuery(query): RawQuery) -> Response {
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    status_body("ok")
}

async fn readyz(State(state): Shared, RawQuery(query): RawQuery) -> Response {
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    match state.db.ping().await {
        Ok(()) => status_body("ready"),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn status_body(status: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("{{\"status\":\"{status}\"}}"),
    )
        .into_response()
}

/// Fixed routes take no query parameters; an unknown one is a 400, as
/// everywhere else.
fn no_parameters(query: Option<&str>) -> Option<ApiError> {
    let query = query.filter(|q| !q.is_empty())?;
    let name = query.split('&').next().unwrap_or(query);
    let name = name.split('=').next().unwrap_or(name);
    let mut error = ApiError::new(
        Problem::Query(ErrorKind::UnknownParameter),
        format!("this route takes no query parameters, and '{name}' was given"),
    );
    error.errors.push(crate::error::FieldError {
        parameter: name.to_string(),
        detail: "this route takes no query parameters".into(),
    });
    Some(error)
}

async fn not_found(request: Request) -> Response {
    ApiError::route_not_found(request.uri().path()).into_response()
}

/// Turns any error response that is not already problem+json (axum's 405,
/// a panic's 500, a body-limit 413) into one, keeping its headers.
async fn problem_for_every_error(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("GET,HEAD")
                .to_string();
            ApiError::new(
                Problem::MethodNotAllowed,
                format!("this route allows {allow}"),
            )
        }
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::new(
            Problem::Internal,
            "the server failed to answer; the error is logged",
        ),
        other => ApiError::new(
            Problem::Status(other),
            other.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    };
    let body = error.body();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, axum::body::Body::from(body))
}
