//! The overhead benchmark's broadcast server: bare axum or wsmon-instrumented by a switch,
//! everything else identical.
//!
//! It waits for the expected number of connections, then broadcasts in phases (warm-up,
//! fixed rate, saturation), records its own CPU time per phase, sends an end marker and
//! prints a [`ServerReport`] as its last stdout line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{self, Message};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast;

use crate::sys;
use crate::wire::{self, ServerPhase, ServerReport};

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// axum's own `WebSocketUpgrade`, no layer.
    Bare,
    /// wsmon's layer and `WebSocketUpgrade`.
    Instrumented,
    /// As `instrumented`, with OTLP export to `--otlp-endpoint`.
    InstrumentedOtlp,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Instrumented => "instrumented",
            Mode::InstrumentedOtlp => "instrumented-otlp",
        }
    }
}

/// Each mode once, plus bare a second time as an A/A control: its ratio to the first bare
/// run shows how far run-to-run variation alone moves a figure. Labels as reported.
pub const AA_ROUND: [(Mode, &str); 4] = [
    (Mode::Bare, BARE),
    (Mode::Instrumented, "instrumented"),
    (Mode::InstrumentedOtlp, "instrumented-otlp"),
    (Mode::Bare, CONTROL),
];
pub const BARE: &str = "bare";
pub const CONTROL: &str = "bare (A/A control)";

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    #[arg(long, value_enum)]
    pub mode: Mode,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Connections to wait for before the first phase.
    #[arg(long)]
    pub connections: usize,
    /// Seconds to wait for them.
    #[arg(long, default_value_t = 60.0)]
    pub connect_timeout: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
    /// Offered deliveries per second in the fixed-rate phase (publishes/s × connections).
    #[arg(long, default_value_t = 100_000.0)]
    pub fixed_deliveries: f64,
    #[arg(long, default_value_t = 4.0)]
    pub fixed_secs: f64,
    /// Offered deliveries per second in the saturation phase; above what the machine can do.
    #[arg(long, default_value_t = 2_000_000.0)]
    pub saturate_deliveries: f64,
    #[arg(long, default_value_t = 4.0)]
    pub saturate_secs: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 128)]
    pub payload_bytes: usize,
    /// Per-connection broadcast buffer, in messages; a slower receiver skips ahead.
    #[arg(long, default_value_t = 256)]
    pub buffer: usize,
    /// OTLP/HTTP base URL for `instrumented-otlp` (`/v1/metrics` is appended).
    #[arg(long)]
    pub otlp_endpoint: Option<String>,
    #[arg(long, default_value_t = 1000)]
    pub otlp_interval_ms: u64,
}

struct Shared {
    tx: broadcast::Sender<Bytes>,
    live: AtomicUsize,
    lagged: AtomicU64,
}

/// Runs the server to completion and returns its report.
pub async fn run(args: ServerArgs) -> anyhow::Result<ServerReport> {
    sys::raise_nofile(args.connections as u64 * 2 + 1024)?;
    let (tx, _) = broadcast::channel(args.buffer);
    let shared = Arc::new(Shared {
        tx,
        live: AtomicUsize::new(0),
        lagged: AtomicU64::new(0),
    });
    let registry = prometheus::Registry::new();
    let mut _otlp = None;
    let app = match args.mode {
        Mode::Bare => Router::new()
            .route("/ws", get(bare_handler))
            .with_state(shared.clone()),
        Mode::Instrumented | Mode::InstrumentedOtlp => {
            let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry)?;
            if args.mode == Mode::InstrumentedOtlp {
                let endpoint = args.otlp_endpoint.clone().ok_or_else(|| {
                    anyhow::anyhow!("--mode instrumented-otlp needs --otlp-endpoint")
                })?;
                let config = wsmon::export::otlp::OtlpConfig::new(endpoint, "wsmon-bench-server")
                    .interval(Duration::from_millis(args.otlp_interval_ms));
                _otlp = Some(wsmon::export::otlp::spawn(
                    registry.clone(),
                    config,
                    env!("CARGO_PKG_VERSION"),
                )?);
            }
            Router::new()
                .route("/ws", get(instrumented_handler))
                .route("/metrics", wsmon.metrics_route())
                .with_state(shared.clone())
                .layer(wsmon.layer())
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The orchestrator reads this line to learn the port.
    println!("LISTEN {}", listener.local_addr()?);
    // Nagle would hold back small broadcast frames and swamp the latency being measured.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout);
    while shared.live.load(Relaxed) < args.connections {
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {} connections arrived",
                shared.live.load(Relaxed),
                args.connections
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let n = args.connections.max(1) as f64;
    let mut phases = Vec::new();
    let mut seq = 0u64;
    for (phase, deliveries, secs) in [
        (wire::PHASE_WARMUP, args.fixed_deliveries, args.warmup_secs),
        (wire::PHASE_FIXED, args.fixed_deliveries, args.fixed_secs),
        (
            wire::PHASE_SATURATE,
            args.saturate_deliveries,
            args.saturate_secs,
        ),
    ] {
        let cpu0 = sys::self_cpu();
        let t0 = Instant::now();
        let start_us = sys::monotonic_micros();
        let publishes = publish_phase(&shared, phase, deliveries / n, secs, &mut seq, &args).await;
        phases.push(ServerPhase {
            phase,
            seconds: t0.elapsed().as_secs_f64(),
            publishes,
            start_us,
            end_us: sys::monotonic_micros(),
            cpu_seconds: (sys::self_cpu() - cpu0).as_secs_f64(),
        });
    }
    // Let queued messages drain before the end marker, so the saturation backlog is not cut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = shared.tx.send(Bytes::from(wire::encode(
        wire::PHASE_END,
        seq,
        sys::monotonic_micros(),
        args.payload_bytes,
    )));
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.live.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
    Ok(ServerReport {
        mode: args.mode.as_str().to_string(),
        connections: args.connections,
        phases,
        lagged_messages: shared.lagged.load(Relaxed),
    })
}

/// Publishes at `rate` messages per second for `secs`; returns how many were published.
async fn publish_phase(
    shared: &Shared,
    phase: u8,
    rate: f64,
    secs: f64,
    seq: &mut u64,
    args: &ServerArgs,
) -> u64 {
    // Batches per 1 ms tick at high rates, since timers do not fire faster than that.
    let period = Duration::from_secs_f64((1.0 / rate).max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut published = 0u64;
    while Instant::now() < end {
        ticker.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64 + 1;
        while published < due {
            *seq += 1;
            let msg = wire::encode(phase, *seq, sys::monotonic_micros(), args.payload_bytes);
            let _ = shared.tx.send(Bytes::from(msg));
            published += 1;
        }
    }
    published
}

async fn bare_handler(ws: ws::WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    ws.on_upgrade(move |socket| serve_socket(socket, shared))
}

async fn instrumented_handler(
    ws: wsmon::WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
) -> Response {
    ws.on_upgrade(move |socket| serve_socket(socket, shared))
}

/// The same handler body for both modes, in the shape of axum's chat example: the socket
/// is split, a task reads (so the read half is polled only when the client sends), and this
/// task forwards every broadcast until either side ends.
///
/// (Polling the read half on every send instead would cost both modes a 128 KiB memset per
/// message: tungstenite 0.29 zero-fills its whole read buffer before each read attempt.)
async fn serve_socket<S>(socket: S, shared: Arc<Shared>)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
        + 'static,
{
    let mut rx = shared.tx.subscribe();
    shared.live.fetch_add(1, Relaxed);
    let (mut sink, mut stream) = socket.split();
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    });
    let mut ended_by_client = false;
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Ok(payload) => {
                    let end = payload.first() == Some(&wire::PHASE_END);
                    if sink.send(Message::Binary(payload)).await.is_err() || end {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    shared.lagged.fetch_add(n, Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = &mut reader => {
                ended_by_client = true;
                break;
            }
        }
    }
    // After the end marker, wait briefly for the client's close so both sides end cleanly.
    if !ended_by_client
        && tokio::time::timeout(Duration::from_secs(2), &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
    shared.live.fetch_sub(1, Relaxed);
}
