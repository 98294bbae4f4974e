//! Cross-instance fan-out over Redis: several feeds share one broadcast stream.
//!
//! A publish (a tick or `POST /publish`) runs one Lua script on Redis that takes the next
//! sequence with `INCR` and `PUBLISH`es the message in the same atomic step. Every instance,
//! the publisher included, subscribes to the channel and fans out what arrives, so all
//! instances deliver the same messages with the same sequence numbers in the same order.
//!
//! While Redis is unreachable nothing is published anywhere: a tick is skipped, `POST
//! /publish` answers 503, and the streams stop advancing (clients stay connected; heartbeats
//! go on). The subscriber reconnects with full-jitter backoff, and the command connection
//! reconnects on the next publish. A Redis that comes back empty (restarted without
//! persistence) does not restart the sequence: each publish passes the instance's head as a
//! floor, so sequences never go backwards. Messages published while an instance's
//! subscription was down are missed by that instance, which its clients see as a sequence
//! gap.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Map, Value};

use crate::Feed;
use wsmon::backoff::Backoff;

/// The key holding the shared sequence.
pub const SEQUENCE_KEY: &str = "wsmon:feed:seq";
/// The pub/sub channel carrying `"<seq> <envelope JSON>"`.
pub const CHANNEL: &str = "wsmon:feed:broadcast";

/// Raises the sequence to the caller's floor if Redis lost it, then sequences and publishes
/// atomically, so every subscriber sees sequences in increasing order.
const PUBLISH_SCRIPT: &str = r"
local floor = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < floor then redis.call('SET', KEYS[1], floor) end
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. ' ' .. ARGV[1])
return seq
";

/// Bounds every Redis round trip, so a dead or paused Redis never stalls a publisher.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a publish through Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Redis refused or the connection failed.
    #[error("redis at {url} is unavailable: {source}")]
    Redis {
        /// The Redis URL, credentials redacted.
        url: String,
        /// The Redis client's reason.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("redis at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The Redis URL, credentials redacted.
        url: String,
        /// How long the feed waited.
        timeout: Duration,
    },
}

/// The feed's connection to Redis; printed by its redacted URL only.
pub(crate) struct RedisBus {
    client: redis::Client,
    /// The URL without credentials, for logs and errors.
    shown_url: String,
    manager: tokio::sync::Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    healthy: AtomicBool,
}

/// `redis://user:secret@host/0` → `redis://***@host/0`: credentials never reach a log.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl RedisBus {
    pub(crate) fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            shown_url: redact(url),
            manager: tokio::sync::Mutex::new(None),
            script: redis::Script::new(PUBLISH_SCRIPT),
            healthy: AtomicBool::new(true),
        })
    }

    pub(crate) fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// The command connection, created on first use; it reconnects by itself afterwards.
    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.manager.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let conn = self
            .client
            .get_connection_manager_with_config(config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sequences and publishes `envelope`; `floor` is the highest sequence this instance has
    /// seen. Returns the sequence.
    pub(crate) async fn publish(&self, envelope: &str, floor: u64) -> Result<u64, PublishError> {
        let attempt = async {
            let mut conn = self.connection().await?;
            self.script
                .key(SEQUENCE_KEY)
                .key(CHANNEL)
                .arg(envelope)
                .arg(floor)
                .invoke_async::<u64>(&mut conn)
                .await
        };
        // Generous: a first publish may connect, then load the script.
        let result = match tokio::time::timeout(REDIS_TIMEOUT * 3, attempt).await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(source)) => Err(PublishError::Redis {
                url: self.shown_url.clone(),
                source,
            }),
            Err(_) => Err(PublishError::Timeout {
                url: self.shown_url.clone(),
                timeout: REDIS_TIMEOUT * 3,
            }),
        };
        self.note(&result);
        result
    }

    /// Logs only when Redis goes from working to failing and back, not on every tick.
    fn note<T>(&self, result: &Result<T, PublishError>) {
        let ok = result.is_ok();
        if self.healthy.swap(ok, Relaxed) != ok {
            match result {
                Ok(_) => {
                    tracing::info!(redis = %self.shown_url, "feed: publishing through redis again")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "feed: publishing through redis failed; the stream is paused")
                }
            }
        }
    }
}

/// The message published for a tick (no object) or an object, with its publish time.
pub(crate) fn envelope(ts_ms: u64, object: Option<Map<String, Value>>) -> String {
    let mut env = Map::new();
    env.insert("ts".into(), ts_ms.into());
    if let Some(object) = object {
        env.insert("object".into(), Value::Object(object));
    }
    Value::Object(env).to_string()
}

/// One message as it arrives on the channel.
impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq)]
pub(crate) struct Published {
    pub(crate) seq: u64,
    pub(crate) ts_ms: u64,
    /// `None` for a tick.
    pub(crate) object: Option<Map<String, Value>>,
}

/// Parses `"<seq> <envelope>"`.
pub(crate) fn parse_message(payload: &str) -> Option<Published> {
    let (seq, env) = payload.split_once(' ')?;
    let seq = seq.parse().ok()?;
    let Value::Object(mut env) = serde_json::from_str::<Value>(env).ok()? else {
        return None;
    };
    let ts = env.get("ts")?.as_u64()?;
    let object = match env.remove("object") {
        Some(Value::Object(object)) => Some(object),
        Some(_) => return None,
        None => None,
    };
    Some(Published {
        seq,
        ts_ms: ts,
        object,
    })
}

/// Holds the subscription for as long as the feed runs, resubscribing with backoff.
pub(crate) async fn run_subscriber(feed: Arc<Feed>, bus: Arc<RedisBus>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut was_down = false;
    loop {
        let subscribed = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut pubsub = bus.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(mut pubsub)) => {
                backoff.reset();
                if was_down {
                    tracing::info!(redis = %bus.shown_url, "feed: resubscribed to redis");
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = match msg.get_payload() {
                        Ok(p) => p,
                        Err(err) => {
                            tracing::warn!(error = %err, "feed: unreadable redis message");
                            continue;
                        }
                    };
                    match parse_message(&payload) {
                        Some(p) => feed.hub.deliver(p.seq, p.ts_ms, p.object),
                        None => tracing::warn!(
                            channel = CHANNEL,
                            "feed: ignoring a redis message that is not \"<seq> <json>\""
                        ),
                    }
                }
                tracing::warn!(redis = %bus.shown_url, "feed: redis subscription lost; resubscribing");
                was_down = true;
            }
            Ok(Err(err)) if !was_down => {
                tracing::warn!(error = %err, redis = %bus.shown_url, "feed: cannot subscribe to redis; retrying");
                was_down = true;
            }
            Err(_) if !was_down => {
                tracing::warn!(redis = %bus.shown_url, "feed: redis subscribe timed out; retrying");
                was_down = true;
            }
            _ => {}
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_from_the_shown_url() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://user:pw@host"), "redis://***@host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn envelopes_round_trip_through_the_channel_format() {
        let mut object = Map::new();
        object.insert("nonce".into(), "a b c".into());
        let env = envelope(1234, Some(object.clone()));
        let parsed = parse_message(&format!("42 {env}")).unwrap();
        assert_eq!((parsed.seq, parsed.ts_ms), (42, 1234));
        assert_eq!(parsed.object, Some(object));
        let tick = parse_message(&format!("7 {}", envelope(5, None))).unwrap();
        assert_eq!((tick.seq, tick.ts_ms, tick.object), (7, 5, None));
    }

    #[test]
    fn malformed_channel_messages_are_rejected() {
        for bad in [
            "",
            "42",
            "x {\"ts\":1}",
            "1 {}",
            "1 []",
            "1 {\"ts\":1,\"object\":3}",
        ] {
            assert_eq!(parse_message(bad), None, "{bad:?}");
        }
    }
}
