//! The shape of one catalog entry.

/// Prometheus metric type.
/// Not `#[non_exhaustive]`: renderers match on it, and a new type would be a breaking change
/// to them anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count; its name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Explicit-bucket histogram.
    Histogram,
}

impl Kind {
    /// The `# TYPE` keyword of the exposition format.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric of the vocabulary.
#[derive(Debug)]
#[non_exhaustive]
pub struct MetricDef {
    /// Prometheus name, with `_total` on counters and the base unit as suffix.
    pub name: &'static str,
    /// OpenTelemetry instrument name; the Collector's Prometheus translation yields `name`.
    pub otel_name: &'static str,
    /// UCUM unit for OpenTelemetry (`s`, `By`, `{message}`, or empty).
    pub unit: &'static str,
    /// Prometheus type.
    pub kind: Kind,
    /// `# HELP` text.
    pub help: &'static str,
    /// Label names, in registration order.
    pub labels: &'static [&'static str],
    /// Explicit bucket boundaries; empty unless `kind` is `Histogram`.
    pub buckets: &'static [f64],
}
