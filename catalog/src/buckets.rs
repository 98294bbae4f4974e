//! Histogram bucket boundaries, shared by the families that measure the same kind of thing.

/// Latency buckets in seconds: sub-millisecond to ten seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Connection lifetime buckets in seconds: one second to one day.
pub const CONNECTION_DURATION_BUCKETS: &[f64] =
    &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0];
/// Depth and lag buckets in messages.
pub const MESSAGE_COUNT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

/// No buckets: the value of every non-histogram entry.
pub(crate) const NONE: &[f64] = &[];
