//! The tower layer: handshake metrics, origin and overload checks, and the context that the
//! [`crate::WebSocketUpgrade`] extractor picks up.
//!
//! Add it with `Router::layer`, which wraps each route (and the fallback) after routing, so
//! axum's `MatchedPath` is known here and an unrouted request counts as `unmatched`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::catalog::UNMATCHED_ROUTE;
use crate::WsMon;

/// The layer returned by [`WsMon::layer`].
#[derive(Clone)]
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

impl<S> Layer<S> for WsMonLayer {
    type Service = WsMonService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WsMonService {
            inner,
            wsmon: self.wsmon.clone(),
        }
    }
}

/// The service produced by [`WsMonLayer`].
#[derive(Clone)]
pub struct WsMonService<S> {
    inner: S,
    wsmon: WsMon,
}

/// Per-request context handed from the layer to the extractor.
pub(crate) struct HandshakeContext {
    pub(crate) wsmon: WsMon,
    pub(crate) route: Arc<str>,
    /// Set by the extractor: this request reached a WebSocket handler, upgrade or not.
    pub(crate) reached_handler: AtomicBool,
}

pub(crate) fn is_upgrade_request(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

impl WsMon {
    /// Why the layer refuses this upgrade before it reaches the handler, if it does.
    pub(crate) fn precheck(&self, headers: &HeaderMap) -> Option<StatusCode> {
        let inner = &self.inner;
        if let (Some(allowed), Some(origin)) = (&inner.allowed_origins, headers.get(header::ORIGIN))
        {
            if !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()) {
                return Some(StatusCode::FORBIDDEN);
            }
        }
        if self.is_shutting_down() {
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
        if let Some(max) = inner.max_connections {
            if self.active_connections() >= max {
                return Some(StatusCode::SERVICE_UNAVAILABLE);
            }
        }
        None
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for WsMonService<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let upgrade = is_upgrade_request(req.method(), req.headers());
        let route: Arc<str> = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(Arc::from(UNMATCHED_ROUTE), |p| Arc::from(p.as_str()));
        let wsmon = self.wsmon.clone();

        if upgrade {
            if let Some(status) = wsmon.precheck(req.headers()) {
                wsmon
                    .inner
                    .metrics
                    .route(&route)
                    .record_upgrade(status, started.elapsed());
                return Box::pin(async move { Ok(status.into_response()) });
            }
        }

        let ctx = Arc::new(HandshakeContext {
            wsmon,
            route,
            reached_handler: AtomicBool::new(false),
        });
        req.extensions_mut().insert(ctx.clone());
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?.into_response();
            if upgrade || ctx.reached_handler.load(Relaxed) {
                ctx.wsmon
                    .inner
                    .metrics
                    .route(&ctx.route)
                    .record_upgrade(response.status(), started.elapsed());
            }
            Ok(response)
        })
    }
}
