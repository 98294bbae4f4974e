//! Benchmark 8, replay cost: how fast `GET /ws?from=N` replays to one client, and how long a
//! client takes to catch up after a 10 s outage at 200 messages/s.
//!
//! Two sources, each on feeds hosted in this process:
//! - memory: one feed without Redis, replaying from its in-memory history;
//! - redis: a publishing feed and a second feed with no in-memory history (`history: 0`), so
//!   every replayed message comes from the Redis Stream (`XRANGE` in chunks of 1000), as for a
//!   client that reconnects to an instance that never saw the messages. `redis-server` is
//!   started here on a free port, without persistence, and killed at the end.
//!
//! Throughput: `backlog` messages published, then one client connects with `?from=0` and the
//! clock runs from the connect to the last replayed message. Catch-up: the feed ticks at 200/s;
//! a client reads for 2 s, disconnects for 10 s, reconnects with `?from=<last>`, and the clock
//! runs from the reconnect to the first message at or past the head sampled at reconnect.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::Value;
use wsmon_feed::{Feed, FeedConfig};

use crate::markdown::Table;

#[derive(Debug, Clone)]
pub struct Options {
    pub backlog: u64,
    pub outage: Duration,
    pub rate: f64,
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub source: &'static str,
    pub replayed: u64,
    pub replay_secs: f64,
    pub outage_backlog: u64,
    pub catch_up_secs: f64,
}

struct Redis {
    child: std::process::Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Redis {
    async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("wsmon-bench-redis-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .context("redis-server is not installed (apt-get install redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            dir,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn feed(config: FeedConfig) -> anyhow::Result<(SocketAddr, Arc<Feed>)> {
    let registry = prometheus::Registry::new();
    let (addr, feed, _task) = wsmon_feed::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        FeedConfig {
            heartbeat: None,
            ..config
        },
        &registry,
        std::future::pending(),
    )
    .await?;
    Ok((addr, feed))
}

/// Data messages' sequences from `addr` with `?from=from`, until `until(seq)` holds.
async fn read_until(
    addr: SocketAddr,
    from: u64,
    until: impl Fn(u64, u64) -> bool,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?from={from}")).await?;
    let mut n = 0;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
        let msg = msg?;
        let Ok(text) = msg.to_text() else { continue };
        let v: Value = serde_json::from_str(text)?;
        let Some(seq) = v["seq"].as_u64() else {
            continue;
        };
        anyhow::ensure!(v["type"] != "resume_miss", "unexpected resume_miss: {v}");
        n += 1;
        if until(seq, n) {
            return Ok((n, started.elapsed()));
        }
    }
    anyhow::bail!("the stream ended before the replay did")
}

/// Replays `backlog` messages from `reader`, published on `publisher`.
async fn throughput(
    publisher: &Feed,
    reader: SocketAddr,
    backlog: u64,
) -> anyhow::Result<Duration> {
    let first = publisher.hub().head();
    for _ in 0..backlog {
        publisher.publish_tick().await?;
    }
    let last = first + backlog;
    // Let the reading feed's own follower see the stream up to here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, took) = read_until(reader, first, |seq, _| seq >= last).await?;
    Ok(took)
}

/// Disconnects a client for `outage` while `ticking` publishes, then times its catch-up.
async fn catch_up(
    ticking: &Feed,
    reader: SocketAddr,
    outage: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let start = ticking.hub().head();
    let (_, _) = read_until(reader, start, |_, n| n >= 400).await?;
    let last = ticking.hub().head().min(start + 400);
    tokio::time::sleep(outage).await;
    let head = ticking.hub().head();
    let (n, took) = read_until(reader, last, |seq, _| seq >= head).await?;
    Ok((n, took))
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    // memory
    {
        eprintln!("   memory history");
        let config = FeedConfig {
            rate: 0.0,
            history: (opts.backlog as usize).max(10_000) + 1,
            ..FeedConfig::default()
        };
        let (addr, f) = feed(config.clone()).await?;
        let took = throughput(&f, addr, opts.backlog).await?;
        let (addr, ticking) = feed(FeedConfig {
            rate: opts.rate,
            ..config
        })
        .await?;
        let (n, caught) = catch_up(&ticking, addr, opts.outage).await?;
        out.push(Figures {
            source: "in-memory history",
            replayed: opts.backlog,
            replay_secs: took.as_secs_f64(),
            outage_backlog: n,
            catch_up_secs: caught.as_secs_f64(),
        });
    }
    // redis
    {
        eprintln!("   redis stream");
        let redis = Redis::start().await?;
        let base = FeedConfig {
            rate: 0.0,
            redis: Some(redis.url.clone()),
            stream_retention: (opts.backlog as usize) * 2,
            ..FeedConfig::default()
        };
        let (_, publisher) = feed(base.clone()).await?;
        let (reader, _r) = feed(FeedConfig {
            history: 0,
            ..base.clone()
        })
        .await?;
        // The publisher's follower must be live before its head serves as the floor.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let took = throughput(&publisher, reader, opts.backlog).await?;
        let (_, ticking) = feed(FeedConfig {
            rate: opts.rate,
            ..base.clone()
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (n, caught) = catch_up(&ticking, reader, opts.outage).await?;
        drop(redis);
        out.push(Figures {
            source: "Redis Stream (XRANGE), instance without history",
            replayed: opts.backlog,
            replay_secs: took.as_secs_f64(),
            outage_backlog: n,
            catch_up_secs: caught.as_secs_f64(),
        });
    }
    Ok(out)
}

pub fn report(figures: &[Figures], opts: &Options) -> String {
    let mut t = Table::new([
        "replayed from",
        "backlog replayed",
        "replay time (s)",
        "catch-up throughput (messages/s)",
        "messages after the outage",
        "time to catch up (ms)",
    ]);
    for f in figures {
        t.row([
            f.source.to_string(),
            f.replayed.to_string(),
            format!("{:.3}", f.replay_secs),
            format!("{:.0}", f.replayed as f64 / f.replay_secs),
            f.outage_backlog.to_string(),
            format!("{:.0}", f.catch_up_secs * 1000.0),
        ]);
    }
    format!(
        "## 8. Replay cost\n\nOne client, `GET /ws?from=N`, feeds in the benchmark process. Throughput: a backlog of {} messages replayed from `from=0`, \
         timed from the connect to the last one. Catch-up: the feed ticks at {} messages/s, the \
         client is away for {} s and reconnects with its last sequence; timed from the \
         reconnect to the first message at or past the head at reconnect (the replay plus the \
         seam to live).\n\n{}",
        opts.backlog,
        opts.rate,
        opts.outage.as_secs(),
        t.render()
    )
}
