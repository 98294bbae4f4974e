//! wsmon-proxy in front of servers wsmon did not write (Node `ws`, Python `websockets`),
//! driven by foreign clients; the proxy's metrics must match what happened, one for one.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const UPGRADES: &str = "websocket_server_upgrades_total";
const MESSAGES: &str = "websocket_server_messages_total";

fn owned(v: &[(&str, &str, f64)]) -> Vec<(String, String, f64)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect()
}

async fn client(program: &'static str, url: String, mode: &'static str) -> serde_json::Value {
    let script = if program == "node" {
        "node_client.js"
    } else {
        "python_client.py"
    };
    tokio::task::spawn_blocking(move || run_client(program, script, &url, mode))
        .await
        .unwrap()
}

/// The Node and the Python upstream; none when their tools are missing outside CI.
fn both_upstreams() -> Vec<ForeignServer> {
    if !require("node") || !require("python3") {
        return vec![];
    }
    vec![ForeignServer::node(), ForeignServer::python()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_client_closes_are_counted_by_code_and_initiator_one_for_one() {
    for upstream in both_upstreams() {
        let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
        let mut connections = 0.0;
        for program in ["node", "python3"] {
            for mode in [
                "close:1000",
                "close:1001",
                "close:4001",
                "close:3005",
                "drop",
            ] {
                let result = client(program, proxy.ws_url("/ws"), mode).await;
                assert_eq!(result["ok"], true, "{program} {mode}: {result}");
                if let Some(code) = mode.strip_prefix("close:") {
                    // The upstream echoed the client's code: the close passed through intact.
                    assert_eq!(result["code"].to_string(), code, "{program} {mode}");
                }
                connections += 1.0;
                proxy.quiescent(Duration::from_secs(30)).await;
            }
        }
        let m = proxy.metrics();
        assert_eq!(
            nonzero_closes(&m),
            owned(&[
                ("client", "1000", 2.0),
                ("client", "1001", 2.0),
                ("client", "3xxx", 2.0),
                ("client", "4001", 2.0),
                ("none", "1006", 2.0),
            ]),
            "upstream {}\n{m}",
            upstream.port
        );
        let accepted = [
            ("route", "/ws"),
            ("outcome", "accepted"),
            ("status_code", "101"),
        ];
        assert_eq!(sample(&m, UPGRADES, &accepted), connections);
        let rx = [
            ("route", "/ws"),
            ("direction", "receive"),
            ("frame_type", "text"),
        ];
        let tx = [
            ("route", "/ws"),
            ("direction", "transmit"),
            ("frame_type", "text"),
        ];
        assert_eq!(sample(&m, MESSAGES, &rx), connections);
        assert_eq!(sample(&m, MESSAGES, &tx), connections);
        let rx_close = [("direction", "receive"), ("frame_type", "close")];
        assert_eq!(
            sample(&m, MESSAGES, &rx_close),
            8.0,
            "one close frame per clean close"
        );
        let first = "websocket_server_first_payload_latency_seconds_count";
        assert_eq!(sample(&m, first, &[("route", "/ws")]), connections);
        assert_eq!(sample(&m, "websocket_server_active_connections", &[]), 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_with_1011_counts_as_a_server_close() {
    for upstream in both_upstreams() {
        let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
        for program in ["node", "python3"] {
            let result = client(program, proxy.ws_url("/rooms/7"), "send:close:1011").await;
            assert_eq!(result["code"], 1011, "{program}: {result}");
            proxy.quiescent(Duration::from_secs(30)).await;
        }
        let m = proxy.metrics();
        assert_eq!(nonzero_closes(&m), owned(&[("server", "1011", 2.0)]), "{m}");
        let route = [("route", "/rooms/{id}"), ("outcome", "accepted")];
        assert_eq!(sample(&m, UPGRADES, &route), 2.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_is_1006_on_both_legs_counted_once_without_initiator() {
    if !require("node") {
        return;
    }
    let mut upstream = ForeignServer::node();
    let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(proxy.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    upstream.kill();
    // The client leg ends as the upstream leg did: without a close frame.
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = vec![];
        while let Some(Ok(msg)) = ws.next().await {
            seen.push(msg);
        }
        seen
    })
    .await
    .expect("the client leg ends");
    assert!(
        rest.iter().all(|m| !m.is_close()),
        "no close frame: {rest:?}"
    );
    proxy.quiescent(Duration::from_secs(30)).await;
    let m = proxy.metrics();
    assert_eq!(nonzero_closes(&m), owned(&[("none", "1006", 1.0)]), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_passes_its_403_through_and_is_counted() {
    if !require("node") || !require("python3") {
        return;
    }
    let upstream = ForeignServer::node();
    let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
    for program in ["node", "python3"] {
        let result = client(program, proxy.ws_url("/forbidden"), "close:1000").await;
        assert_eq!(result["status"], 403, "{program}: {result}");
    }
    let refused = [
        ("route", "unmatched"),
        ("outcome", "rejected"),
        ("status_code", "403"),
    ];
    assert_eq!(proxy.sample(UPGRADES, &refused), 2.0);
    assert_eq!(proxy.sample(UPGRADES, &[("outcome", "accepted")]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_gets_504_and_an_absent_one_502_within_the_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // Accepts and holds connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let proxy = RunningProxy::start(&format!("http://{silent_addr}"), |s| {
        s.upstream_timeout = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    let err = tokio_tungstenite::connect_async(proxy.ws_url("/ws"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 504),
        other => panic!("expected 504, got {other}"),
    }
    let status = reqwest::get(format!("http://{}/api", proxy.addr))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 504, "plain HTTP is bounded too");
    let timed_out = [
        ("route", "/ws"),
        ("outcome", "rejected"),
        ("status_code", "504"),
    ];
    assert_eq!(proxy.sample(UPGRADES, &timed_out), 1.0);
    holder.abort();

    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let proxy = RunningProxy::start(&format!("http://{gone_addr}"), |_| {}).await;
    match tokio_tungstenite::connect_async(proxy.ws_url("/rooms/1"))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 502),
        other => panic!("expected 502, got {other}"),
    }
    let refused = [
        ("route", "/rooms/{id}"),
        ("outcome", "rejected"),
        ("status_code", "502"),
    ];
    assert_eq!(proxy.sample(UPGRADES, &refused), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_arrive_byte_identical_with_permessage_deflate_end_to_end() {
    if !require("node") {
        return;
    }
    let upstream = ForeignServer::node();
    let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
    let result = client("node", proxy.ws_url("/ws"), "identity").await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["extensions"], "permessage-deflate", "{result}");
    proxy.quiescent(Duration::from_secs(30)).await;
    let m = proxy.metrics();
    for direction in ["receive", "transmit"] {
        for frame_type in ["text", "binary"] {
            let labels = [("direction", direction), ("frame_type", frame_type)];
            assert_eq!(
                sample(&m, MESSAGES, &labels),
                9.0,
                "{direction} {frame_type}\n{m}"
            );
        }
    }
    assert_eq!(nonzero_closes(&m), owned(&[("client", "1000", 1.0)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_endpoint_streams_through_the_proxy_with_forwarded_headers() {
    if !require("node") {
        return;
    }
    let upstream = ForeignServer::node();
    let proxy = RunningProxy::start(&upstream.url(), |_| {}).await;
    let base = format!("http://{}", proxy.addr);
    let http = reqwest::Client::new();

    let mut stream = http
        .get(format!("{base}/stream"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the first chunk arrives before the body is complete")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"chunk-1\n");
    http.get(format!("{base}/release")).send().await.unwrap();
    let mut rest = vec![];
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"chunk-2\n");

    let body: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(10_000).map(|c| Ok(c.to_vec())).collect();
    let echoed = http
        .post(format!("{base}/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(echoed[..] == body[..], "streamed body echoed intact");

    let headers = http
        .get(format!("{base}/headers"))
        .header("connection", "x-hop")
        .header("x-hop", "must not pass")
        .header("x-forwarded-for", "203.0.113.9")
        .header("cookie", "session=abc")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let headers: serde_json::Value = serde_json::from_str(&headers).unwrap();
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert!(headers["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=127.0.0.1;proto=http"));
    assert_eq!(headers["cookie"], "session=abc");
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert_eq!(
        proxy.sample(UPGRADES, &[]),
        0.0,
        "plain HTTP is not an upgrade"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_1001_to_both_legs_drains_and_exits() {
    if !require("python3") {
        return;
    }
    let upstream = ForeignServer::python();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (listen, admin) = (free(), free());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsmon-proxy"))
        .args([
            "--listen",
            &listen.to_string(),
            "--upstream",
            &upstream.url(),
        ])
        .args(["--route", "/ws", "--metrics-listen", &admin.to_string()])
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let healthz = format!("http://{admin}/healthz");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(&healthz).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proxy never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{listen}/ws"))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &metrics,
            "websocket_server_active_connections",
            &[("route", "/ws")]
        ),
        1.0
    );

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let close = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the client leg is closed");
    assert_eq!(close, Some(1001));
    let line = tokio::task::spawn_blocking(move || upstream.next_line(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(
        line.as_deref(),
        Some("CLOSED 1001"),
        "the upstream leg got 1001"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
