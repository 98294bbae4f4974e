//! `connect_check`: fresh connections beside the held stream, reported on their own. Against
//! the real feed behind a gate that, once flipped, answers every new connection with 400 while
//! the connections it already relays keep flowing (what `nginx -s reload` into a config that
//! drops the `Upgrade` headers does: the old worker keeps the held stream).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::faulty::gate;
use support::{parse_config, series_at_start, value, RunningDaemon};
use wsmon_testkit::exposition::Scrape;

#[tokio::test]
async fn refused_new_connections_fail_the_check_while_the_held_stream_stays_up() {
    let feed = support::feed(20.0).await;
    let refuse = Arc::new(AtomicBool::new(false));
    let gate = gate(feed.addr, refuse.clone()).await;
    let config = parse_config(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    connect_timeout: 2s\n    \
         first_payload_within: 2s\n    connect_check: {{ every: 300ms }}\n",
        gate.addr
    ));
    let d = RunningDaemon::start(config).await;
    let c = r#"canary="feed""#;
    let healthy = d
        .wait_for(
            Duration::from_secs(15),
            "a held stream and passing checks",
            |m| {
                value(m, "websocket_canary_up", c) == 1.0
                    && value(m, "websocket_canary_connect_check_up", c) == 1.0
                    && value(m, "websocket_canary_connect_checks_total", c) >= 2.0
            },
        )
        .await;
    let reason = r#"canary="feed",reason="handshake_status""#;
    assert_eq!(
        value(
            &healthy,
            "websocket_canary_connect_check_failures_total",
            reason
        ),
        0.0,
        "the failure series exists at zero from the start"
    );
    assert!(value(&healthy, "websocket_canary_connect_check_seconds_count", c) >= 2.0);
    // The server saw each check as a canary connection that upgraded, got its first payload
    // and was closed by the canary with 1000.
    let server = Scrape::parse(&wsmon::export::prometheus::render(&feed.registry));
    let route = ("route", "/ws");
    let check_closes = [route, ("initiator", "client"), ("close_code", "1000")];
    assert!(server.sum("websocket_server_canary_closes_total", &check_closes) >= 1.0);
    let reconnects_before = value(
        &healthy,
        "websocket_canary_reconnects_total",
        r#"canary="feed",reason="closed""#,
    );
    let messages_before = value(&healthy, "websocket_canary_messages_total", c);

    refuse.store(true, Ordering::SeqCst);
    let failing = d
        .wait_for(Duration::from_secs(15), "checks failing with 400", |m| {
            value(m, "websocket_canary_connect_check_up", c) == 0.0
                && value(m, "websocket_canary_connect_check_failures_total", reason) >= 2.0
        })
        .await;
    assert_eq!(
        value(&failing, "websocket_canary_up", c),
        1.0,
        "the held stream is still up:\n{failing}"
    );
    assert!(
        value(&failing, "websocket_canary_messages_total", c) > messages_before,
        "the held stream keeps receiving"
    );
    assert_eq!(
        value(
            &failing,
            "websocket_canary_reconnects_total",
            r#"canary="feed",reason="closed""#
        ),
        reconnects_before,
        "the held stream was never replaced"
    );
    // The held stream's own failure counts do not include the checks' failures.
    assert_eq!(
        value(&failing, "websocket_canary_failures_total", reason),
        0.0
    );

    refuse.store(false, Ordering::SeqCst);
    d.wait_for(Duration::from_secs(15), "checks passing again", |m| {
        value(m, "websocket_canary_connect_check_up", c) == 1.0
    })
    .await;
    d.stop().await;
}

#[test]
fn connect_check_takes_every_and_nothing_else() {
    let ok = parse_config(
        "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    connect_check: { every: 30s }\n",
    );
    assert_eq!(
        ok.canaries[0].connect_check.map(|c| c.every),
        Some(Duration::from_secs(30))
    );
    assert!(
        ok.render().contains("    connect_check: { every: 30s }\n"),
        "{}",
        ok.render()
    );
    let bad = wsmon_probe::config::Config::parse(
        "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    connect_check: { every: 30s, timeout: 1s }\n",
        std::path::Path::new("probe.yaml"),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "probe.yaml: canaries[0].connect_check.timeout: unknown key; expected one of: every"
    );
}

/// docs/probe.md gives this figure.
#[test]
fn connect_check_adds_forty_series_from_the_start_to_a_plain_canary() {
    let plain = "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n";
    let with_check = format!("{plain}    connect_check: {{ every: 30s }}\n");
    assert_eq!(series_at_start(&with_check) - series_at_start(plain), 40);
}
