//! Cross-instance fan-out over Redis: several feeds share one durable stream.
//!
//! A publish (a tick or `POST /publish`) runs one Lua script on Redis that takes the next
//! sequence with `INCR` and appends the message to the Redis Stream [`STREAM_KEY`] under the
//! entry ID `<seq>-0`, in the same atomic step, trimmed to about `--stream-retention`
//! entries (`MAXLEN ~`). The stream is therefore dense and ordered: entry IDs are the
//! sequences, consecutive. Every instance, the publisher included, follows the stream with
//! `XREAD BLOCK` from the last ID it delivered and fans out what arrives, so all instances
//! deliver the same messages with the same sequence numbers in the same order.
//!
//! While Redis is unreachable nothing is published anywhere: a tick is skipped, `POST
//! /publish` answers 503, and the streams stop advancing (clients stay connected; heartbeats
//! go on). The reader reconnects with full-jitter backoff and continues from the last ID it
//! delivered, so after an outage (or a lost connection) it catches up on everything the
//! stream still retains and its clients miss nothing. A resume (`GET /ws?from=N`) older than
//! the instance's in-memory history is read from the stream with `XRANGE`. A Redis that
//! comes back empty (restarted without persistence) does not restart the sequence: each
//! publish passes the instance's head as a floor, so sequences never go backwards; what the
//! lost stream held can no longer be replayed, and a resume from before it is a miss.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use serde_json::{Map, Value};

use crate::Feed;
use wsmon::backoff::Backoff;

/// The key holding the shared sequence.
pub const SEQUENCE_KEY: &str = "wsmon:feed:seq";
/// The Redis Stream of every published message: entry ID `<seq>-0`, field
/// [`ENVELOPE_FIELD`] holding `{"ts":MS,"object":{...}}` (no `object` for a tick).
pub const STREAM_KEY: &str = "wsmon:feed:stream";
/// The stream entry field carrying the envelope JSON.
pub const ENVELOPE_FIELD: &str = "m";

/// Raises the sequence to the caller's floor if Redis lost it, then sequences and appends
/// atomically, so the stream's entry IDs are the sequences, dense and in order.
const PUBLISH_SCRIPT: &str = r"
local floor = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < floor then redis.call('SET', KEYS[1], floor) end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', ARGV[1])
return seq
";

/// How long one `XREAD` blocks; the reader's connection allows this plus [`REDIS_TIMEOUT`].
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Entries per `XREAD` or `XRANGE` round trip.
pub(crate) const READ_CHUNK: usize = 1000;

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
    /// `MAXLEN ~` of the stream.
    retention: usize,
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
    /// A bus on `url` keeping about `retention` messages in the stream.
    pub(crate) fn new(url: &str, retention: usize) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            shown_url: redact(url),
            manager: tokio::sync::Mutex::new(None),
            script: redis::Script::new(PUBLISH_SCRIPT),
            healthy: AtomicBool::new(true),
            retention: retention.max(1),
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
                .key(STREAM_KEY)
                .arg(envelope)
                .arg(floor)
                .arg(self.retention)
                .invoke_async::<u64>(&mut conn)
                .await
        };
        let result = self.bounded(attempt).await;
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

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

/// One message as read from the stream.
#[derive(Debug, PartialEq)]
pub(crate) struct Published {
    pub(crate) seq: u64,
    pub(crate) ts_ms: u64,
    /// `None` for a tick.
    pub(crate) object: Option<Map<String, Value>>,
}

/// Parses a stream entry: ID `<seq>-0` and its envelope.
pub(crate) fn parse_entry(id: &str, envelope: &str) -> Option<Published> {
    let (seq, _) = id.split_once('-')?;
    let seq = seq.parse().ok()?;
    let Value::Object(mut env) = serde_json::from_str::<Value>(envelope).ok()? else {
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

/// The entries of a stream reply that parse; the others are logged and skipped.
fn parse_ids(ids: Vec<StreamId>) -> Vec<Published> {
    ids.into_iter()
        .filter_map(|entry| {
            let env: Option<String> = entry.get(ENVELOPE_FIELD);
            let parsed = env.as_deref().and_then(|e| parse_entry(&entry.id, e));
            if parsed.is_none() {
                tracing::warn!(
                    stream = STREAM_KEY,
                    id = %entry.id,
                    "feed: ignoring a stream entry that is not <seq>-0 with a JSON envelope"
                );
            }
            parsed
        })
        .collect()
}

impl RedisBus {
    /// Up to `count` stream entries with sequence `>= first`, oldest first.
    pub(crate) async fn range(
        &self,
        first: u64,
        count: usize,
    ) -> Result<Vec<Published>, PublishError> {
        let attempt = async {
            let mut conn = self.connection().await?;
            redis::cmd("XRANGE")
                .arg(STREAM_KEY)
                .arg(format!("{first}-0"))
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async::<StreamRangeReply>(&mut conn)
                .await
        };
        self.bounded(attempt).await.map(|r| parse_ids(r.ids))
    }

    /// The newest sequence in the stream (0 when it is empty).
    pub(crate) async fn last_seq(&self) -> Result<u64, PublishError> {
        let attempt = async {
            let mut conn = self.connection().await?;
            redis::cmd("XREVRANGE")
                .arg(STREAM_KEY)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async::<StreamRangeReply>(&mut conn)
                .await
        };
        let reply = self.bounded(attempt).await?;
        Ok(parse_ids(reply.ids).first().map_or(0, |p| p.seq))
    }

    /// The error for Redis not answering within `timeout`.
    pub(crate) fn unavailable(&self, timeout: Duration) -> PublishError {
        PublishError::Timeout {
            url: self.shown_url.clone(),
            timeout,
        }
    }

    /// Runs one Redis round trip within three [`REDIS_TIMEOUT`]s (generous: a first call
    /// may connect, then load the script).
    async fn bounded<T>(
        &self,
        attempt: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, PublishError> {
        match tokio::time::timeout(REDIS_TIMEOUT * 3, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(PublishError::Redis {
                url: self.shown_url.clone(),
                source,
            }),
            Err(_) => Err(PublishError::Timeout {
                url: self.shown_url.clone(),
                timeout: REDIS_TIMEOUT * 3,
            }),
        }
    }
}

/// Follows the stream for as long as the feed runs, delivering every entry after the last
/// one delivered; reconnects with backoff and catches up from where it stopped.
pub(crate) async fn run_reader(feed: Arc<Feed>, bus: Arc<RedisBus>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut was_down = false;
    // Where to start: the stream's newest entry, so a new instance delivers from now on (a
    // resume reaches further back through `range`).
    let mut last: Option<u64> = None;
    loop {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(READ_BLOCK + REDIS_TIMEOUT);
        let connected = bus
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(err) => {
                if !was_down {
                    tracing::warn!(error = %err, redis = %bus.shown_url, "feed: cannot read the redis stream; retrying");
                    was_down = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let after = match last {
            Some(seq) => seq,
            None => match bus.last_seq().await {
                Ok(seq) => {
                    feed.hub.deliver_head(seq);
                    last = Some(seq);
                    seq
                }
                Err(err) => {
                    if !was_down {
                        tracing::warn!(error = %err, "feed: cannot read the redis stream; retrying");
                        was_down = true;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        if was_down {
            // Stays set: the next read failure logs by itself, and reconnect failures after
            // it stay quiet.
            tracing::info!(redis = %bus.shown_url, after, "feed: reading the redis stream again");
        }
        backoff.reset();
        let mut after = after;
        loop {
            let read = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_CHUNK)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(STREAM_KEY)
                .arg(format!("{after}-0"))
                .query_async::<Option<StreamReadReply>>(&mut conn)
                .await;
            match read {
                Ok(reply) => {
                    let ids = reply
                        .into_iter()
                        .flat_map(|r| r.keys)
                        .flat_map(|k| k.ids)
                        .collect();
                    for p in parse_ids(ids) {
                        if p.seq > after + 1 {
                            tracing::warn!(
                                after,
                                next = p.seq,
                                "feed: the stream no longer holds messages this instance missed"
                            );
                        }
                        after = after.max(p.seq);
                        feed.hub.deliver(p.seq, p.ts_ms, p.object);
                    }
                    last = Some(after);
                }
                Err(err) => {
                    tracing::warn!(error = %err, redis = %bus.shown_url, "feed: redis stream read failed; reconnecting");
                    was_down = true;
                    break;
                }
            }
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
    fn envelopes_round_trip_through_the_stream_entry_format() {
        let mut object = Map::new();
        object.insert("nonce".into(), "a b c".into());
        let env = envelope(1234, Some(object.clone()));
        let parsed = parse_entry("42-0", &env).unwrap();
        assert_eq!((parsed.seq, parsed.ts_ms), (42, 1234));
        assert_eq!(parsed.object, Some(object));
        let tick = parse_entry("7-0", &envelope(5, None)).unwrap();
        assert_eq!((tick.seq, tick.ts_ms, tick.object), (7, 5, None));
    }

    #[test]
    fn malformed_stream_entries_are_rejected() {
        for (id, env) in [
            ("", "{\"ts\":1}"),
            ("42", "{\"ts\":1}"),
            ("x-0", "{\"ts\":1}"),
            ("1-0", "{}"),
            ("1-0", "[]"),
            ("1-0", "{\"ts\":1,\"object\":3}"),
        ] {
            assert_eq!(parse_entry(id, env), None, "{id:?} {env:?}");
        }
    }
}
