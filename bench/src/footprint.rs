//! Benchmark 4, prober footprint versus k6: N streams against the example feed at 1 message/s
//! each, held by `wsmon-probe daemon` and then by k6; RSS per stream and CPU per message.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::feed_host::FeedHost;
use crate::markdown::Table;
use crate::{procs, sys};

const K6_HOLD: &str = include_str!("../k6/hold.js");

#[derive(Debug, Clone)]
pub struct Options {
    pub streams: Vec<usize>,
    /// Settling time after the last stream connected.
    pub settle_secs: f64,
    /// Measurement window for CPU.
    pub window_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub tool: &'static str,
    pub streams: usize,
    pub rss_bytes: u64,
    /// RSS of the same tool holding one stream, the fixed cost.
    pub baseline_rss_bytes: u64,
    pub cpu_seconds: f64,
    pub messages: u64,
    pub connect_seconds: f64,
}

impl Sample {
    pub fn rss_per_stream(&self) -> f64 {
        self.rss_bytes as f64 / self.streams as f64
    }
    pub fn marginal_rss_per_stream(&self) -> f64 {
        self.rss_bytes.saturating_sub(self.baseline_rss_bytes) as f64 / self.streams as f64
    }
    pub fn cpu_us_per_message(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.messages.max(1) as f64
    }
}

fn probe_config(url: &str, n: usize, listen: &str) -> String {
    let mut yaml = format!("listen: {listen}\ncanaries:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: c{i}\n    url: {url}\n    sequence: {{ pointer: /seq }}\n    timestamp: {{ pointer: /ts, unit: ms }}\n"
        ));
    }
    yaml
}

fn spawn_probe(dir: &Path, url: &str, n: usize) -> anyhow::Result<Child> {
    let path = dir.join(format!("probe-{n}.yaml"));
    let listen = wsmon_testkit::free_local_addr().to_string();
    std::fs::write(&path, probe_config(url, n, &listen))?;
    let mut cmd = Command::new(procs::sibling("wsmon-probe")?);
    cmd.arg("daemon")
        .arg("-c")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().context("starting wsmon-probe daemon")
}

fn spawn_k6(dir: &Path, url: &str, n: usize) -> anyhow::Result<Child> {
    let script = dir.join("hold.js");
    std::fs::write(&script, K6_HOLD)?;
    let mut cmd = Command::new(procs::k6()?);
    cmd.args(["run", "--quiet", "--no-usage-report", "--no-summary"])
        .arg(&script)
        .env("N", n.to_string())
        .env("URL", url)
        .env("HOLD_MS", "3600000")
        .env("K6_NO_USAGE_REPORT", "true")
        .stdout(std::process::Stdio::null())
        // Being stopped by SIGTERM makes k6 warn once per pending timer.
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().context("starting k6")
}

async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn wait_for(
    feed: &FeedHost,
    pred: impl Fn(usize) -> bool,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !pred(feed.subscribers()) {
        if Instant::now() > deadline {
            bail!(
                "the feed has {} subscribers after {within:?}",
                feed.subscribers()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Holds `n` streams with `tool`, returns RSS at the end of the window and CPU within it.
async fn measure(
    feed: &FeedHost,
    dir: &Path,
    tool: &'static str,
    n: usize,
    opts: &Options,
) -> anyhow::Result<(u64, f64, u64, f64)> {
    wait_for(feed, |s| s == 0, Duration::from_secs(30)).await?;
    let t0 = Instant::now();
    let child = match tool {
        "wsmon-probe" => spawn_probe(dir, &feed.ws_url(), n)?,
        _ => spawn_k6(dir, &feed.ws_url(), n)?,
    };
    let pid = child.id().context("child pid")?;
    let result = async {
        wait_for(feed, |s| s >= n, Duration::from_secs(120)).await?;
        let connect = t0.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(opts.settle_secs)).await;
        let (cpu0, msgs0) = (sys::process_cpu(pid)?, feed.text_sent());
        tokio::time::sleep(Duration::from_secs_f64(opts.window_secs)).await;
        let (cpu1, msgs1) = (sys::process_cpu(pid)?, feed.text_sent());
        if feed.subscribers() < n {
            bail!(
                "{tool} dropped streams during the window ({} of {n} left)",
                feed.subscribers()
            );
        }
        let rss = sys::process_rss(pid)?;
        Ok((rss, (cpu1 - cpu0).as_secs_f64(), msgs1 - msgs0, connect))
    }
    .await;
    stop(child).await;
    result
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Sample>> {
    let max = opts.streams.iter().copied().max().unwrap_or(0) as u64;
    // Children inherit the limit: the feed, the prober and k6 each hold `max` sockets.
    sys::raise_nofile(2 * max + 1024)?;
    let feed = FeedHost::start(1.0).await?;
    let dir = std::env::temp_dir().join(format!("wsmon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut samples = Vec::new();
    for tool in ["wsmon-probe", "k6"] {
        let short = Options {
            settle_secs: 1.0,
            window_secs: 1.0,
            ..opts.clone()
        };
        let (baseline, ..) = measure(&feed, &dir, tool, 1, &short)
            .await
            .with_context(|| format!("{tool} with one stream"))?;
        for &n in &opts.streams {
            let (rss, cpu, messages, connect) = measure(&feed, &dir, tool, n, opts)
                .await
                .with_context(|| format!("{tool} with {n} streams"))?;
            let s = Sample {
                tool,
                streams: n,
                rss_bytes: rss,
                baseline_rss_bytes: baseline,
                cpu_seconds: cpu,
                messages,
                connect_seconds: connect,
            };
            eprintln!(
                "  footprint {tool:<11} n={n:<6} RSS {:.1} MiB ({:.1} KiB/stream, {:.1} KiB marginal), CPU {:.2} s for {} msgs ({:.1} µs/msg), connected in {:.1} s",
                rss as f64 / 1048576.0,
                s.rss_per_stream() / 1024.0,
                s.marginal_rss_per_stream() / 1024.0,
                cpu,
                messages,
                s.cpu_us_per_message(),
                connect
            );
            samples.push(s);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(samples)
}

pub fn report(samples: &[Sample], opts: &Options) -> String {
    let mut out = String::from("## 4. Prober footprint versus k6\n\n");
    out.push_str(&format!(
        "N streams against the example feed (in the orchestrator's process) at 1 message/s each. \
         `wsmon-probe daemon` with one canary per stream (sequence and timestamp checks on), \
         then k6 ({}) running `bench/k6/hold.js`: one VU opening all N sockets with \
         `k6/experimental/websockets`, k6's most frugal shape. RSS is `VmRSS` after {} s of settling; CPU is \
         `/proc/PID/stat` user+system over a {} s window, divided by the messages the feed sent \
         in it. \"Marginal\" subtracts the same tool's RSS with one stream: the cost of one more \
         stream, without the process's fixed cost (its code, runtime and registry), which \
         weighs on the whole-process figure at small N. Target: wsmon-probe at most 1/10 of \
         k6's memory per stream; both readings are judged.\n\n",
        k6_version(),
        opts.settle_secs,
        opts.window_secs
    ));
    let mut t = Table::new([
        "N",
        "tool",
        "RSS MiB",
        "KiB/stream",
        "marginal KiB/stream",
        "CPU µs/msg",
        "connect all, s",
    ]);
    for s in samples {
        t.row([
            s.streams.to_string(),
            s.tool.to_string(),
            format!("{:.1}", s.rss_bytes as f64 / 1048576.0),
            format!("{:.1}", s.rss_per_stream() / 1024.0),
            format!("{:.1}", s.marginal_rss_per_stream() / 1024.0),
            format!("{:.1}", s.cpu_us_per_message()),
            format!("{:.1}", s.connect_seconds),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut r = Table::new([
        "N",
        "memory/stream probe÷k6 (target ≤ 0.10)",
        "",
        "marginal memory probe÷k6",
        "",
        "CPU/msg probe÷k6",
    ]);
    let verdict = |ratio: f64| if ratio <= 0.10 { "met" } else { "**missed**" }.to_string();
    for &n in &opts.streams {
        let get = |tool: &str| samples.iter().find(|s| s.streams == n && s.tool == tool);
        if let (Some(p), Some(k)) = (get("wsmon-probe"), get("k6")) {
            let mem = p.rss_per_stream() / k.rss_per_stream();
            let marginal = p.marginal_rss_per_stream() / k.marginal_rss_per_stream();
            r.row([
                n.to_string(),
                format!("{mem:.3}"),
                verdict(mem),
                format!("{marginal:.3}"),
                verdict(marginal),
                format!("{:.2}", p.cpu_us_per_message() / k.cpu_us_per_message()),
            ]);
        }
    }
    out.push_str(&r.render());
    out
}

pub fn k6_version() -> String {
    procs::k6()
        .ok()
        .and_then(|k6| std::process::Command::new(k6).arg("version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "k6, version unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_config_has_one_canary_per_stream() {
        let yaml = probe_config("ws://127.0.0.1:1/ws", 3, "127.0.0.1:9");
        assert_eq!(yaml.matches("- name: c").count(), 3);
        assert!(yaml.contains("- name: c2\n    url: ws://127.0.0.1:1/ws\n"));
    }
}
