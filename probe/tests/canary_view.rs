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
