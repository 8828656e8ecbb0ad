//! The routes and their handlers: thin, they extract the path, the raw
//! query string and the client's address, and hand the request to
//! [`crate::pipeline`] (reads) or [`crate::write`]. Every error, the
//! framework's own included, leaves as problem+json.

use crate::access::Viewer;
use crate::error::{ApiError, Problem};
use crate::pipeline;
use crate::read::ReadPath;
use crate::state::AppState;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use brisk_query::write::WriteMethod;
use std::net::IpAddr;
use std::sync::Arc;

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
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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
    let viewer = viewer(&state, &request);
    // Parts, unlike the body, may be shared across the awaits below.
    let (request, _body) = request.into_parts();
    let uri = &request.uri;
    let path = ReadPath {
        resource: &segments[0],
        id: raw_key(uri.path()),
        relation: segments.get(2).map(String::as_str),
    };
    pipeline::get(
        &state,
        pipeline::ReadRequest {
            viewer: &viewer,
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
    let viewer = viewer(&state, &request);
    let (parts, body) = request.into_parts();
    let (resource, id) = (&segments[0], raw_key(parts.uri.path()));
    let body = match read_body(&state, &parts.headers, body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let call = crate::write::WriteCall {
        method,
        resource,
        id,
        viewer: &viewer,
        headers: &parts.headers,
        body,
    };
    crate::write::run(&state, call).await
}

/// The body of a write, within `limits.max_body_bytes` (a larger
/// `Content-Length` is refused before any byte is read) and
/// `http.body_timeout_ms`.
async fn read_body(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<bytes::Bytes, ApiError> {
    let limit = state.writes.max_body_bytes;
    let too_large = || {
        ApiError::new(
            Problem::PayloadTooLarge,
            format!(
                "the body is larger than {limit} bytes (limits.max_body_bytes); send fewer rows per request"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.writes.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(ApiError::new(
            Problem::RequestTimeout,
            format!(
                "the body did not arrive within {} ms (http.body_timeout_ms); send it at once",
                timeout.as_millis()
            ),
        )),
    }
}

/// The row key segment of `/v1/{resource}/{key}[/...]` as sent, still
/// percent-encoded: a composite key's commas separate values only where
/// they were not encoded (`brisk_query::key`).
fn raw_key(path: &str) -> Option<&str> {
    path.split('/').nth(3)
}

/// Who sent the request, as the access layer found (`front::CacheFirst`
/// identifies every request before routing).
fn viewer(state: &AppState, request: &Request) -> Viewer {
    request
        .extensions()
        .get::<Viewer>()
        .cloned()
        .unwrap_or_else(|| {
            // not through the front (a test's router): the peer as anonymous
            let peer = crate::server::client_address(request)
                .map_or(IpAddr::from([0, 0, 0, 0]), |address| address.ip());
            state.access.anonymous(peer)
        })
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

/// The OpenAPI document of what the caller's role may do.
async fn openapi(State(state): Shared, RawQuery(query): RawQuery, request: Request) -> Response {
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.access.openapi(&viewer(&state, &request).role),
    )
        .into_response()
}

async fn healthz(RawQuery(query): RawQuery) -> Response {
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    status_body("ok")
}

/// Prometheus metrics, unless `metrics.listen` serves them elsewhere.
async fn metrics(State(state): Shared, RawQuery(query): RawQuery) -> Response {
    if !state.metrics_here {
        return ApiError::route_not_found("/metrics").into_response();
    }
    if let Some(error) = no_parameters(query.as_deref()) {
        return error.into_response();
    }
    metrics_text(&state)
}

/// The Prometheus text of everything brisk counts.
pub fn metrics_text(state: &AppState) -> Response {
    use crate::encoding::Coding;
    use crate::metrics::Exposition;
    let mut out = Exposition::default();
    state.metrics.render(&mut out);
    let cache = state.cache.counters();
    out.counter(
        "brisk_cache_hits_total",
        "Answers served from the response cache.",
        cache.hits,
    );
    out.counter(
        "brisk_cache_misses_total",
        "Answers made because the cache did not hold them.",
        cache.misses,
    );
    out.counter(
        "brisk_cache_stale_total",
        "Stale answers served while one refresh ran.",
        cache.stale,
    );
    out.counter(
        "brisk_cache_evictions_total",
        "Entries evicted to stay within cache.max_bytes.",
        cache.evictions,
    );
    out.counter(
        "brisk_not_modified_total",
        "304 answers.",
        cache.not_modified,
    );
    out.gauge(
        "brisk_cache_bytes",
        "Bytes the response cache holds.",
        cache.bytes_held as f64,
    );
    out.gauge(
        "brisk_cache_entries",
        "Answers the response cache holds.",
        cache.entries as f64,
    );
    out.header(
        "brisk_compression_saved_bytes_total",
        "counter",
        "Identity bytes minus the bytes sent, over compressed answers, per coding.",
    );
    for coding in Coding::ALL {
        let saved = state.cache.stats.bytes_saved[coding.index()]
            .load(std::sync::atomic::Ordering::Relaxed);
        out.sample(
            "brisk_compression_saved_bytes_total",
            &[("coding", coding.token())],
            saved as f64,
        );
    }
    let (in_use, capacity) = state.gate.in_use();
    out.gauge(
        "brisk_db_in_use",
        "Requests using a database connection now.",
        in_use as f64,
    );
    out.gauge(
        "brisk_db_capacity",
        "Database connections requests may use at once.",
        capacity as f64,
    );
    out.gauge(
        "brisk_db_waiting",
        "Requests waiting for a database connection.",
        state.gate.waiting() as f64,
    );
    out.counter(
        "brisk_outside_changes_total",
        "Changes made by other programs that brisk noticed.",
        state.changes.outside_changes(),
    );
    if let Some(cluster) = &state.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        out.gauge(
            "brisk_redis_connected",
            "1 while Redis is reachable.",
            f64::from(u8::from(cluster.is_connected())),
        );
        out.counter(
            "brisk_invalidations_sent_total",
            "Changes announced to the other instances.",
            cluster.changes_sent.load(Relaxed),
        );
        out.counter(
            "brisk_invalidations_received_total",
            "Changes received from the instances (this one's included).",
            cluster.changes_received.load(Relaxed),
        );
        out.gauge(
            "brisk_rate_limit_local_fallback",
            "1 while rate limits are counted on this instance alone because Redis is away.",
            f64::from(u8::from(state.access.limits_local_fallback())),
        );
        out.counter(
            "brisk_rate_limit_local_fallbacks_total",
            "Rate-limit decisions made locally because Redis was away.",
            state.access.limit_fallbacks(),
        );
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        out.0,
    )
        .into_response()
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

/// 405 for a known route and another method, with the methods this
/// resource takes in `Allow` (axum's would name every method of the route).
async fn method_not_allowed(
    State(state): Shared,
    path: Option<MatchedPath>,
    segments: Segments,
) -> Response {
    let name = segments
        .ok()
        .and_then(|Path(segments)| segments.into_iter().next());
    let resource = name.as_deref().and_then(|name| state.schema.resource(name));
    let allowed = match (path.as_ref().map(MatchedPath::as_str), resource) {
        (Some("/v1/{resource}"), Some(resource)) => {
            crate::write::allowed_methods(resource, false, state.writes.enabled)
        }
        (Some("/v1/{resource}/{id}"), Some(resource)) => {
            crate::write::allowed_methods(resource, true, state.writes.enabled)
        }
        _ => "GET, HEAD".to_string(),
    };
    ApiError::new(
        Problem::MethodNotAllowed,
        format!("this route allows {allowed}"),
    )
    .with_header(
        header::ALLOW,
        HeaderValue::from_str(&allowed).expect("method names"),
    )
    .into_response()
}
