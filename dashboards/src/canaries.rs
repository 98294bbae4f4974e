//! *WebSocket canaries*: per canary of `wsmon-probe daemon`, health, end-to-end freshness
//! against the SLO, connect phases, stream integrity, reconnects and closes, resumes and recycles. New rows go at
//! the end, so that panel ids stay stable.

use wsmon_catalog::canary as m;
use wsmon_catalog::label::{CLOSE_CODE, OUTCOME, PHASE, REASON};

use crate::config::Config;
use crate::dashboard::{Dashboard, Row};
use crate::panel::{Panel, Unit};
use crate::promql::{legend_of, max, over_one, sum, threshold, Queries};

/// The canary dashboard.
pub fn dashboard() -> Dashboard {
    let cfg = Config::canaries();
    let q = Queries::new(&cfg);
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
