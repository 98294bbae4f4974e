//! The canary metric families, named by `wsmon_catalog` so that no name is spelled twice.
//!
//! Each canary keeps its figures in its own recorder
//! ([`CanarySeries`](crate::record::series::CanarySeries) plus the counts in its status), and
//! [`CanaryCollector`] turns them into Prometheus families at scrape time. A
//! registered `prometheus` child costs about a kilobyte per series (each carries its own copy
//! of the family's description); at ten thousand canaries that was most of the prober's memory.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use wsmon_catalog::{self as catalog, MetricDef};

use crate::record::recorder::{CanaryRecorder, CanaryState, CanaryStatus};
use crate::record::series::{Buckets, LabelledCounts, LazyBuckets, Phase};

/// The one `close_code` series at zero from the start: 1006, the abrupt drop. The closes panel
/// then has data and `increase()` sees the first abrupt drop, at one series per canary rather
/// than 19; other codes appear when first seen.
const CLOSE_CODE_AT_ZERO: &str = "1006";

/// Every family this collector renders: the held stream's, then the fresh-connection check's.
fn canary_defs() -> impl Iterator<Item = &'static MetricDef> {
    catalog::CANARY_METRICS
        .iter()
        .chain(catalog::CONNECT_CHECK_METRICS)
        .chain(catalog::RECYCLE_METRICS)
        .copied()
}

/// What `websocket_canary_up` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpMeans {
    /// 1 while the canary holds a healthy stream (`daemon`).
    Holding,
    /// 1 if the finished check succeeded (`once`).
    Verdict,
}

/// The canaries a collector reports on; the daemon replaces them on reload.
pub type CanarySet = Arc<RwLock<Vec<Arc<CanaryRecorder>>>>;

/// Renders every `websocket_canary_*` family from the canaries' recorders at scrape time.
pub struct CanaryCollector {
    canaries: CanarySet,
    up_means: UpMeans,
    descs: Vec<Desc>,
}

impl CanaryCollector {
    pub fn new(canaries: CanarySet, up_means: UpMeans) -> Self {
        let descs = canary_defs()
            .map(|def| {
                Desc::new(
                    def.name.to_string(),
                    def.help.to_string(),
                    def.labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
                .expect("catalog metric is valid")
            })
            .collect();
        Self {
            canaries,
            up_means,
            descs,
        }
    }
}

/// Families under construction, one per catalog entry.
struct Families(Vec<MetricFamily>);

impl Families {
    fn new() -> Self {
        Self(
            canary_defs()
                .map(|def| {
                    let mut f = MetricFamily::default();
                    f.set_name(def.name.to_string());
                    f.set_help(def.help.to_string());
                    f.set_field_type(match def.kind {
                        catalog::Kind::Counter => MetricType::COUNTER,
                        catalog::Kind::Gauge => MetricType::GAUGE,
                        catalog::Kind::Histogram => MetricType::HISTOGRAM,
                    });
                    f
                })
                .collect(),
        )
    }

    fn push(&mut self, def: &MetricDef, label_values: &[&str], fill: impl FnOnce(&mut Metric)) {
        let labels = def
            .labels
            .iter()
            .zip(label_values)
            .map(|(name, value)| {
                let mut l = LabelPair::default();
                l.set_name(name.to_string());
                l.set_value(value.to_string());
                l
            })
            .collect();
        let mut m = Metric::from_label(labels);
        fill(&mut m);
        let i = canary_defs()
            .position(|d| d.name == def.name)
            .expect("a canary family");
        self.0[i].mut_metric().push(m);
    }

    fn counter(&mut self, def: &MetricDef, labels: &[&str], v: u64) {
        self.push(def, labels, |m| {
            let mut c = proto::Counter::default();
            c.set_value(v as f64);
            m.set_counter(c);
        });
    }

    fn gauge(&mut self, def: &MetricDef, labels: &[&str], v: f64) {
        self.push(def, labels, |m| {
            let mut g = proto::Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        });
    }

    /// A histogram series, at zero until observed when `expected`.
    fn histogram(&mut self, def: &MetricDef, labels: &[&str], h: &LazyBuckets, expected: bool) {
        match &h.0 {
            Some(b) => self.push(def, labels, |m| m.set_histogram(b.proto(def.buckets))),
            None if expected => {
                self.push(def, labels, |m| m.set_histogram(Buckets::zero(def.buckets)))
            }
            None => {}
        }
    }

    /// The `expected` labels first (at zero until counted), then any other counted ones.
    fn by_label<'l>(
        &mut self,
        def: &MetricDef,
        canary: &str,
        counts: &LabelledCounts,
        expected: impl Iterator<Item = &'l str> + Clone,
    ) {
        for label in expected.clone() {
            self.counter(def, &[canary, label], counts.get(label));
        }
        for (label, n) in &counts.0 {
            if !expected.clone().any(|e| e == *label) {
                self.counter(def, &[canary, label], *n);
            }
        }
    }

    fn canary(&mut self, s: &CanaryStatus, up: bool, now: Instant) {
        use catalog::*;
        let name = s.name.as_str();
        let l = [name];
        self.gauge(CANARY_UP, &l, if up { 1.0 } else { 0.0 });
        let x = &s.expected;
        for phase in [Phase::Dns, Phase::Tcp, Phase::Tls, Phase::Upgrade] {
            self.histogram(
                CANARY_CONNECT_PHASE_SECONDS,
                &[name, phase.as_str()],
                &s.series.connect_phase[phase as usize],
                x.tls || phase != Phase::Tls,
            );
        }
        self.histogram(
            CANARY_FIRST_PAYLOAD_SECONDS,
            &l,
            &s.series.first_payload,
            true,
        );
        self.histogram(
            CANARY_FRESHNESS_SECONDS,
            &l,
            &s.series.freshness,
            x.freshness,
        );
        self.histogram(CANARY_E2E_SECONDS, &l, &s.series.e2e, x.e2e);
        let rtt = &s.series.heartbeat_rtt;
        self.histogram(CANARY_HEARTBEAT_RTT_SECONDS, &l, rtt, x.heartbeat_rtt);
        // Counters labelled by canary alone exist from the start, as Prometheus recommends.
        self.counter(CANARY_PUBLISHES_TOTAL, &l, s.publishes);
        self.counter(CANARY_PUBLISH_TIMEOUTS_TOTAL, &l, s.publish_timeouts);
        self.counter(CANARY_MESSAGES_TOTAL, &l, s.messages);
        self.counter(CANARY_SEQUENCE_GAPS_TOTAL, &l, s.sequence.gaps);
        self.counter(CANARY_MISSED_MESSAGES_TOTAL, &l, s.sequence.missed);
        self.counter(CANARY_DUPLICATES_TOTAL, &l, s.sequence.duplicates);
        self.counter(CANARY_REORDERS_TOTAL, &l, s.sequence.reorders);
        self.counter(CANARY_STALLS_TOTAL, &l, s.stalls);
        let reasons = x.reasons.iter().map(|r| r.as_str());
        let stream_ends = x
            .reasons
            .iter()
            .filter(|r| r.ends_stream())
            .map(|r| r.as_str());
        let closes = x.closes.then_some(CLOSE_CODE_AT_ZERO).into_iter();
        self.by_label(
            CANARY_RECONNECTS_TOTAL,
            name,
            &s.series.reconnects,
            stream_ends,
        );
        let outcomes =
            CANARY_RESUME_OUTCOMES
                .iter()
                .copied()
                .take(if x.resumes { usize::MAX } else { 0 });
        self.by_label(CANARY_RESUMES_TOTAL, name, &s.series.resumes, outcomes);
        if x.replayed || s.replayed > 0 {
            self.counter(CANARY_REPLAYED_MESSAGES_TOTAL, &l, s.replayed);
        }
        self.by_label(CANARY_CLOSES_TOTAL, name, &s.series.closes, closes);
        self.by_label(CANARY_FAILURES_TOTAL, name, &s.series.failures, reasons);
        if !x.connect_check_reasons.is_empty() {
            if let Some(last) = &s.connect_check.last {
                let up = if last.fault.is_none() { 1.0 } else { 0.0 };
                self.gauge(CANARY_CONNECT_CHECK_UP, &l, up);
            }
            self.counter(CANARY_CONNECT_CHECKS_TOTAL, &l, s.connect_check.checks);
            let reasons = x.connect_check_reasons.iter().map(|r| r.as_str());
            let failures = &s.series.connect_check_failures;
            self.by_label(CANARY_CONNECT_CHECK_FAILURES_TOTAL, name, failures, reasons);
            let h = &s.series.connect_check;
            self.histogram(CANARY_CONNECT_CHECK_SECONDS, &l, h, true);
        }
        if !x.recycle_reasons.is_empty() {
            let outcomes = CANARY_RECYCLE_OUTCOMES.iter().copied();
            self.by_label(CANARY_RECYCLES_TOTAL, name, &s.series.recycles, outcomes);
            let reasons = x.recycle_reasons.iter().map(|r| r.as_str());
            let failures = &s.series.recycle_failures;
            self.by_label(CANARY_RECYCLE_FAILURES_TOTAL, name, failures, reasons);
        }
        if let Some(lag) = s.head_lag {
            self.gauge(CANARY_HEAD_LAG_MESSAGES, &l, lag as f64);
        }
        if let Some(age) = s.last_message_age(now) {
            self.gauge(CANARY_LAST_MESSAGE_AGE_SECONDS, &l, age.as_secs_f64());
        }
    }
}

impl Collector for CanaryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let canaries = self
            .canaries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Instant::now();
        let mut families = Families::new();
        for rec in canaries {
            rec.with_status(|s| {
                let up = match self.up_means {
                    UpMeans::Holding => s.state == CanaryState::Up,
                    UpMeans::Verdict => s.verdict.success(),
                };
                families.canary(s, up, now);
            });
        }
        families
            .0
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect()
    }
}
