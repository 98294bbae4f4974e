//! What one canary's metric series hold between scrapes: histogram buckets and labelled
//! counts, kept in its recorder and rendered by the collector in [`crate::record::metrics`].

use prometheus::proto;
use wsmon_catalog::MetricDef;

use crate::config::CanaryConfig;
use crate::failure::FailureReason;

/// A connect phase, timed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Dns,
    Tcp,
    Tls,
    Upgrade,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Tcp => "tcp",
            Phase::Tls => "tls",
            Phase::Upgrade => "upgrade",
        }
    }
}

/// Cumulative-at-render bucket counts for one histogram series, on the catalog's buckets.
#[derive(Debug, Clone)]
pub struct Buckets {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
}

impl Buckets {
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0.0,
            count: 0,
        }
    }

    pub(crate) fn observe(&mut self, bounds: &[f64], v: f64) {
        let i = bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub(crate) fn proto(&self, bounds: &[f64]) -> proto::Histogram {
        Self::render(&self.counts, self.sum, self.count, bounds)
    }

    /// A histogram with no observations yet.
    pub(crate) fn zero(bounds: &[f64]) -> proto::Histogram {
        Self::render(&[], 0.0, 0, bounds)
    }

    fn render(counts: &[u64], sum: f64, count: u64, bounds: &[f64]) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        let mut cumulative = 0;
        let buckets = bounds
            .iter()
            .enumerate()
            .map(|(i, &upper)| {
                cumulative += counts.get(i).copied().unwrap_or(0);
                let mut b = proto::Bucket::default();
                b.set_upper_bound(upper);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        h.set_bucket(buckets);
        h
    }
}

/// A latency histogram series that allocates its buckets on the first observation.
#[derive(Debug, Clone, Default)]
pub struct LazyBuckets(pub(crate) Option<Buckets>);

impl LazyBuckets {
    pub fn observe(&mut self, def: &MetricDef, v: f64) {
        self.0
            .get_or_insert_with(|| Buckets::new(def.buckets))
            .observe(def.buckets, v);
    }
}

/// A counter by a label drawn from a closed set (failure reasons, close-code classes).
#[derive(Debug, Clone, Default)]
pub struct LabelledCounts(pub(crate) Vec<(&'static str, u64)>);

impl LabelledCounts {
    pub fn inc(&mut self, label: &'static str) {
        match self.0.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => self.0.push((label, 1)),
        }
    }

    /// The count for `label`, 0 if never counted.
    pub fn get(&self, label: &str) -> u64 {
        self.0
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| *n)
    }
}

/// The series a canary exports from the start, at zero, so that dashboards show 0 rather than
/// "No data" and `increase()` sees the first event: bounded by what its config can produce.
#[derive(Debug, Clone, Default)]
pub struct ExpectedSeries {
    /// The canary connects over TLS, so it has a `tls` phase.
    pub tls: bool,
    pub freshness: bool,
    pub e2e: bool,
    pub heartbeat_rtt: bool,
    /// `failures_total` reasons; `reconnects_total` takes those that end a stream.
    pub reasons: Box<[FailureReason]>,
    /// `closes_total` exists at zero for `close_code="1006"` (one series, not all 19).
    pub closes: bool,
    /// With `connect_check`: its failure reasons, at zero from the start (empty without).
    pub connect_check_reasons: Box<[FailureReason]>,
    /// With `recycle`: its failure reasons, at zero from the start (empty without).
    pub recycle_reasons: Box<[FailureReason]>,
    /// The canary resumes: `resumes_total` exists at zero for every outcome.
    pub resumes: bool,
    /// It resumes and reads timestamps, so it counts replayed messages.
    pub replayed: bool,
}

impl ExpectedSeries {
    pub fn for_canary(cfg: &CanaryConfig) -> Self {
        Self {
            tls: cfg.url.scheme() == "wss",
            freshness: cfg.timestamp.is_some(),
            e2e: cfg.publish.is_some(),
            heartbeat_rtt: cfg.heartbeat.is_some(),
            reasons: FailureReason::possible_for(cfg).into(),
            closes: true,
            connect_check_reasons: match cfg.connect_check {
                Some(_) => FailureReason::possible_for(&cfg.for_connect_check()).into(),
                None => Box::default(),
            },
            recycle_reasons: match cfg.recycle {
                Some(_) => FailureReason::possible_for(&cfg.for_connect_check()).into(),
                None => Box::default(),
            },
            resumes: cfg.resume.is_some(),
            replayed: cfg.resume.is_some() && cfg.timestamp.is_some(),
        }
    }
}

/// One canary's histogram and labelled-counter series; plain counts live in its status.
#[derive(Debug, Clone, Default)]
pub struct CanarySeries {
    pub connect_phase: [LazyBuckets; 4],
    pub first_payload: LazyBuckets,
    pub freshness: LazyBuckets,
    pub e2e: LazyBuckets,
    pub heartbeat_rtt: LazyBuckets,
    pub reconnects: LabelledCounts,
    /// By [`crate::resume::ResumeOutcome`].
    pub resumes: LabelledCounts,
    pub closes: LabelledCounts,
    pub failures: LabelledCounts,
    pub connect_check: LazyBuckets,
    pub connect_check_failures: LabelledCounts,
    /// By outcome, `ok` or `failed`.
    pub recycles: LabelledCounts,
    pub recycle_failures: LabelledCounts,
}

impl CanarySeries {
    pub fn phase(&mut self, phase: Phase) -> &mut LazyBuckets {
        &mut self.connect_phase[phase as usize]
    }

    pub fn reconnect(&mut self, reason: FailureReason) {
        self.reconnects.inc(reason.as_str());
    }

    pub fn failure(&mut self, reason: FailureReason) {
        self.failures.inc(reason.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_le_inclusive() {
        let bounds = [0.1, 1.0];
        let mut b = Buckets::new(&bounds);
        for v in [0.1, 0.5, 1.0, 7.0] {
            b.observe(&bounds, v);
        }
        let h = b.proto(&bounds);
        let counts: Vec<u64> = h
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(counts, [1, 3]);
        assert_eq!(h.sample_count(), 4);
        assert!((h.sample_sum() - 8.6).abs() < 1e-9);
    }

    #[test]
    fn labelled_counts_add_up_per_label() {
        let mut c = LabelledCounts::default();
        c.inc("a");
        c.inc("b");
        c.inc("a");
        assert_eq!(c.0, [("a", 2), ("b", 1)]);
    }
}
