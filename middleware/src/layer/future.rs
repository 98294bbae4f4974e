//! [`ResponseFuture`]: named, not boxed, so a plain request through the layer allocates nothing.

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
        // The inner future is a field of its own, not inside an enum variant, so that the
        // inner service's call writes it in place: a variant cost a plain request two
        // memcpys of the whole future (BENCHMARKS.md, 1d). `None` once refused.
        #[pin]
        inner: Option<F>,
        state: State,
    }
}

enum State {
    /// Refused by the layer itself (origin, limit, shutdown); already counted.
    Refused(StatusCode),
    /// Not an upgrade attempt. The handle is only read if a wsmon extractor rejected it.
    Plain(WsMon),
    /// An upgrade attempt: its response status is counted. Boxed, as attempts are rare, so
    /// the plain path moves no bigger a future.
    Attempt(Box<AttemptState>),
}

struct AttemptState {
    route: Arc<RouteMetrics>,
    attempt: Attempt,
    started: Instant,
    canary: bool,
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn plain(inner: F, wsmon: WsMon) -> Self {
        Self {
            inner: Some(inner),
            state: State::Plain(wsmon),
        }
    }

    pub(super) fn refused(status: StatusCode) -> Self {
        Self {
            inner: None,
            state: State::Refused(status),
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
            inner: Some(inner),
            state: State::Attempt(Box::new(AttemptState {
                route,
                attempt,
                started,
                canary,
            })),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.state {
            State::Refused(_) => "refused",
            State::Plain(_) => "plain",
            State::Attempt(_) => "upgrade attempt",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let State::Refused(status) = this.state else {
                unreachable!("only a refused request has no inner future");
            };
            return Poll::Ready(Ok(status.into_response()));
        };
        match this.state {
            State::Plain(wsmon) => {
                // Inspected where it lies and returned as is: no move of the response.
                let mut poll = inner.poll(cx);
                if let Poll::Ready(Ok(response)) = &mut poll {
                    if response
                        .extensions()
                        .get::<RejectedAtWebSocketRoute>()
                        .is_some()
                    {
                        count_rejection(wsmon, response);
                    }
                }
                poll
            }
            State::Attempt(state) => {
                let mut response = ready!(inner.poll(cx))?;
                // An attempt is counted here; the extractor's marker is for plain requests.
                response
                    .extensions_mut()
                    .remove::<RejectedAtWebSocketRoute>();
                let accepted = response.status() == state.attempt.accepted();
                state.route.record_upgrade(
                    response.status(),
                    accepted,
                    state.started.elapsed(),
                    state.canary,
                );
                Poll::Ready(Ok(response))
            }
            State::Refused(status) => Poll::Ready(Ok(status.into_response())),
        }
    }
}

/// A plain request refused by a wsmon extractor (a `GET /ws` without `Upgrade`): counted as a
/// rejected upgrade on its route. Out of line, so the plain path stays small.
#[cold]
#[inline(never)]
fn count_rejection(wsmon: &WsMon, response: &mut Response) {
    let Some(marker) = response
        .extensions_mut()
        .remove::<RejectedAtWebSocketRoute>()
    else {
        return;
    };
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
