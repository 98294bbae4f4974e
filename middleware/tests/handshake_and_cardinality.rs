//! Upgrade outcomes (accepted, 403, 400/426, 404 unmatched, 503) and bounded label sets under
//! random paths and close codes.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wsmon::WsMon;
use wsmon_feed::FeedConfig;

const UPGRADES: &str = "websocket_server_upgrades_total";
const CLOSES_TOTAL: &str = "websocket_server_closes_total";

#[tokio::test]
async fn disallowed_origin_gets_403_and_is_counted() {
    let server = start_feed(FeedConfig {
        allowed_origins: vec!["https://app.example.com".into()],
        rate: 0.0,
        ..FeedConfig::default()
    })
    .await;
    let refused = connect_with_header(&server.ws_url(), "origin", "https://evil.example").await;
    assert_eq!(refused.err(), Some(403));
    let mut ok = connect_with_header(&server.ws_url(), "origin", "https://app.example.com")
        .await
        .expect("allowed origin upgrades");
    assert!(
        ok.next().await.unwrap().unwrap().is_text(),
        "snapshot arrives"
    );

    let s = server.metrics();
    let route = ("route", "/ws");
    assert_eq!(
        s.sum(
            UPGRADES,
            &[route, ("outcome", "rejected"), ("status_code", "403")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            UPGRADES,
            &[route, ("outcome", "accepted"), ("status_code", "101")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("websocket_server_upgrade_duration_seconds_count", &[route]),
        1.0
    );
}

#[tokio::test]
async fn plain_http_request_to_a_websocket_route_is_a_counted_rejection() {
    let server = start_feed(FeedConfig {
        rate: 0.0,
        ..FeedConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let status = http
        .get(format!("http://{}/ws", server.addr))
        .send()
        .await
        .unwrap()
        .status();
    assert!(matches!(status.as_u16(), 400 | 426), "got {status}");
    // Ordinary HTTP routes are not upgrade attempts and are not counted.
    let metrics = http
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "/ws"),
                ("outcome", "rejected"),
                ("status_code", status.as_str())
            ]
        ),
        1.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "rejected")]), 1.0);
}

#[tokio::test]
async fn upgrade_to_an_unknown_path_counts_as_unmatched_404() {
    let server = start_echo(WsMon::builder()).await;
    let refused = connect_with_header(&server.url("/users/12345/stream"), "x-test", "1").await;
    assert_eq!(refused.err(), Some(404));
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "unmatched"),
                ("outcome", "rejected"),
                ("status_code", "404")
            ]
        ),
        1.0
    );
    assert!(
        !s.text.contains("/users/12345"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn overload_is_refused_with_503_and_counted() {
    let server = start_echo(WsMon::builder().max_connections(2)).await;
    let _a = connect(&server.url("/echo")).await;
    let _b = connect(&server.url("/echo")).await;
    wait_until("2 live", Duration::from_secs(5), || async {
        server.wsmon.active_connections() == 2
    })
    .await;
    let refused = connect_with_header(&server.url("/echo"), "x-test", "1").await;
    assert_eq!(refused.err(), Some(503));
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "/echo"),
                ("outcome", "rejected"),
                ("status_code", "503")
            ]
        ),
        1.0
    );
    assert_eq!(
        s.sum("websocket_server_active_connections", &[("route", "/echo")]),
        2.0
    );
}

/// The bound documented in docs/metrics.md: per route, 3 initiators × the classifier's values.
fn closes_series_bound(routes: usize, allowlisted: usize) -> usize {
    routes * 3 * (16 + allowlisted + 3)
}

/// The one origin the cardinality test's server allows.
const ALLOWED_ORIGIN: &str = "https://app.example";

/// Connections with random paths (unmatched, or `/close/{code}` with any u16 the server then
/// closes with), random origins (allowed, foreign, absent) and random client close codes.
async fn random_connections(server: &EchoServer, n: usize) {
    for _ in 0..n {
        let (path, code, origin) = {
            let mut rng = rand::rng();
            let path = match rng.random_range(0..10) {
                0..=2 => format!("/random/{}", rng.random::<u32>()),
                3..=4 => format!("/close/{}", rng.random::<u16>()),
                _ => "/echo".to_string(),
            };
            let code: u16 = match rng.random_range(0..4) {
                0 => rng.random_range(1000..=1015),
                1 => rng.random_range(3000..=4999),
                2 => rng.random_range(0..1000),
                _ => rng.random(),
            };
            let origin = match rng.random_range(0..3) {
                0 => Some(ALLOWED_ORIGIN.to_string()),
                1 => Some(format!("https://{}.example", rng.random::<u32>())),
                _ => None,
            };
            (path, code, origin)
        };
        let url = server.url(&path);
        let attempt = match &origin {
            Some(origin) => connect_with_header(&url, "origin", origin).await,
            None => connect_with_header(&url, "x-test", "1").await,
        };
        match attempt {
            Ok(mut client) => {
                let _ = client
                    .close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: "".into(),
                    }))
                    .await;
                while let Some(Ok(_)) = client.next().await {}
            }
            Err(status) => assert!(
                matches!(status, 403 | 404),
                "{path} from {origin:?} refused with {status}"
            ),
        }
    }
}

#[tokio::test]
async fn cardinality_stays_bounded_under_random_paths_origins_and_close_codes() {
    let server = start_echo(
        WsMon::builder()
            .close_code_allowlist([4001])
            .allow_origin(ALLOWED_ORIGIN),
    )
    .await;
    random_connections(&server, 150).await;
    wait_until("all closed", Duration::from_secs(10), || async {
        server.wsmon.active_connections() == 0
    })
    .await;
    let first = server.metrics();
    random_connections(&server, 150).await;
    wait_until("all closed", Duration::from_secs(10), || async {
        server.wsmon.active_connections() == 0
    })
    .await;
    let second = server.metrics();

    // /echo, /close/{code}, /silent and unmatched.
    let routes = 4;
    let closes = second.count_with_prefix("websocket_server_closes_total");
    assert!(
        closes <= closes_series_bound(routes, 1),
        "{closes} close series"
    );
    for sample in second.matching("websocket_server_closes_total", &[]) {
        let code = sample.labels["close_code"].as_str();
        let valid = matches!(code, "3xxx" | "4xxx" | "other" | "4001")
            || code
                .parse::<u16>()
                .is_ok_and(|c| (1000..=1015).contains(&c));
        assert!(
            valid,
            "close_code label {code:?} is outside the documented set"
        );
    }
    assert!(
        !second.text.contains("/random/"),
        "raw paths never become route labels"
    );
    assert!(
        !second.text.contains(".example"),
        "origins never become labels"
    );
    let upgrades = second.count_with_prefix(UPGRADES);
    // accepted/101, rejected/403 (foreign origin), rejected/404 (unmatched) per route.
    assert!(upgrades <= routes * 3, "{upgrades} upgrade series");
    for sample in second.matching(UPGRADES, &[]) {
        let labels = &sample.labels;
        assert!(
            ["101", "403", "404"].contains(&labels["status_code"].as_str()),
            "unexpected upgrade series {labels:?}"
        );
    }
    assert!(
        second.sum(UPGRADES, &[("status_code", "403")]) > 0.0
            && second.sum(UPGRADES, &[("status_code", "404")]) > 0.0
            && second.sum(CLOSES_TOTAL, &[("initiator", "server")]) > 0.0,
        "the random mix exercised foreign origins, unmatched paths and server closes"
    );
    // Another 150 connections added no per-connection series anywhere.
    let per_conn_growth = second.count_with_prefix("websocket_server_") as i64
        - first.count_with_prefix("websocket_server_") as i64;
    assert!(
        per_conn_growth <= (closes_series_bound(routes, 1) as i64),
        "series grew by {per_conn_growth}"
    );
    let total_closes = second.sum("websocket_server_closes_total", &[]);
    let accepted = second.sum(UPGRADES, &[("outcome", "accepted")]);
    assert_eq!(
        total_closes, accepted,
        "every accepted connection is closed exactly once"
    );
}

#[tokio::test]
async fn metrics_endpoint_serves_the_text_format() {
    let server = start_feed(FeedConfig {
        rate: 0.0,
        ..FeedConfig::default()
    })
    .await;
    let mut client = connect(&server.ws_url()).await;
    let _snapshot = client.next().await;
    client
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"op":"head"}"#,
        ))
        .await
        .unwrap();
    let head = client.next().await.unwrap().unwrap();
    assert!(head
        .to_text()
        .unwrap()
        .starts_with(r#"{"type":"head","seq":"#));
    let resp = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("websocket_server_active_connections{route=\"/ws\"} 1"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upgrade_attempt_with_another_method_is_a_counted_rejection_with_its_status() {
    let server = start_echo(WsMon::builder()).await;
    let http = reqwest::Client::new();
    let upgrade = |method: reqwest::Method| {
        http.request(method, format!("http://{}/echo", server.addr))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    let post = upgrade(reqwest::Method::POST).await.unwrap().status();
    assert_eq!(post, 405, "axum's get() route answers POST with 405");
    let put = upgrade(reqwest::Method::PUT).await.unwrap().status();
    assert_eq!(put, 405);
    // A plain POST (no Upgrade header) to a REST-style route is not an upgrade attempt.
    let plain = http
        .post(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(plain, 405);
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "/echo"),
                ("outcome", "rejected"),
                ("status_code", "405")
            ]
        ),
        2.0
    );
    assert_eq!(s.sum(UPGRADES, &[("outcome", "rejected")]), 2.0);
}

#[tokio::test]
async fn an_upgrade_attempt_with_another_method_from_a_foreign_origin_gets_403() {
    let server = start_echo(WsMon::builder().allow_origin("https://app.example.com")).await;
    let status = reqwest::Client::new()
        .post(format!("http://{}/echo", server.addr))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    let s = server.metrics();
    assert_eq!(
        s.sum(
            UPGRADES,
            &[
                ("route", "/echo"),
                ("outcome", "rejected"),
                ("status_code", "403")
            ]
        ),
        1.0
    );
}
