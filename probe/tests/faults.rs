//! Each faulty server yields the right failure_reason and counters, from `once` (the binary)
//! and from the daemon, whose `/metrics` keeps answering throughout.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::faulty::{self, close_with, hold, send_seqs};
use support::{once_json, parse_config, sample, RunningDaemon};

fn yaml(url: &str, extra: &str) -> String {
    format!(
        "canaries:\n  - name: t\n    url: {url}\n    connect_timeout: 500ms\n    first_payload_within: 1s\n    backoff: {{ initial: 100ms, max: 400ms }}\n{extra}"
    )
}

fn reason(v: &Value) -> &str {
    v["failure_reason"].as_str().unwrap_or("(none)")
}

/// Runs the daemon on `config` until the failure counter for `reason` moves; returns /metrics.
async fn daemon_sees(config: &str, reason: &str) -> String {
    let d = RunningDaemon::start(parse_config(config)).await;
    let labels = format!(r#"canary="t",reason="{reason}""#);
    let body = d
        .wait_for(Duration::from_secs(10), reason, |m| {
            sample(m, "websocket_canary_failures_total", &labels).unwrap_or(0.0) >= 1.0
        })
        .await;
    assert_eq!(d.get("/healthz").await.0, 200);
    d.stop().await;
    body
}

#[tokio::test]
async fn a_server_that_sends_nothing_fails_with_first_payload_timeout() {
    let server =
        faulty::ws(|mut ws| async move { hold(&mut ws, Duration::from_secs(10)).await }).await;
    let config = yaml(&server.url(), "    first_payload_within: 300ms\n")
        .replace("    first_payload_within: 1s\n", "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "first_payload_timeout", "{v}");
    assert_eq!(v["messages"], 0);
    assert_eq!(v["first_payload_seconds"], Value::Null);
    assert!(
        v["duration_seconds"].as_f64().unwrap() < 4.0,
        "ended early: {v}"
    );
    daemon_sees(&config, "first_payload_timeout").await;
}

#[tokio::test]
async fn a_silence_mid_stream_is_one_stall_and_the_stream_recovers() {
    let server = faulty::ws(|mut ws| async move {
        send_seqs(&mut ws, &[1, 2, 3, 4], Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        send_seqs(
            &mut ws,
            &(5..=40).collect::<Vec<_>>(),
            Duration::from_millis(50),
        )
        .await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    sequence: { pointer: /seq }\n    max_silence: 300ms\n",
    );
    let (code, v) = once_json(&config, "2s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "stall", "{v}");
    assert_eq!(v["stalls"], 1, "{v}");
    assert_eq!(v["gaps"], 0, "{v}");
    assert!(
        v["messages"].as_u64().unwrap() > 5,
        "the stream went on after the stall: {v}"
    );
    let metrics = daemon_sees(&config, "stall").await;
    assert!(sample(&metrics, "websocket_canary_stalls_total", r#"canary="t""#).unwrap() >= 1.0);
}

/// Issue 12, defect 1: before the first data message only `first_payload_within` governs;
/// the silence clock starts at that message.
#[tokio::test]
async fn a_first_message_later_than_max_silence_is_first_payload_timeout_not_stall() {
    let server = faulty::ws(|mut ws| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        send_seqs(&mut ws, &[1, 2], Duration::from_millis(50)).await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    max_silence: 1s
",
    )
    .replace("first_payload_within: 1s", "first_payload_within: 2s");
    let (code, v) = once_json(&config, "6s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "first_payload_timeout", "{v}");
    assert_eq!(v["stalls"], 0, "no stall before the first message: {v}");
}

/// The other side of defect 1: once the first message arrived (after more than
/// `max_silence`), a silence longer than `max_silence` is a stall.
#[tokio::test]
async fn a_slow_first_message_within_its_deadline_then_silence_is_one_stall() {
    let server = faulty::ws(|mut ws| async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        send_seqs(&mut ws, &[1], Duration::ZERO).await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    max_silence: 500ms
",
    )
    .replace("first_payload_within: 1s", "first_payload_within: 3s");
    let (code, v) = once_json(&config, "3s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "stall", "{v}");
    assert_eq!(v["stalls"], 1, "{v}");
    assert_eq!(v["messages"], 1, "{v}");
}

#[tokio::test]
async fn skipped_duplicated_and_reordered_sequences_are_counted_apart() {
    // 4 is skipped for good, 6 comes twice, 8 overtakes 7.
    let server = faulty::ws(|mut ws| async move {
        send_seqs(
            &mut ws,
            &[1, 2, 3, 5, 6, 6, 8, 7, 9, 10, 11, 12, 13, 14],
            Duration::from_millis(20),
        )
        .await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    sequence: { pointer: /seq, reorder_window: 4 }\n",
    );
    let (code, v) = once_json(&config, "1500ms").await;
    assert_eq!(code, 1);
    assert_eq!(v["gaps"], 1, "{v}");
    assert_eq!(v["missed_messages"], 1, "{v}");
    assert_eq!(v["duplicates"], 1, "{v}");
    assert_eq!(v["reorders"], 1, "{v}");
    assert_eq!(v["messages"], 14, "{v}");
    // The duplicate is seen before the gap's reorder window closes: first fault wins.
    assert_eq!(reason(&v), "sequence_duplicate", "{v}");
    let metrics = daemon_sees(&config, "sequence_gap").await;
    assert!(
        sample(
            &metrics,
            "websocket_canary_missed_messages_total",
            r#"canary="t""#
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&metrics, "websocket_canary_reorders_total", r#"canary="t""#).unwrap() >= 1.0);
}

#[tokio::test]
async fn a_multi_message_skip_is_one_gap_with_its_size_missed() {
    let server = faulty::ws(|mut ws| async move {
        send_seqs(
            &mut ws,
            &[1, 2, 10, 11, 12, 13, 14, 15, 16],
            Duration::from_millis(20),
        )
        .await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(&server.url(), "    sequence: { pointer: /seq }\n");
    let (code, v) = once_json(&config, "1s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "sequence_gap", "{v}");
    assert_eq!(
        (v["gaps"].as_u64(), v["missed_messages"].as_u64()),
        (Some(1), Some(7)),
        "{v}"
    );
    assert_eq!(v["duplicates"], 0);
}

#[tokio::test]
async fn an_abrupt_tcp_close_is_closed_with_1006() {
    let server = faulty::ws(|mut ws| async move {
        send_seqs(&mut ws, &[1, 2], Duration::from_millis(20)).await;
        // Dropping the socket ends TCP without a close frame.
        drop(ws);
    })
    .await;
    let config = yaml(&server.url(), "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "closed", "{v}");
    assert_eq!(v["close_code"], 1006, "{v}");
    assert_eq!(v["messages"], 2);
    let metrics = daemon_sees(&config, "closed").await;
    assert!(
        sample(
            &metrics,
            "websocket_canary_closes_total",
            r#"canary="t",close_code="1006""#
        )
        .unwrap()
            >= 1.0
    );
}

async fn closes_with(code: u16, expected_reason: &str) {
    let server = faulty::ws(move |mut ws| async move {
        send_seqs(&mut ws, &[1], Duration::from_millis(20)).await;
        close_with(&mut ws, code, "bye").await;
    })
    .await;
    let config = yaml(&server.url(), "");
    let (exit, v) = once_json(&config, "5s").await;
    assert_eq!(exit, 1);
    assert_eq!(reason(&v), expected_reason, "{v}");
    assert_eq!(v["close_code"], code, "{v}");
    assert!(v["failure_detail"].as_str().unwrap().contains("bye"), "{v}");
    let metrics = daemon_sees(&config, expected_reason).await;
    let labels = format!(r#"canary="t",close_code="{code}""#);
    assert!(
        sample(&metrics, "websocket_canary_closes_total", &labels).unwrap() >= 1.0,
        "{metrics}"
    );
    let reconnect = format!(r#"canary="t",reason="{expected_reason}""#);
    // The daemon reconnected after the close, recording why.
    RunningDaemon::start(parse_config(&config))
        .await
        .wait_for(Duration::from_secs(10), "a reconnect", |m| {
            sample(m, "websocket_canary_reconnects_total", &reconnect).unwrap_or(0.0) >= 1.0
        })
        .await;
}

#[tokio::test]
async fn close_1001_going_away_is_closed() {
    closes_with(1001, "closed").await;
}

#[tokio::test]
async fn close_1009_is_message_too_big() {
    closes_with(1009, "message_too_big").await;
}

#[tokio::test]
async fn close_1013_try_again_later_is_closed() {
    closes_with(1013, "closed").await;
}

#[tokio::test]
async fn a_403_handshake_is_handshake_status() {
    let server = faulty::http_status("403 Forbidden").await;
    let config = yaml(&server.url(), "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "handshake_status", "{v}");
    assert_eq!(v["status_code"], 403, "{v}");
    assert!(v["connect_seconds"]["tcp"].as_f64().is_some(), "{v}");
    assert_eq!(v["connect_seconds"]["upgrade"], Value::Null, "{v}");
    daemon_sees(&config, "handshake_status").await;
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_is_handshake_timeout() {
    let server = faulty::silent_handshake().await;
    let config = yaml(&server.url(), "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "handshake_timeout", "{v}");
    assert!(
        v["duration_seconds"].as_f64().unwrap() < 4.0,
        "bounded by connect_timeout: {v}"
    );
    daemon_sees(&config, "handshake_timeout").await;
}

#[tokio::test]
async fn a_refused_connection_is_connect_refused() {
    let port = wsmon_testkit::free_port();
    let config = yaml(&format!("ws://127.0.0.1:{port}/ws"), "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "connect_refused", "{v}");
}

#[tokio::test]
async fn an_oversized_frame_is_frame_too_big_and_closed_with_1009() {
    let server = faulty::ws(|mut ws| async move {
        send_seqs(&mut ws, &[1], Duration::from_millis(20)).await;
        let big = format!(r#"{{"seq":2,"pad":"{}"}}"#, "x".repeat(200 * 1024));
        let _ = futures_util::SinkExt::send(
            &mut ws,
            tokio_tungstenite::tungstenite::Message::text(big),
        )
        .await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(&server.url(), "    max_message_bytes: 64KiB\n");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "frame_too_big", "{v}");
    assert_eq!(v["close_code"], 1009, "{v}");
    assert_eq!(v["messages"], 1, "{v}");
    daemon_sees(&config, "frame_too_big").await;
}

#[tokio::test]
async fn probe_endpoint_answers_in_blackbox_exporter_terms() {
    let feed = support::feed(20.0).await;
    let forbidden = faulty::http_status("403 Forbidden").await;
    let config = format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    connect_timeout: 1s\n    first_payload_within: 1s\n  - name: other\n    url: ws://{}/ws\n",
        feed.addr, feed.addr
    );
    let d = RunningDaemon::start(parse_config(&config)).await;
    let (code, ok) = d
        .get(&format!("/probe?module=feed&target=ws://{}/ws", feed.addr))
        .await;
    assert_eq!(code, 200);
    assert_eq!(sample(&ok, "probe_success", ""), Some(1.0), "{ok}");
    assert_eq!(
        sample(&ok, "probe_websocket_status_code", ""),
        Some(101.0),
        "{ok}"
    );
    assert_eq!(
        sample(&ok, "probe_websocket_connection_upgraded", ""),
        Some(1.0),
        "{ok}"
    );
    assert!(
        sample(&ok, "probe_websocket_first_payload_seconds", "").is_some(),
        "{ok}"
    );
    assert!(
        sample(
            &ok,
            "probe_websocket_connect_phase_seconds",
            r#"phase="upgrade""#
        )
        .is_some(),
        "{ok}"
    );
    assert!(sample(&ok, "probe_duration_seconds", "").unwrap() > 0.0);
    assert!(
        !ok.contains("websocket_canary_"),
        "a fresh registry per request"
    );
    support::promtool_check(&ok);

    let (_, bad) = d
        .get(&format!("/probe?module=feed&target={}", forbidden.url()))
        .await;
    assert_eq!(sample(&bad, "probe_success", ""), Some(0.0), "{bad}");
    assert_eq!(
        sample(&bad, "probe_websocket_status_code", ""),
        Some(403.0),
        "{bad}"
    );
    assert_eq!(
        sample(&bad, "probe_websocket_connection_upgraded", ""),
        Some(0.0),
        "{bad}"
    );
    assert_eq!(
        sample(
            &bad,
            "probe_websocket_failure_info",
            r#"reason="handshake_status""#
        ),
        Some(1.0),
        "{bad}"
    );

    assert_eq!(
        d.get("/probe?module=nope&target=ws://127.0.0.1:1/").await.0,
        400
    );
    assert_eq!(
        d.get("/probe?module=feed&target=http://127.0.0.1:1/")
            .await
            .0,
        400
    );
    assert_eq!(
        d.get("/probe?target=ws://127.0.0.1:1/").await.0,
        400,
        "module needed with two canaries"
    );
    d.metrics().await;
    d.stop().await;
}

#[tokio::test]
async fn a_server_that_never_reads_misses_pongs_and_fails_with_heartbeat_timeout() {
    // Writing without ever reading: pings are never answered.
    let server = faulty::ws(|mut ws| async move {
        send_seqs(
            &mut ws,
            &(1..=200).collect::<Vec<_>>(),
            Duration::from_millis(20),
        )
        .await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    heartbeat: { every: 200ms, timeout: 300ms }\n",
    );
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "heartbeat_timeout", "{v}");
    assert_eq!(v["heartbeat_rtt_seconds"], Value::Null, "{v}");
    assert!(
        v["duration_seconds"].as_f64().unwrap() < 4.0,
        "ended the stream: {v}"
    );
    daemon_sees(&config, "heartbeat_timeout").await;
}

/// Sends 1..=3, then answers `{"op":"head"}` with `reply` (or ignores it when `None`).
async fn head_server(reply: Option<&'static str>) -> faulty::Server {
    faulty::ws(move |mut ws| async move {
        send_seqs(&mut ws, &[1, 2, 3], Duration::from_millis(10)).await;
        while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut ws).await {
            if let (Some(r), tokio_tungstenite::tungstenite::Message::Text(_)) = (reply, &msg) {
                let _ = futures_util::SinkExt::send(
                    &mut ws,
                    tokio_tungstenite::tungstenite::Message::text(r),
                )
                .await;
            }
        }
    })
    .await
}

const HEAD_CHECK: &str = "    sequence: { pointer: /seq }\n    head_check: { send: '{\"op\":\"head\"}', match: { pointer: /type, equals: head }, pointer: /seq, every: 200ms, timeout: 300ms, max_lag: 5 }\n";

#[tokio::test]
async fn a_head_far_ahead_of_the_stream_is_head_lag() {
    let server = head_server(Some(r#"{"type":"head","seq":10}"#)).await;
    let (code, v) = once_json(&yaml(&server.url(), HEAD_CHECK), "1s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "head_lag", "{v}");
    assert_eq!(v["head_lag_messages"], 7, "{v}");
    assert_eq!(
        v["duplicates"], 0,
        "the head reply is not a stream message: {v}"
    );
}

#[tokio::test]
async fn an_unanswered_head_check_is_head_timeout() {
    let server = head_server(None).await;
    let (code, v) = once_json(&yaml(&server.url(), HEAD_CHECK), "1500ms").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "head_timeout", "{v}");
    assert_eq!(v["head_lag_messages"], Value::Null, "{v}");
}

/// An HTTP publish endpoint answering `status` without broadcasting anything.
async fn publish_sink(status: u16) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/publish",
        axum::routing::post(
            move || async move { axum::http::StatusCode::from_u16(status).unwrap() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn publish_yaml(stream: &str, publish: std::net::SocketAddr) -> String {
    yaml(
        stream,
        &format!(
            "    publish:\n      http: {{ url: http://{publish}/publish, body: '{{\"nonce\":\"{{{{nonce}}}}\"}}' }}\n      every: 200ms\n      match: /nonce\n      timeout: 400ms\n"
        ),
    )
}

#[tokio::test]
async fn a_nonce_that_never_arrives_is_publish_timeout() {
    let feed = support::feed(20.0).await;
    let sink = publish_sink(204).await;
    let (code, v) = once_json(
        &publish_yaml(&format!("ws://{}/ws", feed.addr), sink),
        "1500ms",
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "publish_timeout", "{v}");
    assert!(v["publish_timeouts"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["e2e_seconds"], Value::Null, "{v}");
}

#[tokio::test]
async fn a_failing_publish_endpoint_is_publish_error() {
    let feed = support::feed(20.0).await;
    let sink = publish_sink(500).await;
    let (code, v) = once_json(&publish_yaml(&format!("ws://{}/ws", feed.addr), sink), "1s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "publish_error", "{v}");
    assert!(
        v["failure_detail"]
            .as_str()
            .unwrap()
            .contains("answered HTTP 500"),
        "{v}"
    );
    // A refused nonce is undelivered as soon as the refusal arrives, not 400 ms later when it
    // would have timed out: all but the last (possibly still in flight) are counted.
    let published = v["publishes"].as_u64().unwrap();
    let undelivered = v["publish_timeouts"].as_u64().unwrap();
    assert!(published >= 3, "{v}");
    assert!(
        undelivered <= published && published - undelivered <= 1,
        "{v}"
    );
}

#[tokio::test]
async fn a_frame_that_breaks_rfc_6455_is_protocol_error() {
    let server = faulty::ws(|mut ws| async move {
        send_seqs(&mut ws, &[1], Duration::from_millis(20)).await;
        // Behind tungstenite's back: a masked frame, which only clients may send.
        use tokio::io::AsyncWriteExt;
        let _ = ws
            .get_mut()
            .write_all(&[0x81, 0x81, 1, 2, 3, 4, b'x' ^ 1])
            .await;
        hold(&mut ws, Duration::from_secs(10)).await;
    })
    .await;
    let config = yaml(&server.url(), "");
    let (code, v) = once_json(&config, "5s").await;
    assert_eq!(code, 1);
    assert_eq!(reason(&v), "protocol_error", "{v}");
    assert_eq!(v["close_code"], 1002, "{v}");
    daemon_sees(&config, "protocol_error").await;
}
