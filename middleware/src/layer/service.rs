//! [`WsMonService`]: the per-request decision between an upgrade attempt and a plain request.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::Request;
use tower_service::Service;

use super::future::ResponseFuture;
use super::{upgrade_attempt, HandshakeContext};
use crate::catalog::UNMATCHED_ROUTE;
use crate::metrics::RouteMetrics;
use crate::WsMon;

/// The service produced by [`super::WsMonLayer`]; cheap to clone when `S` is.
#[derive(Clone)]
pub struct WsMonService<S> {
    inner: S,
    wsmon: WsMon,
}

impl<S> WsMonService<S> {
    pub(super) fn new(inner: S, wsmon: WsMon) -> Self {
        Self { inner, wsmon }
    }
}

impl<S: fmt::Debug> fmt::Debug for WsMonService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsMonService")
            .field("inner", &self.inner)
            .field("wsmon", &self.wsmon)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for WsMonService<S>
where
    S: Service<Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(attempt) = upgrade_attempt(&req) else {
            // The common case on a mixed service: nothing allocated, no lock, no clock.
            return ResponseFuture::plain(self.inner.call(req), self.wsmon.clone());
        };
        let started = Instant::now();
        let route = route_of(&self.wsmon, &req);
        let canary = self.wsmon.inner.canary.matches(req.headers());
        if let Some(status) = self.wsmon.precheck(req.headers()) {
            route.record_upgrade(status, false, started.elapsed(), canary);
            return ResponseFuture::refused(status);
        }
        req.extensions_mut().insert(HandshakeContext {
            wsmon: self.wsmon.clone(),
            route: route.clone(),
            canary,
        });
        ResponseFuture::attempt(self.inner.call(req), route, attempt, started, canary)
    }
}

/// The attempt's route: axum's matched template when the layer runs after routing
/// (`Router::layer`), else the declared template matching the path (the layer around the
/// whole router), else `unmatched`.
fn route_of<B>(wsmon: &WsMon, req: &Request<B>) -> Arc<RouteMetrics> {
    let inner = &wsmon.inner;
    if let Some(matched) = req.extensions().get::<MatchedPath>() {
        return inner.metrics.route(matched.as_str());
    }
    match inner.paths.at(req.uri().path()) {
        Some(route) => Arc::clone(route),
        None => inner.metrics.route(UNMATCHED_ROUTE),
    }
}
