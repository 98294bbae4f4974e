//! `GET /ws?from=N` on a single feed without Redis: the bounded in-memory history.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use wsmon_feed::FeedConfig;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start(history: usize) -> (SocketAddr, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let config = FeedConfig {
        rate: 0.0,
        heartbeat: None,
        history,
        ..FeedConfig::default()
    };
    let (addr, _feed, _task) = wsmon_feed::spawn(
        "127.0.0.1:0".parse().unwrap(),
        config,
        &registry,
        std::future::pending(),
    )
    .await
    .unwrap();
    (addr, registry)
}

async fn publish(addr: SocketAddr, n: usize) {
    let http = reqwest::Client::new();
    for i in 0..n {
        let r = http
            .post(format!("http://{addr}/publish"))
            .body(format!(r#"{{"n":{i}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn connect(addr: SocketAddr, query: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}"))
        .await
        .unwrap()
        .0
}

/// The next `n` text messages, parsed.
async fn next_json(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10s")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(t) = msg {
            out.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    out
}

fn seqs(msgs: &[Value]) -> Vec<u64> {
    msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

fn counter(registry: &prometheus::Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| match label {
            None => true,
            Some((k, v)) => m
                .get_label()
                .iter()
                .any(|l| l.name() == k && l.value() == v),
        })
        .map(|m| m.get_counter().value())
        .sum()
}

#[tokio::test]
async fn a_resume_inside_the_history_replays_every_later_message_then_continues_live() {
    let (addr, registry) = start(100).await;
    publish(addr, 10).await;
    let mut ws = connect(addr, "?from=4").await;
    // No snapshot: the first message is seq 5.
    assert_eq!(seqs(&next_json(&mut ws, 6).await), [5, 6, 7, 8, 9, 10]);
    publish(addr, 2).await;
    assert_eq!(seqs(&next_json(&mut ws, 2).await), [11, 12]);
    let hits = counter(
        &registry,
        "websocket_server_resumes_total",
        Some(("outcome", "hit")),
    );
    assert_eq!(hits, 1.0);
    let replayed = counter(&registry, "websocket_server_replayed_messages_total", None);
    assert_eq!(replayed, 6.0);
}

#[tokio::test]
async fn a_resume_at_the_head_gets_only_live_messages() {
    let (addr, _registry) = start(100).await;
    publish(addr, 3).await;
    let mut ws = connect(addr, "?from=3").await;
    publish(addr, 1).await;
    let got = next_json(&mut ws, 1).await;
    assert_eq!(seqs(&got), [4], "{got:?}");
}

#[tokio::test]
async fn a_resume_older_than_the_history_is_told_what_is_missing_and_counted() {
    let (addr, registry) = start(5).await;
    publish(addr, 20).await;
    let mut ws = connect(addr, "?from=3").await;
    let got = next_json(&mut ws, 6).await;
    assert_eq!(
        got[0],
        serde_json::json!({"type": "resume_miss", "from": 3, "oldest": 16})
    );
    assert_eq!(seqs(&got[1..]), [16, 17, 18, 19, 20]);
    let misses = counter(
        &registry,
        "websocket_server_resumes_total",
        Some(("outcome", "miss")),
    );
    assert_eq!(misses, 1.0);
    let missed = counter(
        &registry,
        "websocket_server_resume_missed_messages_total",
        None,
    );
    assert_eq!(missed, 12.0, "messages 4..=15 are gone");
}

#[tokio::test]
async fn a_resume_point_past_the_head_is_a_miss_not_a_silent_wait() {
    let (addr, _registry) = start(5).await;
    publish(addr, 2).await;
    let mut ws = connect(addr, "?from=50").await;
    let got = next_json(&mut ws, 1).await;
    assert_eq!(
        got[0],
        serde_json::json!({"type": "resume_miss", "from": 50, "oldest": 3})
    );
    publish(addr, 1).await;
    assert_eq!(seqs(&next_json(&mut ws, 1).await), [3]);
}

#[tokio::test]
async fn without_from_the_connection_still_starts_with_a_snapshot() {
    let (addr, _registry) = start(5).await;
    publish(addr, 2).await;
    let mut ws = connect(addr, "").await;
    let got = next_json(&mut ws, 1).await;
    assert_eq!(got[0], serde_json::json!({"type": "snapshot", "seq": 2}));
}

#[tokio::test]
async fn a_from_that_is_not_a_number_is_refused_before_the_upgrade() {
    let (addr, _registry) = start(5).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?from=abc"))
        .await
        .expect_err("the upgrade must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 400),
        other => panic!("expected an HTTP 400, got {other:?}"),
    }
}
