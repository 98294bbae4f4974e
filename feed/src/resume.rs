//! Resuming a stream: `GET /ws?from=N`.
//!
//! The contract (the prober and checks outside this repo rely on it exactly):
//! - the feed sends, in order, every message with `seq > N`, then continues live, with no gap
//!   and no duplicate across the replay/live seam;
//! - a resumed connection gets no snapshot;
//! - it holds on any instance sharing the Redis stream, and after the previous connection
//!   was killed mid-stream (the resume point is all the feed needs);
//! - when part of what followed `N` is no longer retained (older than the in-memory history
//!   without Redis, or than the stream's retention with it), or `N` is past the newest
//!   sequence the feed knows, the feed first sends
//!   `{"type":"resume_miss","from":N,"oldest":M}`, where `M` is the sequence of the next
//!   message it sends; then everything it still has from `M` on, then live. Messages
//!   `N+1 .. M-1` are lost to this client; it is never a silent gap. A miss is counted in
//!   `websocket_server_resumes_total{outcome="miss"}` and the lost messages in
//!   `websocket_server_resume_missed_messages_total`;
//! - when Redis cannot be read during a resume, the connection is closed with 1013 (Try
//!   Again Later) and reason `resume unavailable`, so the client retries with the same `N`;
//! - a `from` that is not an unsigned integer is refused before the upgrade with 400.
//!
//! Replayed messages carry no sequencer stamp: they are late by design, and counting them
//! as sequencer lag would hide the live lag behind the replay.

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use serde::Deserialize;

use crate::history::Entry;
use crate::hub::{render, LocalResume, Outbound};
use crate::redis::{PublishError, READ_CHUNK};
use crate::Feed;
use wsmon::queue::QueueSender;
use wsmon::ResumeOutcome;

/// How long a resume waits for a just-started instance to find its place in the stream.
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The query of `GET /ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    /// The last sequence the client received.
    pub(crate) from: Option<u64>,
}

/// The first message of a resume that cannot be served in full.
pub(crate) fn resume_miss(from: u64, oldest: u64) -> String {
    format!(r#"{{"type":"resume_miss","from":{from},"oldest":{oldest}}}"#)
}

/// Why a replay stopped before the connection went live.
#[derive(Debug)]
pub(crate) enum ReplayError {
    /// The client is gone.
    Closed,
    /// Redis could not be read; the client should retry.
    Unavailable(PublishError),
}

impl From<PublishError> for ReplayError {
    fn from(e: PublishError) -> Self {
        Self::Unavailable(e)
    }
}

/// What a finished replay leaves the writer with.
#[derive(Debug)]
pub(crate) struct Resumed {
    /// The hub subscriber id.
    pub(crate) id: u64,
    /// The last sequence sent: the writer skips queued messages at or below it.
    pub(crate) last_sent: u64,
}

struct Progress<'a, S> {
    sink: &'a mut S,
    cursor: u64,
    replayed: u64,
    missed: u64,
    outcome: ResumeOutcome,
}

impl<S: Sink<Message> + Unpin> Progress<'_, S> {
    async fn send(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        self.sink
            .send(Message::Text(entry.text.clone()))
            .await
            .map_err(|_| ReplayError::Closed)?;
        self.cursor = entry.seq;
        self.replayed += 1;
        Ok(())
    }

    /// Tells the client that the next message is `oldest`, not `cursor + 1`.
    async fn miss(&mut self, oldest: u64) -> Result<(), ReplayError> {
        let text = Utf8Bytes::from(resume_miss(self.cursor, oldest));
        self.sink
            .send(Message::Text(text))
            .await
            .map_err(|_| ReplayError::Closed)?;
        self.missed += oldest.saturating_sub(self.cursor + 1);
        self.outcome = ResumeOutcome::Miss;
        self.cursor = oldest.saturating_sub(1);
        Ok(())
    }
}

/// Sends `sink` every message after `from` and subscribes `queue` so that live messages
/// continue exactly where the replay stopped. Reads from the hub's history when it reaches
/// back far enough, else from the Redis stream in chunks (sent as they arrive, so memory
/// stays bounded by one chunk), else tells the client what is missing.
pub(crate) async fn replay<S: Sink<Message> + Unpin>(
    feed: &Feed,
    from: u64,
    queue: &QueueSender<Outbound>,
    sink: &mut S,
) -> Result<Resumed, ReplayError> {
    let mut p = Progress {
        sink,
        cursor: from,
        replayed: 0,
        missed: 0,
        outcome: ResumeOutcome::Hit,
    };
    let result = drive(feed, queue, &mut p).await;
    let route = feed.hub.route();
    if !matches!(result, Err(ReplayError::Unavailable(_))) {
        route.record_resume(p.outcome);
    }
    route.record_replayed(p.replayed);
    route.record_resume_missed(p.missed);
    result
}

async fn drive<S: Sink<Message> + Unpin>(
    feed: &Feed,
    queue: &QueueSender<Outbound>,
    p: &mut Progress<'_, S>,
) -> Result<Resumed, ReplayError> {
    if let Some(bus) = feed.bus() {
        if !feed.hub.wait_joined(JOIN_WAIT).await {
            return Err(bus.unavailable(JOIN_WAIT).into());
        }
    }
    loop {
        match (feed.hub.subscribe_from(p.cursor, queue), feed.bus()) {
            (LocalResume::Subscribed { id, replay }, _) => {
                for entry in &replay {
                    if let Err(e) = p.send(entry).await {
                        feed.hub.unsubscribe(id);
                        return Err(e);
                    }
                }
                return Ok(Resumed {
                    id,
                    last_sent: p.cursor,
                });
            }
            (LocalResume::Ahead { head }, None) => p.miss(head + 1).await?,
            (LocalResume::Behind { oldest }, None) => p.miss(oldest).await?,
            (LocalResume::Ahead { .. }, Some(bus)) => {
                // This instance's reader is behind the stream, or the client is ahead of it.
                let last = bus.last_seq().await?;
                if p.cursor > last {
                    p.miss(last + 1).await?;
                    continue;
                }
                let chunk = bus.range(p.cursor + 1, READ_CHUNK).await?;
                if chunk.is_empty() {
                    // The client has the stream's newest message; what this instance still
                    // has to deliver up to it is skipped by the writer (`last_sent`).
                    let (id, _) = feed.hub.subscribe(queue.clone());
                    return Ok(Resumed {
                        id,
                        last_sent: p.cursor,
                    });
                }
                send_chunk(p, chunk).await?;
            }
            (LocalResume::Behind { oldest }, Some(bus)) => {
                let chunk = bus.range(p.cursor + 1, READ_CHUNK).await?;
                if chunk.is_empty() {
                    // The stream lost what this instance still knows of (Redis restarted
                    // empty): only the local history is left.
                    p.miss(oldest).await?;
                    continue;
                }
                send_chunk(p, chunk).await?;
            }
        }
    }
}

async fn send_chunk<S: Sink<Message> + Unpin>(
    p: &mut Progress<'_, S>,
    chunk: Vec<crate::redis::Published>,
) -> Result<(), ReplayError> {
    if let Some(first) = chunk.first() {
        if first.seq > p.cursor + 1 {
            p.miss(first.seq).await?;
        }
    }
    for m in chunk {
        if m.seq <= p.cursor {
            continue;
        }
        let published = std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.ts_ms);
        p.send(&render(m.seq, published, m.object)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_miss_message_names_the_resume_point_and_the_next_sequence() {
        let v: serde_json::Value = serde_json::from_str(&resume_miss(10, 42)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "resume_miss", "from": 10, "oldest": 42})
        );
    }
}
