//! Soak: the demo set-up under churn and faults must not leak.
//!
//! Process A is `wsmon-probe demo --healthy` (the instrumented example feed and a canary on it). Process
//! B is `wsmon-probe daemon`, holding a canary on A's feed and one on a server that cycles
//! through faults (drops, 1011, resets, silence, ping floods, exabyte headers). Meanwhile
//! clients connect to A's feed and leave in every way (close 1000/4001, abrupt drop,
//! oversized message, stop reading). Every few seconds both processes' RSS, open file
//! descriptors and series counts are sampled; after warm-up they must stay flat.
//!
//! Two minutes in the test command; `scripts/soak.sh` runs it for as long as you like
//! (`WSMON_SOAK_SECS`) and writes the samples as CSV (`WSMON_SOAK_CSV`).

mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use support::{daemon_process, get, hostile, sample, spawn_bin};

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The current resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/<pid>/fd")
        .count()
}

async fn series(metrics_url: &str) -> usize {
    let (code, body) = get(metrics_url).await;
    assert_eq!(code, 200, "{metrics_url} must keep answering");
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_secs: f64,
    demo_rss_kib: u64,
    demo_fds: usize,
    feed_series: usize,
    daemon_rss_kib: u64,
    daemon_fds: usize,
    daemon_series: usize,
    churned: u64,
}

/// One client of the feed: reads a little, then leaves in one of five ways.
async fn churn_client(url: String) {
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    else {
        return;
    };
    let (read_for, way) = {
        let mut rng = rand::rng();
        (
            Duration::from_millis(rng.random_range(50..600)),
            rng.random_range(0..5u8),
        )
    };
    let _ = tokio::time::timeout(read_for, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let bye = |code: u16| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        }))
    };
    let leave = async {
        match way {
            0 => {
                let _ = ws.send(bye(1000)).await;
            }
            1 => {
                let _ = ws.send(bye(4001)).await;
            }
            2 => {} // abrupt drop
            3 => {
                // Over the feed's 1 MiB limit: closed with 1009.
                let _ = ws.send(Message::binary(vec![0u8; 1_200_000])).await;
            }
            _ => {
                // Stops reading for a while, then drops.
                tokio::time::sleep(Duration::from_secs(2)).await;
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    };
    leave.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_under_churn_and_faults_do_not_leak() {
    let total = Duration::from_secs(env_secs("WSMON_SOAK_SECS", 120));
    let every = Duration::from_secs(env_secs("WSMON_SOAK_SAMPLE_SECS", 2));
    let warm_up = (total / 4).max(Duration::from_secs(20));

    // Process A: the demo.
    let mut demo = spawn_bin(&["demo", "--healthy", "--every", "1h"], Stdio::piped());
    let demo_pid = demo.id().unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut feed_ws, mut feed_metrics) = (None, None);
    while feed_ws.is_none() || feed_metrics.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the demo prints its URLs")
            .unwrap()
            .expect("the demo prints its URLs");
        let url = line.split_whitespace().last().unwrap_or("").to_string();
        if line.trim_start().starts_with("feed stream") {
            feed_ws = Some(url);
        } else if line.trim_start().starts_with("feed metrics") {
            feed_metrics = Some(url);
        }
    }
    let (feed_ws, feed_metrics) = (feed_ws.unwrap(), feed_metrics.unwrap());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let feed_http = feed_ws.replace("ws://", "http://").replace("/ws", "");

    // Process B: a daemon with a healthy canary on A's feed and one on rotating faults.
    let faults = hostile::rotating_faults().await;
    let mut daemon = daemon_process(&format!(
        "defaults: {{ connect_timeout: 1s, backoff: {{ initial: 100ms, max: 1s }} }}\ncanaries:\n  - name: feed\n    url: {feed_ws}\n    sequence: {{ pointer: /seq }}\n    timestamp: {{ pointer: /ts, unit: ms }}\n    heartbeat: {{ every: 1s, timeout: 2s }}\n    publish:\n      http: {{ url: {feed_http}/publish, body: '{{\"type\":\"canary\",\"nonce\":\"{{{{nonce}}}}\"}}' }}\n      every: 1s\n      match: /nonce\n      timeout: 3s\n  - name: faults\n    url: {}\n    first_payload_within: 1s\n    sequence: {{ pointer: /seq }}\n",
        faults.url()
    ))
    .await;
    let daemon_pid = daemon.pid();
    let daemon_metrics = daemon.metrics_url.clone();

    // Churn: a client every 50ms, each living up to a few seconds.
    let churned = Arc::new(AtomicU64::new(0));
    let churn = {
        let (url, churned) = (feed_ws.clone(), churned.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                churned.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(churn_client(url.clone()));
            }
        })
    };

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(every).await;
        samples.push(Sample {
            at_secs: started.elapsed().as_secs_f64(),
            demo_rss_kib: rss_kib(demo_pid),
            demo_fds: open_fds(demo_pid),
            feed_series: series(&feed_metrics).await,
            daemon_rss_kib: rss_kib(daemon_pid),
            daemon_fds: open_fds(daemon_pid),
            daemon_series: series(&daemon_metrics).await,
            churned: churned.load(Ordering::Relaxed),
        });
    }
    churn.abort();
    let metrics = get(&daemon_metrics).await.1;

    let csv: String = std::iter::once(
        "seconds,demo_rss_kib,demo_fds,feed_series,daemon_rss_kib,daemon_fds,daemon_series,clients\n"
            .to_string(),
    )
    .chain(samples.iter().map(|s| {
        format!(
            "{:.0},{},{},{},{},{},{},{}\n",
            s.at_secs,
            s.demo_rss_kib,
            s.demo_fds,
            s.feed_series,
            s.daemon_rss_kib,
            s.daemon_fds,
            s.daemon_series,
            s.churned
        )
    }))
    .collect();
    eprint!("{csv}");
    if let Ok(out) = std::env::var("WSMON_SOAK_CSV") {
        std::fs::write(&out, &csv).unwrap();
    }

    // Both processes are alive, and the healthy canary held while the other one churned.
    assert!(demo.try_wait().unwrap().is_none(), "the demo died");
    assert!(daemon.is_running(), "the daemon died");
    assert_eq!(
        sample(&metrics, "websocket_canary_up", r#"canary="feed""#),
        Some(1.0),
        "{metrics}"
    );
    let fault_reconnects: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("websocket_canary_reconnects_total{canary=\"faults\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        fault_reconnects >= 10.0,
        "the faulty canary kept failing and reconnecting: {fault_reconnects}"
    );

    // Flat after warm-up: the last quarter against the samples right after warm-up.
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_secs >= warm_up.as_secs_f64())
        .collect();
    assert!(after.len() >= 8, "too few samples after warm-up");
    let (base, tail) = (&after[..after.len() / 4], &after[after.len() * 3 / 4..]);
    let avg = |xs: &[&Sample], f: fn(&Sample) -> u64| {
        xs.iter().map(|s| f(s)).sum::<u64>() / xs.len() as u64
    };
    let max = |xs: &[&Sample], f: fn(&Sample) -> u64| xs.iter().map(|s| f(s)).max().unwrap();
    for (what, f) in [
        (
            "demo RSS",
            (|s: &Sample| s.demo_rss_kib) as fn(&Sample) -> u64,
        ),
        ("daemon RSS", |s: &Sample| s.daemon_rss_kib),
    ] {
        let (b, t) = (avg(base, f), avg(tail, f));
        // Allocator noise and histogram buckets filling: 15% plus 4 MiB.
        assert!(
            t <= b + b * 15 / 100 + 4096,
            "{what} grew from {b} KiB to {t} KiB\n{csv}"
        );
    }
    for (what, f, slack) in [
        // Churn keeps some 20-30 feed clients connected at any moment. Series may grow by a
        // few lines when a bounded label (a close code, a failure reason) first appears late.
        (
            "demo fds",
            (|s: &Sample| s.demo_fds as u64) as fn(&Sample) -> u64,
            40,
        ),
        ("daemon fds", |s: &Sample| s.daemon_fds as u64, 8),
        ("feed series", |s: &Sample| s.feed_series as u64, 10),
        ("daemon series", |s: &Sample| s.daemon_series as u64, 10),
    ] {
        let (b, t) = (max(base, f), max(tail, f));
        assert!(t <= b + slack, "{what} grew from {b} to {t}\n{csv}");
    }
}
