//! Prometheus text exposition and a ready `/metrics` handler.

use prometheus::{Encoder, Registry, TextEncoder};

/// Renders every family in `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(16 * 1024);
    if let Err(err) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %err, "rendering metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `GET` route serving `registry`: `router.route("/metrics", metrics_route(registry))`.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub fn metrics_route<S>(registry: Registry) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(move || {
        let registry = registry.clone();
        async move {
            (
                [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                render(&registry),
            )
        }
    })
}

#[cfg(feature = "axum")]
impl crate::WsMon {
    /// A `GET` route serving this middleware's registry.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn metrics_route<S>(&self) -> axum::routing::MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        metrics_route(self.registry().clone())
    }
}
