//! The daemon over time: a server restart with recovery and spread-out reconnects, SIGHUP
//! reload (keeping the old config when the new one is invalid) and SIGTERM closing with 1001.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::faulty::{self, send_seqs};
use support::{parse_config, sample, RunningDaemon};
use tokio::io::AsyncBufReadExt;

const CANARIES: usize = 6;

async fn ticking_server_behaviour(mut ws: faulty::Ws) {
    let seqs: Vec<u64> = (1..=100_000).collect();
    send_seqs(&mut ws, &seqs, Duration::from_millis(50)).await;
}

fn canaries_yaml(url: &str) -> String {
    let mut y = String::from("canaries:\n");
    for i in 0..CANARIES {
        y.push_str(&format!(
            "  - name: c{i}\n    url: {url}\n    connect_timeout: 500ms\n    first_payload_within: 1s\n    backoff: {{ initial: 300ms, max: 1s }}\n"
        ));
    }
    y
}

fn all_up(m: &str) -> bool {
    (0..CANARIES)
        .all(|i| sample(m, "websocket_canary_up", &format!(r#"canary="c{i}""#)) == Some(1.0))
}

#[tokio::test]
async fn a_server_restart_recovers_with_spread_out_reconnects_and_metrics_throughout() {
    let server = faulty::ws(ticking_server_behaviour).await;
    let addr = server.addr;
    let d = RunningDaemon::start(parse_config(&canaries_yaml(&server.url()))).await;
    d.wait_for(Duration::from_secs(10), "every canary up", all_up)
        .await;

    // Every connection drops at once: full jitter must spread the reconnects out.
    let before = server.accepted().len();
    let dropped_at = Instant::now();
    server.drop_connections();
    d.wait_for(Duration::from_secs(10), "every canary back up", |m| {
        all_up(m) && server.accepted().len() >= before + CANARIES
    })
    .await;
    let retries: Vec<Duration> = server.accepted()[before..before + CANARIES]
        .iter()
        .map(|t| t.saturating_duration_since(dropped_at))
        .collect();
    let spread = retries
        .iter()
        .max()
        .unwrap()
        .saturating_sub(*retries.iter().min().unwrap());
    // Uniform in [0, 300ms): six retries all within 10ms of each other has odds below 1e-6.
    assert!(
        spread > Duration::from_millis(10),
        "reconnects in lockstep: {retries:?}"
    );

    // The server goes away entirely, then comes back on the same port.
    drop(server);
    let m = d
        .wait_for(Duration::from_secs(10), "refused reconnects", |m| {
            (0..CANARIES).all(|i| {
                sample(
                    m,
                    "websocket_canary_reconnects_total",
                    &format!(r#"canary="c{i}",reason="connect_refused""#),
                )
                .unwrap_or(0.0)
                    >= 1.0
            })
        })
        .await;
    assert!(!all_up(&m));
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_outage = d.metrics().await;
    let attempts_during_outage: f64 = (0..CANARIES)
        .map(|i| {
            sample(
                &after_outage,
                "websocket_canary_failures_total",
                &format!(r#"canary="c{i}",reason="connect_refused""#),
            )
            .unwrap_or(0.0)
        })
        .sum();
    // Backoff, not a retry storm: at most a handful of attempts per canary per outage second.
    assert!(
        attempts_during_outage < (CANARIES * 10) as f64,
        "{attempts_during_outage} attempts in {:?}",
        outage.elapsed()
    );

    let restarted = faulty::ws_at(addr, ticking_server_behaviour).await;
    let m = d
        .wait_for(Duration::from_secs(10), "recovery after restart", all_up)
        .await;
    assert!(restarted.accepted().len() >= CANARIES);
    for i in 0..CANARIES {
        let closed = sample(
            &m,
            "websocket_canary_reconnects_total",
            &format!(r#"canary="c{i}",reason="closed""#),
        )
        .unwrap_or(0.0);
        assert!(closed >= 1.0, "c{i} recorded the drop as closed");
        // A reconnect without resume starts a new sequence baseline: the restart is no gap.
        assert_eq!(
            sample(
                &m,
                "websocket_canary_sequence_gaps_total",
                &format!(r#"canary="c{i}""#)
            ),
            Some(0.0)
        );
    }
    d.stop().await;
}

/// Spawns the binary's daemon on `config`, returning the child and its base URL.
async fn spawn_daemon(config: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(support::BIN)
        .args([
            "daemon",
            "-c",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the daemon prints its address")
        .unwrap()
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn wait_metrics(base: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let url = format!("{base}/metrics");
    support::wait_for_metrics(&url, Duration::from_secs(10), what, check).await
}

#[tokio::test]
async fn sighup_reloads_keeps_the_old_config_when_invalid_and_sigterm_closes_with_1001() {
    let close_codes: Arc<Mutex<Vec<u16>>> = Arc::default();
    let seen = close_codes.clone();
    let server = faulty::ws(move |mut ws| {
        let seen = seen.clone();
        async move {
            let _ = futures_util::SinkExt::send(&mut ws, faulty::seq_msg(1)).await;
            while let Some(Ok(msg)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Close(frame) = msg {
                    seen.lock()
                        .unwrap()
                        .push(frame.map_or(1005, |f| u16::from(f.code)));
                }
            }
        }
    })
    .await;
    let canary = |name: &str| {
        format!(
            "  - name: {name}\n    url: {}\n    first_payload_within: 1s\n",
            server.url()
        )
    };
    let (dir, path) = support::config_file(&format!("canaries:\n{}", canary("first")));
    let (mut child, base) = spawn_daemon(&path).await;
    wait_metrics(&base, "first up", |m| {
        sample(m, "websocket_canary_up", r#"canary="first""#) == Some(1.0)
    })
    .await;

    std::fs::write(
        &path,
        "canaries:\n  - name: first\n    url: http://not-a-websocket\n",
    )
    .unwrap();
    signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = wait_metrics(&base, "still serving", |_| true).await;
    assert_eq!(
        sample(&m, "websocket_canary_up", r#"canary="first""#),
        Some(1.0),
        "old config kept"
    );

    std::fs::write(
        &path,
        format!("canaries:\n{}{}", canary("first"), canary("second")),
    )
    .unwrap();
    signal(&child, "-HUP");
    wait_metrics(&base, "second canary after reload", |m| {
        sample(m, "websocket_canary_up", r#"canary="second""#) == Some(1.0)
            && sample(m, "websocket_canary_up", r#"canary="first""#) == Some(1.0)
    })
    .await;
    assert!(
        close_codes.lock().unwrap().is_empty(),
        "the unchanged canary was not restarted"
    );

    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *close_codes.lock().unwrap(),
        vec![1001, 1001],
        "both canaries closed with going-away"
    );
    drop(dir);
}

/// Serves 5 messages per connection, then drops TCP. A `{"op":"resume","from":N}` as the
/// first message continues from `N + 1 - overlap`; without it, each connection starts at 1.
async fn resumable(mut ws: faulty::Ws, overlap: u64) {
    let first = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    let from = match first {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
            serde_json::from_str::<serde_json::Value>(t.as_str())
                .ok()
                .and_then(|v| v["from"].as_u64())
                .map_or(1, |n| n + 1 - overlap)
        }
        _ => 1,
    };
    let seqs: Vec<u64> = (from..from + 5).collect();
    send_seqs(&mut ws, &seqs, Duration::from_millis(20)).await;
}

fn resume_yaml(url: &str) -> String {
    format!(
        "canaries:\n  - name: r\n    url: {url}\n    first_payload_within: 1s\n    backoff: {{ initial: 50ms, max: 100ms }}\n    sequence: {{ pointer: /seq }}\n    resume: {{ send: '{{\"op\":\"resume\",\"from\":{{{{last_seq}}}}}}' }}\n"
    )
}

#[tokio::test]
async fn resume_after_reconnect_continues_the_sequence_without_gaps() {
    let server = faulty::ws(|ws| resumable(ws, 0)).await;
    let d = RunningDaemon::start(parse_config(&resume_yaml(&server.url()))).await;
    let m = d
        .wait_for(Duration::from_secs(10), "three resumed reconnects", |m| {
            sample(
                m,
                "websocket_canary_reconnects_total",
                r#"canary="r",reason="closed""#,
            )
            .unwrap_or(0.0)
                >= 3.0
                && sample(m, "websocket_canary_messages_total", r#"canary="r""#).unwrap_or(0.0)
                    >= 20.0
        })
        .await;
    assert_eq!(
        sample(&m, "websocket_canary_sequence_gaps_total", r#"canary="r""#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "websocket_canary_duplicates_total", r#"canary="r""#),
        Some(0.0),
        "{m}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_resume_that_replays_too_much_counts_duplicates() {
    let server = faulty::ws(|ws| resumable(ws, 1)).await;
    let d = RunningDaemon::start(parse_config(&resume_yaml(&server.url()))).await;
    let m = d
        .wait_for(Duration::from_secs(10), "duplicates from the replay", |m| {
            sample(m, "websocket_canary_duplicates_total", r#"canary="r""#).unwrap_or(0.0) >= 2.0
        })
        .await;
    assert_eq!(
        sample(&m, "websocket_canary_sequence_gaps_total", r#"canary="r""#),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "websocket_canary_failures_total",
            r#"canary="r",reason="sequence_duplicate""#
        )
        .unwrap()
            >= 2.0
    );
    d.stop().await;
}

/// Issue 12, defect 5: on a healthy daemon every canary family is declared and the series
/// dashboards and alerts read exist at zero, before anything has gone wrong.
#[tokio::test]
async fn a_healthy_daemon_exports_its_failure_reconnect_and_close_series_at_zero() {
    let feed = support::feed(20.0).await;
    let yaml = format!(
        "canaries:\n  - name: h\n    url: ws://{}/ws\n    sequence: {{ pointer: /seq }}\n",
        feed.addr
    );
    let d = RunningDaemon::start(parse_config(&yaml)).await;
    let m = d
        .wait_for(
            Duration::from_secs(10),
            "the canary up and receiving",
            |m| {
                sample(m, "websocket_canary_up", r#"canary="h""#) == Some(1.0)
                    && sample(
                        m,
                        "websocket_canary_last_message_age_seconds",
                        r#"canary="h""#,
                    )
                    .is_some()
            },
        )
        .await;
    for (name, labels) in [
        (
            "websocket_canary_failures_total",
            r#"canary="h",reason="closed""#,
        ),
        (
            "websocket_canary_failures_total",
            r#"canary="h",reason="sequence_gap""#,
        ),
        (
            "websocket_canary_reconnects_total",
            r#"canary="h",reason="closed""#,
        ),
        (
            "websocket_canary_closes_total",
            r#"canary="h",close_code="1006""#,
        ),
        ("websocket_canary_stalls_total", r#"canary="h""#),
    ] {
        assert_eq!(
            sample(&m, name, labels),
            Some(0.0),
            "{name}{{{labels}}}:\n{m}"
        );
    }
    // One zero series for the closes, not one per close code: 1006 only, until others occur.
    let closes: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with(r#"websocket_canary_closes_total{canary="h""#))
        .collect();
    assert_eq!(closes.len(), 1, "{closes:?}");
    // A check the canary does not have gets no series: the count stays bounded by the config.
    assert_eq!(
        sample(
            &m,
            "websocket_canary_failures_total",
            r#"canary="h",reason="stall""#
        ),
        None
    );
    for def in wsmon_catalog::CANARY_METRICS {
        let optional = [
            "websocket_canary_freshness_seconds",
            "websocket_canary_e2e_seconds",
            "websocket_canary_heartbeat_rtt_seconds",
            "websocket_canary_head_lag_messages",
            // Only canaries with `resume` have these.
            "websocket_canary_resumes_total",
            "websocket_canary_replayed_messages_total",
        ];
        if !optional.contains(&def.name) {
            assert!(
                m.contains(&format!("# TYPE {} ", def.name)),
                "{} declared:\n{m}",
                def.name
            );
        }
    }
    support::promtool_check(&m);
    d.stop().await;
}
