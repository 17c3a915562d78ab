//! The accept loop: HTTP/1.1 connections with bounds a slow or idle client cannot stretch.
//!
//! axum's own `serve` sets no timer, so a client could take as long as it liked to send
//! its headers and hold an idle connection open for ever. Here hyper serves each
//! connection with `HEADER_READ_TIMEOUT`, which runs from when the connection waits for
//! a request's headers (its first, or the next one on a kept-alive connection) until
//! they have all arrived: it bounds a slow header sender and an idle keep-alive
//! connection alike. At most `CONNECTIONS_MAX` connections are served at once; past
//! that, new ones wait in the listen backlog until one closes. Every request carries its
//! peer address (`ConnectInfo`) for the failure limits (`attempts.rs`).
//!
//! On shutdown the loop stops accepting, asks every connection to finish its request in
//! flight and close, and waits for them at most `DRAIN_MAX`; every connection task is
//! tracked in a `JoinSet`, none is left behind.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Longest a client may take to send a request's headers, and so longest a kept-alive
/// connection stays open with no request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (the process may open 20,000 files here; the database
/// pool, the channels' clients and the logs need the rest).
pub const CONNECTIONS_MAX: usize = 1024;
/// Headers in one request (hyper's default is 100).
pub const HEADERS_MAX: usize = 100;
/// Longest a shutdown waits for requests in flight (a request's own limit is
/// `REQUEST_TIMEOUT`).
pub const DRAIN_MAX: Duration = crate::REQUEST_TIMEOUT;
/// Pause after a failed accept (out of file descriptors, say) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let (closing, closed) = watch::channel(false);
    let mut conns: JoinSet<()> = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first: with every slot taken, new connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.map(axum::body::Body::new)
        });
        let mut closed = closed.clone();
        conns.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_headers(HEADERS_MAX);
            let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(conn.with_upgrades());
            loop {
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(peer = %peer, error = %e, "connection ended");
                        }
                        break;
                    }
                    changed = closed.changed() => {
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        } else {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(DRAIN_MAX, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = conns.len(), "connections still open after the drain; closing them");
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    Ok(())
}
