//! `demo`: the example feed in-process, a daemon holding one fully-equipped canary against it,
//! and, by default, one fault at a time injected through the feed's public fault controls
//! ([`FAULTS`]) with a line when it starts and one when wsmon caught it; `--healthy` prints a
//! live line per canary instead. Needs no config file.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{
    CanaryConfig, Config, Defaults, HeadCheckConfig, HeartbeatConfig, HttpPublishConfig, MatchRule,
    PublishConfig, PublishVia, SequenceConfig, TargetUrl, TimeUnit, TimestampConfig,
};
use crate::failure::FailureReason;
use crate::record::recorder::{CanaryRecorder, CanaryState, CanaryStatus};
use prometheus::Registry;
use wsmon_catalog as catalog;
use wsmon_feed::faults::Faults;

/// The canary the demo holds against a feed at `feed`.
pub fn feed_canary(feed: SocketAddr) -> CanaryConfig {
    let url = TargetUrl::parse(&format!("ws://{feed}/ws")).expect("valid URL");
    let mut c = CanaryConfig::new("feed", url, &Defaults::default());
    c.first_payload_within = Duration::from_secs(2);
    c.sequence = Some(SequenceConfig {
        pointer: "/seq".into(),
        reorder_window: 4,
    });
    c.timestamp = Some(TimestampConfig {
        pointer: "/ts".into(),
        unit: TimeUnit::Millis,
    });
    c.max_silence = Some(Duration::from_secs(2));
    c.heartbeat = Some(HeartbeatConfig {
        every: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
    });
    c.head_check = Some(Box::new(HeadCheckConfig {
        send: r#"{"op":"head"}"#.into(),
        pointer: "/seq".into(),
        reply: Some(MatchRule {
            pointer: "/type".into(),
            equals: "head".into(),
        }),
        every: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        max_lag: None,
    }));
    c.publish = Some(Box::new(PublishConfig {
        via: PublishVia::Http(HttpPublishConfig {
            url: TargetUrl::parse(&format!("http://{feed}/publish")).expect("valid URL"),
            method: "POST".into(),
            body: r#"{"type":"canary","nonce":"{{nonce}}"}"#.into(),
            headers: Vec::new(),
        }),
        every: Duration::from_secs(1),
        match_pointer: "/nonce".into(),
        timeout: Duration::from_secs(2),
    }));
    c
}

/// The demo's whole config: one canary, served at `listen`.
pub fn config(feed: SocketAddr, listen: SocketAddr) -> Config {
    Config {
        listen,
        defaults: Defaults::default(),
        canaries: vec![feed_canary(feed)],
    }
}

fn ms(count: u64, secs: f64) -> String {
    if count == 0 {
        "    -   ".into()
    } else {
        format!("{:>6.1}ms", secs * 1e3)
    }
}

/// One line per canary for the live view.
pub fn summary_line(s: &CanaryStatus, now: Instant) -> String {
    let e2e = s.e2e.summary();
    let fresh = s.freshness.summary();
    let rtt = s.heartbeat_rtt.summary();
    let age = s
        .last_message_age(now)
        .map_or("never".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    let last_failure = s.recent_failures.back().map_or(String::new(), |f| {
        format!("  last failure: {}", f.fault.reason)
    });
    format!(
        "{name:<8} {state:<10} msgs {msgs:>6}  e2e p50 {e2e50} p99 {e2e99}  fresh p50 {f50}  rtt {rtt}  lag {lag:>3}  gaps {gaps}  reconnects {rc}  last msg {age}{last_failure}",
        name = s.name,
        state = s.state.as_str(),
        msgs = s.messages,
        e2e50 = ms(e2e.count, e2e.p50),
        e2e99 = ms(e2e.count, e2e.p99),
        f50 = ms(fresh.count, fresh.p50),
        rtt = ms(rtt.count, rtt.p50),
        lag = s.head_lag.map_or("-".into(), |l| l.to_string()),
        gaps = s.sequence.gaps,
        rc = s.reconnects,
    )
}

/// How a fault shows up in wsmon's own signals.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    /// The canary recorded a failure with this reason.
    Reason(FailureReason),
    /// The canary's stream ended with this close code (`closed` reason).
    CloseCode(u16),
    /// The feed's middleware counter `name` (with `label`, if any) went up.
    ServerCounter(&'static str, Option<(&'static str, &'static str)>),
}

impl Signal {
    /// How the demo names it.
    pub fn describe(&self) -> String {
        match self {
            Signal::Reason(r) => format!("canary reason `{}`", r.as_str()),
            Signal::CloseCode(c) => format!("canary close code {c}"),
            Signal::ServerCounter(name, None) => format!("server metric {name}"),
            Signal::ServerCounter(name, Some((k, v))) => {
                format!("server metric {name}{{{k}=\"{v}\"}}")
            }
        }
    }
}

/// One fault the demo injects through the feed's public controls, and how wsmon should
/// catch it.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// Short name, for the lines and the summary.
    pub name: &'static str,
    /// What the feed does, for the start line.
    pub what: &'static str,
    /// The runbook page to read when it happens.
    pub runbook: &'static str,
    /// The signals that count as caught, checked in this order.
    pub signals: &'static [Signal],
    inject: fn(&Faults),
    undo: fn(&Faults),
}

/// Bigger than the canary's `max_message_bytes` (1 MiB by default): refused with 1009.
const OVERSIZED_BYTES: usize = 2 << 20;
/// Ten times a default outbound queue (1024 messages), sent faster than any consumer drains.
const BURST: usize = 10_240;

/// Every fault the demo injects, in order.
pub const FAULTS: &[FaultPlan] = &[
    FaultPlan {
        name: "stall",
        what: "the feed stops sending; the sockets stay open",
        runbook: "runbook/WebSocketCanaryStalled.md",
        signals: &[
            Signal::Reason(FailureReason::Stall),
            Signal::Reason(FailureReason::HeadTimeout),
        ],
        inject: |f| f.stall(true),
        undo: |f| f.stall(false),
    },
    FaultPlan {
        name: "sequence gap",
        what: "the feed skips 25 sequence numbers",
        runbook: "runbook/WebSocketCanarySequenceGaps.md",
        signals: &[Signal::Reason(FailureReason::SequenceGap)],
        inject: |f| {
            f.skip_sequences(25);
        },
        undo: |_| {},
    },
    FaultPlan {
        name: "duplicates",
        what: "the feed resends its newest 3 messages",
        runbook: "runbook/WebSocketCanarySequenceGaps.md",
        signals: &[Signal::Reason(FailureReason::SequenceDuplicate)],
        inject: |f| {
            f.duplicate_last(3);
        },
        undo: |_| {},
    },
    FaultPlan {
        name: "first-payload delay",
        what: "new connections wait 4s for their first message (current ones are dropped)",
        runbook: "runbook/WebSocketFirstPayloadLatencyHigh.md",
        signals: &[Signal::Reason(FailureReason::FirstPayloadTimeout)],
        inject: |f| {
            f.set_first_payload_delay(Duration::from_secs(4));
            f.drop_connections();
        },
        undo: |f| f.set_first_payload_delay(Duration::ZERO),
    },
    FaultPlan {
        name: "tcp drop",
        what: "the feed drops every connection without a close frame",
        runbook: "runbook/WebSocketAbnormalClosesHigh.md",
        signals: &[
            Signal::CloseCode(1006),
            Signal::ServerCounter(catalog::CLOSES_TOTAL.name, Some(("close_code", "1006"))),
        ],
        inject: |f| f.drop_connections(),
        undo: |_| {},
    },
    FaultPlan {
        name: "slow consumer",
        what: "the feed bursts 10240 messages at once, more than a queue holds",
        runbook: "runbook/WebSocketSlowConsumersSustained.md",
        signals: &[
            Signal::CloseCode(1013),
            Signal::ServerCounter(catalog::OUTBOUND_OVERFLOWS_TOTAL.name, None),
        ],
        inject: |f| {
            f.burst(BURST);
        },
        undo: |_| {},
    },
    FaultPlan {
        name: "oversized message",
        what: "the feed sends one 2 MiB message (the canary allows 1 MiB)",
        runbook: "runbook/close-codes.md",
        signals: &[
            Signal::Reason(FailureReason::FrameTooBig),
            Signal::Reason(FailureReason::MessageTooBig),
            Signal::CloseCode(1009),
        ],
        inject: |f| {
            f.send_oversized(OVERSIZED_BYTES);
        },
        undo: |_| {},
    },
    FaultPlan {
        name: "publish blackhole",
        what: "POST /publish answers 200 but delivers nothing; ticks still flow",
        runbook: "runbook/WebSocketCanaryFreshnessBudgetBurnFast.md",
        signals: &[Signal::Reason(FailureReason::PublishTimeout)],
        inject: |f| f.blackhole_publishes(true),
        undo: |f| f.blackhole_publishes(false),
    },
];

/// The counters a detection compares against, read just before a fault starts.
#[derive(Debug)]
struct Baseline {
    reasons: Vec<(FailureReason, u64)>,
    failures: u64,
    server: Vec<f64>,
}

fn server_counter(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        .map(|m| m.get_counter().value())
        .sum()
}

fn server_counters(plan: &FaultPlan, registry: &Registry) -> Vec<f64> {
    plan.signals
        .iter()
        .map(|s| match s {
            Signal::ServerCounter(name, label) => server_counter(registry, name, *label),
            _ => 0.0,
        })
        .collect()
}

fn failures(s: &CanaryStatus) -> u64 {
    s.series.failures.0.iter().map(|(_, n)| n).sum()
}

fn baseline(plan: &FaultPlan, s: &CanaryStatus, registry: &Registry) -> Baseline {
    Baseline {
        reasons: plan
            .signals
            .iter()
            .filter_map(|sig| match sig {
                Signal::Reason(r) => Some((*r, s.series.failures.get(r.as_str()))),
                _ => None,
            })
            .collect(),
        failures: failures(s),
        server: server_counters(plan, registry),
    }
}

/// The first of `plan`'s signals that moved since `base`.
fn detected(
    plan: &FaultPlan,
    base: &Baseline,
    s: &CanaryStatus,
    registry: &Registry,
) -> Option<Signal> {
    let server = server_counters(plan, registry);
    plan.signals.iter().enumerate().find_map(|(i, sig)| {
        let fired = match sig {
            Signal::Reason(r) => base
                .reasons
                .iter()
                .any(|(b, n)| b == r && s.series.failures.get(r.as_str()) > *n),
            // A stream that ended since the fault began, with this code.
            Signal::CloseCode(c) => failures(s) > base.failures && s.close_code == Some(*c),
            Signal::ServerCounter(..) => server[i] > base.server[i],
        };
        fired.then_some(*sig)
    })
}

/// How long a fault may take to be caught before it counts as missed.
pub const DETECTION_LIMIT: Duration = Duration::from_secs(15);
/// Healthy traffic between two faults.
pub const HEALTHY_PAUSE: Duration = Duration::from_secs(3);
/// How often the demo reads the signals.
const POLL: Duration = Duration::from_millis(50);

/// What became of one injected fault.
#[derive(Debug, Clone)]
pub enum Result {
    /// Caught by `signal`, `after` the injection.
    Detected { signal: Signal, after: Duration },
    /// Not caught within [`DETECTION_LIMIT`].
    Missed,
    /// The demo was stopped first.
    Interrupted,
}

/// One injection and its result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: &'static FaultPlan,
    pub round: usize,
    pub result: Result,
}

fn stamp(started: Instant) -> String {
    format!("[{:>5.1}s]", started.elapsed().as_secs_f64())
}

/// Whether `recorder`'s canary is up and receiving.
fn healthy(recorder: &CanaryRecorder) -> bool {
    recorder.with_status(|s| {
        s.state == CanaryState::Up
            && s.last_message_age(Instant::now())
                .is_some_and(|a| a < Duration::from_secs(1))
    })
}

/// Injects every fault of [`FAULTS`] in turn, round after round, until `rounds` are done,
/// `stop` is cancelled or too little of `end` remains for another fault; prints a line when each starts and one
/// when wsmon's signals catch it. Detection reads only the canary's recorder and the feed's
/// metrics `registry`, never the injector.
pub async fn run_faults(
    recorder: &CanaryRecorder,
    faults: &Faults,
    registry: &Registry,
    started: Instant,
    end: Option<Instant>,
    rounds: Option<usize>,
    stop: &CancellationToken,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let total = FAULTS.len();
    for round in 1..=rounds.unwrap_or(usize::MAX) {
        for (i, plan) in FAULTS.iter().enumerate() {
            // A healthy pause first: the canary up and receiving for HEALTHY_PAUSE.
            let mut healthy_since = None;
            let settle_limit = Instant::now() + Duration::from_secs(30);
            loop {
                let now = Instant::now();
                if healthy(recorder) {
                    let since = *healthy_since.get_or_insert(now);
                    if now - since >= HEALTHY_PAUSE {
                        break;
                    }
                } else {
                    healthy_since = None;
                }
                if now > settle_limit {
                    println!(
                        "{} the canary is not healthy yet; injecting anyway",
                        stamp(started)
                    );
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.cancelled() => return outcomes,
                }
            }
            if end.is_some_and(|e| Instant::now() + DETECTION_LIMIT > e) {
                // Not enough time left to catch another one: idle until the end.
                stop.cancelled().await;
                return outcomes;
            }
            let base = recorder.with_status(|s| baseline(plan, s, registry));
            println!(
                "{} fault {}/{total} {:<20} {}",
                stamp(started),
                i + 1,
                plan.name,
                plan.what
            );
            let injected = Instant::now();
            (plan.inject)(faults);
            let result = loop {
                if let Some(signal) = recorder.with_status(|s| detected(plan, &base, s, registry)) {
                    let after = injected.elapsed();
                    println!(
                        "{}   caught {:<20} by {} in {:.1}s -> read {}",
                        stamp(started),
                        plan.name,
                        signal.describe(),
                        after.as_secs_f64(),
                        plan.runbook
                    );
                    break Result::Detected { signal, after };
                }
                if injected.elapsed() > DETECTION_LIMIT {
                    println!(
                        "{}   MISSED {:<20} nothing caught it within {:.0}s",
                        stamp(started),
                        plan.name,
                        DETECTION_LIMIT.as_secs_f64()
                    );
                    break Result::Missed;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.cancelled() => break Result::Interrupted,
                }
            };
            (plan.undo)(faults);
            let interrupted = matches!(result, Result::Interrupted);
            outcomes.push(Outcome {
                plan,
                round,
                result,
            });
            if interrupted {
                return outcomes;
            }
        }
    }
    outcomes
}

/// The closing table: each injection, whether it was caught, how fast and by what.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<20} {:<9} {:>6}  signal",
        "round", "fault", "detected", "time"
    );
    let mut caught = 0;
    let mut judged = 0;
    for o in outcomes {
        let (detected, time, signal) = match &o.result {
            Result::Detected { signal, after } => {
                caught += 1;
                judged += 1;
                (
                    "yes",
                    format!("{:.1}s", after.as_secs_f64()),
                    signal.describe(),
                )
            }
            Result::Missed => {
                judged += 1;
                ("NO", "-".into(), String::new())
            }
            Result::Interrupted => ("stopped", "-".into(), String::new()),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<20} {:<9} {:>6}  {}",
            o.round, o.plan.name, detected, time, signal
        );
    }
    if judged == 0 {
        let _ = writeln!(out, "no fault ran to its end (the run stopped first)");
    } else if caught == judged {
        let _ = writeln!(out, "all {judged} injected faults detected");
    } else {
        let _ = writeln!(out, "{caught} of {judged} injected faults detected");
    }
    out
}
