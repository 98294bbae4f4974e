//! The instrumented example feed: a broadcast server used as the demo target and by tests.
//!
//! - `GET /ws`: sends `{"type":"snapshot","seq":HEAD}` on connect, then every broadcast;
//!   answers `{"op":"head"}` with `{"type":"head","seq":HEAD}`.
//! - `GET /ws?from=N`: resumes after sequence `N`: every message with `seq > N` in order,
//!   then live, and no snapshot; a resume point older than the retained history is answered
//!   with `{"type":"resume_miss","from":N,"oldest":M}` first (see [`resume`]).
//! - `POST /publish`: broadcasts a JSON object with `seq` and `ts` added; answers `{"seq":N}`.
//! - `GET /metrics`: Prometheus text.
//!
//! A ticker broadcasts `{"type":"tick","seq":N,"ts":UNIX_MS}` at the configured rate.
//!
//! With [`FeedConfig::redis`] set, several instances share one durable stream through a Redis
//! Stream (see [`redis`] for the behaviour when Redis goes away); without it the
//! feed keeps the last [`FeedConfig::history`] messages in memory for resumes. Each connection must send
//! its request headers within [`FeedConfig::header_read_timeout`] (see `server.rs`: a
//! slowloris client is cut off).
//!
//! [`Feed::faults`] makes the running feed misbehave on purpose (stalls, gaps, duplicates,
//! drops, evictions, oversized messages, a broken publish path): see [`faults`],
//! and [`admin`] for the same controls over loopback HTTP.

#![warn(missing_docs, missing_debug_implementations)]

pub mod admin;
pub mod faults;
mod history;
mod hub;
pub mod redis;
pub mod resume;
mod routes;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus::Registry;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use self::faults::{FaultState, Faults};
use self::redis::{PublishError, RedisBus};

use wsmon::{Heartbeat, QueueConfig, WsMon};

pub use hub::Hub;

/// The route template of the feed's WebSocket endpoint.
pub const WS_ROUTE: &str = "/ws";

/// Feed settings; the defaults match `cargo run -p wsmon-feed`.
#[derive(Clone)]
pub struct FeedConfig {
    /// Ticks per second; 0 disables the ticker.
    pub rate: f64,
    /// Allowed `Origin`s; empty allows every origin.
    pub allowed_origins: Vec<String>,
    /// Larger client messages are closed with 1009.
    pub max_message_bytes: Option<usize>,
    /// Held back before the snapshot, to inject a known first-payload latency.
    pub first_payload_delay: Duration,
    /// Each connection's outbound queue.
    pub queue: QueueConfig,
    /// Server pings; `None` turns them off.
    pub heartbeat: Option<Heartbeat>,
    /// A connection that has not sent complete request headers this long after connecting
    /// (or after its previous request) is closed.
    pub header_read_timeout: Duration,
    /// `redis://host:port/db`: share the broadcast stream with every feed on this Redis.
    /// Each instance with a non-zero `rate` ticks into the shared stream.
    pub redis: Option<String>,
    /// Messages kept in memory for `GET /ws?from=N` (with Redis too: a resume within them
    /// needs no Redis round trip). 0 keeps none.
    pub history: usize,
    /// About how many messages the Redis Stream retains (`XADD MAXLEN ~`).
    pub stream_retention: usize,
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
            header_read_timeout: Duration::from_secs(10),
            redis: None,
            history: 10_000,
            stream_retention: 100_000,
        }
    }
}

/// By hand, so the Redis URL's credentials never reach a log.
impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("rate", &self.rate)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("first_payload_delay", &self.first_payload_delay)
            .field("queue", &self.queue)
            .field("heartbeat", &self.heartbeat)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("redis", &self.redis.as_deref().map(redis::redact))
            .field("history", &self.history)
            .field("stream_retention", &self.stream_retention)
            .finish()
    }
}

/// A running feed's shared state.
#[derive(Debug)]
pub struct Feed {
    pub(crate) wsmon: WsMon,
    pub(crate) hub: Hub,
    pub(crate) config: FeedConfig,
    bus: Option<Arc<RedisBus>>,
    pub(crate) faults: FaultState,
}

/// Why a feed could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] wsmon::Error),
    /// `--redis` is not a Redis URL.
    #[error("invalid redis URL {url:?} (expected redis://host:port/db): {source}")]
    RedisUrl {
        /// The URL, credentials redacted.
        url: String,
        /// The Redis client's reason.
        #[source]
        source: ::redis::RedisError,
    },
}

impl Feed {
    /// Builds the feed, registering its metrics in `registry`.
    pub fn new(config: FeedConfig, registry: &Registry) -> Result<Arc<Self>, FeedError> {
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
        let hub = Hub::new(
            wsmon.route(WS_ROUTE).expect("declared above"),
            config.history,
            config.redis.is_none(),
        );
        let bus = match &config.redis {
            Some(url) => Some(Arc::new(
                RedisBus::new(url, config.stream_retention).map_err(|source| {
                    FeedError::RedisUrl {
                        url: redis::redact(url),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        Ok(Arc::new(Self {
            wsmon,
            hub,
            config,
            bus,
            faults: FaultState::default(),
        }))
    }

    /// The feed's middleware handle.
    pub fn wsmon(&self) -> &WsMon {
        &self.wsmon
    }

    /// The broadcast hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The fault controls: off until switched on (see [`faults`]).
    pub fn faults(self: &Arc<Self>) -> Faults {
        Faults::new(self.clone())
    }

    pub(crate) fn bus(&self) -> Option<&RedisBus> {
        self.bus.as_deref()
    }

    /// The axum router: `/ws`, `/publish`, `/metrics`, with the wsmon layer.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }

    /// Publishes a tick: locally, or through Redis when configured. Returns its sequence.
    pub async fn publish_tick(&self) -> Result<u64, PublishError> {
        match &self.bus {
            None => Ok(self.hub.publish_tick()),
            Some(bus) => {
                let env = redis::envelope(hub::unix_ms(SystemTime::now()), None);
                bus.publish(&env, self.hub.head()).await
            }
        }
    }

    /// Publishes `object` with `seq` and `ts` added: locally, or through Redis when
    /// configured. Returns its sequence.
    /// While [`Faults::blackhole_publishes`] is on, nothing is published and the head is
    /// returned.
    pub async fn publish_object(&self, object: Map<String, Value>) -> Result<u64, PublishError> {
        if self.faults.publishes_blackholed() {
            return Ok(self.hub.head());
        }
        match &self.bus {
            None => Ok(self.hub.publish_object(object)),
            Some(bus) => {
                let env = redis::envelope(hub::unix_ms(SystemTime::now()), Some(object));
                bus.publish(&env, self.hub.head()).await
            }
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then closes every socket with 1001.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ticker = tokio::spawn(self.clone().run_ticker());
        let subscriber = self.bus.clone().map(|bus| {
            tracing::info!(redis = %bus.shown_url(), "feed: sharing the stream through redis");
            tokio::spawn(redis::run_reader(self.clone(), bus))
        });
        let result = server::serve(
            listener,
            self.router(),
            self.wsmon.clone(),
            self.config.header_read_timeout,
            shutdown,
        )
        .await;
        ticker.abort();
        if let Some(subscriber) = subscriber {
            subscriber.abort();
        }
        result
    }

    /// Broadcasts a tick at the configured rate. Through Redis, a tick that cannot be
    /// published is skipped (the failure is logged by the bus when it starts and ends).
    pub async fn run_ticker(self: Arc<Self>) {
        if self.config.rate <= 0.0 {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / self.config.rate));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let _ = self.publish_tick().await;
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
