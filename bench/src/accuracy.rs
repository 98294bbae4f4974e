//! Benchmark 5, measurement accuracy: a server that knows, to the µs, when it upgraded, when
//! it sent its first payload and how old each message was when written, against what
//! `wsmon-probe once` reports; and the prober's ping RTT against a raw TCP round trip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::markdown::Table;
use crate::procs;
use crate::summary::{show, Spread};

#[derive(Debug, Clone)]
pub struct Options {
    pub first_payload_delays: Vec<Duration>,
    /// How long each message is held between its timestamp and its write.
    pub publish_delay: Duration,
    pub runs: usize,
    /// Stream length after the first payload, per run.
    pub stream_secs: f64,
}

/// What the server knows about one connection.
#[derive(Debug, Default, Clone)]
struct Truth {
    first_payload_us: Option<f64>,
    /// Age of each timestamped message when its write completed, µs.
    ages_us: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub delay_ms: u64,
    pub first_payload_error_us: f64,
    pub freshness_p50_error_us: f64,
    pub freshness_max_error_us: f64,
    pub probe_rtt_p50_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub runs: Vec<Run>,
    /// Pings spaced as the prober's heartbeat: the baseline its RTT is judged against.
    pub raw_tcp_rtt_p50_us: f64,
    /// Pings back to back, for reference: both ends stay awake, so this is the floor.
    pub raw_tcp_rtt_busy_p50_us: f64,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Serves one connection at a time with the current delays, recording the truth.
async fn serve(
    listener: TcpListener,
    delays: Arc<Mutex<(Duration, Duration)>>,
    truths: Arc<Mutex<Vec<Truth>>>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let (first_delay, publish_delay) = *delays.lock().unwrap();
        let truths = truths.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            // The 101 response has been written: the prober's first-payload clock starts at
            // its receipt, one loopback transit later.
            let upgraded = Instant::now();
            let (mut sink, mut stream) = ws.split();
            // Reading keeps pongs flowing for the prober's heartbeat.
            let reader =
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            let mut truth = Truth::default();
            tokio::time::sleep_until((upgraded + first_delay).into()).await;
            if sink
                .send(Message::text(r#"{"seq":1,"type":"snapshot"}"#))
                .await
                .is_err()
            {
                return;
            }
            truth.first_payload_us = Some(upgraded.elapsed().as_secs_f64() * 1e6);
            let index = {
                let mut all = truths.lock().unwrap();
                all.push(truth.clone());
                all.len() - 1
            };
            let mut seq = 1u64;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                seq += 1;
                let ts = unix_us();
                tokio::time::sleep(publish_delay).await;
                let text = format!(r#"{{"seq":{seq},"ts":{ts}}}"#);
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
                let age = unix_us().saturating_sub(ts) as f64;
                truths.lock().unwrap()[index].ages_us.push(age);
            }
            reader.abort();
        });
    }
}

fn probe_config(url: &str) -> String {
    format!(
        "canaries:\n  - name: accuracy\n    url: {url}\n    first_payload_within: 5s\n    \
         sequence: {{ pointer: /seq }}\n    timestamp: {{ pointer: /ts, unit: us }}\n    \
         heartbeat: {{ every: {}ms, timeout: 1s }}\n",
        HEARTBEAT_EVERY.as_millis()
    )
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The prober's heartbeat interval in this benchmark's canary.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);

/// A loopback TCP echo of 2-byte pings, on a thread, for one client; returns its address.
pub fn tcp_echo() -> anyhow::Result<SocketAddr> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 2];
        while s.read_exact(&mut buf).is_ok() {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    Ok(addr)
}

/// Median round trip, µs, of `iterations` 2-byte pings to the echo at `addr`, with `spacing`
/// between them. Spaced pings find both ends asleep, as the prober's heartbeat does, and a
/// wake-up costs tens of µs on an idle machine; back-to-back pings do not pay it.
pub fn tcp_ping_p50_us(
    addr: SocketAddr,
    iterations: usize,
    spacing: Duration,
) -> anyhow::Result<f64> {
    let mut c = StdStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut buf = [0u8; 2];
    let mut rtts = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        std::thread::sleep(spacing);
        let t = Instant::now();
        c.write_all(b"hi")?;
        c.read_exact(&mut buf)?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(quantile(&mut rtts, 0.5))
}

/// The raw TCP baseline in the prober's topology: the echo in this process (as the accuracy
/// server is), the pinging client in a process of its own (`wsmon-bench-ping`, as the prober
/// is). A round trip between processes costs more than one between threads of one process.
async fn raw_tcp_rtt_us(iterations: usize, spacing: Duration) -> anyhow::Result<f64> {
    let addr = tcp_echo()?;
    let mut ping = Command::new(procs::sibling("wsmon-bench-ping")?);
    ping.arg("--addr")
        .arg(addr.to_string())
        .arg("--count")
        .arg(iterations.to_string())
        .arg("--spacing-us")
        .arg(spacing.as_micros().to_string());
    let (child, out) = procs::spawn_piped(&mut ping)?;
    let budget = Duration::from_secs(30) + spacing * iterations as u32;
    let report: Value = procs::last_json(child, out, budget)
        .await
        .context("wsmon-bench-ping")?;
    report["p50_us"]
        .as_f64()
        .context("wsmon-bench-ping printed no p50_us")
}

pub async fn run(opts: &Options) -> anyhow::Result<Results> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/accuracy", listener.local_addr()?);
    let delays = Arc::new(Mutex::new((Duration::ZERO, opts.publish_delay)));
    let truths = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(listener, delays.clone(), truths.clone()));
    let dir = std::env::temp_dir().join(format!("wsmon-bench-acc-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("accuracy.yaml");
    std::fs::write(&config, probe_config(&url))?;
    let probe = procs::sibling("wsmon-probe")?;
    let raw_tcp_rtt_busy_p50_us = raw_tcp_rtt_us(5_000, Duration::ZERO).await?;
    let raw_tcp_rtt_p50_us = raw_tcp_rtt_us(50, HEARTBEAT_EVERY).await?;
    let mut runs = Vec::new();
    for &d in &opts.first_payload_delays {
        for _ in 0..opts.runs {
            delays.lock().unwrap().0 = d;
            let before = truths.lock().unwrap().len();
            let duration = d.as_secs_f64() + opts.stream_secs;
            let out = Command::new(&probe)
                .args(["once", "--format", "json", "--duration"])
                .arg(format!("{}ms", (duration * 1e3) as u64))
                .arg("-c")
                .arg(&config)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .context("running wsmon-probe once")?;
            let line = String::from_utf8_lossy(&out.stdout);
            let report: Value = serde_json::from_str(line.lines().next().unwrap_or(""))
                .with_context(|| format!("parsing wsmon-probe's JSON: {line:?}"))?;
            if report["success"] != Value::Bool(true) {
                bail!("the accuracy canary failed: {report}");
            }
            // The server's side of the connection may still be writing its last message.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let truth = truths
                .lock()
                .unwrap()
                .get(before)
                .cloned()
                .context("the server saw no connection")?;
            let mut ages = truth.ages_us.clone();
            if ages.is_empty() {
                bail!("no timestamped message was written in the run");
            }
            let secs = |v: &Value| v.as_f64().context("missing figure in wsmon-probe's JSON");
            let fp = secs(&report["first_payload_seconds"])? * 1e6;
            let fresh = &report["freshness_seconds"];
            let run = Run {
                delay_ms: d.as_millis() as u64,
                first_payload_error_us: fp - truth.first_payload_us.unwrap_or(f64::NAN),
                freshness_p50_error_us: secs(&fresh["p50"])? * 1e6 - quantile(&mut ages, 0.5),
                freshness_max_error_us: secs(&fresh["max"])? * 1e6 - quantile(&mut ages, 1.0),
                probe_rtt_p50_us: secs(&report["heartbeat_rtt_seconds"]["p50"])? * 1e6,
            };
            eprintln!(
                "  accuracy D={:>4} ms: first-payload error {:+.0} µs, freshness p50 error {:+.0} µs, max error {:+.0} µs, probe ping RTT p50 {:.0} µs (raw TCP {:.0} µs)",
                run.delay_ms,
                run.first_payload_error_us,
                run.freshness_p50_error_us,
                run.freshness_max_error_us,
                run.probe_rtt_p50_us,
                raw_tcp_rtt_p50_us
            );
            runs.push(run);
        }
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Results {
        runs,
        raw_tcp_rtt_p50_us,
        raw_tcp_rtt_busy_p50_us,
    })
}

fn abs_spread(v: impl Iterator<Item = f64>) -> (Option<Spread>, Vec<f64>) {
    let v: Vec<f64> = v.map(f64::abs).collect();
    (Spread::of(&v), v)
}

pub fn report(r: &Results, opts: &Options) -> String {
    let mut out = String::from("## 5. Measurement accuracy\n\n");
    out.push_str(&format!(
        "A purpose-built server (in the orchestrator) delays its first payload by D after the \
         upgrade and holds every later message {} ms between stamping `ts` (µs) and writing it; \
         it records, to the µs, the first-payload delay it actually produced and each message's \
         age when its write completed. `wsmon-probe once --format json` runs one canary \
         (sequence, `timestamp: {{unit: us}}`, heartbeat every 100 ms) against it, {} runs per \
         D. Errors are |probe − truth| in µs, median (min–max) over runs; they include one \
         loopback transit, which is real latency the server cannot see. Target: at most \
         1,000 µs.\n\n",
        opts.publish_delay.as_millis(),
        opts.runs
    ));
    let mut t = Table::new([
        "D",
        "first-payload error µs",
        "freshness p50 error µs",
        "freshness max error µs",
        "max of all errors µs",
        "verdict",
    ]);
    for &d in &opts.first_payload_delays {
        let ms = d.as_millis() as u64;
        let runs: Vec<&Run> = r.runs.iter().filter(|x| x.delay_ms == ms).collect();
        let (fp, fpv) = abs_spread(runs.iter().map(|x| x.first_payload_error_us));
        let (f50, f50v) = abs_spread(runs.iter().map(|x| x.freshness_p50_error_us));
        let (fmax, fmaxv) = abs_spread(runs.iter().map(|x| x.freshness_max_error_us));
        let worst = fpv
            .iter()
            .chain(&f50v)
            .chain(&fmaxv)
            .copied()
            .fold(0.0, f64::max);
        t.row([
            format!("{ms} ms"),
            show(fp, 0),
            show(f50, 0),
            show(fmax, 0),
            format!("{worst:.0}"),
            if worst <= 1000.0 { "met" } else { "**missed**" }.to_string(),
        ]);
    }
    out.push_str(&t.render());
    let rtt = Spread::of(
        &r.runs
            .iter()
            .map(|x| x.probe_rtt_p50_us)
            .collect::<Vec<_>>(),
    );
    let added = rtt.map(|s| s.median - r.raw_tcp_rtt_p50_us);
    out.push_str(&format!(
        "\nRound trip: raw TCP ping-pong on loopback between two processes (`wsmon-bench-ping` \
         against an echo in the orchestrator, the prober's topology) p50 {:.0} µs with pings \
         {} ms apart like the heartbeat ({:.0} µs back to back, when neither end sleeps between pings); the \
         prober's WebSocket ping RTT p50 {} µs (median (min–max) over runs), so the prober adds \
         {} µs (target ≤ 100 µs: **{}**). The WebSocket figure includes the server's own pong \
         handling.\n",
        r.raw_tcp_rtt_p50_us,
        HEARTBEAT_EVERY.as_millis(),
        r.raw_tcp_rtt_busy_p50_us,
        show(rtt, 0),
        added.map_or("n/a".into(), |a| format!("{a:.0}")),
        match added {
            Some(a) if a <= 100.0 => "met",
            Some(_) => "missed",
            None => "n/a",
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_round_trip_is_measurable() {
        let rtt = tcp_ping_p50_us(tcp_echo().unwrap(), 50, Duration::ZERO).unwrap();
        assert!(rtt > 0.0 && rtt < 1_000_000.0, "rtt {rtt}");
    }

    #[test]
    fn quantile_picks_the_nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert_eq!(quantile(&mut v, 1.0), 5.0);
    }
}
