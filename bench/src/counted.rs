//! One fixed-rate run of the broadcast server under a counting tool (callgrind for 1b,
//! strace for 1c) against the load process. Each counted benchmark runs this at two phase
//! lengths and divides the difference in its count by the difference in messages.

use std::time::Duration;

use anyhow::bail;
use tokio::process::Command;

use crate::procs;
use crate::server::Mode;
use crate::wire::ServerReport;

/// What a counted benchmark runs: N connections at a fixed offered rate, for two lengths.
#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    /// Offered deliveries per second; modest, since the tool slows the server.
    pub deliveries: f64,
    /// The two fixed-phase lengths whose difference is measured.
    pub short_secs: f64,
    pub long_secs: f64,
}

#[derive(Debug, Clone)]
pub struct FixedRun<'a> {
    pub mode: Mode,
    pub secs: f64,
    pub opts: &'a Options,
    /// Where `instrumented-otlp` exports.
    pub otlp_url: &'a str,
    /// How many times slower than native the tool makes the server, to size the time limits.
    pub slowdown: f64,
}

/// A count per message between a short and a long run: `(count, messages)` each. The
/// difference removes start-up and per-connection work.
pub fn slope(short: (u64, u64), long: (u64, u64)) -> f64 {
    (long.0 as f64 - short.0 as f64) / (long.1 as f64 - short.1 as f64)
}

/// Appends the server and its arguments to `tool` (the counting command and its own
/// options), runs it with the load process and returns the messages delivered and the
/// server's report. The tool must exit when the server does.
pub async fn run(mut tool: Command, r: &FixedRun<'_>) -> anyhow::Result<(u64, ServerReport)> {
    tool.arg(procs::sibling("wsmon-bench-server")?)
        .args(["--mode", r.mode.as_str(), "--connections"])
        .arg(r.opts.connections.to_string())
        .args([
            "--warmup-secs",
            "0.5",
            "--saturate-secs",
            "0",
            "--fixed-secs",
        ])
        .arg(r.secs.to_string())
        .arg("--fixed-deliveries")
        .arg(r.opts.deliveries.to_string())
        .args(["--otlp-endpoint", r.otlp_url]);
    let budget = Duration::from_secs_f64(60.0 + r.secs * r.slowdown);
    let (load, server) = procs::drive_server(
        &mut tool,
        r.opts.connections,
        Duration::from_secs(60),
        budget,
    )
    .await?;
    let messages = load.phases.iter().map(|p| p.messages).sum();
    if messages == 0 {
        bail!("no message was delivered");
    }
    Ok((messages, server))
}
