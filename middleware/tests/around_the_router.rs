//! The layer wrapped around the whole router (`wsmon.layer().layer(router)`, before routing)
//! counts what `router.layer(wsmon.layer())` counts: the same route labels, taken from the
//! declared templates where axum's `MatchedPath` does not exist yet. Each test runs both
//! placements against the same echo server and compares.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsmon::WsMon;

const UPGRADES: &str = "websocket_server_upgrades_total";
const PLACEMENTS: [Placement; 2] = [Placement::RouterLayer, Placement::AroundRouter];

#[tokio::test]
async fn an_accepted_upgrade_is_counted_under_its_template() {
    for placement in PLACEMENTS {
        let server = start_echo_placed(WsMon::builder(), placement).await;
        let mut client = connect(&server.url("/close/1000")).await;
        // The server closes with 1000 at once; read until the stream ends.
        while let Some(Ok(_)) = client.next().await {}
        wait_until("the close is counted", Duration::from_secs(20), || async {
            server.metrics().sum(
                "websocket_server_closes_total",
                &[("route", "/close/{code}"), ("close_code", "1000")],
            ) == 1.0
        })
        .await;
        let s = server.metrics();
        assert_eq!(
            s.sum(
                UPGRADES,
                &[("route", "/close/{code}"), ("outcome", "accepted")]
            ),
            1.0,
            "{placement:?}"
        );
        // The raw path is never a label.
        assert_eq!(
            s.sum(UPGRADES, &[("route", "/close/1000")]),
            0.0,
            "{placement:?}"
        );
    }
}

#[tokio::test]
async fn messages_are_counted_on_the_route() {
    for placement in PLACEMENTS {
        let server = start_echo_placed(WsMon::builder(), placement).await;
        let mut client = connect(&server.url("/echo")).await;
        client.send(Message::text("hello")).await.unwrap();
        let echoed = client.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text("hello"), "{placement:?}");
        client.close(None).await.unwrap();
        wait_until("the echo is counted", Duration::from_secs(20), || async {
            server.metrics().sum(
                "websocket_server_messages_total",
                &[("route", "/echo"), ("direction", "transmit")],
            ) == 1.0
        })
        .await;
        assert_text_echoed(&server.metrics(), "/echo", 1.0, 5.0);
    }
}

#[tokio::test]
async fn a_refused_origin_is_counted_under_the_route_before_routing() {
    for placement in PLACEMENTS {
        let server = start_echo_placed(
            WsMon::builder().allow_origin("https://ok.example"),
            placement,
        )
        .await;
        let refused =
            connect_with_header(&server.url("/echo"), "origin", "https://evil.example").await;
        assert_eq!(refused.err(), Some(403), "{placement:?}");
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
            1.0,
            "{placement:?}"
        );
    }
}

#[tokio::test]
async fn an_unrouted_attempt_is_unmatched_and_a_plain_get_is_a_rejection() {
    for placement in PLACEMENTS {
        let server = start_echo_placed(WsMon::builder(), placement).await;
        let missing = connect_with_header(&server.url("/nowhere/42"), "x-test", "1").await;
        assert_eq!(missing.err(), Some(404), "{placement:?}");
        let http = reqwest::Client::new();
        // A WebSocket route asked without `Upgrade` (a proxy that drops it): the extractor
        // refuses it, and the layer counts the refusal on the route.
        let plain = http
            .get(format!("http://{}/echo", server.addr))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(matches!(plain, 400 | 426), "{placement:?}: got {plain}");
        // A REST route is not an attempt.
        let rest = http
            .get(format!("http://{}/api/items", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), 200, "{placement:?}");
        assert_eq!(rest.text().await.unwrap(), "items");
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
            1.0,
            "{placement:?}"
        );
        assert_eq!(
            s.sum(UPGRADES, &[("route", "/echo"), ("outcome", "rejected")]),
            1.0,
            "{placement:?}"
        );
        assert_eq!(
            s.sum(UPGRADES, &[("route", "/api/items")]),
            0.0,
            "{placement:?}"
        );
    }
}

#[test]
fn conflicting_declared_templates_are_a_build_error() {
    let registry = prometheus::Registry::new();
    let err = WsMon::builder()
        .route("/rooms/{id}")
        .route("/rooms/{name}")
        .build(&registry)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/rooms/{name}"), "{text}");
}
