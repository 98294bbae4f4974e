//! # wsmon-catalog: every metric wsmon exports
//!
//! Name, type, help, labels, buckets and OpenTelemetry name of each family, in one table per
//! producer. This is the single source of truth: the recorders register from it,
//! `docs/metrics.md` is generated from it ([`docs::markdown_tables`]), and the dashboard and
//! alert checks read it.
//!
//! ```
//! use wsmon_catalog::{canary, server, Kind};
//!
//! assert_eq!(server::MESSAGES_TOTAL.name, "websocket_server_messages_total");
//! assert_eq!(canary::CANARY_UP.kind, Kind::Gauge);
//! assert!(wsmon_catalog::find("probe_success").is_some());
//! ```
//!
//! The server families are re-exported by the `wsmon` crate as `wsmon::catalog`; the prober's
//! families ([`canary`], [`probe`]) are public only here, so that they are no part of the
//! server middleware's API. With the `prometheus` feature, a [`MetricDef`] builds its
//! `prometheus` family.

/// Declares one `pub const $id: &MetricDef`.
macro_rules! metric {
    ($id:ident, $name:literal, $otel:literal, $unit:literal, $kind:ident, [$($l:expr),*], $buckets:expr, $help:literal) => {
        #[doc = $help]
        pub const $id: &$crate::MetricDef = &$crate::MetricDef {
            name: $name,
            otel_name: $otel,
            unit: $unit,
            kind: $crate::Kind::$kind,
            help: $help,
            labels: &[$($l),*],
            buckets: $buckets,
        };
    };
}

pub mod buckets;
pub mod canary;
mod def;
pub mod docs;
pub mod exporter;
pub mod label;
pub mod otel;
pub mod probe;
#[cfg(feature = "prometheus")]
mod prometheus;
pub mod resume;
pub mod server;
pub mod server_canary;

pub use def::{Kind, MetricDef};

// The flat view: every family at the root as well, for code that reads the whole vocabulary.
pub use canary::*;
pub use exporter::*;
pub use probe::*;
pub use resume::*;
pub use server::*;
pub use server_canary::*;

/// The route label value for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Every metric family wsmon can export, in documentation order.
pub fn all() -> impl Iterator<Item = &'static MetricDef> {
    server::SERVER_METRICS
        .iter()
        .chain(server_canary::SERVER_CANARY_METRICS.iter())
        .chain(resume::RESUME_METRICS.iter())
        .chain(canary::CANARY_METRICS.iter())
        .chain(canary::CONNECT_CHECK_METRICS.iter())
        .chain(canary::RECYCLE_METRICS.iter())
        .chain(probe::PROBE_METRICS.iter())
        .chain(exporter::EXPORTER_METRICS.iter())
        .copied()
}

/// Looks a metric up by its Prometheus name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    all().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for m in all() {
            assert!(seen.insert(m.name), "duplicate metric {}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            if m.unit == "s" {
                assert!(m.name.ends_with("_seconds"), "{} has unit s", m.name);
            }
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(
                m.buckets.windows(2).all(|w| w[0] < w[1]),
                "{} buckets",
                m.name
            );
        }
    }

    #[test]
    fn each_producer_keeps_to_its_prefix() {
        for m in server::SERVER_METRICS
            .iter()
            .chain(server_canary::SERVER_CANARY_METRICS)
        {
            assert!(m.name.starts_with("websocket_server_"), "{}", m.name);
        }
        for m in canary::CANARY_METRICS
            .iter()
            .chain(canary::CONNECT_CHECK_METRICS)
            .chain(canary::RECYCLE_METRICS)
        {
            assert!(m.name.starts_with("websocket_canary_"), "{}", m.name);
        }
        for m in probe::PROBE_METRICS {
            assert!(m.name.starts_with("probe_"), "{}", m.name);
        }
    }
}
