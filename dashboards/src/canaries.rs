//! *WebSocket canaries*: per canary of `wsmon-probe daemon`, health, end-to-end freshness
//! against the SLO, connect phases, stream integrity, reconnects and closes, resumes, the
//! canary's view beside the server's (runbook/which-hop-broke.md), then recycles. New rows go
//! at the end, so that panel ids stay stable.

use wsmon_catalog::canary as m;
use wsmon_catalog::label::{CLOSE_CODE, INITIATOR, OUTCOME, PHASE, REASON, STATUS_CODE};
use wsmon_catalog::server_canary as s;

use crate::config::{Config, SERVICE};
use crate::dashboard::{Dashboard, Row};
use crate::panel::{Panel, Unit};
use crate::promql::{legend_of, max, over_one, sum, threshold, Queries};

/// The canary dashboard.
pub fn dashboard() -> Dashboard {
    let cfg = Config::canaries();
    let q = Queries::new(&cfg);
    // The server's side of the canary connections: its labels are not the canaries'.
    let unfiltered = cfg.unfiltered();
    let server = Queries::new(&unfiltered);
    let by_service = [SERVICE];
    let of_service = |prefix: &str| format!("{prefix} {}", legend_of(&by_service));
    let canary = q.scope();
    let by_canary = [canary];
    let ts = Panel::timeseries;
    // The burn rate of one SLO window: its error ratio over the error budget.
    let burn = |window: &str| {
        let errors = format!("canary:websocket_canary_e2e_slo_errors:ratio_rate{window}");
        (
            over_one(
                max(&by_canary, q.recorded(&errors)),
                format!("(1 - {})", threshold("canary_e2e_slo_objective")),
            ),
            q.legend(&format!("{window} burn")),
        )
    };
    Dashboard::new(
        cfg.clone(),
        "wsmon-websocket-canaries",
        "WebSocket canaries",
    )
    .describe(
        "wsmon-probe daemon: per canary, up/down, end-to-end freshness against the SLO, \
             connect phases, stream integrity and reconnects. Runbook: runbook/README.md.",
    )
    .tag("canary")
    .row(
        Row::new("Health").line([
            Panel::up_down("Canary up")
                .height(6)
                .query(max(&by_canary, q.series(m::CANARY_UP)), q.legend("")),
            ts("Last message age", Unit::Seconds)
                .height(6)
                .describe(
                    "Seconds since the last data message, computed at scrape: the sawtooth of a \
                     healthy stream.",
                )
                .query(
                    max(&by_canary, q.series(m::CANARY_LAST_MESSAGE_AGE_SECONDS)),
                    q.legend(""),
                )
                .threshold(
                    threshold("canary_last_message_age_seconds"),
                    "stall threshold",
                ),
            ts("Failures by reason", Unit::Count).height(6).query(
                sum(
                    &[canary, REASON],
                    q.increase(q.series(m::CANARY_FAILURES_TOTAL)),
                ),
                legend_of(&[canary, REASON]),
            ),
        ]),
    )
    .row(
        Row::new("Freshness (SLO)")
            .line([
                ts("End-to-end freshness vs SLO", Unit::Seconds)
                    .describe(
                        "Publish-to-receive time of nonces the prober published (one clock, \
                             no skew). The SLO line is the latency the objective counts as good.",
                    )
                    .queries(q.quantiles(m::CANARY_E2E_SECONDS, &[0.5, 0.99]))
                    .threshold(threshold("canary_e2e_slo_latency_seconds"), "SLO"),
                ts("Freshness SLO burn rate", Unit::Count)
                    .describe(
                        "1 = spending the error budget exactly at the objective; 14.4 over \
                             1h pages.",
                    )
                    .queries([burn("1h"), burn("6h")]),
            ])
            .line([
                ts("Server-timestamp freshness", Unit::Seconds)
                    .describe(
                        "Receive time minus the message's own timestamp: includes clock \
                             skew between server and prober.",
                    )
                    .queries(q.quantiles(m::CANARY_FRESHNESS_SECONDS, &[0.5, 0.99])),
                ts("Publishes and timeouts", Unit::PerSecond)
                    .query(
                        sum(&by_canary, q.rate(q.series(m::CANARY_PUBLISHES_TOTAL))),
                        q.legend("published"),
                    )
                    .query(
                        sum(
                            &by_canary,
                            q.rate(q.series(m::CANARY_PUBLISH_TIMEOUTS_TOTAL)),
                        ),
                        q.legend("timed out"),
                    ),
            ]),
    )
    .row(
        Row::new("Connect").line([
            ts("First payload", Unit::Seconds)
                .queries(q.quantiles(m::CANARY_FIRST_PAYLOAD_SECONDS, &[0.5, 0.99])),
            ts("Connect phases (p99)", Unit::Seconds)
                .describe("dns, tcp, tls, upgrade: which hop got slow.")
                .query(
                    q.quantile(0.99, &[canary, PHASE], m::CANARY_CONNECT_PHASE_SECONDS),
                    legend_of(&[canary, PHASE]),
                ),
            ts("Heartbeat RTT", Unit::Seconds)
                .queries(q.quantiles(m::CANARY_HEARTBEAT_RTT_SECONDS, &[0.5, 0.99])),
        ]),
    )
    .row(
        Row::new("Stream integrity")
            .line([
                ts("Sequence gaps", Unit::Count).query(
                    sum(
                        &by_canary,
                        q.increase(q.series(m::CANARY_SEQUENCE_GAPS_TOTAL)),
                    ),
                    q.legend(""),
                ),
                ts("Missed messages", Unit::Count).query(
                    sum(
                        &by_canary,
                        q.increase(q.series(m::CANARY_MISSED_MESSAGES_TOTAL)),
                    ),
                    q.legend(""),
                ),
                ts("Duplicates and reorders", Unit::Count)
                    .query(
                        sum(&by_canary, q.increase(q.series(m::CANARY_DUPLICATES_TOTAL))),
                        q.legend("duplicates"),
                    )
                    .query(
                        sum(&by_canary, q.increase(q.series(m::CANARY_REORDERS_TOTAL))),
                        q.legend("reorders"),
                    ),
                ts("Stalls", Unit::Count).query(
                    sum(&by_canary, q.increase(q.series(m::CANARY_STALLS_TOTAL))),
                    q.legend(""),
                ),
            ])
            .line([
                ts("Message rate", Unit::PerSecond).width(8).query(
                    sum(&by_canary, q.rate(q.series(m::CANARY_MESSAGES_TOTAL))),
                    q.legend(""),
                ),
                ts("Head lag", Unit::Count)
                    .width(8)
                    .describe(
                        "Server head minus the last sequence received, at the last head \
                             check.",
                    )
                    .query(
                        max(&by_canary, q.series(m::CANARY_HEAD_LAG_MESSAGES)),
                        q.legend(""),
                    ),
            ]),
    )
    .row(Row::new("Reconnects and closes").line([
        ts("Reconnects by reason", Unit::Count).query(
            sum(
                &[canary, REASON],
                q.increase(q.series(m::CANARY_RECONNECTS_TOTAL)),
            ),
            legend_of(&[canary, REASON]),
        ),
        ts("Closes by code", Unit::Count).query(
            sum(
                &[canary, CLOSE_CODE],
                q.increase(q.series(m::CANARY_CLOSES_TOTAL)),
            ),
            legend_of(&[canary, CLOSE_CODE]),
        ),
    ]))
    .row(Row::new("Resume").line([ts(
        "Resumes by outcome, and replayed messages",
        Unit::Count,
    )
    .describe(
        "Each resumed connection, judged by its first telling message (docs/probe.md#resume): \
         hit, miss, unavailable, failed or interrupted; and the messages replayed to it.",
    )
    .query(
        sum(
            &[canary, OUTCOME],
            q.increase(q.series(m::CANARY_RESUMES_TOTAL)),
        ),
        legend_of(&[canary, OUTCOME]),
    )
    .query(
        sum(
            &by_canary,
            q.increase(q.series(m::CANARY_REPLAYED_MESSAGES_TOTAL)),
        ),
        q.legend("replayed"),
    )]))
    .row(
        Row::new("Canary view vs server view")
            .line([
                ts("Connect failures vs upgrades the server saw", Unit::Count)
                    .describe(
                        "Per service, across every canary (not filtered by the variables). \
                         Canaries failing to connect while the server sees no canary upgrade: \
                         the fault is before the server (DNS, LB, proxy, TLS).",
                    )
                    .query(
                        server.recorded("service:websocket_canary_connect_failures:increase5m").to_string(),
                        of_service("canary connect failures"),
                    )
                    .query(
                        server.recorded("service:websocket_server_canary_upgrades:increase5m").to_string(),
                        of_service("server: canary upgrades"),
                    ),
                ts("Server: canary upgrades by outcome and status", Unit::Count)
                    .describe(
                        "The canaries' upgrades as the server answered them: 400/426 = a hop \
                         dropped the Upgrade headers on the way.",
                    )
                    .query(
                        sum(
                            &[SERVICE, OUTCOME, STATUS_CODE],
                            server.increase(server.series(s::SERVER_CANARY_UPGRADES_TOTAL)),
                        ),
                        legend_of(&[OUTCOME, STATUS_CODE, SERVICE]),
                    ),
                ts("Closes: canary vs server", Unit::Count)
                    .describe(
                        "Canary 1006 while the server closed nothing (or saw 1006 too, no \
                         initiator): the path cut it. A server-initiated error code: the server \
                         closed it.",
                    )
                    .query(
                        sum(&[CLOSE_CODE], q.increase(q.series(m::CANARY_CLOSES_TOTAL))),
                        format!("canary {}", legend_of(&[CLOSE_CODE])),
                    )
                    .query(
                        sum(
                            &[SERVICE, INITIATOR, CLOSE_CODE],
                            server.increase(server.series(s::SERVER_CANARY_CLOSES_TOTAL)),
                        ),
                        format!("server {}", legend_of(&[INITIATOR, CLOSE_CODE, SERVICE])),
                    ),
            ])
            .line([
                ts("Canaries up vs held by the server", Unit::Count)
                    .describe(
                        "The server holding more canary connections than are up: half-open \
                         streams (the canary gave up, the server has not noticed).",
                    )
                    .query(sum(&[], q.series(m::CANARY_UP)), "canaries up")
                    .query(
                        sum(
                            &by_service,
                            server.series(s::SERVER_CANARY_ACTIVE_CONNECTIONS),
                        ),
                        of_service("server holds"),
                    ),
                ts("Users' 1006 share vs threshold", Unit::Ratio)
                    .describe(
                        "All connections minus the canaries', over 10m, as \
                         WebSocketClientNetworksDegraded judges it: high while the canaries are \
                         healthy = the users' own networks.",
                    )
                    .query(
                        server
                            .recorded("service:websocket_server_user_abnormal_closes:ratio_rate10m")
                            .to_string(),
                        of_service("users' 1006 share"),
                    )
                    .threshold(threshold("user_abnormal_close_ratio"), "threshold"),
                ts("First payload p99: canary vs server", Unit::Seconds)
                    .describe(
                        "The canary's wait from its upgrade against the server's from the same \
                         upgrade: the difference is the path back.",
                    )
                    .query(
                        q.quantile(0.99, &[], m::CANARY_FIRST_PAYLOAD_SECONDS),
                        "canary p99",
                    )
                    .query(
                        server.quantile(
                            0.99,
                            &by_service,
                            s::SERVER_CANARY_FIRST_PAYLOAD_LATENCY_SECONDS,
                        ),
                        of_service("server p99"),
                    ),
            ])
            .line([
                ts("Fresh connections vs held stream", Unit::OnOff)
                    .describe(
                        "connect_check (a new connection, first payload, close, every interval) \
                         against the held stream: checks down while the stream is up = new \
                         clients cannot connect (WebSocketNewConnectionsFailing).",
                    )
                    .query(
                        max(&by_canary, q.series(m::CANARY_CONNECT_CHECK_UP)),
                        q.legend("connect check"),
                    )
                    .query(
                        max(&by_canary, q.series(m::CANARY_UP)),
                        q.legend("held stream"),
                    ),
                ts("Connect check failures by reason", Unit::Count).query(
                    sum(
                        &[canary, REASON],
                        q.increase(q.series(m::CANARY_CONNECT_CHECK_FAILURES_TOTAL)),
                    ),
                    legend_of(&[canary, REASON]),
                ),
                ts("Connect check duration", Unit::Seconds)
                    .describe("Start of a fresh connection to its first data message.")
                    .queries(q.quantiles(m::CANARY_CONNECT_CHECK_SECONDS, &[0.5, 0.99])),
            ]),
    )
    .row(Row::new("Recycling").line([
        ts("Recycles by outcome", Unit::Count)
            .describe(
                "Each replacement of the held stream by a new connection (`recycle`, \
                 docs/probe.md#recycling): ok when the new one took over, failed when the old \
                 one was kept. Not counted as reconnects.",
            )
            .query(
                sum(
                    &[canary, OUTCOME],
                    q.increase(q.series(m::CANARY_RECYCLES_TOTAL)),
                ),
                legend_of(&[canary, OUTCOME]),
            ),
        ts("Recycle failures by reason", Unit::Count).query(
            sum(
                &[canary, REASON],
                q.increase(q.series(m::CANARY_RECYCLE_FAILURES_TOTAL)),
            ),
            legend_of(&[canary, REASON]),
        ),
    ]))
}
