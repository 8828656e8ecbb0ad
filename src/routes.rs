//! The routes and their handlers: thin, they extract the path and the raw
//! query string and hand the request to [`crate::pipeline`] (reads) or
//! [`crate::write`]. Every error, the framework's own included, leaves as
//! problem+json, and every error with a cause is logged here, once, with
//! the request id.

use crate::error::{ApiError, Cause, Problem};
use crate::pipeline;
use crate::read::ReadPath;
use crate::state::AppState;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use brisk_query::write::WriteMethod;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/{resource}", get(read).post(write))
        .route(
            "/v1/{resource}/{id}",
            get(read).patch(write).put(write).delete(write),
        )
        .route("/v1/{resource}/{id}/{relation}", get(read))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(internal_error))
        .layer(axum::middleware::from_fn(log_causes))
}

/// Logs the cause an error response carries (never sent to the client),
/// with the request's id: the one place errors are logged.
async fn log_causes(request: Request, next: Next) -> Response {
    let id = request.headers().get("x-request-id").cloned();
    let response = next.run(request).await;
    if let Some(cause) = response.extensions().get::<Cause>() {
        let id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
        let status = response.status().as_u16();
        let message = &cause.message;
        match cause.level {
            tracing::Level::ERROR => tracing::error!(request_id = id, status, "{message}"),
            tracing::Level::WARN => tracing::warn!(request_id = id, status, "{message}"),
            tracing::Level::INFO => tracing::info!(request_id = id, status, "{message}"),
            _ => tracing::debug!(request_id = id, status, "{message}"),
        }
    }
    response
}

/// The whole HTTP service: request ids, then the cache's fast path, then
/// the router. A fresh hit is answered before any routing.
pub fn service(state: Arc<AppState>) -> Layered {
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(SequentialIds::new()))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(CacheFirst {
            router: router(state.clone()),
            state,
        })
}

pub type Layered = tower_http::request_id::SetRequestId<
    tower_http::request_id::PropagateRequestId<CacheFirst>,
    SequentialIds,
>;

/// Answers fresh cache hits itself and hands everything else to the router.
#[derive(Clone)]
pub struct CacheFirst {
    state: Arc<AppState>,
    router: Router,
}

impl tower::Service<Request> for CacheFirst {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response, std::convert::Infallible>>,
        <Router as tower::Service<Request>>::Future,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match pipeline::hit(&self.state, &request) {
            Some(response) => futures_util::future::Either::Left(std::future::ready(Ok(response))),
            None => {
                futures_util::future::Either::Right(tower::Service::call(&mut self.router, request))
            }
        }
    }
}

/// Path segments after `/v1`: resource, and maybe id and relation.
type Segments = Result<Path<Vec<String>>, PathRejection>;

/// GET and HEAD on every `/v1/...` route (answered here when the cache's
/// fast path did not).
async fn read(State(state): Shared, path: Segments, request: Request) -> Response {
    let segments = match path {
        Ok(Path(segments)) => segments,
        Err(rejection) => return bad_path(rejection),
    };
    let path = ReadPath {
        resource: &segments[0],
        id: segments.get(1).map(String::as_str),
        relation: segments.get(2).map(String::as_str),
    };
    // Parts, unlike the body, may be shared across the awaits below.
    let (request, _body) = request.into_parts();
    let uri = &request.uri;
    pipeline::get(
        &state,
        pipeline::ReadRequest {
            path,
            path_and_query: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
            query: uri.query().unwrap_or_default(),
            headers: &request.headers,
        },
    )
    .await
}

/// POST, PATCH, PUT and DELETE: reads the body (up to
/// `limits.max_body_bytes`) and runs the write.
async fn write(State(state): Shared, path: Segments, request: Request) -> Response {
    let segments = match path {
        Ok(Path(segments)) => segments,
        Err(rejection) => return bad_path(rejection),
    };
    let method = match *request.method() {
        Method::POST => WriteMethod::Post,
        Method::PATCH => WriteMethod::Patch,
        Method::PUT => WriteMethod::Put,
        _ => WriteMethod::Delete,
    };
    let (resource, id) = (&segments[0], segments.get(1).map(String::as_str));
    let (parts, body) = request.into_parts();
    let limit = state.writes.max_body_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(
                Problem::PayloadTooLarge,
                format!(
                    "the body is larger than {limit} bytes (limits.max_body_bytes); send fewer rows per request"
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
    crate::write::run(&state, call).await
}

fn bad_path(rejection: PathRejection) -> Response {
    ApiError::new(
        Problem::MalformedQuery,
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
        Problem::UnknownParameter,
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

/// 405 for a known route and another method; axum adds `Allow`.
async fn method_not_allowed(path: Option<MatchedPath>) -> Response {
    let allowed = match path.as_ref().map(MatchedPath::as_str) {
        Some("/v1/{resource}") => "GET, HEAD, POST",
        Some("/v1/{resource}/{id}") => "GET, HEAD, PATCH, PUT, DELETE",
        _ => "GET, HEAD",
    };
    ApiError::new(
        Problem::MethodNotAllowed,
        format!("this route allows {allowed}"),
    )
    .into_response()
}

/// A panic becomes a 500 problem, its message logged and not sent.
fn internal_error(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::new(
        Problem::Internal,
        "the server failed to answer; the error is logged",
    )
    .with_cause(
        tracing::Level::ERROR,
        format!("a request handler panicked: {message}"),
    )
    .into_response()
}

/// Request ids `<process prefix>-<sequence>`: unique across instances
/// without a random draw (a system call) per request.
#[derive(Clone)]
pub struct SequentialIds {
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
