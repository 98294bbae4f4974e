//! One fixed-rate run of the broadcast server under a counting tool (callgrind for 1b,
//! strace for 1c) against the load process. Each counted benchmark runs this at two phase
//! lengths and divides the difference in its count by the difference in messages.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use crate::procs;
use crate::server::Mode;
use crate::wire::{LoadReport, ServerReport};

#[derive(Debug, Clone)]
pub struct FixedRun<'a> {
    pub mode: Mode,
    pub connections: usize,
    /// Offered deliveries per second in the fixed phase.
    pub deliveries: f64,
    pub secs: f64,
    /// Where `instrumented-otlp` exports.
    pub otlp_url: Option<&'a str>,
    /// How many times slower than native the tool makes the server, to size the time limits.
    pub slowdown: f64,
}

/// Appends the server and its arguments to `tool` (the counting command and its own
/// options), runs it with the load process and returns the messages delivered and the
/// server's report. The tool must exit when the server does.
pub async fn run(mut tool: Command, r: &FixedRun<'_>) -> anyhow::Result<(u64, ServerReport)> {
    tool.arg(procs::sibling("wsmon-bench-server")?)
        .args(["--mode", r.mode.as_str(), "--connections"])
        .arg(r.connections.to_string())
        .args([
            "--warmup-secs",
            "0.5",
            "--saturate-secs",
            "0",
            "--fixed-secs",
        ])
        .arg(r.secs.to_string())
        .arg("--fixed-deliveries")
        .arg(r.deliveries.to_string());
    if let Some(url) = r.otlp_url {
        tool.args(["--otlp-endpoint", url]);
    }
    let (server, mut server_out) = procs::spawn_piped(&mut tool)?;
    let addr =
        procs::read_line_starting(&mut server_out, "LISTEN ", Duration::from_secs(60)).await?;
    let mut load = Command::new(procs::sibling("wsmon-bench-load")?);
    load.arg("--url")
        .arg(format!("ws://{addr}/ws"))
        .arg("--connections")
        .arg(r.connections.to_string());
    let (load, load_out) = procs::spawn_piped(&mut load)?;
    let budget = Duration::from_secs_f64(60.0 + r.secs * r.slowdown);
    let load: LoadReport = procs::last_json(load, load_out, budget)
        .await
        .context("the load process")?;
    let server: ServerReport = procs::last_json(server, server_out, budget)
        .await
        .context("the server")?;
    if load.connected != r.connections {
        bail!(
            "{} of {} connections established",
            load.connected,
            r.connections
        );
    }
    let messages = load.phases.iter().map(|p| p.messages).sum();
    if messages == 0 {
        bail!("no message was delivered");
    }
    Ok((messages, server))
}
