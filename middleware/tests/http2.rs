//! WebSockets over HTTP/2 (RFC 8441), served by `axum::serve` over h2c and reached by a real
//! extended-CONNECT client (hyper's HTTP/2 client on the `h2` crate, prior knowledge, which
//! sends `:protocol = websocket`). The origin allowlist, the connection limit and the
//! shutdown refusal hold as over HTTP/1.1, and the 200 that accepts such a WebSocket counts
//! as accepted.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::response::Response;
use axum::routing::any;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::Registry;
use support::{assert_text_echoed, expect_value, scrape_of, wait_until, Scrape};
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wsmon::{WebSocketUpgrade, WsMon, WsMonBuilder};

const UPGRADES: &str = "websocket_server_upgrades_total";
const GOOD: &str = "https://ok.example";

struct H2Server {
    addr: SocketAddr,
    wsmon: WsMon,
    registry: Registry,
}

impl H2Server {
    fn metrics(&self) -> Scrape {
        scrape_of(&self.registry)
    }
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

/// The README's integration, with `any` so that axum routes `CONNECT` to the handler.
async fn serve(builder: WsMonBuilder) -> H2Server {
    let registry = Registry::new();
    let wsmon = builder
        .route("/ws")
        .allow_origin(GOOD)
        .build(&registry)
        .unwrap();
    let app = Router::new().route("/ws", any(echo)).layer(wsmon.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    H2Server {
        addr,
        wsmon,
        registry,
    }
}

type Io = TokioIo<hyper::upgrade::Upgraded>;

/// Opens an h2c connection with prior knowledge and sends an extended CONNECT for `/ws`.
/// Returns the status, and the WebSocket when the server accepted.
async fn connect_h2(addr: SocketAddr, origin: &str) -> (u16, Option<WebSocketStream<Io>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    // The server's SETTINGS must have enabled extended CONNECT before a request may carry
    // `:protocol`; until they arrive the client refuses it, so retry until a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let response = loop {
        sender.ready().await.expect("h2 connection ready");
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}/ws"))
            .version(http::Version::HTTP_2)
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .header("sec-websocket-version", "13")
            .header("origin", origin)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        match sender.send_request(request).await {
            Ok(response) => break response,
            Err(err) if tokio::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("extended CONNECT never went through: {err}"),
        }
    };
    let status = response.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .expect("h2 stream upgrades");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (status, Some(ws))
}

#[tokio::test]
async fn an_h2_websocket_from_a_disallowed_origin_gets_403_and_is_counted() {
    let server = serve(WsMon::builder()).await;
    let (status, ws) = connect_h2(server.addr, "https://evil.example").await;
    assert_eq!(status, 403);
    assert!(ws.is_none());
    let s = server.metrics();
    let route = ("route", "/ws");
    assert_eq!(
        s.sum(
            UPGRADES,
            &[route, ("outcome", "rejected"), ("status_code", "403")]
        ),
        1.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "accepted")]), 0.0);
    assert_eq!(server.wsmon.active_connections(), 0);
}

#[tokio::test]
async fn an_h2_websocket_is_counted_as_accepted_with_its_messages_and_close() {
    let server = serve(WsMon::builder()).await;
    let (status, ws) = connect_h2(server.addr, GOOD).await;
    assert_eq!(status, 200);
    let mut ws = ws.unwrap();
    for text in ["one", "two", "three"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}

    let route = ("route", "/ws");
    let m = || server.metrics();
    expect_value(
        m,
        "websocket_server_closes_total",
        &[route, ("initiator", "client"), ("close_code", "1000")],
        1.0,
    )
    .await;
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[route, ("outcome", "accepted"), ("status_code", "200")]
        ),
        1.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "rejected")]), 0.0);
    assert_eq!(
        s.sum("websocket_server_upgrade_duration_seconds_count", &[route]),
        1.0
    );
    assert_text_echoed(&s, "/ws", 3.0, 11.0);
    wait_until(
        "connection unregistered",
        Duration::from_secs(5),
        || async { server.wsmon.active_connections() == 0 },
    )
    .await;
}

#[tokio::test]
async fn h2_websockets_beyond_the_connection_limit_or_after_shutdown_get_503() {
    let server = serve(WsMon::builder().max_connections(1)).await;
    let (status, first) = connect_h2(server.addr, GOOD).await;
    assert_eq!(status, 200);
    wait_until("1 live", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 1
    })
    .await;
    let (status, _) = connect_h2(server.addr, GOOD).await;
    assert_eq!(status, 503, "over the limit");
    drop(first);
    wait_until("0 live", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 0
    })
    .await;
    server.wsmon.shutdown();
    let (status, _) = connect_h2(server.addr, GOOD).await;
    assert_eq!(status, 503, "shutting down");
    let s = server.metrics();
    assert_eq!(
        s.sum(UPGRADES, &[("outcome", "rejected"), ("status_code", "503")]),
        2.0
    );
    assert_eq!(
        s.sum(UPGRADES, &[("outcome", "accepted"), ("status_code", "200")]),
        1.0
    );
}
