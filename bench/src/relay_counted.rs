//! Benchmark 9b, relay cost counted rather than timed: user-space instructions
//! (`valgrind --tool=callgrind`) and system calls (`strace -f -c`) per relayed message, nginx
//! against wsmon-proxy (default single thread), under the same fixed load: N connections, each
//! a fixed number of echo round trips. Each proxy runs under each tool twice, with a short and a
//! long phase; the slope between them removes start-up, handshakes and closes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::counted::slope;
use crate::markdown::Table;
use crate::relay_cost::{self, TempDir};
use crate::syscalls::{parse_summary, Summary};

#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    /// Round trips per connection in the short and in the long phase.
    pub short_round_trips: usize,
    pub long_round_trips: usize,
    pub payload_bytes: usize,
}

pub const TARGETS: [&str; 2] = ["nginx", "wsmon-proxy"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Callgrind,
    Strace,
}

/// One target's counts: `(count, relayed messages)` for the short and the long phase.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub target: &'static str,
    pub instructions: [(u64, u64); 2],
    pub syscalls: [Summary; 2],
    pub relayed: [u64; 2],
}

impl Count {
    /// Instructions per relayed message between the two phases.
    pub fn instructions_per_message(&self) -> f64 {
        slope(self.instructions[0], self.instructions[1])
    }

    /// Calls per relayed message, of one system call or (`None`) of all.
    pub fn syscalls_per_message(&self, name: Option<&str>) -> f64 {
        let calls = |i: usize| {
            let s = &self.syscalls[i];
            let n = match name {
                Some(n) => s.calls.get(n).copied().unwrap_or(0),
                None => s.total,
            };
            (n, self.relayed[i])
        };
        slope(calls(0), calls(1))
    }
}

/// The process whose work is counted: the tool's direct child under strace, the tool's own
/// PID under valgrind (which runs the program in its own process).
/// strace forks short-lived test children of its own first, so the tracee is the child that
/// runs `program` (by its 15-character `comm`).
fn tracee(tool: Tool, child: &Child, program: &str) -> anyhow::Result<i32> {
    let pid = child.id();
    if tool == Tool::Callgrind {
        return Ok(pid as i32);
    }
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect::<String>())
        .unwrap_or_default();
    let path = format!("/proc/{pid}/task/{pid}/children");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        for p in text.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return p.parse().with_context(|| format!("{path}: {text:?}"));
            }
        }
        if Instant::now() > deadline {
            bail!("strace (PID {pid}) started no process");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the counted process with SIGTERM and waits for the tool to write its output. The
/// signal is repeated every few seconds: under valgrind or strace one sent while the process
/// is still starting up has been seen to be lost.
async fn stop(mut child: Child, pid: i32, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut next_signal = Instant::now();
    loop {
        if Instant::now() >= next_signal {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            next_signal = Instant::now() + Duration::from_secs(3);
        }
        if let Some(status) = child.try_wait()? {
            // nginx and the proxy exit 0 on SIGTERM; valgrind and strace pass that on.
            if !status.success() {
                bail!("the counted process exited with {status}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the counted process did not exit within {within:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One target under one tool for one phase: the tool's output file and the messages relayed.
async fn one(
    tool: Tool,
    target: &'static str,
    upstream: SocketAddr,
    round_trips: usize,
    opts: &Options,
    dir: &Path,
) -> anyhow::Result<(PathBuf, u64)> {
    let (program, _nginx_dir, listen): (std::process::Command, Option<TempDir>, SocketAddr) =
        match target {
            "nginx" => {
                let (c, d, l) = relay_cost::nginx_command(upstream, "counted")?;
                (c, Some(d), l)
            }
            _ => {
                let (c, l) = relay_cost::proxy_command(upstream, 1)?;
                (c, None, l)
            }
        };
    let out = dir.join(format!("{tool:?}.{target}.{round_trips}.out"));
    let mut cmd = match tool {
        Tool::Callgrind => {
            let mut c = std::process::Command::new("valgrind");
            c.args(["-q", "--tool=callgrind"])
                .arg(format!("--callgrind-out-file={}", out.display()));
            c
        }
        Tool::Strace => {
            let mut c = std::process::Command::new("strace");
            c.args(["-f", "-q", "-c", "-o"]).arg(&out);
            c
        }
    };
    cmd.arg(program.get_program()).args(program.get_args());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {target} under {tool:?}"))?;
    let pid = tracee(tool, &child, &program.get_program().to_string_lossy())?;
    let phase = async {
        relay_cost::wait_listening(listen).await?;
        let phase_opts = relay_cost::Options {
            connections: opts.connections,
            round_trips,
            payload_bytes: opts.payload_bytes,
            runs: 1,
        };
        relay_cost::phase(listen, None, &phase_opts).await
    };
    let result = tokio::time::timeout(Duration::from_secs(600), phase).await;
    if let Ok(Err(e)) = &result {
        tracing::warn!(target, tool = ?tool, "the phase failed: {e:#}");
    }
    stop(child, pid, Duration::from_secs(60))
        .await
        .with_context(|| format!("stopping {target} (PID {pid}) under {tool:?}"))?;
    result
        .with_context(|| format!("{target} under {tool:?}: the phase took over 600 s"))?
        .with_context(|| format!("{target} under {tool:?}"))?;
    Ok((out, (opts.connections * round_trips * 2) as u64))
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Count>> {
    if !crate::procs::available("nginx", "-v") {
        bail!("nginx is not installed (apt-get install nginx); use --only to skip proxy-counted");
    }
    let dir = std::env::temp_dir().join(format!("wsmon-bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // WSMON_BENCH_KEEP=1 keeps the tools' outputs, for `callgrind_annotate`.
    let keep = std::env::var_os("WSMON_BENCH_KEEP").is_some_and(|v| v == "1");
    let _dir = (!keep).then(|| TempDir(dir.clone()));
    if keep {
        eprintln!("  keeping the outputs in {}", dir.display());
    }
    let upstream = relay_cost::echo_upstream().await?;
    let lengths = [opts.short_round_trips, opts.long_round_trips];
    let mut counts = Vec::new();
    for target in TARGETS {
        let mut instructions = [(0, 0); 2];
        let mut syscalls = [Summary::default(), Summary::default()];
        let mut relayed = [0; 2];
        for (i, n) in lengths.into_iter().enumerate() {
            let (file, messages) = one(Tool::Callgrind, target, upstream, n, opts, &dir).await?;
            instructions[i] = (crate::instructions::callgrind_total(&file)?, messages);
            let (file, messages) = one(Tool::Strace, target, upstream, n, opts, &dir).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            syscalls[i] =
                parse_summary(&text).with_context(|| format!("parsing {}", file.display()))?;
            relayed[i] = messages;
        }
        let c = Count {
            target,
            instructions,
            syscalls,
            relayed,
        };
        eprintln!(
            "  {target:<12} {:.0} instructions, {:.3} syscalls per relayed message",
            c.instructions_per_message(),
            c.syscalls_per_message(None)
        );
        counts.push(c);
    }
    Ok(counts)
}

/// System calls shown on their own rows when any target makes at least this many per message.
const SHOWN: f64 = 0.01;

pub fn report(counts: &[Count], opts: &Options) -> String {
    let mut out = String::from("## 9b. Relay cost counted: nginx, wsmon-proxy\n\n");
    out.push_str(&format!(
        "{} connections, each {} and then {} round trips of a {}-byte binary message to the \
         echo upstream; each proxy once per phase length under `valgrind --tool=callgrind` and \
         once under `strace -f -c`. Per relayed message (two per round trip) is the slope \
         between the two phases, which removes start-up, handshakes and closes. wsmon-proxy: \
         default single thread, /metrics on; nginx: one worker, no master.\n\n",
        opts.connections, opts.short_round_trips, opts.long_round_trips, opts.payload_bytes
    ));
    let mut header = vec!["per relayed message".to_string()];
    header.extend(counts.iter().map(|c| c.target.to_string()));
    let mut t = Table::new(header);
    let mut row = |label: String, f: &dyn Fn(&Count) -> String| {
        let mut r = vec![label];
        r.extend(counts.iter().map(f));
        t.row(r);
    };
    row("instructions (user space)".into(), &|c| {
        format!("{:.0}", c.instructions_per_message())
    });
    row("system calls".into(), &|c| {
        format!("{:.3}", c.syscalls_per_message(None))
    });
    let mut names: Vec<&String> = counts
        .iter()
        .flat_map(|c| c.syscalls[1].calls.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        if counts
            .iter()
            .all(|c| c.syscalls_per_message(Some(name)) < SHOWN)
        {
            continue;
        }
        row(format!("`{name}`"), &|c| {
            format!("{:.3}", c.syscalls_per_message(Some(name)))
        });
    }
    out.push_str(&t.render());
    let of = |target| counts.iter().find(|c| c.target == target);
    if let (Some(w), Some(n)) = (of("wsmon-proxy"), of("nginx")) {
        out.push_str(&format!(
            "\nwsmon-proxy against nginx: {:.2}× the instructions, {:.2}× the system calls per \
             relayed message.\n",
            w.instructions_per_message() / n.instructions_per_message(),
            w.syscalls_per_message(None) / n.syscalls_per_message(None)
        ));
    }
    out
}
