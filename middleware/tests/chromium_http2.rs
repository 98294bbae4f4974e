//! Headless Chromium against the layer over TLS with ALPN `h2`: the page loads over HTTP/2,
//! and its script opens a WebSocket to the same origin. Chromium speaks RFC 8441 (an
//! extended CONNECT on the existing h2 connection) only when it already has an h2
//! connection to the origin and the server's SETTINGS enabled the CONNECT protocol. The
//! server records the HTTP version of each request, and the tests assert what Chromium
//! really did: over HTTP/2 when the SETTINGS offer RFC 8441 (accepted with 200, refused
//! with 403), over a new HTTP/1.1 connection (101) when they do not.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{Html, Response};
use axum::routing::{any, get, post};
use axum::Router;
use http::Version;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::Registry;
use support::{assert_text_echoed, scrape_of, wait_until};
use tokio_rustls::rustls;
use wsmon::{WebSocketUpgrade, WsMon};
use wsmon_testkit::chromium::Chromium;
use wsmon_testkit::eventually;

const UPGRADES: &str = "websocket_server_upgrades_total";

/// The HTTP version and response status of each request the server saw, by path, recorded
/// outside the wsmon layer so that refused upgrades show too.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Version, u16)>>>);

/// What the page posted to `/report`.
#[derive(Clone, Default)]
struct Report(Arc<Mutex<Option<String>>>);

impl Seen {
    fn of(&self, path: &str) -> Vec<(Version, u16)> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, v, s)| (*v, *s))
            .collect()
    }
}

/// Sends three messages, reads the echoes, closes with 1000 and posts what happened to
/// `/report`: the test waits for that event, not for a timer.
const PAGE: &str = r#"<!doctype html><html><body><pre id="result">pending</pre><script>
const out = document.getElementById("result");
const log = [];
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onopen = () => { for (const m of ["one", "two", "three"]) ws.send(m); };
ws.onmessage = (e) => { log.push("echo:" + e.data); if (log.length === 3) ws.close(1000, "done"); };
ws.onerror = () => log.push("error");
ws.onclose = (e) => {
  log.push("close:" + e.code);
  out.textContent = log.join(" ");
  fetch("/report", { method: "POST", body: log.join(" ") });
};
</script></body></html>"#;

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            // The close reply is queued by tungstenite itself; reading on flushes it.
            if matches!(msg, axum::extract::ws::Message::Close(_)) {
                continue;
            }
            if socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

struct TlsServer {
    addr: SocketAddr,
    wsmon: WsMon,
    registry: Registry,
    seen: Seen,
    report: Report,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1.
fn tls_config() -> rustls::ServerConfig {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The README's integration served over TLS, HTTP/2 and HTTP/1.1, with `allowed` as the only
/// Origin; `connect_protocol` enables RFC 8441 in the h2 SETTINGS (as `axum::serve` does over
/// plain TCP).
async fn serve(allowed: impl FnOnce(SocketAddr) -> String, connect_protocol: bool) -> TlsServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Registry::new();
    let wsmon = WsMon::builder()
        .route("/ws")
        .allow_origin(allowed(addr))
        .build(&registry)
        .unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    let report = Report::default();
    let posted = report.clone();
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/report",
            post(move |body: String| async move {
                *posted.0.lock().unwrap() = Some(body);
            }),
        )
        .route("/ws", any(echo))
        .layer(wsmon.layer())
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let record = record.clone();
                async move {
                    let (path, version) = (req.uri().path().to_string(), req.version());
                    let response = next.run(req).await;
                    let status = response.status().as_u16();
                    record.0.lock().unwrap().push((path, version, status));
                    response
                }
            },
        ));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config()));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if connect_protocol {
                    builder.http2().enable_connect_protocol();
                }
                let _ = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(tls),
                        TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
    TlsServer {
        addr,
        wsmon,
        registry,
        seen,
        report,
        task,
    }
}

/// Loads the page in headless Chromium and returns what it posted to `/report`.
async fn load_page(server: &TlsServer) -> String {
    let url = format!("https://localhost:{}/", server.addr.port());
    let browser = Chromium::require()
        .args([
            "--ignore-certificate-errors",
            // `localhost` is the loopback listener, whatever /etc/hosts says.
            "--host-resolver-rules=MAP localhost 127.0.0.1",
        ])
        .spawn([url.as_str()])
        .unwrap_or_else(|e| panic!("{e}"));
    let report = server.report.clone();
    let posted = eventually(Duration::from_secs(60), Duration::from_millis(50), || {
        std::future::ready(report.0.lock().unwrap().clone())
    })
    .await;
    let output = tokio::task::spawn_blocking(move || browser.finish())
        .await
        .unwrap();
    posted.unwrap_or_else(|| {
        panic!(
            "the page posted no report within 60 s; requests seen: {:?}; chromium's stderr:\n{}",
            server.seen.0.lock().unwrap(),
            output.stderr
        )
    })
}

fn page_origin(addr: SocketAddr) -> String {
    format!("https://localhost:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_websocket_is_an_h2_extended_connect_accepted_with_200_and_counted() {
    // An extended CONNECT on the page's h2 connection, accepted with 200 (not a 101).
    assert_accepted_and_counted(true, (Version::HTTP_2, 200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_connect_protocol_chromium_opens_an_http1_upgrade_counted_101() {
    // The page still loads over h2, but the SETTINGS do not offer RFC 8441: Chromium opens a
    // second connection for the WebSocket, HTTP/1.1 only.
    assert_accepted_and_counted(false, (Version::HTTP_11, 101)).await;
}

async fn assert_accepted_and_counted(connect_protocol: bool, upgrade: (Version, u16)) {
    let server = serve(page_origin, connect_protocol).await;
    let result = load_page(&server).await;
    assert_eq!(
        result,
        "echo:one echo:two echo:three close:1000",
        "what the page saw; requests {:?}; server closes {:?}",
        server.seen.0.lock().unwrap(),
        scrape_of(&server.registry).sum("websocket_server_closes_total", &[]),
    );
    assert_eq!(
        server.seen.of("/"),
        [(Version::HTTP_2, 200)],
        "the page loads over h2"
    );
    assert_eq!(server.seen.of("/ws"), [upgrade]);
    let status = upgrade.1.to_string();

    let route = ("route", "/ws");
    wait_until("the close is counted", Duration::from_secs(10), || async {
        scrape_of(&server.registry).sum(
            "websocket_server_closes_total",
            &[route, ("initiator", "client"), ("close_code", "1000")],
        ) == 1.0
    })
    .await;
    let s = scrape_of(&server.registry);
    assert_eq!(
        s.sum(
            UPGRADES,
            &[route, ("outcome", "accepted"), ("status_code", &status)]
        ),
        1.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "rejected")]), 0.0);
    assert_text_echoed(&s, "/ws", 3.0, 11.0);
    wait_until(
        "connection unregistered",
        Duration::from_secs(10),
        || async { server.wsmon.active_connections() == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_websocket_from_an_origin_off_the_allowlist_gets_403() {
    let server = serve(|_| "https://ok.example".to_string(), true).await;
    let result = load_page(&server).await;
    // A refused handshake is an error then a 1006 close for the page.
    assert_eq!(result, "error close:1006", "what the page saw");
    assert_eq!(
        server.seen.of("/"),
        [(Version::HTTP_2, 200)],
        "the page loads over h2"
    );
    assert_eq!(server.seen.of("/ws"), [(Version::HTTP_2, 403)]);
    let s = scrape_of(&server.registry);
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "/ws"),
                ("outcome", "rejected"),
                ("status_code", "403")
            ]
        ),
        1.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "accepted")]), 0.0);
    assert_eq!(server.wsmon.active_connections(), 0);
}
