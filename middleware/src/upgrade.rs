//! The drop-in replacement for axum's `WebSocketUpgrade` extractor.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Once, OnceLock};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{self, DefaultOnFailedUpgrade, OnFailedUpgrade};
use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;
use http::HeaderValue;

use crate::layer::HandshakeContext;
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
    ctx: Option<Arc<HandshakeContext>>,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = parts.extensions.get::<Arc<HandshakeContext>>().cloned();
        match &ctx {
            Some(ctx) => ctx.reached_handler.store(true, Relaxed),
            None => {
                static WARN: Once = Once::new();
                WARN.call_once(|| {
                    tracing::warn!(
                        "wsmon::WebSocketUpgrade used without the wsmon layer; \
                         add `.layer(wsmon.layer())` to the router to record metrics"
                    )
                });
            }
        }
        let mut inner = ws::WebSocketUpgrade::from_request_parts(parts, state).await?;
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

    /// See axum's `WebSocketUpgrade::protocols`.
    pub fn protocols<I>(self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<std::borrow::Cow<'static, str>>,
    {
        self.map(|u| u.protocols(protocols))
    }

    pub fn max_message_size(self, max: usize) -> Self {
        self.map(|u| u.max_message_size(max))
    }

    pub fn max_frame_size(self, max: usize) -> Self {
        self.map(|u| u.max_frame_size(max))
    }

    pub fn read_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.read_buffer_size(size))
    }

    pub fn write_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.write_buffer_size(size))
    }

    pub fn max_write_buffer_size(self, max: usize) -> Self {
        self.map(|u| u.max_write_buffer_size(max))
    }

    pub fn accept_unmasked_frames(self, accept: bool) -> Self {
        self.map(|u| u.accept_unmasked_frames(accept))
    }

    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.inner.requested_protocols()
    }

    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.inner.selected_protocol()
    }

    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.inner.set_selected_protocol(protocol)
    }

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
        let (wsmon, route) = match &self.ctx {
            Some(ctx) => (ctx.wsmon.clone(), ctx.route.clone()),
            None => (
                detached().clone(),
                Arc::from(crate::catalog::UNMATCHED_ROUTE),
            ),
        };
        // The 101 is already counted as accepted; if the client is gone before the upgrade
        // completes, that connection must still end in exactly one counted close.
        let on_failed = RecordFailedUpgrade {
            route: wsmon.inner.metrics.route(&route),
            user: self.on_failed,
        };
        self.inner
            .on_failed_upgrade(on_failed)
            .on_upgrade(move |socket| callback(wsmon.instrument(&route, socket)))
    }
}

/// Records a failed upgrade as a connection that ended without a close frame, then runs the
/// application's own callback.
struct RecordFailedUpgrade<F> {
    route: Arc<crate::metrics::RouteMetrics>,
    user: Option<F>,
}

impl<F: OnFailedUpgrade> OnFailedUpgrade for RecordFailedUpgrade<F> {
    fn call(self, error: axum::Error) {
        self.route.record_failed_upgrade();
        if let Some(user) = self.user {
            user.call(error);
        }
    }
}
