//! The admin endpoint: the [fault controls](crate::faults) over HTTP, on a listener of its
//! own that only binds loopback addresses (`wsmon-feed --admin-listen 127.0.0.1:9090`).
//!
//! - `GET /faults`: which faults are on (JSON);
//! - `POST /faults/stall?on=true|false`;
//! - `POST /faults/skip?n=N`;
//! - `POST /faults/duplicate?n=N`;
//! - `POST /faults/first-payload-delay?ms=MS`;
//! - `POST /faults/drop`;
//! - `POST /faults/burst?n=N` (at most [`MAX_BURST`]);
//! - `POST /faults/oversized?bytes=N` (at most [`MAX_OVERSIZED_BYTES`]);
//! - `POST /faults/blackhole-publish?on=true|false`;
//! - `POST /faults/clear`.
//!
//! There is no authentication: whoever can reach loopback can break the feed, which is the
//! point of a fault injector and why other addresses are refused.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::faults::Faults;
use crate::Feed;

/// The largest `burst` accepted, so one request cannot exhaust memory.
pub const MAX_BURST: usize = 100_000;
/// The largest `oversized` message accepted.
pub const MAX_OVERSIZED_BYTES: usize = 64 << 20;

/// Why the admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The address is not a loopback address.
    #[error(
        "--admin-listen {0}: the admin endpoint only listens on loopback (127.0.0.0/8 or ::1)"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("--admin-listen {addr}: cannot listen: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (loopback only) and serves the admin routes for `feed` until `shutdown`.
/// Returns the bound address and the server task.
pub async fn spawn(
    addr: SocketAddr,
    feed: Arc<Feed>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), AdminError> {
    if !addr.ip().is_loopback() {
        return Err(AdminError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    // axum::serve has no header-read timeout; acceptable here, as only loopback reaches it.
    let app = router(feed.faults());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((local, task))
}

/// The admin routes, for embedding in a router of your own.
pub fn router(faults: Faults) -> Router {
    Router::new()
        .route("/faults", get(status))
        .route("/faults/stall", post(stall))
        .route("/faults/skip", post(skip))
        .route("/faults/duplicate", post(duplicate))
        .route("/faults/first-payload-delay", post(first_payload_delay))
        .route("/faults/drop", post(drop_connections))
        .route("/faults/burst", post(burst))
        .route("/faults/oversized", post(oversized))
        .route("/faults/blackhole-publish", post(blackhole))
        .route("/faults/clear", post(clear))
        .with_state(faults)
}

#[derive(Deserialize)]
struct On {
    on: bool,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

#[derive(Deserialize)]
struct Millis {
    ms: u64,
}

#[derive(Deserialize)]
struct Bytes {
    bytes: usize,
}

async fn status(State(faults): State<Faults>) -> Response {
    Json(faults.status()).into_response()
}

async fn stall(State(faults): State<Faults>, Query(q): Query<On>) -> Response {
    faults.stall(q.on);
    Json(faults.status()).into_response()
}

async fn skip(State(faults): State<Faults>, Query(q): Query<Count>) -> Response {
    Json(json!({ "head": faults.skip_sequences(q.n) })).into_response()
}

async fn duplicate(State(faults): State<Faults>, Query(q): Query<Count>) -> Response {
    let n = usize::try_from(q.n).unwrap_or(usize::MAX);
    Json(json!({ "resent": faults.duplicate_last(n) })).into_response()
}

async fn first_payload_delay(State(faults): State<Faults>, Query(q): Query<Millis>) -> Response {
    faults.set_first_payload_delay(Duration::from_millis(q.ms));
    Json(faults.status()).into_response()
}

async fn drop_connections(State(faults): State<Faults>) -> Response {
    faults.drop_connections();
    Json(faults.status()).into_response()
}

async fn burst(State(faults): State<Faults>, Query(q): Query<Count>) -> Response {
    let n = usize::try_from(q.n).unwrap_or(usize::MAX);
    if n > MAX_BURST {
        let msg = format!("n={n}: at most {MAX_BURST} messages per burst\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    Json(json!({ "seq": faults.burst(n) })).into_response()
}

async fn oversized(State(faults): State<Faults>, Query(q): Query<Bytes>) -> Response {
    if q.bytes > MAX_OVERSIZED_BYTES {
        let msg = format!("bytes={}: at most {MAX_OVERSIZED_BYTES}\n", q.bytes);
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    Json(json!({ "seq": faults.send_oversized(q.bytes) })).into_response()
}

async fn blackhole(State(faults): State<Faults>, Query(q): Query<On>) -> Response {
    faults.blackhole_publishes(q.on);
    Json(faults.status()).into_response()
}

async fn clear(State(faults): State<Faults>) -> Response {
    faults.clear();
    Json(faults.status()).into_response()
}
