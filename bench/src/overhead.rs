//! Benchmark 1, middleware overhead: the broadcast server bare and instrumented (with and
//! without OTLP export), in interleaved runs, each against a separate load process.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::process::Command;

use crate::markdown::Table;
use crate::procs;
use crate::server::{Mode, AA_ROUND as ROUND, BARE, CONTROL};
use crate::summary::{show, Spread};
use crate::wire::{PHASE_FIXED, PHASE_SATURATE};

#[derive(Debug, Clone)]
pub struct Options {
    pub connections: Vec<usize>,
    pub runs: usize,
    pub warmup_secs: f64,
    pub fixed_secs: f64,
    pub saturate_secs: f64,
    /// Offered deliveries per second in the fixed-rate phase, well under capacity.
    pub fixed_deliveries: f64,
}

/// One server run.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub mode: &'static str,
    pub connections: usize,
    pub run: usize,
    /// Saturation phase: messages received per second (its first 0.5 s skipped).
    pub throughput: f64,
    /// Fixed-rate phase: server CPU seconds per million delivered messages.
    pub cpu_per_million: f64,
    /// Fixed-rate phase latency, publish to receive, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    /// OTLP requests the local receiver accepted during the run.
    pub otlp_exports: u64,
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Trial>> {
    let server_bin = procs::sibling("wsmon-bench-server")?;
    let (otlp_url, received) = crate::otlp_sink::spawn().await?;
    let mut trials = Vec::new();
    for &n in &opts.connections {
        for run in 0..opts.runs {
            // Rotate the order each run so no mode always goes first (or last) in a run.
            for k in 0..ROUND.len() {
                let (mode, label) = ROUND[(k + run) % ROUND.len()];
                let exports_before = received.exports.load(Relaxed);
                let mut attempt = 0;
                let trial = loop {
                    attempt += 1;
                    match one(&server_bin, mode, n, opts, &otlp_url).await {
                        Ok(t) => break Some(t),
                        Err(e) if attempt < 2 => {
                            tracing::warn!(error = %format!("{e:#}"), mode = mode.as_str(), n, "retrying a failed run")
                        }
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), mode = mode.as_str(), n, "run failed twice; left out");
                            break None;
                        }
                    }
                };
                if let Some(mut t) = trial {
                    t.run = run;
                    t.mode = label;
                    t.otlp_exports = received.exports.load(Relaxed) - exports_before;
                    if mode == Mode::InstrumentedOtlp && t.otlp_exports == 0 {
                        anyhow::bail!(
                            "an instrumented-otlp run exported nothing to the local receiver"
                        );
                    }
                    eprintln!(
                        "  overhead n={n} run={run} {:<17} {:>9.0} msg/s  {:>6.2} cpu-s/M  p50 {:>6} µs  p99 {:>6} µs  otlp exports {}",
                        t.mode, t.throughput, t.cpu_per_million, t.p50_us, t.p99_us, t.otlp_exports
                    );
                    trials.push(t);
                }
            }
        }
    }
    Ok(trials)
}

async fn one(
    server_bin: &std::path::Path,
    mode: Mode,
    n: usize,
    opts: &Options,
    otlp_url: &str,
) -> anyhow::Result<Trial> {
    let mut server = Command::new(server_bin);
    server.args([
        "--mode",
        mode.as_str(),
        "--connections",
        &n.to_string(),
        "--warmup-secs",
        &opts.warmup_secs.to_string(),
        "--fixed-secs",
        &opts.fixed_secs.to_string(),
        "--saturate-secs",
        &opts.saturate_secs.to_string(),
        "--fixed-deliveries",
        &opts.fixed_deliveries.to_string(),
        "--otlp-endpoint",
        otlp_url,
    ]);
    let budget =
        Duration::from_secs_f64(60.0 + opts.warmup_secs + opts.fixed_secs + opts.saturate_secs);
    let (load, server) =
        procs::drive_server(&mut server, n, Duration::from_secs(10), budget).await?;
    let phase = |p: u8| {
        server
            .phases
            .iter()
            .find(|x| x.phase == p)
            .context("server phase missing")
    };
    let fixed = phase(PHASE_FIXED)?;
    let saturate = phase(PHASE_SATURATE)?;
    let seen_fixed = load
        .phases
        .iter()
        .find(|x| x.phase == PHASE_FIXED)
        .context("load phase missing")?;
    let throughput = load
        .rate_within(saturate.start_us + 500_000, saturate.end_us)
        .context("saturation phase too short to measure")?;
    Ok(Trial {
        mode: mode.as_str(),
        connections: n,
        run: 0,
        throughput,
        cpu_per_million: fixed.cpu_seconds / seen_fixed.messages.max(1) as f64 * 1e6,
        p50_us: seen_fixed.p50_us,
        p99_us: seen_fixed.p99_us,
        otlp_exports: 0,
    })
}

fn of_mode<'a>(trials: &'a [Trial], n: usize, mode: &'a str) -> impl Iterator<Item = &'a Trial> {
    trials
        .iter()
        .filter(move |t| t.connections == n && t.mode == mode)
}

/// Ratios over the bare run of the same round (adjacent in time), then their spread.
fn ratios(
    trials: &[Trial],
    n: usize,
    mode: &str,
    figure: impl Fn(&Trial) -> f64,
) -> Option<Spread> {
    let runs: Vec<f64> = of_mode(trials, n, mode)
        .filter_map(|t| {
            let bare = of_mode(trials, n, BARE).find(|b| b.run == t.run)?;
            Some(figure(t) / figure(bare))
        })
        .collect();
    Spread::of(&runs)
}

fn spread(
    trials: &[Trial],
    n: usize,
    mode: &str,
    figure: impl Fn(&Trial) -> f64,
) -> Option<Spread> {
    Spread::of(&of_mode(trials, n, mode).map(figure).collect::<Vec<_>>())
}

fn verdict(s: Option<Spread>, ok: impl Fn(f64) -> bool) -> &'static str {
    match s {
        Some(s) if ok(s.median) => "met",
        Some(_) => "**missed**",
        None => "n/a",
    }
}

/// The Markdown section: absolute figures per mode, then ratios against the targets.
pub fn report(trials: &[Trial], opts: &Options) -> String {
    let mut out = String::from("## 1. Middleware overhead\n\n");
    out.push_str(&format!(
        "Broadcast server (`wsmon-bench-server`) bare axum vs wsmon layer + extractor, with a \
         separate load process (`wsmon-bench-load`) holding N connections. {} interleaved runs \
         per mode and N (order rotated each run). Fixed-rate phase: {:.0} offered deliveries/s \
         for {} s (CPU per message and latency). Saturation phase: offered rate above capacity \
         for {} s, slow receivers skip ahead (throughput). Server CPU is its own \
         `getrusage(RUSAGE_SELF)`. OTLP runs export over HTTP/protobuf every second (60× the \
         default rate) to a local receiver. Figures are median (min–max).\n\n",
        opts.runs, opts.fixed_deliveries, opts.fixed_secs, opts.saturate_secs
    ));
    let mut abs = Table::new([
        "N",
        "mode",
        "delivered msg/s (saturation)",
        "server CPU s / M msgs",
        "p50 µs",
        "p99 µs",
        "OTLP exports/run",
    ]);
    for &n in &opts.connections {
        for (_, m) in ROUND {
            abs.row([
                n.to_string(),
                m.to_string(),
                show(spread(trials, n, m, |t| t.throughput), 0),
                show(spread(trials, n, m, |t| t.cpu_per_million), 2),
                show(spread(trials, n, m, |t| t.p50_us as f64), 0),
                show(spread(trials, n, m, |t| t.p99_us as f64), 0),
                show(spread(trials, n, m, |t| t.otlp_exports as f64), 0),
            ]);
        }
    }
    out.push_str(&abs.render());
    out.push_str(
        "\nRatios over the bare run of the same round. The A/A control row is bare over bare: \
         its spread is the noise floor, and a ratio whose range is no wider than the control's \
         cannot be told from noise.\n\n",
    );
    let mut rat = Table::new([
        "N",
        "mode",
        "CPU/msg (target ≤ 1.05)",
        "",
        "throughput (target ≥ 0.95)",
        "",
        "p99 latency (target ≤ 1.10)",
        "",
    ]);
    for &n in &opts.connections {
        for m in ["instrumented", "instrumented-otlp", CONTROL] {
            let cpu = ratios(trials, n, m, |t| t.cpu_per_million);
            let thr = ratios(trials, n, m, |t| t.throughput);
            let p99 = ratios(trials, n, m, |t| t.p99_us as f64);
            rat.row([
                n.to_string(),
                m.to_string(),
                show(cpu, 3),
                verdict(cpu, |x| x <= 1.05).to_string(),
                show(thr, 3),
                verdict(thr, |x| x >= 0.95).to_string(),
                show(p99, 3),
                verdict(p99, |x| x <= 1.10).to_string(),
            ]);
        }
    }
    out.push_str(&rat.render());
    out
}
