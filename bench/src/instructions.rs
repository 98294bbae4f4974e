//! Benchmark 1b, the steady figure on a noisy machine: user-space instructions per delivered
//! message, bare against instrumented, counted by `valgrind --tool=callgrind` on the broadcast
//! server. Two run lengths per mode; the slope between them removes start-up and
//! per-connection costs, leaving the per-message cost.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::Command;

use crate::counted::{self, FixedRun, Options};
use crate::markdown::Table;
use crate::server::Mode;

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub mode: &'static str,
    pub short: (u64, u64),
    pub long: (u64, u64),
}

impl Count {
    /// Instructions per message between the two runs.
    pub fn per_message(&self) -> f64 {
        counted::slope(self.short, self.long)
    }
}

pub fn valgrind_available() -> bool {
    crate::procs::available("valgrind", "--version")
}

/// `(instructions, messages delivered)` for one run under callgrind.
async fn one(
    mode: Mode,
    secs: f64,
    opts: &Options,
    otlp_url: &str,
    dir: &Path,
) -> anyhow::Result<(u64, u64)> {
    let out_file = dir.join(format!("callgrind.{}.{secs}.out", mode.as_str()));
    let mut tool = Command::new("valgrind");
    // -q: valgrind's banner and totals would bury the bench's own progress lines.
    tool.args(["-q", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", out_file.display()));
    let fixed = FixedRun {
        mode,
        secs,
        opts,
        otlp_url,
        slowdown: 10.0,
    };
    let (messages, _) = counted::run(tool, &fixed).await?;
    let total = callgrind_total(&out_file)?;
    Ok((total, messages))
}

/// The instruction total of a callgrind output file.
pub fn callgrind_total(out_file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(out_file)
        .with_context(|| format!("reading {}", out_file.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no instruction total in callgrind's output")
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Count>> {
    let dir = std::env::temp_dir().join(format!("wsmon-bench-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (otlp_url, received) = crate::otlp_sink::spawn().await?;
    let mut counts = Vec::new();
    for mode in [Mode::Bare, Mode::Instrumented, Mode::InstrumentedOtlp] {
        let exports_before = received.exports.load(Relaxed);
        let short = one(mode, opts.short_secs, opts, &otlp_url, &dir).await?;
        let long = one(mode, opts.long_secs, opts, &otlp_url, &dir).await?;
        if mode == Mode::InstrumentedOtlp && received.exports.load(Relaxed) == exports_before {
            bail!("the instrumented-otlp runs exported nothing to the local receiver");
        }
        let c = Count {
            mode: mode.as_str(),
            short,
            long,
        };
        eprintln!(
            "  instructions {:<12} {:.0} per delivered message ({} and {} messages)",
            c.mode,
            c.per_message(),
            short.1,
            long.1
        );
        counts.push(c);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(counts)
}

/// `compare_deliveries`: benchmark 1's rate, at which the per-second export cost is also
/// shown per message.
pub fn report(counts: &[Count], opts: &Options, compare_deliveries: f64) -> String {
    let mut out = String::from("### 1b. Instructions per message (callgrind)\n\n");
    out.push_str(&format!(
        "Counted, not timed, so steady on a noisy machine. The same server under \
         `valgrind --tool=callgrind`, N={}, {} offered deliveries/s, fixed phase of {} s and of \
         {} s; instructions per message is the difference between the two runs divided by the \
         difference in messages delivered, which removes start-up and per-connection work. \
         User space only: the kernel's socket writes, most of the real CPU per message, are \
         not counted, so the CPU ratio above is smaller than this one.\n\n",
        opts.connections, opts.deliveries, opts.short_secs, opts.long_secs
    ));
    let mut t = Table::new(["mode", "instructions per delivered message"]);
    for c in counts {
        t.row([c.mode.to_string(), format!("{:.0}", c.per_message())]);
    }
    out.push_str(&t.render());
    let get = |m: &str| counts.iter().find(|c| c.mode == m).map(Count::per_message);
    if let (Some(b), Some(i)) = (get("bare"), get("instrumented")) {
        out.push_str(&format!(
            "\nInstrumented over bare: **{:.3}** ({:+.0} instructions per message).\n",
            i / b,
            i - b
        ));
        if let Some(o) = get("instrumented-otlp") {
            // The export runs once a second whatever the message rate, so its cost per
            // message here is its cost per export spread over this benchmark's rate.
            let per_export = (o - i) * opts.deliveries;
            out.push_str(&format!(
                "\nInstrumented-otlp over bare: **{:.3}** ({:+.0} instructions per message). \
                 Beyond instrumented, that is about {:.0} instructions per export (one a second, \
                 spread over {} messages a second here): {:.1} per message at the {} \
                 deliveries/s of benchmark 1, and 60 times less again at the default 60 s \
                 interval.\n",
                o / b,
                o - b,
                per_export,
                opts.deliveries,
                per_export / compare_deliveries,
                compare_deliveries
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_message_is_the_slope_between_the_two_runs() {
        let c = Count {
            mode: "bare",
            short: (1_000_000, 1_000),
            long: (3_000_000, 5_000),
        };
        assert_eq!(c.per_message(), 500.0);
    }
}
