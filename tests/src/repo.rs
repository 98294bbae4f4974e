//! Where the bundle lives in the repository.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn alerts_dir() -> PathBuf {
    root().join("alerts")
}

pub fn alert_tests_dir() -> PathBuf {
    alerts_dir().join("tests")
}

pub fn dashboards_dir() -> PathBuf {
    root().join("dashboards")
}

pub fn runbook_dir() -> PathBuf {
    root().join("runbook")
}

/// Files in `dir` whose names end with `suffix`, sorted.
pub fn files_ending_with(dir: &Path, suffix: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    files.sort();
    Ok(files)
}
