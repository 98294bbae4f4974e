//! [`WsMon`]: the handle an application builds once and shares with its router.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, StatusCode};

use prometheus::Registry;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use crate::canary::CanaryRecognition;
use crate::close_code::CloseCodeClassifier;
use crate::heartbeat::Heartbeat;
use crate::metrics::{Metrics, RouteMetrics};
use crate::sequencer::StampExtractor;
use crate::socket::Instrumented;
use crate::Error;

/// The middleware: metrics, configuration and the shutdown signal, cheap to clone (one
/// `Arc`).
///
/// ```
/// # fn main() -> Result<(), wsmon::Error> {
/// let registry = prometheus::Registry::new();
/// let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry)?;
/// assert!(wsmon.route("/ws").is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WsMon {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for WsMon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("WsMon")
            .field("routes", &inner.declared)
            .field("allowed_origins", &inner.allowed_origins)
            .field("max_message_bytes", &inner.max_message_bytes)
            .field("max_connections", &inner.max_connections)
            .field("heartbeat", &inner.connection.heartbeat)
            .field("canary_recognition", &inner.canary)
            .field(
                "stamp_extractor",
                &inner.connection.stamp_extractor.is_some(),
            )
            .field("active_connections", &self.active_connections())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) metrics: Metrics,
    /// The routes declared with [`WsMonBuilder::route`], the only ones [`WsMon::route`]
    /// hands out.
    declared: Vec<RouteHandle>,
    /// The declared templates as a matcher, for attempts before axum's routing.
    #[cfg(feature = "axum")]
    pub(crate) paths: crate::route_paths::RoutePaths,
    pub(crate) registry: Registry,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_message_bytes: Option<usize>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) canary: CanaryRecognition,
    pub(crate) connection: ConnectionConfig,
}

/// What every instrumented connection of a [`WsMon`] shares.
#[derive(Clone)]
pub(crate) struct ConnectionConfig {
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) stamp_extractor: Option<StampExtractor>,
    /// Set once by [`WsMon::shutdown`]; every connection reads it without a lock.
    pub(crate) shutting_down: Arc<AtomicBool>,
}

/// Builds a [`WsMon`]. Every option has a default that works untouched.
#[derive(Clone, Default)]
pub struct WsMonBuilder {
    routes: Vec<String>,
    allowed_origins: Option<Vec<String>>,
    max_message_bytes: Option<usize>,
    max_connections: Option<usize>,
    heartbeat: Option<Heartbeat>,
    stamp_extractor: Option<StampExtractor>,
    close_code_allowlist: Vec<u16>,
    canary: CanaryRecognition,
}

impl fmt::Debug for WsMonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsMonBuilder")
            .field("routes", &self.routes)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_connections", &self.max_connections)
            .field("heartbeat", &self.heartbeat)
            .field("stamp_extractor", &self.stamp_extractor.is_some())
            .field("close_code_allowlist", &self.close_code_allowlist)
            .field("canary_recognition", &self.canary)
            .finish()
    }
}

impl WsMonBuilder {
    /// Declares a WebSocket route template (repeatable) so its series exist at zero before
    /// its first connection, and so [`WsMon::route`] hands out its handle. Default: none.
    pub fn route(mut self, template: impl Into<String>) -> Self {
        self.routes.push(template.into());
        self
    }

    /// Allows upgrades only from this `Origin` (repeatable). Others get 403. Without any,
    /// every origin is allowed (the default).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins
            .get_or_insert_with(Vec::new)
            .push(origin.into());
        self
    }

    /// Closes connections that send a message larger than this with 1009. Default: axum's
    /// or tungstenite's own limit (64 MiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// Rejects upgrades with 503 while this many connections are live. Default: no limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Sends server pings and closes peers that miss pongs. Default: no heartbeat.
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Reads sequence and publish time from outgoing payloads (see [`crate::sequencer`]).
    /// Default: none, so nothing is parsed.
    pub fn stamp_extractor(mut self, extractor: StampExtractor) -> Self {
        self.stamp_extractor = Some(extractor);
        self
    }

    /// Application close codes (3000–4999) to keep as their own `close_code` label value
    /// instead of `3xxx`/`4xxx`. Default: none.
    pub fn close_code_allowlist(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.close_code_allowlist.extend(codes);
        self
    }

    /// How canary upgrades are told from users', for the `websocket_server_canary_*`
    /// families. Default: a `User-Agent` starting with `wsmon-probe/`, which wsmon-probe
    /// sends (see [`CanaryRecognition`]).
    pub fn canary_recognition(mut self, recognition: CanaryRecognition) -> Self {
        self.canary = recognition;
        self
    }

    /// Registers the metrics in `registry` and returns the middleware.
    pub fn build(self, registry: &Registry) -> Result<WsMon, Error> {
        let classifier = CloseCodeClassifier::with_allowlist(self.close_code_allowlist);
        let metrics = Metrics::register(registry, classifier).map_err(Error::Register)?;
        let mut declared: Vec<RouteHandle> = Vec::new();
        for route in &self.routes {
            if !declared.iter().any(|r| r.name() == route) {
                declared.push(RouteHandle {
                    metrics: metrics.route(route),
                });
            }
        }
        #[cfg(feature = "axum")]
        let paths = crate::route_paths::RoutePaths::new(declared.iter().map(|r| &r.metrics))?;
        Ok(WsMon {
            inner: Arc::new(Inner {
                metrics,
                declared,
                #[cfg(feature = "axum")]
                paths,
                registry: registry.clone(),
                allowed_origins: self.allowed_origins,
                max_message_bytes: self.max_message_bytes,
                max_connections: self.max_connections,
                canary: self.canary,
                connection: ConnectionConfig {
                    heartbeat: self.heartbeat,
                    stamp_extractor: self.stamp_extractor,
                    shutting_down: Arc::new(AtomicBool::new(false)),
                },
            }),
        })
    }
}

/// A declared route's handle, for reporting its head sequence; cheap to clone.
#[derive(Clone)]
pub struct RouteHandle {
    pub(crate) metrics: Arc<RouteMetrics>,
}

impl fmt::Debug for RouteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteHandle")
            .field("name", &self.name())
            .field("head", &self.metrics.head())
            .finish()
    }
}

impl RouteHandle {
    /// Reports the newest sequence published on this route.
    pub fn set_head(&self, seq: u64) {
        self.metrics.set_head(seq);
    }

    /// The route template this handle records under.
    pub fn name(&self) -> &str {
        self.metrics.name()
    }
}

impl WsMon {
    /// A builder with every option at its default.
    pub fn builder() -> WsMonBuilder {
        WsMonBuilder::default()
    }

    /// The registry the metrics are registered in.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The handle of a route declared with [`WsMonBuilder::route`]; `None` for any other
    /// string, so a lookup never creates a series (a raw path cannot grow cardinality).
    pub fn route(&self, template: &str) -> Option<RouteHandle> {
        self.inner
            .declared
            .iter()
            .find(|r| r.name() == template)
            .cloned()
    }

    /// Instruments a socket that was not upgraded through the axum extractor, such as a
    /// tokio-tungstenite `WebSocketStream`, recording it under `route`.
    ///
    /// `route` becomes a label value: pass a template from your code (`"/ws"`), never a raw
    /// request path.
    pub fn instrument<S>(&self, route: &str, socket: S) -> Instrumented<S> {
        self.instrument_as(route, socket, false)
    }

    /// [`WsMon::instrument`], counting the connection in the canary view too if `canary`.
    pub(crate) fn instrument_as<S>(&self, route: &str, socket: S, canary: bool) -> Instrumented<S> {
        Instrumented::new(
            socket,
            self.inner.metrics.route(route),
            &self.inner.connection,
            canary,
        )
    }

    /// Whether an upgrade request with these headers is a canary's, by the builder's
    /// [`WsMonBuilder::canary_recognition`].
    pub fn is_canary(&self, headers: &HeaderMap) -> bool {
        self.inner.canary.matches(headers)
    }

    /// Live instrumented connections across all routes.
    pub fn active_connections(&self) -> usize {
        self.inner.metrics.active_connections()
    }

    /// Starts a graceful shutdown: every connection is sent a close with 1001 (Going Away)
    /// the next time it is polled, and new upgrades are refused with 503.
    pub fn shutdown(&self) {
        self.inner.connection.shutting_down.store(true, SeqCst);
        self.inner.metrics.wake_all_connections();
    }

    /// True once [`WsMon::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.connection.shutting_down.load(SeqCst)
    }

    /// Calls [`WsMon::shutdown`] and waits until no connection is live or `timeout` passes.
    /// Returns the number of connections still live.
    pub async fn shutdown_and_wait(&self, timeout: Duration) -> usize {
        self.shutdown();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = self.active_connections();
            if live == 0 || tokio::time::Instant::now() >= deadline {
                return live;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        crate::export::prometheus::render(&self.inner.registry)
    }
}

impl WsMon {
    /// Why an upgrade attempt is refused before it reaches the handler, if it is: a foreign
    /// `Origin` (403), a shutdown or the connection limit (503).
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
