//! Hostile servers versus the prober: each misbehaves in one way, and the prober must name it
//! with its own documented failure_reason, end within its timeouts, keep its memory bounded,
//! and (in the daemon) keep serving /metrics and its healthy canaries meanwhile.

mod support;

use std::time::Duration;

use support::hostile::{self, frame, seq_frame, CLOSE, CONTINUATION, FIN, PING, RSV1, TEXT};
use support::tls::{Leaf, Pki};
use support::{daemon_process, faulty, once_run, sample, OnceRun};
use wsmon_probe::failure::FailureReason;

/// Every hostile case and the reason the prober must give it: one reason per case.
const CASES: &[(&str, &str)] = &[
    ("wrong Sec-WebSocket-Accept", "handshake_accept_mismatch"),
    ("200 instead of 101", "handshake_status"),
    ("redirect loop", "redirect"),
    ("handshake trickled a byte a second", "handshake_timeout"),
    ("never sends", "first_payload_timeout"),
    ("reserved bits set", "reserved_bits"),
    ("bad opcode", "bad_opcode"),
    ("fragmented control frame", "fragmented_control"),
    ("invalid UTF-8 text", "invalid_utf8"),
    ("message far over max_message_bytes", "message_too_big"),
    ("frame header claiming an exabyte", "frame_too_big"),
    ("ping flood", "ping_flood"),
    ("close with an invalid code", "invalid_close_code"),
    ("close frame, then more data", "data_after_close"),
    ("expired certificate", "tls_expired"),
    ("self-signed certificate", "tls_untrusted"),
    ("certificate for the wrong host", "tls_hostname"),
    ("DNS failure", "dns"),
    ("connection refused", "connect_refused"),
    ("reset mid-frame", "reset"),
    ("message flood at wire speed", "message_flood"),
    ("sequence numbers that are not numbers", "invalid_sequence"),
    ("JSON nested ten thousand deep", "payload_too_deep"),
];

/// Process start, the close handshake (bounded at 1s) and a busy 2-core machine; still far
/// below the 30s `--duration`, which is what a hang would run into.
const MARGIN: Duration = Duration::from_secs(10);
/// The prober's own footprint is ~20 MiB; a flood or a huge allocation would blow well past.
const RSS_LIMIT_KIB: u64 = 96 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn reason_of(case: &str) -> &'static str {
    CASES
        .iter()
        .find(|(c, _)| *c == case)
        .unwrap_or_else(|| panic!("unknown case {case:?}"))
        .1
}

fn yaml(url: &str, extra: &str) -> String {
    format!(
        "canaries:\n  - name: t\n    url: {url}\n    connect_timeout: 1s\n    first_payload_within: 1s\n    max_message_bytes: 64KiB\n{extra}"
    )
}

/// Runs `once` for up to `duration` and checks the case's reason, exit code 1, and that the
/// run ended within `bound` (the timeout that governs this case) plus the margin.
async fn expect(case: &str, config: &str, duration: &str, bound: Duration) -> OnceRun {
    let run = once_run(config, duration).await;
    let v = &run.json;
    assert_eq!(
        v["failure_reason"].as_str(),
        Some(reason_of(case)),
        "{case}: {v}"
    );
    assert_eq!(run.code, 1, "{case}: {v}");
    assert!(
        run.wall < bound + MARGIN,
        "{case}: the run took {:?}, past its {bound:?} bound: {v}",
        run.wall
    );
    run
}

/// `expect` for a canary with only the URL, run for up to 30s.
async fn plain(case: &str, url: &str, bound: Duration) -> OnceRun {
    expect(case, &yaml(url, ""), "30s", bound).await
}

fn assert_rss_bounded(case: &str, run: &OnceRun) {
    eprintln!("{case}: peak RSS {} KiB", run.peak_rss_kib);
    assert!(run.peak_rss_kib > 0, "{case}: RSS was sampled");
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "{case}: peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        run.peak_rss_kib
    );
}

#[test]
fn every_hostile_case_has_its_own_documented_reason() {
    let mut seen = std::collections::HashSet::new();
    for (case, reason) in CASES {
        assert!(seen.insert(reason), "{case}: {reason} is not distinct");
        assert!(
            FailureReason::ALL.iter().any(|r| r.as_str() == *reason),
            "{case}: {reason} is not a FailureReason"
        );
    }
    assert!(CASES.len() >= 20);
}

#[tokio::test]
async fn a_wrong_sec_websocket_accept_is_handshake_accept_mismatch() {
    let server = hostile::wrong_accept().await;
    let case = "wrong Sec-WebSocket-Accept";
    let run = plain(case, &server.url(), CONNECT_TIMEOUT).await;
    assert_eq!(
        run.json["connect_seconds"]["upgrade"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_200_instead_of_101_is_handshake_status_200() {
    let server = faulty::http_status("200 OK").await;
    let run = plain("200 instead of 101", &server.url(), CONNECT_TIMEOUT).await;
    assert_eq!(run.json["status_code"], 200, "{}", run.json);
}

/// Issue 12, defects 2, 3 and 4: a 101 that breaks RFC 6455 §4.1 is refused with
/// `handshake_error`, whatever the order of its headers, and `status_code` stays 101.
#[tokio::test]
async fn a_101_breaking_the_rfc_is_handshake_error_with_status_code_101() {
    const UPGRADE: &str =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    /// A case's name, the response built from the right accept key, and the error's words.
    type Case = (&'static str, fn(&str) -> String, &'static str);
    let cases: [Case; 4] = [
        (
            "an unoffered extension",
            |a| {
                format!("{UPGRADE}Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
            },
            "not offered",
        ),
        (
            "the right Accept, then a wrong one",
            |a| {
                format!(
                    "{UPGRADE}Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
                )
            },
            "2 Sec-WebSocket-Accept",
        ),
        (
            "a wrong Accept, then the right one",
            |a| {
                format!(
                    "{UPGRADE}Sec-WebSocket-Accept: d3Jvbmc=\r\nSec-WebSocket-Accept: {a}\r\n\r\n"
                )
            },
            "2 Sec-WebSocket-Accept",
        ),
        (
            "no Upgrade header",
            |a| {
                format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\n\r\n")
            },
            "Upgrade: websocket",
        ),
    ];
    for (case, head, detail) in cases {
        let server = hostile::answers_upgrade_with(head).await;
        let run = once_run(&yaml(&server.url(), ""), "5s").await;
        let v = &run.json;
        assert_eq!(v["failure_reason"], "handshake_error", "{case}: {v}");
        assert!(
            v["failure_detail"].as_str().unwrap_or("").contains(detail),
            "{case}: {v}"
        );
        assert_eq!(v["status_code"], 101, "{case}: {v}");
        assert_eq!(run.code, 1, "{case}: {v}");
    }
}

#[tokio::test]
async fn a_wrong_accept_still_reports_status_code_101() {
    let server = hostile::wrong_accept().await;
    let run = once_run(&yaml(&server.url(), ""), "5s").await;
    assert_eq!(run.json["failure_reason"], "handshake_accept_mismatch");
    assert_eq!(run.json["status_code"], 101, "{}", run.json);
}

#[tokio::test]
async fn a_redirect_loop_is_redirect_and_is_never_followed() {
    let server = hostile::redirect_loop().await;
    let run = plain("redirect loop", &server.url(), CONNECT_TIMEOUT).await;
    assert_eq!(run.json["status_code"], 302, "{}", run.json);
    assert_eq!(server.accepted().len(), 1, "one request, no following");
}

#[tokio::test]
async fn a_handshake_trickled_one_byte_per_second_ends_at_connect_timeout() {
    let server = hostile::trickled_handshake().await;
    let run = plain(
        "handshake trickled a byte a second",
        &server.url(),
        CONNECT_TIMEOUT,
    )
    .await;
    assert!(run.json["connect_seconds"]["tcp"].as_f64().is_some());
}

#[tokio::test]
async fn a_server_that_never_sends_ends_at_first_payload_within() {
    let server = faulty::ws(|mut ws| async move {
        faulty::hold(&mut ws, Duration::from_secs(30)).await;
    })
    .await;
    plain("never sends", &server.url(), Duration::from_secs(1)).await;
}

/// A server that sends `{"seq":1}` and then `bytes`; the prober must refuse them with the
/// case's reason, answering with `close_code`.
async fn refuses_frames(case: &str, bytes: Vec<u8>, close_code: u16) -> OnceRun {
    let server = hostile::sends_after_upgrade(bytes).await;
    let run = plain(case, &server.url(), Duration::ZERO).await;
    assert_eq!(run.json["messages"], 1, "{case}: {}", run.json);
    assert_eq!(run.json["close_code"], close_code, "{case}: {}", run.json);
    run
}

#[tokio::test]
async fn a_frame_with_a_reserved_bit_set_is_reserved_bits() {
    let bytes = frame(FIN | RSV1 | TEXT, br#"{"seq":2}"#);
    refuses_frames("reserved bits set", bytes, 1002).await;
}

#[tokio::test]
async fn a_frame_with_a_reserved_opcode_is_bad_opcode() {
    refuses_frames("bad opcode", frame(FIN | 0x3, b""), 1002).await;
}

#[tokio::test]
async fn a_fragmented_ping_is_fragmented_control() {
    refuses_frames("fragmented control frame", frame(PING, b"x"), 1002).await;
}

#[tokio::test]
async fn text_that_is_not_utf8_is_invalid_utf8_and_closed_with_1007() {
    refuses_frames("invalid UTF-8 text", frame(FIN | TEXT, &[0xff, 0xfe]), 1007).await;
}

#[tokio::test]
async fn a_fragmented_message_far_over_max_message_bytes_is_message_too_big() {
    // 1 MiB in 16 KiB fragments against a 64 KiB limit: every frame is small, the message not.
    let mut bytes = frame(TEXT, &[b'x'; 16 * 1024]);
    for _ in 0..62 {
        bytes.extend(frame(CONTINUATION, &[b'x'; 16 * 1024]));
    }
    bytes.extend(frame(FIN | CONTINUATION, &[b'x'; 16 * 1024]));
    let case = "message far over max_message_bytes";
    let run = refuses_frames(case, bytes, 1009).await;
    assert_rss_bounded(case, &run);
}

#[tokio::test]
async fn a_frame_header_claiming_an_exabyte_is_frame_too_big_without_allocating_it() {
    let mut bytes = vec![FIN | TEXT, 127];
    bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
    let case = "frame header claiming an exabyte";
    let run = refuses_frames(case, bytes, 1009).await;
    assert!(
        run.json["failure_detail"]
            .as_str()
            .unwrap()
            .contains("1152921504606846976"),
        "{}",
        run.json
    );
    assert_rss_bounded(case, &run);
}

#[tokio::test]
async fn a_close_with_a_forbidden_code_is_invalid_close_code() {
    let bytes = frame(FIN | CLOSE, &999u16.to_be_bytes());
    let server = hostile::sends_after_upgrade(bytes).await;
    let case = "close with an invalid code";
    plain(case, &server.url(), Duration::ZERO).await;
}

#[tokio::test]
async fn frames_after_a_close_frame_are_data_after_close() {
    let mut bytes = frame(FIN | CLOSE, &1000u16.to_be_bytes());
    bytes.extend(seq_frame(2));
    let server = hostile::sends_after_upgrade(bytes).await;
    let case = "close frame, then more data";
    let run = plain(case, &server.url(), Duration::ZERO).await;
    assert_eq!(run.json["close_code"], 1000, "{}", run.json);
}

#[tokio::test]
async fn a_ping_flood_is_ping_flood() {
    let server = hostile::floods(|_| frame(FIN | PING, b"")).await;
    let case = "ping flood";
    let run = plain(case, &server.url(), Duration::from_secs(1)).await;
    assert_eq!(run.json["close_code"], 1008, "{}", run.json);
    assert_rss_bounded(case, &run);
}

#[tokio::test]
async fn a_message_flood_at_wire_speed_is_message_flood_over_max_message_rate() {
    let server = hostile::floods(seq_frame).await;
    let case = "message flood at wire speed";
    let config = yaml(
        &server.url(),
        "    max_message_rate: 1000\n    sequence: { pointer: /seq }\n",
    );
    let run = expect(case, &config, "30s", Duration::from_secs(1)).await;
    assert_eq!(run.json["close_code"], 1008, "{}", run.json);
    assert_eq!(
        run.json["messages"], 1000,
        "the 1001st within a second is refused: {}",
        run.json
    );
    assert_eq!(
        run.json["gaps"], 0,
        "every flooded message was read: {}",
        run.json
    );
    assert_rss_bounded(case, &run);
}

#[tokio::test]
async fn a_reset_mid_frame_is_reset() {
    let server = hostile::resets_mid_frame().await;
    let run = plain("reset mid-frame", &server.url(), Duration::ZERO).await;
    assert_eq!(run.json["close_code"], 1006, "{}", run.json);
}

#[tokio::test]
async fn sequence_numbers_that_are_not_numbers_are_invalid_sequence() {
    let server =
        hostile::sequences_that_are_not_numbers(&["1", "\"abc\"", "-1", "1.5", "1e30", "null"])
            .await;
    let config = yaml(&server.url(), "    sequence: { pointer: /seq }\n");
    let run = expect(
        "sequence numbers that are not numbers",
        &config,
        "1s",
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(run.json["messages"], 6, "each still counts: {}", run.json);
    assert_eq!(run.json["gaps"], 0, "{}", run.json);
}

#[tokio::test]
async fn json_nested_ten_thousand_deep_is_payload_too_deep_and_the_stream_goes_on() {
    let server = faulty::ws(|mut ws| async move {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let _ = ws.send(faulty::seq_msg(1)).await;
        let _ = ws
            .send(Message::text(hostile::deeply_nested_json(10_000)))
            .await;
        faulty::send_seqs(&mut ws, &[3, 4], Duration::from_millis(20)).await;
        faulty::hold(&mut ws, Duration::from_secs(30)).await;
    })
    .await;
    let config = yaml(&server.url(), "    sequence: { pointer: /seq }\n");
    let case = "JSON nested ten thousand deep";
    let run = expect(case, &config, "1s", Duration::from_secs(1)).await;
    assert_eq!(run.json["messages"], 4, "{}", run.json);
    // The deep message was not measured, so its sequence (2) is missing.
    assert_eq!(run.json["missed_messages"], 1, "{}", run.json);
    assert_rss_bounded(case, &run);
}

#[tokio::test]
async fn a_name_under_the_invalid_tld_is_dns() {
    expect(
        "DNS failure",
        &yaml("ws://wsmon-canary.invalid/ws", ""),
        "30s",
        CONNECT_TIMEOUT,
    )
    .await;
}

#[tokio::test]
async fn a_closed_port_is_connect_refused() {
    let port = wsmon_testkit::free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    plain("connection refused", &url, CONNECT_TIMEOUT).await;
}

/// A wss:// server with the `leaf` certificate, probed with the test CA trusted.
async fn tls_case(case: &str, leaf: Leaf) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.leaf(leaf);
    let addr = support::tls::wss_server(&cert, &key).await;
    let config = yaml(
        &format!("wss://127.0.0.1:{}/ws", addr.port()),
        &format!("    tls: {{ ca_file: {} }}\n", pki.ca_file.display()),
    );
    let run = expect(case, &config, "30s", CONNECT_TIMEOUT).await;
    assert_eq!(run.json["connect_seconds"]["tls"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_expired_certificate_is_tls_expired() {
    tls_case("expired certificate", Leaf::Expired).await;
}

#[tokio::test]
async fn a_self_signed_certificate_is_tls_untrusted() {
    tls_case("self-signed certificate", Leaf::SelfSigned).await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_tls_hostname() {
    tls_case("certificate for the wrong host", Leaf::WrongHost).await;
}

#[tokio::test]
async fn the_same_ca_and_a_good_leaf_pass_so_the_tls_cases_fail_for_their_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.leaf(Leaf::Good);
    let addr = support::tls::wss_server(&cert, &key).await;
    let config = yaml(
        &format!("wss://127.0.0.1:{}/ws", addr.port()),
        &format!("    tls: {{ ca_file: {} }}\n", pki.ca_file.display()),
    );
    let run = once_run(&config, "3s").await;
    assert_eq!(run.code, 0, "{}", run.json);
}

// The daemon runs as its own process: the floods here must not share its runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_serving_and_its_healthy_canary_stays_up_among_hostile_ones() {
    let feed = support::feed(20.0).await;
    let ping_flood = hostile::floods(|_| frame(FIN | PING, b"")).await;
    let message_flood = hostile::floods(seq_frame).await;
    let mut exabyte = vec![FIN | TEXT, 127];
    exabyte.extend_from_slice(&(1u64 << 60).to_be_bytes());
    let exabyte = hostile::sends_after_upgrade(exabyte).await;
    let trickle = hostile::trickled_handshake().await;
    let redirect = hostile::redirect_loop().await;
    let reset = hostile::resets_mid_frame().await;
    let hostile: [(&str, String, &str); 6] = [
        ("pings", ping_flood.url(), "ping_flood"),
        ("flood", message_flood.url(), "message_flood"),
        ("exabyte", exabyte.url(), "frame_too_big"),
        ("trickle", trickle.url(), "handshake_timeout"),
        ("redirect", redirect.url(), "redirect"),
        ("reset", reset.url(), "reset"),
    ];
    // The hostile canaries time out fast; the healthy one gets room for a loaded machine,
    // where its handshake can take longer than 1 s while the floods run.
    let mut config = format!(
        "defaults: {{ connect_timeout: 1s, backoff: {{ initial: 100ms, max: 500ms }} }}\ncanaries:\n  - name: feed\n    url: ws://{}/ws\n    connect_timeout: 10s\n    sequence: {{ pointer: /seq }}\n",
        feed.addr
    );
    for (name, url, _) in &hostile {
        config.push_str(&format!(
            "  - name: {name}\n    url: {url}\n    max_message_rate: 1000\n"
        ));
    }
    let d = daemon_process(&config).await;
    let messages = |m: &str| sample(m, "websocket_canary_messages_total", r#"canary="feed""#);
    let before = support::wait_for_metrics(
        &d.metrics_url,
        Duration::from_secs(10),
        "the healthy canary's first messages",
        |m| messages(m).unwrap_or(0.0) > 0.0,
    )
    .await;
    // Every hostile canary fails for its reason at least twice (so it reconnected), while
    // /metrics answers every poll.
    for (name, _, reason) in &hostile {
        let labels = format!(r#"canary="{name}",reason="{reason}""#);
        support::wait_for_metrics(&d.metrics_url, Duration::from_secs(60), &labels, |m| {
            sample(m, "websocket_canary_failures_total", &labels).unwrap_or(0.0) >= 2.0
        })
        .await;
    }
    let after = support::metrics_at(&d.metrics_url).await;
    assert!(
        messages(&after).unwrap() > messages(&before).unwrap(),
        "the healthy canary kept receiving"
    );
    assert_eq!(
        sample(&after, "websocket_canary_up", r#"canary="feed""#),
        Some(1.0),
        "{after}"
    );
    // Its stream was never lost: no reconnect, for any reason.
    let feed_reconnects: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("websocket_canary_reconnects_total{canary=\"feed\""))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(feed_reconnects.is_empty(), "{feed_reconnects:?}\n{after}");
    let base = d.metrics_url.trim_end_matches("/metrics");
    assert_eq!(support::get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(support::get(&format!("{base}/status")).await.0, 200);
    support::promtool_check(&after);
}

#[tokio::test]
async fn a_timestamp_from_long_before_the_epoch_does_not_crash_the_canary() {
    // Regression: the freshness of {"ts": -1e300} overflowed a Duration and panicked the
    // canary task (found by the timestamp property test).
    let server = faulty::ws(|mut ws| async move {
        use futures_util::SinkExt;
        for seq in 1..=5u64 {
            let msg = format!(r#"{{"seq":{seq},"ts":-1e300}}"#);
            let _ = ws
                .send(tokio_tungstenite::tungstenite::Message::text(msg))
                .await;
        }
        faulty::hold(&mut ws, Duration::from_secs(30)).await;
    })
    .await;
    let config = yaml(
        &server.url(),
        "    sequence: { pointer: /seq }\n    timestamp: { pointer: /ts, unit: s }\n",
    );
    let run = once_run(&config, "500ms").await;
    assert_eq!(run.code, 0, "{}", run.json);
    assert_eq!(run.json["messages"], 5, "{}", run.json);
    assert_eq!(run.json["freshness_seconds"]["count"], 5, "{}", run.json);
}
