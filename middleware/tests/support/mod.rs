//! Shared helpers for the black-box middleware tests: test servers, clients and a scrape
//! reader.
#![allow(dead_code)]

pub mod blackhole;
pub mod raw_ws;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsmon::{WebSocketUpgrade, WsMon, WsMonBuilder};
use wsmon_feed::FeedConfig;

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub use wsmon_testkit::exposition::Scrape;
pub use wsmon_testkit::feed::FeedServer;

pub async fn start_feed(config: FeedConfig) -> FeedServer {
    FeedServer::start(config).await
}

/// A scrape of `registry` as the middleware renders it (`wsmon::export::prometheus`).
pub fn scrape_of(registry: &Registry) -> Scrape {
    Scrape::parse(&wsmon::export::prometheus::render(registry))
}

/// What a test server exposes at `/metrics`, read in-process.
pub trait Metrics {
    fn metrics(&self) -> Scrape;
}

impl Metrics for FeedServer {
    fn metrics(&self) -> Scrape {
        scrape_of(&self.registry)
    }
}

/// An echo server with the wsmon layer:
/// - `/echo` echoes every data message;
/// - `/close/{code}` closes from the server with `code` right after the upgrade;
/// - `/silent` upgrades and only reads;
/// - `/delayed/{ms}` sends one message after `ms` (see [`delayed`]).
pub struct EchoServer {
    pub addr: SocketAddr,
    pub wsmon: WsMon,
    pub registry: Registry,
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

async fn close_with(ws: WebSocketUpgrade, Path(code): Path<u16>) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let frame = CloseFrame {
            code,
            reason: "bye".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

/// Waits `ms` before the first message, which carries the wait the handler actually measured
/// (in microseconds, from the start of the upgrade callback to just before the send).
async fn delayed(ws: WebSocketUpgrade, Path(ms): Path<u64>) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let waited = started.elapsed().as_micros().to_string();
        let _ = socket.send(Message::Text(waited.into())).await;
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

async fn silent(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move { while let Some(Ok(_)) = socket.recv().await {} })
}

pub async fn start_echo(builder: WsMonBuilder) -> EchoServer {
    start_echo_placed(builder, Placement::RouterLayer).await
}

/// Where the wsmon layer sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `router.layer(wsmon.layer())`: after routing, on each route.
    RouterLayer,
    /// `wsmon.layer().layer(router)`: around the whole router, before routing.
    AroundRouter,
}

pub async fn start_echo_placed(builder: WsMonBuilder, placement: Placement) -> EchoServer {
    let registry = Registry::new();
    let wsmon = builder
        .route("/echo")
        .route("/close/{code}")
        .route("/silent")
        .route("/delayed/{ms}")
        .build(&registry)
        .expect("wsmon builds");
    let app = Router::new()
        .route("/echo", get(echo))
        .route("/close/{code}", get(close_with))
        .route("/silent", get(silent))
        .route("/delayed/{ms}", get(delayed))
        .route("/api/items", get(|| async { "items" }))
        .route("/metrics", wsmon.metrics_route());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match placement {
        Placement::RouterLayer => {
            let app = app.layer(wsmon.layer());
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        Placement::AroundRouter => {
            let app = tower::Layer::layer(&wsmon.layer(), app);
            let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
    }
    EchoServer {
        addr,
        wsmon,
        registry,
    }
}

impl EchoServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Metrics for EchoServer {
    fn metrics(&self) -> Scrape {
        scrape_of(&self.registry)
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, response) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect in time")
    .expect("handshake succeeds");
    assert_eq!(response.status(), 101);
    client
}

/// Connects with an extra request header; returns the handshake error status if refused.
pub async fn connect_with_header(
    url: &str,
    name: &'static str,
    value: &str,
) -> Result<Client, u16> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(name, value.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

/// [`wsmon_testkit::eventually`] on a yes/no condition, every 10 ms; panics with `what` when
/// `limit` passes first.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let every = Duration::from_millis(10);
    let seen = wsmon_testkit::eventually(limit, every, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await;
    assert!(seen.is_some(), "timed out waiting for: {what}");
}

/// Asserts the counts of an echo of `messages` text messages of `bytes` payload bytes in
/// all on `route`: each received once and transmitted once.
pub fn assert_text_echoed(s: &Scrape, route: &str, messages: f64, bytes: f64) {
    let route = ("route", route);
    for direction in ["receive", "transmit"] {
        let labels = [route, ("frame_type", "text"), ("direction", direction)];
        assert_eq!(
            s.sum("websocket_server_messages_total", &labels),
            messages,
            "{labels:?}"
        );
        let labels = [route, ("direction", direction)];
        assert_eq!(
            s.sum("websocket_server_payload_bytes_total", &labels),
            bytes,
            "{labels:?}"
        );
    }
}

/// Waits until the scrape value of `name{labels}` equals `expected`, then asserts it.
pub async fn expect_value(
    scrape: impl Fn() -> Scrape,
    name: &str,
    labels: &[(&str, &str)],
    expected: f64,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = scrape().sum(name, labels);
        if got == expected {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{name}{labels:?} = {got}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// Panics anywhere in this process so far, server tasks included (a panicking handler task
/// would otherwise go unnoticed). Call it once at the start of a test to start counting.
pub fn panics_so_far() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// Waits until `route` shows `n` heartbeat timeouts and `n` ends recorded as the server's
/// 1006 (a peer cut off for missing pongs: no close handshake is attempted).
pub async fn expect_heartbeat_cut_off(server: &EchoServer, route: &str, n: f64) {
    let m = || server.metrics();
    expect_value(
        m,
        "websocket_server_heartbeat_timeouts_total",
        &[("route", route)],
        n,
    )
    .await;
    let labels = [
        ("route", route),
        ("initiator", "server"),
        ("close_code", "1006"),
    ];
    expect_value(m, "websocket_server_closes_total", &labels, n).await;
}
