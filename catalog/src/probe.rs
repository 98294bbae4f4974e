//! The families of one on-demand check at `wsmon-probe daemon`'s `/probe` (`probe_*`,
//! blackbox_exporter style), each request in its own registry.

use crate::buckets::NONE;
use crate::label::{PHASE, REASON};
use crate::MetricDef;

metric!(
    PROBE_SUCCESS,
    "probe_success",
    "probe.success",
    "{probe}",
    Gauge,
    [],
    NONE,
    "1 if the WebSocket probe passed (upgrade and first payload in time), 0 otherwise."
);
metric!(
    PROBE_DURATION_SECONDS,
    "probe_duration_seconds",
    "probe.duration",
    "s",
    Gauge,
    [],
    NONE,
    "How long the probe took, from resolving the target to closing the stream."
);
metric!(
    PROBE_WEBSOCKET_STATUS_CODE,
    "probe_websocket_status_code",
    "probe.websocket.status_code",
    "{code}",
    Gauge,
    [],
    NONE,
    "HTTP status of the upgrade response (101 on success, 0 if none arrived); as blackbox_exporter."
);
metric!(
    PROBE_WEBSOCKET_CONNECTION_UPGRADED,
    "probe_websocket_connection_upgraded",
    "probe.websocket.connection_upgraded",
    "{connection}",
    Gauge,
    [],
    NONE,
    "1 if the connection was upgraded to WebSocket; as blackbox_exporter."
);
metric!(
    PROBE_WEBSOCKET_CONNECT_PHASE_SECONDS,
    "probe_websocket_connect_phase_seconds",
    "probe.websocket.connect_phase",
    "s",
    Gauge,
    [PHASE],
    NONE,
    "Duration of each connect phase (dns, tcp, tls, upgrade) that completed."
);
metric!(
    PROBE_WEBSOCKET_FIRST_PAYLOAD_SECONDS,
    "probe_websocket_first_payload_seconds",
    "probe.websocket.first_payload",
    "s",
    Gauge,
    [],
    NONE,
    "Time from the completed upgrade to the first data message."
);
metric!(
    PROBE_WEBSOCKET_FAILURE_INFO,
    "probe_websocket_failure_info",
    "probe.websocket.failure_info",
    "{failure}",
    Gauge,
    [REASON],
    NONE,
    "1 with the failure_reason of a failed probe; absent when the probe passed."
);

/// The metrics of one `/probe` request, each in its own registry.
pub const PROBE_METRICS: &[&MetricDef] = &[
    PROBE_SUCCESS,
    PROBE_DURATION_SECONDS,
    PROBE_WEBSOCKET_STATUS_CODE,
    PROBE_WEBSOCKET_CONNECTION_UPGRADED,
    PROBE_WEBSOCKET_CONNECT_PHASE_SECONDS,
    PROBE_WEBSOCKET_FIRST_PAYLOAD_SECONDS,
    PROBE_WEBSOCKET_FAILURE_INFO,
];
