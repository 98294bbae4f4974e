//! The prober's per-canary families (`websocket_canary_*`), held by `wsmon-probe daemon`.

use crate::buckets::{LATENCY_BUCKETS, NONE};
use crate::label::{CANARY, CLOSE_CODE, OUTCOME, PHASE, REASON};
use crate::MetricDef;

metric!(
    CANARY_UP,
    "websocket_canary_up",
    "websocket.canary.up",
    "",
    Gauge,
    [CANARY],
    NONE,
    "1 while the canary holds a healthy stream, 0 otherwise."
);
metric!(
    CANARY_CONNECT_PHASE_SECONDS,
    "websocket_canary_connect_phase_seconds",
    "websocket.canary.connect_phase",
    "s",
    Histogram,
    [CANARY, PHASE],
    LATENCY_BUCKETS,
    "Duration of each connect phase (dns, tcp, tls, upgrade)."
);
metric!(
    CANARY_FIRST_PAYLOAD_SECONDS,
    "websocket_canary_first_payload_seconds",
    "websocket.canary.first_payload",
    "s",
    Histogram,
    [CANARY],
    LATENCY_BUCKETS,
    "Time from the completed upgrade to the first data message received."
);
metric!(
    CANARY_FRESHNESS_SECONDS,
    "websocket_canary_freshness_seconds",
    "websocket.canary.freshness",
    "s",
    Histogram,
    [CANARY],
    LATENCY_BUCKETS,
    "Receive time minus the server timestamp in the message (subject to clock skew)."
);
metric!(
    CANARY_E2E_SECONDS,
    "websocket_canary_e2e_seconds",
    "websocket.canary.e2e",
    "s",
    Histogram,
    [CANARY],
    LATENCY_BUCKETS,
    "Publish-to-receive time of a nonce published by the prober (prober clock on both ends)."
);
metric!(
    CANARY_PUBLISHES_TOTAL,
    "websocket_canary_publishes_total",
    "websocket.canary.publishes",
    "{publish}",
    Counter,
    [CANARY],
    NONE,
    "Nonces published by the prober."
);
metric!(
    CANARY_PUBLISH_TIMEOUTS_TOTAL,
    "websocket_canary_publish_timeouts_total",
    "websocket.canary.publish_timeouts",
    "{publish}",
    Counter,
    [CANARY],
    NONE,
    "Published nonces that did not arrive on the stream within the timeout, or whose publish was refused."
);
metric!(
    CANARY_MESSAGES_TOTAL,
    "websocket_canary_messages_total",
    "websocket.canary.messages",
    "{message}",
    Counter,
    [CANARY],
    NONE,
    "Data messages received by the canary."
);
metric!(
    CANARY_SEQUENCE_GAPS_TOTAL,
    "websocket_canary_sequence_gaps_total",
    "websocket.canary.sequence_gaps",
    "{gap}",
    Counter,
    [CANARY],
    NONE,
    "Sequence gaps, counted once per gap."
);
metric!(
    CANARY_MISSED_MESSAGES_TOTAL,
    "websocket_canary_missed_messages_total",
    "websocket.canary.missed_messages",
    "{message}",
    Counter,
    [CANARY],
    NONE,
    "Messages missing from the sequence, summed over all gaps."
);
metric!(
    CANARY_DUPLICATES_TOTAL,
    "websocket_canary_duplicates_total",
    "websocket.canary.duplicates",
    "{message}",
    Counter,
    [CANARY],
    NONE,
    "Messages whose sequence was already seen."
);
metric!(
    CANARY_REORDERS_TOTAL,
    "websocket_canary_reorders_total",
    "websocket.canary.reorders",
    "{message}",
    Counter,
    [CANARY],
    NONE,
    "Messages that arrived after a higher sequence (late fills of a gap)."
);
metric!(
    CANARY_STALLS_TOTAL,
    "websocket_canary_stalls_total",
    "websocket.canary.stalls",
    "{stall}",
    Counter,
    [CANARY],
    NONE,
    "Times the stream was silent for longer than max_silence."
);
metric!(
    CANARY_RECONNECTS_TOTAL,
    "websocket_canary_reconnects_total",
    "websocket.canary.reconnects",
    "{reconnect}",
    Counter,
    [CANARY, REASON],
    NONE,
    "Reconnects by the failure_reason that ended the previous stream."
);
metric!(
    CANARY_RESUMES_TOTAL,
    "websocket_canary_resumes_total",
    "websocket.canary.resumes",
    "{resume}",
    Counter,
    [CANARY, OUTCOME],
    NONE,
    "Reconnects that asked to resume after the last sequence, by outcome: hit, miss, unavailable, failed or interrupted."
);
metric!(
    CANARY_REPLAYED_MESSAGES_TOTAL,
    "websocket_canary_replayed_messages_total",
    "websocket.canary.replayed_messages",
    "{message}",
    Counter,
    [CANARY],
    NONE,
    "Messages a resumed connection delivered that were published before it connected (by their server timestamp)."
);
metric!(
    CANARY_CLOSES_TOTAL,
    "websocket_canary_closes_total",
    "websocket.canary.closes",
    "{close}",
    Counter,
    [CANARY, CLOSE_CODE],
    NONE,
    "Stream ends seen by the canary, by close code (1006 when no close frame arrived)."
);
metric!(
    CANARY_HEARTBEAT_RTT_SECONDS,
    "websocket_canary_heartbeat_rtt_seconds",
    "websocket.canary.heartbeat_rtt",
    "s",
    Histogram,
    [CANARY],
    LATENCY_BUCKETS,
    "WebSocket ping to pong round-trip time."
);
metric!(
    CANARY_HEAD_LAG_MESSAGES,
    "websocket_canary_head_lag_messages",
    "websocket.canary.head_lag.messages",
    "{message}",
    Gauge,
    [CANARY],
    NONE,
    "Server head sequence minus the last sequence received, at the last head check."
);
metric!(
    CANARY_LAST_MESSAGE_AGE_SECONDS,
    "websocket_canary_last_message_age_seconds",
    "websocket.canary.last_message_age",
    "s",
    Gauge,
    [CANARY],
    NONE,
    "Seconds since the canary last received a data message, computed at scrape time."
);
metric!(
    CANARY_FAILURES_TOTAL,
    "websocket_canary_failures_total",
    "websocket.canary.failures",
    "{failure}",
    Counter,
    [CANARY, REASON],
    NONE,
    "Canary failures by failure_reason."
);

/// The `outcome` values of [`CANARY_RESUMES_TOTAL`].
pub const CANARY_RESUME_OUTCOMES: &[&str] =
    &["hit", "miss", "unavailable", "failed", "interrupted"];

// --- fresh-connection checks (`connect_check`): "can a new client connect right now", apart
// from the held stream's health above. A list of its own, so the held-stream families keep
// their meaning and their panels.

metric!(
    CANARY_CONNECT_CHECK_UP,
    "websocket_canary_connect_check_up",
    "websocket.canary.connect_check.up",
    "",
    Gauge,
    [CANARY],
    NONE,
    "1 if the latest fresh-connection check (new connection, first payload, close) passed, 0 if it failed; absent before the first check."
);
metric!(
    CANARY_CONNECT_CHECKS_TOTAL,
    "websocket_canary_connect_checks_total",
    "websocket.canary.connect_checks",
    "{check}",
    Counter,
    [CANARY],
    NONE,
    "Fresh-connection checks run, passed or failed."
);
metric!(
    CANARY_CONNECT_CHECK_FAILURES_TOTAL,
    "websocket_canary_connect_check_failures_total",
    "websocket.canary.connect_check.failures",
    "{failure}",
    Counter,
    [CANARY, REASON],
    NONE,
    "Failed fresh-connection checks by failure_reason (handshake_status for a refused upgrade)."
);
metric!(
    CANARY_CONNECT_CHECK_SECONDS,
    "websocket_canary_connect_check_seconds",
    "websocket.canary.connect_check",
    "s",
    Histogram,
    [CANARY],
    LATENCY_BUCKETS,
    "Time from starting a fresh-connection check to its first data message, for checks that passed."
);

/// The fresh-connection check's families, exported by canaries with `connect_check`.
pub const CONNECT_CHECK_METRICS: &[&MetricDef] = &[
    CANARY_CONNECT_CHECK_UP,
    CANARY_CONNECT_CHECKS_TOTAL,
    CANARY_CONNECT_CHECK_FAILURES_TOTAL,
    CANARY_CONNECT_CHECK_SECONDS,
];

/// The section title of the fresh-connection families in `docs/metrics.md`.
pub const CONNECT_CHECK_TITLE: &str = "Prober fresh-connection checks (`connect_check`)";

// --- recycling (`recycle`): the held stream replaced make-before-break. Not a reconnect: the
// held-stream families above do not count it.

metric!(
    CANARY_RECYCLES_TOTAL,
    "websocket_canary_recycles_total",
    "websocket.canary.recycles",
    "{recycle}",
    Counter,
    [CANARY, OUTCOME],
    NONE,
    "Replacements of the held stream by a new connection (make-before-break), by outcome: ok (the new one delivered its first payload and took over) or failed (the old one was kept)."
);
metric!(
    CANARY_RECYCLE_FAILURES_TOTAL,
    "websocket_canary_recycle_failures_total",
    "websocket.canary.recycle.failures",
    "{failure}",
    Counter,
    [CANARY, REASON],
    NONE,
    "Failed recycles by failure_reason (handshake_status for a refused upgrade); the held stream went on."
);

/// The `outcome` values of [`CANARY_RECYCLES_TOTAL`].
pub const CANARY_RECYCLE_OUTCOMES: &[&str] = &["ok", "failed"];

/// The recycling families, exported by canaries with `recycle`.
pub const RECYCLE_METRICS: &[&MetricDef] = &[CANARY_RECYCLES_TOTAL, CANARY_RECYCLE_FAILURES_TOTAL];

/// The section title of the recycling families in `docs/metrics.md`.
pub const RECYCLE_TITLE: &str = "Prober stream recycling (`recycle`)";

/// The prober's per-canary metrics, in documentation order.
pub const CANARY_METRICS: &[&MetricDef] = &[
    CANARY_UP,
    CANARY_CONNECT_PHASE_SECONDS,
    CANARY_FIRST_PAYLOAD_SECONDS,
    CANARY_FRESHNESS_SECONDS,
    CANARY_E2E_SECONDS,
    CANARY_PUBLISHES_TOTAL,
    CANARY_PUBLISH_TIMEOUTS_TOTAL,
    CANARY_MESSAGES_TOTAL,
    CANARY_SEQUENCE_GAPS_TOTAL,
    CANARY_MISSED_MESSAGES_TOTAL,
    CANARY_DUPLICATES_TOTAL,
    CANARY_REORDERS_TOTAL,
    CANARY_STALLS_TOTAL,
    CANARY_RECONNECTS_TOTAL,
    CANARY_RESUMES_TOTAL,
    CANARY_REPLAYED_MESSAGES_TOTAL,
    CANARY_CLOSES_TOTAL,
    CANARY_HEARTBEAT_RTT_SECONDS,
    CANARY_HEAD_LAG_MESSAGES,
    CANARY_LAST_MESSAGE_AGE_SECONDS,
    CANARY_FAILURES_TOTAL,
];
