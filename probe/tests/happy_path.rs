//! Against the real example feed: publish-to-receive freshness, head lag and heartbeat RTT,
//! from `once --format json` and from the daemon's `/metrics`.

mod support;

use std::time::Duration;

use support::{once_json, parse_config, sample, RunningDaemon};
use wsmon_catalog as catalog;
use wsmon_testkit::canary::{equipped_canary, Pace};

fn feed_yaml(addr: std::net::SocketAddr) -> String {
    let pace = Pace {
        every: "300ms",
        timeout: "2s",
        max_silence: "2s",
    };
    // The happy path also resumes by URL, as the feed offers.
    format!(
        "canaries:\n{}    resume: {{ query: from }}\n",
        equipped_canary("feed", addr, pace)
    )
}

#[tokio::test]
async fn once_against_the_feed_passes_with_e2e_head_lag_and_heartbeat() {
    let feed = support::feed(20.0).await;
    let (code, v) = once_json(&feed_yaml(feed.addr), "2s").await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["failure_reason"], serde_json::Value::Null);
    assert!(v["e2e_seconds"]["count"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["e2e_seconds"]["p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["freshness_seconds"]["count"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(
        v["heartbeat_rtt_seconds"]["count"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(v["head_lag_messages"].as_u64().is_some(), "{v}");
    assert!(v["first_payload_seconds"].as_f64().is_some(), "{v}");
    for phase in ["dns", "tcp", "upgrade"] {
        assert!(
            v["connect_seconds"][phase].as_f64().is_some(),
            "{phase}: {v}"
        );
    }
    assert_eq!(
        v["connect_seconds"]["tls"],
        serde_json::Value::Null,
        "ws:// has no TLS phase"
    );
    assert_eq!(v["status_code"], 101);
    assert_eq!(
        (v["gaps"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["publish_timeouts"], 0, "{v}");
    assert!(v["messages"].as_u64().unwrap() > 10, "{v}");
    // One connection, so nothing to resume yet; the report still has the counts.
    assert_eq!(
        v["resumes"],
        serde_json::json!({"hit": 0, "miss": 0, "unavailable": 0, "failed": 0, "interrupted": 0}),
        "{v}"
    );
    assert_eq!(v["replayed_messages"], 0, "{v}");
}

#[tokio::test]
async fn the_daemon_exports_every_canary_series_from_the_catalog() {
    let feed = support::feed(20.0).await;
    let d = RunningDaemon::start(parse_config(&feed_yaml(feed.addr))).await;
    let count = |name: &str| format!("{name}_count");
    let metrics = d
        .wait_for(
            Duration::from_secs(10),
            "e2e, heartbeat and head lag samples",
            |m| {
                sample(
                    m,
                    &count(catalog::CANARY_E2E_SECONDS.name),
                    r#"canary="feed""#,
                )
                .unwrap_or(0.0)
                    >= 2.0
                    && sample(
                        m,
                        &count(catalog::CANARY_HEARTBEAT_RTT_SECONDS.name),
                        r#"canary="feed""#,
                    )
                    .unwrap_or(0.0)
                        >= 1.0
                    && sample(
                        m,
                        catalog::CANARY_HEAD_LAG_MESSAGES.name,
                        r#"canary="feed""#,
                    )
                    .is_some()
            },
        )
        .await;
    assert_eq!(
        sample(&metrics, catalog::CANARY_UP.name, r#"canary="feed""#),
        Some(1.0)
    );
    let age = sample(
        &metrics,
        catalog::CANARY_LAST_MESSAGE_AGE_SECONDS.name,
        r#"canary="feed""#,
    )
    .unwrap();
    assert!((0.0..5.0).contains(&age), "{age}");
    for phase in ["dns", "tcp", "upgrade"] {
        let labels = format!(r#"canary="feed",phase="{phase}""#);
        assert_eq!(
            sample(
                &metrics,
                &count(catalog::CANARY_CONNECT_PHASE_SECONDS.name),
                &labels
            ),
            Some(1.0),
            "{phase}"
        );
    }
    for def in catalog::CANARY_METRICS {
        let shows_without_faults = !matches!(
            def.name,
            n if n == catalog::CANARY_RECONNECTS_TOTAL.name
                || n == catalog::CANARY_CLOSES_TOTAL.name
                || n == catalog::CANARY_FAILURES_TOTAL.name
        );
        if shows_without_faults {
            assert!(
                metrics.contains(&format!("# TYPE {} {}", def.name, def.kind.as_str())),
                "{} missing",
                def.name
            );
        }
    }
    assert_eq!(
        sample(
            &metrics,
            catalog::CANARY_SEQUENCE_GAPS_TOTAL.name,
            r#"canary="feed""#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            catalog::CANARY_PUBLISH_TIMEOUTS_TOTAL.name,
            r#"canary="feed""#
        ),
        Some(0.0)
    );
    support::promtool_check(&metrics);
    d.stop().await;
}

#[tokio::test]
async fn nonces_published_over_a_second_websocket_arrive_on_the_canary_stream() {
    let relay = support::relay_server().await;
    let yaml = format!(
        r#"canaries:
  - name: relay
    url: {url}
    sequence: {{ pointer: /seq }}
    publish:
      ws: {{ url: {url}, send: '{{"nonce":"{{{{nonce}}}}"}}' }}
      every: 200ms
      match: /nonce
      timeout: 2s
"#,
        url = relay.url()
    );
    let (code, v) = once_json(&yaml, "1500ms").await;
    assert_eq!(code, 0, "{v}");
    assert!(v["e2e_seconds"]["count"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["publish_timeouts"], 0, "{v}");
    assert_eq!(v["gaps"], 0, "{v}");
    // The canary's connection and the publishing one.
    assert!(relay.accepted().len() >= 2);
}
