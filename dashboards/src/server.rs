//! *WebSocket server*: the five triage rows (runbook/five-panels.md), then heartbeats and
//! traffic, resume and replay, and connection lifetimes. New rows go at the end, so that
//! panel ids stay stable.

use wsmon_catalog::label::{
    ACTION, CLOSE_CODE, DIRECTION, FRAME_TYPE, INITIATOR, OUTCOME, STATUS_CODE,
};
use wsmon_catalog::{resume, server as m};

use crate::config::Config;
use crate::dashboard::{Dashboard, Row};
use crate::panel::{Panel, Unit};
use crate::promql::{legend_of, max, over_one, sum, threshold, Queries, LE};

/// Per-route series of a recorded ratio, as its alert reads it, and that alert's threshold.
trait Alerted {
    fn alerted(self, q: &Queries, rule: &str, legend: &str, threshold_name: &str) -> Self;
}

impl Alerted for Panel {
    fn alerted(self, q: &Queries, rule: &str, legend: &str, threshold_name: &str) -> Self {
        self.query(max(&[q.scope()], q.recorded(rule)), q.legend(legend))
            .threshold(threshold(threshold_name), "threshold")
    }
}

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
             payload, backpressure) plus heartbeats and resumes. Runbook: runbook/five-panels.md.",
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
                    format!("HTTP {}", legend_of(&[STATUS_CODE])),
                )
                .alerted(&q, "instance_route:websocket_server_upgrade_rejections:ratio_rate5m", "5m ratio (alerted)", "upgrade_rejection_ratio"),
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
                .alerted(&q, "instance_route:websocket_server_abnormal_closes:ratio_rate5m", "1006 share", "abnormal_close_ratio"),
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
        .row(Row::new("Resume and replay").line([
            ts("Resumes by outcome", Unit::PerSecond)
                .describe(
                    "Reconnects that asked to resume after a sequence (GET /ws?from=N). hit = \
                     everything after it was replayed; miss = part of it was no longer retained.",
                )
                .query(
                    sum(&[route, OUTCOME], q.rate(q.series(resume::RESUMES_TOTAL))),
                    format!("{} {}", legend_of(&[OUTCOME]), q.legend("")),
                ),
            ts("Resume miss ratio", Unit::Ratio)
                .describe(
                    "Share of resumes over 15m that missed, as WebSocketResumeMissesHigh judges \
                     it: clients come back after longer gaps than the history retains.",
                )
                .alerted(&q, "instance_route:websocket_server_resume_misses:ratio_rate15m", "15m miss ratio (alerted)", "resume_miss_ratio"),
            ts("Replayed messages", Unit::PerSecond)
                .describe(
                    "Messages sent from history to resuming connections before they went live: \
                     the catch-up load a reconnect wave puts on the server.",
                )
                .query(
                    sum(&by_route, q.rate(q.series(resume::REPLAYED_MESSAGES_TOTAL))),
                    q.legend(""),
                ),
            ts("Messages lost to resume misses", Unit::Count)
                .describe(
                    "Messages older than the retained history that resuming clients asked for, \
                     over the last hour, as WebSocketReplayGaps counts them: each such client \
                     was told of its gap.",
                )
                .query(
                    sum(
                        &by_route,
                        q.increase_over(q.series(resume::RESUME_MISSED_MESSAGES_TOTAL), "1h"),
                    ),
                    q.legend("last 1h"),
                )
                .threshold(threshold("replay_gap_messages_per_1h"), "threshold"),
        ]))
        .row(Row::new("Connection lifetimes").line([
            ts("Share of connection ends per lifetime bucket", Unit::Ratio)
                .describe(
                    "Of the connections that ended over 5m, the share whose lifetime fell in \
                     each bucket (legend: its upper bound). One bucket near 100% with 1006 \
                     closes is a hop's idle timeout cutting quiet streams, as \
                     WebSocketConnectionsCutAtFixedLifetime judges it; with clean closes, a \
                     fixed session length.",
                )
                .query(
                    max(
                        &[route, LE],
                        q.recorded("instance_route_le:websocket_server_connection_lifetimes:share_rate5m"),
                    ),
                    format!("up to {{{{{LE}}}}} s {}", q.legend("")),
                )
                .threshold(threshold("lifetime_cluster_share"), "threshold"),
        ]))
}
