//! `wsmon-probe demo`: the fault tour a new user sees, run as the binary.

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use wsmon_probe::run::demo::FAULTS;

/// Runs the demo with `args`, and returns its exit code and stdout lines; `on_line` may act
/// on each line as it arrives (return true to send Ctrl-C).
async fn run_demo(args: &[&str], mut on_line: impl FnMut(&str) -> bool) -> (i32, Vec<String>) {
    let mut child = support::spawn_bin(args, Stdio::piped());
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if on_line(&line) {
                let sent = std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
            }
            out.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .unwrap_or_else(|_| panic!("the demo ended within 240s; so far: {out:#?}"));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the demo exits once its output ends")
        .unwrap();
    (status.code().unwrap_or(-1), out)
}

/// The seconds stamp of a `[  12.3s] ...` line.
fn stamp(line: &str) -> f64 {
    let inner = line.trim_start_matches('[').split("s]").next().unwrap();
    inner.trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_fault_is_caught_with_a_signal_a_time_and_a_runbook() {
    let (code, out) = run_demo(&["demo", "--rounds", "1", "--duration", "200s"], |_| false).await;
    let text = out.join("\n");
    assert_eq!(code, 0, "{text}");
    for (i, plan) in FAULTS.iter().enumerate() {
        let start = format!("fault {}/{} {}", i + 1, FAULTS.len(), plan.name);
        let at = out
            .iter()
            .position(|l| l.contains(&start))
            .unwrap_or_else(|| panic!("no start line for {}:\n{text}", plan.name));
        let caught = out[at + 1..]
            .iter()
            .find(|l| l.contains(&format!("caught {}", plan.name)))
            .unwrap_or_else(|| panic!("no detection line for {}:\n{text}", plan.name));
        assert!(
            caught.contains(" by ") && caught.contains(plan.runbook),
            "{caught}"
        );
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(plan.runbook)
                .is_file(),
            "{} names a runbook page that does not exist",
            plan.name
        );
        let after: f64 = caught
            .rsplit(" in ")
            .next()
            .unwrap()
            .split('s')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 0.0);
        // The summary table has the fault as detected.
        assert!(
            out.iter()
                .any(|l| l.starts_with("1 ") && l.contains(plan.name) && l.contains(" yes ")),
            "summary row for {}:\n{text}",
            plan.name
        );
    }
    assert!(
        text.contains(&format!("all {} injected faults detected", FAULTS.len())),
        "{text}"
    );
    assert!(!text.contains("MISSED"), "{text}");
    // The README promises a newcomer every fault caught within two minutes.
    let last = out.iter().rev().find(|l| l.contains("  caught ")).unwrap();
    assert!(stamp(last) < 120.0, "the tour took too long: {last}");
}

#[tokio::test]
async fn the_healthy_demo_prints_live_lines_and_injects_nothing() {
    let (code, out) = run_demo(
        &["demo", "--healthy", "--duration", "5s", "--every", "1s"],
        |_| false,
    )
    .await;
    let text = out.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(out.iter().any(|l| l.contains("feed     up")), "{text}");
    assert!(!text.contains("fault 1/"), "{text}");
}

#[tokio::test]
async fn ctrl_c_mid_fault_stops_cleanly_with_the_summary() {
    let (code, out) = run_demo(&["demo"], |line| line.contains("fault 2/")).await;
    let text = out.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("round  fault"), "no summary:\n{text}");
    let first = out.iter().find(|l| l.starts_with("1      stall")).unwrap();
    assert!(first.contains(" yes "), "{text}");
    // The one in progress is either caught before the signal lands or reported stopped.
    assert!(
        out.iter().any(|l| l.starts_with("1      sequence gap")
            && (l.contains("stopped") || l.contains(" yes "))),
        "{text}"
    );
    assert!(!text.contains("fault 3/"), "{text}");
}
