//! What every request passes on its way in, before any routing, and every
//! response on its way out. In: the request head is held to its bounds
//! (`Host` exactly once on HTTP/1.1, the target within `limits.max_url_bytes`,
//! the headers within `limits.max_header_bytes`), a client's `X-Request-Id`
//! is kept only when short and plain, a request id is given, panics are
//! caught, and a fresh cache hit is answered ([`crate::pipeline::hit`]).
//! Out: `X-Content-Type-Options: nosniff`, the request id, and the cause of
//! an error written to the log with that id: the one place errors are
//! logged.

use crate::access::Spent;
use crate::config::CorsSettings;
use crate::error::{ApiError, Cause, Problem};
use crate::metrics::{Metrics, Route};
use crate::pipeline;
use crate::routes;
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestId, PropagateRequestIdLayer, RequestId, SetRequestId,
    SetRequestIdLayer,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Longest client request id kept; longer ones are replaced by brisk's own.
const MAX_REQUEST_ID: usize = 64;

/// The whole HTTP service, from the bounds on the request head to the router.
pub type Front = Finish<Bounds<SetRequestId<PropagateRequestId<CacheFirst>, SequentialIds>>>;

type Panic = Box<dyn std::any::Any + Send + 'static>;

/// The service the server loop serves.
pub fn service(state: Arc<AppState>, bounds: HeadBounds) -> Front {
    let inner = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, SequentialIds::new()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .service(CacheFirst {
            router: routes::router(state.clone()),
            state: state.clone(),
        });
    Finish {
        inner: Bounds { bounds, inner },
        metrics: state.metrics.clone(),
        cors: state.cors.clone(),
    }
}

/// The most a request head may hold.
#[derive(Debug, Clone, Copy)]
pub struct HeadBounds {
    pub max_url_bytes: usize,
    pub max_header_bytes: usize,
}

/// Refuses request heads past their bounds, and forgets request ids that
/// are too long or not plain (no header ever echoes unbounded input).
#[derive(Clone)]
pub struct Bounds<S> {
    bounds: HeadBounds,
    inner: S,
}

impl<S> Service<Request> for Bounds<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Err(error) = check_head(&request, self.bounds) {
            return Either::Left(ready(Ok(error.into_response())));
        }
        if request
            .headers()
            .get(REQUEST_ID)
            .is_some_and(|id| !plain_request_id(id))
        {
            request.headers_mut().remove(REQUEST_ID);
        }
        Either::Right(self.inner.call(request))
    }
}

fn check_head(request: &Request, bounds: HeadBounds) -> Result<(), ApiError> {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && request.version() >= Version::HTTP_11) {
        return Err(ApiError::new(
            Problem::MalformedRequest,
            format!(
                "an HTTP/1.1 request carries exactly one Host header, and this one has {hosts}"
            ),
        ));
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > bounds.max_url_bytes {
        return Err(ApiError::new(
            Problem::UriTooLong,
            format!(
                "the path and query are {target} bytes, and limits.max_url_bytes is {}: \
                 ask for fewer values at once, or page with cursors",
                bounds.max_url_bytes
            ),
        ));
    }
    let head: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if head > bounds.max_header_bytes {
        return Err(ApiError::new(
            Problem::HeadersTooLarge,
            format!(
                "the request headers hold {head} bytes, and limits.max_header_bytes is {}",
                bounds.max_header_bytes
            ),
        ));
    }
    Ok(())
}

/// Short, and only letters, digits and `-_.:`: safe to log and echo.
fn plain_request_id(id: &HeaderValue) -> bool {
    id.len() <= MAX_REQUEST_ID
        && !id.is_empty()
        && id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Around everything: a panic below, in `call` (the cache's fast path
/// answers there) or while the response is made, becomes a 500; CORS
/// preflights are answered here. On the way out: `nosniff` and CORS headers
/// on every response, the request counted in the metrics, and an error's
/// cause logged with the request id.
#[derive(Clone)]
pub struct Finish<S> {
    inner: S,
    metrics: Arc<Metrics>,
    cors: Arc<CorsSettings>,
}

impl<S> Service<Request> for Finish<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Finishing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let outline = Outline {
            started: Instant::now(),
            route: Route::of(request.uri().path()),
            method: request.method().clone(),
            origin: self
                .cors
                .enabled()
                .then(|| request.headers().get(header::ORIGIN).cloned())
                .flatten(),
            metrics: self.metrics.clone(),
            cors: self.cors.clone(),
        };
        if let Some(preflight) = preflight(&self.cors, &request) {
            return Finishing {
                outline,
                inner: None,
                early: Some(preflight),
            };
        }
        let inner =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.call(request)));
        match inner {
            Ok(inner) => Finishing {
                outline,
                inner: Some(inner),
                early: None,
            },
            Err(panic) => Finishing {
                outline,
                inner: None,
                early: Some(internal_error(panic)),
            },
        }
    }
}

/// What [`Finish`] keeps of a request for its answer.
pub struct Outline {
    started: Instant,
    route: Route,
    method: Method,
    /// The request's `Origin`, when CORS is on.
    origin: Option<HeaderValue>,
    metrics: Arc<Metrics>,
    cors: Arc<CorsSettings>,
}

impl Outline {
    fn finish(&self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        if let Some(origin) = &self.origin
            && let Some(allowed) = self.cors.allow(origin)
        {
            let any = allowed == "*";
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
            if !any {
                headers.append(header::VARY, HeaderValue::from_static("origin"));
            }
        }
        if let Some(cause) = response.extensions().get::<Cause>() {
            log(
                cause,
                response.headers().get(REQUEST_ID),
                response.status().as_u16(),
            );
        }
        self.metrics.record(
            self.route,
            self.method.as_str(),
            response.status().as_u16(),
            self.started.elapsed(),
        );
    }
}

/// The headers a browser script may read besides the simple ones.
const EXPOSED: HeaderValue = HeaderValue::from_static(
    "etag, link, location, retry-after, server-timing, x-request-id, ratelimit, ratelimit-policy",
);

/// The answer to a CORS preflight: 204, with the allowing headers when the
/// origin is allowed, cacheable by the browser for `cors.max_age_seconds`.
fn preflight(cors: &CorsSettings, request: &Request) -> Option<Response> {
    if !cors.enabled() || request.method() != Method::OPTIONS {
        return None;
    }
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN)?;
    headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    let Some(allowed) = cors.allow(origin) else {
        return Some(response);
    };
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PATCH, PUT, DELETE"),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "authorization, content-type, if-match, if-none-match, x-api-key, x-request-id",
        ),
    );
    out.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    Some(response)
}

pin_project_lite::pin_project! {
    /// The response of [`Finish`].
    pub struct Finishing<F> {
        outline: Outline,
        #[pin]
        inner: Option<F>,
        // an answer made before calling the service (a preflight, a panic)
        early: Option<Response>,
    }
}

impl<F: std::future::Future<Output = Result<Response, Infallible>>> std::future::Future
    for Finishing<F>
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match this.early.take() {
            Some(response) => response,
            None => {
                let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                    return Poll::Pending;
                };
                let polled =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx)));
                match polled {
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(_) => return Poll::Pending,
                    Err(panic) => {
                        this.inner.set(None);
                        internal_error(panic)
                    }
                }
            }
        };
        this.outline.finish(&mut response);
        Poll::Ready(Ok(response))
    }
}

fn log(cause: &Cause, id: Option<&HeaderValue>, status: u16) {
    let id = id.and_then(|v| v.to_str().ok()).unwrap_or("-");
    let message = &cause.message;
    match cause.level {
        tracing::Level::ERROR => tracing::error!(request_id = id, status, "{message}"),
        tracing::Level::WARN => tracing::warn!(request_id = id, status, "{message}"),
        tracing::Level::INFO => tracing::info!(request_id = id, status, "{message}"),
        _ => tracing::debug!(request_id = id, status, "{message}"),
    }
}

/// A panic anywhere below, the cache's fast path included, becomes a 500
/// problem; its message goes to the log, not to the client.
fn internal_error(panic: Panic) -> Response {
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

/// Lets a request in ([`crate::access`]: who asks, and whether its rate
/// limit allows), answers fresh cache hits itself, and hands everything
/// else to the router with the caller in the request's extensions. Paths
/// outside `/v1/` (health, metrics) skip the access layer.
#[derive(Clone)]
pub struct CacheFirst {
    state: Arc<AppState>,
    router: Router,
}

impl Service<Request> for CacheFirst {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !request.uri().path().starts_with("/v1/") {
            return Either::Left(self.router.call(request));
        }
        let state = self.state.clone();
        let router = self.router.clone();
        Either::Right(Box::pin(admit_then_serve(state, router, request)))
    }
}

async fn admit_then_serve(
    state: Arc<AppState>,
    mut router: Router,
    mut request: Request,
) -> Result<Response, Infallible> {
    let peer = crate::server::client_address(&request)
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |address| address.ip());
    let access = &state.access;
    let viewer = match access.identify(request.headers(), peer, &state.metrics) {
        Ok(viewer) => viewer,
        Err(error) => return Ok(error.into_response()),
    };
    let spent = match access.spend(&viewer, 1, &state.metrics).await {
        Ok(spent) => spent,
        Err(error) => return Ok(error.into_response()),
    };
    let mut response = match pipeline::hit(&state, &request, &viewer) {
        Some(response) => response,
        None => {
            request.extensions_mut().insert(viewer.clone());
            router.call(request).await?
        }
    };
    // a miss that cost more left the later decision in the response
    let spent = response.extensions_mut().remove::<Spent>().or(spent);
    let headers = response.headers_mut();
    if let Some(spent) = spent {
        spent.write_headers(headers);
    }
    access.finish_headers(&viewer, headers);
    Ok(response)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panic_before_or_while_answering_is_a_500_problem() {
        let metrics = Arc::new(Metrics::default());
        let cors = Arc::new(CorsSettings {
            origins: Vec::new(),
            any_origin: false,
            max_age: HeaderValue::from(600),
        });
        let panics_in_call = Finish {
            inner: tower::service_fn(|_: Request| -> Ready<Result<Response, Infallible>> {
                panic!("in call")
            }),
            metrics: metrics.clone(),
            cors: cors.clone(),
        };
        let panics_in_future = Finish {
            inner: tower::service_fn(|_: Request| async {
                panic!("in the future");
                #[allow(unreachable_code)]
                Ok::<Response, Infallible>(Response::default())
            }),
            metrics: metrics.clone(),
            cors,
        };
        let request = || Request::new(axum::body::Body::empty());
        for response in [
            panics_in_call.oneshot(request()).await.unwrap(),
            panics_in_future.oneshot(request()).await.unwrap(),
        ] {
            assert_eq!(response.status(), 500);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            let cause = response.extensions().get::<Cause>().unwrap();
            assert!(cause.message.contains("panicked: in "), "{}", cause.message);
        }
    }
}
