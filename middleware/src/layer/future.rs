//! [`ResponseFuture`]: named, not boxed, so a request through the layer allocates nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use pin_project_lite::pin_project;

use super::{Attempt, RejectedAtWebSocketRoute};
use crate::catalog::UNMATCHED_ROUTE;
use crate::metrics::RouteMetrics;
use crate::WsMon;

pin_project! {
    /// The response future of [`super::WsMonService`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        /// Refused by the layer itself (origin, limit, shutdown); already counted.
        Refused { status: StatusCode },
        /// Not an upgrade attempt. The handle is only read if a wsmon extractor rejected it.
        Plain { #[pin] inner: F, wsmon: WsMon },
        /// An upgrade attempt: its response status is counted.
        Attempt {
            #[pin]
            inner: F,
            route: Arc<RouteMetrics>,
            attempt: Attempt,
            started: Instant,
            canary: bool,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn plain(inner: F, wsmon: WsMon) -> Self {
        Self {
            kind: Kind::Plain { inner, wsmon },
        }
    }

    pub(super) fn refused(status: StatusCode) -> Self {
        Self {
            kind: Kind::Refused { status },
        }
    }

    pub(super) fn attempt(
        inner: F,
        route: Arc<RouteMetrics>,
        attempt: Attempt,
        started: Instant,
        canary: bool,
    ) -> Self {
        Self {
            kind: Kind::Attempt {
                inner,
                route,
                attempt,
                started,
                canary,
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Refused { .. } => "refused",
            Kind::Plain { .. } => "plain",
            Kind::Attempt { .. } => "upgrade attempt",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { status } => Poll::Ready(Ok(status.into_response())),
            KindProj::Plain { inner, wsmon } => {
                let mut response = ready!(inner.poll(cx))?.into_response();
                if let Some(marker) = response
                    .extensions_mut()
                    .remove::<RejectedAtWebSocketRoute>()
                {
                    let route = marker
                        .route
                        .as_ref()
                        .map_or(UNMATCHED_ROUTE, |p| p.as_str());
                    wsmon.inner.metrics.route(route).record_upgrade(
                        response.status(),
                        false,
                        std::time::Duration::ZERO,
                        wsmon.inner.canary.matches(&marker.headers),
                    );
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Attempt {
                inner,
                route,
                attempt,
                started,
                canary,
            } => {
                let mut response = ready!(inner.poll(cx))?.into_response();
                // An attempt is counted here; the extractor's marker is for plain requests.
                response
                    .extensions_mut()
                    .remove::<RejectedAtWebSocketRoute>();
                let accepted = response.status() == attempt.accepted();
                route.record_upgrade(response.status(), accepted, started.elapsed(), *canary);
                Poll::Ready(Ok(response))
            }
        }
    }
}
