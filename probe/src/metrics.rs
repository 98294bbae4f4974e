//! The canary metric families, built from `wsmon::catalog` so that no name is spelled twice.

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, Registry};
use wsmon::catalog;

/// Every `websocket_canary_*` family, registered in one registry and shared by all canaries.
#[derive(Clone)]
pub struct CanaryMetrics {
    pub up: GaugeVec,
    pub connect_phase: HistogramVec,
    pub first_payload: HistogramVec,
    pub freshness: HistogramVec,
    pub e2e: HistogramVec,
    pub publishes: IntCounterVec,
    pub publish_timeouts: IntCounterVec,
    pub messages: IntCounterVec,
    pub gaps: IntCounterVec,
    pub missed: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub reorders: IntCounterVec,
    pub stalls: IntCounterVec,
    pub reconnects: IntCounterVec,
    pub closes: IntCounterVec,
    pub heartbeat_rtt: HistogramVec,
    pub head_lag: GaugeVec,
    pub last_message_age: GaugeVec,
    pub failures: IntCounterVec,
}

impl CanaryMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        use catalog::*;
        let m = Self {
            up: CANARY_UP.gauge_vec(),
            connect_phase: CANARY_CONNECT_PHASE_SECONDS.histogram_vec(),
            first_payload: CANARY_FIRST_PAYLOAD_SECONDS.histogram_vec(),
            freshness: CANARY_FRESHNESS_SECONDS.histogram_vec(),
            e2e: CANARY_E2E_SECONDS.histogram_vec(),
            publishes: CANARY_PUBLISHES_TOTAL.int_counter_vec(),
            publish_timeouts: CANARY_PUBLISH_TIMEOUTS_TOTAL.int_counter_vec(),
            messages: CANARY_MESSAGES_TOTAL.int_counter_vec(),
            gaps: CANARY_SEQUENCE_GAPS_TOTAL.int_counter_vec(),
            missed: CANARY_MISSED_MESSAGES_TOTAL.int_counter_vec(),
            duplicates: CANARY_DUPLICATES_TOTAL.int_counter_vec(),
            reorders: CANARY_REORDERS_TOTAL.int_counter_vec(),
            stalls: CANARY_STALLS_TOTAL.int_counter_vec(),
            reconnects: CANARY_RECONNECTS_TOTAL.int_counter_vec(),
            closes: CANARY_CLOSES_TOTAL.int_counter_vec(),
            heartbeat_rtt: CANARY_HEARTBEAT_RTT_SECONDS.histogram_vec(),
            head_lag: CANARY_HEAD_LAG_MESSAGES.gauge_vec(),
            last_message_age: CANARY_LAST_MESSAGE_AGE_SECONDS.gauge_vec(),
            failures: CANARY_FAILURES_TOTAL.int_counter_vec(),
        };
        registry.register(Box::new(m.up.clone()))?;
        registry.register(Box::new(m.connect_phase.clone()))?;
        registry.register(Box::new(m.first_payload.clone()))?;
        registry.register(Box::new(m.freshness.clone()))?;
        registry.register(Box::new(m.e2e.clone()))?;
        registry.register(Box::new(m.publishes.clone()))?;
        registry.register(Box::new(m.publish_timeouts.clone()))?;
        registry.register(Box::new(m.messages.clone()))?;
        registry.register(Box::new(m.gaps.clone()))?;
        registry.register(Box::new(m.missed.clone()))?;
        registry.register(Box::new(m.duplicates.clone()))?;
        registry.register(Box::new(m.reorders.clone()))?;
        registry.register(Box::new(m.stalls.clone()))?;
        registry.register(Box::new(m.reconnects.clone()))?;
        registry.register(Box::new(m.closes.clone()))?;
        registry.register(Box::new(m.heartbeat_rtt.clone()))?;
        registry.register(Box::new(m.head_lag.clone()))?;
        registry.register(Box::new(m.last_message_age.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        Ok(m)
    }

    /// The counters labelled by `canary` alone.
    fn canary_counters(&self) -> [&IntCounterVec; 8] {
        [
            &self.publishes,
            &self.publish_timeouts,
            &self.messages,
            &self.gaps,
            &self.missed,
            &self.duplicates,
            &self.reorders,
            &self.stalls,
        ]
    }

    /// Initialises a canary's single-label series at zero so dashboards see them before the
    /// first event, as Prometheus recommends.
    pub fn init(&self, canary: &str) {
        for c in self.canary_counters() {
            c.with_label_values(&[canary]);
        }
        self.up.with_label_values(&[canary]).set(0.0);
    }

    /// Drops a canary's single-label series after a reload removed it.
    pub fn forget(&self, canary: &str) {
        for c in self.canary_counters() {
            let _ = c.remove_label_values(&[canary]);
        }
        for g in [&self.up, &self.head_lag, &self.last_message_age] {
            let _ = g.remove_label_values(&[canary]);
        }
        for h in [
            &self.first_payload,
            &self.freshness,
            &self.e2e,
            &self.heartbeat_rtt,
        ] {
            let _ = h.remove_label_values(&[canary]);
        }
    }
}
