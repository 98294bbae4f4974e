//! The instrumented example broadcast feed.
//!
//! ```text
//! cargo run --release -p wsmon-feed -- --listen 127.0.0.1:8080 --rate 10
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use wsmon::{Heartbeat, OverflowPolicy, QueueConfig};
use wsmon_feed::{self as feed, FeedConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Instrumented WebSocket broadcast feed (the wsmon demo target)",
    after_help = "Examples:\n  wsmon-feed --listen 127.0.0.1:8080 --rate 10\n  \
                  wsmon-feed --allow-origin https://app.example.com --max-message-bytes 65536\n  \
                  wsmon-feed --listen 127.0.0.1:8081 --redis redis://127.0.0.1:6379 --rate 0\n\n\
                  Endpoints: GET /ws (WebSocket; ?from=N resumes after N), POST /publish (JSON object), GET /metrics"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Ticks broadcast per second (0 disables the ticker).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Allowed Origin header value (repeatable); without it every origin is allowed.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// Largest message accepted from a client; larger ones are closed with 1009.
    #[arg(long, default_value_t = 1 << 20)]
    max_message_bytes: usize,
    /// Delay before the snapshot, in milliseconds (injects a known first-payload latency).
    #[arg(long, default_value_t = 0)]
    first_payload_delay_ms: u64,
    /// Outbound queue capacity per connection, in messages; 0 means unbounded (no overflow
    /// policy ever applies: the "before" of the backpressure benchmark, not for production).
    #[arg(long, default_value_t = 1024)]
    queue_capacity: usize,
    /// What to do when a connection's outbound queue is full.
    #[arg(long, value_enum, default_value_t = Overflow::Disconnect)]
    overflow: Overflow,
    /// Server ping interval in seconds (0 disables heartbeats).
    #[arg(long, default_value_t = 15)]
    heartbeat_secs: u64,
    /// Seconds a connection may take to send its request headers (slowloris protection).
    #[arg(long, default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// Share one broadcast stream with every feed on this Redis (redis://host:port/db);
    /// the sequence comes from Redis. Ticks and publishes pause while Redis is down.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Messages kept in memory for resumes (`GET /ws?from=N`); 0 keeps none.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// About how many messages the Redis Stream retains (XADD MAXLEN ~), with --redis.
    #[arg(long, default_value_t = 100_000)]
    stream_retention: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Overflow {
    DropOldest,
    DropNewest,
    Disconnect,
}

/// `capacity` messages per connection, or unbounded for 0. Unbounded keeps the default
/// high-water mark, so slow consumers are still flagged while their queues grow.
fn queue_config(capacity: usize, policy: OverflowPolicy) -> QueueConfig {
    if capacity == 0 {
        // Fields, not `capacity()`: that would move the marks to 3/4 of usize::MAX (and its
        // `* 3` overflows).
        let mut q = QueueConfig::default().policy(policy);
        q.capacity_messages = usize::MAX;
        q.capacity_bytes = usize::MAX;
        return q;
    }
    QueueConfig::default().capacity(capacity).policy(policy)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let policy = match args.overflow {
        Overflow::DropOldest => OverflowPolicy::DropOldest,
        Overflow::DropNewest => OverflowPolicy::DropNewest,
        Overflow::Disconnect => OverflowPolicy::Disconnect,
    };
    let config = FeedConfig {
        rate: args.rate,
        allowed_origins: args.allow_origin,
        max_message_bytes: Some(args.max_message_bytes),
        first_payload_delay: Duration::from_millis(args.first_payload_delay_ms),
        queue: queue_config(args.queue_capacity, policy),
        heartbeat: (args.heartbeat_secs > 0)
            .then(|| Heartbeat::every(Duration::from_secs(args.heartbeat_secs))),
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
        redis: args.redis,
        history: args.history,
        stream_retention: args.stream_retention,
    };
    let registry = prometheus::Registry::new();
    // OTLP export turns on when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _otlp =
        wsmon::export::otlp::spawn_from_env(&registry, "wsmon-feed", env!("CARGO_PKG_VERSION"))?;
    let (addr, _feed, task) = feed::spawn(args.listen, config, &registry, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        "feed listening: ws://{addr}/ws  POST http://{addr}/publish  http://{addr}/metrics"
    );
    task.await??;
    Ok(())
}
