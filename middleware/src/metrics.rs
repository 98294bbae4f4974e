//! The recording side: metric families built from the catalog, per-route handles resolved once,
//! and the live-connection registry that scrape-time gauges walk.
//!
//! Exporters (Prometheus text, OTLP) read these families; nothing on the message path knows
//! which exporters are on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::task::AtomicWaker;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Registry};

use crate::catalog;
use crate::close_code::{CloseCodeClassifier, Initiator};
use crate::frame::FrameType;

/// All middleware metric families, registered in one registry.
#[derive(Clone)]
pub(crate) struct Families {
    upgrades: IntCounterVec,
    upgrade_duration: HistogramVec,
    connection_duration: HistogramVec,
    first_payload: HistogramVec,
    without_payload: IntCounterVec,
    messages: IntCounterVec,
    payload_bytes: IntCounterVec,
    closes: IntCounterVec,
    queue_depth: HistogramVec,
    overflows: IntCounterVec,
    lag_messages: HistogramVec,
    lag_seconds: HistogramVec,
    ping_rtt: HistogramVec,
    heartbeat_timeouts: IntCounterVec,
    resume: ResumeFamilies,
    canary: CanaryFamilies,
}

/// The middleware's metrics: families plus one [`RouteMetrics`] per route template.
pub(crate) struct Metrics {
    families: Families,
    classifier: CloseCodeClassifier,
    routes: Arc<Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>>,
}

impl Metrics {
    pub(crate) fn register(
        registry: &Registry,
        classifier: CloseCodeClassifier,
    ) -> Result<Self, prometheus::Error> {
        use catalog::*;
        let families = Families {
            upgrades: UPGRADES_TOTAL.int_counter_vec(),
            upgrade_duration: UPGRADE_DURATION_SECONDS.histogram_vec(),
            connection_duration: CONNECTION_DURATION_SECONDS.histogram_vec(),
            first_payload: FIRST_PAYLOAD_LATENCY_SECONDS.histogram_vec(),
            without_payload: CONNECTIONS_WITHOUT_PAYLOAD_TOTAL.int_counter_vec(),
            messages: MESSAGES_TOTAL.int_counter_vec(),
            payload_bytes: PAYLOAD_BYTES_TOTAL.int_counter_vec(),
            closes: CLOSES_TOTAL.int_counter_vec(),
            queue_depth: OUTBOUND_QUEUE_DEPTH.histogram_vec(),
            overflows: OUTBOUND_OVERFLOWS_TOTAL.int_counter_vec(),
            lag_messages: SEQUENCER_LAG_MESSAGES.histogram_vec(),
            lag_seconds: SEQUENCER_LAG_SECONDS.histogram_vec(),
            ping_rtt: PING_RTT_SECONDS.histogram_vec(),
            heartbeat_timeouts: HEARTBEAT_TIMEOUTS_TOTAL.int_counter_vec(),
            resume: ResumeFamilies::new(),
            canary: CanaryFamilies::new(),
        };
        let f = &families;
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(f.upgrades.clone()),
            Box::new(f.upgrade_duration.clone()),
            Box::new(f.connection_duration.clone()),
            Box::new(f.first_payload.clone()),
            Box::new(f.without_payload.clone()),
            Box::new(f.messages.clone()),
            Box::new(f.payload_bytes.clone()),
            Box::new(f.closes.clone()),
            Box::new(f.queue_depth.clone()),
            Box::new(f.overflows.clone()),
            Box::new(f.lag_messages.clone()),
            Box::new(f.lag_seconds.clone()),
            Box::new(f.ping_rtt.clone()),
            Box::new(f.heartbeat_timeouts.clone()),
        ];
        let collectors = collectors
            .into_iter()
            .chain(f.resume.collectors())
            .chain(f.canary.collectors());
        for c in collectors {
            registry.register(c)?;
        }
        let routes = Arc::new(Mutex::new(HashMap::new()));
        registry.register(Box::new(LiveCollector::new(routes.clone())))?;
        let metrics = Self {
            families,
            classifier,
            routes,
        };
        metrics.route(catalog::UNMATCHED_ROUTE);
        Ok(metrics)
    }

    /// The handles for `route`, created (with its series at zero) on first use.
    ///
    /// Routes are templates (axum's `MatchedPath`), so this map is bounded by the router.
    pub(crate) fn route(&self, route: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = routes.get(route) {
            return r.clone();
        }
        let r = Arc::new(RouteMetrics::new(route, &self.families, &self.classifier));
        routes.insert(r.name.clone(), r.clone());
        r
    }

    /// Wakes every live connection's reader so it notices a shutdown.
    pub(crate) fn wake_all_connections(&self) {
        let routes = routes_snapshot(&self.routes);
        for route in routes {
            for conn in route
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                conn.waker.wake();
            }
        }
    }

    pub(crate) fn active_connections(&self) -> usize {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.values().map(|r| r.live_count()).sum()
    }
}

const FRAME_TYPES: [FrameType; 5] = [
    FrameType::Text,
    FrameType::Binary,
    FrameType::Ping,
    FrameType::Pong,
    FrameType::Close,
];

/// One route's metric handles, resolved once so the message path does no label lookups.
pub(crate) struct RouteMetrics {
    name: Arc<str>,
    rx_messages: [IntCounter; 5],
    tx_messages: [IntCounter; 5],
    rx_bytes: IntCounter,
    tx_bytes: IntCounter,
    pub(crate) upgrade_duration: Histogram,
    pub(crate) first_payload: Histogram,
    pub(crate) without_payload: IntCounter,
    pub(crate) connection_duration: Histogram,
    pub(crate) queue_depth: Histogram,
    pub(crate) overflow_drop: IntCounter,
    pub(crate) overflow_disconnect: IntCounter,
    pub(crate) lag_messages: Histogram,
    pub(crate) lag_seconds: Histogram,
    pub(crate) ping_rtt: Histogram,
    pub(crate) heartbeat_timeouts: IntCounter,
    pub(crate) resume: ResumeCounters,
    pub(crate) canary: CanaryCounters,
    upgrades: IntCounterVec,
    closes: IntCounterVec,
    classifier: CloseCodeClassifier,
    head: AtomicU64,
    has_head: AtomicBool,
    live: Mutex<HashMap<u64, Arc<ConnShared>>>,
}

impl RouteMetrics {
    fn new(name: &str, f: &Families, classifier: &CloseCodeClassifier) -> Self {
        let r = name;
        let msgs =
            |dir: &str| FRAME_TYPES.map(|t| f.messages.with_label_values(&[r, dir, t.as_str()]));
        let metrics = Self {
            name: Arc::from(name),
            rx_messages: msgs("receive"),
            tx_messages: msgs("transmit"),
            rx_bytes: f.payload_bytes.with_label_values(&[r, "receive"]),
            tx_bytes: f.payload_bytes.with_label_values(&[r, "transmit"]),
            upgrade_duration: f.upgrade_duration.with_label_values(&[r]),
            first_payload: f.first_payload.with_label_values(&[r]),
            without_payload: f.without_payload.with_label_values(&[r]),
            connection_duration: f.connection_duration.with_label_values(&[r]),
            queue_depth: f.queue_depth.with_label_values(&[r]),
            overflow_drop: f.overflows.with_label_values(&[r, "drop"]),
            overflow_disconnect: f.overflows.with_label_values(&[r, "disconnect"]),
            lag_messages: f.lag_messages.with_label_values(&[r]),
            lag_seconds: f.lag_seconds.with_label_values(&[r]),
            ping_rtt: f.ping_rtt.with_label_values(&[r]),
            heartbeat_timeouts: f.heartbeat_timeouts.with_label_values(&[r]),
            resume: f.resume.route(r),
            canary: f.canary.route(r),
            upgrades: f.upgrades.clone(),
            closes: f.closes.clone(),
            classifier: classifier.clone(),
            head: AtomicU64::new(0),
            has_head: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
        };
        // Series at zero before the first event, so rate() and ratios work from the start.
        metrics.upgrades.with_label_values(&[r, "accepted", "101"]);
        for (initiator, code) in [
            (Initiator::Client, 1000),
            (Initiator::Client, 1001),
            (Initiator::Server, 1000),
            (Initiator::Server, 1001),
            (Initiator::None, 1006),
        ] {
            metrics.closes_counter(initiator, code);
            metrics.canary_closes_counter(initiator, code);
        }
        metrics
    }

    /// The route template this handle records under.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub(crate) fn count_received(&self, t: FrameType, payload: usize) {
        self.rx_messages[t as usize].inc();
        if t.is_data() {
            self.rx_bytes.inc_by(payload as u64);
        }
    }

    #[inline]
    pub(crate) fn count_transmitted(&self, t: FrameType, payload: usize) {
        self.tx_messages[t as usize].inc();
        if t.is_data() {
            self.tx_bytes.inc_by(payload as u64);
        }
    }

    /// Counts one upgrade attempt. `accepted` is the caller's: a 101 for an HTTP/1.1
    /// upgrade, a 200 for an RFC 8441 extended CONNECT. A canary's is counted twice: in the
    /// main family, and in the canary family.
    pub(crate) fn record_upgrade(
        &self,
        status: http::StatusCode,
        accepted: bool,
        duration: Duration,
        canary: bool,
    ) {
        let outcome = if accepted { "accepted" } else { "rejected" };
        let labels = [&*self.name, outcome, status.as_str()];
        self.upgrades.with_label_values(&labels).inc();
        if canary {
            self.canary.upgrades.with_label_values(&labels).inc();
        }
        if accepted {
            self.upgrade_duration.observe(duration.as_secs_f64());
        }
    }

    /// An upgrade answered with 101 whose connection was gone before the socket was handed
    /// over: it ended without a close frame and without payload.
    #[cfg(feature = "axum")]
    pub(crate) fn record_failed_upgrade(&self, canary: bool) {
        self.closes_counter(Initiator::None, crate::close_code::ABNORMAL)
            .inc();
        self.without_payload.inc();
        if canary {
            self.canary_closes_counter(Initiator::None, crate::close_code::ABNORMAL)
                .inc();
            self.canary.without_payload.inc();
        }
    }

    fn closes_counter(&self, initiator: Initiator, code: u16) -> IntCounter {
        self.closes.with_label_values(&[
            &self.name,
            initiator.as_str(),
            self.classifier.classify(code),
        ])
    }

    fn canary_closes_counter(&self, initiator: Initiator, code: u16) -> IntCounter {
        self.canary.closes.with_label_values(&[
            &self.name,
            initiator.as_str(),
            self.classifier.classify(code),
        ])
    }

    /// Sets the head sequence of this route's stream; lag is measured against it at send.
    pub(crate) fn set_head(&self, seq: u64) {
        self.head.store(seq, Relaxed);
        self.has_head.store(true, Relaxed);
    }

    /// The head sequence last reported, if any.
    pub(crate) fn head(&self) -> Option<u64> {
        self.has_head.load(Relaxed).then(|| self.head.load(Relaxed))
    }

    #[inline]
    pub(crate) fn record_stamp(&self, stamp: crate::Stamp) {
        if let (Some(seq), Some(head)) = (stamp.seq, self.head()) {
            self.lag_messages.observe(head.saturating_sub(seq) as f64);
        }
        if let Some(published) = stamp.published {
            let lag = SystemTime::now()
                .duration_since(published)
                .unwrap_or(Duration::ZERO);
            self.lag_seconds.observe(lag.as_secs_f64());
        }
    }

    /// Adds a live connection; `canary` says whether it is also counted in the canary view.
    pub(crate) fn register_connection(self: &Arc<Self>, canary: bool) -> Arc<ConnShared> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(ConnShared {
            id: NEXT_ID.fetch_add(1, Relaxed),
            canary,
            route: self.clone(),
            queue_messages: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            close: AtomicU32::new(0),
            stamp_seq: AtomicU64::new(NO_STAMP),
            stamp_micros: AtomicU64::new(0),
            waker: AtomicWaker::new(),
        });
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shared.id, shared.clone());
        shared
    }

    pub(crate) fn unregister_connection(&self, id: u64) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

const NO_STAMP: u64 = u64::MAX;

/// Per-connection state shared by the socket wrapper, its outbound queue and the scrape.
pub(crate) struct ConnShared {
    id: u64,
    /// Recognised as a canary's at the upgrade: its ends and first payload are counted twice.
    pub(crate) canary: bool,
    pub(crate) route: Arc<RouteMetrics>,
    pub(crate) queue_messages: AtomicU64,
    pub(crate) slow: AtomicBool,
    /// 0 until the connection's end is recorded; then `initiator << 16 | code`.
    close: AtomicU32,
    stamp_seq: AtomicU64,
    stamp_micros: AtomicU64,
    /// The task reading this connection, woken for a graceful shutdown.
    pub(crate) waker: AtomicWaker,
}

impl ConnShared {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records how the connection ended. The first record wins, so each connection is counted
    /// exactly once whichever side (socket, queue eviction, drop) sees the end first.
    pub(crate) fn record_close(&self, initiator: Initiator, code: u16) -> bool {
        let tag = match initiator {
            Initiator::Client => 1u32,
            Initiator::Server => 2,
            Initiator::None => 3,
        };
        let won = self
            .close
            .compare_exchange(0, tag << 16 | code as u32, Relaxed, Relaxed)
            .is_ok();
        if won {
            self.route.closes_counter(initiator, code).inc();
            if self.canary {
                self.route.canary_closes_counter(initiator, code).inc();
            }
        }
        won
    }

    pub(crate) fn close_recorded(&self) -> bool {
        self.close.load(Relaxed) != 0
    }

    pub(crate) fn set_stamp(&self, stamp: crate::Stamp) {
        let micros = stamp
            .published
            .and_then(|p| p.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as u64);
        self.stamp_micros.store(micros, Relaxed);
        self.stamp_seq.store(
            stamp.seq.unwrap_or(NO_STAMP - 1),
            std::sync::atomic::Ordering::Release,
        );
    }

    pub(crate) fn take_stamp(&self) -> Option<crate::Stamp> {
        let seq = self
            .stamp_seq
            .swap(NO_STAMP, std::sync::atomic::Ordering::Acquire);
        if seq == NO_STAMP {
            return None;
        }
        let micros = self.stamp_micros.load(Relaxed);
        Some(crate::Stamp {
            seq: (seq != NO_STAMP - 1).then_some(seq),
            published: (micros != 0).then(|| UNIX_EPOCH + Duration::from_micros(micros)),
        })
    }
}

/// The routes known now, cloned out so no route lock is held while walking connections.
fn routes_snapshot(routes: &Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>) -> Vec<Arc<RouteMetrics>> {
    routes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

/// Computes the live-connection gauges at scrape time by walking per-connection atomics.
struct LiveCollector {
    routes: Arc<Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>>,
    active: IntGaugeVec,
    queued: IntGaugeVec,
    slow: IntGaugeVec,
    canary_active: IntGaugeVec,
    descs: Vec<Desc>,
}

impl LiveCollector {
    fn new(routes: Arc<Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>>) -> Self {
        let active = catalog::ACTIVE_CONNECTIONS.int_gauge_vec();
        let queued = catalog::OUTBOUND_QUEUE_MESSAGES.int_gauge_vec();
        let slow = catalog::SLOW_CONSUMERS.int_gauge_vec();
        let canary_active = catalog::SERVER_CANARY_ACTIVE_CONNECTIONS.int_gauge_vec();
        let descs = [&active, &queued, &slow, &canary_active]
            .iter()
            .flat_map(|g| g.desc().into_iter().cloned())
            .collect();
        Self {
            routes,
            active,
            queued,
            slow,
            canary_active,
            descs,
        }
    }
}

impl Collector for LiveCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let routes = routes_snapshot(&self.routes);
        for route in routes {
            let (mut active, mut queued, mut slow, mut canaries) = (0i64, 0i64, 0i64, 0i64);
            for conn in route
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                active += 1;
                queued += conn.queue_messages.load(Relaxed) as i64;
                slow += conn.slow.load(Relaxed) as i64;
                canaries += conn.canary as i64;
            }
            self.active.with_label_values(&[&route.name]).set(active);
            self.queued.with_label_values(&[&route.name]).set(queued);
            self.slow.with_label_values(&[&route.name]).set(slow);
            self.canary_active
                .with_label_values(&[&route.name])
                .set(canaries);
        }
        let mut out = self.active.collect();
        out.extend(self.queued.collect());
        out.extend(self.slow.collect());
        out.extend(self.canary_active.collect());
        out
    }
}

// --- resume and replay (reported through `crate::resume`); one block so it moves as one ---

/// The resume families (catalog block `RESUME_METRICS`).
#[derive(Clone)]
pub(crate) struct ResumeFamilies {
    resumes: IntCounterVec,
    replayed: IntCounterVec,
    missed: IntCounterVec,
}

/// One route's resume counters, resolved once.
pub(crate) struct ResumeCounters {
    pub(crate) hit: IntCounter,
    pub(crate) miss: IntCounter,
    pub(crate) replayed: IntCounter,
    pub(crate) missed: IntCounter,
}

impl ResumeFamilies {
    fn new() -> Self {
        Self {
            resumes: catalog::RESUMES_TOTAL.int_counter_vec(),
            replayed: catalog::REPLAYED_MESSAGES_TOTAL.int_counter_vec(),
            missed: catalog::RESUME_MISSED_MESSAGES_TOTAL.int_counter_vec(),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.resumes.clone()),
            Box::new(self.replayed.clone()),
            Box::new(self.missed.clone()),
        ]
    }

    /// The route's counters, at zero from the start so miss ratios work before any resume.
    fn route(&self, r: &str) -> ResumeCounters {
        ResumeCounters {
            hit: self.resumes.with_label_values(&[r, "hit"]),
            miss: self.resumes.with_label_values(&[r, "miss"]),
            replayed: self.replayed.with_label_values(&[r]),
            missed: self.missed.with_label_values(&[r]),
        }
    }
}

// --- the server's view of canary connections (catalog block `SERVER_CANARY_METRICS`) ---

/// The canary-view families; the active gauge is the [`LiveCollector`]'s.
#[derive(Clone)]
pub(crate) struct CanaryFamilies {
    upgrades: IntCounterVec,
    first_payload: HistogramVec,
    without_payload: IntCounterVec,
    closes: IntCounterVec,
}

/// One route's canary-view handles, resolved once.
pub(crate) struct CanaryCounters {
    upgrades: IntCounterVec,
    closes: IntCounterVec,
    pub(crate) first_payload: Histogram,
    pub(crate) without_payload: IntCounter,
}

impl CanaryFamilies {
    fn new() -> Self {
        Self {
            upgrades: catalog::SERVER_CANARY_UPGRADES_TOTAL.int_counter_vec(),
            first_payload: catalog::SERVER_CANARY_FIRST_PAYLOAD_LATENCY_SECONDS.histogram_vec(),
            without_payload: catalog::SERVER_CANARY_CONNECTIONS_WITHOUT_PAYLOAD_TOTAL
                .int_counter_vec(),
            closes: catalog::SERVER_CANARY_CLOSES_TOTAL.int_counter_vec(),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.upgrades.clone()),
            Box::new(self.first_payload.clone()),
            Box::new(self.without_payload.clone()),
            Box::new(self.closes.clone()),
        ]
    }

    /// The route's handles, with the accepted series at zero so "no canary reached the
    /// server" is a 0, not an absent series.
    fn route(&self, r: &str) -> CanaryCounters {
        self.upgrades.with_label_values(&[r, "accepted", "101"]);
        CanaryCounters {
            upgrades: self.upgrades.clone(),
            closes: self.closes.clone(),
            first_payload: self.first_payload.with_label_values(&[r]),
            without_payload: self.without_payload.with_label_values(&[r]),
        }
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("name", &self.name)
            .field("head", &self.head())
            .field("live", &self.live_count())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnShared")
            .field("id", &self.id)
            .field("route", &self.route.name())
            .field("queue_messages", &self.queue_messages.load(Relaxed))
            .field("slow", &self.slow.load(Relaxed))
            .finish_non_exhaustive()
    }
}
