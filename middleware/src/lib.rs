//! # wsmon: stream-level RED metrics for WebSocket servers
//!
//! Two lines instrument an axum server: add the layer, and take [`WebSocketUpgrade`] from
//! wsmon instead of axum. The handler body does not change. (This example is the README's,
//! line for line; a test keeps the two equal.)
//!
//! ```rust
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{response::Response, routing::get, Router};
//! use wsmon::{WebSocketUpgrade, WsMon};
//!
//! let registry = prometheus::Registry::new();          // yours, or a fresh one
//! let wsmon = WsMon::builder().route("/ws").build(&registry)?;
//!
//! let app = Router::new()
//!     .route("/ws", get(handler))
//!     .route("/metrics", wsmon.metrics_route())        // optional: a ready /metrics
//!     .layer(wsmon.layer());                           // 1. the layer
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response { // 2. wsmon's extractor
//!     ws.on_upgrade(|mut socket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             if socket.send(msg).await.is_err() { break; }
//!         }
//!     })
//! }
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! A tokio-tungstenite server wraps its `WebSocketStream` instead: see
//! [`tokio_tungstenite_server::accept`] and [`WsMon::instrument`].
//!
//! What is recorded, and under which names, is listed in [`catalog`] and `docs/metrics.md`.
//! The message path does no allocation, no label lookup and takes no lock shared between
//! connections: per-route handles are resolved once per connection, and live-connection
//! gauges are computed at scrape time. Requests that are not upgrade attempts pass through
//! the layer without an allocation. On a mostly-REST service, wrap the whole router instead
//! of adding the layer to it, which spares every request axum's per-route boxing: see
//! [`layer`].
//!
//! ## WebSockets over HTTP/2
//!
//! An RFC 8441 extended `CONNECT` with `:protocol = websocket` is an upgrade attempt like an
//! HTTP/1.1 `Upgrade`: the origin allowlist, the connection limit and the shutdown refusal
//! apply, and its `200` counts as accepted (`status_code="200"`). axum routes it only to a
//! handler that accepts `CONNECT` (`any(handler)`, or `on(MethodFilter::GET.or(MethodFilter::CONNECT), handler)`),
//! and serves HTTP/2 only with its `http2` feature on.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`WsMonLayer`], the [`WebSocketUpgrade`] extractor, [`WsMon::metrics_route`] |
//! | `otlp` | no | [`export::otlp`]: OTLP export over gRPC or HTTP/protobuf (tonic, reqwest) |
//! | `json` | no | [`sequencer::json_stamp_extractor`] (serde_json) |
//!
//! Without any feature, the tokio-tungstenite adapter, the instrumented socket, the queue and
//! the Prometheus exposition remain.

#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
mod canary;
// The catalog's items are documented where the catalog crate moves them (another change).
#[allow(missing_docs)]
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
#[cfg(feature = "axum")]
mod route_paths;
mod secret;
pub mod sequencer;
pub mod socket;
pub mod tokio_tungstenite_server;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod layer;
#[cfg(feature = "axum")]
mod upgrade;

pub use canary::CanaryRecognition;
pub use heartbeat::Heartbeat;
pub(crate) use monitor::ConnectionConfig;
pub use monitor::{RouteHandle, WsMon, WsMonBuilder};
pub use observe::ConnectionObserver;
pub use queue::{outbound_queue, OverflowPolicy, QueueConfig, QueueReceiver, QueueSender};
pub use resume::ResumeOutcome;
pub use secret::{Secret, SecretError};
pub use sequencer::{Stamp, StampExtractor};
pub use socket::{ConnectionHandle, Instrumented};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use layer::{WsMonLayer, WsMonService};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use upgrade::{WebSocket, WebSocketUpgrade, WebSocketUpgradeRejection};

/// Errors from building the middleware.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metric could not be registered, typically because the registry already holds
    /// wsmon's metrics from another [`WsMon`].
    #[error("registering wsmon metrics in the Prometheus registry failed: {0}")]
    Register(#[source] prometheus::Error),
    /// A declared route template is malformed or conflicts with another declared one (the
    /// rules of axum's router: `/rooms/{id}` and `/rooms/{name}` conflict).
    #[error("the declared route {template:?} cannot be matched: {reason}")]
    Route {
        /// The template as declared with [`WsMonBuilder::route`].
        template: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Seals the traits only wsmon implements, so adding a method to them is not a breaking
/// change.
mod sealed {
    pub trait Sealed {}
}
