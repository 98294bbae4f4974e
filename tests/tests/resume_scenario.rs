//! Replay and resume under faults (issue 14): two feed processes, A and B, share one durable
//! Redis Stream on a real `redis-server`; a publisher sends about 200 messages/s through A's
//! `POST /publish`, recording every sequence it was given.
//!
//! Clients start on B. Each kills its own TCP connection mid-stream every 1 to 2 s (an RST:
//! no close frame, whatever was in flight is lost), waits until more has been published, and
//! reconnects alternately to A and B with `?from=<last sequence seen>`. Halfway through, B is
//! `kill -9`'d and restarted on the same port. One client is Python `websockets`
//! (`tests/fixtures/resume_client.py`). The prober daemon holds a resume canary
//! (`resume: { query: from }`) through a relay that kills its connection every 1 to 2 s and
//! dials B and A in turn.
//!
//! Result: every client receives every published sequence after its first snapshot exactly
//! once and in order (zero missed, zero duplicates, zero reorders), and the feeds count the
//! resumes as hits and the replayed messages. The canary's `/metrics` shows zero missed,
//! duplicated or reordered messages, and one resume outcome per reconnect. Control: the same
//! run reconnecting without `from` loses messages, so the check can fail.
//!
//! `cargo test -p wsmon-tests --test resume_scenario -- --nocapture` prints the figures.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use support::binaries;
use support::exposition::scrape;
use support::feed_process::FeedProcess;
use support::prober::ProberDaemon;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use wsmon_testkit::kill_relay::KillRelay;
use wsmon_testkit::redis::RedisServer;

/// Publishing rate, through A.
const RATE: f64 = 200.0;
/// How long the publisher runs in the resume run (B is killed halfway).
const RESUME_RUN: Duration = Duration::from_secs(16);
/// The control run is shorter: it only has to show a loss.
const CONTROL_RUN: Duration = Duration::from_secs(6);
/// Rust clients per run (plus one Python client).
const RUST_CLIENTS: usize = 3;
/// Bounds every wait for a client to reach the end marker.
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);

fn feed_args(redis: &RedisServer) -> Vec<String> {
    ["--redis", &redis.url(), "--rate", "0", "--history", "2000"]
        .map(String::from)
        .to_vec()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Reconnect with `?from=<last seen>`.
    Resume,
    /// Reconnect without `from` (snapshot, then live): the control.
    Fresh,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Resume => "resume",
            Mode::Fresh => "fresh",
        }
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientLog {
    name: String,
    /// The sequence of its first snapshot: it must receive everything after it.
    start: u64,
    seqs: Vec<u64>,
    misses: u64,
    reconnects: u64,
    failed_connects: u64,
}

/// Missed, duplicated and reordered messages of `log` against the published `[start+1, end]`.
#[derive(Debug, PartialEq, Eq, Default)]
struct Verdict {
    missed: usize,
    duplicates: usize,
    reorders: usize,
}

fn judge(log: &ClientLog, published: &[u64]) -> Verdict {
    let end = *published.last().expect("something was published");
    let expected: Vec<u64> = published
        .iter()
        .copied()
        .filter(|s| *s > log.start)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut v = Verdict::default();
    let mut last = log.start;
    // After the end marker only the repeated markers follow.
    for &s in log.seqs.iter().filter(|s| **s <= end) {
        if !seen.insert(s) {
            v.duplicates += 1;
            continue;
        }
        if s < last {
            v.reorders += 1;
        }
        last = last.max(s);
    }
    v.missed = expected.iter().filter(|s| !seen.contains(s)).count();
    v
}

/// The publisher: POSTs `{"n":i}` to A at [`RATE`] for `run`, then the end marker
/// `{"last":true}`. Returns every sequence A answered, in order, the marker's last.
async fn publish(a: SocketAddr, run: Duration, count: Arc<AtomicU64>) -> Vec<u64> {
    let http = reqwest::Client::new();
    let mut seqs = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut i = 0u64;
    loop {
        tick.tick().await;
        let done = started.elapsed() >= run;
        let body = if done {
            r#"{"last":true}"#.to_string()
        } else {
            format!(r#"{{"n":{i}}}"#)
        };
        let resp = http
            .post(format!("http://{a}/publish"))
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("A accepts publishes");
        assert_eq!(resp.status(), 200, "A refused publish {i}");
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        seqs.push(v["seq"].as_u64().unwrap());
        count.store(seqs.len() as u64, SeqCst);
        i += 1;
        if done {
            return seqs;
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn dial(addr: SocketAddr, from: Option<u64>) -> Option<Ws> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    // Dropping the socket then sends an RST: the connection dies mid-stream.
    tcp.set_zero_linger().ok()?;
    let url = match from {
        Some(n) => format!("ws://{addr}/ws?from={n}"),
        None => format!("ws://{addr}/ws"),
    };
    let (ws, _) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tcp),
    )
    .await
    .ok()?
    .ok()?;
    Some(ws)
}

/// A Rust client: starts on B, kills its connection every 1–2 s, waits until at least one
/// more message was published (so a reconnect without `from` must lose it), and reconnects
/// alternately to A and B.
async fn rust_client(
    name: String,
    mode: Mode,
    a: SocketAddr,
    b: SocketAddr,
    published: Arc<AtomicU64>,
    seed: u64,
) -> ClientLog {
    let mut log = ClientLog {
        name,
        ..ClientLog::default()
    };
    let mut last: Option<u64> = None;
    let mut attempt = 0u64;
    // A small xorshift: reproducible per client, no dependency for the jitter.
    let mut rng = seed | 1;
    let mut jitter = |lo: u64, hi: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        lo + rng % (hi - lo)
    };
    let deadline = Instant::now() + CLIENT_DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "{} saw no end marker within {CLIENT_DEADLINE:?} (last {last:?})",
            log.name
        );
        let addr = if attempt % 2 == 0 { b } else { a };
        attempt += 1;
        let from = if mode == Mode::Resume { last } else { None };
        let Some(mut ws) = dial(addr, from).await else {
            log.failed_connects += 1;
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        if last.is_some() {
            log.reconnects += 1;
        }
        // The kill timer runs once data flows, so every client starts on B.
        let mut kill_at = (!log.seqs.is_empty())
            .then(|| Instant::now() + Duration::from_millis(jitter(1000, 2000)));
        let mut ended = false;
        loop {
            let until = kill_at.unwrap_or_else(|| Instant::now() + Duration::from_millis(100));
            let msg = match tokio::time::timeout_at(until, ws.next()).await {
                Err(_) if kill_at.is_none() => continue,
                Ok(Some(Ok(msg))) => msg,
                _ => break, // killed by us, or the server went away
            };
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            match v["type"].as_str() {
                Some("snapshot") => {
                    let seq = v["seq"].as_u64().unwrap();
                    if last.is_none() {
                        log.start = seq;
                    }
                    if last.is_none() || mode == Mode::Fresh {
                        last = Some(seq);
                    }
                    continue;
                }
                Some("resume_miss") => {
                    log.misses += 1;
                    continue;
                }
                _ => {}
            }
            let Some(seq) = v["seq"].as_u64() else {
                continue;
            };
            log.seqs.push(seq);
            last = Some(seq);
            if v["last"] == true {
                ended = true;
                break;
            }
            kill_at
                .get_or_insert_with(|| Instant::now() + Duration::from_millis(jitter(1000, 2000)));
        }
        drop(ws); // RST
        if ended {
            return log;
        }
        // Wait for an event, not for luck: something is published while we are away.
        let at_kill = published.load(SeqCst);
        // (None only after the publisher stopped: the end marker repeats, reconnect for it.)
        support::eventually(Duration::from_secs(2), Duration::from_millis(5), || {
            let now = published.load(SeqCst);
            async move { (now > at_kill).then_some(()) }
        })
        .await;
    }
}

/// The Python client (`tests/fixtures/resume_client.py`) as a child process.
async fn python_client(mode: Mode, a: SocketAddr, b: SocketAddr) -> ClientLog {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/resume_client.py");
    let child = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(mode.as_str())
        .arg(format!("ws://{a}"))
        .arg(format!("ws://{b}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/test.sh installs it with websockets)");
    let out = timeout(
        CLIENT_DEADLINE + Duration::from_secs(30),
        child.wait_with_output(),
    )
    .await
    .expect("the Python client ends")
    .unwrap();
    assert!(
        out.status.success(),
        "the Python client failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    ClientLog {
        name: "python".into(),
        start: v["start"]
            .as_u64()
            .expect("the Python client got a snapshot"),
        seqs: v["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect(),
        misses: v["misses"].as_u64().unwrap(),
        reconnects: v["reconnects"].as_u64().unwrap(),
        failed_connects: v["failed_connects"].as_u64().unwrap(),
    }
}

struct RunResult {
    published: Vec<u64>,
    clients: Vec<ClientLog>,
    elapsed: Duration,
}

/// One run: clients on B, the publisher through A for `run`, B killed and restarted at
/// `run / 2`.
async fn run(mode: Mode, a: SocketAddr, b: &mut FeedProcess, run: Duration) -> RunResult {
    let started = Instant::now();
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..RUST_CLIENTS {
        clients.push(tokio::spawn(rust_client(
            format!("rust-{i}"),
            mode,
            a,
            b.addr,
            count.clone(),
            0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
        )));
    }
    let python = tokio::spawn(python_client(mode, a, b.addr));
    // Every client holds its first connection (a snapshot) before publishing starts.
    let http = reqwest::Client::new();
    let connected = support::eventually(Duration::from_secs(20), Duration::from_millis(20), || {
        let http = http.clone();
        let b = b.addr;
        async move {
            let s = scrape(&http, b).await?;
            (s.sum("websocket_server_active_connections", &[]) >= (RUST_CLIENTS + 1) as f64)
                .then_some(())
        }
    })
    .await;
    assert!(connected.is_some(), "the clients did not all connect to B");
    let publisher = tokio::spawn(publish(a, run, count.clone()));
    // B dies halfway through, while the publisher keeps going through A.
    sleep(run / 2).await;
    b.kill_9().await;
    b.restart().await;
    let published = publisher.await.unwrap();
    // A client reconnecting without `from` may miss the marker itself: repeat it until every
    // client is done (the verdict reads only up to the first one).
    let repeat = tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            sleep(Duration::from_millis(100)).await;
            let _ = http
                .post(format!("http://{a}/publish"))
                .body(r#"{"last":true}"#)
                .send()
                .await;
        }
    });
    let mut logs = Vec::new();
    for c in clients {
        logs.push(c.await.unwrap());
    }
    logs.push(python.await.unwrap());
    repeat.abort();
    RunResult {
        published,
        clients: logs,
        elapsed: started.elapsed(),
    }
}

fn report(title: &str, r: &RunResult) -> Vec<Verdict> {
    println!(
        "\n{title}: {} published ({}..={}) in {:.1?}",
        r.published.len(),
        r.published[0],
        r.published[r.published.len() - 1],
        r.elapsed
    );
    println!("| client | start | received | reconnects | failed connects | resume_miss | missed | duplicates | reorders |");
    println!("|---|---|---|---|---|---|---|---|---|");
    r.clients
        .iter()
        .map(|c| {
            let v = judge(c, &r.published);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.name,
                c.start,
                c.seqs.len(),
                c.reconnects,
                c.failed_connects,
                c.misses,
                v.missed,
                v.duplicates,
                v.reorders
            );
            v
        })
        .collect()
}

/// The prober's resume canary went through the kills without a miss, duplicate or reorder,
/// and judged every reconnect once: `resumes_total` sums to `reconnects_total`. Returns
/// that sum.
async fn check_prober_canary(
    http: &reqwest::Client,
    prober: &ProberDaemon,
    published: usize,
) -> f64 {
    let c = [("canary", "resume")];
    // It catches up after the last kill; a reconnect's outcome follows its first message.
    let settled = support::eventually(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let s = scrape(http, prober.addr).await?;
            let resumes = s.sum("websocket_canary_resumes_total", &c);
            let reconnects = s.sum("websocket_canary_reconnects_total", &c);
            (s.sum("websocket_canary_messages_total", &c) >= published as f64
                && resumes == reconnects)
                .then_some(s)
        },
    )
    .await;
    let s = settled.unwrap_or_else(|| {
        panic!(
            "the canary never caught up with resumes matching reconnects:\n{}",
            std::fs::read_to_string(&prober.log).unwrap_or_default()
        )
    });
    let outcome = |o: &str| {
        s.sum(
            "websocket_canary_resumes_total",
            &[("canary", "resume"), ("outcome", o)],
        )
    };
    let reconnects = s.sum("websocket_canary_reconnects_total", &c);
    println!(
        "prober canary: {reconnects} reconnects; resumes: {} hit, {} miss, {} unavailable, {} failed, {} interrupted; {} replayed",
        outcome("hit"),
        outcome("miss"),
        outcome("unavailable"),
        outcome("failed"),
        outcome("interrupted"),
        s.sum("websocket_canary_replayed_messages_total", &c)
    );
    for name in [
        "websocket_canary_missed_messages_total",
        "websocket_canary_sequence_gaps_total",
        "websocket_canary_duplicates_total",
        "websocket_canary_reorders_total",
    ] {
        assert_eq!(s.sum(name, &c), 0.0, "the resume canary's {name}");
    }
    assert!(
        outcome("hit") >= 5.0,
        "the canary's connections were killed and resumed"
    );
    assert_eq!(
        outcome("miss") + outcome("failed"),
        0.0,
        "every resume was honoured"
    );
    assert!(
        s.sum("websocket_canary_replayed_messages_total", &c) > 0.0,
        "the replays were counted"
    );
    reconnects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_clients_receive_every_message_once_in_order_through_connection_kills_and_kill_9()
{
    let feed_bin = binaries::example_feed();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start().await;
    let a = FeedProcess::start(&feed_bin, dir.path(), "a", &feed_args(&redis)).await;
    let mut b = FeedProcess::start(&feed_bin, dir.path(), "b", &feed_args(&redis)).await;
    let http = reqwest::Client::new();

    // The prober's resume canary, through the same kills: B first, A when B is down.
    let relay = KillRelay::start(vec![b.addr, a.addr]).await;
    relay.kill_every(Duration::from_millis(1000), Duration::from_millis(2000));
    let prober = support::prober::start(
        &binaries::wsmon_probe(),
        &format!(
            "  - name: resume\n    url: {}\n    sequence: {{ pointer: /seq }}\n    \
             timestamp: {{ pointer: /ts, unit: ms }}\n    resume: {{ query: from }}\n",
            relay.ws_url()
        ),
    )
    .await;

    // --- with ?from= ---
    let resumed = run(Mode::Resume, a.addr, &mut b, RESUME_RUN).await;
    let published = &resumed.published;
    assert!(
        published.windows(2).all(|w| w[1] == w[0] + 1),
        "Redis sequences every publish densely"
    );
    let verdicts = report("with ?from=", &resumed);
    for (c, v) in resumed.clients.iter().zip(&verdicts) {
        assert_eq!(
            *v,
            Verdict::default(),
            "{} must receive every sequence after {} exactly once, in order",
            c.name,
            c.start
        );
        assert_eq!(
            c.misses, 0,
            "{}: no resume point fell outside the retention",
            c.name
        );
        assert!(
            c.reconnects >= 5,
            "{} reconnected only {} times: the faults did not happen",
            c.name,
            c.reconnects
        );
    }
    // The canary settles first: its resumes reach the feeds too.
    let canary_resumes = check_prober_canary(&http, &prober, published.len()).await;
    prober.stop().await;
    drop(relay);
    // The feeds counted the resumes as hits and replayed what the clients missed.
    let (sa, sb) = (
        scrape(&http, a.addr).await.expect("A serves /metrics"),
        scrape(&http, b.addr).await.expect("B serves /metrics"),
    );
    let hits = sa.sum("websocket_server_resumes_total", &[("outcome", "hit")])
        + sb.sum("websocket_server_resumes_total", &[("outcome", "hit")]);
    let misses = sa.sum("websocket_server_resumes_total", &[("outcome", "miss")])
        + sb.sum("websocket_server_resumes_total", &[("outcome", "miss")]);
    let replayed = sa.sum("websocket_server_replayed_messages_total", &[])
        + sb.sum("websocket_server_replayed_messages_total", &[]);
    // B's counters restarted with it: only A's resumes and B's since the restart are left.
    let reconnects: u64 = resumed.clients.iter().map(|c| c.reconnects).sum();
    println!(
        "feeds: {hits} resume hits, {misses} misses, {replayed} replayed; clients reconnected {reconnects} times"
    );
    assert_eq!(misses, 0.0, "no resume missed");
    assert!(
        hits >= (reconnects / 3) as f64 && hits <= reconnects as f64 + canary_resumes,
        "resume hits ({hits}) must match the clients' reconnects ({reconnects}, B's share before its restart lost) and the canary's {canary_resumes} resumes"
    );
    assert!(
        replayed > 0.0,
        "killed connections missed messages that were replayed"
    );

    // --- control: the same run without ?from= ---
    let control = run(Mode::Fresh, a.addr, &mut b, CONTROL_RUN).await;
    let verdicts = report("control, without ?from=", &control);
    let lost: usize = verdicts.iter().map(|v| v.missed).sum();
    assert!(
        lost > 0,
        "reconnecting without from must lose messages, or the resume check proves nothing"
    );
    for (c, v) in control.clients.iter().zip(&verdicts) {
        if c.name.starts_with("rust") {
            assert!(
                v.missed > 0,
                "{}: messages were published while it was away",
                c.name
            );
        }
    }
}
