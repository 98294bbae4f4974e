//! Resume and replay families (`websocket_server_resumes_total`, …), reported by the
//! application through `RouteHandle::record_resume` and recorded by the `wsmon` crate.

use crate::buckets::NONE;
use crate::label::{OUTCOME, ROUTE};
use crate::MetricDef;

metric!(
    RESUMES_TOTAL,
    "websocket_server_resumes_total",
    "websocket.server.resumes",
    "{resume}",
    Counter,
    [ROUTE, OUTCOME],
    NONE,
    "Connections that asked to resume after a sequence, by outcome: hit (everything after it was replayed) or miss (part of it was no longer retained)."
);
metric!(
    REPLAYED_MESSAGES_TOTAL,
    "websocket_server_replayed_messages_total",
    "websocket.server.replayed_messages",
    "{message}",
    Counter,
    [ROUTE],
    NONE,
    "Messages sent from history to resuming connections, before they continued live."
);
metric!(
    RESUME_MISSED_MESSAGES_TOTAL,
    "websocket_server_resume_missed_messages_total",
    "websocket.server.resume_missed_messages",
    "{message}",
    Counter,
    [ROUTE],
    NONE,
    "Messages a resume could not replay because they were older than the retained history, summed over misses."
);

/// The `outcome` values of [`RESUMES_TOTAL`].
pub const RESUME_OUTCOMES: &[&str] = &["hit", "miss"];

/// The resume and replay metrics, in documentation order.
pub const RESUME_METRICS: &[&MetricDef] = &[
    RESUMES_TOTAL,
    REPLAYED_MESSAGES_TOTAL,
    RESUME_MISSED_MESSAGES_TOTAL,
];

/// The section title of these families in `docs/metrics.md`.
pub const RESUME_TITLE: &str = "Resume and replay (reported by the application)";
