//! `promtool` from Debian's `prometheus` package: any subcommand, and `check metrics` on an
//! exposition.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The outcome of one promtool run.
#[derive(Debug)]
pub struct Run {
    /// Exit status 0.
    pub success: bool,
    /// stdout then stderr.
    pub output: String,
}

/// Why promtool could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromtoolError {
    /// Not installed, or not on PATH.
    #[error(
        "promtool is not installed (or not on PATH): `bash scripts/test.sh` installs it \
         (Debian package `prometheus`): {0}"
    )]
    Missing(#[source] std::io::Error),
}

/// Runs `promtool ARGS…` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Result<Run, PromtoolError> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(PromtoolError::Missing)?;
    Ok(Run {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

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
