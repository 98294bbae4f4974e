//! The tower layer: handshake metrics, origin and overload checks, and the context that the
//! [`crate::WebSocketUpgrade`] extractor picks up.
//!
//! Add it with `Router::layer`, which wraps each route (and the fallback) after routing, so
//! axum's `MatchedPath` is known here and an unrouted request counts as `unmatched`.
//!
//! Or wrap the whole router, before routing. axum's `Router::layer` boxes each route once
//! more for any layer, a cost every plain request pays; around the router there is none. An
//! attempt's route is then the template declared with [`crate::WsMonBuilder::route`] that
//! matches its path, matched as axum's router matches it (any other path is `unmatched`):
//!
//! ```no_run
//! use axum::{extract::Request, routing::get, Router, ServiceExt};
//! use tower_layer::Layer as _;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let registry = prometheus::Registry::new();
//! let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry)?;
//! let router = Router::new().route("/api/items", get(|| async { "items" }));
//! let app = wsmon.layer().layer(router);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! An upgrade attempt is any request with `Upgrade: websocket`, whatever its method (a `POST`
//! answered 405 is a rejected attempt), or an HTTP/2 extended `CONNECT` whose `:protocol` is
//! `websocket` (RFC 8441). Both go through the origin allowlist, the connection limit and the
//! shutdown refusal. Every other request passes through untouched: no allocation, no lock,
//! no clock read (see [`future::ResponseFuture`]).

mod future;
mod service;

use http::{header, Method, Request, Version};

use crate::metrics::RouteMetrics;
use crate::WsMon;

pub use future::ResponseFuture;
pub use service::WsMonService;

/// The layer returned by [`WsMon::layer`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct WsMonLayer {
    wsmon: WsMon,
}

impl WsMon {
    /// The tower layer to add to the router: `router.layer(wsmon.layer())`.
    pub fn layer(&self) -> WsMonLayer {
        WsMonLayer {
            wsmon: self.clone(),
        }
    }
}

impl<S> tower_layer::Layer<S> for WsMonLayer {
    type Service = WsMonService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WsMonService::new(inner, self.wsmon.clone())
    }
}

/// How a request asks for a WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// `Upgrade: websocket` (RFC 6455), accepted with 101.
    Upgrade,
    /// Extended CONNECT with `:protocol = websocket` (RFC 8441), accepted with 200.
    ExtendedConnect,
}

impl Attempt {
    /// The status that means the WebSocket was accepted.
    pub(crate) fn accepted(self) -> http::StatusCode {
        match self {
            Attempt::Upgrade => http::StatusCode::SWITCHING_PROTOCOLS,
            Attempt::ExtendedConnect => http::StatusCode::OK,
        }
    }
}

/// Whether `req` is a WebSocket upgrade attempt, and which kind.
#[inline]
pub(crate) fn upgrade_attempt<B>(req: &Request<B>) -> Option<Attempt> {
    // Checked first and cheaply: the version is a byte, the method an enum tag.
    if req.version() >= Version::HTTP_2 && req.method() == Method::CONNECT {
        let websocket = req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if websocket {
            return Some(Attempt::ExtendedConnect);
        }
    }
    let headers = req.headers();
    // Scanning a request's few names compares enum tags; `get_all` hashes the name first,
    // which cost a plain request about 90 instructions (BENCHMARKS.md, 1d).
    if !headers.keys().any(|name| name == header::UPGRADE) {
        return None;
    }
    headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        .then_some(Attempt::Upgrade)
}

/// Per-attempt context handed from the layer to the extractor, only for upgrade attempts.
#[derive(Clone)]
pub(crate) struct HandshakeContext {
    pub(crate) wsmon: WsMon,
    pub(crate) route: std::sync::Arc<RouteMetrics>,
    /// Recognised as a canary's upgrade (see [`crate::CanaryRecognition`]).
    pub(crate) canary: bool,
}

/// Set on the response by the extractor's rejection of a request that was not an upgrade
/// attempt (a plain `GET /ws`): the layer counts it as a rejected upgrade on that route.
#[derive(Clone)]
pub(crate) struct RejectedAtWebSocketRoute {
    pub(crate) route: Option<axum::extract::MatchedPath>,
    /// The request's headers, so the layer can tell a canary's refused request from a
    /// user's (cloned on this rejection path only).
    pub(crate) headers: http::HeaderMap,
}
