//! The prober identifies itself, so the server it watches records its view of the canary
//! apart from its users' (`websocket_server_canary_*`, against the real feed).

mod support;

use std::time::Duration;

use support::{parse_config, RunningDaemon};
use wsmon_testkit::eventually;
use wsmon_testkit::exposition::Scrape;

#[tokio::test]
async fn the_feed_counts_the_daemons_canary_apart_from_a_user() {
    let feed = support::feed(20.0).await;
    let _user = tokio_tungstenite::connect_async(feed.ws_url())
        .await
        .unwrap();
    let config = parse_config(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n",
        feed.addr
    ));
    let daemon = RunningDaemon::start(config).await;
    let scrape = || Scrape::parse(&wsmon::export::prometheus::render(&feed.registry));
    let route = ("route", "/ws");
    let seen = eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        let s = scrape();
        async move {
            (s.sum("websocket_server_canary_active_connections", &[route]) == 1.0
                && s.sum(
                    "websocket_server_canary_first_payload_latency_seconds_count",
                    &[route],
                ) == 1.0)
                .then_some(s)
        }
    })
    .await
    .expect("the feed holds the canary and has sent it its first payload");
    let accepted = [route, ("outcome", "accepted"), ("status_code", "101")];
    assert_eq!(
        seen.sum("websocket_server_canary_upgrades_total", &accepted),
        1.0
    );
    assert_eq!(seen.sum("websocket_server_upgrades_total", &accepted), 2.0);
    assert_eq!(
        seen.sum("websocket_server_active_connections", &[route]),
        2.0
    );

    daemon.stop().await;
    let ended = eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        let s = scrape();
        async move {
            (s.sum("websocket_server_canary_active_connections", &[route]) == 0.0).then_some(s)
        }
    })
    .await
    .expect("the canary's connection ends when the daemon stops");
    assert_eq!(
        ended.sum("websocket_server_canary_closes_total", &[route]),
        1.0
    );
    assert_eq!(
        ended.sum("websocket_server_active_connections", &[route]),
        1.0
    );
}

#[test]
fn defaults_headers_reach_every_canary_and_a_canarys_own_win_by_name() {
    let config = parse_config(
        "defaults:\n  headers: { X-Wsmon-Canary: t0ken, X-Team: a }\ncanaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n  - name: b\n    url: ws://127.0.0.1:1/ws\n    headers: { x-team: b }\n",
    );
    let names = |i: usize| -> Vec<(String, String)> {
        config.canaries[i]
            .headers
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.expose().to_string()))
            .collect()
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        names(0),
        [pair("x-wsmon-canary", "t0ken"), pair("x-team", "a")]
    );
    assert_eq!(
        names(1),
        [pair("x-wsmon-canary", "t0ken"), pair("x-team", "b")]
    );
    let shown = config.render();
    assert!(!shown.contains("t0ken"), "{shown}");
}

/// A server that recognises canaries by a header of its own, and a canary that sends it from
/// `defaults.headers` with a User-Agent of its own: recognised by the header alone.
#[tokio::test]
async fn a_server_matching_a_configured_header_sees_the_daemons_canary() {
    use axum::routing::get;
    let registry = prometheus::Registry::new();
    let wsmon = wsmon::WsMon::builder()
        .route("/ws")
        .canary_recognition(wsmon::CanaryRecognition::header(
            http::HeaderName::from_static("x-wsmon-canary"),
            "t0ken",
        ))
        .build(&registry)
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/ws",
            get(|ws: wsmon::WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    let _ = socket
                        .send(axum::extract::ws::Message::Text("hello".into()))
                        .await;
                    while let Some(Ok(_)) = socket.recv().await {}
                })
            }),
        )
        .layer(wsmon.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = parse_config(&format!(
        "defaults:\n  headers: {{ X-Wsmon-Canary: t0ken }}\ncanaries:\n  - name: own-ua\n    url: ws://{addr}/ws\n    headers: {{ User-Agent: my-canary/1 }}\n"
    ));
    let daemon = RunningDaemon::start(config).await;
    let route = ("route", "/ws");
    let seen = eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        let s = Scrape::parse(&wsmon::export::prometheus::render(&registry));
        async move {
            (s.sum("websocket_server_canary_active_connections", &[route]) == 1.0).then_some(s)
        }
    })
    .await
    .expect("the server recognises the canary by its header");
    let accepted = [route, ("outcome", "accepted"), ("status_code", "101")];
    assert_eq!(
        seen.sum("websocket_server_canary_upgrades_total", &accepted),
        1.0
    );
    daemon.stop().await;
}
