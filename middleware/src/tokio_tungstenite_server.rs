//! Instrumenting a server built directly on tokio-tungstenite (an adapter, not a re-export:
//! the tungstenite crate itself is `tokio_tungstenite::tungstenite`).
//!
//! ```no_run
//! # async fn run(wsmon: wsmon::WsMon) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (tcp, _) = listener.accept().await?;
//! let mut socket = wsmon::tokio_tungstenite_server::accept(&wsmon, "/ws", tcp).await?;
//! // `socket` is a `WebSocketStream` with the same Stream/Sink API, now recorded.
//! # Ok(()) }
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::WebSocketStream;

use crate::{Instrumented, WsMon};

/// Accepts a WebSocket handshake on `stream`, recording its outcome under `route` with the
/// same origin, overload and message-size rules as the axum layer.
///
/// `route` becomes a label value: pass a template from your code, never a raw request path.
pub async fn accept<T>(
    wsmon: &WsMon,
    route: &str,
    stream: T,
) -> Result<Instrumented<WebSocketStream<T>>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let route_metrics = wsmon.inner.metrics.route(route);
    let precheck = wsmon.clone();
    let canary = std::sync::atomic::AtomicBool::new(false);
    // tungstenite's `Callback` fixes this signature, large error variant included.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        canary.store(precheck.is_canary(req.headers()), Relaxed);
        match precheck.precheck(req.headers()) {
            None => Ok(resp),
            Some(status) => {
                let mut r =
                    ErrorResponse::new(Some(status.canonical_reason().unwrap_or("").into()));
                *r.status_mut() = status;
                Err(r)
            }
        }
    };
    let mut config = WebSocketConfig::default();
    if let Some(max) = wsmon.inner.max_message_bytes {
        config = config.max_message_size(Some(max)).max_frame_size(Some(max));
    }
    match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await {
        Ok(socket) => {
            let canary = canary.load(Relaxed);
            route_metrics.record_upgrade(
                StatusCode::SWITCHING_PROTOCOLS,
                true,
                started.elapsed(),
                canary,
            );
            Ok(wsmon.instrument_as(route, socket, canary))
        }
        Err(err) => {
            let status = match &err {
                Error::Http(resp) => resp.status(),
                _ => StatusCode::BAD_REQUEST,
            };
            route_metrics.record_upgrade(status, false, started.elapsed(), canary.load(Relaxed));
            Err(err)
        }
    }
}
