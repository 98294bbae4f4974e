//! The fault controls, seen by a real WebSocket client over loopback, and the admin endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wsmon_feed::{Feed, FeedConfig};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Long enough for a loaded CI machine; every wait polls for its event.
const PATIENCE: Duration = Duration::from_secs(15);

async fn start(config: FeedConfig) -> (SocketAddr, Arc<Feed>, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let (addr, feed, _task) = wsmon_feed::spawn(
        "127.0.0.1:0".parse().unwrap(),
        config,
        &registry,
        std::future::pending(),
    )
    .await
    .unwrap();
    (addr, feed, registry)
}

fn quiet() -> FeedConfig {
    FeedConfig {
        rate: 0.0,
        heartbeat: None,
        ..FeedConfig::default()
    }
}

async fn connect(addr: SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap()
        .0
}

/// The next text message, parsed; panics after [`PATIENCE`].
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Connects and reads the snapshot, so the connection is subscribed before the test acts.
async fn subscribed(addr: SocketAddr) -> Ws {
    let mut ws = connect(addr).await;
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    ws
}

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap()
}

fn counter(registry: &prometheus::Registry, name: &str, label: (&str, &str)) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == label.0 && l.value() == label.1)
        })
        .map(|m| m.get_counter().value())
        .sum()
}

#[tokio::test]
async fn a_stall_stops_the_stream_and_resuming_delivers_what_was_held_in_order() {
    let (addr, feed, _) = start(quiet()).await;
    let mut ws = subscribed(addr).await;
    let faults = feed.faults();
    faults.stall(true);
    assert!(faults.status().stalled);
    let first = feed.hub().publish_tick();
    feed.hub().publish_tick();
    let silent = tokio::time::timeout(Duration::from_millis(800), ws.next()).await;
    assert!(
        silent.is_err(),
        "a message arrived while stalled: {silent:?}"
    );
    faults.stall(false);
    assert_eq!(seq(&next_json(&mut ws).await), first);
    assert_eq!(seq(&next_json(&mut ws).await), first + 1);
}

#[tokio::test]
async fn skipping_sequences_leaves_a_gap_of_that_size() {
    let (addr, feed, _) = start(quiet()).await;
    let mut ws = subscribed(addr).await;
    let before = feed.hub().publish_tick();
    assert_eq!(feed.faults().skip_sequences(5), before + 5);
    feed.hub().publish_tick();
    assert_eq!(seq(&next_json(&mut ws).await), before);
    assert_eq!(seq(&next_json(&mut ws).await), before + 6);
}

#[tokio::test]
async fn duplicating_resends_the_newest_messages_to_current_clients() {
    let (addr, feed, _) = start(quiet()).await;
    let mut ws = subscribed(addr).await;
    for _ in 0..3 {
        feed.hub().publish_tick();
    }
    assert_eq!(feed.faults().duplicate_last(2), 2);
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(seq(&next_json(&mut ws).await));
    }
    assert_eq!(seqs, [1, 2, 3, 2, 3]);
}

#[tokio::test]
async fn a_first_payload_delay_holds_back_new_connections_only_while_set() {
    let (addr, feed, _) = start(quiet()).await;
    let faults = feed.faults();
    faults.set_first_payload_delay(Duration::from_millis(1200));
    assert_eq!(faults.status().first_payload_delay_ms, 1200);
    let t = Instant::now();
    let mut ws = connect(addr).await;
    next_json(&mut ws).await;
    assert!(
        t.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        t.elapsed()
    );
    faults.clear();
    assert_eq!(faults.status().first_payload_delay_ms, 0);
    // Without the delay the snapshot is immediate; the bound is loose for loaded machines.
    let t = Instant::now();
    let mut ws = connect(addr).await;
    next_json(&mut ws).await;
    assert!(
        t.elapsed() < Duration::from_millis(1200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn dropping_connections_ends_them_without_a_close_frame_counted_as_1006() {
    let (addr, feed, registry) = start(quiet()).await;
    let mut ws = subscribed(addr).await;
    feed.faults().drop_connections();
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Err(frame),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Ok(Some(e)),
                None => return Ok(None),
            }
        }
    })
    .await
    .expect("the connection ends");
    match end {
        Ok(Some(WsError::Protocol(_)) | Some(WsError::Io(_)) | None) => {}
        other => panic!("expected an end without a close frame, got {other:?}"),
    }
    let deadline = Instant::now() + PATIENCE;
    while counter(
        &registry,
        "websocket_server_closes_total",
        ("close_code", "1006"),
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "no 1006 close was counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New connections are served.
    subscribed(addr).await;
}

#[tokio::test]
async fn a_burst_larger_than_the_queue_evicts_the_consumer_with_1013() {
    let config = FeedConfig {
        queue: wsmon::QueueConfig::default().capacity(16),
        ..quiet()
    };
    let (addr, feed, registry) = start(config).await;
    let mut ws = subscribed(addr).await;
    feed.faults().burst(5_000);
    let code = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("the stream ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the consumer is evicted");
    assert_eq!(code, Some(1013));
    let overflows: f64 = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "websocket_server_outbound_overflows_total")
        .flat_map(|f| f.get_metric().to_vec())
        .map(|m| m.get_counter().value())
        .sum();
    assert!(overflows >= 1.0, "overflows {overflows}");
}

#[tokio::test]
async fn an_oversized_message_exceeds_a_clients_limit() {
    let (addr, feed, _) = start(quiet()).await;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(4096);
    config.max_frame_size = Some(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}/ws"),
        Some(config),
        false,
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    let mut plain = subscribed(addr).await;
    let s = feed.faults().send_oversized(10_000);
    let big = next_json(&mut plain).await;
    assert_eq!(seq(&big), s);
    assert!(big["pad"].as_str().unwrap().len() >= 10_000);
    let err = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("the client reacts")
        .expect("an item");
    assert!(
        matches!(err, Err(WsError::Capacity(_))),
        "expected a capacity error, got {err:?}"
    );
}

#[tokio::test]
async fn a_blackholed_publish_is_accepted_but_never_delivered_while_ticks_flow() {
    let config = FeedConfig {
        rate: 20.0,
        ..quiet()
    };
    let (addr, feed, _) = start(config).await;
    let mut ws = subscribed(addr).await;
    let http = reqwest::Client::new();
    let publish = |nonce: &'static str| {
        let http = http.clone();
        async move {
            http.post(format!("http://{addr}/publish"))
                .body(format!(r#"{{"nonce":"{nonce}"}}"#))
                .send()
                .await
                .unwrap()
        }
    };
    feed.faults().blackhole_publishes(true);
    assert_eq!(publish("lost").await.status(), 200);
    // Twenty ticks later (about a second) the nonce has still not arrived.
    for _ in 0..20 {
        let m = next_json(&mut ws).await;
        assert_eq!(m["type"], "tick", "{m}");
    }
    feed.faults().blackhole_publishes(false);
    assert_eq!(publish("found").await.status(), 200);
    loop {
        let m = next_json(&mut ws).await;
        assert_ne!(m["nonce"], "lost");
        if m["nonce"] == "found" {
            break;
        }
    }
}

#[tokio::test]
async fn the_admin_endpoint_refuses_non_loopback_addresses() {
    let (_, feed, _) = start(quiet()).await;
    let err = wsmon_feed::admin::spawn(
        "0.0.0.0:0".parse().unwrap(),
        feed.clone(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("only listens on loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn the_admin_endpoint_switches_faults_and_reports_them() {
    let (addr, feed, _) = start(quiet()).await;
    let (admin, _task) = wsmon_feed::admin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        feed.clone(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str| http.post(format!("http://{admin}{path}")).send();
    assert_eq!(post("/faults/stall?on=true").await.unwrap().status(), 200);
    let status = http
        .get(format!("http://{admin}/faults"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["stalled"], true);
    assert!(feed.faults().status().stalled);
    let r = post("/faults/skip?n=7").await.unwrap();
    let head: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(head["head"], 7);
    assert_eq!(post("/faults/clear").await.unwrap().status(), 200);
    assert!(!feed.faults().status().stalled);
    assert_eq!(post("/faults/burst?n=1000000").await.unwrap().status(), 400);
    assert_eq!(post("/faults/skip?n=oops").await.unwrap().status(), 400);
    // The admin routes are not on the public listener.
    let public = http
        .post(format!("http://{addr}/faults/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}
