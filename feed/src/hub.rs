//! The feed's broadcast hub: the sequencer, the recent history and the subscribers' outbound
//! queues.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes};
use serde_json::{Map, Value};

use wsmon::queue::{QueueItem, QueueSender};
use wsmon::{RouteHandle, Stamp};

use crate::history::{Coverage, Entry, History};

/// One queued outgoing message with its sequencer stamp.
pub struct Outbound {
    pub msg: Message,
    pub stamp: Option<Stamp>,
}

impl Outbound {
    pub(crate) fn sequenced(entry: &Entry) -> Self {
        Self {
            msg: Message::Text(entry.text.clone()),
            stamp: Some(Stamp::new(entry.seq, entry.published)),
        }
    }

    /// The stream sequence, for a broadcast (not for a `head` reply).
    pub(crate) fn seq(&self) -> Option<u64> {
        self.stamp.and_then(|s| s.seq)
    }
}

impl QueueItem for Outbound {
    fn queued_bytes(&self) -> usize {
        self.msg.queued_bytes()
    }
}

struct State {
    head: u64,
    next_id: u64,
    subscribers: Vec<(u64, QueueSender<Outbound>)>,
    history: History,
}

/// The outcome of [`Hub::subscribe_from`].
#[derive(Debug)]
pub(crate) enum LocalResume {
    /// Subscribed: `replay` holds every message after the resume point up to the head, and
    /// the queue gets everything after that.
    Subscribed { id: u64, replay: Vec<Entry> },
    /// Not subscribed: the history does not reach back to the resume point.
    Behind { oldest: u64 },
    /// Not subscribed: the resume point is past this hub's head.
    Ahead { head: u64 },
}

/// Assigns sequence numbers and fans messages out to every subscriber.
pub struct Hub {
    state: Mutex<State>,
    route: RouteHandle,
    /// True once the hub follows the whole stream: from the start without Redis, and once
    /// the Redis reader has found its starting point with it. Before that a resume cannot
    /// tell where live delivery will begin.
    joined: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Hub")
            .field("route", &self.route)
            .field("head", &state.head)
            .field("subscribers", &state.subscribers.len())
            .finish()
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Hub {
    /// A hub keeping the last `history` messages for resumes.
    pub(crate) fn new(route: RouteHandle, history: usize, joined: bool) -> Self {
        route.set_head(0);
        Self {
            state: Mutex::new(State {
                head: 0,
                next_id: 0,
                subscribers: Vec::new(),
                history: History::new(history),
            }),
            route,
            joined: tokio::sync::watch::Sender::new(joined),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest sequence number.
    pub fn head(&self) -> u64 {
        self.lock().head
    }

    /// Registers a subscriber and returns its id with the head it starts after, atomically,
    /// so the snapshot and the first broadcast it receives are consecutive.
    pub(crate) fn subscribe(&self, queue: QueueSender<Outbound>) -> (u64, u64) {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.subscribers.push((id, queue));
        (id, state.head)
    }

    /// Subscribes a connection resuming after `from` if the history covers it, atomically
    /// with taking the replay, so replay and live messages meet without gap or overlap.
    pub(crate) fn subscribe_from(&self, from: u64, queue: &QueueSender<Outbound>) -> LocalResume {
        let mut state = self.lock();
        match state.history.coverage(from, state.head) {
            Coverage::Covered => {
                let replay = state.history.after(from);
                state.next_id += 1;
                let id = state.next_id;
                state.subscribers.push((id, queue.clone()));
                LocalResume::Subscribed { id, replay }
            }
            Coverage::Behind { oldest } => LocalResume::Behind { oldest },
            Coverage::Ahead { head } => LocalResume::Ahead { head },
        }
    }

    /// The route handle, for reporting resumes.
    pub(crate) fn route(&self) -> &RouteHandle {
        &self.route
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.retain(|(i, _)| *i != id);
    }

    /// Connections currently subscribed.
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Broadcasts `{"type":"tick","seq":N,"ts":MS}` with the next local sequence.
    pub fn publish_tick(&self) -> u64 {
        self.broadcast(None)
    }

    /// Broadcasts `object` with `seq` and `ts` added; returns the sequence.
    pub fn publish_object(&self, object: Map<String, Value>) -> u64 {
        self.broadcast(Some(object))
    }

    /// Moves the head on by `n` without sending anything: the next message leaves a gap of
    /// `n` sequences (a fault control; see `faults.rs`).
    pub(crate) fn skip_sequences(&self, n: u64) -> u64 {
        let mut state = self.lock();
        state.head += n;
        self.route.set_head(state.head);
        state.head
    }

    /// Sends the newest `n` messages again to every subscriber. Unstamped, so the writer's
    /// replay dedup lets them through: the client sees true duplicates.
    pub(crate) fn resend_last(&self, n: usize) -> usize {
        let mut state = self.lock();
        let from = state.head.saturating_sub(n as u64);
        let again = state.history.after(from);
        state.subscribers.retain(|(_, queue)| {
            again.iter().all(|entry| {
                let msg = Outbound {
                    msg: Message::Text(entry.text.clone()),
                    stamp: None,
                };
                queue.push(msg) != wsmon::queue::Pushed::Closed
            })
        });
        again.len()
    }

    /// Broadcasts `n` ticks under one lock hold: faster than any consumer drains, so a
    /// burst larger than the outbound queue overflows it. Returns the last sequence.
    pub(crate) fn burst(&self, n: usize) -> u64 {
        let mut state = self.lock();
        let now = SystemTime::now();
        for _ in 0..n {
            let seq = state.head + 1;
            self.fan_out(&mut state, seq, now, None);
        }
        state.head
    }

    fn broadcast(&self, object: Option<Map<String, Value>>) -> u64 {
        let mut state = self.lock();
        let seq = state.head + 1;
        self.fan_out(&mut state, seq, SystemTime::now(), object);
        seq
    }

    /// Fans out a message sequenced elsewhere (by Redis) and published at `ts_ms`; a tick
    /// when `object` is `None`. The head only moves forward: a message at or below it was
    /// delivered already and is skipped.
    pub(crate) fn deliver(&self, seq: u64, ts_ms: u64, object: Option<Map<String, Value>>) {
        let mut state = self.lock();
        if seq <= state.head {
            return;
        }
        let published = UNIX_EPOCH + std::time::Duration::from_millis(ts_ms);
        self.fan_out(&mut state, seq, published, object);
    }

    /// Raises the head to `seq` without a message: where a new instance joins the shared
    /// stream. What came before is not in the history (a resume reads it from Redis).
    pub(crate) fn deliver_head(&self, seq: u64) {
        let mut state = self.lock();
        if seq > state.head {
            state.head = seq;
            self.route.set_head(seq);
        }
        drop(state);
        self.joined.send_replace(true);
    }

    /// Waits until the hub follows the whole stream (see `joined`); false after `limit`.
    pub(crate) async fn wait_joined(&self, limit: std::time::Duration) -> bool {
        let mut joined = self.joined.subscribe();
        let waited = tokio::time::timeout(limit, joined.wait_for(|j| *j)).await;
        matches!(waited, Ok(Ok(_)))
    }

    fn fan_out(
        &self,
        state: &mut State,
        seq: u64,
        published: SystemTime,
        object: Option<Map<String, Value>>,
    ) {
        let entry = render(seq, published, object);
        if seq > state.head {
            state.head = seq;
            self.route.set_head(seq);
        }
        // A subscriber whose queue is closed (gone or evicted) is dropped from the fan-out.
        state.subscribers.retain(|(_, queue)| {
            queue.push(Outbound::sequenced(&entry)) != wsmon::queue::Pushed::Closed
        });
        state.history.push(entry);
    }
}

/// The wire form of message `seq`: `{"type":"tick","seq":N,"ts":MS}` for a tick, else
/// `object` with `seq` and `ts` added.
pub(crate) fn render(seq: u64, published: SystemTime, object: Option<Map<String, Value>>) -> Entry {
    let ts = unix_ms(published);
    let text = match object {
        None => format!(r#"{{"type":"tick","seq":{seq},"ts":{ts}}}"#),
        Some(mut object) => {
            object.insert("seq".into(), seq.into());
            object.insert("ts".into(), ts.into());
            Value::Object(object).to_string()
        }
    };
    Entry {
        seq,
        published,
        text: Utf8Bytes::from(text),
    }
}
