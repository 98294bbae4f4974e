//! Benchmark 9, relay cost: what a proxy adds to each relayed message, side by side in one run.
//! Four paths to one in-process tokio-tungstenite echo upstream, interleaved per run:
//! direct, through nginx (Debian package, one worker, its own config in a temp dir) and through
//! wsmon-proxy (the release binary) with its default single thread and with `--threads 2`.
//! Clients send a binary message and wait for its echo;
//! added latency is the proxy's round-trip percentile minus the direct one, and CPU per relayed
//! message is the proxy process's CPU over the phase divided by the messages it relayed (two
//! per round trip).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::markdown::Table;
use crate::summary::{show, Spread};

#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    /// Round trips per connection per run.
    pub round_trips: usize,
    pub payload_bytes: usize,
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub mode: &'static str,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The proxy process's CPU per relayed message; `None` for the direct path.
    pub cpu_us_per_message: Option<f64>,
    /// The user-space part of it.
    pub user_us_per_message: Option<f64>,
}

pub const MODES: [&str; 4] = ["direct", "nginx", "wsmon-proxy", "wsmon-proxy --threads 2"];

/// A child process stopped by its PID with SIGTERM when dropped.
struct Proc {
    child: std::process::Child,
    _dir: Option<TempDir>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub(crate) async fn echo_upstream() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_binary() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The nginx command for one worker without a master relaying to `upstream`, its temp dir and
/// its listen address. The process started is the one that relays (and whose CPU is read).
pub(crate) fn nginx_command(
    upstream: SocketAddr,
    name: &str,
) -> anyhow::Result<(std::process::Command, TempDir, SocketAddr)> {
    let listen = free_port()?;
    let dir = std::env::temp_dir().join(format!("wsmon-bench-nginx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log stderr warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         \x20 server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://{upstream};\n\
         \x20     proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
         \x20     proxy_set_header Connection \"upgrade\";\n      proxy_read_timeout 3600s;\n\
         \x20     proxy_buffering off;\n      tcp_nodelay on;\n    }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut cmd = std::process::Command::new("nginx");
    cmd.args([
        "-p",
        &d.to_string(),
        "-c",
        &format!("{d}/nginx.conf"),
        "-e",
        "stderr",
    ]);
    Ok((cmd, TempDir(dir), listen))
}

fn start_nginx(upstream: SocketAddr) -> anyhow::Result<(Proc, SocketAddr)> {
    let (mut cmd, dir, listen) = nginx_command(upstream, "timed")?;
    let child = cmd
        .spawn()
        .context("starting nginx (apt-get install nginx)")?;
    Ok((
        Proc {
            child,
            _dir: Some(dir),
        },
        listen,
    ))
}

/// The wsmon-proxy command (release binary, `/metrics` on) relaying to `upstream`, and its
/// listen address.
pub(crate) fn proxy_command(
    upstream: SocketAddr,
    threads: u16,
) -> anyhow::Result<(std::process::Command, SocketAddr)> {
    let listen = free_port()?;
    let metrics = free_port()?;
    let mut cmd = std::process::Command::new(crate::procs::sibling("wsmon-proxy")?);
    cmd.args([
        "--listen",
        &listen.to_string(),
        "--upstream",
        &format!("http://{upstream}"),
    ])
    .args(["--route", "/ws", "--metrics-listen", &metrics.to_string()])
    .args(["--threads", &threads.to_string()]);
    Ok((cmd, listen))
}

fn start_wsmon_proxy(upstream: SocketAddr, threads: u16) -> anyhow::Result<(Proc, SocketAddr)> {
    let (mut cmd, listen) = proxy_command(upstream, threads)?;
    let child = cmd.spawn().context("starting wsmon-proxy")?;
    Ok((Proc { child, _dir: None }, listen))
}

pub(crate) async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("{addr} never accepted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One phase against `addr`: the round-trip histogram (µs) and, with `pid`, that process's
/// CPU over the phase.
pub(crate) async fn phase(
    addr: SocketAddr,
    pid: Option<u32>,
    opts: &Options,
) -> anyhow::Result<(Histogram<u64>, Option<(Duration, Duration)>)> {
    let mut conns = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
        conns.push(ws);
    }
    let cpu_before = pid.map(crate::sys::process_cpu_split).transpose()?;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut ws| {
            let payload = bytes::Bytes::from(vec![0x5au8; opts.payload_bytes]);
            let n = opts.round_trips;
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("valid histogram");
                for _ in 0..n {
                    let sent = Instant::now();
                    ws.send(Message::Binary(payload.clone())).await?;
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Binary(_))) => break,
                            Some(Ok(_)) => continue,
                            Some(Err(e)) => return Err(anyhow::Error::from(e)),
                            None => bail!("connection ended"),
                        }
                    }
                    h.record(sent.elapsed().as_micros() as u64).ok();
                }
                let _ = ws.close(None).await;
                Ok(h)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("valid histogram");
    for t in tasks {
        all.add(t.await??).ok();
    }
    let cpu = match (pid, cpu_before) {
        (Some(pid), Some((user, system))) => {
            let (u, s) = crate::sys::process_cpu_split(pid)?;
            Some((u.saturating_sub(user), s.saturating_sub(system)))
        }
        _ => None,
    };
    Ok((all, cpu))
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Trial>> {
    if !crate::procs::available("nginx", "-v") {
        bail!("nginx is not installed (apt-get install nginx); use --only to skip proxy");
    }
    let upstream = echo_upstream().await?;
    let (nginx, nginx_addr) = start_nginx(upstream)?;
    let (proxy, proxy_addr) = start_wsmon_proxy(upstream, 1)?;
    let (pool, pool_addr) = start_wsmon_proxy(upstream, 2)?;
    wait_listening(nginx_addr).await?;
    wait_listening(proxy_addr).await?;
    wait_listening(pool_addr).await?;
    let relayed = (opts.connections * opts.round_trips * 2) as f64;
    let mut trials = Vec::new();
    for run in 0..opts.runs {
        // Rotate the order so no mode always runs first after a pause.
        for i in 0..MODES.len() {
            let mode = MODES[(i + run) % MODES.len()];
            let (addr, pid) = match mode {
                "direct" => (upstream, None),
                "nginx" => (nginx_addr, Some(nginx.pid())),
                "wsmon-proxy" => (proxy_addr, Some(proxy.pid())),
                _ => (pool_addr, Some(pool.pid())),
            };
            let (h, cpu) = phase(addr, pid, opts).await?;
            eprintln!(
                "   {mode:<12} run {run}: p50 {} µs, p99 {} µs",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99)
            );
            trials.push(Trial {
                mode,
                p50_us: h.value_at_quantile(0.5) as f64,
                p99_us: h.value_at_quantile(0.99) as f64,
                cpu_us_per_message: cpu.map(|(u, s)| (u + s).as_secs_f64() * 1e6 / relayed),
                user_us_per_message: cpu.map(|(u, _)| u.as_secs_f64() * 1e6 / relayed),
            });
        }
    }
    drop(pool);
    drop(proxy);
    drop(nginx);
    Ok(trials)
}

fn spread(trials: &[Trial], mode: &str, f: impl Fn(&Trial) -> Option<f64>) -> Option<Spread> {
    let v: Vec<f64> = trials
        .iter()
        .filter(|t| t.mode == mode)
        .filter_map(f)
        .collect();
    Spread::of(&v)
}

pub fn report(trials: &[Trial], opts: &Options) -> String {
    let mut out = String::from("## 9. Relay cost: direct, nginx, wsmon-proxy\n\n");
    out.push_str(&format!(
        "{} connections, each {} round trips of a {}-byte binary message to an echo upstream \
         (tokio-tungstenite, in the driver process), per run and mode; {} interleaved runs. \
         nginx runs one worker without a master; wsmon-proxy its default single-threaded \
         runtime, and a two-worker pool (`--threads 2`), both with /metrics on. Added latency is the mode's round-trip percentile minus the direct \
         one in the same run (a round trip crosses the proxy twice). CPU is the proxy \
         process's user+system time over the phase per relayed message (two per round trip), \
         and its user-space part. Target: wsmon-proxy costs no more than nginx.\n\n",
        opts.connections, opts.round_trips, opts.payload_bytes, opts.runs
    ));
    let mut t = Table::new([
        "path",
        "round trip p50 µs",
        "p99 µs",
        "added p50 µs",
        "added p99 µs",
        "CPU µs per relayed message",
        "of it user µs",
    ]);
    let runs: usize = opts.runs;
    let added = |mode: &str, pick: fn(&Trial) -> f64| -> Option<Spread> {
        let v: Vec<f64> = (0..runs)
            .filter_map(|r| {
                let of = |m: &str| trials.iter().filter(|t| t.mode == m).nth(r).map(pick);
                Some(of(mode)? - of("direct")?)
            })
            .collect();
        Spread::of(&v)
    };
    for mode in MODES {
        let is_direct = mode == "direct";
        t.row([
            mode.to_string(),
            show(spread(trials, mode, |t| Some(t.p50_us)), 0),
            show(spread(trials, mode, |t| Some(t.p99_us)), 0),
            if is_direct {
                "–".into()
            } else {
                show(added(mode, |t| t.p50_us), 0)
            },
            if is_direct {
                "–".into()
            } else {
                show(added(mode, |t| t.p99_us), 0)
            },
            if is_direct {
                "–".into()
            } else {
                show(spread(trials, mode, |t| t.cpu_us_per_message), 2)
            },
            if is_direct {
                "–".into()
            } else {
                show(spread(trials, mode, |t| t.user_us_per_message), 2)
            },
        ]);
    }
    out.push_str(&t.render());
    let cpu = |m| spread(trials, m, |t| t.cpu_us_per_message).map(|s| s.median);
    if let (Some(w), Some(n)) = (cpu("wsmon-proxy"), cpu("nginx")) {
        out.push_str(&format!(
            "\nwsmon-proxy CPU per relayed message: {:.2}× nginx's (target ≤ 1: **{}**).\n",
            w / n,
            if w <= n { "met" } else { "not met" }
        ));
    }
    if let (Some(p), Some(n)) = (cpu("wsmon-proxy --threads 2"), cpu("nginx")) {
        out.push_str(&format!("With `--threads 2`: {:.2}× nginx's.\n", p / n));
    }
    out
}
