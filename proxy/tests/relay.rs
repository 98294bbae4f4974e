//! The relay's optional recordings and checks, against an in-process tokio-tungstenite
//! upstream: stamp pointers, ping RTT of upstream pings, and the origin allowlist.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wsmon_proxy::settings::StampPointers;

/// An upstream that greets each connection with a stamped JSON message and a ping.
async fn greeting_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    - 250;
                let _ = ws
                    .send(Message::text(format!(r#"{{"seq":7,"ts":{ts}}}"#)))
                    .await;
                let _ = ws.send(Message::Ping("rtt-probe".into())).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamp_pointers_and_upstream_pings_are_recorded() {
    let upstream = greeting_upstream().await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), |s| {
        s.stamp_pointers = Some(StampPointers {
            seq: "/seq".into(),
            published_ms: Some("/ts".into()),
        });
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(proxy.ws_url("/ws"))
        .await
        .unwrap();
    assert!(ws.next().await.unwrap().unwrap().is_text());
    assert!(ws.next().await.unwrap().unwrap().is_ping()); // tungstenite queues the pong
    ws.flush().await.unwrap();
    let rtt = "websocket_server_ping_rtt_seconds_count";
    wait_until(
        Duration::from_secs(10),
        || proxy.sample(rtt, &[("route", "/ws")]) == 1.0,
        "ping RTT",
    )
    .await;
    let m = proxy.metrics();
    let lag_count = sample(
        &m,
        "websocket_server_sequencer_lag_seconds_count",
        &[("route", "/ws")],
    );
    assert_eq!(lag_count, 1.0, "{m}");
    let lag_sum = sample(
        &m,
        "websocket_server_sequencer_lag_seconds_sum",
        &[("route", "/ws")],
    );
    assert!(
        (0.2..5.0).contains(&lag_sum),
        "published 250 ms before it passed: {lag_sum}"
    );
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_from_origins_outside_the_allowlist_get_403_without_reaching_the_upstream() {
    let (upstream, _task) = echo_upstream().await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), |s| {
        s.allowed_origins = Some(vec!["https://app.example".into()]);
    })
    .await;
    let mut request = proxy.ws_url("/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other}"),
    }
    let mut request = proxy.ws_url("/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    let upgrades = "websocket_server_upgrades_total";
    assert_eq!(
        proxy.sample(upgrades, &[("outcome", "rejected"), ("status_code", "403")]),
        1.0
    );
    assert_eq!(proxy.sample(upgrades, &[("outcome", "accepted")]), 1.0);
}
