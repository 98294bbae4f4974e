//! Benchmark 6, cold start of a cron check: `wsmon-probe once --until-first-payload` from
//! process start to exit, against `k6 run` doing the same one-canary check (connect, check the
//! first message, close), alternating, against the example feed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::Command;

use crate::feed_host::FeedHost;
use crate::markdown::Table;
use crate::procs;
use crate::summary::{show, Spread};

const K6_ONCE: &str = include_str!("../k6/once.js");

/// Upper bound on each check (`--duration` for the prober, `TIMEOUT_MS` for k6); both stop at
/// the first message, so a healthy run never comes near it.
pub const LIMIT: Duration = Duration::from_secs(10);

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
    let limit = format!("{}ms", LIMIT.as_millis());
    let mut results = Results {
        probe_ms: Vec::new(),
        k6_ms: Vec::new(),
    };
    // One untimed run each first, so neither pays for a cold page cache.
    for timed in std::iter::once(false).chain(std::iter::repeat_n(true, runs)) {
        let mut p = Command::new(&probe);
        p.args(["once", "--until-first-payload", "--duration", &limit, "-c"])
            .arg(&config)
            .env("RUST_LOG", "warn");
        let probe_ms = timed_run(&mut p).await.context("wsmon-probe once")?;
        let mut k = Command::new(&k6);
        k.args(["run", "--quiet", "--no-usage-report", "--no-summary"])
            .arg(&script)
            .env("URL", feed.ws_url())
            .env("TIMEOUT_MS", LIMIT.as_millis().to_string())
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
        "Process start to exit, alternating, against the example feed on loopback (it sends a \
         snapshot as soon as a client connects, so neither tool waits for a tick), after one \
         untimed run of each. Both tools do the same check and stop at the first message: \
         `wsmon-probe once --until-first-payload --duration {0}s` (one canary with a sequence \
         check; the duration only bounds the wait) against `k6 run bench/k6/once.js` \
         (connect, check that the first message carries a `seq`, close at once; the same {0}s \
         bound). Median (min–max) over {1} runs.\n\n",
        LIMIT.as_secs(),
        r.probe_ms.len()
    ));
    let mut t = Table::new(["tool", "wall ms"]);
    let p = Spread::of(&r.probe_ms);
    let k = Spread::of(&r.k6_ms);
    t.row([
        "wsmon-probe once --until-first-payload".to_string(),
        show(p, 0),
    ]);
    t.row(["k6 run".to_string(), show(k, 0)]);
    out.push_str(&t.render());
    if let (Some(p), Some(k)) = (p, k) {
        out.push_str(&format!(
            "\nRatio wsmon-probe ÷ k6 (medians): {:.2} of the wall time.\n",
            p.median / k.median
        ));
    }
    out
}
