//! Recording without a socket: the same families, fed by an observer that watches frames pass
//! by, such as the `wsmon-proxy` sidecar's passive frame parser.
//!
//! The instrumented socket ([`crate::Instrumented`]) sees messages; a relay sees bytes it
//! parses itself and reports here. Both record through the same per-route handles, so names,
//! labels, buckets and the "first close wins" rule are identical.
//!
//! The methods take a [`RouteHandle`] rather than a string: only declared routes (and
//! `unmatched`) have handles, so an observer cannot grow the `route` label's cardinality by
//! passing a raw path.
//!
//! ```
//! use std::time::Duration;
//! use wsmon::frame::FrameType;
//! use wsmon::observe::Direction;
//! use wsmon::close_code::Initiator;
//!
//! let registry = prometheus::Registry::new();
//! let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry).unwrap();
//! let ws = wsmon.route("/ws").expect("declared above");
//! wsmon.observe_upgrade(&ws, http::StatusCode::SWITCHING_PROTOCOLS, Duration::from_millis(2));
//! let conn = wsmon.observe_connection(&ws);
//! conn.message(Direction::Transmit, FrameType::Text, 5);
//! conn.close(Initiator::Client, 1000);
//! drop(conn); // duration, and 1006/none had no close been recorded
//! ```

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::close_code::Initiator;
use crate::frame::FrameType;
use crate::metrics::{ConnShared, RouteMetrics};
use crate::queue::OverflowPolicy;
use crate::sequencer::Stamp;
use crate::{RouteHandle, WsMon};

/// Which way a message travels, seen from the server: the `direction` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Receive,
    /// Server to client.
    Transmit,
}

impl WsMon {
    /// The handle of the `unmatched` route, for requests no declared template matches.
    pub fn unmatched_route(&self) -> RouteHandle {
        RouteHandle {
            metrics: self.inner.metrics.route(crate::catalog::UNMATCHED_ROUTE),
        }
    }

    /// Records an upgrade attempt on `route` answered with `status` after `elapsed`: 101
    /// counts as accepted (and its duration is observed), anything else as rejected.
    pub fn observe_upgrade(
        &self,
        route: &RouteHandle,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        route.metrics.record_upgrade(
            status,
            status == http::StatusCode::SWITCHING_PROTOCOLS,
            elapsed,
            false,
        );
    }

    /// Starts observing one upgraded connection under `route`; it is live (in
    /// `websocket_server_active_connections`) until the observer is dropped.
    pub fn observe_connection(&self, route: &RouteHandle) -> ConnectionObserver {
        let route = route.metrics.clone();
        ConnectionObserver {
            shared: route.register_connection(false),
            route,
            upgraded_at: Instant::now(),
            sent_payload: AtomicBool::new(false),
        }
    }
}

/// One observed connection. Methods take `&self` so both relay directions can share it.
///
/// Dropping it records the end: 1006 with initiator `none` if no close was recorded, the
/// connection's duration, and whether the server ever sent a data message.
pub struct ConnectionObserver {
    shared: Arc<ConnShared>,
    route: Arc<RouteMetrics>,
    upgraded_at: Instant,
    sent_payload: AtomicBool,
}

impl std::fmt::Debug for ConnectionObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionObserver")
            .field("route", &self.route.name())
            .field("upgraded_at", &self.upgraded_at)
            .finish_non_exhaustive()
    }
}

impl ConnectionObserver {
    /// Counts one message (or control frame) of `payload_bytes`. The first server-sent data
    /// message observes the first-payload latency.
    #[inline]
    pub fn message(&self, direction: Direction, frame_type: FrameType, payload_bytes: usize) {
        match direction {
            Direction::Receive => self.route.count_received(frame_type, payload_bytes),
            Direction::Transmit => {
                self.route.count_transmitted(frame_type, payload_bytes);
                // A load first: after the first message this is a plain read, not a locked
                // read-modify-write per message.
                if frame_type.is_data()
                    && !self.sent_payload.load(Relaxed)
                    && !self.sent_payload.swap(true, Relaxed)
                {
                    self.route
                        .first_payload
                        .observe(self.upgraded_at.elapsed().as_secs_f64());
                }
            }
        }
    }

    /// Records how the connection ended. Only the first call counts, so a close frame followed
    /// by its reply, or by the TCP end, is one close. Returns whether this call counted.
    pub fn close(&self, initiator: Initiator, code: u16) -> bool {
        self.shared.record_close(initiator, code)
    }

    /// True once a close was recorded.
    pub fn close_recorded(&self) -> bool {
        self.shared.close_recorded()
    }

    /// Observes the round trip of a server ping answered by the client's pong.
    pub fn ping_rtt(&self, rtt: Duration) {
        self.route.ping_rtt.observe(rtt.as_secs_f64());
    }

    /// Reports the messages waiting for the client in this connection's buffer, and whether it
    /// counts as a slow consumer; also samples `websocket_server_outbound_queue_depth`.
    pub fn queue_depth(&self, messages: usize, slow: bool) {
        self.shared.queue_messages.store(messages as u64, Relaxed);
        self.shared.slow.store(slow, Relaxed);
        self.route.queue_depth.observe(messages as f64);
    }

    /// The buffer emptied: the gauges drop to zero without a depth sample.
    pub fn queue_drained(&self) {
        self.shared.queue_messages.store(0, Relaxed);
        self.shared.slow.store(false, Relaxed);
    }

    /// Counts an overflow of the outbound buffer and the action its policy took.
    pub fn overflow(&self, policy: OverflowPolicy) {
        match policy {
            OverflowPolicy::Disconnect => self.route.overflow_disconnect.inc(),
            OverflowPolicy::DropOldest | OverflowPolicy::DropNewest => {
                self.route.overflow_drop.inc()
            }
        }
    }

    /// Records the sequencer lag of a server-sent message carrying `stamp`.
    pub fn stamp(&self, stamp: Stamp) {
        self.route.record_stamp(stamp);
    }

    /// The route template this connection is recorded under.
    pub fn route(&self) -> &str {
        self.route.name()
    }
}

impl Drop for ConnectionObserver {
    fn drop(&mut self) {
        self.shared
            .record_close(Initiator::None, crate::close_code::ABNORMAL);
        if !self.sent_payload.load(Relaxed) {
            self.route.without_payload.inc();
        }
        self.route
            .connection_duration
            .observe(self.upgraded_at.elapsed().as_secs_f64());
        self.route.unregister_connection(self.shared.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wsmon: &WsMon, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = wsmon.render();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn only_declared_routes_and_unmatched_have_handles_to_observe_under() {
        let wsmon = WsMon::builder()
            .route("/ws")
            .build(&prometheus::Registry::new())
            .unwrap();
        assert!(wsmon.route("/ws/raw/path/42").is_none());
        let unmatched = wsmon.unmatched_route();
        wsmon.observe_upgrade(&unmatched, http::StatusCode::FORBIDDEN, Duration::ZERO);
        assert_eq!(wsmon.observe_connection(&unmatched).route(), "unmatched");
        let upgrades = "websocket_server_upgrades_total";
        let rejected = [("route", "unmatched"), ("status_code", "403")];
        assert_eq!(sample(&wsmon, upgrades, &rejected), 1.0);
    }

    #[test]
    fn a_connection_without_a_close_counts_once_as_1006_none() {
        let wsmon = WsMon::builder()
            .route("/ws")
            .build(&prometheus::Registry::new())
            .unwrap();
        let conn = wsmon.observe_connection(&wsmon.route("/ws").unwrap());
        assert_eq!(wsmon.active_connections(), 1);
        drop(conn);
        assert_eq!(wsmon.active_connections(), 0);
        let closes = "websocket_server_closes_total";
        assert_eq!(
            sample(
                &wsmon,
                closes,
                &[("initiator", "none"), ("close_code", "1006")]
            ),
            1.0
        );
        let without = "websocket_server_connections_without_payload_total";
        assert_eq!(sample(&wsmon, without, &[("route", "/ws")]), 1.0);
    }

    #[test]
    fn the_first_close_wins_and_first_payload_is_observed_once() {
        let wsmon = WsMon::builder()
            .route("/rooms/{id}")
            .close_code_allowlist([4001])
            .build(&prometheus::Registry::new())
            .unwrap();
        let conn = wsmon.observe_connection(&wsmon.route("/rooms/{id}").unwrap());
        conn.message(Direction::Transmit, FrameType::Text, 3);
        conn.message(Direction::Transmit, FrameType::Binary, 4);
        conn.message(Direction::Receive, FrameType::Text, 2);
        assert!(conn.close(Initiator::Client, 4001));
        assert!(!conn.close(Initiator::Server, 1000));
        drop(conn);
        let closes = "websocket_server_closes_total";
        assert_eq!(
            sample(
                &wsmon,
                closes,
                &[("initiator", "client"), ("close_code", "4001")]
            ),
            1.0
        );
        assert_eq!(
            sample(
                &wsmon,
                closes,
                &[("initiator", "none"), ("close_code", "1006")]
            ),
            0.0
        );
        let first = "websocket_server_first_payload_latency_seconds_count";
        assert_eq!(sample(&wsmon, first, &[("route", "/rooms/{id}")]), 1.0);
        let bytes = "websocket_server_payload_bytes_total";
        assert_eq!(sample(&wsmon, bytes, &[("direction", "transmit")]), 7.0);
    }
}
