//! The overhead benchmark's client load: N connections in their own process, each receiving
//! the broadcast and timing publish-to-receive on the shared monotonic clock.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::sys;
use crate::wire::{self, LoadPhase, LoadReport};

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:9000/ws.
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Gives up on connections that have not seen the end marker after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Width of the arrival-count bins, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub bin_ms: u64,
}

/// What one connection saw.
struct Seen {
    counts: [u64; 3],
    latency: [Histogram<u32>; 3],
    bins: Vec<u64>,
}

fn histogram() -> Histogram<u32> {
    // Two significant figures keep 2,000 per-connection histograms small; p99 is still ±1%.
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

/// Connects, receives until the end marker, and returns the report.
pub async fn run(args: LoadArgs) -> anyhow::Result<LoadReport> {
    sys::raise_nofile(args.connections as u64 + 1024)?;
    let origin_us = sys::monotonic_micros();
    let bin_us = args.bin_ms.max(1) * 1000;
    let url = args.url.clone();
    let sockets: Vec<_> = futures_util::stream::iter(0..args.connections)
        .map(|_| {
            let url = url.clone();
            async move {
                let (ws, _) = tokio_tungstenite::connect_async(url).await?;
                // Frames are small and latency is measured: no Nagle on the client's acks.
                if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                    let _ = tcp.set_nodelay(true);
                }
                Ok::<_, tokio_tungstenite::tungstenite::Error>(ws)
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let failed_connects = sockets.iter().filter(|s| s.is_err()).count();
    if let Some(Err(e)) = sockets.iter().find(|s| s.is_err()) {
        tracing::warn!(error = %e, failed = failed_connects, "some connections failed");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let tasks: Vec<_> = sockets
        .into_iter()
        .flatten()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut seen = Seen {
                    counts: [0; 3],
                    latency: [histogram(), histogram(), histogram()],
                    bins: Vec::new(),
                };
                let _ = tokio::time::timeout(timeout, async {
                    while let Some(Ok(msg)) = ws.next().await {
                        let now = sys::monotonic_micros();
                        let Message::Binary(data) = msg else {
                            if msg.is_close() {
                                break;
                            }
                            continue;
                        };
                        let Some((phase, _seq, published)) = wire::decode(&data) else {
                            continue;
                        };
                        if phase == wire::PHASE_END {
                            break;
                        }
                        let bin = ((now - origin_us) / bin_us) as usize;
                        if seen.bins.len() <= bin {
                            seen.bins.resize(bin + 1, 0);
                        }
                        seen.bins[bin] += 1;
                        if let Some(i) =
                            [wire::PHASE_WARMUP, wire::PHASE_FIXED, wire::PHASE_SATURATE]
                                .iter()
                                .position(|p| *p == phase)
                        {
                            seen.counts[i] += 1;
                            seen.latency[i].saturating_record(now.saturating_sub(published).max(1));
                        }
                    }
                })
                .await;
                let _ = ws.close(None).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                let _ = ws.flush().await;
                seen
            })
        })
        .collect();
    let connected = tasks.len();
    let mut counts = [0u64; 3];
    let mut latency = [histogram(), histogram(), histogram()];
    let mut bins: Vec<u64> = Vec::new();
    for task in tasks {
        let seen = task.await?;
        for i in 0..3 {
            counts[i] += seen.counts[i];
            latency[i].add(&seen.latency[i])?;
        }
        if bins.len() < seen.bins.len() {
            bins.resize(seen.bins.len(), 0);
        }
        for (b, n) in bins.iter_mut().zip(&seen.bins) {
            *b += n;
        }
    }
    let phases = [wire::PHASE_WARMUP, wire::PHASE_FIXED, wire::PHASE_SATURATE]
        .iter()
        .enumerate()
        .map(|(i, &phase)| LoadPhase {
            phase,
            messages: counts[i],
            p50_us: latency[i].value_at_quantile(0.50),
            p99_us: latency[i].value_at_quantile(0.99),
            max_us: latency[i].max(),
        })
        .collect();
    Ok(LoadReport {
        connected,
        failed_connects,
        phases,
        origin_us,
        bin_us,
        bins,
    })
}
