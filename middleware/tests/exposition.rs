//! The exposition is a contract: a live scrape passes `promtool check metrics`, and a foreign
//! client's traffic is counted exactly. (`docs/metrics.md` is checked in `catalog/tests`.)

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsmon_feed::FeedConfig;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test]
async fn live_scrape_passes_promtool_check_metrics() {
    let server = start_feed(FeedConfig {
        rate: 50.0,
        ..FeedConfig::default()
    })
    .await;
    // Traffic in every direction so histograms and labelled counters have samples.
    let mut client = connect(&server.ws_url()).await;
    client
        .send(Message::text(r#"{"op":"head"}"#))
        .await
        .unwrap();
    for _ in 0..5 {
        client.next().await.unwrap().unwrap();
    }
    reqwest::Client::new()
        .post(format!("http://{}/publish", server.addr))
        .body(r#"{"nonce":"n1"}"#)
        .send()
        .await
        .unwrap();
    client.close(None).await.unwrap();
    let body = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("websocket_server_sequencer_lag_seconds_count"));

    wsmon_testkit::promtool::assert_metrics_clean(&body);
}

#[tokio::test]
async fn sequencer_lag_is_recorded_for_stamped_broadcasts() {
    let server = start_feed(FeedConfig {
        rate: 0.0,
        ..FeedConfig::default()
    })
    .await;
    let mut client = connect(&server.ws_url()).await;
    client.next().await.unwrap().unwrap();
    for _ in 0..10 {
        server.feed.hub().publish_tick();
    }
    for _ in 0..10 {
        client.next().await.unwrap().unwrap();
    }
    let s = server.metrics();
    let route = ("route", "/ws");
    assert_eq!(
        s.sum("websocket_server_sequencer_lag_messages_count", &[route]),
        10.0
    );
    assert_eq!(
        s.sum("websocket_server_sequencer_lag_seconds_count", &[route]),
        10.0
    );
    // Ten ticks published back to back: the first is 9 behind the head when it is written,
    // at most; the sum of lags is bounded by 0+1+…+9.
    let lag_sum = s.sum("websocket_server_sequencer_lag_messages_sum", &[route]);
    assert!((0.0..=45.0).contains(&lag_sum), "lag sum {lag_sum}");
}

#[tokio::test]
async fn python_websockets_client_is_counted_exactly() {
    let python = Command::new("python3")
        .args(["-c", "import websockets"])
        .status();
    assert!(
        python.is_ok_and(|s| s.success()),
        "Python `websockets` is missing: `bash scripts/test.sh` installs it (pip install websockets)"
    );
    let server = start_feed(FeedConfig {
        rate: 20.0,
        ..FeedConfig::default()
    })
    .await;
    let script = repo_root().join("middleware/tests/foreign/client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(server.ws_url())
            .output(),
    )
    .await
    .expect("python client finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The client reports what it saw: "received=N head_requests=H bytes_sent=B".
    let field = |k: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {stdout}"))
            .parse()
            .unwrap()
    };
    let route = ("route", "/ws");
    let m = || server.metrics();
    expect_value(
        m,
        "websocket_server_closes_total",
        &[route, ("initiator", "client"), ("close_code", "1000")],
        1.0,
    )
    .await;
    let s = server.metrics();
    assert_eq!(s.sum("websocket_server_closes_total", &[route]), 1.0);
    assert_eq!(
        s.sum(
            "websocket_server_messages_total",
            &[route, ("direction", "receive"), ("frame_type", "text")]
        ),
        field("head_requests")
    );
    assert_eq!(
        s.sum(
            "websocket_server_payload_bytes_total",
            &[route, ("direction", "receive")]
        ),
        field("bytes_sent")
    );
    // Everything the server transmitted as text reached the client before its close.
    assert_eq!(
        s.sum(
            "websocket_server_messages_total",
            &[route, ("direction", "transmit"), ("frame_type", "text")]
        ),
        field("received")
    );
    assert_eq!(
        s.sum(
            "websocket_server_upgrades_total",
            &[route, ("outcome", "accepted")]
        ),
        1.0
    );
}
