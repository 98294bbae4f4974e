//! Fault controls: make the running feed misbehave on purpose, one way at a time, so a
//! monitor can be seen catching it (`wsmon-probe demo` drives these).
//!
//! Every fault is off until switched on, through [`Feed::faults`](crate::Feed::faults) or the
//! loopback-only admin endpoint (`--admin-listen`, see [`admin`](crate::admin)).
//!
//! | control | what a client sees | what should catch it |
//! |---|---|---|
//! | [`Faults::stall`] | the stream goes silent, the socket stays open | a stall / head timeout |
//! | [`Faults::skip_sequences`] | the next message skips `n` sequences | a sequence gap |
//! | [`Faults::duplicate_last`] | the newest `n` messages arrive again | a duplicate |
//! | [`Faults::set_first_payload_delay`] | new connections wait before the snapshot | a first-payload timeout |
//! | [`Faults::drop_connections`] | the TCP connection ends with no close frame | a 1006 close |
//! | [`Faults::burst`] | `n` messages at once; a consumer that cannot keep up is evicted | a 1013 close, the overflow counter |
//! | [`Faults::send_oversized`] | one message of `bytes` | a 1009 close at the client's size limit |
//! | [`Faults::blackhole_publishes`] | `POST /publish` answers 200 but delivers nothing | end-to-end freshness |
//!
//! `skip_sequences`, `duplicate_last`, `burst` and `send_oversized` act on the local
//! sequencer: with `--redis` their messages reach this instance's clients only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::Feed;

/// The switches the connections read; lives in [`Feed`].
#[derive(Debug)]
pub(crate) struct FaultState {
    stalled: watch::Sender<bool>,
    /// Bumped by every [`Faults::drop_connections`]; each connection waits for a change.
    drops: watch::Sender<u64>,
    first_payload_delay_ms: AtomicU64,
    blackhole_publishes: AtomicBool,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            stalled: watch::Sender::new(false),
            drops: watch::Sender::new(0),
            first_payload_delay_ms: AtomicU64::new(0),
            blackhole_publishes: AtomicBool::new(false),
        }
    }
}

impl FaultState {
    pub(crate) fn stall_watch(&self) -> watch::Receiver<bool> {
        self.stalled.subscribe()
    }

    pub(crate) fn drop_watch(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    pub(crate) fn first_payload_delay(&self) -> Duration {
        Duration::from_millis(self.first_payload_delay_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn publishes_blackholed(&self) -> bool {
        self.blackhole_publishes.load(Ordering::Relaxed)
    }
}

/// Which faults are switched on, as `GET /faults` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FaultStatus {
    /// The stream is stalled.
    pub stalled: bool,
    /// Added before each new connection's first payload, in milliseconds.
    pub first_payload_delay_ms: u64,
    /// `POST /publish` accepts and discards.
    pub blackhole_publishes: bool,
    /// How many times current connections were dropped.
    pub drops: u64,
}

/// The fault controls of one running feed; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Faults {
    feed: Arc<Feed>,
}

impl Faults {
    pub(crate) fn new(feed: Arc<Feed>) -> Self {
        Self { feed }
    }

    fn state(&self) -> &FaultState {
        &self.feed.faults
    }

    /// Stops (`true`) or resumes (`false`) sending on every connection. Messages queue up
    /// meanwhile (and may overflow a queue); pings are still answered.
    pub fn stall(&self, on: bool) {
        self.state().stalled.send_replace(on);
    }

    /// Skips `n` sequence numbers: the next message carries `head + n + 1`. Returns the new head.
    pub fn skip_sequences(&self, n: u64) -> u64 {
        self.feed.hub.skip_sequences(n)
    }

    /// Sends the newest `n` messages again to every connection; returns how many were resent.
    pub fn duplicate_last(&self, n: usize) -> usize {
        self.feed.hub.resend_last(n)
    }

    /// Holds back each new connection's first payload for `delay` (on top of
    /// [`FeedConfig::first_payload_delay`](crate::FeedConfig::first_payload_delay));
    /// `Duration::ZERO` turns it off.
    pub fn set_first_payload_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state()
            .first_payload_delay_ms
            .store(ms, Ordering::Relaxed);
    }

    /// Drops every current WebSocket connection's TCP stream without a close frame, so
    /// clients see 1006. New connections are served normally.
    pub fn drop_connections(&self) {
        self.state().drops.send_modify(|n| *n += 1);
    }

    /// Broadcasts `n` ticks at once. With `n` above a connection's queue capacity (1024 by
    /// default) the queue overflows and, under the default policy, the consumer is evicted
    /// with 1013. Returns the last sequence.
    pub fn burst(&self, n: usize) -> u64 {
        self.feed.hub.burst(n)
    }

    /// Broadcasts one sequenced message of about `bytes` bytes
    /// (`{"type":"oversized","pad":"xxx…"}`). Returns its sequence.
    pub fn send_oversized(&self, bytes: usize) -> u64 {
        let mut object = Map::new();
        object.insert("type".into(), "oversized".into());
        object.insert("pad".into(), Value::String("x".repeat(bytes)));
        self.feed.hub.publish_object(object)
    }

    /// While on, `POST /publish` answers `200 {"seq":HEAD}` and delivers nothing: the
    /// publish path is broken while the stream itself stays healthy.
    pub fn blackhole_publishes(&self, on: bool) {
        self.state()
            .blackhole_publishes
            .store(on, Ordering::Relaxed);
    }

    /// Switches every standing fault off (stall, first-payload delay, publish blackhole).
    pub fn clear(&self) {
        self.stall(false);
        self.set_first_payload_delay(Duration::ZERO);
        self.blackhole_publishes(false);
    }

    /// Which faults are on.
    pub fn status(&self) -> FaultStatus {
        let s = self.state();
        FaultStatus {
            stalled: *s.stalled.borrow(),
            first_payload_delay_ms: s.first_payload_delay_ms.load(Ordering::Relaxed),
            blackhole_publishes: s.publishes_blackholed(),
            drops: *s.drops.borrow(),
        }
    }
}
