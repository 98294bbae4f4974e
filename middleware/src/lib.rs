//! # wsmon: stream-level RED metrics for WebSocket servers
//!
//! Two lines instrument an axum server: add the layer, and take [`WebSocketUpgrade`] from
//! wsmon instead of axum. The handler body does not change.
//!
//! ```no_run
//! use axum::{response::Response, routing::get, Router};
//! use wsmon::{WebSocketUpgrade, WsMon};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = prometheus::Registry::new();
//! let wsmon = WsMon::builder().route("/ws").build(&registry)?;
//!
//! let app = Router::new()
//!     .route("/ws", get(handler))
//!     .route("/metrics", wsmon.metrics_route())
//!     .layer(wsmon.layer()); // <- line one
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response { // <- line two: wsmon's extractor
//!     ws.on_upgrade(|mut socket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             let _ = socket.send(msg).await;
//!         }
//!     })
//! }
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! A tokio-tungstenite server wraps its `WebSocketStream` instead: see [`tungstenite::accept`]
//! and [`WsMon::instrument`].
//!
//! What is recorded, and under which names, is listed in [`catalog`] and `docs/metrics.md`.
//! The message path does no allocation, no label lookup and takes no lock shared between
//! connections: per-route handles are resolved once per connection, and live-connection
//! gauges are computed at scrape time.

pub mod backoff;
pub mod catalog;
pub mod close_code;
pub mod export;
pub mod frame;
pub mod heartbeat;
mod metrics;
mod monitor;
pub mod observe;
pub mod queue;
pub mod resume;
pub mod sequencer;
pub mod socket;
pub mod tungstenite;

#[cfg(feature = "axum")]
mod layer;
#[cfg(feature = "axum")]
mod upgrade;

pub use heartbeat::Heartbeat;
pub(crate) use monitor::ConnectionConfig;
pub use monitor::{RouteHandle, WsMon, WsMonBuilder};
pub use observe::ConnectionObserver;
pub use queue::{outbound_queue, OverflowPolicy, QueueConfig, QueueReceiver, QueueSender};
pub use resume::ResumeOutcome;
pub use sequencer::{Stamp, StampExtractor};
pub use socket::{ConnectionHandle, Instrumented};

#[cfg(feature = "axum")]
pub use layer::{WsMonLayer, WsMonService};
#[cfg(feature = "axum")]
pub use upgrade::{WebSocket, WebSocketUpgrade};

/// Errors from building the middleware.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metric could not be registered, typically because the registry already holds
    /// wsmon's metrics from another [`WsMon`].
    #[error("registering wsmon metrics in the Prometheus registry failed: {0}")]
    Register(#[source] prometheus::Error),
}
