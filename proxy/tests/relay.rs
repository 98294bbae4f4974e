//! The relay's optional recordings and checks, against an in-process tokio-tungstenite
//! upstream: stamp pointers, ping RTT of upstream pings, and the origin allowlist.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// A client that sends a message and its TCP end together: the upstream gets both, the other
/// direction keeps relaying, and the relay ends `linger` after the first direction did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_leg_is_mirrored_and_the_other_direction_lingers_then_ends() {
    use tokio::io::AsyncWriteExt;
    let upstream = RawUpstream::start().await;
    let linger = Duration::from_millis(500);
    let proxy = RunningProxy::start(&format!("http://{}", upstream.addr), |s| {
        s.relay.linger = linger;
    })
    .await;
    let mut client = RawClient::upgrade(proxy.addr, "/ws").await;
    let mut up = upstream.stream().await;
    let sent = frame(1, b"last words", Some([1, 2, 3, 4]));
    client.stream.write_all(&sent).await.unwrap();
    let started = Instant::now();
    client.stream.shutdown().await.unwrap();
    let (got, ended) = read_to_end(&mut up, Duration::from_secs(10)).await;
    assert_eq!(got, sent, "the frame, byte for byte");
    assert!(ended, "the client's TCP end reached the upstream");

    // The upstream's side still relays, within the linger.
    let late = frame(1, b"a late reply", None);
    up.write_all(&late).await.unwrap();
    let (got, ended) = read_to_end(&mut client.stream, Duration::from_secs(20)).await;
    assert_eq!(got, late, "the reply after the client's end");
    assert!(ended, "the relay ended after its linger");
    assert!(
        started.elapsed() >= linger,
        "not before the linger: {:?}",
        started.elapsed()
    );
    proxy.quiescent(Duration::from_secs(10)).await;
    let m = proxy.metrics();
    assert_eq!(
        nonzero_closes(&m),
        [("none".to_owned(), "1006".to_owned(), 1.0)],
        "{m}"
    );
}

/// A graceful shutdown toward peers that never answer the 1001: each leg gets its close
/// frame, and the drain ends at `drain_timeout`, far before the shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_toward_silent_peers_ends_at_the_drain_timeout() {
    let upstream = RawUpstream::start().await;
    let proxy = RunningProxy::start(&format!("http://{}", upstream.addr), |s| {
        s.relay.drain_timeout = Duration::from_millis(300);
        s.relay.linger = Duration::from_secs(120);
        s.shutdown_timeout = Duration::from_secs(120);
    })
    .await;
    let mut client = RawClient::upgrade(proxy.addr, "/ws").await;
    let mut up = upstream.stream().await;
    wait_until(
        Duration::from_secs(10),
        || proxy.proxy.wsmon().active_connections() == 1,
        "the relay to start",
    )
    .await;
    let started = Instant::now();
    let stopped = tokio::spawn(proxy.shutdown());
    assert_eq!(
        client.close_code(Duration::from_secs(60)).await,
        Some(1001),
        "the client got 1001 and then the end"
    );
    let (got, ended) = read_to_end(&mut up, Duration::from_secs(60)).await;
    assert!(ended, "the upstream leg ended");
    assert_eq!(got.len(), 8, "one masked close frame: {got:?}");
    assert_eq!(got[0], 0x88, "a final close frame");
    assert_eq!(got[1], 0x82, "masked, two payload bytes");
    let code: Vec<u8> = got[6..]
        .iter()
        .zip(&got[2..6])
        .map(|(b, m)| b ^ m)
        .collect();
    assert_eq!(code, 1001u16.to_be_bytes(), "1001, masked");
    tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the drain timeout ended the relay, not the 120 s linger or shutdown timeout: {:?}",
        started.elapsed()
    );
}
