//! Hostile clients against the middleware over raw sockets: every violation ends the
//! connection without a panic, and is counted once, under the close code and initiator that
//! docs/metrics.md gives for it.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::blackhole::BlackholeProxy;
use support::raw_ws::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsmon::{Heartbeat, WsMon, WsMonBuilder};
use wsmon_feed::FeedConfig;

const CLOSES: &str = "websocket_server_closes_total";
const LIMIT: usize = 1024;

fn limited() -> WsMonBuilder {
    WsMon::builder().max_message_bytes(LIMIT)
}

/// A well-behaved client still gets its echo: the server survived.
async fn still_echoes(server: &EchoServer) {
    let mut client = connect(&server.url("/echo")).await;
    client.send(Message::text("ping?")).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("echo in time");
    assert_eq!(reply.unwrap().unwrap(), Message::text("ping?"));
}

/// Upgrades /echo by hand, sends `bytes`, and asserts that the server answers with a close
/// carrying `code`, counted exactly once as `initiator`/`code`, with no panic anywhere.
async fn hostile_bytes_end_with(builder: WsMonBuilder, bytes: &[u8], initiator: &str, code: u16) {
    let panics = panics_so_far();
    let server = start_echo(builder).await;
    let mut tcp = raw_upgrade(server.addr, "/echo").await;
    tcp.write_all(bytes).await.unwrap();
    assert_eq!(
        read_until_close(&mut tcp).await,
        ServerEnd::Close(Some(code)),
        "the server's close frame"
    );
    let code = code.to_string();
    let labels = [
        ("route", "/echo"),
        ("initiator", initiator),
        ("close_code", code.as_str()),
    ];
    expect_value(|| server.metrics(), CLOSES, &labels, 1.0).await;
    wait_until("the connection is gone", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 0
    })
    .await;
    assert_eq!(
        server.metrics().sum(CLOSES, &[("route", "/echo")]),
        1.0,
        "counted exactly once"
    );
    still_echoes(&server).await;
    assert_eq!(panics_so_far(), panics, "a panic happened while serving");
}

#[tokio::test]
async fn unmasked_client_frame_is_closed_with_1002_by_the_server() {
    let unmasked = frame(true, 0, OP_TEXT, false, b"hello");
    hostile_bytes_end_with(WsMon::builder(), &unmasked, "server", 1002).await;
}

#[tokio::test]
async fn reserved_bits_without_an_extension_are_closed_with_1002() {
    for rsv in [0b100, 0b010, 0b001] {
        let bytes = frame(true, rsv, OP_TEXT, true, b"hello");
        hostile_bytes_end_with(WsMon::builder(), &bytes, "server", 1002).await;
    }
}

#[tokio::test]
async fn unknown_data_and_control_opcodes_are_closed_with_1002() {
    for opcode in [0x3, 0x7, 0xb, 0xf] {
        let bytes = client_frame(opcode, b"x");
        hostile_bytes_end_with(WsMon::builder(), &bytes, "server", 1002).await;
    }
}

#[tokio::test]
async fn fragmented_or_oversized_control_frames_are_closed_with_1002() {
    let fragmented_ping = frame(false, 0, OP_PING, true, b"x");
    hostile_bytes_end_with(WsMon::builder(), &fragmented_ping, "server", 1002).await;
    let big_ping = client_frame(OP_PING, &[0u8; 200]);
    hostile_bytes_end_with(WsMon::builder(), &big_ping, "server", 1002).await;
}

#[tokio::test]
async fn continuation_without_a_first_fragment_is_closed_with_1002() {
    let orphan = client_frame(OP_CONTINUATION, b"tail");
    hostile_bytes_end_with(WsMon::builder(), &orphan, "server", 1002).await;
}

#[tokio::test]
async fn invalid_utf8_text_is_closed_with_1007() {
    let bytes = client_frame(OP_TEXT, &[b'o', b'k', 0xff, 0xfe]);
    hostile_bytes_end_with(WsMon::builder(), &bytes, "server", 1007).await;
    // A code point split across fragments that never completes.
    let mut split = frame(false, 0, OP_TEXT, true, &[0xe2, 0x82]);
    split.extend(frame(true, 0, OP_CONTINUATION, true, b"("));
    hostile_bytes_end_with(WsMon::builder(), &split, "server", 1007).await;
}

#[tokio::test]
async fn message_over_the_limit_in_fragments_is_closed_with_1009() {
    let half = vec![b'a'; LIMIT / 2 + 100];
    let mut bytes = frame(false, 0, OP_TEXT, true, &half);
    bytes.extend(frame(true, 0, OP_CONTINUATION, true, &half));
    hostile_bytes_end_with(limited(), &bytes, "server", 1009).await;
}

#[tokio::test]
async fn frame_header_claiming_an_exabyte_is_closed_with_1009_without_allocating_it() {
    let before = rss_bytes();
    // With a configured limit, and with axum's defaults (64 MiB messages, 16 MiB frames).
    hostile_bytes_end_with(limited(), &header_claiming(1 << 60), "server", 1009).await;
    hostile_bytes_end_with(WsMon::builder(), &header_claiming(1 << 60), "server", 1009).await;
    // The largest length the header can spell (its top bit is reserved by RFC 6455).
    hostile_bytes_end_with(WsMon::builder(), &header_claiming(u64::MAX), "server", 1009).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "RSS grew by {grown} bytes: the claimed length was allocated"
    );
}

#[tokio::test]
async fn close_frame_with_a_code_no_endpoint_may_send_is_answered_and_counted_as_1002() {
    // 1005, 1006 and 1015 are reserved for reporting; 999 and 5000 are outside every range.
    // tungstenite answers with 1002 and hands the application a close with 1002, so the
    // connection counts as the client's close with 1002 (the client did close, badly).
    for code in [1005u16, 1006, 1015, 999, 5000] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let bytes = client_frame(OP_CLOSE, &payload);
        hostile_bytes_end_with(WsMon::builder(), &bytes, "client", 1002).await;
    }
}

#[tokio::test]
async fn close_frame_with_a_one_byte_payload_is_closed_with_1002() {
    let bytes = client_frame(OP_CLOSE, &[0x03]);
    hostile_bytes_end_with(WsMon::builder(), &bytes, "server", 1002).await;
}

#[tokio::test]
async fn data_after_the_clients_close_is_ignored_and_the_close_counted_once() {
    let mut bytes = client_frame(OP_CLOSE, &4000u16.to_be_bytes());
    bytes.extend(client_frame(OP_TEXT, b"after close"));
    bytes.extend(client_frame(OP_CLOSE, &1000u16.to_be_bytes()));
    let panics = panics_so_far();
    let server = start_echo(WsMon::builder()).await;
    let mut tcp = raw_upgrade(server.addr, "/echo").await;
    tcp.write_all(&bytes).await.unwrap();
    assert_eq!(
        read_until_close(&mut tcp).await,
        ServerEnd::Close(Some(4000))
    );
    drop(tcp);
    let labels = [
        ("route", "/echo"),
        ("initiator", "client"),
        ("close_code", "4xxx"),
    ];
    expect_value(|| server.metrics(), CLOSES, &labels, 1.0).await;
    wait_until("the connection is gone", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 0
    })
    .await;
    assert_eq!(server.metrics().sum(CLOSES, &[("route", "/echo")]), 1.0);
    assert_eq!(
        server.metrics().sum(
            "websocket_server_messages_total",
            &[("direction", "receive"), ("frame_type", "text")]
        ),
        0.0,
        "nothing after the close reaches the application"
    );
    assert_eq!(panics_so_far(), panics);
}

/// How long the feed under test waits for request headers.
const HEADER_TIMEOUT: Duration = Duration::from_millis(500);

fn slowloris_feed() -> FeedConfig {
    FeedConfig {
        rate: 0.0,
        header_read_timeout: HEADER_TIMEOUT,
        ..FeedConfig::default()
    }
}

/// Reads until the server ends the connection; returns what it sent.
async fn read_to_end_within(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, tcp.read_to_end(&mut got))
        .await
        .expect("the server must close the connection");
    got
}

#[tokio::test]
async fn slowloris_upgrade_trickled_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let server = start_feed(slowloris_feed()).await;
    let request = upgrade_request(server.addr, "/ws").into_bytes();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    // One byte every 100 ms: the whole request would take ~20 s.
    let trickle = tokio::spawn(async move {
        let mut sent = 0usize;
        for byte in &request {
            if wr.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (sent, request.len())
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got))
        .await
        .expect("the server must cut the slowloris off well before the request completes");
    let (sent, total) = trickle.await.unwrap_or((0, 1));
    assert!(
        sent < total,
        "the server waited for the whole trickled request"
    );
    assert!(
        !String::from_utf8_lossy(&got).contains(" 101 "),
        "a trickled request must never be upgraded"
    );
    let s = server.metrics();
    assert_eq!(s.sum("websocket_server_upgrades_total", &[]), 0.0);
    assert_eq!(s.sum("websocket_server_active_connections", &[]), 0.0);
    // And the server still serves well-behaved clients.
    let mut client = connect(&server.ws_url()).await;
    assert!(client.next().await.unwrap().unwrap().is_text(), "snapshot");
}

#[tokio::test]
async fn a_connection_that_never_sends_its_request_is_closed_at_the_header_timeout() {
    let server = start_feed(slowloris_feed()).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let got = read_to_end_within(&mut silent, Duration::from_secs(10)).await;
    assert!(!String::from_utf8_lossy(&got).contains(" 101 "));
    // An idle keep-alive connection after a complete request is bounded the same way.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .unwrap();
    let got = read_to_end_within(&mut idle, Duration::from_secs(10)).await;
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "the first request is answered"
    );
}

#[tokio::test]
async fn a_publish_body_trickled_a_byte_at_a_time_is_refused_with_408() {
    let server = start_feed(slowloris_feed()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{\"a\":",
        server.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    // The remaining ~195 bytes at one every 100 ms would take ~20 s.
    let trickle = tokio::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got))
        .await
        .expect("the feed must give up on the body well before it completes");
    trickle.abort();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert_eq!(server.feed.hub().head(), 0, "nothing was published");
}

#[tokio::test]
async fn upgraded_connections_outlive_the_header_timeout() {
    let server = start_feed(FeedConfig {
        rate: 20.0,
        ..slowloris_feed()
    })
    .await;
    let mut client = connect(&server.ws_url()).await;
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    let mut texts = 0;
    while texts < 5 {
        let msg = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("ticks keep arriving")
            .expect("stream open")
            .expect("no error");
        texts += usize::from(msg.is_text());
    }
    assert_eq!(server.feed.wsmon().active_connections(), 1);
}

#[tokio::test]
async fn half_open_peer_that_vanishes_without_fin_is_cut_off_by_the_heartbeat_as_1006() {
    let panics = panics_so_far();
    let hb = Heartbeat::every(Duration::from_millis(100)).max_missed(2);
    let server = start_echo(WsMon::builder().heartbeat(hb)).await;
    let proxy = BlackholeProxy::start(server.addr).await;
    let url = format!("ws://{}/echo", proxy.addr);
    let mut client = connect(&url).await;
    client.send(Message::text("before")).await.unwrap();
    let mut echoed = false;
    while !echoed {
        let msg = client.next().await.unwrap().unwrap();
        echoed = msg == Message::text("before");
    }
    proxy.vanish();
    expect_heartbeat_cut_off(&server, "/echo", 1.0).await;
    wait_until(
        "the half-open connection is released",
        Duration::from_secs(5),
        || async { server.wsmon.active_connections() == 0 },
    )
    .await;
    assert_eq!(server.metrics().sum(CLOSES, &[("route", "/echo")]), 1.0);
    drop(client);
    drop(proxy);
    assert_eq!(panics_so_far(), panics);
}

#[tokio::test]
async fn clients_vanishing_mid_handshake_leave_upgrades_and_closes_equal() {
    let panics = panics_so_far();
    let server = start_echo(WsMon::builder()).await;
    let request = upgrade_request(server.addr, "/echo");
    for i in 0..200u32 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        if i % 2 == 0 {
            // RST right behind the request.
            #[allow(deprecated)]
            tcp.set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(tcp);
    }
    let accepted = || {
        server.metrics().sum(
            "websocket_server_upgrades_total",
            &[("route", "/echo"), ("outcome", "accepted")],
        )
    };
    let closes = || server.metrics().sum(CLOSES, &[("route", "/echo")]);
    wait_until(
        "every accepted upgrade ends in exactly one counted close",
        Duration::from_secs(10),
        || async { server.wsmon.active_connections() == 0 && accepted() == closes() },
    )
    .await;
    assert!(
        accepted() > 0.0,
        "some upgrades were answered before their client vanished"
    );
    let (s, closes) = (server.metrics(), closes());
    assert_eq!(
        closes,
        s.sum(
            CLOSES,
            &[
                ("route", "/echo"),
                ("initiator", "none"),
                ("close_code", "1006")
            ]
        ),
        "a client gone before its first frame ended without a close frame"
    );
    assert_eq!(panics_so_far(), panics);
}
