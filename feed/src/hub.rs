//! The feed's broadcast hub: the sequencer and the subscribers' outbound queues.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes};
use serde_json::{Map, Value};

use wsmon::queue::{QueueItem, QueueSender};
use wsmon::{RouteHandle, Stamp};

/// One queued outgoing message with its sequencer stamp.
pub struct Outbound {
    pub msg: Message,
    pub stamp: Option<Stamp>,
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
}

/// Assigns sequence numbers and fans messages out to every subscriber.
pub struct Hub {
    state: Mutex<State>,
    route: RouteHandle,
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
    pub(crate) fn new(route: RouteHandle) -> Self {
        route.set_head(0);
        Self {
            state: Mutex::new(State {
                head: 0,
                next_id: 0,
                subscribers: Vec::new(),
            }),
            route,
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

    fn broadcast(&self, object: Option<Map<String, Value>>) -> u64 {
        let mut state = self.lock();
        let seq = state.head + 1;
        self.fan_out(&mut state, seq, SystemTime::now(), object);
        seq
    }

    /// Fans out a message sequenced elsewhere (by Redis) and published at `ts_ms`; a tick
    /// when `object` is `None`. The head only moves forward.
    pub(crate) fn deliver(&self, seq: u64, ts_ms: u64, object: Option<Map<String, Value>>) {
        let mut state = self.lock();
        let published = UNIX_EPOCH + std::time::Duration::from_millis(ts_ms);
        self.fan_out(&mut state, seq, published, object);
    }

    fn fan_out(
        &self,
        state: &mut State,
        seq: u64,
        published: SystemTime,
        object: Option<Map<String, Value>>,
    ) {
        let ts = unix_ms(published);
        let text = match object {
            None => format!(r#"{{"type":"tick","seq":{seq},"ts":{ts}}}"#),
            Some(mut object) => {
                object.insert("seq".into(), seq.into());
                object.insert("ts".into(), ts.into());
                Value::Object(object).to_string()
            }
        };
        let text = Utf8Bytes::from(text);
        if seq > state.head {
            state.head = seq;
            self.route.set_head(seq);
        }
        let stamp = Some(Stamp::new(seq, published));
        // A subscriber whose queue is closed (gone or evicted) is dropped from the fan-out.
        state.subscribers.retain(|(_, queue)| {
            queue.push(Outbound {
                msg: Message::Text(text.clone()),
                stamp,
            }) != wsmon::queue::Pushed::Closed
        });
    }
}
