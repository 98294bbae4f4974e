//! The URL-form resume (`resume: { query: from }`) against the real example feed, through a
//! relay that kills the canary's connection mid-stream: a hit replays exactly what was
//! missed, a miss is counted with what it lost, and `resume unavailable` (1013) is retried
//! from the same point.

mod support;

use std::time::Duration;

use support::{parse_config, sample, RunningDaemon};
use wsmon_feed::FeedConfig;
use wsmon_testkit::exposition::Scrape;
use wsmon_testkit::feed::FeedServer;
use wsmon_testkit::kill_relay::KillRelay;
use wsmon_testkit::redis::RedisServer;

/// Generous: CI machines are shared and loaded.
const LIMIT: Duration = Duration::from_secs(30);

fn canary_yaml(url: &str) -> String {
    format!(
        "canaries:\n  - name: r\n    url: {url}\n    first_payload_within: 3s\n    backoff: {{ initial: 50ms, max: 100ms }}\n    sequence: {{ pointer: /seq }}\n    timestamp: {{ pointer: /ts, unit: ms }}\n    resume: {{ query: from }}\n"
    )
}

fn resumes(m: &str, outcome: &str) -> f64 {
    sample(
        m,
        "websocket_canary_resumes_total",
        &format!(r#"canary="r",outcome="{outcome}""#),
    )
    .unwrap_or_else(|| panic!("resumes_total{{outcome={outcome:?}}} exists:\n{m}"))
}

fn counter(m: &str, name: &str) -> f64 {
    sample(m, name, r#"canary="r""#).unwrap_or_else(|| panic!("{name} exists:\n{m}"))
}

/// The `from` each dial carried, in order (`None` for a dial without one).
fn resume_points(relay: &KillRelay) -> Vec<Option<u64>> {
    relay
        .request_lines()
        .iter()
        .map(|line| {
            let target = line.split(' ').nth(1).expect("GET target HTTP/1.1");
            let url = url::Url::parse(&format!("ws://x{target}")).unwrap();
            url.query_pairs()
                .find(|(k, _)| k == "from")
                .map(|(_, v)| v.parse().expect("from is a sequence"))
        })
        .collect()
}

/// The canary `r` through a relay to `feed`, once its first stream delivers.
async fn canary_through_relay(feed: &FeedServer) -> (KillRelay, RunningDaemon) {
    let relay = KillRelay::start(vec![feed.addr]).await;
    let d = RunningDaemon::start(parse_config(&canary_yaml(&relay.ws_url()))).await;
    d.wait_for(LIMIT, "the first stream", |m| {
        counter(m, "websocket_canary_messages_total") >= 5.0
    })
    .await;
    (relay, d)
}

/// Kills the canary's connection and holds its reconnect until `published` more messages
/// went out, so the resumed connection has them to replay (waiting for the feed's head, not
/// for a fixed time). The caller releases the relay.
async fn kill_and_hold_for(relay: &KillRelay, feed: &FeedServer, published: u64) {
    relay.hold();
    let at_kill = feed.feed.hub().head();
    relay.kill_all();
    let head = wsmon_testkit::eventually(LIMIT, Duration::from_millis(10), || async {
        (feed.feed.hub().head() >= at_kill + published).then_some(())
    })
    .await;
    assert!(head.is_some(), "the feed published {published} more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_canary_resumes_with_from_and_the_replay_fills_the_hole_exactly() {
    let feed = FeedServer::start(FeedConfig {
        rate: 50.0,
        ..Default::default()
    })
    .await;
    let (relay, d) = canary_through_relay(&feed).await;
    for i in 1..=3 {
        kill_and_hold_for(&relay, &feed, 20).await;
        relay.release();
        d.wait_for(LIMIT, "a resume hit", |m| resumes(m, "hit") >= f64::from(i))
            .await;
    }
    // A few more live messages after the last replay, so a late gap would have shown.
    let m = d
        .wait_for(LIMIT, "messages after the last resume", |m| {
            counter(m, "websocket_canary_messages_total") >= 80.0
        })
        .await;
    assert_eq!(resumes(&m, "hit"), 3.0, "{m}");
    for outcome in ["miss", "unavailable", "failed", "interrupted"] {
        assert_eq!(resumes(&m, outcome), 0.0, "{outcome}: {m}");
    }
    for name in [
        "websocket_canary_sequence_gaps_total",
        "websocket_canary_missed_messages_total",
        "websocket_canary_duplicates_total",
    ] {
        assert_eq!(counter(&m, name), 0.0, "{name}: {m}");
    }
    // Everything published while the canary was held back came from the replay.
    assert!(
        counter(&m, "websocket_canary_replayed_messages_total") >= 60.0,
        "{m}"
    );
    // The first dial has no resume point; every later one carries the last sequence seen.
    let points = resume_points(&relay);
    assert_eq!(points.len(), 4, "{points:?}");
    assert_eq!(points[0], None);
    assert!(
        points[1..].iter().all(Option::is_some) && points[1..].windows(2).all(|w| w[0] < w[1]),
        "{points:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_older_than_the_history_is_a_miss_counting_exactly_what_was_lost() {
    let feed = FeedServer::start(FeedConfig {
        rate: 50.0,
        history: 10,
        ..Default::default()
    })
    .await;
    let (relay, d) = canary_through_relay(&feed).await;
    kill_and_hold_for(&relay, &feed, 40).await;
    relay.release();
    let m = d
        .wait_for(LIMIT, "a resume miss, then live messages", |m| {
            resumes(m, "miss") >= 1.0 && counter(m, "websocket_canary_messages_total") >= 60.0
        })
        .await;
    // The feed says how many it could not replay; the canary counts the same as missed.
    let feed_missed = Scrape::parse(&wsmon::export::prometheus::render(&feed.registry))
        .sum("websocket_server_resume_missed_messages_total", &[]);
    assert!(feed_missed >= 25.0, "at least 40 - 10 - a few were lost");
    assert_eq!(
        counter(&m, "websocket_canary_missed_messages_total"),
        feed_missed,
        "{m}"
    );
    assert_eq!(counter(&m, "websocket_canary_sequence_gaps_total"), 1.0);
    assert_eq!(counter(&m, "websocket_canary_duplicates_total"), 0.0);
    assert_eq!(resumes(&m, "miss"), 1.0);
    assert_eq!(resumes(&m, "hit"), 0.0);
    assert_eq!(
        sample(
            &m,
            "websocket_canary_failures_total",
            r#"canary="r",reason="resume_miss""#
        ),
        Some(1.0)
    );
    // The history (10) was replayed after the miss message.
    assert!(
        counter(&m, "websocket_canary_replayed_messages_total") >= 5.0,
        "{m}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_unavailable_is_retried_from_the_same_point() {
    let mut redis = RedisServer::start().await;
    let feed = FeedServer::start(FeedConfig {
        rate: 50.0,
        redis: Some(redis.url()),
        // Every resume reads Redis.
        history: 0,
        ..Default::default()
    })
    .await;
    let (relay, d) = canary_through_relay(&feed).await;
    // Behind the feed's head with no history in memory: the replay must read Redis, and
    // Redis is gone.
    kill_and_hold_for(&relay, &feed, 10).await;
    redis.kill();
    relay.release();
    let m = d
        .wait_for(LIMIT, "two unavailable resumes", |m| {
            resumes(m, "unavailable") >= 2.0
        })
        .await;
    assert!(
        sample(
            &m,
            "websocket_canary_failures_total",
            r#"canary="r",reason="resume_unavailable""#
        )
        .unwrap()
            >= 2.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "websocket_canary_reconnects_total",
            r#"canary="r",reason="resume_unavailable""#
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    assert_eq!(resumes(&m, "hit") + resumes(&m, "failed"), 0.0, "{m}");
    // Nothing arrived in between, so every retry asked for the same point.
    let points: Vec<u64> = resume_points(&relay).into_iter().flatten().collect();
    assert!(points.len() >= 2, "{points:?}");
    assert!(points.windows(2).all(|w| w[0] == w[1]), "{points:?}");
    d.stop().await;
}
