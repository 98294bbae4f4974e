//! Slow consumers against the feed's bounded outbound queue. In its own test binary so the
//! RSS measurements see no other test's allocations.

mod support;

use std::time::Duration;

use serde_json::{json, Map, Value};
use support::*;
use tokio::net::TcpSocket;
use wsmon::{OverflowPolicy, QueueConfig};
use wsmon_feed::FeedConfig;

const PAD: usize = 64 * 1024;

/// A client that completes the handshake with a tiny receive buffer and then never reads.
async fn stalled_client(server: &FeedServer) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let (client, _) = tokio_tungstenite::client_async(
        server.ws_url(),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .unwrap();
    client
}

fn big_message() -> Map<String, Value> {
    let Value::Object(m) = json!({ "pad": "x".repeat(PAD) }) else {
        unreachable!()
    };
    m
}

fn feed_with(policy: OverflowPolicy) -> FeedConfig {
    FeedConfig {
        rate: 0.0,
        heartbeat: None,
        queue: QueueConfig::default().capacity(16).policy(policy),
        // The resume history would keep the big messages alive and hide what the queue holds.
        history: 16,
        ..FeedConfig::default()
    }
}

// The two scenarios share one test so their RSS readings cannot overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_are_evicted_or_dropped_per_policy_and_memory_stays_flat() {
    slow_consumer_is_disconnected_with_1013().await;
    slow_consumer_loses_oldest_messages_but_stays_connected().await;
}

async fn slow_consumer_is_disconnected_with_1013() {
    let server = start_feed(feed_with(OverflowPolicy::Disconnect)).await;
    let _client = stalled_client(&server).await;
    wait_until("subscribed", Duration::from_secs(5), || async {
        server.feed.hub().subscribers() == 1
    })
    .await;
    let mut published = 0;
    while server.metrics().sum(
        "websocket_server_outbound_overflows_total",
        &[("action", "disconnect")],
    ) == 0.0
    {
        assert!(
            published < 5_000,
            "no overflow after {published} messages of {PAD} bytes"
        );
        server.feed.hub().publish_object(big_message());
        published += 1;
        tokio::task::yield_now().await;
    }
    let m = || server.metrics();
    expect_value(
        m,
        "websocket_server_closes_total",
        &[("initiator", "server"), ("close_code", "1013")],
        1.0,
    )
    .await;
    expect_value(m, "websocket_server_active_connections", &[], 0.0).await;
    let s = server.metrics();
    assert_eq!(s.sum("websocket_server_slow_consumers", &[]), 0.0);
    assert_eq!(s.sum("websocket_server_outbound_queue_messages", &[]), 0.0);
    assert_eq!(s.sum("websocket_server_closes_total", &[]), 1.0);
    assert!(s.sum("websocket_server_outbound_queue_depth_count", &[]) >= 16.0);
}

async fn slow_consumer_loses_oldest_messages_but_stays_connected() {
    let server = start_feed(feed_with(OverflowPolicy::DropOldest)).await;
    let _client = stalled_client(&server).await;
    wait_until("subscribed", Duration::from_secs(5), || async {
        server.feed.hub().subscribers() == 1
    })
    .await;
    // Fill the socket buffers and the queue first; after that only the queue could grow.
    while server.metrics().sum(
        "websocket_server_outbound_overflows_total",
        &[("action", "drop")],
    ) == 0.0
    {
        server.feed.hub().publish_object(big_message());
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_bytes();
    let more = 500;
    for _ in 0..more {
        server.feed.hub().publish_object(big_message());
        tokio::task::yield_now().await;
    }
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    let offered = (more * PAD) as u64;
    assert!(
        growth < offered / 4,
        "RSS grew {growth} bytes while {offered} bytes were offered to a bounded queue"
    );
    let s = server.metrics();
    assert!(
        s.sum(
            "websocket_server_outbound_overflows_total",
            &[("action", "drop")]
        ) >= more as f64
    );
    assert_eq!(
        s.sum("websocket_server_active_connections", &[]),
        1.0,
        "still connected"
    );
    assert_eq!(s.sum("websocket_server_slow_consumers", &[]), 1.0);
    assert_eq!(s.sum("websocket_server_outbound_queue_messages", &[]), 16.0);
    assert_eq!(s.sum("websocket_server_closes_total", &[]), 0.0);
}
