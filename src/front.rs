//! What every request passes on its way in, before any routing, and every
//! response on its way out. In: the request head is held to its bounds
//! (`Host` exactly once on HTTP/1.1, the target within `limits.max_url_bytes`,
//! the headers within `limits.max_header_bytes`), a client's `X-Request-Id`
//! is kept only when short and plain, a request id is given, panics are
//! caught, and a fresh cache hit is answered ([`crate::pipeline::hit`]).
//! Out: `X-Content-Type-Options: nosniff`, the request id, and the cause of
//! an error written to the log with that id: the one place errors are
//! logged.

use crate::error::{ApiError, Cause, Problem};
use crate::pipeline;
use crate::routes;
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
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
pub type Front = Bounds<SetRequestId<PropagateRequestId<Finish<CacheFirst>>, SequentialIds>>;

type Panic = Box<dyn std::any::Any + Send + 'static>;

/// The service the server loop serves.
pub fn service(state: Arc<AppState>, bounds: HeadBounds) -> Front {
    let inner = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, SequentialIds::new()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer_fn(|inner| Finish { inner })
        .service(CacheFirst {
            router: routes::router(state.clone()),
            state,
        });
    Bounds { bounds, inner }
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
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
            return Either::Left(ready(Ok(response)));
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

/// On the way out: `nosniff` on every response, and an error's cause
/// logged with the request id. A panic below, in `call` (the cache's fast
/// path answers there) or while the response is made, becomes a 500.
#[derive(Clone)]
pub struct Finish<S> {
    inner: S,
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
        let id = request.headers().get(REQUEST_ID).cloned();
        let inner =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.call(request)));
        match inner {
            Ok(inner) => Finishing {
                id,
                inner: Some(inner),
                panicked: None,
            },
            Err(panic) => Finishing {
                id,
                inner: None,
                panicked: Some(panic),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`Finish`].
    pub struct Finishing<F> {
        id: Option<HeaderValue>,
        #[pin]
        inner: Option<F>,
        panicked: Option<Panic>,
    }
}

impl<F: std::future::Future<Output = Result<Response, Infallible>>> std::future::Future
    for Finishing<F>
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match this.panicked.take() {
            Some(panic) => internal_error(panic),
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
        response
            .headers_mut()
            .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        if let Some(cause) = response.extensions().get::<Cause>() {
            log(cause, this.id.as_ref(), response.status().as_u16());
        }
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

/// Answers fresh cache hits itself and hands everything else to the router.
#[derive(Clone)]
pub struct CacheFirst {
    state: Arc<AppState>,
    router: Router,
}

impl Service<Request> for CacheFirst {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, <Router as Service<Request>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match pipeline::hit(&self.state, &request) {
            Some(response) => Either::Left(ready(Ok(response))),
            None => Either::Right(self.router.call(request)),
        }
    }
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
        let panics_in_call = Finish {
            inner: tower::service_fn(|_: Request| -> Ready<Result<Response, Infallible>> {
                panic!("in call")
            }),
        };
        let panics_in_future = Finish {
            inner: tower::service_fn(|_: Request| async {
                panic!("in the future");
                #[allow(unreachable_code)]
                Ok::<Response, Infallible>(Response::default())
            }),
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
