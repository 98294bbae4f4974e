//! The bundle's proof (issue 4): a real Prometheus scrapes the example feed and a
//! `wsmon-probe daemon`, evaluates the rules from alerts/, and
//! - stays quiet while everything is healthy;
//! - raises the expected alerts (pending or firing) under abrupt client drops, foreign-origin
//!   upgrades, slow consumers, slow snapshots, a sequence-gap burst and a stalled feed;
//! - answers every query of every dashboard panel and template variable with data (one
//!   client resumes with `?from=`, so that the resume row has a resume to count);
//! - raises the absence alerts when the targets go away.
//!
//! Prometheus scrapes and evaluates every second. Its rules are a generated copy of alerts/
//! in which every `for:` is divided by 60 (see `rules::write_with_scaled_for`); expressions
//! and thresholds are the production ones.
//!
//! Every step waits for an event (a counted gap, an alert seen, a query with data) with a
//! generous deadline, and the faults last until their alerts are seen, so that a loaded
//! machine only makes the run longer. Measured with both cores kept busy (`stress-ng --cpu 2`,
//! alongside other builds) on the 2-core CI-sized machine: the scenario took 77 s, and
//! `cargo test -p wsmon-tests --test live_prometheus` 338 s in all, most of it rebuilding
//! `wsmon-probe` under that load.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::alerts::{assert_alerts_seen, assert_quiet_while_healthy, AlertLog, Expected};
use support::clients;
use support::exposition::{scrape, Scrape};
use support::prometheus::{Prometheus, ScrapeJob};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use wsmon::{Heartbeat, OverflowPolicy, QueueConfig};
use wsmon_feed::{Feed, FeedConfig};
use wsmon_testkit::canary::{equipped_canary, Pace};
use wsmon_testkit::feed::FeedServer;
use wsmon_tests::dashboard::Dashboard;
use wsmon_tests::{promql, repo};

const ALLOWED_ORIGIN: &str = "http://wsmon.test";
const FOREIGN_ORIGIN: &str = "http://evil.example";
const FEED_JOB: &str = "wsmon-feed";
const PROBE_JOB: &str = "wsmon-probe";

/// The main feed: ticks at 10/s, refuses foreign origins, a 64-message DropOldest queue and no
/// server heartbeat (a slow consumer would otherwise be cut off for late pongs before it can
/// show as a sustained slow consumer).
fn main_feed_config() -> FeedConfig {
    FeedConfig {
        rate: 10.0,
        allowed_origins: vec![ALLOWED_ORIGIN.to_string()],
        queue: QueueConfig::default()
            .capacity(64)
            .policy(OverflowPolicy::DropOldest),
        heartbeat: None,
        ..FeedConfig::default()
    }
}

/// The second feed: its ticker is driven (and paused) by the test, a 4-message queue so that a
/// burst overflows it, and 1s heartbeats (ping RTT, and a timeout for a client that never reads).
fn stalling_feed_config() -> FeedConfig {
    FeedConfig {
        rate: 0.0,
        queue: QueueConfig::default()
            .capacity(4)
            .policy(OverflowPolicy::DropOldest),
        heartbeat: Some(Heartbeat::every(Duration::from_secs(1))),
        ..FeedConfig::default()
    }
}

/// A feed whose snapshot takes 1.5s: no client connects to it until the fault phase.
fn slow_snapshot_feed_config() -> FeedConfig {
    FeedConfig {
        first_payload_delay: Duration::from_millis(1500),
        ..FeedConfig::default()
    }
}

fn canaries_yaml(main: SocketAddr, stalling: SocketAddr) -> String {
    let main_addr = main;
    let pace = Pace {
        every: "1s",
        timeout: "3s",
        max_silence: "5s",
    };
    // The main feed is never restarted, so its canary can resume by URL: the resume row then
    // has the prober's series too; its fresh-connection checks fill the connect-check panels.
    // A third canary on the main feed recycles its stream and fills the recycling row (on
    // the main canary its resumes would change the resume counts asserted below).
    let main = format!(
        "{}    resume: {{ query: from }}\n    connect_check: {{ every: 2s }}\n",
        equipped_canary("main", main, pace)
    );
    format!(
        r#"{main}  - name: stalling
    url: ws://{stalling}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    timestamp: {{ pointer: /ts, unit: ms }}
    max_silence: 3s
    heartbeat: {{ every: 1s, timeout: 3s }}
  - name: recycled
    url: ws://{main_addr}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    recycle: {{ every: 4s }}
"#
    )
}

/// Runs every panel query and every template variable of both dashboards against Prometheus,
/// with "All" selected; returns the ones that produced no finite value.
async fn dashboard_queries_without_data(prom: &Prometheus) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut empty = Vec::new();
    for d in Dashboard::load_all(&repo::dashboards_dir()).unwrap() {
        for q in d.queries() {
            let expr = promql::expand_template_variables(
                &promql::expand_grafana_macros(&q.expr, "5m"),
                &["job", "instance", "route", "canary"],
                ".+",
            );
            checked += 1;
            match prom.query(&expr).await {
                Ok(samples) if samples.iter().any(|s| s.value.is_finite()) => {}
                Ok(samples) => empty.push(format!(
                    "{}: panel {:?} query {}: {} series, none finite: {expr}",
                    d.file_name(),
                    q.panel,
                    q.ref_id,
                    samples.len()
                )),
                Err(e) => empty.push(format!(
                    "{}: panel {:?} query {}: {e}",
                    d.file_name(),
                    q.panel,
                    q.ref_id
                )),
            }
        }
        for v in d.label_values_variables().unwrap() {
            let selector = promql::expand_template_variables(
                &v.selector,
                &["job", "instance", "route", "canary"],
                ".+",
            );
            checked += 1;
            match prom.label_values(&v.label, &selector).await {
                Ok(values) if !values.is_empty() => {}
                other => empty.push(format!(
                    "{}: variable {}: label_values({selector}, {}) gave {other:?}",
                    d.file_name(),
                    v.name,
                    v.label
                )),
            }
        }
    }
    (checked, empty)
}

/// Broadcasts 64 KiB objects at 10/s: enough bytes to fill a stuck client's socket buffers
/// quickly, so that its outbound queue (not the kernel) holds the backlog.
fn bulk_publisher(feed: Arc<Feed>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pad = "x".repeat(64 * 1024);
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            let mut object = serde_json::Map::new();
            object.insert("type".into(), "bulk".into());
            object.insert("pad".into(), pad.clone().into());
            feed.hub().publish_object(object);
        }
    })
}

/// Accepted upgrades a second that the abrupt drops hold on the main feed. The storm alert
/// compares the 5m rate with its mean over the run so far (a 40 s healthy history here), so
/// it needs about 300 upgrades within its first 25 s, over 10 a second: a target with margin.
const STORM_UPGRADES_PER_SECOND: f64 = 25.0;
/// Concurrent dropping clients at most.
const STORM_CLIENTS_MAX: usize = 48;

/// Abrupt drops (connect, first message, TCP reset) on `feed` while `on` is set: one client
/// at first, then one more every half second while the feed's own count of accepted
/// upgrades shows fewer than [`STORM_UPGRADES_PER_SECOND`]. A fixed number of clients would
/// give a rate that depends on how busy the machine is. Returns the number of drops.
fn reconnect_storm(feed: &FeedServer, on: Arc<AtomicBool>) -> JoinHandle<u32> {
    let (addr, registry) = (feed.addr, feed.registry.clone());
    let accepted = move || {
        Scrape::parse(&wsmon::export::prometheus::render(&registry)).sum(
            wsmon::catalog::UPGRADES_TOTAL.name,
            &[("outcome", "accepted")],
        )
    };
    tokio::spawn(async move {
        let dropped = Arc::new(AtomicU32::new(0));
        let mut clients: Vec<JoinHandle<()>> = Vec::new();
        let mut last = (Instant::now(), accepted());
        while on.load(Ordering::Relaxed) {
            let now = (Instant::now(), accepted());
            let rate = (now.1 - last.1) / (now.0 - last.0).as_secs_f64().max(0.001);
            last = now;
            if (clients.is_empty() || rate < STORM_UPGRADES_PER_SECOND)
                && clients.len() < STORM_CLIENTS_MAX
            {
                let (on, dropped) = (on.clone(), dropped.clone());
                clients.push(tokio::spawn(async move {
                    while on.load(Ordering::Relaxed) {
                        if clients::abrupt_drop(addr).await.is_ok() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        sleep(Duration::from_millis(50)).await;
                    }
                }));
            }
            sleep(Duration::from_millis(500)).await;
        }
        for c in clients {
            let _ = c.await;
        }
        dropped.load(Ordering::Relaxed)
    })
}

/// Ticks the stalling feed at 10/s while `running` is set.
fn controlled_ticker(feed: Arc<Feed>, running: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            if running.load(Ordering::Relaxed) {
                feed.hub().publish_tick();
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_every_panel_and_the_expected_alerts_under_real_faults() {
    let probe_bin = support::binaries::wsmon_probe();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();

    // --- the services, and healthy clients connected before the first scrape, so that the
    // reconnect-storm baseline starts from a steady state ---
    let main = FeedServer::start(main_feed_config()).await;
    let stalling = FeedServer::start(stalling_feed_config()).await;
    let slow_snapshot = FeedServer::start(slow_snapshot_feed_config()).await;
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = controlled_ticker(stalling.feed.clone(), ticking.clone());
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    for _ in 0..4 {
        background.push(clients::healthy_reader(main.addr));
    }
    for _ in 0..2 {
        background.push(clients::healthy_reader(stalling.addr));
    }
    let daemon = support::prober::start(&probe_bin, &canaries_yaml(main.addr, stalling.addr)).await;

    // --- Prometheus with a for-scaled copy of the rules ---
    let prom = Prometheus::start_with_wsmon_rules(
        dir.path(),
        &[
            ScrapeJob::new(FEED_JOB).targets(&[main.addr, stalling.addr, slow_snapshot.addr], &[]),
            ScrapeJob::new(PROBE_JOB).targets(&[daemon.addr], &[]),
        ],
    )
    .await;
    prom.wait_for_targets_up(4).await;
    let canaries_up =
        support::eventually(Duration::from_secs(20), Duration::from_secs(1), || async {
            let up = prom.query("websocket_canary_up == 1").await.ok()?;
            (up.len() == 3).then_some(())
        })
        .await;
    assert!(
        canaries_up.is_some(),
        "all three canaries should be up on healthy feeds: {:?}\nprober log:\n{}",
        prom.query("websocket_canary_up").await,
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );

    // --- one client resumes on the main feed (`GET /ws?from=N`): the resume row's miss ratio
    // needs a resume to divide by. A hit, so no resume alert is due. ---
    let from = support::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let head = main.feed.hub().head();
            (head >= 10).then_some(head - 5)
        },
    )
    .await
    .expect("the main feed publishes ticks");
    assert_eq!(
        clients::resume_then_close(main.addr, from).await,
        Ok(from + 1),
        "a resume from {from} starts with the next sequence"
    );
    let resumed = support::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let metrics = Scrape::parse(&wsmon::export::prometheus::render(&main.registry));
            let hits = metrics.sum(wsmon::catalog::RESUMES_TOTAL.name, &[("outcome", "hit")]);
            let replayed = metrics.sum(wsmon::catalog::REPLAYED_MESSAGES_TOTAL.name, &[]);
            (hits == 1.0 && replayed >= 5.0).then_some(())
        },
    )
    .await;
    assert!(
        resumed.is_some(),
        "the main feed did not count one resume hit with at least 5 replayed messages"
    );

    // --- healthy run: 30s of normal traffic, no alert pending or firing ---
    let mut log = AlertLog::default();
    assert_quiet_while_healthy(&prom, &mut log, Duration::from_secs(30), "healthy run").await;

    // --- faults, all at once, each aimed at different alerts. The fault generators run until
    // every expected alert has been seen, not for a fixed time: on a loaded machine each
    // scrape and evaluation may come late. ---
    let faults_on = Arc::new(AtomicBool::new(true));
    // 1. Abrupt client drops from as many clients as it takes to hold the storm's rate.
    let drops = reconnect_storm(&main, faults_on.clone());
    // 2. Upgrades from a foreign origin, refused with 403.
    assert_eq!(
        clients::upgrade_with_origin(main.addr, FOREIGN_ORIGIN).await,
        Some(403),
        "the feed must refuse a foreign origin"
    );
    let rejections = {
        let addr = main.addr;
        let on = faults_on.clone();
        tokio::spawn(async move {
            while on.load(Ordering::Relaxed) {
                clients::upgrade_with_origin(addr, FOREIGN_ORIGIN).await;
                sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // 3. Slow consumers: two clients that stop reading, then read 5 messages a second of a
    //    20/s stream of mostly 64 KiB messages.
    background.push(bulk_publisher(main.feed.clone()));
    for _ in 0..2 {
        background.push(clients::slow_reader(
            main.addr,
            Duration::from_secs(8),
            Duration::from_millis(200),
        ));
    }
    // 4. A burst on the stalling feed that overflows its 4-message queues: the canary misses
    //    messages. The prober confirms a gap only after `reorder_window` (4) more messages or
    //    at the end of the stream; if the canary's writer got no CPU during the burst, all it
    //    receives is the queue's last 4 messages, so the ticker keeps going until the daemon
    //    has counted the gap. Then 5. the feed stalls: no more ticks.
    for _ in 0..3000 {
        stalling.feed.hub().publish_tick();
    }
    let http = reqwest::Client::new();
    let gap_counted = support::eventually(
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let metrics = scrape(&http, daemon.addr).await?;
            let gaps = metrics.sum(
                wsmon_catalog::CANARY_SEQUENCE_GAPS_TOTAL.name,
                &[("canary", "stalling")],
            );
            (gaps > 0.0).then_some(())
        },
    )
    .await;
    assert!(
        gap_counted.is_some(),
        "the stalling canary counted no sequence gap after a 3000-message burst into 4-message \
         queues\nprober log:\n{}",
        daemon.log_text()
    );
    ticking.store(false, Ordering::Relaxed);
    // 6. New clients wait 1.5s for their first message on the slow-snapshot feed.
    let slow_snapshots = {
        let addr = slow_snapshot.addr;
        let on = faults_on.clone();
        tokio::spawn(async move {
            while on.load(Ordering::Relaxed) {
                tokio::spawn(clients::wait_for_first_message_then_close(addr));
                sleep(Duration::from_millis(500)).await;
            }
        })
    };
    // A client that never reads (nor answers pings) on the heartbeat-enabled feed.
    let deaf = clients::never_reader(stalling.addr).await;

    let main_instance = main.addr.to_string();
    let expected = [
        Expected::new(
            "WebSocketAbnormalClosesHigh",
            "instance",
            main_instance.clone(),
            "abrupt drops",
        ),
        Expected::new(
            "WebSocketReconnectStorm",
            "job",
            FEED_JOB,
            "abrupt drops reconnecting",
        ),
        Expected::new(
            "WebSocketUpgradeRejectionRatioHigh",
            "instance",
            main_instance.clone(),
            "foreign origins",
        ),
        Expected::new(
            "WebSocketSlowConsumersSustained",
            "instance",
            main_instance.clone(),
            "slow consumers",
        ),
        Expected::new(
            "WebSocketSequencerLagHigh",
            "instance",
            main_instance.clone(),
            "slow consumers",
        ),
        Expected::new(
            "WebSocketFirstPayloadLatencyHigh",
            "instance",
            slow_snapshot.addr.to_string(),
            "slow snapshots",
        ),
        Expected::new(
            "WebSocketCanarySequenceGaps",
            "canary",
            "stalling",
            "burst overflow",
        ),
        Expected::new("WebSocketCanaryDown", "canary", "stalling", "stalled feed"),
        Expected::new(
            "WebSocketCanaryStalled",
            "canary",
            "stalling",
            "stalled feed",
        ),
    ];
    assert_alerts_seen(
        &prom,
        &mut log,
        &expected,
        Duration::from_secs(100),
        "faults",
    )
    .await;
    faults_on.store(false, Ordering::Relaxed);
    // The canary on the healthy feed is never reported down or stalled.
    for a in log.0.values() {
        let on_main_canary = a.labels.get("canary").is_some_and(|c| c == "main");
        assert!(
            !(on_main_canary
                && matches!(a.name(), "WebSocketCanaryDown" | "WebSocketCanaryStalled")),
            "the main canary's feed never stalled: {a}"
        );
    }
    let dropped = drops.await.unwrap();
    assert!(dropped > 100, "only {dropped} abrupt drops");
    rejections.await.unwrap();
    slow_snapshots.await.unwrap();

    // --- the stalling feed restarts (on the same address, with a working ticker): the canary
    //     sees the close, reconnects with a reason, and gets a first payload again ---
    drop(deaf);
    ticker.abort();
    let stalling_addr = stalling.addr;
    stalling.shutdown().await;
    let restarted = FeedServer::start_on(
        stalling_addr,
        FeedConfig {
            rate: 10.0,
            ..stalling_feed_config()
        },
    )
    .await;
    let recovered =
        support::eventually(Duration::from_secs(60), Duration::from_secs(1), || async {
            let reconnects = prom
                .query(r#"websocket_canary_reconnects_total{canary="stalling"} > 0"#)
                .await
                .ok()?;
            let up = prom
                .query(r#"websocket_canary_up{canary="stalling"} == 1"#)
                .await
                .ok()?;
            (!reconnects.is_empty() && !up.is_empty()).then_some(())
        })
        .await;
    assert!(
        recovered.is_some(),
        "the stalling canary did not reconnect to the restarted feed: reconnects {:?}, up {:?}",
        prom.query("websocket_canary_reconnects_total").await,
        prom.query("websocket_canary_up").await
    );
    // Until every counter the recovery touched has two samples in Prometheus: polled, since
    // a loaded machine delays scrapes.
    let mut last = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        last = dashboard_queries_without_data(&prom).await;
        if last.1.is_empty() {
            break;
        }
        sleep(Duration::from_secs(1)).await;
    }
    let (checked, without_data) = last;
    assert!(checked > 40, "only {checked} dashboard queries");
    assert!(
        without_data.is_empty(),
        "dashboard queries without data:\n{}",
        without_data.join("\n")
    );

    // --- absence: the prober and the last feed go away ---
    for task in background {
        task.abort();
    }
    daemon.stop().await;
    main.shutdown().await;
    restarted.shutdown().await;
    slow_snapshot.shutdown().await;
    let absent = [
        Expected::new(
            "WebSocketServerMetricsAbsent",
            "severity",
            "warning",
            "feeds stopped",
        ),
        Expected::new(
            "WebSocketCanaryMetricsAbsent",
            "severity",
            "warning",
            "prober stopped",
        ),
    ];
    assert_alerts_seen(&prom, &mut log, &absent, Duration::from_secs(30), "absence").await;
    assert!(
        !log.0.values().any(|a| a.name() == "WsmonThresholdsMissing"),
        "thresholds were loaded"
    );
    prom.stop().await;
    eprintln!(
        "live scenario done in {:?}; alerts seen:\n{}",
        started.elapsed(),
        log.report()
    );
}
