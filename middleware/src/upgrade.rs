//! The drop-in replacement for axum's `WebSocketUpgrade` extractor.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Once, OnceLock};

use axum::extract::ws::rejection::WebSocketUpgradeRejection as WsRejection;
use axum::extract::ws::{self, DefaultOnFailedUpgrade, OnFailedUpgrade};
use axum::extract::{FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::layer::{HandshakeContext, RejectedAtWebSocketRoute};
use crate::socket::Instrumented;
use crate::WsMon;

/// axum's `WebSocket`, instrumented. Same methods, same `Stream`/`Sink` impls.
pub type WebSocket = Instrumented<ws::WebSocket>;

/// Use in place of `axum::extract::ws::WebSocketUpgrade`; the handler body stays the same.
///
/// ```no_run
/// use axum::response::Response;
/// use wsmon::WebSocketUpgrade;
///
/// async fn handler(ws: WebSocketUpgrade) -> Response {
///     ws.on_upgrade(|mut socket| async move {
///         while let Some(Ok(msg)) = socket.recv().await {
///             if socket.send(msg).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// ```
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    inner: ws::WebSocketUpgrade,
    /// The application's callback; `None` is axum's default, which does nothing.
    on_failed: Option<F>,
    ctx: Option<HandshakeContext>,
}

impl<F> fmt::Debug for WebSocketUpgrade<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("inner", &self.inner)
            .field("route", &self.ctx.as_ref().map(|c| c.route.name()))
            .field("on_failed_upgrade", &self.on_failed.is_some())
            .finish()
    }
}

/// Why [`WebSocketUpgrade`] refused a request: axum's rejection, answered with the same
/// status and body. A plain request (no `Upgrade: websocket`) refused here is counted by the
/// layer as a rejected upgrade on the route.
#[derive(Debug)]
pub struct WebSocketUpgradeRejection {
    inner: WsRejection,
    route: Option<MatchedPath>,
    headers: http::HeaderMap,
}

impl WebSocketUpgradeRejection {
    /// axum's rejection, for matching on its variants.
    pub fn into_inner(self) -> WsRejection {
        self.inner
    }

    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for WebSocketUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        let mut response = self.inner.into_response();
        response.extensions_mut().insert(RejectedAtWebSocketRoute {
            route: self.route,
            headers: self.headers,
        });
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The layer hands a context to upgrade attempts only; other requests are refused by
        // axum's extractor below, and the layer counts that refusal from the response.
        let ctx = parts.extensions.get::<HandshakeContext>().cloned();
        let mut inner = match ws::WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(inner) => inner,
            Err(inner) => {
                return Err(WebSocketUpgradeRejection {
                    inner,
                    route: parts.extensions.get::<MatchedPath>().cloned(),
                    headers: parts.headers.clone(),
                })
            }
        };
        if ctx.is_none() {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    "wsmon::WebSocketUpgrade used without the wsmon layer; \
                     add `.layer(wsmon.layer())` to the router to record metrics"
                )
            });
        }
        if let Some(max) = ctx.as_ref().and_then(|c| c.wsmon.inner.max_message_bytes) {
            inner = inner.max_message_size(max).max_frame_size(max);
        }
        Ok(Self {
            inner,
            on_failed: None,
            ctx,
        })
    }
}

/// Where connections upgraded without the layer are recorded: a private, unexported registry.
fn detached() -> &'static WsMon {
    static DETACHED: OnceLock<WsMon> = OnceLock::new();
    DETACHED.get_or_init(|| {
        WsMon::builder()
            .build(&prometheus::Registry::new())
            .expect("a fresh registry accepts the catalog")
    })
}

impl<F> WebSocketUpgrade<F> {
    fn map(self, f: impl FnOnce(ws::WebSocketUpgrade) -> ws::WebSocketUpgrade) -> Self {
        Self {
            inner: f(self.inner),
            on_failed: self.on_failed,
            ctx: self.ctx,
        }
    }

    /// The subprotocols the server supports, in order of preference; see axum's
    /// `WebSocketUpgrade::protocols`. Default: none.
    pub fn protocols<I>(self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<std::borrow::Cow<'static, str>>,
    {
        self.map(|u| u.protocols(protocols))
    }

    /// The largest message accepted; see axum's. Default: the builder's
    /// [`crate::WsMonBuilder::max_message_bytes`], else 64 MiB.
    pub fn max_message_size(self, max: usize) -> Self {
        self.map(|u| u.max_message_size(max))
    }

    /// The largest frame accepted; see axum's. Default: as for the message size, else 16 MiB.
    pub fn max_frame_size(self, max: usize) -> Self {
        self.map(|u| u.max_frame_size(max))
    }

    /// The read buffer's size; see axum's. Default: 128 KiB.
    pub fn read_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.read_buffer_size(size))
    }

    /// The size the write buffer is flushed at; see axum's. Default: 128 KiB.
    pub fn write_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.write_buffer_size(size))
    }

    /// The write buffer's limit; see axum's. Default: unlimited.
    pub fn max_write_buffer_size(self, max: usize) -> Self {
        self.map(|u| u.max_write_buffer_size(max))
    }

    /// Accepts frames the client did not mask, against RFC 6455; see axum's. Default: false.
    pub fn accept_unmasked_frames(self, accept: bool) -> Self {
        self.map(|u| u.accept_unmasked_frames(accept))
    }

    /// The subprotocols the client asked for.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.inner.requested_protocols()
    }

    /// The subprotocol selected with [`WebSocketUpgrade::protocols`], if any.
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.inner.selected_protocol()
    }

    /// Selects a subprotocol by hand.
    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.inner.set_selected_protocol(protocol)
    }

    /// Runs `callback` if the upgrade fails after the response was sent (the failure is
    /// recorded first). Default: nothing beyond the recording.
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> WebSocketUpgrade<C> {
        WebSocketUpgrade {
            inner: self.inner,
            on_failed: Some(callback),
            ctx: self.ctx,
        }
    }

    /// Completes the upgrade and calls `callback` with the instrumented socket.
    #[must_use = "to set up the WebSocket connection, this response must be returned"]
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let (wsmon, route, canary) = match self.ctx {
            Some(ctx) => (ctx.wsmon, ctx.route, ctx.canary),
            None => {
                let wsmon = detached().clone();
                let route = wsmon.inner.metrics.route(crate::catalog::UNMATCHED_ROUTE);
                (wsmon, route, false)
            }
        };
        // The 101 (or 200) is already counted as accepted; if the client is gone before the
        // upgrade completes, that connection must still end in exactly one counted close.
        let on_failed = RecordFailedUpgrade {
            route: route.clone(),
            canary,
            user: self.on_failed,
        };
        self.inner
            .on_failed_upgrade(on_failed)
            .on_upgrade(move |socket| {
                callback(Instrumented::new(
                    socket,
                    route,
                    &wsmon.inner.connection,
                    canary,
                ))
            })
    }
}

/// Records a failed upgrade as a connection that ended without a close frame, then runs the
/// application's own callback.
struct RecordFailedUpgrade<F> {
    route: Arc<crate::metrics::RouteMetrics>,
    canary: bool,
    user: Option<F>,
}

impl<F: OnFailedUpgrade> OnFailedUpgrade for RecordFailedUpgrade<F> {
    fn call(self, error: axum::Error) {
        self.route.record_failed_upgrade(self.canary);
        if let Some(user) = self.user {
            user.call(error);
        }
    }
}
