//! The server middleware's families (`websocket_server_*`), recorded by the `wsmon` crate.

use crate::buckets::{CONNECTION_DURATION_BUCKETS, LATENCY_BUCKETS, MESSAGE_COUNT_BUCKETS, NONE};
use crate::label::{
    ACTION, CLOSE_CODE, DIRECTION, FRAME_TYPE, INITIATOR, OUTCOME, ROUTE, STATUS_CODE,
};
use crate::MetricDef;

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
