//! Every metric this crate exports: name, type, help, labels and buckets.
//!
//! The definitions live in the `wsmon-catalog` crate, the single source of truth shared with
//! the prober; this module re-exports the server's part of it. `docs/metrics.md` is generated
//! from the whole catalog.

pub use wsmon_catalog::buckets::{
    CONNECTION_DURATION_BUCKETS, LATENCY_BUCKETS, MESSAGE_COUNT_BUCKETS,
};
pub use wsmon_catalog::exporter::*;
pub use wsmon_catalog::resume::*;
pub use wsmon_catalog::server::*;
pub use wsmon_catalog::server_canary::*;
pub use wsmon_catalog::{Kind, MetricDef, UNMATCHED_ROUTE};

/// Label names of the server families.
pub mod label {
    pub use wsmon_catalog::label::{
        ACTION, CLOSE_CODE, DIRECTION, FRAME_TYPE, INITIATOR, OUTCOME, ROUTE, STATUS_CODE,
    };
}
