//! Hostile input: the proxy stands in front of production traffic and must survive peers that
//! misbehave, without a panic, a hang or unbounded memory, and count what it did.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const UPGRADES: &str = "websocket_server_upgrades_total";
const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

fn owned(v: &[(&str, &str, f64)]) -> Vec<(String, String, f64)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_a_slow_consumer_then_overflows_with_1013() {
    if !require("node") {
        return;
    }
    let upstream = ForeignServer::node();
    let proxy = RunningProxy::start(&upstream.url(), |s| {
        s.relay.buffer_bytes = 4096;
        s.relay.slow_after = Duration::from_millis(200);
        s.relay.stall_timeout = Duration::from_secs(3);
    })
    .await;
    let mut client = RawClient::upgrade(proxy.addr, "/ws").await;
    // 40 MB: more than the loopback socket buffers of both legs hold.
    client.send(&frame(1, b"blast:10000:4096", MASK)).await;
    let slow = "websocket_server_slow_consumers";
    wait_until(
        Duration::from_secs(30),
        || proxy.sample(slow, &[("route", "/ws")]) == 1.0,
        "a slow consumer",
    )
    .await;
    let overflow = "websocket_server_outbound_overflows_total";
    let disconnect = [("route", "/ws"), ("action", "disconnect")];
    wait_until(
        Duration::from_secs(30),
        || proxy.sample(overflow, &disconnect) == 1.0,
        "the overflow",
    )
    .await;
    proxy.quiescent(Duration::from_secs(30)).await;
    let m = proxy.metrics();
    assert_eq!(nonzero_closes(&m), owned(&[("server", "1013", 1.0)]), "{m}");
    assert_eq!(
        sample(&m, slow, &[]),
        0.0,
        "the gauge falls with the connection"
    );
    let depth = "websocket_server_outbound_queue_depth_count";
    assert!(sample(&m, depth, &[("route", "/ws")]) >= 1.0);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_and_oversized_headers_get_431() {
    let (upstream, _task) = echo_upstream().await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), |s| {
        s.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 256];
        loop {
            // One header byte at a time, never finishing the head.
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            tokio::select! {
                read = slow.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return } else { continue },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the slowloris connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut big = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), big.read(&mut answer))
        .await
        .expect("an answer, not a hang")
        .unwrap_or(0);
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(proxy.sample(UPGRADES, &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmasked_and_oversized_client_frames_close_both_legs_with_1002_and_1009() {
    if !require("python3") {
        return;
    }
    let upstream = ForeignServer::python();
    let proxy = RunningProxy::start(&upstream.url(), |s| {
        s.relay.max_message_bytes = Some(1024);
    })
    .await;
    let mut client = RawClient::upgrade(proxy.addr, "/ws").await;
    client.send(&frame(1, b"fine", MASK)).await;
    client.send(&frame(1, b"not masked", None)).await;
    assert_eq!(client.close_code(Duration::from_secs(10)).await, Some(1002));
    let line = upstream.next_line(Duration::from_secs(10));
    assert_eq!(
        line.as_deref(),
        Some("CLOSED 1002"),
        "the upstream was told too"
    );

    let mut client = RawClient::upgrade(proxy.addr, "/ws").await;
    // A header announcing 1 GiB: refused from the header, nothing buffered.
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&MASK.unwrap());
    client.send(&header).await;
    assert_eq!(client.close_code(Duration::from_secs(10)).await, Some(1009));
    assert_eq!(
        upstream.next_line(Duration::from_secs(10)).as_deref(),
        Some("CLOSED 1009")
    );

    proxy.quiescent(Duration::from_secs(30)).await;
    let m = proxy.metrics();
    assert_eq!(
        nonzero_closes(&m),
        owned(&[("server", "1002", 1.0), ("server", "1009", 1.0)]),
        "{m}"
    );
}

/// An upstream that answers the upgrade correctly, then sends bytes that are not WebSocket.
async fn garbage_upstream(after_101: &'static [u8], answer_101: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![];
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let key = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("sec-websocket-key: ")
                            .or_else(|| l.strip_prefix("Sec-WebSocket-Key: "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let accept =
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                if answer_101 {
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                }
                let _ = s.write_all(after_101).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_sending_garbage_gets_the_client_a_1011_or_a_502() {
    let addr = garbage_upstream(b"\xff\xff\xff\xff\xff\xffgarbage", true).await;
    let proxy = RunningProxy::start(&format!("http://{addr}"), |_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(proxy.ws_url("/ws"))
        .await
        .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("no hang");
    match close {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    proxy.quiescent(Duration::from_secs(30)).await;
    assert_eq!(
        nonzero_closes(&proxy.metrics()),
        owned(&[("server", "1011", 1.0)])
    );

    let addr = garbage_upstream(b"NOT HTTP AT ALL\r\n\r\n", false).await;
    let proxy = RunningProxy::start(&format!("http://{addr}"), |_| {}).await;
    match tokio_tungstenite::connect_async(proxy.ws_url("/ws"))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 502),
        other => panic!("expected 502, got {other}"),
    }
    assert_eq!(
        proxy.sample(UPGRADES, &[("outcome", "rejected"), ("status_code", "502")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_10000_connects_and_disconnects_leaves_exact_counters() {
    const TOTAL: usize = 10_000;
    const PARALLEL: usize = 32;
    let (upstream, _task) = echo_upstream().await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), |_| {}).await;
    let url = proxy.ws_url("/ws");
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                for i in (w..TOTAL).step_by(PARALLEL) {
                    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
                    if i % 2 == 0 {
                        ws.close(None).await.unwrap();
                        while ws.next().await.is_some() {}
                    } else {
                        // Half of them just vanish.
                        drop(ws);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(240), w)
            .await
            .expect("storm bounded in time")
            .unwrap();
    }
    proxy.quiescent(Duration::from_secs(60)).await;
    eprintln!("storm of {TOTAL} took {:?}", started.elapsed());
    let m = proxy.metrics();
    let accepted = [("route", "/ws"), ("outcome", "accepted")];
    assert_eq!(sample(&m, UPGRADES, &accepted), TOTAL as f64);
    assert_eq!(
        nonzero_closes(&m),
        owned(&[
            ("client", "1005", (TOTAL / 2) as f64),
            ("none", "1006", (TOTAL / 2) as f64)
        ]),
        "{m}"
    );
    let durations = "websocket_server_connection_duration_seconds_count";
    assert_eq!(sample(&m, durations, &[("route", "/ws")]), TOTAL as f64);
    assert_eq!(sample(&m, "websocket_server_active_connections", &[]), 0.0);
    // Still serving after the storm.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
}
