//! `promtool check metrics` on an exposition, from Debian's `prometheus` package.

use std::io::Write;
use std::process::{Command, Stdio};

/// Asserts that `promtool check metrics` accepts `exposition` with no lint finding.
pub fn assert_metrics_clean(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool is missing: `bash scripts/test.sh` installs it (apt-get install prometheus)",
        );
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}
