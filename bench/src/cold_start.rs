//! Benchmark 6, cold start of a cron check: `wsmon-probe once` from process start to exit,
//! against `k6 run` doing the same one-canary check, alternating, against the example feed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::Command;

use crate::feed_host::FeedHost;
use crate::markdown::Table;
use crate::procs;
use crate::summary::{show, Spread};

const K6_ONCE: &str = include_str!("../k6/once.js");

/// Both tools keep the stream this long after connecting: `once` has no stop-at-first-payload
/// mode, so k6 is given the same hold.
pub const HOLD: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub probe_ms: Vec<f64>,
    pub k6_ms: Vec<f64>,
}

pub async fn run(runs: usize) -> anyhow::Result<Results> {
    let feed = FeedHost::start(10.0).await?;
    let dir = std::env::temp_dir().join(format!("wsmon-bench-cold-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("once.yaml");
    std::fs::write(
        &config,
        format!(
            "canaries:\n  - name: feed\n    url: {}\n    sequence: {{ pointer: /seq }}\n",
            feed.ws_url()
        ),
    )?;
    let script = dir.join("once.js");
    std::fs::write(&script, K6_ONCE)?;
    let probe = procs::sibling("wsmon-probe")?;
    let k6 = procs::k6()?;
    let hold = format!("{}ms", HOLD.as_millis());
    let mut results = Results {
        probe_ms: Vec::new(),
        k6_ms: Vec::new(),
    };
    // One untimed run each first, so neither pays for a cold page cache.
    for timed in std::iter::once(false).chain(std::iter::repeat(true).take(runs)) {
        let mut p = Command::new(&probe);
        p.args(["once", "--duration", &hold, "-c"])
            .arg(&config)
            .env("RUST_LOG", "warn");
        let probe_ms = timed_run(&mut p).await.context("wsmon-probe once")?;
        let mut k = Command::new(&k6);
        k.args(["run", "--quiet", "--no-usage-report", "--no-summary"])
            .arg(&script)
            .env("URL", feed.ws_url())
            .env("HOLD_MS", HOLD.as_millis().to_string())
            .env("K6_NO_USAGE_REPORT", "true");
        let k6_ms = timed_run(&mut k).await.context("k6 run")?;
        if timed {
            eprintln!("  cold start: wsmon-probe once {probe_ms:.0} ms, k6 run {k6_ms:.0} ms");
            results.probe_ms.push(probe_ms);
            results.k6_ms.push(k6_ms);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}

async fn timed_run(cmd: &mut Command) -> anyhow::Result<f64> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "the check failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

pub fn report(r: &Results) -> String {
    let mut out = String::from("## 6. Cold start of a cron check\n\n");
    out.push_str(&format!(
        "Process start to exit, alternating, against the example feed on loopback, after one \
         untimed run of each. `wsmon-probe once --duration {0} ms` (one canary with a sequence \
         check) against `k6 run bench/k6/once.js` (connect, check the first payload arrived, \
         close {0} ms after opening). Both hold the stream {0} ms because `once` has no \
         stop-at-first-payload mode; \"beyond the hold\" subtracts it. Median (min–max) over \
         {1} runs.\n\n",
        HOLD.as_millis(),
        r.probe_ms.len()
    ));
    let hold = HOLD.as_secs_f64() * 1e3;
    let mut t = Table::new(["tool", "wall ms", "beyond the hold, ms"]);
    let p = Spread::of(&r.probe_ms);
    let k = Spread::of(&r.k6_ms);
    let beyond = |v: &[f64]| Spread::of(&v.iter().map(|x| x - hold).collect::<Vec<_>>());
    t.row([
        "wsmon-probe once".to_string(),
        show(p, 0),
        show(beyond(&r.probe_ms), 0),
    ]);
    t.row(["k6 run".to_string(), show(k, 0), show(beyond(&r.k6_ms), 0)]);
    out.push_str(&t.render());
    if let (Some(p), Some(k), Some(pb), Some(kb)) = (p, k, beyond(&r.probe_ms), beyond(&r.k6_ms)) {
        out.push_str(&format!(
            "\nRatio wsmon-probe ÷ k6 (medians): {:.2} of the wall time, {:.2} beyond the hold.\n",
            p.median / k.median,
            pb.median / kb.median
        ));
    }
    out
}
