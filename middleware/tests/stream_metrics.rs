//! Stream-level metrics over real sockets: close codes by initiator, payload accounting,
//! first-payload latency, oversized messages, heartbeats, graceful shutdown, and the
//! tokio-tungstenite wrapper.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::MaybeTlsStream;
use wsmon::{Heartbeat, WsMon};
use wsmon_feed::FeedConfig;

const CLOSES: &str = "websocket_server_closes_total";

async fn client_closes_with(url: &str, code: u16) {
    let mut client = connect(url).await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    // Drain until the server's close reply ends the stream.
    while let Some(Ok(_)) = client.next().await {}
}

#[tokio::test]
async fn client_close_codes_are_counted_with_client_initiator() {
    let server = start_echo(WsMon::builder().close_code_allowlist([4001])).await;
    let url = server.url("/echo");
    for code in [1000, 1001, 4001, 4002] {
        client_closes_with(&url, code).await;
    }
    let m = || server.metrics();
    for (code, label) in [
        (1000, "1000"),
        (1001, "1001"),
        (4001, "4001"),
        (4002, "4xxx"),
    ] {
        expect_value(
            m,
            CLOSES,
            &[
                ("route", "/echo"),
                ("initiator", "client"),
                ("close_code", label),
            ],
            1.0,
        )
        .await;
        let _ = code;
    }
    let scrape = server.metrics();
    assert_eq!(scrape.sum(CLOSES, &[("initiator", "server")]), 0.0);
    assert_eq!(scrape.sum(CLOSES, &[("initiator", "none")]), 0.0);
    assert_eq!(
        scrape.sum("websocket_server_active_connections", &[("route", "/echo")]),
        0.0
    );
}

#[tokio::test]
async fn server_close_is_counted_with_server_initiator_and_route_template() {
    let server = start_echo(WsMon::builder().close_code_allowlist([4001])).await;
    for code in [1000, 4001, 1013] {
        let mut client = connect(&server.url(&format!("/close/{code}"))).await;
        let mut seen = None;
        while let Some(Ok(msg)) = client.next().await {
            if let Message::Close(frame) = msg {
                seen = frame.map(|f| u16::from(f.code));
            }
        }
        assert_eq!(seen, Some(code), "client saw the server's close code");
    }
    let m = || server.metrics();
    for label in ["1000", "4001", "1013"] {
        expect_value(
            m,
            CLOSES,
            &[
                ("route", "/close/{code}"),
                ("initiator", "server"),
                ("close_code", label),
            ],
            1.0,
        )
        .await;
    }
    assert_eq!(
        server.metrics().sum(CLOSES, &[("initiator", "client")]),
        0.0
    );
}

#[tokio::test]
async fn abrupt_tcp_drop_counts_as_1006_without_initiator() {
    let server = start_echo(WsMon::builder()).await;
    let mut client = connect(&server.url("/echo")).await;
    client.send(Message::text("hello")).await.unwrap();
    let _echo = client.next().await.unwrap().unwrap();
    if let MaybeTlsStream::Plain(tcp) = client.get_mut() {
        // RST instead of FIN: the harshest way a peer can vanish.
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap();
    }
    drop(client);
    expect_value(
        || server.metrics(),
        CLOSES,
        &[
            ("route", "/echo"),
            ("initiator", "none"),
            ("close_code", "1006"),
        ],
        1.0,
    )
    .await;
    let scrape = server.metrics();
    assert_eq!(
        scrape.sum(CLOSES, &[("route", "/echo")]),
        1.0,
        "counted exactly once"
    );
}

#[tokio::test]
async fn messages_and_bytes_pass_through_byte_identical_and_are_counted() {
    let server = start_echo(WsMon::builder()).await;
    let mut client = connect(&server.url("/echo")).await;
    let mut sent_bytes = 0u64;
    let mut texts = 0u64;
    let mut binaries = 0u64;
    for i in 0..50u32 {
        let len = (i as usize * 997) % 20_000;
        let msg = if i % 2 == 0 {
            texts += 1;
            let s: String = (0..len)
                .map(|j| char::from(b'a' + ((i as usize + j) % 26) as u8))
                .collect();
            Message::text(s + "ü✓")
        } else {
            binaries += 1;
            let b: Vec<u8> = (0..len)
                .map(|j| ((j * 31 + i as usize) % 256) as u8)
                .collect();
            Message::binary(b)
        };
        sent_bytes += msg.len() as u64;
        client.send(msg.clone()).await.unwrap();
        let echoed = client.next().await.unwrap().unwrap();
        assert_eq!(echoed, msg, "message {i} came back byte-identical");
    }
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}

    let m = || server.metrics();
    let route = ("route", "/echo");
    expect_value(
        m,
        CLOSES,
        &[route, ("initiator", "client"), ("close_code", "1005")],
        1.0,
    )
    .await;
    let s = server.metrics();
    let msgs = "websocket_server_messages_total";
    let bytes = "websocket_server_payload_bytes_total";
    for dir in ["receive", "transmit"] {
        assert_eq!(
            s.sum(msgs, &[route, ("direction", dir), ("frame_type", "text")]),
            texts as f64
        );
        assert_eq!(
            s.sum(msgs, &[route, ("direction", dir), ("frame_type", "binary")]),
            binaries as f64
        );
        assert_eq!(
            s.sum(bytes, &[route, ("direction", dir)]),
            sent_bytes as f64,
            "{dir} bytes"
        );
    }
    assert_eq!(
        s.sum(
            msgs,
            &[route, ("direction", "receive"), ("frame_type", "close")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            msgs,
            &[route, ("direction", "transmit"), ("frame_type", "close")]
        ),
        0.0,
        "tungstenite's automatic close reply bypasses the wrapper; only frames the app sends count"
    );
}

#[tokio::test]
async fn first_payload_latency_matches_an_injected_delay_within_2ms() {
    // The ground truth is what the handler measured around its own sleep, so a loaded machine
    // that oversleeps moves the truth and the metric together.
    let server = start_echo(WsMon::builder()).await;
    let mut truth = 0.0;
    for _ in 0..3 {
        let mut client = connect(&server.url("/delayed/150")).await;
        let first = client.next().await.unwrap().unwrap();
        let waited_us: f64 = first.to_text().unwrap().parse().unwrap();
        assert!(
            waited_us >= 150_000.0,
            "the handler slept at least the injected delay"
        );
        truth += waited_us / 1e6;
        client.close(None).await.unwrap();
    }
    let name = "websocket_server_first_payload_latency_seconds";
    let route = ("route", "/delayed/{ms}");
    let s = server.metrics();
    assert_eq!(s.sum(&format!("{name}_count"), &[route]), 3.0);
    let recorded = s.sum(&format!("{name}_sum"), &[route]);
    assert!(
        (recorded - truth).abs() / 3.0 < 0.002,
        "first-payload latency {recorded:.6}s over 3 connections vs {truth:.6}s measured by the handler"
    );
}

#[tokio::test]
async fn the_feed_holds_its_snapshot_back_by_the_configured_delay() {
    let delay = Duration::from_millis(100);
    let server = start_feed(FeedConfig {
        first_payload_delay: delay,
        rate: 0.0,
        ..FeedConfig::default()
    })
    .await;
    let mut client = connect(&server.ws_url()).await;
    let first = client.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"snapshot\""));
    let s = server.metrics();
    let sum = s.sum(
        "websocket_server_first_payload_latency_seconds_sum",
        &[("route", "/ws")],
    );
    assert!(
        sum >= delay.as_secs_f64(),
        "recorded {sum}s, injected {delay:?}"
    );
    assert_eq!(
        s.sum("websocket_server_connections_without_payload_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn connection_closed_before_any_payload_is_counted() {
    let server = start_echo(WsMon::builder()).await;
    client_closes_with(&server.url("/silent"), 1000).await;
    expect_value(
        || server.metrics(),
        "websocket_server_connections_without_payload_total",
        &[("route", "/silent")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn oversized_message_is_closed_with_1009_and_counted() {
    let server = start_echo(WsMon::builder().max_message_bytes(1024)).await;
    let mut client = connect(&server.url("/echo")).await;
    client.send(Message::text("small")).await.unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Message::text("small")
    );
    client.send(Message::binary(vec![7u8; 4096])).await.unwrap();
    let mut close_code = None;
    while let Some(Ok(msg)) = client.next().await {
        if let Message::Close(Some(frame)) = msg {
            close_code = Some(u16::from(frame.code));
        }
    }
    assert_eq!(close_code, Some(1009));
    expect_value(
        || server.metrics(),
        CLOSES,
        &[
            ("route", "/echo"),
            ("initiator", "server"),
            ("close_code", "1009"),
        ],
        1.0,
    )
    .await;
    assert_eq!(server.metrics().sum(CLOSES, &[]), 1.0);
}

#[tokio::test]
async fn heartbeat_measures_rtt_and_times_out_an_unresponsive_peer() {
    // Four missed pongs in a row: a loaded machine delaying one pong must not cut a live peer.
    let hb = Heartbeat::every(Duration::from_millis(150)).max_missed(4);
    let server = start_echo(WsMon::builder().heartbeat(hb)).await;

    // A responsive client: its library answers pings while it keeps reading.
    let live = connect(&server.url("/echo")).await;
    let (mut live_tx, mut live_rx) = live.split();
    let (texts_tx, mut texts) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = live_rx.next().await {
            if let Message::Text(t) = msg {
                let _ = texts_tx.send(t.to_string());
            }
        }
    });

    // An unresponsive client: never reads, so never answers a ping.
    let dead = connect(&server.url("/echo")).await;
    expect_heartbeat_cut_off(&server, "/echo", 1.0).await;
    let rtts = server.metrics().sum(
        "websocket_server_ping_rtt_seconds_count",
        &[("route", "/echo")],
    );
    assert!(rtts >= 2.0, "pong round trips recorded: {rtts}");
    // Several more intervals pass: the responsive client is never timed out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server
            .metrics()
            .sum("websocket_server_heartbeat_timeouts_total", &[]),
        1.0
    );
    live_tx.send(Message::text("still here")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), texts.recv())
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("still here"));
    drop(dead);
}

#[tokio::test]
async fn graceful_shutdown_closes_every_connection_with_1001() {
    let server = start_echo(WsMon::builder()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&server.url("/echo")).await);
    }
    wait_until("5 live", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 5
    })
    .await;
    let wsmon = server.wsmon.clone();
    let waiter = tokio::spawn(async move { wsmon.shutdown_and_wait(Duration::from_secs(5)).await });
    for mut client in clients {
        let mut code = None;
        while let Some(Ok(msg)) = client.next().await {
            if let Message::Close(Some(f)) = msg {
                code = Some(u16::from(f.code));
            }
        }
        assert_eq!(code, Some(1001));
    }
    assert_eq!(waiter.await.unwrap(), 0, "no connection left open");
    let s = server.metrics();
    assert_eq!(
        s.sum(CLOSES, &[("initiator", "server"), ("close_code", "1001")]),
        5.0
    );
    // New upgrades are refused while shutting down.
    let refused = connect_with_header(&server.url("/echo"), "x-test", "1").await;
    assert_eq!(refused.err(), Some(503));
}

#[tokio::test]
async fn tokio_tungstenite_server_is_instrumented_through_accept() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/raw").build(&registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_wsmon = wsmon.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let wsmon = server_wsmon.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = wsmon::tokio_tungstenite_server::accept(&wsmon, "/raw", tcp).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    let mut client = connect(&format!("ws://{addr}/")).await;
    client
        .send(Message::Binary(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Message::Binary(Bytes::from_static(b"abc"))
    );
    client
        .close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "".into(),
        }))
        .await
        .unwrap();
    while let Some(Ok(_)) = client.next().await {}
    let m = || scrape_of(&registry);
    expect_value(
        m,
        CLOSES,
        &[
            ("route", "/raw"),
            ("initiator", "client"),
            ("close_code", "1001"),
        ],
        1.0,
    )
    .await;
    let s = scrape_of(&registry);
    assert_eq!(
        s.sum(
            "websocket_server_upgrades_total",
            &[("route", "/raw"), ("outcome", "accepted")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "websocket_server_payload_bytes_total",
            &[("route", "/raw"), ("direction", "transmit")]
        ),
        3.0
    );
}

#[tokio::test]
async fn a_stamp_extractor_reads_sequence_and_publish_time_from_outgoing_json() {
    let extractor = wsmon::sequencer::json_stamp_extractor("/seq", Some("/ts"));
    let server = start_echo(WsMon::builder().stamp_extractor(extractor)).await;
    server.wsmon.route("/echo").expect("declared").set_head(10);
    let mut client = connect(&server.url("/echo")).await;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 250;
    // The echo handler sends these back: the extractor sees them on the way out.
    for seq in [4, 7] {
        client
            .send(Message::text(format!(r#"{{"seq":{seq},"ts":{ts}}}"#)))
            .await
            .unwrap();
        client.next().await.unwrap().unwrap();
    }
    client.send(Message::text("not json")).await.unwrap();
    client.next().await.unwrap().unwrap();
    let s = server.metrics();
    let route = ("route", "/echo");
    assert_eq!(
        s.sum("websocket_server_sequencer_lag_messages_count", &[route]),
        2.0
    );
    assert_eq!(
        s.sum("websocket_server_sequencer_lag_messages_sum", &[route]),
        (10 - 4 + 10 - 7) as f64
    );
    let lag_sum = s.sum("websocket_server_sequencer_lag_seconds_sum", &[route]);
    assert!(
        (0.5..1.5).contains(&lag_sum),
        "two messages ~250 ms old: {lag_sum}"
    );
}

#[tokio::test]
async fn an_application_queue_reports_its_own_depth() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/own").build(&registry).unwrap();
    let (a, _b) = tokio::io::duplex(1024);
    let socket = wsmon.instrument(
        "/own",
        tokio_tungstenite::WebSocketStream::from_raw_socket(
            a,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await,
    );
    socket.handle().report_queue_depth(42, true);
    let s = scrape_of(&registry);
    assert_eq!(
        s.sum(
            "websocket_server_outbound_queue_messages",
            &[("route", "/own")]
        ),
        42.0
    );
    assert_eq!(
        s.sum("websocket_server_slow_consumers", &[("route", "/own")]),
        1.0
    );
    assert_eq!(
        s.sum(
            "websocket_server_outbound_queue_depth_count",
            &[("route", "/own")]
        ),
        1.0
    );
    drop(socket);
    let s = scrape_of(&registry);
    assert_eq!(
        s.sum(
            "websocket_server_outbound_queue_messages",
            &[("route", "/own")]
        ),
        0.0
    );
    assert_eq!(
        s.sum("websocket_server_active_connections", &[("route", "/own")]),
        0.0
    );
}
