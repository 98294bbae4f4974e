//! A bounded per-connection outbound queue that reports its depth, flags slow consumers and
//! applies an overflow policy.
//!
//! The producer (a broadcast fan-out) never waits: [`QueueSender::push`] either queues, drops,
//! or evicts the connection. The connection's writer task drains [`QueueReceiver::recv`].
//! The lock is per connection, so producers for different connections never contend.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::close_code::{Initiator, TRY_AGAIN_LATER};
use crate::frame::WsMessage;
use crate::metrics::ConnShared;
use crate::socket::ConnectionHandle;

/// What to do when a push would exceed the queue's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Discard the oldest queued message to make room.
    DropOldest,
    /// Discard the message being pushed.
    DropNewest,
    /// Close the connection with 1013 (Try Again Later).
    Disconnect,
}

/// Queue limits. A connection above the high-water mark counts as a slow consumer; a push
/// beyond the capacity overflows. Built from `QueueConfig::default()` and the setters; the
/// fields are readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Most messages queued at once. Default: 1024.
    pub capacity_messages: usize,
    /// Most payload bytes queued at once. Default: 8 MiB.
    pub capacity_bytes: usize,
    /// Above this many messages the connection is a slow consumer. Default: 768.
    pub high_water_messages: usize,
    /// Above this many bytes the connection is a slow consumer. Default: 6 MiB.
    pub high_water_bytes: usize,
    /// What a push beyond capacity does. Default: [`OverflowPolicy::Disconnect`].
    pub policy: OverflowPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity_messages: 1024,
            capacity_bytes: 8 << 20,
            high_water_messages: 768,
            high_water_bytes: 6 << 20,
            policy: OverflowPolicy::Disconnect,
        }
    }
}

/// `n * 3 / 4` rounded down, without overflowing for `n` near `usize::MAX` (an unbounded
/// queue is configured as `usize::MAX`).
fn three_quarters(n: usize) -> usize {
    n / 4 * 3 + n % 4 * 3 / 4
}

impl QueueConfig {
    /// Capacity in messages; the high-water mark is set to three quarters of it.
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity_messages = messages.max(1);
        self.high_water_messages = three_quarters(messages).max(1);
        self
    }

    /// Capacity in payload bytes; the high-water mark is set to three quarters of it.
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity_bytes = bytes.max(1);
        self.high_water_bytes = three_quarters(bytes).max(1);
        self
    }

    /// The slow-consumer marks, in messages and bytes, when three quarters of the
    /// capacity is not the right place.
    pub fn high_water(mut self, messages: usize, bytes: usize) -> Self {
        self.high_water_messages = messages;
        self.high_water_bytes = bytes;
        self
    }

    /// The overflow policy.
    pub fn policy(mut self, policy: OverflowPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// A message that can be queued: its size in bytes counts against the byte limits.
/// Implemented for every [`WsMessage`]; implement it for an application type that queues
/// something else (a shared, pre-serialised broadcast, say).
pub trait QueueItem {
    /// The bytes this message counts for.
    fn queued_bytes(&self) -> usize;
}

impl<M: WsMessage> QueueItem for M {
    fn queued_bytes(&self) -> usize {
        self.payload().len()
    }
}

/// The result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued after discarding the oldest message.
    DroppedOldest,
    /// The pushed message was discarded (under `DropOldest` too, when it alone exceeds the
    /// byte capacity).
    DroppedNewest,
    /// The connection was evicted with 1013; the receiver ends.
    Evicted,
    /// The receiver is gone.
    Closed,
}

struct State<M> {
    items: VecDeque<M>,
    bytes: usize,
    evicted: bool,
    closed: bool,
}

struct Shared<M> {
    state: Mutex<State<M>>,
    notify: Notify,
    config: QueueConfig,
    conn: Arc<ConnShared>,
}

/// The producer side; cheap to clone.
pub struct QueueSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> fmt::Debug for QueueSender<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.debug("QueueSender", f)
    }
}

impl<M> fmt::Debug for QueueReceiver<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.debug("QueueReceiver", f)
    }
}

impl<M> Shared<M> {
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct(name)
            .field("connection", &self.conn)
            .field("config", &self.config)
            .field("queued_messages", &state.items.len())
            .field("queued_bytes", &state.bytes)
            .field("evicted", &state.evicted)
            .finish()
    }
}

impl<M> Clone for QueueSender<M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// The consumer side, owned by the connection's writer task.
pub struct QueueReceiver<M> {
    shared: Arc<Shared<M>>,
}

/// Creates the outbound queue of the connection behind `handle`.
pub fn outbound_queue<M: QueueItem>(
    handle: &ConnectionHandle,
    config: QueueConfig,
) -> (QueueSender<M>, QueueReceiver<M>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            // Allocated once up front so steady-state pushes do not allocate.
            items: VecDeque::with_capacity(config.capacity_messages.min(4096)),
            bytes: 0,
            evicted: false,
            closed: false,
        }),
        notify: Notify::new(),
        config,
        conn: handle.shared().clone(),
    });
    (
        QueueSender {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

impl<M: QueueItem> QueueSender<M> {
    /// Queues `msg` without waiting, applying the overflow policy when full.
    pub fn push(&self, msg: M) -> Pushed {
        let s = &*self.shared;
        let cfg = &s.config;
        let size = msg.queued_bytes();
        let route = &s.conn.route;
        let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed || state.evicted {
            return Pushed::Closed;
        }
        let over = |st: &State<M>| {
            st.items.len() + 1 > cfg.capacity_messages || st.bytes + size > cfg.capacity_bytes
        };
        let mut result = Pushed::Queued;
        if over(&state) {
            match cfg.policy {
                OverflowPolicy::DropNewest => {
                    route.overflow_drop.inc();
                    return Pushed::DroppedNewest;
                }
                // Larger than the whole queue: discarding older messages would not make room
                // (and pushing it anyway would overrun the byte capacity), so drop it.
                OverflowPolicy::DropOldest if size > cfg.capacity_bytes => {
                    route.overflow_drop.inc();
                    return Pushed::DroppedNewest;
                }
                OverflowPolicy::DropOldest => {
                    while over(&state) {
                        let Some(old) = state.items.pop_front() else {
                            break;
                        };
                        state.bytes -= old.queued_bytes();
                    }
                    route.overflow_drop.inc();
                    result = Pushed::DroppedOldest;
                }
                OverflowPolicy::Disconnect => {
                    state.evicted = true;
                    state.items.clear();
                    state.bytes = 0;
                    drop(state);
                    route.overflow_disconnect.inc();
                    s.conn.record_close(Initiator::Server, TRY_AGAIN_LATER);
                    s.conn.queue_messages.store(0, Relaxed);
                    s.conn.slow.store(false, Relaxed);
                    // Both `recv` and `evicted` may be waiting.
                    s.notify.notify_waiters();
                    return Pushed::Evicted;
                }
            }
        }
        state.items.push_back(msg);
        state.bytes += size;
        let depth = state.items.len();
        let slow = depth > cfg.high_water_messages || state.bytes > cfg.high_water_bytes;
        drop(state);
        route.queue_depth.observe(depth as f64);
        s.conn.queue_messages.store(depth as u64, Relaxed);
        s.conn.slow.store(slow, Relaxed);
        s.notify.notify_one();
        result
    }

    /// True once the receiver is gone or the connection was evicted.
    pub fn is_closed(&self) -> bool {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed || state.evicted
    }
}

/// What the writer task gets next. Exhaustive on purpose: a writer must handle every case,
/// so a new one should fail its build rather than be ignored.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<M> {
    /// The next message to write.
    Message(M),
    /// The connection overflowed under [`OverflowPolicy::Disconnect`]: send a close with
    /// 1013 (already counted) and end the connection.
    Evicted,
}

impl<M: QueueItem> QueueReceiver<M> {
    /// Waits for the next message. Eviction takes priority over queued messages.
    pub async fn recv(&mut self) -> Next<M> {
        let shared = self.shared.clone();
        loop {
            let notified = shared.notify.notified();
            if let Some(next) = self.try_recv() {
                return next;
            }
            notified.await;
        }
    }

    /// The next message if one is ready.
    pub fn try_recv(&mut self) -> Option<Next<M>> {
        let s = &*self.shared;
        let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.evicted {
            return Some(Next::Evicted);
        }
        let msg = state.items.pop_front()?;
        state.bytes -= msg.queued_bytes();
        let depth = state.items.len();
        let slow = depth > s.config.high_water_messages || state.bytes > s.config.high_water_bytes;
        drop(state);
        s.conn.queue_messages.store(depth as u64, Relaxed);
        s.conn.slow.store(slow, Relaxed);
        Some(Next::Message(msg))
    }

    /// Resolves once the connection is evicted; for racing against a blocked socket write.
    pub async fn evicted(&self) {
        loop {
            let notified = self.shared.notify.notified();
            if self
                .shared
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .evicted
            {
                return;
            }
            notified.await;
        }
    }

    /// The close message a writer sends on eviction.
    pub fn eviction_close() -> M
    where
        M: WsMessage,
    {
        M::close(TRY_AGAIN_LATER, "outbound queue overflow")
    }
}

impl<M> Drop for QueueReceiver<M> {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        state.items.clear();
        state.bytes = 0;
        drop(state);
        self.shared.conn.queue_messages.store(0, Relaxed);
        self.shared.conn.slow.store(false, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::socket::ConnectionHandle;

    #[test]
    fn three_quarters_is_exact_and_never_overflows() {
        for n in 0..1000usize {
            assert_eq!(three_quarters(n), n * 3 / 4, "n = {n}");
        }
        assert_eq!(
            three_quarters(usize::MAX),
            (usize::MAX as u128 * 3 / 4) as usize
        );
        let c = QueueConfig::default()
            .capacity(usize::MAX)
            .capacity_bytes(usize::MAX);
        assert_eq!(c.capacity_messages, usize::MAX);
        assert!(c.high_water_messages > usize::MAX / 2);
        assert!(c.high_water_bytes > usize::MAX / 2);
    }

    fn handle() -> (prometheus::Registry, ConnectionHandle) {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::register(&registry, Default::default()).unwrap();
        let shared = metrics.route("/q").register_connection(false);
        (registry, ConnectionHandle::from_shared(shared))
    }

    fn text(s: &str) -> tokio_tungstenite::tungstenite::Message {
        tokio_tungstenite::tungstenite::Message::text(s)
    }

    fn drain(rx: &mut QueueReceiver<tokio_tungstenite::tungstenite::Message>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Next::Message(m)) = rx.try_recv() {
            out.push(m.into_text().unwrap().to_string());
        }
        out
    }

    #[test]
    fn drop_newest_keeps_the_first_messages() {
        let (_r, h) = handle();
        let (tx, mut rx) = outbound_queue(
            &h,
            QueueConfig::default()
                .capacity(2)
                .policy(OverflowPolicy::DropNewest),
        );
        assert_eq!(tx.push(text("a")), Pushed::Queued);
        assert_eq!(tx.push(text("b")), Pushed::Queued);
        assert_eq!(tx.push(text("c")), Pushed::DroppedNewest);
        assert_eq!(drain(&mut rx), ["a", "b"]);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_messages() {
        let (_r, h) = handle();
        let (tx, mut rx) = outbound_queue(
            &h,
            QueueConfig::default()
                .capacity(2)
                .policy(OverflowPolicy::DropOldest),
        );
        for m in ["a", "b", "c", "d"] {
            tx.push(text(m));
        }
        assert_eq!(drain(&mut rx), ["c", "d"]);
    }

    #[test]
    fn drop_oldest_drops_a_message_larger_than_the_byte_capacity_and_keeps_the_rest() {
        let (registry, h) = handle();
        let config = QueueConfig {
            capacity_bytes: 10,
            ..QueueConfig::default().policy(OverflowPolicy::DropOldest)
        };
        let (tx, mut rx) = outbound_queue(&h, config);
        assert_eq!(tx.push(text("1234")), Pushed::Queued);
        assert_eq!(tx.push(text("12345678901")), Pushed::DroppedNewest);
        assert_eq!(drain(&mut rx), ["1234"]);
        let text = crate::export::prometheus::render(&registry);
        assert!(text
            .contains(r#"websocket_server_outbound_overflows_total{action="drop",route="/q"} 1"#));
    }

    #[test]
    fn byte_capacity_is_enforced_as_well_as_message_capacity() {
        let (_r, h) = handle();
        let config = QueueConfig {
            capacity_bytes: 10,
            high_water_bytes: 5,
            ..QueueConfig::default().policy(OverflowPolicy::DropNewest)
        };
        let (tx, mut rx) = outbound_queue(&h, config);
        assert_eq!(tx.push(text("123456")), Pushed::Queued);
        assert!(
            h.shared().slow.load(Relaxed),
            "above the byte high-water mark"
        );
        assert_eq!(tx.push(text("123456")), Pushed::DroppedNewest);
        assert_eq!(drain(&mut rx), ["123456"]);
        assert!(!h.shared().slow.load(Relaxed));
    }

    #[test]
    fn disconnect_policy_evicts_once_and_records_1013() {
        let (registry, h) = handle();
        let (tx, mut rx) = outbound_queue(&h, QueueConfig::default().capacity(1));
        assert_eq!(tx.push(text("a")), Pushed::Queued);
        assert_eq!(tx.push(text("b")), Pushed::Evicted);
        assert_eq!(tx.push(text("c")), Pushed::Closed);
        assert_eq!(
            rx.try_recv(),
            Some(Next::Evicted),
            "eviction preempts queued messages"
        );
        let text = crate::export::prometheus::render(&registry);
        assert!(text.contains(
            r#"websocket_server_closes_total{close_code="1013",initiator="server",route="/q"} 1"#
        ));
        assert!(text.contains(
            r#"websocket_server_outbound_overflows_total{action="disconnect",route="/q"} 1"#
        ));
    }

    #[test]
    fn queue_depth_is_visible_to_the_scrape_and_cleared_on_drop() {
        let (_r, h) = handle();
        let (tx, rx) = outbound_queue(&h, QueueConfig::default().capacity(8));
        for _ in 0..7 {
            tx.push(text("x"));
        }
        assert_eq!(h.shared().queue_messages.load(Relaxed), 7);
        assert!(h.shared().slow.load(Relaxed), "7 > high-water mark of 6");
        drop(rx);
        assert_eq!(h.shared().queue_messages.load(Relaxed), 0);
        assert_eq!(tx.push(text("x")), Pushed::Closed);
    }
}
