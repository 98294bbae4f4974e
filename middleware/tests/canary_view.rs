//! The server's view of canary connections: upgrades recognised as a canary's are counted in
//! the `websocket_server_canary_*` families as well as the main ones, users' only in the main.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderName;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wsmon::{CanaryRecognition, WsMon};

const CANARY_UA: &str = "wsmon-probe/0.1.0";
const UPGRADES: &str = "websocket_server_upgrades_total";
const CANARY_UPGRADES: &str = "websocket_server_canary_upgrades_total";
const CLOSES: &str = "websocket_server_closes_total";
const CANARY_CLOSES: &str = "websocket_server_canary_closes_total";
const CANARY_ACTIVE: &str = "websocket_server_canary_active_connections";
const CANARY_FIRST_PAYLOAD: &str = "websocket_server_canary_first_payload_latency_seconds_count";
const CANARY_WITHOUT_PAYLOAD: &str = "websocket_server_canary_connections_without_payload_total";

async fn next_text(client: &mut Client) {
    let msg = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("a message in time")
        .expect("stream open")
        .expect("no error");
    assert!(msg.is_text(), "got {msg:?}");
}

#[tokio::test]
async fn a_canary_is_counted_in_both_views_and_a_user_in_the_main_view_only() {
    let server = start_echo(WsMon::builder()).await;
    let url = server.url("/delayed/0");
    let mut canary = connect_with_header(&url, "user-agent", CANARY_UA)
        .await
        .expect("canary upgrades");
    let mut user = connect_with_header(&url, "user-agent", "Mozilla/5.0")
        .await
        .expect("user upgrades");
    next_text(&mut canary).await;
    next_text(&mut user).await;

    let route = ("route", "/delayed/{ms}");
    let m = || server.metrics();
    expect_value(m, CANARY_ACTIVE, &[route], 1.0).await;
    expect_value(m, "websocket_server_active_connections", &[route], 2.0).await;
    let accepted = [route, ("outcome", "accepted"), ("status_code", "101")];
    assert_eq!(m().sum(UPGRADES, &accepted), 2.0);
    assert_eq!(m().sum(CANARY_UPGRADES, &accepted), 1.0);
    assert_eq!(m().sum(CANARY_FIRST_PAYLOAD, &[route]), 1.0);

    canary
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await
        .unwrap();
    while let Some(Ok(_)) = canary.next().await {}
    drop(user); // no close frame: 1006, initiator none

    let client_1000 = [route, ("initiator", "client"), ("close_code", "1000")];
    let none_1006 = [route, ("initiator", "none"), ("close_code", "1006")];
    expect_value(m, CLOSES, &client_1000, 1.0).await;
    expect_value(m, CLOSES, &none_1006, 1.0).await;
    expect_value(m, CANARY_CLOSES, &client_1000, 1.0).await;
    expect_value(m, CANARY_ACTIVE, &[route], 0.0).await;
    assert_eq!(m().get(CANARY_CLOSES, &none_1006), Some(0.0));
    assert_eq!(m().sum(CANARY_WITHOUT_PAYLOAD, &[route]), 0.0);
}

#[tokio::test]
async fn a_server_close_of_a_canary_is_the_servers_in_the_canary_view() {
    let server = start_echo(WsMon::builder()).await;
    let mut canary = connect_with_header(&server.url("/close/1011"), "user-agent", CANARY_UA)
        .await
        .expect("canary upgrades");
    while let Some(Ok(_)) = canary.next().await {}
    let labels = [
        ("route", "/close/{code}"),
        ("initiator", "server"),
        ("close_code", "1011"),
    ];
    expect_value(|| server.metrics(), CANARY_CLOSES, &labels, 1.0).await;
    expect_value(
        || server.metrics(),
        CANARY_WITHOUT_PAYLOAD,
        &[("route", "/close/{code}")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn canary_requests_refused_by_the_layer_or_the_extractor_are_canary_rejections() {
    let server = start_echo(WsMon::builder().allow_origin("https://app.example")).await;
    // The layer's own refusal (origin allowlist).
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.url("/echo"),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", CANARY_UA.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a foreign origin is refused");
    // A plain GET with the canary's User-Agent, as behind a proxy that drops `Upgrade`.
    let status = reqwest::Client::new()
        .get(format!("http://{}/echo", server.addr))
        .header("user-agent", CANARY_UA)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!(matches!(status, 400 | 426), "got {status}");
    // A user's plain GET is a rejection in the main view only.
    reqwest::Client::new()
        .get(format!("http://{}/echo", server.addr))
        .send()
        .await
        .unwrap();

    let s = server.metrics();
    let route = ("route", "/echo");
    let rejected = [route, ("outcome", "rejected")];
    assert_eq!(
        s.sum(CANARY_UPGRADES, &[route, ("status_code", "403")]),
        1.0
    );
    assert_eq!(
        s.sum(
            CANARY_UPGRADES,
            &[route, ("status_code", &status.to_string())]
        ),
        1.0
    );
    assert_eq!(s.sum(CANARY_UPGRADES, &rejected), 2.0);
    assert_eq!(s.sum(UPGRADES, &rejected), 3.0);
}

#[tokio::test]
async fn a_header_rule_replaces_the_user_agent_and_off_recognises_nothing() {
    let by_header = start_echo(
        WsMon::builder().canary_recognition(CanaryRecognition::header(
            HeaderName::from_static("x-wsmon-canary"),
            "t0ken",
        )),
    )
    .await;
    let off = start_echo(WsMon::builder().canary_recognition(CanaryRecognition::off())).await;
    let accepted = [
        ("route", "/echo"),
        ("outcome", "accepted"),
        ("status_code", "101"),
    ];

    let _ua = connect_with_header(&by_header.url("/echo"), "user-agent", CANARY_UA)
        .await
        .unwrap();
    let _hdr = connect_with_header(&by_header.url("/echo"), "x-wsmon-canary", "t0ken")
        .await
        .unwrap();
    let _wrong = connect_with_header(&by_header.url("/echo"), "x-wsmon-canary", "guess")
        .await
        .unwrap();
    let s = by_header.metrics();
    assert_eq!(s.sum(UPGRADES, &accepted), 3.0);
    assert_eq!(s.sum(CANARY_UPGRADES, &accepted), 1.0);

    let mut c = connect_with_header(&off.url("/echo"), "user-agent", CANARY_UA)
        .await
        .unwrap();
    c.send(Message::text("hi")).await.unwrap();
    next_text(&mut c).await;
    let s = off.metrics();
    assert_eq!(s.sum(UPGRADES, &accepted), 1.0);
    assert_eq!(s.sum(CANARY_UPGRADES, &accepted), 0.0);
    assert_eq!(s.sum(CANARY_ACTIVE, &[("route", "/echo")]), 0.0);
}

#[tokio::test]
async fn a_tokio_tungstenite_server_recognises_canaries_too() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/tt").build(&registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = wsmon.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let wsmon = server.clone();
            tokio::spawn(async move {
                if let Ok(mut ws) =
                    wsmon::tokio_tungstenite_server::accept(&wsmon, "/tt", tcp).await
                {
                    let _ = ws.send(Message::text("hello")).await;
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    let url = format!("ws://{addr}/tt");
    let mut canary = connect_with_header(&url, "user-agent", CANARY_UA)
        .await
        .unwrap();
    let mut user = connect(&url).await;
    next_text(&mut canary).await;
    next_text(&mut user).await;
    let route = ("route", "/tt");
    let accepted = [route, ("outcome", "accepted"), ("status_code", "101")];
    let s = scrape_of(&registry);
    assert_eq!(s.sum(UPGRADES, &accepted), 2.0);
    assert_eq!(s.sum(CANARY_UPGRADES, &accepted), 1.0);
    assert_eq!(s.sum(CANARY_ACTIVE, &[route]), 1.0);
    assert_eq!(s.sum(CANARY_FIRST_PAYLOAD, &[route]), 1.0);
}
