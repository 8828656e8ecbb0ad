//! The HTTP/1.1 server loop: accepts connections up to `http.max_connections`
//! (one more is answered 503 and closed), closes a connection that sends no
//! complete request head within `http.idle_timeout_ms` (an idle keep-alive
//! connection, or headers dribbled in: slowloris), tells each request its
//! client's address, and on shutdown stops accepting, lets the requests in
//! flight finish within `http.shutdown_grace_ms`, then drops what is left
//! (which cancels its database work).

use crate::config::HttpSettings;
use crate::error::{ApiError, Problem};
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The service every connection's requests go to.
pub trait Handler:
    tower::Service<
        axum::http::Request<Body>,
        Response = axum::http::Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Handler for S where
    S: tower::Service<
            axum::http::Request<Body>,
            Response = axum::http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `service` on `listener` until `shutdown` resolves, then for at
/// most the grace period while requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    service: impl Handler,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // out of file descriptors, or a connection reset before
                    // it was accepted: wait a little and go on
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, settings.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let requests = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            service.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), requests);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = settings.shutdown_grace.as_millis() as u64,
            "requests still in flight after the shutdown grace period are dropped"
        );
    }
    Ok(())
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let body = ApiError::new(
        Problem::Overloaded,
        format!(
            "brisk has {max_connections} connections open (http.max_connections); retry in a second"
        ),
    )
    .body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         cache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// The client address of a request, as the server loop recorded it.
pub fn client_address<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}
