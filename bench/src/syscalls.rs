//! Benchmark 1c, the kernel side of 1b: system calls per delivered message, bare against
//! instrumented, counted by `strace -f -c` on the broadcast server. Two run lengths per mode;
//! the slope between them removes start-up and per-connection calls, leaving the per-message
//! ones. Callgrind (1b) cannot see into the kernel, where most of the CPU per message goes;
//! the same calls per message in both modes means the same kernel work.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::Command;

use crate::counted::{self, FixedRun, Options};
use crate::markdown::Table;
use crate::server::{Mode, AA_ROUND as ROUND, BARE, CONTROL};

/// Rows below this many calls per message in every mode are left out of the table.
const NEGLIGIBLE: f64 = 0.01;

/// strace's `-c` summary: calls per system call name, and the total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub calls: BTreeMap<String, u64>,
    pub total: u64,
}

/// Parses the table `strace -c` writes: a header naming `calls` and `syscall`, dashed rules,
/// rows `% time  seconds  usecs/call  calls  [errors]  syscall` (errors is blank when zero,
/// so calls is found by position from the left and the name is the last word), and a
/// `total` row. Tables for several personalities (e.g. 32-bit calls) are added together.
pub fn parse_summary(text: &str) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut in_table = false;
    let mut seen_header = false;
    let mut totals = None::<u64>;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.contains(&"calls") && words.last() == Some(&"syscall") {
            in_table = true;
            seen_header = true;
            continue;
        }
        if !in_table || words.is_empty() || words[0].starts_with('-') {
            continue;
        }
        let row = (words.len() == 5 || words.len() == 6)
            .then(|| {
                words[0].parse::<f64>().ok()?;
                words[3].parse::<u64>().ok()
            })
            .flatten();
        let Some(calls) = row else {
            // Anything else ends this table (a personality's heading, say).
            in_table = false;
            continue;
        };
        match *words.last().expect("five or six words") {
            "total" => *totals.get_or_insert(0) += calls,
            name => *summary.calls.entry(name.to_string()).or_insert(0) += calls,
        }
    }
    if !seen_header {
        bail!("no strace summary table (no header naming calls and syscall)");
    }
    let sum = summary.calls.values().sum();
    summary.total = match totals {
        Some(t) if t != sum => bail!("strace's total ({t}) is not the sum of its rows ({sum})"),
        _ => sum,
    };
    Ok(summary)
}

/// One run: the server's system calls and the messages the load process received.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub summary: Summary,
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub mode: &'static str,
    pub short: Run,
    pub long: Run,
}

impl Count {
    /// Calls per message between the two runs, of one system call or (`None`) of all.
    pub fn per_message(&self, name: Option<&str>) -> f64 {
        let calls = |r: &Run| {
            let count = match name {
                Some(n) => r.summary.calls.get(n).copied().unwrap_or(0),
                None => r.summary.total,
            };
            (count, r.messages)
        };
        counted::slope(calls(&self.short), calls(&self.long))
    }
}

pub fn strace_available() -> bool {
    crate::procs::available("strace", "-V")
}

async fn one(
    mode: Mode,
    secs: f64,
    opts: &Options,
    otlp_url: &str,
    out_file: &Path,
) -> anyhow::Result<Run> {
    let mut tool = Command::new("strace");
    // -f: tokio's worker threads make the writes; -q: no attach notes on stderr.
    tool.args(["-f", "-q", "-c", "-o"]).arg(out_file);
    let fixed = FixedRun {
        mode,
        secs,
        opts,
        otlp_url,
        slowdown: 3.0,
    };
    let (messages, server) = counted::run(tool, &fixed)
        .await
        .context("the server under strace")?;
    if server.lagged_messages > 0 {
        // Skipped messages cost no write, so the rate was too high for strace.
        tracing::warn!(
            lagged = server.lagged_messages,
            mode = mode.as_str(),
            "receivers lagged under strace; lower the offered rate"
        );
    }
    let text = std::fs::read_to_string(out_file)
        .with_context(|| format!("reading {}", out_file.display()))?;
    let summary =
        parse_summary(&text).with_context(|| format!("parsing {}", out_file.display()))?;
    Ok(Run { summary, messages })
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Count>> {
    let dir = std::env::temp_dir().join(format!("wsmon-bench-strace-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (otlp_url, received) = crate::otlp_sink::spawn().await?;
    let mut counts = Vec::new();
    for (k, (mode, label)) in ROUND.into_iter().enumerate() {
        let file = |secs: f64| dir.join(format!("strace.{k}.{}.{secs}.out", mode.as_str()));
        let exports_before = received.exports.load(Relaxed);
        let short = one(
            mode,
            opts.short_secs,
            opts,
            &otlp_url,
            &file(opts.short_secs),
        )
        .await?;
        let long = one(mode, opts.long_secs, opts, &otlp_url, &file(opts.long_secs)).await?;
        if mode == Mode::InstrumentedOtlp && received.exports.load(Relaxed) == exports_before {
            bail!("the instrumented-otlp runs exported nothing to the local receiver");
        }
        let c = Count {
            mode: label,
            short,
            long,
        };
        eprintln!(
            "  syscalls {:<18} {:.3} per delivered message ({} and {} messages)",
            c.mode,
            c.per_message(None),
            c.short.messages,
            c.long.messages
        );
        counts.push(c);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(counts)
}

pub fn report(counts: &[Count], opts: &Options) -> String {
    let mut out = String::from("### 1c. System calls per message (strace)\n\n");
    out.push_str(&format!(
        "Counted, not timed: the kernel side of 1b. The same server under `strace -f -c`, \
         N={}, {} offered deliveries/s, fixed phase of {} s and of {} s; calls per message is \
         the difference between the two runs divided by the difference in messages delivered, \
         which removes start-up and per-connection calls. The A/A control is bare again: its \
         distance from the first bare run is what run-to-run variation alone does to a figure \
         (calls that depend on scheduling, such as `futex` and `epoll_wait`, vary most). The \
         OTLP run exports \
         every second, so its export calls are per second, spread here over this rate's \
         messages. Rows below {NEGLIGIBLE} calls per message in every mode are left out; the \
         total counts every call.\n\n",
        opts.connections, opts.deliveries, opts.short_secs, opts.long_secs
    ));
    let mut names: Vec<(&str, f64)> = counts
        .iter()
        .flat_map(|c| {
            c.short
                .summary
                .calls
                .keys()
                .chain(c.long.summary.calls.keys())
        })
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|n| {
            let most = counts
                .iter()
                .map(|c| c.per_message(Some(n)).abs())
                .fold(0.0, f64::max);
            (n, most)
        })
        .filter(|&(_, most)| most >= NEGLIGIBLE)
        .collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut t = Table::new(std::iter::once("system call").chain(counts.iter().map(|c| c.mode)));
    for (n, _) in &names {
        t.row(
            std::iter::once(format!("`{n}`")).chain(
                counts
                    .iter()
                    .map(|c| format!("{:.3}", c.per_message(Some(n)))),
            ),
        );
    }
    t.row(
        std::iter::once("**total**".to_string()).chain(
            counts
                .iter()
                .map(|c| format!("**{:.3}**", c.per_message(None))),
        ),
    );
    out.push_str(&t.render());
    let get = |m: &str| {
        counts
            .iter()
            .find(|c| c.mode == m)
            .map(|c| c.per_message(None))
    };
    if let Some(b) = get(BARE) {
        out.push('\n');
        for m in ["instrumented", "instrumented-otlp", CONTROL] {
            if let Some(x) = get(m) {
                out.push_str(&format!(
                    "{m} over bare, all calls: **{:.3}** ({:+.3} calls per message).\n",
                    x / b,
                    x - b
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `strace -f -c` of the bare server (N=100, 2 s at 1000 deliveries/s), trimmed.
    const SAMPLE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 50.46    0.138039         480       287         9 futex
 31.74    0.086823          31      2800           sendto
  3.61    0.009878          40       244           epoll_wait
  2.81    0.007682          23       326        26 recvfrom
  1.21    0.003319          33       100           writev
  0.98    0.002681          26       102         2 accept4
  0.00    0.000000           0         1         1 access
  0.00    0.000000           0         1           execve
------ ----------- ----------- --------- --------- ------------------
100.00    0.259422          67      3861        38 total
";

    #[test]
    fn the_summary_gives_calls_per_name_whether_or_not_errors_is_blank() {
        let s = parse_summary(SAMPLE).unwrap();
        assert_eq!(s.calls.len(), 8);
        assert_eq!(s.calls["futex"], 287);
        assert_eq!(s.calls["sendto"], 2800);
        assert_eq!(s.calls["recvfrom"], 326);
        assert_eq!(s.calls["access"], 1);
        assert_eq!(s.calls["execve"], 1);
        assert_eq!(s.total, 3861);
        assert!(!s.calls.contains_key("total"));
    }

    #[test]
    fn personality_tables_are_added_and_surrounding_text_ignored() {
        let text = format!(
            "strace: some note\n{SAMPLE}\nSystem call usage summary for 32 bit mode:\n\
             % time     seconds  usecs/call     calls    errors syscall\n\
             ------ ----------- ----------- --------- --------- ----------------\n\
             100.00    0.000010          10         4           futex\n\
             ------ ----------- ----------- --------- --------- ----------------\n\
             100.00    0.000010          10         4           total\n"
        );
        let s = parse_summary(&text).unwrap();
        assert_eq!(s.calls["futex"], 291);
        assert_eq!(s.total, 3865);
    }

    #[test]
    fn a_missing_table_or_a_wrong_total_is_an_error() {
        assert!(parse_summary("").is_err());
        assert!(parse_summary("strace: exec: No such file or directory\n").is_err());
        let bad = SAMPLE.replace("3861", "3862");
        assert!(parse_summary(&bad).is_err());
    }

    #[test]
    fn per_message_is_the_slope_between_the_two_runs() {
        let run = |sendto: u64, futex: u64, messages: u64| Run {
            summary: Summary {
                calls: [("sendto", sendto), ("futex", futex)]
                    .map(|(n, c)| (n.to_string(), c))
                    .into(),
                total: sendto + futex,
            },
            messages,
        };
        let c = Count {
            mode: BARE,
            short: run(1_100, 300, 1_000),
            long: run(5_100, 700, 5_000),
        };
        assert_eq!(c.per_message(Some("sendto")), 1.0);
        assert_eq!(c.per_message(Some("futex")), 0.1);
        assert_eq!(c.per_message(Some("writev")), 0.0);
        assert_eq!(c.per_message(None), 1.1);
    }
}
