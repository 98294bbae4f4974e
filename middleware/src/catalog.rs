//! Every metric wsmon exports: name, type, help, labels and buckets.
//!
//! This is the single source of truth. The recorders register from it, `docs/metrics.md` is
//! generated from it, and the dashboard and alert checks read it.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
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
pub struct MetricDef {
    /// Prometheus name, with `_total` on counters and the base unit as suffix.
    pub name: &'static str,
    /// OpenTelemetry instrument name; the Collector's Prometheus translation yields `name`.
    pub otel_name: &'static str,
    /// UCUM unit for OpenTelemetry (`s`, `By`, `{message}`, or empty).
    pub unit: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// Explicit bucket boundaries; empty unless `kind` is `Histogram`.
    pub buckets: &'static [f64],
}

impl MetricDef {
    /// A labelled integer counter family with this definition's name, help and labels.
    pub fn int_counter_vec(&self) -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(self.opts(), self.labels).expect("catalog metric is valid")
    }

    /// A label-less integer counter.
    pub fn int_counter(&self) -> prometheus::IntCounter {
        prometheus::IntCounter::with_opts(self.opts()).expect("catalog metric is valid")
    }

    pub fn gauge_vec(&self) -> prometheus::GaugeVec {
        prometheus::GaugeVec::new(self.opts(), self.labels).expect("catalog metric is valid")
    }

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

/// Label names, shared by every recorder so that a typo cannot create a second spelling.
pub mod label {
    pub const ROUTE: &str = "route";
    pub const OUTCOME: &str = "outcome";
    pub const STATUS_CODE: &str = "status_code";
    pub const DIRECTION: &str = "direction";
    pub const FRAME_TYPE: &str = "frame_type";
    pub const INITIATOR: &str = "initiator";
    pub const CLOSE_CODE: &str = "close_code";
    pub const ACTION: &str = "action";
    pub const CANARY: &str = "canary";
    pub const PHASE: &str = "phase";
    pub const REASON: &str = "reason";
}

/// The route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

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

const NONE: &[f64] = &[];

macro_rules! metric {
    ($id:ident, $name:literal, $otel:literal, $unit:literal, $kind:ident, [$($l:expr),*], $buckets:expr, $help:literal) => {
        pub const $id: &MetricDef = &MetricDef {
            name: $name,
            otel_name: $otel,
            unit: $unit,
            kind: Kind::$kind,
            help: $help,
            labels: &[$($l),*],
            buckets: $buckets,
        };
    };
}

use label::*;

// --- middleware (server side) ---
metric!(
    UPGRADES_TOTAL,
    "websocket_server_upgrades_total",
    "websocket.server.upgrades",
    "{upgrade}",
    Counter,
    [ROUTE, OUTCOME, STATUS_CODE],
    NONE,
    "WebSocket upgrade attempts by outcome (accepted/rejected) and HTTP status code."
);
metric!(
    UPGRADE_DURATION_SECONDS,
    "websocket_server_upgrade_duration_seconds",
    "websocket.server.upgrade_duration",
    "s",
    Histogram,
    [ROUTE],
    LATENCY_BUCKETS,
    "Time from the upgrade request reaching the layer to the 101 response of an accepted upgrade."
);
metric!(
    ACTIVE_CONNECTIONS,
    "websocket_server_active_connections",
    "websocket.server.active_connections",
    "{connection}",
    Gauge,
    [ROUTE],
    NONE,
    "Live upgraded WebSocket connections, counted at scrape time."
);
metric!(
    CONNECTION_DURATION_SECONDS,
    "websocket_server_connection_duration_seconds",
    "websocket.server.connection_duration",
    "s",
    Histogram,
    [ROUTE],
    CONNECTION_DURATION_BUCKETS,
    "Lifetime of a WebSocket connection, from the completed upgrade to its end."
);
metric!(
    FIRST_PAYLOAD_LATENCY_SECONDS,
    "websocket_server_first_payload_latency_seconds",
    "websocket.server.first_payload_latency",
    "s",
    Histogram,
    [ROUTE],
    LATENCY_BUCKETS,
    "Time from the completed upgrade to the first data message the server sends."
);
metric!(
    CONNECTIONS_WITHOUT_PAYLOAD_TOTAL,
    "websocket_server_connections_without_payload_total",
    "websocket.server.connections_without_payload",
    "{connection}",
    Counter,
    [ROUTE],
    NONE,
    "Connections that closed before the server sent any data message."
);
metric!(
    MESSAGES_TOTAL,
    "websocket_server_messages_total",
    "websocket.server.messages",
    "{message}",
    Counter,
    [ROUTE, DIRECTION, FRAME_TYPE],
    NONE,
    "WebSocket messages by direction (receive/transmit) and frame type."
);
metric!(
    PAYLOAD_BYTES_TOTAL,
    "websocket_server_payload_bytes_total",
    "websocket.server.payload",
    "By",
    Counter,
    [ROUTE, DIRECTION],
    NONE,
    "Payload bytes of text and binary messages, counted as they flow."
);
metric!(CLOSES_TOTAL, "websocket_server_closes_total", "websocket.server.closes", "{close}", Counter,
    [ROUTE, INITIATOR, CLOSE_CODE], NONE,
    "Connection ends by initiator (client/server/none) and close code; no close frame counts as 1006/none.");
metric!(
    OUTBOUND_QUEUE_MESSAGES,
    "websocket_server_outbound_queue_messages",
    "websocket.server.outbound_queue.messages",
    "{message}",
    Gauge,
    [ROUTE],
    NONE,
    "Messages waiting in outbound queues, summed over live connections at scrape time."
);
metric!(
    OUTBOUND_QUEUE_DEPTH,
    "websocket_server_outbound_queue_depth",
    "websocket.server.outbound_queue.depth",
    "{message}",
    Histogram,
    [ROUTE],
    MESSAGE_COUNT_BUCKETS,
    "Outbound queue depth of a connection, sampled at each enqueue."
);
metric!(
    SLOW_CONSUMERS,
    "websocket_server_slow_consumers",
    "websocket.server.slow_consumers",
    "{connection}",
    Gauge,
    [ROUTE],
    NONE,
    "Live connections whose outbound queue is above its high-water mark."
);
metric!(
    OUTBOUND_OVERFLOWS_TOTAL,
    "websocket_server_outbound_overflows_total",
    "websocket.server.outbound_overflows",
    "{overflow}",
    Counter,
    [ROUTE, ACTION],
    NONE,
    "Outbound queue overflows by action taken (drop/disconnect)."
);
metric!(
    SEQUENCER_LAG_MESSAGES,
    "websocket_server_sequencer_lag_messages",
    "websocket.server.sequencer_lag.messages",
    "{message}",
    Histogram,
    [ROUTE],
    MESSAGE_COUNT_BUCKETS,
    "Head sequence minus the sequence of the message being sent, at send."
);
metric!(
    SEQUENCER_LAG_SECONDS,
    "websocket_server_sequencer_lag_seconds",
    "websocket.server.sequencer_lag",
    "s",
    Histogram,
    [ROUTE],
    LATENCY_BUCKETS,
    "Time from a message's publication to its socket write."
);
metric!(
    PING_RTT_SECONDS,
    "websocket_server_ping_rtt_seconds",
    "websocket.server.ping_rtt",
    "s",
    Histogram,
    [ROUTE],
    LATENCY_BUCKETS,
    "Round-trip time of server heartbeat pings."
);
metric!(
    HEARTBEAT_TIMEOUTS_TOTAL,
    "websocket_server_heartbeat_timeouts_total",
    "websocket.server.heartbeat_timeouts",
    "{connection}",
    Counter,
    [ROUTE],
    NONE,
    "Connections closed because the peer missed the configured number of pongs."
);

/// The middleware's metrics, in documentation order.
pub const SERVER_METRICS: &[&MetricDef] = &[
    UPGRADES_TOTAL,
    UPGRADE_DURATION_SECONDS,
    ACTIVE_CONNECTIONS,
    CONNECTION_DURATION_SECONDS,
    FIRST_PAYLOAD_LATENCY_SECONDS,
    CONNECTIONS_WITHOUT_PAYLOAD_TOTAL,
    MESSAGES_TOTAL,
    PAYLOAD_BYTES_TOTAL,
    CLOSES_TOTAL,
    OUTBOUND_QUEUE_MESSAGES,
    OUTBOUND_QUEUE_DEPTH,
    SLOW_CONSUMERS,
    OUTBOUND_OVERFLOWS_TOTAL,
    SEQUENCER_LAG_MESSAGES,
    SEQUENCER_LAG_SECONDS,
    PING_RTT_SECONDS,
    HEARTBEAT_TIMEOUTS_TOTAL,
];

// --- resume and replay, reported by the application (`RouteHandle::record_resume`) ---
// A self-contained block: the families, their list and their documentation title.
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
const RESUME_TITLE: &str = "Resume and replay (reported by the application)";
// --- end of the resume and replay block ---

// --- prober: canaries held by `wsmon-probe daemon` ---
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
    CANARY_CLOSES_TOTAL,
    CANARY_HEARTBEAT_RTT_SECONDS,
    CANARY_HEAD_LAG_MESSAGES,
    CANARY_LAST_MESSAGE_AGE_SECONDS,
    CANARY_FAILURES_TOTAL,
];

// --- the exporters' own health ---
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

// --- prober: one on-demand check at `wsmon-probe daemon`'s /probe (blackbox_exporter style) ---
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

/// Every metric family wsmon can export.
pub fn all() -> impl Iterator<Item = &'static MetricDef> {
    SERVER_METRICS
        .iter()
        .chain(RESUME_METRICS.iter())
        .chain(CANARY_METRICS.iter())
        .chain(PROBE_METRICS.iter())
        .chain(EXPORTER_METRICS.iter())
        .copied()
}

/// Looks a metric up by its Prometheus name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    all().find(|m| m.name == name)
}

/// Renders the catalog as the Markdown tables of `docs/metrics.md`.
pub fn markdown_tables() -> String {
    let mut out = String::new();
    for (title, defs) in [
        ("Middleware (`wsmon`)", SERVER_METRICS),
        (RESUME_TITLE, RESUME_METRICS),
        ("Prober canaries (`wsmon-probe daemon`)", CANARY_METRICS),
        ("Prober on-demand checks (`/probe`)", PROBE_METRICS),
        ("Exporters", EXPORTER_METRICS),
    ] {
        out.push_str(&format!("## {title}\n\n"));
        out.push_str("| name | type | labels | OTel name (unit) | help |\n|---|---|---|---|---|\n");
        for m in defs {
            out.push_str(&format!(
                "| `{}` | {} | {} | `{}` ({}) | {} |\n",
                m.name,
                m.kind.as_str(),
                m.labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                m.otel_name,
                m.unit,
                m.help
            ));
        }
        out.push('\n');
    }
    out
}

/// The Prometheus name the OpenTelemetry Collector's Prometheus exporter derives from an OTel
/// instrument (dots to underscores, a unit suffix, `_total` on monotonic sums). The catalog
/// chooses `otel_name` and `unit` so that this yields `name` exactly.
pub fn prometheus_name_from_otel(def: &MetricDef) -> String {
    let mut name = def.otel_name.replace('.', "_");
    let suffix = match def.unit {
        "s" => "seconds",
        "By" => "bytes",
        "1" => "ratio",
        _ => "", // `{annotations}` and empty units add nothing
    };
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push('_');
        name.push_str(suffix);
    }
    if def.kind == Kind::Counter {
        name.push_str("_total");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_builds_its_prometheus_family() {
        for m in all() {
            match m.kind {
                Kind::Counter if m.labels.is_empty() => drop(m.int_counter()),
                Kind::Counter => drop(m.int_counter_vec()),
                Kind::Gauge => drop(m.gauge_vec()),
                Kind::Histogram => drop(m.histogram_vec()),
            }
        }
    }

    #[test]
    fn otel_names_translate_to_the_catalog_names() {
        for m in all() {
            assert_eq!(prometheus_name_from_otel(m), m.name, "{}", m.otel_name);
        }
    }

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
}
