//! Building `prometheus` families from catalog entries (feature `prometheus`).

use crate::MetricDef;

impl MetricDef {
    /// A labelled integer counter family with this definition's name, help and labels.
    pub fn int_counter_vec(&self) -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(self.opts(), self.labels).expect("catalog metric is valid")
    }

    /// A label-less integer counter.
    pub fn int_counter(&self) -> prometheus::IntCounter {
        prometheus::IntCounter::with_opts(self.opts()).expect("catalog metric is valid")
    }

    /// A labelled float gauge family.
    pub fn gauge_vec(&self) -> prometheus::GaugeVec {
        prometheus::GaugeVec::new(self.opts(), self.labels).expect("catalog metric is valid")
    }

    /// A labelled integer gauge family.
    pub fn int_gauge_vec(&self) -> prometheus::IntGaugeVec {
        prometheus::IntGaugeVec::new(self.opts(), self.labels).expect("catalog metric is valid")
    }

    /// A histogram family with the catalog's bucket boundaries.
    pub fn histogram_vec(&self) -> prometheus::HistogramVec {
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(self.name, self.help).buckets(self.buckets.to_vec()),
            self.labels,
        )
        .expect("catalog metric is valid")
    }

    fn opts(&self) -> prometheus::Opts {
        prometheus::Opts::new(self.name, self.help)
    }
}

#[cfg(test)]
mod tests {
    use crate::Kind;

    #[test]
    fn every_definition_builds_its_prometheus_family() {
        for m in crate::all() {
            match m.kind {
                Kind::Counter if m.labels.is_empty() => drop(m.int_counter()),
                Kind::Counter => drop(m.int_counter_vec()),
                Kind::Gauge => drop(m.gauge_vec()),
                Kind::Histogram => drop(m.histogram_vec()),
            }
        }
    }
}
