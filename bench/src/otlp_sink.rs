//! A local OTLP/HTTP receiver that accepts and counts metric exports, so the
//! `instrumented-otlp` runs really export and the count proves it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;

#[derive(Default)]
pub struct Received {
    pub exports: AtomicU64,
    pub bytes: AtomicU64,
}

/// Serves `POST /v1/metrics` on an ephemeral loopback port; returns its base URL.
pub async fn spawn() -> std::io::Result<(String, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/v1/metrics", post(accept))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

async fn accept(
    State(received): State<Arc<Received>>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    received.exports.fetch_add(1, Relaxed);
    received.bytes.fetch_add(body.len() as u64, Relaxed);
    // An empty body is a valid, empty ExportMetricsServiceResponse: full success.
    (
        [(http_content_type(), "application/x-protobuf")],
        Bytes::new(),
    )
}

fn http_content_type() -> axum::http::HeaderName {
    axum::http::header::CONTENT_TYPE
}
