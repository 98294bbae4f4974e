//! `recycle`: the held stream replaced make-before-break, against the real feed. A recycle is
//! no reconnect, gap, duplicate or abnormal close; a failed one keeps the old stream.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::faulty::gate;
use support::{parse_config, series_at_start, value, RunningDaemon};
use wsmon_testkit::exposition::Scrape;

const RECYCLES: f64 = 4.0;

fn total(text: &str, name: &str) -> f64 {
    Scrape::parse(text).sum(name, &[("canary", "feed")])
}

/// Every series of each family in `names` is still at zero for the canary.
fn all_zero(text: &str, names: &[&str]) {
    for name in names {
        assert_eq!(total(text, name), 0.0, "{name}:\n{text}");
    }
}

/// Recycles every ~1 s against the feed at 50 messages/s and checks that the sequence never
/// noticed: `extra` is the rest of the canary's config (`resume` or nothing).
async fn recycles_leave_no_trace(extra: &str) {
    let feed = support::feed(50.0).await;
    let config = parse_config(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    first_payload_within: 3s\n    \
         sequence: {{ pointer: /seq }}\n    recycle: {{ every: 1s }}\n{extra}",
        feed.addr
    ));
    let d = RunningDaemon::start(config).await;
    let c = r#"canary="feed""#;
    let ok = r#"canary="feed",outcome="ok""#;
    let m = d
        .wait_for(
            Duration::from_secs(60),
            &format!("{RECYCLES} recycles"),
            |m| value(m, "websocket_canary_recycles_total", ok) >= RECYCLES,
        )
        .await;
    assert_eq!(
        value(
            &m,
            "websocket_canary_recycles_total",
            r#"canary="feed",outcome="failed""#
        ),
        0.0,
        "{m}"
    );
    all_zero(
        &m,
        &[
            "websocket_canary_sequence_gaps_total",
            "websocket_canary_missed_messages_total",
            "websocket_canary_duplicates_total",
            "websocket_canary_reconnects_total",
            "websocket_canary_closes_total",
            "websocket_canary_failures_total",
        ],
    );
    assert_eq!(value(&m, "websocket_canary_up", c), 1.0, "{m}");
    // About a second of messages per recycle, so the stream really flowed across them.
    assert!(
        value(&m, "websocket_canary_messages_total", c) >= RECYCLES * 40.0,
        "{m}"
    );
    // The feed saw each old stream closed by the canary with 1000.
    let server = Scrape::parse(&wsmon::export::prometheus::render(&feed.registry));
    let closes = [
        ("route", "/ws"),
        ("initiator", "client"),
        ("close_code", "1000"),
    ];
    assert!(
        server.sum("websocket_server_canary_closes_total", &closes) >= RECYCLES,
        "the feed saw fewer 1000 closes than recycles"
    );
    d.stop().await;
}

#[tokio::test]
async fn recycling_every_second_replaces_the_stream_with_no_gap_duplicate_or_reconnect() {
    recycles_leave_no_trace("").await;
}

#[tokio::test]
async fn recycling_a_resuming_canary_resumes_from_the_last_sequence_without_gaps() {
    recycles_leave_no_trace("    resume: { query: from }\n").await;
}

#[tokio::test]
async fn a_recycle_refused_an_upgrade_is_counted_failed_and_the_held_stream_flows_on() {
    let feed = support::feed(20.0).await;
    let refuse = Arc::new(AtomicBool::new(false));
    let gate = gate(feed.addr, refuse.clone()).await;
    let config = parse_config(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    connect_timeout: 2s\n    \
         first_payload_within: 2s\n    sequence: {{ pointer: /seq }}\n    recycle: {{ every: 300ms }}\n",
        gate.addr
    ));
    let d = RunningDaemon::start(config).await;
    let c = r#"canary="feed""#;
    let ok = r#"canary="feed",outcome="ok""#;
    let failed = r#"canary="feed",outcome="failed""#;
    let reason = r#"canary="feed",reason="handshake_status""#;
    let healthy = d
        .wait_for(Duration::from_secs(30), "a recycle that worked", |m| {
            value(m, "websocket_canary_recycles_total", ok) >= 1.0
        })
        .await;
    assert_eq!(
        value(&healthy, "websocket_canary_recycle_failures_total", reason),
        0.0,
        "the failure series exists at zero from the start"
    );

    refuse.store(true, Ordering::SeqCst);
    let refused = d
        .wait_for(Duration::from_secs(30), "the first refused recycle", |m| {
            value(m, "websocket_canary_recycles_total", failed) >= 1.0
        })
        .await;
    let ok_before = value(&refused, "websocket_canary_recycles_total", ok);
    let messages_before = value(&refused, "websocket_canary_messages_total", c);
    let m = d
        .wait_for(Duration::from_secs(30), "recycles failing with 400", |m| {
            value(m, "websocket_canary_recycle_failures_total", reason) >= 3.0
                && value(m, "websocket_canary_messages_total", c) > messages_before + 20.0
        })
        .await;
    assert!(
        value(&m, "websocket_canary_recycles_total", failed) >= 3.0,
        "{m}"
    );
    assert_eq!(
        value(&m, "websocket_canary_recycles_total", ok),
        ok_before,
        "{m}"
    );
    assert_eq!(
        value(&m, "websocket_canary_up", c),
        1.0,
        "the held stream is up:\n{m}"
    );
    // The held stream's own failures do not include the recycle's.
    all_zero(
        &m,
        &[
            "websocket_canary_reconnects_total",
            "websocket_canary_sequence_gaps_total",
            "websocket_canary_failures_total",
        ],
    );
    d.stop().await;
}

#[test]
fn recycle_takes_every_and_nothing_else() {
    let ok = parse_config(
        "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    recycle: { every: 15m }\n",
    );
    assert_eq!(
        ok.canaries[0].recycle.map(|r| r.every),
        Some(Duration::from_secs(900))
    );
    assert!(
        ok.render().contains("    recycle: { every: 15m }\n"),
        "{}",
        ok.render()
    );
}

/// docs/probe.md gives this figure.
#[test]
fn recycle_adds_twenty_four_series_from_the_start_to_a_plain_canary() {
    let plain = "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n";
    let with_recycle = format!("{plain}    recycle: {{ every: 15m }}\n");
    assert_eq!(series_at_start(&with_recycle) - series_at_start(plain), 24);
}
