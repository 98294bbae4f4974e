//! Benchmark 7, backpressure before and after: the broadcast-storm exercise in measured form.
//!
//! The same load for every run: `clients` connections to a `wsmon-feed` process (its own
//! process, so its RSS is its own), of which `slow` never read (4 KiB receive buffers, so the
//! kernel holds little for them and the feed's queues take the rest), and a fixed broadcast:
//! `rate` messages/s of `size` bytes published through `POST /publish`. Runs:
//! - before: `--queue-capacity 0`, an unbounded per-connection queue;
//! - after: the default 1024-message queue (high-water mark 768) with each overflow policy.
//!
//! Sampled every second: the messages actually published so far (each `POST /publish` answered
//! 200; a loaded machine publishes below `rate`, and the table says what it managed), total
//! queued bytes (`websocket_server_outbound_queue_messages` times the message size; every
//! message has the same size), the feed's RSS, the slow-consumer gauge, and the p99 broadcast
//! latency (publish `ts` to receive) of the healthy clients over that second. A run stops at
//! `duration` or once RSS passes `rss_limit`, before the machine suffers.
//!
//! The feed keeps only [`HISTORY`] messages for resumes, so that its RSS shows the queues and
//! not the resume history (10,000 messages by default).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::process::Command;

use crate::markdown::Table;
use crate::procs;
use crate::sys;

/// The feed's resume history in these runs, in messages.
pub const HISTORY: usize = 100;

/// Publish requests in flight at once, at most.
const PUBLISHES_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone)]
pub struct Options {
    pub clients: usize,
    pub slow: usize,
    pub rate: f64,
    pub size: usize,
    pub duration: Duration,
    pub rss_limit: u64,
}

/// One feed configuration under the load.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub name: &'static str,
    pub capacity: usize,
    pub overflow: &'static str,
}

pub const MODES: [Mode; 4] = [
    Mode {
        name: "before: unbounded queue",
        capacity: 0,
        overflow: "disconnect",
    },
    Mode {
        name: "after: drop-oldest",
        capacity: 1024,
        overflow: "drop-oldest",
    },
    Mode {
        name: "after: drop-newest",
        capacity: 1024,
        overflow: "drop-newest",
    },
    Mode {
        name: "after: disconnect",
        capacity: 1024,
        overflow: "disconnect",
    },
];

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at_secs: f64,
    /// Messages published so far (answered 200).
    pub published: u64,
    pub queued_bytes: f64,
    pub rss: u64,
    pub slow_consumers: f64,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub mode: Mode,
    pub samples: Vec<Sample>,
    /// Slow clients the feed closed (their stream ended).
    pub slow_closed: usize,
    /// p99 over the whole run, healthy clients.
    pub p99_ms: Option<f64>,
    pub stopped_at_limit: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn healthy_client(
    addr: SocketAddr,
    second: Arc<Mutex<Histogram<u64>>>,
    whole: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Ok(text) = msg.to_text() else { continue };
            // `"ts":MS` is the last field the feed adds; parse it without a JSON tree.
            let Some(ts) = text
                .rfind("\"ts\":")
                .and_then(|i| text[i + 5..].trim_end_matches('}').parse::<u64>().ok())
            else {
                continue;
            };
            let lag = now_ms().saturating_sub(ts).max(1);
            let _ = second.lock().unwrap().record(lag);
            let _ = whole.lock().unwrap().record(lag);
        }
    });
    Ok(())
}

/// A client that connects and never reads; resolves when the feed closes it.
async fn slow_client(addr: SocketAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp).await?;
    Ok(tokio::spawn(async move {
        // Never reads: the stream is only polled to learn that the server hung up, via the
        // TCP state, which reading would drain. Hold it until the run ends.
        let _held = ws;
        std::future::pending::<()>().await;
    }))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn run_mode(mode: Mode, opts: &Options) -> anyhow::Result<RunResult> {
    let feed_bin = procs::sibling("wsmon-feed")?;
    let addr = free_addr()?;
    let mut child = Command::new(&feed_bin)
        .args([
            "--listen",
            &addr.to_string(),
            "--rate",
            "0",
            "--heartbeat-secs",
            "0",
            "--history",
            &HISTORY.to_string(),
        ])
        .args(["--queue-capacity", &mode.capacity.to_string()])
        .args(["--overflow", mode.overflow])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("starting wsmon-feed")?;
    let pid = child.id().context("feed pid")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "wsmon-feed did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_hist = || {
        Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, 600_000, 3).unwrap(),
        ))
    };
    let (second, whole) = (new_hist(), new_hist());
    for _ in 0..opts.clients - opts.slow {
        healthy_client(addr, second.clone(), whole.clone()).await?;
    }
    let mut slow = Vec::new();
    for _ in 0..opts.slow {
        slow.push(slow_client(addr).await?);
    }
    // The publisher: a fixed rate of fixed-size objects.
    let pad = "x".repeat(opts.size.saturating_sub(60));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let http = http.clone();
        let rate = opts.rate;
        let published = published.clone();
        let body = format!(r#"{{"pad":"{pad}"}}"#);
        // Publishes overlap: one at a time, a loaded machine's round trip set the rate
        // (8/s of the 100 offered in a first run). Beyond this many in flight a tick is
        // skipped, and the published count says so.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(PUBLISHES_IN_FLIGHT));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    continue;
                };
                let (http, published, body) = (http.clone(), published.clone(), body.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let sent = http
                        .post(format!("http://{addr}/publish"))
                        .body(body)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut stopped_at_limit = false;
    while started.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = match http.get(format!("http://{addr}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let rss = sys::process_rss(pid).unwrap_or(0);
        let p99 = {
            let mut h = second.lock().unwrap();
            let v = (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64);
            h.reset();
            v
        };
        samples.push(Sample {
            at_secs: started.elapsed().as_secs_f64(),
            published: published.load(Ordering::Relaxed),
            queued_bytes: metric(&text, "websocket_server_outbound_queue_messages")
                * opts.size as f64,
            rss,
            slow_consumers: metric(&text, "websocket_server_slow_consumers"),
            p99_ms: p99,
        });
        if rss > opts.rss_limit {
            stopped_at_limit = true;
            break;
        }
    }
    publisher.abort();
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let closed = metric(
        &text,
        "websocket_server_outbound_overflows_total{action=\"disconnect\"",
    );
    for s in slow {
        s.abort();
    }
    let _ = child.kill().await;
    let p99_ms = {
        let h = whole.lock().unwrap();
        (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64)
    };
    Ok(RunResult {
        mode,
        samples,
        slow_closed: closed as usize,
        p99_ms,
        stopped_at_limit,
    })
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<RunResult>> {
    sys::raise_nofile(4096)?;
    let mut out = Vec::new();
    for mode in MODES {
        eprintln!("   {}", mode.name);
        out.push(run_mode(mode, opts).await?);
    }
    Ok(out)
}

fn mib(b: f64) -> String {
    format!("{:.1}", b / (1024.0 * 1024.0))
}

pub fn report(results: &[RunResult], opts: &Options) -> String {
    let mut t = Table::new([
        "feed",
        "ran",
        "published (messages/s)",
        "queued at end (MiB)",
        "RSS at start (MiB)",
        "RSS at end (MiB)",
        "peak RSS (MiB)",
        "slow consumers at end",
        "slow clients disconnected",
        "p99 broadcast latency, healthy (ms)",
    ]);
    for r in results {
        let first = r.samples.first().cloned().unwrap_or_default();
        let last = r.samples.last().cloned().unwrap_or_default();
        t.row([
            r.mode.name.to_string(),
            format!(
                "{:.0} s{}",
                last.at_secs,
                if r.stopped_at_limit {
                    " (RSS limit)"
                } else {
                    ""
                }
            ),
            format!(
                "{} ({:.0}/s)",
                last.published,
                last.published as f64 / last.at_secs.max(1.0)
            ),
            mib(last.queued_bytes),
            mib(first.rss as f64),
            mib(last.rss as f64),
            mib(r.samples.iter().map(|s| s.rss).max().unwrap_or(0) as f64),
            format!("{:.0}", last.slow_consumers),
            r.slow_closed.to_string(),
            r.p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
        ]);
    }
    format!(
        "## 7. Backpressure before and after\n\n{} clients on one feed, {} of them never \
         reading (4 KiB receive buffers); {} messages/s of {} bytes offered (the published \
         column says what the machine sustained); {} s per run, stopped early above {} MiB \
         RSS; resume history {} messages. Before: `--queue-capacity 0` (unbounded); after: \
         the default 1024-message queue with its high-water mark at 768, per overflow \
         policy.\n\n{}\nRSS over time (MiB, one bar per run and sample):\n\n```text\n{}```\n\n\
         Per-second samples (queued MiB / RSS MiB / slow consumers / healthy p99 ms):\n\n\
         ```text\n{}```\n",
        opts.clients,
        opts.slow,
        opts.rate,
        opts.size,
        opts.duration.as_secs(),
        opts.rss_limit >> 20,
        HISTORY,
        t.render(),
        chart(results),
        samples_text(results),
    )
}

/// A text chart of RSS over time: one row per sample second, a bar per run.
fn chart(results: &[RunResult]) -> String {
    let max = results
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.rss))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let rows = results.iter().map(|r| r.samples.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, r) in results.iter().enumerate() {
        out.push_str(&format!("  [{}] {}\n", i + 1, r.mode.name));
    }
    const WIDTH: f64 = 40.0;
    for row in (0..rows).step_by(2) {
        for (i, r) in results.iter().enumerate() {
            let Some(s) = r.samples.get(row) else {
                continue;
            };
            let bar = "#".repeat(((s.rss as f64 / max) * WIDTH).round() as usize);
            out.push_str(&format!(
                "{:>4.0}s [{}] {:<40} {:>7}\n",
                s.at_secs,
                i + 1,
                bar,
                mib(s.rss as f64)
            ));
        }
    }
    out
}

fn samples_text(results: &[RunResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&format!("{}:\n", r.mode.name));
        let cells: Vec<String> = r
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{:.0}s {}/{}/{:.0}/{}",
                    s.at_secs,
                    mib(s.queued_bytes),
                    mib(s.rss as f64),
                    s.slow_consumers,
                    s.p99_ms.map_or("-".into(), |v| format!("{v:.0}"))
                )
            })
            .collect();
        for chunk in cells.chunks(6) {
            out.push_str(&format!("  {}\n", chunk.join("  ")));
        }
    }
    out
}
