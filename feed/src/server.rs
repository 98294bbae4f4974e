//! Serving the feed's router over HTTP/1 with a header-read timeout.
//!
//! `axum::serve` sets no timer on hyper, so hyper's header-read timeout never runs there: a
//! client that trickles its upgrade request one byte at a time (slowloris), or opens a socket
//! and sends nothing, holds a connection and its task forever. The feed serves each
//! connection itself with hyper's HTTP/1 builder, a Tokio timer and `header_read_timeout`, so
//! such a connection is dropped once the timeout passes, counted nowhere (no request was ever
//! read). The timeout also bounds idle keep-alive connections between requests, and `POST
//! /publish` applies it to reading its body. HTTP/2 is not offered: WebSocket clients upgrade
//! over HTTP/1.1.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use wsmon::WsMon;

/// How long shutdown waits for WebSocket connections, then for HTTP connections, to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts on `listener` until `shutdown` resolves; then closes every WebSocket with 1001
/// and lets in-flight HTTP requests finish (each step bounded by [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    wsmon: WsMon,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %err, "feed: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let mut conn = pin!(builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades());
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "feed: HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let left = wsmon.shutdown_and_wait(SHUTDOWN_GRACE).await;
    tracing::info!(still_open = left, "feed: WebSocket connections closed");
    stop.cancel();
    connections.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.wait()).await;
    Ok(())
}
