//! *WebSocket server*: the five triage rows (runbook/five-panels.md), then heartbeats and
//! traffic. New rows go at the end, so that panel ids stay stable.

use wsmon_catalog::label::{
    ACTION, CLOSE_CODE, DIRECTION, FRAME_TYPE, INITIATOR, OUTCOME, STATUS_CODE,
};
use wsmon_catalog::server as m;

use crate::config::Config;
use crate::dashboard::{Dashboard, Row};
use crate::panel::{Panel, Unit};
use crate::promql::{legend_of, max, over_one, sum, threshold, Queries};

/// The server dashboard.
pub fn dashboard() -> Dashboard {
    let cfg = Config::server();
    let q = Queries::new(&cfg);
    let route = q.scope();
    let by_route = [route];
    let ts = Panel::timeseries;
    Dashboard::new(cfg.clone(), "wsmon-websocket-server", "WebSocket server")
        .describe(
            "wsmon middleware: the five triage panels (connections, upgrades, closes, first \
             payload, backpressure) plus heartbeats. Runbook: runbook/five-panels.md.",
        )
        .row(Row::new("1. Connections").line([
            ts("Active connections", Unit::Count)
                .describe("Live upgraded connections, counted at scrape.")
                .query(sum(&by_route, q.series(m::ACTIVE_CONNECTIONS)), q.legend("")),
            ts("Connections opened and closed", Unit::PerSecond)
                .describe(
                    "Opened = accepted upgrades per second; closed = connection ends per second \
                     (any code).",
                )
                .query(
                    sum(&by_route, q.rate(q.series(m::UPGRADES_TOTAL).with(OUTCOME, "accepted"))),
                    q.legend("opened"),
                )
                .query(sum(&by_route, q.rate(q.series(m::CLOSES_TOTAL))), q.legend("closed")),
            ts("Connection lifetime", Unit::Seconds)
                .describe(
                    "How long connections live. A collapse of p50 with a spike in opened/s is a \
                     reconnect storm.",
                )
                .queries(q.quantiles(m::CONNECTION_DURATION_SECONDS, &[0.5, 0.99])),
        ]))
        .row(Row::new("2. Upgrades (RED)").line([
            ts("Upgrade rate by outcome", Unit::RequestsPerSecond).query(
                sum(&[OUTCOME], q.rate(q.series(m::UPGRADES_TOTAL))),
                legend_of(&[OUTCOME]),
            ),
            ts("Upgrade rejection ratio by status", Unit::Ratio)
                .describe(
                    "403 = origin refused, 400 = not a valid upgrade, 429/503 = shed by a proxy \
                     or the app.",
                )
                .query(
                    over_one(
                        sum(
                            &[STATUS_CODE],
                            q.rate(q.series(m::UPGRADES_TOTAL).with(OUTCOME, "rejected")),
                        ),
                        sum(&[], q.rate(q.series(m::UPGRADES_TOTAL))),
                    ),
                    "HTTP {{status_code}}",
                )
                .query(
                    max(
                        &by_route,
                        q.recorded("instance_route:websocket_server_upgrade_rejections:ratio_rate5m"),
                    ),
                    q.legend("5m ratio (alerted)"),
                )
                .threshold(threshold("upgrade_rejection_ratio"), "threshold"),
            ts("Handshake duration", Unit::Seconds)
                .describe("Time to the 101 response of accepted upgrades.")
                .queries(q.quantiles(m::UPGRADE_DURATION_SECONDS, &[0.5, 0.9, 0.99])),
        ]))
        .row(Row::new("3. Closes").line([
            ts("Closes by code and initiator", Unit::PerSecond)
                .describe(
                    "1006 = no close frame (network event, crash, LB idle timeout); 1013 = \
                     evicted (slow consumer); 1009 = message too big; 1001 = going away \
                     (deploys). See runbook/close-codes.md.",
                )
                .query(
                    sum(&[CLOSE_CODE, INITIATOR], q.rate(q.series(m::CLOSES_TOTAL))),
                    legend_of(&[CLOSE_CODE, INITIATOR]),
                ),
            ts("Abnormal close (1006) ratio", Unit::Ratio)
                .query(
                    max(
                        &by_route,
                        q.recorded("instance_route:websocket_server_abnormal_closes:ratio_rate5m"),
                    ),
                    q.legend("1006 share"),
                )
                .threshold(threshold("abnormal_close_ratio"), "threshold"),
        ]))
        .row(Row::new("4. First payload").line([
            ts("First-payload latency", Unit::Seconds)
                .describe(
                    "Upgrade to the first data message the server sends: how long a new client \
                     waits for a snapshot.",
                )
                .queries(q.quantiles(m::FIRST_PAYLOAD_LATENCY_SECONDS, &[0.5, 0.9, 0.99]))
                .threshold(threshold("first_payload_p99_seconds"), "p99 threshold"),
            ts("Connections closed without a payload", Unit::PerSecond)
                .describe(
                    "Clients that gave up before they got anything: often a stuck snapshot or \
                     auth path.",
                )
                .query(
                    sum(&by_route, q.rate(q.series(m::CONNECTIONS_WITHOUT_PAYLOAD_TOTAL))),
                    q.legend(""),
                ),
        ]))
        .row(
            Row::new("5. Backpressure")
                .line([
                    ts("Outbound queue", Unit::Count)
                        .query(
                            sum(&by_route, q.series(m::OUTBOUND_QUEUE_MESSAGES)),
                            q.legend("queued messages"),
                        )
                        .query(
                            q.quantile(0.99, &by_route, m::OUTBOUND_QUEUE_DEPTH),
                            q.legend("p99 depth at enqueue"),
                        ),
                    ts("Slow consumers", Unit::Count)
                        .describe("Connections above their queue's high-water mark right now.")
                        .query(sum(&by_route, q.series(m::SLOW_CONSUMERS)), q.legend("")),
                    ts("Outbound overflows", Unit::PerSecond)
                        .describe(
                            "drop = messages discarded by the overflow policy; disconnect = \
                             consumers evicted with 1013.",
                        )
                        .query(
                            sum(&[route, ACTION], q.rate(q.series(m::OUTBOUND_OVERFLOWS_TOTAL))),
                            format!("{} {}", legend_of(&[ACTION]), q.legend("")),
                        ),
                ])
                .line([
                    ts("Sequencer lag (messages)", Unit::Count)
                        .describe("Head sequence minus the sequence being written, at the write.")
                        .queries(q.quantiles(m::SEQUENCER_LAG_MESSAGES, &[0.5, 0.99])),
                    ts("Sequencer lag (seconds)", Unit::Seconds)
                        .describe("Publication to socket write.")
                        .queries(q.quantiles(m::SEQUENCER_LAG_SECONDS, &[0.5, 0.99]))
                        .threshold(threshold("sequencer_lag_p99_seconds"), "p99 threshold"),
                ]),
        )
        .row(
            Row::new("Heartbeats and traffic")
                .line([
                    ts("Ping RTT", Unit::Seconds)
                        .queries(q.quantiles(m::PING_RTT_SECONDS, &[0.5, 0.99])),
                    ts("Heartbeat timeouts", Unit::PerSecond)
                        .describe("Peers cut off after missing pongs: half-open connections.")
                        .query(
                            sum(&by_route, q.rate(q.series(m::HEARTBEAT_TIMEOUTS_TOTAL))),
                            q.legend(""),
                        ),
                    ts("Messages by direction and frame type", Unit::PerSecond).query(
                        sum(&[DIRECTION, FRAME_TYPE], q.rate(q.series(m::MESSAGES_TOTAL))),
                        legend_of(&[DIRECTION, FRAME_TYPE]),
                    ),
                ])
                .line([ts("Payload throughput", Unit::BytesPerSecond)
                    .height(6)
                    .query(
                        sum(&[DIRECTION], q.rate(q.series(m::PAYLOAD_BYTES_TOTAL))),
                        legend_of(&[DIRECTION]),
                    )]),
        )
}
