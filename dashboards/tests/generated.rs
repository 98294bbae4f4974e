//! `dashboards/*.json` is generated from src/; this keeps the committed files in step.

use std::path::PathBuf;

const BLESS: &str = "WSMON_BLESS=1 cargo test -p wsmon-dashboards --test generated";

#[test]
fn committed_dashboards_match_the_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("WSMON_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, dashboard) in wsmon_dashboards::all() {
        let path = dir.join(file);
        let generated = dashboard.to_json();
        if bless {
            std::fs::write(&path, generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} out of date with dashboards/src; regenerate with\n  {BLESS}"
    );
}

/// A JSON file the generator does not write would be imported by users and checked by the
/// bundle tests, but never regenerated.
#[test]
fn every_dashboard_file_comes_from_the_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let generated: Vec<&str> = wsmon_dashboards::all().iter().map(|(f, _)| *f).collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(files, generated, "dashboards/*.json");
}
