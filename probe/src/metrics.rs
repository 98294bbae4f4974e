//! The canary metric families, built from `wsmon::catalog` so that no name is spelled twice.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use wsmon::catalog::{self, MetricDef};

fn counter_vec(def: &MetricDef) -> IntCounterVec {
    IntCounterVec::new(Opts::new(def.name, def.help), def.labels).expect("catalog metric is valid")
}

fn gauge_vec(def: &MetricDef) -> GaugeVec {
    GaugeVec::new(Opts::new(def.name, def.help), def.labels).expect("catalog metric is valid")
}

fn histogram_vec(def: &MetricDef) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(def.name, def.help).buckets(def.buckets.to_vec()),
        def.labels,
    )
    .expect("catalog metric is valid")
}

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
            up: gauge_vec(CANARY_UP),
            connect_phase: histogram_vec(CANARY_CONNECT_PHASE_SECONDS),
            first_payload: histogram_vec(CANARY_FIRST_PAYLOAD_SECONDS),
            freshness: histogram_vec(CANARY_FRESHNESS_SECONDS),
            e2e: histogram_vec(CANARY_E2E_SECONDS),
            publishes: counter_vec(CANARY_PUBLISHES_TOTAL),
            publish_timeouts: counter_vec(CANARY_PUBLISH_TIMEOUTS_TOTAL),
            messages: counter_vec(CANARY_MESSAGES_TOTAL),
            gaps: counter_vec(CANARY_SEQUENCE_GAPS_TOTAL),
            missed: counter_vec(CANARY_MISSED_MESSAGES_TOTAL),
            duplicates: counter_vec(CANARY_DUPLICATES_TOTAL),
            reorders: counter_vec(CANARY_REORDERS_TOTAL),
            stalls: counter_vec(CANARY_STALLS_TOTAL),
            reconnects: counter_vec(CANARY_RECONNECTS_TOTAL),
            closes: counter_vec(CANARY_CLOSES_TOTAL),
            heartbeat_rtt: histogram_vec(CANARY_HEARTBEAT_RTT_SECONDS),
            head_lag: gauge_vec(CANARY_HEAD_LAG_MESSAGES),
            last_message_age: gauge_vec(CANARY_LAST_MESSAGE_AGE_SECONDS),
            failures: counter_vec(CANARY_FAILURES_TOTAL),
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
