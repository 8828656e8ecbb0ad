//! The routes and their handlers: thin, they extract the path and the raw
//! query string, call [`crate::read`], and shape the response. Every error,
//! the framework's own included, leaves as problem+json.

use crate::app::AppState;
use crate::error::{ApiError, Problem};
use crate::read::ReadPath;
use crate::respond;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use brisk_query::ErrorKind;
use brisk_query::write::WriteMethod;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/{resource}", get(collection).post(create))
        .route(
            "/v1/{resource}/{id}",
            get(row).patch(update).put(replace).delete(remove),
        )
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
        .layer(SetRequestIdLayer::x_request_id(SequentialIds::new()))
}

async fn collection(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path(resource)) => {
            let path = ReadPath {
                resource: &resource,
                id: None,
                relation: None,
            };
            read(&state, request, path).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

async fn row(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((resource, id))) => {
            let path = ReadPath {
                resource: &resource,
                id: Some(&id),
                relation: None,
            };
            read(&state, request, path).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

async fn related(
    State(state): Shared,
    path: Result<Path<(String, String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((resource, id, relation))) => {
            let path = ReadPath {
                resource: &resource,
                id: Some(&id),
                relation: Some(&relation),
            };
            read(&state, request, path).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

async fn read(state: &Arc<AppState>, request: Request, path: ReadPath<'_>) -> Response {
    // Parts, unlike the body, may be shared across the awaits below.
    let (request, _body) = request.into_parts();
    let uri = &request.uri;
    respond::get(
        state,
        respond::ReadRequest {
            path,
            path_and_query: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
            query: uri.query().unwrap_or_default(),
            headers: &request.headers,
        },
    )
    .await
}

async fn create(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path(resource)) => write(&state, request, WriteMethod::Post, &resource, None).await,
        Err(rejection) => bad_path(rejection),
    }
}

async fn update(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((resource, id))) => {
            write(&state, request, WriteMethod::Patch, &resource, Some(&id)).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

async fn replace(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((resource, id))) => {
            write(&state, request, WriteMethod::Put, &resource, Some(&id)).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

async fn remove(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((resource, id))) => {
            write(&state, request, WriteMethod::Delete, &resource, Some(&id)).await
        }
        Err(rejection) => bad_path(rejection),
    }
}

/// Reads the body (up to `limits.max_body_bytes`) and runs the write.
async fn write(
    state: &Arc<AppState>,
    request: Request,
    method: WriteMethod,
    resource: &str,
    id: Option<&str>,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(
                Problem::Status(StatusCode::PAYLOAD_TOO_LARGE),
                format!(
                    "the body is larger than {} bytes; send fewer rows per request",
                    state.max_body_bytes
                ),
            )
            .into_response();
        }
    };
    let call = crate::write::WriteCall {
        method,
        resource,
        id,
        headers: &parts.headers,
        body,
    };
    crate::write::run(state, call).await
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
    error.errors.push(crate::error::FieldError::parameter(
        name,
        "this route takes no query parameters",
    ));
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

/// Request ids `<process prefix>-<sequence>`: unique across instances
/// without a random draw (a system call) per request.
#[derive(Clone)]
struct SequentialIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl SequentialIds {
    fn new() -> SequentialIds {
        let mut seed = [0u8; 6];
        getrandom::fill(&mut seed).expect("the operating system provides random bytes");
        let prefix: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        SequentialIds {
            prefix: prefix.into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
