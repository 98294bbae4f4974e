//! Cross-server fan-out through a real Redis: two feed instances share one stream whose
//! sequence comes from Redis. When Redis dies the stream stops everywhere (and the feeds keep
//! serving); when it comes back, empty, the stream resumes without going backwards.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::*;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::Message;
use wsmon_feed::{Feed, FeedConfig};
use wsmon_testkit::redis::RedisServer;

/// A client's data messages, parsed, as they arrive.
struct Subscriber {
    messages: UnboundedReceiver<Value>,
    requests: tokio::sync::mpsc::UnboundedSender<Message>,
}

async fn subscribe(server: &FeedServer) -> Subscriber {
    let client = connect(&server.ws_url()).await;
    let (mut tx, mut rx) = client.split();
    let (out, messages) = tokio::sync::mpsc::unbounded_channel();
    let (requests, mut pending) = tokio::sync::mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = rx.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let _ = out.send(serde_json::from_str::<Value>(t.as_str()).unwrap());
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                Some(req) = pending.recv() => {
                    if tx.send(req).await.is_err() { break; }
                }
            }
        }
    });
    Subscriber { messages, requests }
}

impl Subscriber {
    /// The next message matching `pred`, within `within`.
    async fn next_matching(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(within, async {
            loop {
                let msg = self.messages.recv().await.expect("stream still open");
                if pred(&msg) {
                    return msg;
                }
            }
        })
        .await
        .expect("a matching message in time")
    }

    /// Everything received so far.
    fn drain(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.messages.try_recv().ok()).collect()
    }

    async fn head(&mut self) -> u64 {
        self.requests
            .send(Message::text(r#"{"op":"head"}"#))
            .unwrap();
        let reply = self
            .next_matching(Duration::from_secs(5), |m| m["type"] == "head")
            .await;
        reply["seq"].as_u64().unwrap()
    }
}

fn seq(msg: &Value) -> u64 {
    msg["seq"].as_u64().expect("seq")
}

fn is_tick(msg: &Value) -> bool {
    msg["type"] == "tick"
}

async fn publish(server: &FeedServer, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/publish", server.addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the feed answers /publish")
}

/// Publishes `{"nonce": nonce}` through `server`; returns the sequence it answered and the
/// message as `subscriber` received it.
async fn publish_and_receive(
    server: &FeedServer,
    subscriber: &mut Subscriber,
    nonce: &str,
) -> (u64, Value) {
    let resp = publish(server, json!({ "nonce": nonce })).await;
    assert_eq!(resp.status(), 200);
    let published = json_body(resp).await["seq"].as_u64().unwrap();
    let got = subscriber
        .next_matching(Duration::from_secs(5), |m| m["nonce"] == nonce)
        .await;
    (published, got)
}

async fn json_body(resp: reqwest::Response) -> Value {
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

fn feed_config(redis: &RedisServer, rate: f64) -> FeedConfig {
    FeedConfig {
        rate,
        redis: Some(redis.url()),
        ..FeedConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_feeds_share_one_redis_sequenced_stream_that_pauses_without_redis_and_resumes() {
    let panics = panics_so_far();
    let mut redis = RedisServer::start().await;
    // A ticks into the shared stream; B only relays it.
    let a = start_feed(feed_config(&redis, 20.0)).await;
    let b = start_feed(feed_config(&redis, 0.0)).await;
    let mut on_a = subscribe(&a).await;
    let mut on_b = subscribe(&b).await;

    // A's ticks reach B's client through Redis.
    let first = on_b.next_matching(Duration::from_secs(10), is_tick).await;
    assert!(seq(&first) >= 1);

    // Published through A: both instances deliver it with the sequence A answered.
    let (published, got_b) = publish_and_receive(&a, &mut on_b, "via-a").await;
    let got_a = on_a
        .next_matching(Duration::from_secs(5), |m| m["nonce"] == "via-a")
        .await;
    assert_eq!(
        seq(&got_b),
        published,
        "B delivers A's publish with Redis's sequence"
    );
    assert_eq!(seq(&got_a), published);
    assert!(
        got_b["ts"].as_u64().is_some(),
        "publish time travels with it"
    );

    // One shared order: sequences only increase on each instance, with no gaps.
    let mut last_b = seq(&got_b);
    for msg in on_b.drain() {
        if msg.get("seq").is_some() {
            assert_eq!(seq(&msg), last_b + 1, "B's stream is gap-free and ordered");
            last_b = seq(&msg);
        }
    }
    assert!(b.feed.hub().head() >= published);

    // Redis dies: nothing more is published anywhere, and the feeds survive.
    redis.kill();
    let refused = publish(&a, json!({"nonce": "while-down"})).await;
    assert_eq!(refused.status(), 503, "publishing without Redis is refused");
    let reason = refused.text().await.unwrap();
    assert!(reason.contains("redis"), "the 503 says why: {reason}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = on_b.drain();
    let stopped_at = in_flight
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .max()
        .unwrap_or(last_b);
    // A ticks 20 times a second: a live stream would deliver ~30 messages in 1.5 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during_outage = on_b.drain();
    assert!(
        during_outage.is_empty(),
        "B's stream must stop while Redis is down, got {during_outage:?}"
    );
    assert!(on_a.drain().iter().all(|m| m["nonce"] != "while-down"));
    // Both instances still answer: their clients are connected, /metrics serves.
    assert_eq!(on_b.head().await, stopped_at, "B holds its head");
    for server in [&a, &b] {
        let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200);
        assert_eq!(server.feed.wsmon().active_connections(), 1);
    }

    // Redis comes back empty: the stream resumes on B without going backwards.
    redis.restart().await;
    let resumed = on_b.next_matching(Duration::from_secs(20), is_tick).await;
    assert!(
        seq(&resumed) > stopped_at,
        "the sequence resumed at {} after {stopped_at}: it must not restart",
        seq(&resumed)
    );
    let (published, got_b) = publish_and_receive(&a, &mut on_b, "after-restore").await;
    assert_eq!(seq(&got_b), published);
    assert_eq!(panics_so_far(), panics);
}

#[tokio::test]
async fn a_feed_started_while_redis_is_down_serves_and_joins_once_redis_appears() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    redis.kill();
    let feed = start_feed(FeedConfig {
        rate: 0.0,
        redis: Some(url),
        ..FeedConfig::default()
    })
    .await;
    let mut sub = subscribe(&feed).await;
    let snapshot = sub
        .next_matching(Duration::from_secs(5), |m| m["type"] == "snapshot")
        .await;
    assert_eq!(seq(&snapshot), 0);
    assert_eq!(publish(&feed, json!({"n": 1})).await.status(), 503);
    redis.restart().await;
    // The subscription comes up with backoff; publish until a message makes it through.
    let mut delivered = None;
    for _ in 0..100 {
        let resp = publish(&feed, json!({"n": 2})).await;
        if resp.status() == 200 {
            let s = json_body(resp).await["seq"].as_u64().unwrap();
            if let Ok(msg) = tokio::time::timeout(Duration::from_millis(200), async {
                loop {
                    let m = sub.messages.recv().await.unwrap();
                    if m["n"] == 2 && seq(&m) == s {
                        return m;
                    }
                }
            })
            .await
            {
                delivered = Some(msg);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered.is_some(),
        "the feed joined Redis after it appeared"
    );
}

#[test]
fn the_feed_config_debug_output_hides_the_redis_password() {
    let config = FeedConfig {
        redis: Some("redis://:hunter2@10.0.0.7:6379/0".into()),
        ..FeedConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(shown.contains("10.0.0.7:6379"), "{shown}");
    assert!(!shown.contains("hunter2"), "the password leaked: {shown}");
}

#[test]
fn an_invalid_redis_url_is_refused_with_a_clear_error_that_hides_the_password() {
    let err = Feed::new(
        FeedConfig {
            redis: Some("http://user:hunter2@example.com/".into()),
            ..FeedConfig::default()
        },
        &prometheus::Registry::new(),
    )
    .expect_err("an http:// URL is not a Redis URL");
    let text = err.to_string();
    assert!(text.contains("invalid redis URL"), "{text}");
    assert!(
        text.contains("redis://host:port"),
        "says what was expected: {text}"
    );
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
}
