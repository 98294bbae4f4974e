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
                  wsmon-feed --listen 127.0.0.1:8081 --redis redis://127.0.0.1:6379 --rate 0\n  \
                  wsmon-feed --admin-listen 127.0.0.1:9090   # then: curl -X POST 127.0.0.1:9090/faults/stall?on=true\n\n\
                  Endpoints: GET /ws (WebSocket; ?from=N resumes after N), POST /publish (JSON object), GET /metrics\n\n\
                  Fault controls (with --admin-listen, loopback only, off until used):\n  \
                  GET /faults                              which faults are on\n  \
                  POST /faults/stall?on=true|false         stop sending (sockets stay open)\n  \
                  POST /faults/skip?n=N                    skip N sequence numbers (a gap)\n  \
                  POST /faults/duplicate?n=N               resend the newest N messages\n  \
                  POST /faults/first-payload-delay?ms=MS   delay new connections' first payload\n  \
                  POST /faults/drop                        drop current connections, no close frame (1006)\n  \
                  POST /faults/burst?n=N                   N messages at once (N > queue: evicted, 1013)\n  \
                  POST /faults/oversized?bytes=N           one message of N bytes (1009 at a client's limit)\n  \
                  POST /faults/blackhole-publish?on=true   /publish answers 200, delivers nothing\n  \
                  POST /faults/clear                       switch every standing fault off"
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
    /// Serve the fault controls (see below) on this loopback address; off by default.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
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
    if let Some(admin) = args.admin_listen {
        // Refused before the feed starts, so a bad address never leaves a half-started feed.
        anyhow::ensure!(
            admin.ip().is_loopback(),
            feed::admin::AdminError::NotLoopback(admin)
        );
    }
    // SIGTERM is how a deploy drains an instance: close every stream with 1001, then exit.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        }
        on_signal.cancel();
    });
    let stopped = stop.clone();
    let (addr, running, task) = feed::spawn(args.listen, config, &registry, async move {
        stopped.cancelled().await
    })
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(admin) = args.admin_listen {
        let stopped = stop.clone();
        let (admin, _task) =
            feed::admin::spawn(admin, running, async move { stopped.cancelled().await }).await?;
        tracing::info!("fault controls: http://{admin}/faults");
    }
    tracing::info!(
        "feed listening: ws://{addr}/ws  POST http://{addr}/publish  http://{addr}/metrics"
    );
    task.await??;
    Ok(())
}
