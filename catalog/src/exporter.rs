//! The health of wsmon's own exporters, used by every process that exports over OTLP.

use crate::buckets::NONE;
use crate::MetricDef;

metric!(
    OTLP_DROPPED_EXPORTS_TOTAL,
    "wsmon_otlp_dropped_exports_total",
    "wsmon.otlp.dropped_exports",
    "{export}",
    Counter,
    [],
    NONE,
    "OTLP metric exports dropped after retries failed (collector down or refusing)."
);

/// Metrics about wsmon's own exporters.
pub const EXPORTER_METRICS: &[&MetricDef] = &[OTLP_DROPPED_EXPORTS_TOTAL];
