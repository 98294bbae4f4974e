//! The instrumented example feed: a broadcast server used as the demo target and by tests.
//!
//! - `GET /ws`: sends `{"type":"snapshot","seq":HEAD}` on connect, then every broadcast;
//!   answers `{"op":"head"}` with `{"type":"head","seq":HEAD}`.
//! - `POST /publish`: broadcasts a JSON object with `seq` and `ts` added; answers `{"seq":N}`.
//! - `GET /metrics`: Prometheus text.
//!
//! A ticker broadcasts `{"type":"tick","seq":N,"ts":UNIX_MS}` at the configured rate.

mod hub;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;

use crate::{Heartbeat, QueueConfig, WsMon};

pub use hub::Hub;

/// The route template of the feed's WebSocket endpoint.
pub const WS_ROUTE: &str = "/ws";

/// Feed settings; the defaults match `cargo run -p wsmon --example feed`.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Ticks per second; 0 disables the ticker.
    pub rate: f64,
    /// Allowed `Origin`s; empty allows every origin.
    pub allowed_origins: Vec<String>,
    pub max_message_bytes: Option<usize>,
    /// Held back before the snapshot, to inject a known first-payload latency.
    pub first_payload_delay: Duration,
    pub queue: QueueConfig,
    pub heartbeat: Option<Heartbeat>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            rate: 10.0,
            allowed_origins: Vec::new(),
            max_message_bytes: Some(1 << 20),
            first_payload_delay: Duration::ZERO,
            queue: QueueConfig::default(),
            heartbeat: Some(Heartbeat::every(Duration::from_secs(15))),
        }
    }
}

/// A running feed's shared state.
pub struct Feed {
    pub(crate) wsmon: WsMon,
    pub(crate) hub: Hub,
    pub(crate) config: FeedConfig,
}

impl Feed {
    /// Builds the feed, registering its metrics in `registry`.
    pub fn new(config: FeedConfig, registry: &Registry) -> Result<Arc<Self>, crate::Error> {
        let mut builder = WsMon::builder().route(WS_ROUTE);
        for origin in &config.allowed_origins {
            builder = builder.allow_origin(origin.clone());
        }
        if let Some(max) = config.max_message_bytes {
            builder = builder.max_message_bytes(max);
        }
        if let Some(hb) = config.heartbeat {
            builder = builder.heartbeat(hb);
        }
        let wsmon = builder.build(registry)?;
        let hub = Hub::new(wsmon.route(WS_ROUTE));
        Ok(Arc::new(Self { wsmon, hub, config }))
    }

    pub fn wsmon(&self) -> &WsMon {
        &self.wsmon
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The axum router: `/ws`, `/publish`, `/metrics`, with the wsmon layer.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then closes every socket with 1001.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ticker = tokio::spawn(self.clone().run_ticker());
        let app = self.router();
        let wsmon = self.wsmon.clone();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let left = wsmon.shutdown_and_wait(Duration::from_secs(5)).await;
                tracing::info!(still_open = left, "feed: WebSocket connections closed");
            })
            .await;
        ticker.abort();
        result
    }

    /// Broadcasts a tick at the configured rate.
    pub async fn run_ticker(self: Arc<Self>) {
        if self.config.rate <= 0.0 {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / self.config.rate));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.hub.publish_tick();
        }
    }
}

/// Binds `addr` and serves a feed with `config` until `shutdown`; returns the bound address
/// and the server task.
pub async fn spawn(
    addr: SocketAddr,
    config: FeedConfig,
    registry: &Registry,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    Arc<Feed>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let feed = Feed::new(config, registry).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(feed.clone().serve(listener, shutdown));
    Ok((local, feed, task))
}
