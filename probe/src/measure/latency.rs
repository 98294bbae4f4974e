//! Latency samples and their quantiles, kept whole-run or as a recent window.

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How a canary keeps latency samples for its quantiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Every sample of a bounded check (`once`, `/probe`), to 3 significant digits.
    WholeRun,
    /// The latest [`RECENT_SAMPLES`] of a canary held indefinitely (`daemon`). A histogram
    /// costs kilobytes per canary; Prometheus keeps the long-run distribution anyway, and the
    /// status page wants how the stream is doing now.
    Recent,
}

/// Samples kept per measure under [`Retention::Recent`]; also the sparkline's length.
pub const RECENT_SAMPLES: usize = 60;

/// Quantiles of [`LatencyStats`], in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Samples recorded in all, including those no longer in a recent window.
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

const MAX_MICROS: u64 = 3_600_000_000;

/// A latency measure with microsecond resolution. Allocates nothing until its first sample.
#[derive(Debug, Clone)]
pub struct LatencyStats {
    count: u64,
    samples: Samples,
}

#[derive(Debug, Clone)]
enum Samples {
    /// Auto-resizing, so it grows only to the range actually recorded.
    WholeRun(Option<Box<Histogram<u32>>>),
    /// Oldest first, in seconds.
    Recent(VecDeque<f32>),
}

impl LatencyStats {
    pub fn new(retention: Retention) -> Self {
        let samples = match retention {
            Retention::WholeRun => Samples::WholeRun(None),
            Retention::Recent => Samples::Recent(VecDeque::new()),
        };
        Self { count: 0, samples }
    }

    pub fn record(&mut self, d: Duration) {
        self.count = self.count.saturating_add(1);
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        match &mut self.samples {
            Samples::WholeRun(h) => {
                let h = h.get_or_insert_with(|| {
                    Box::new(Histogram::new(3).expect("3 significant digits is valid"))
                });
                // `record` grows the histogram; the saturating form would clamp instead.
                if h.record(us).is_err() {
                    h.saturating_record(us);
                }
            }
            Samples::Recent(window) => {
                if window.len() == RECENT_SAMPLES {
                    window.pop_front();
                }
                window.push_back(us as f32 / 1e6);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The recent samples in seconds, oldest first; empty under [`Retention::WholeRun`].
    pub fn recent(&self) -> Vec<f64> {
        match &self.samples {
            Samples::Recent(window) => window.iter().map(|&s| f64::from(s)).collect(),
            Samples::WholeRun(_) => Vec::new(),
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let secs = |us: u64| us as f64 / 1e6;
        match &self.samples {
            Samples::WholeRun(Some(h)) if !h.is_empty() => LatencySummary {
                count: self.count,
                p50: secs(h.value_at_quantile(0.5)),
                p99: secs(h.value_at_quantile(0.99)),
                max: secs(h.max()),
            },
            Samples::Recent(window) if !window.is_empty() => {
                let mut sorted: Vec<f64> = window.iter().map(|&s| f64::from(s)).collect();
                sorted.sort_by(f64::total_cmp);
                // Nearest rank, as hdrhistogram reports it.
                let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1];
                LatencySummary {
                    count: self.count,
                    p50: rank(0.5),
                    p99: rank(0.99),
                    max: sorted[sorted.len() - 1],
                }
            }
            _ => LatencySummary::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_keep_microseconds() {
        let mut h = LatencyStats::new(Retention::WholeRun);
        h.record(Duration::from_micros(250));
        h.record(Duration::from_micros(250));
        h.record(Duration::from_millis(10));
        let s = h.summary();
        assert_eq!(s.count, 3);
        assert!((s.p50 - 0.000250).abs() < 1e-6, "{s:?}");
        assert!((s.max - 0.010).abs() < 0.0001, "{s:?}");
        assert!(h.recent().is_empty());
        for retention in [Retention::WholeRun, Retention::Recent] {
            assert_eq!(
                LatencyStats::new(retention).summary(),
                LatencySummary::default()
            );
        }
    }

    #[test]
    fn recent_stats_keep_the_latest_window_and_the_total_count() {
        let mut h = LatencyStats::new(Retention::Recent);
        // 100 ms for the first 40 samples, then 1..=60 ms: only the latter stay.
        for _ in 0..40 {
            h.record(Duration::from_millis(100));
        }
        for ms in 1..=RECENT_SAMPLES as u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 40 + RECENT_SAMPLES as u64);
        assert!((s.p50 - 0.030).abs() < 1e-6, "{s:?}");
        assert!((s.p99 - 0.060).abs() < 1e-6, "{s:?}");
        assert!((s.max - 0.060).abs() < 1e-6, "{s:?}");
        let recent = h.recent();
        assert_eq!(recent.len(), RECENT_SAMPLES);
        assert!((recent[0] - 0.001).abs() < 1e-6 && (recent[59] - 0.060).abs() < 1e-6);
    }

    #[test]
    fn whole_run_stats_grow_to_large_samples() {
        let mut h = LatencyStats::new(Retention::WholeRun);
        h.record(Duration::from_micros(3));
        h.record(Duration::from_secs(30));
        h.record(Duration::MAX);
        let s = h.summary();
        assert_eq!(s.count, 3);
        assert!((s.max - 3600.0).abs() / 3600.0 < 0.001, "{s:?}");
    }
}
