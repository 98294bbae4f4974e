//! The server's view of canary connections (`websocket_server_canary_*`), recorded by the
//! `wsmon` crate for upgrades it recognises as a canary's (by default a `User-Agent` starting
//! with `wsmon-probe/`; see `wsmon::CanaryRecognition`).
//!
//! Canary connections are counted in the main server families too, so those keep meaning
//! "all traffic" and no existing alert or panel changes. These families are the canary
//! subset; the users' view is the difference (`websocket_server_closes_total -
//! websocket_server_canary_closes_total`, per label set).
//!
//! Series per route, bounded like their main families (`status_code` by the statuses the
//! server answers, `close_code` by the classifier): from the start 25 (1 upgrade and 5 close
//! series at zero, the active gauge, the without-payload counter and the histogram's 17); at
//! most `1 + rejected statuses + 3 × (19 + allowlist) + 19`.

use crate::buckets::{LATENCY_BUCKETS, NONE};
use crate::label::{CLOSE_CODE, INITIATOR, OUTCOME, ROUTE, STATUS_CODE};
use crate::MetricDef;

metric!(
    SERVER_CANARY_UPGRADES_TOTAL,
    "websocket_server_canary_upgrades_total",
    "websocket.server.canary.upgrades",
    "{upgrade}",
    Counter,
    [ROUTE, OUTCOME, STATUS_CODE],
    NONE,
    "Upgrade attempts recognised as a canary's, by outcome (accepted/rejected) and HTTP status code."
);
metric!(
    SERVER_CANARY_ACTIVE_CONNECTIONS,
    "websocket_server_canary_active_connections",
    "websocket.server.canary.active_connections",
    "{connection}",
    Gauge,
    [ROUTE],
    NONE,
    "Live canary connections the server holds, counted at scrape time."
);
metric!(
    SERVER_CANARY_FIRST_PAYLOAD_LATENCY_SECONDS,
    "websocket_server_canary_first_payload_latency_seconds",
    "websocket.server.canary.first_payload_latency",
    "s",
    Histogram,
    [ROUTE],
    LATENCY_BUCKETS,
    "Time from a canary's completed upgrade to the first data message the server sends it."
);
metric!(
    SERVER_CANARY_CONNECTIONS_WITHOUT_PAYLOAD_TOTAL,
    "websocket_server_canary_connections_without_payload_total",
    "websocket.server.canary.connections_without_payload",
    "{connection}",
    Counter,
    [ROUTE],
    NONE,
    "Canary connections that closed before the server sent them any data message."
);
metric!(SERVER_CANARY_CLOSES_TOTAL, "websocket_server_canary_closes_total", "websocket.server.canary.closes", "{close}", Counter,
    [ROUTE, INITIATOR, CLOSE_CODE], NONE,
    "Canary connection ends as the server saw them, by initiator (client/server/none) and close code.");

/// The server's canary-view metrics, in documentation order.
pub const SERVER_CANARY_METRICS: &[&MetricDef] = &[
    SERVER_CANARY_UPGRADES_TOTAL,
    SERVER_CANARY_ACTIVE_CONNECTIONS,
    SERVER_CANARY_FIRST_PAYLOAD_LATENCY_SECONDS,
    SERVER_CANARY_CONNECTIONS_WITHOUT_PAYLOAD_TOTAL,
    SERVER_CANARY_CLOSES_TOTAL,
];

/// The section title of these families in `docs/metrics.md`.
pub const SERVER_CANARY_TITLE: &str = "Middleware: canary connections (`wsmon`)";
