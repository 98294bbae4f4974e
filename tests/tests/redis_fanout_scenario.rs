//! Cross-server fan-out under faults (issue 7, §3): two example-feed processes, A and B,
//! share one stream through a real Redis; a `wsmon-probe daemon` holds a canary on each and
//! publishes every nonce through A's `/publish`, so canary `b` sees A's publishes only through
//! Redis. A real Prometheus scrapes A, B and the daemon and evaluates alerts/ (every `for:`
//! divided by 60, as in `live_prometheus.rs`).
//!
//! Faults, in order, each shown by the canaries, the middleware metrics and the alerts:
//! 1. Redis is killed: B's stream stops, its nonces never arrive, and the stall, down and
//!    freshness-burn alerts fire for canary `b`;
//! 2. Redis comes back (empty): the recovery time to B's next message, next nonce and canary
//!    up is measured, and the canary alerts clear;
//! 3. B is `kill -9`'d: the canary records 1006 and reconnects with full-jitter exponential
//!    backoff (each delay under its doubling cap), then B restarts on the same port and the
//!    recovery is measured;
//! 4. a consumer on B stops reading during a burst published through A: B's slow-consumer
//!    gauge and overflow counter rise and WebSocketSlowConsumersSustained fires.
//!
//! The recovery times are printed (`cargo test -p wsmon-tests --test redis_fanout_scenario
//! -- --nocapture`); BENCHMARKS.md records a run.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use support::alerts::{assert_alerts_seen, assert_quiet_while_healthy, AlertLog, Expected};
use support::exposition::{scrape, Scrape};
use support::feed_process::FeedProcess;
use support::prober::ProberDaemon;
use support::prometheus::{Prometheus, ScrapeJob};
use support::{binaries, clients};
use tokio::time::{sleep, Instant};
use wsmon_testkit::redis::RedisServer;

const FEED_JOB: &str = "wsmon-feed";
const PROBE_JOB: &str = "wsmon-probe";
/// The daemon's backoff (see `support::prober::start`): the delay before reconnect attempt `n`
/// (0-based) is uniform in `[0, min(MAX, INITIAL·2^n))`.
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long B stays dead: long enough for several reconnect attempts and the down alert.
const B_DEAD_FOR: Duration = Duration::from_secs(10);

/// Both feeds: 5 ticks/s each into the shared stream. No server heartbeat, so the paused
/// consumer (which never answers a ping) stays connected long enough to be *sustained*; a
/// 64-message drop-oldest queue, so a short burst fills it and it stays full.
fn feed_args(redis: &RedisServer) -> Vec<String> {
    [
        "--redis",
        &redis.url(),
        "--rate",
        "5",
        "--heartbeat-secs",
        "0",
        "--queue-capacity",
        "64",
        "--overflow",
        "drop-oldest",
    ]
    .map(String::from)
    .to_vec()
}

/// One canary per feed; both publish through A.
fn canaries_yaml(a: SocketAddr, b: SocketAddr) -> String {
    [("a", a), ("b", b)]
        .iter()
        .map(|(name, addr)| {
            format!(
                r#"  - name: {name}
    url: ws://{addr}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    timestamp: {{ pointer: /ts, unit: ms }}
    max_silence: 3s
    heartbeat: {{ every: 1s, timeout: 3s }}
    publish:
      http: {{ url: 'http://{a}/publish', method: POST, body: '{{"nonce":"{{{{nonce}}}}"}}' }}
      every: 1s
      match: /nonce
      timeout: 3s
"#
            )
        })
        .collect()
}

/// Waits until a client of `feed` receives a tick with a non-zero sequence: the feed's Redis
/// subscription is live, so a canary connecting now gets a snapshot at the shared head.
async fn wait_until_relaying(feed: SocketAddr) {
    let mut ws = clients::connect(feed, None)
        .await
        .unwrap_or_else(|e| panic!("connect to the feed on {feed}: {e}"));
    let relayed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(msg)) = ws.next().await {
            let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) else {
                continue;
            };
            if v["type"] == "tick" && v["seq"].as_u64().is_some_and(|s| s > 0) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        relayed,
        Ok(true),
        "the feed on {feed} relays no ticks from Redis"
    );
}

/// The prober's own `/metrics`, read directly (finer than the 1s scrape).
struct Daemon<'a> {
    daemon: &'a ProberDaemon,
    http: reqwest::Client,
}

impl Daemon<'_> {
    async fn metrics(&self) -> Scrape {
        scrape(&self.http, self.daemon.addr)
            .await
            .expect("the prober serves /metrics")
    }

    /// `name{canary=…}` (summed over other labels).
    async fn canary(&self, name: &str, canary: &str) -> f64 {
        self.metrics().await.sum(name, &[("canary", canary)])
    }
}

/// When each sign of recovery first appeared, measured from the moment the fault was repaired.
#[derive(Debug, Default)]
struct Recovery {
    /// A data message reached the canary again.
    first_message: Option<Duration>,
    /// A nonce published through A arrived on the canary's stream.
    first_nonce: Option<Duration>,
    /// `websocket_canary_up` is 1 again.
    canary_up: Option<Duration>,
}

impl Recovery {
    fn complete(&self) -> bool {
        self.first_message.is_some() && self.first_nonce.is_some() && self.canary_up.is_some()
    }

    fn show(d: Option<Duration>) -> String {
        d.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
    }
}

/// Polls the daemon every 50ms (60s at most) until canary `canary` received a message, a
/// nonce and is up again, all counted after `repaired`; panics with `what` and the prober's
/// log if it does not recover.
async fn measure_recovery(
    daemon: &Daemon<'_>,
    canary: &str,
    repaired: Instant,
    what: &str,
) -> Recovery {
    let before = daemon.metrics().await;
    let messages = before.sum("websocket_canary_messages_total", &[("canary", canary)]);
    let nonces = before.sum("websocket_canary_e2e_seconds_count", &[("canary", canary)]);
    let mut r = Recovery::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !r.complete() && Instant::now() < deadline {
        let now = daemon.metrics().await;
        let at = repaired.elapsed();
        let c = [("canary", canary)];
        if r.first_message.is_none() && now.sum("websocket_canary_messages_total", &c) > messages {
            r.first_message = Some(at);
        }
        if r.first_nonce.is_none() && now.sum("websocket_canary_e2e_seconds_count", &c) > nonces {
            r.first_nonce = Some(at);
        }
        if r.canary_up.is_none() && now.sum("websocket_canary_up", &c) == 1.0 {
            r.canary_up = Some(at);
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        r.complete(),
        "canary {canary} did not recover after {what}: {r:?}\nprober log:\n{}",
        daemon.daemon.log_text()
    );
    r
}

/// The value of a PromQL query that returns one series, if it does.
async fn single_value(prom: &Prometheus, q: &str) -> Option<f64> {
    match prom.query(q).await.ok()?.as_slice() {
        [one] => Some(one.value),
        _ => None,
    }
}

/// `sum(metric{instance=…})` as Prometheus last scraped it.
async fn sum_on_instance(prom: &Prometheus, metric: &str, instance: &str) -> Option<f64> {
    single_value(prom, &format!(r#"sum({metric}{{instance="{instance}"}})"#)).await
}

/// Publishes one ~64 KiB object through the feed's `/publish`.
async fn publish_bulk(http: &reqwest::Client, feed: SocketAddr, pad: &str) -> u16 {
    http.post(format!("http://{feed}/publish"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"type":"bulk","pad":"{pad}"}}"#))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fanout_faults_show_in_canaries_metrics_and_alerts_and_recovery_is_measured() {
    let probe_bin = binaries::wsmon_probe();
    let feed_bin = binaries::example_feed();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();

    // --- Redis, A and B, the prober (once B relays), Prometheus ---
    let mut redis = RedisServer::start().await;
    let a = FeedProcess::start(&feed_bin, dir.path(), "a", &feed_args(&redis)).await;
    let mut b = FeedProcess::start(&feed_bin, dir.path(), "b", &feed_args(&redis)).await;
    wait_until_relaying(b.addr).await;
    let probe = support::prober::start(&probe_bin, &canaries_yaml(a.addr, b.addr)).await;
    let daemon = Daemon {
        daemon: &probe,
        http: reqwest::Client::new(),
    };
    let prom = Prometheus::start_with_wsmon_rules(
        dir.path(),
        &[
            ScrapeJob::new(FEED_JOB).targets(&[a.addr, b.addr], &[]),
            ScrapeJob::new(PROBE_JOB).targets(&[probe.addr], &[]),
        ],
    )
    .await;
    prom.wait_for_targets_up(3).await;
    let (a_instance, b_instance) = (a.addr.to_string(), b.addr.to_string());

    // Both canaries up, and nonces published through A arrive on both streams.
    let healthy = support::eventually(Duration::from_secs(30), Duration::from_secs(1), || async {
        let up = prom.query("websocket_canary_up == 1").await.ok()?;
        let nonces = prom
            .query("websocket_canary_e2e_seconds_count > 0")
            .await
            .ok()?;
        (up.len() == 2 && nonces.len() == 2).then_some(())
    })
    .await;
    assert!(
        healthy.is_some(),
        "both canaries should be up and receive A's nonces: up {:?}, e2e {:?}\nprober log:\n{}",
        prom.query("websocket_canary_up").await,
        prom.query("websocket_canary_e2e_seconds_count").await,
        probe.log_text()
    );

    // --- healthy: 15s with nothing pending or firing ---
    assert_quiet_while_healthy(
        &prom,
        &mut AlertLog::default(),
        Duration::from_secs(15),
        "healthy fan-out",
    )
    .await;

    // --- 1. Redis dies ---
    let before = daemon.metrics().await;
    let b_timeouts_before = before.sum(
        "websocket_canary_publish_timeouts_total",
        &[("canary", "b")],
    );
    redis.kill();
    let mut log = AlertLog::default();
    let expected = [
        Expected::new("WebSocketCanaryStalled", "canary", "b", "B relays nothing").firing(),
        Expected::new("WebSocketCanaryDown", "canary", "b", "B's canary stalled").firing(),
        Expected::new(
            "WebSocketCanaryFreshnessBudgetBurnFast",
            "canary",
            "b",
            "nonces published through A never reach B",
        )
        .firing(),
    ];
    let outage = Duration::from_secs(120);
    assert_alerts_seen(&prom, &mut log, &expected, outage, "Redis down").await;
    // The canaries: B's nonces time out; A's publishes are refused (503, publish_error).
    let during = daemon.metrics().await;
    let b_timeouts = during.sum(
        "websocket_canary_publish_timeouts_total",
        &[("canary", "b")],
    );
    assert!(
        b_timeouts > b_timeouts_before,
        "B's nonces must time out while Redis is down ({b_timeouts_before} → {b_timeouts})"
    );
    let a_publish_errors = during.sum(
        "websocket_canary_failures_total",
        &[("canary", "a"), ("reason", "publish_error")],
    );
    assert!(
        a_publish_errors > 0.0,
        "A must refuse publishes without Redis (publish_error)"
    );
    // The middleware: B still holds its client but has sent it no data message for 10s.
    let b_sent = single_value(
        &prom,
        &format!(
            r#"sum(increase(websocket_server_messages_total{{instance="{b_instance}",direction="transmit",frame_type="text"}}[10s]))"#
        ),
    )
    .await;
    assert_eq!(
        b_sent,
        Some(0.0),
        "B's stream must be stopped without Redis"
    );
    let b_clients =
        sum_on_instance(&prom, "websocket_server_active_connections", &b_instance).await;
    assert!(
        b_clients.is_some_and(|n| n >= 1.0),
        "B keeps its clients connected while Redis is down: {b_clients:?}"
    );
    let redis_outage_alerts = log.report();

    // --- 2. Redis comes back (empty, on the same port) ---
    redis.restart().await;
    let redis_restored = Instant::now();
    let after_redis = measure_recovery(&daemon, "b", redis_restored, "Redis returned").await;
    let alerts_cleared =
        support::eventually(Duration::from_secs(30), Duration::from_secs(1), || async {
            let active = prom.alerts().await.ok()?;
            (!active.iter().any(|al| {
                al.labels.get("canary").is_some_and(|c| c == "b")
                    && matches!(al.name(), "WebSocketCanaryStalled" | "WebSocketCanaryDown")
            }))
            .then_some(())
        })
        .await;
    assert!(
        alerts_cleared.is_some(),
        "the stall and down alerts for b must clear once it recovers: {:?}",
        prom.alerts().await
    );

    let missed_after_redis = daemon
        .canary("websocket_canary_missed_messages_total", "b")
        .await;

    // --- 3. kill -9 B ---
    let closes_1006 = |s: &Scrape| {
        s.sum(
            "websocket_canary_closes_total",
            &[("canary", "b"), ("close_code", "1006")],
        )
    };
    let before = daemon.metrics().await;
    let delays_before = probe.reconnect_delays("b").len();
    let reconnects_before = before.sum("websocket_canary_reconnects_total", &[("canary", "b")]);
    b.kill_9().await;
    let b_killed = Instant::now();
    // Every reconnect attempt while B is dead, as seen on the daemon's /metrics.
    let mut attempts: Vec<Duration> = Vec::new();
    let mut counted = reconnects_before;
    while b_killed.elapsed() < B_DEAD_FOR {
        let n = daemon
            .canary("websocket_canary_reconnects_total", "b")
            .await;
        if n > counted {
            let at = b_killed.elapsed();
            attempts.extend((0..(n - counted) as usize).map(|_| at));
            counted = n;
        }
        sleep(Duration::from_millis(25)).await;
    }
    let during = daemon.metrics().await;
    assert!(
        closes_1006(&during) > closes_1006(&before),
        "B died without a close frame: the canary must record 1006"
    );
    assert!(
        during.sum(
            "websocket_canary_reconnects_total",
            &[("canary", "b"), ("reason", "connect_refused")]
        ) > 0.0,
        "reconnects to a dead B fail with connect_refused"
    );
    let b_scrape_up = single_value(
        &prom,
        &format!(r#"up{{job="{FEED_JOB}",instance="{b_instance}"}}"#),
    )
    .await;
    assert_eq!(b_scrape_up, Some(0.0), "Prometheus sees B's /metrics gone");
    let mut log = AlertLog::default();
    let down = [Expected::new(
        "WebSocketCanaryDown",
        "canary",
        "b",
        "B killed",
    )];
    assert_alerts_seen(&prom, &mut log, &down, Duration::from_secs(20), "B dead").await;
    let kill_alerts = log.report();

    b.restart().await;
    let b_restarted = Instant::now();
    let after_kill = measure_recovery(&daemon, "b", b_restarted, "B restarted").await;
    // Backoff: while B was dead the canary retried a few times, not in a hot loop, and each
    // delay was full jitter under a cap that doubles from 200ms up to 2s.
    assert!(
        (3..=40).contains(&attempts.len()),
        "{} reconnect attempts in {B_DEAD_FOR:?}: {attempts:?}",
        attempts.len()
    );
    let delays: Vec<Duration> = probe.reconnect_delays("b")[delays_before..].to_vec();
    assert!(
        delays.len() >= attempts.len(),
        "the daemon logged {} delays for {} attempts",
        delays.len(),
        attempts.len()
    );
    for (n, d) in delays.iter().enumerate() {
        let cap = BACKOFF_INITIAL
            .saturating_mul(1 << n.min(16))
            .min(BACKOFF_MAX);
        assert!(
            *d <= cap,
            "reconnect {n} waited {d:?}, above its backoff cap {cap:?}: {delays:?}"
        );
    }
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(
        distinct.len() > 1,
        "jittered delays should differ: {delays:?}"
    );

    // --- 4. a consumer on B stops reading while a burst is published through A ---
    let paused = clients::never_reader(b.addr).await;
    let http = reqwest::Client::new();
    let pad = "x".repeat(64 * 1024);
    let slow_on_b = |s: &Scrape| s.sum("websocket_server_slow_consumers", &[]);
    let mut published = 0;
    let mut extra_after_slow = None;
    while published < 2000 && extra_after_slow != Some(0) {
        assert_eq!(
            publish_bulk(&http, a.addr, &pad).await,
            200,
            "A accepts the burst"
        );
        published += 1;
        if published % 10 == 0 && extra_after_slow.is_none() {
            let b_metrics = scrape(&http, b.addr).await.expect("B serves /metrics");
            if slow_on_b(&b_metrics) >= 1.0 {
                // Enough more to overflow its 64-message queue, too.
                extra_after_slow = Some(80);
            }
        }
        extra_after_slow = extra_after_slow.map(|n: u32| n - 1);
    }
    let b_metrics = scrape(&http, b.addr).await.expect("B serves /metrics");
    assert!(
        slow_on_b(&b_metrics) >= 1.0,
        "after {published} 64 KiB messages the paused consumer is not a slow consumer on B"
    );
    assert!(
        b_metrics.sum(
            "websocket_server_outbound_overflows_total",
            &[("action", "drop")]
        ) > 0.0,
        "the paused consumer's queue must overflow (drop-oldest)"
    );
    let mut log = AlertLog::default();
    let slow = [Expected::new(
        "WebSocketSlowConsumersSustained",
        "instance",
        b_instance.clone(),
        "a paused consumer on B",
    )
    .firing()];
    let paused_for = Duration::from_secs(60);
    assert_alerts_seen(&prom, &mut log, &slow, paused_for, "a paused consumer").await;
    let slow_in_prometheus =
        sum_on_instance(&prom, "websocket_server_slow_consumers", &b_instance).await;
    assert!(
        slow_in_prometheus.is_some_and(|n| n >= 1.0),
        "Prometheus sees B's slow consumer: {slow_in_prometheus:?}"
    );
    drop(paused);

    // --- report ---
    let missed_at_end = daemon
        .canary("websocket_canary_missed_messages_total", "b")
        .await;
    let row = |fault: &str, r: &Recovery| {
        format!(
            "| {fault} | {} | {} | {} |",
            Recovery::show(r.first_message),
            Recovery::show(r.first_nonce),
            Recovery::show(r.canary_up)
        )
    };
    let attempts_shown: Vec<String> = attempts
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    let delays_shown: Vec<String> = delays.iter().map(|d| d.as_millis().to_string()).collect();
    println!(
        "\ncross-server fan-out recovery (canary b, measured from the repair; the prober \
         publishes one nonce a second)\n\
         | fault repaired | first message on B | first nonce via A on B | canary up |\n\
         |---|---|---|---|\n{}\n{}\n\n\
         kill -9 B: {} reconnect attempts in {B_DEAD_FOR:?}, at [{}] s after the kill; \
         delays chosen [{}] ms\n\
         paused consumer: slow after {published} 64 KiB publishes through A\n\
         canary b's missed messages (cumulative): {missed_after_redis} once the Redis alerts cleared, \
         {missed_at_end} at the end\n\
         alerts with Redis down:\n{redis_outage_alerts}\nalerts with B dead:\n{kill_alerts}\n\
         alerts with a paused consumer:\n{}\n\
         A {a_instance}, B {b_instance}; scenario took {:.0?}",
        row("Redis restarted (empty)", &after_redis),
        row("B restarted after kill -9", &after_kill),
        attempts.len(),
        attempts_shown.join(", "),
        delays_shown.join(", "),
        log.report(),
        started.elapsed()
    );
    prom.stop().await;
    probe.stop().await;
}
