//! Runs `promtool` (from Debian's `prometheus` package).

use std::path::Path;
use std::process::Command;

/// The outcome of one promtool run.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub output: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PromtoolError {
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
