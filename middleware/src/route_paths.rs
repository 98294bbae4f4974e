//! The declared route templates as a path matcher, for upgrade attempts whose route axum has
//! not matched yet: the layer wrapped around the whole router runs before routing, where no
//! `MatchedPath` exists. Consulted for attempts only, never for plain requests.

use std::sync::Arc;

use crate::metrics::RouteMetrics;

/// The declared templates (`/ws`, `/rooms/{id}`), matched with axum's own matcher, so a path
/// matches a template here exactly when axum's router would route it there.
pub(crate) struct RoutePaths(matchit::Router<Arc<RouteMetrics>>);

impl RoutePaths {
    /// The matcher of `routes`; the error names the template that conflicts with another.
    pub(crate) fn new<'a>(
        routes: impl IntoIterator<Item = &'a Arc<RouteMetrics>>,
    ) -> Result<Self, crate::Error> {
        let mut router = matchit::Router::new();
        for route in routes {
            router
                .insert(route.name(), Arc::clone(route))
                .map_err(|e| crate::Error::Route {
                    template: route.name().to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self(router))
    }

    /// The declared route whose template matches `path`.
    pub(crate) fn at(&self, path: &str) -> Option<&Arc<RouteMetrics>> {
        self.0.at(path).ok().map(|m| m.value)
    }
}
