//! docs/probe.md documents every failure reason and every canary key the code knows.

use wsmon_probe::config::CANARY_KEYS;
use wsmon_probe::failure::FailureReason;

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/probe.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_failure_reason_has_a_row_in_docs_probe_md() {
    let doc = doc();
    for r in FailureReason::ALL {
        let row = format!(
            "| `{}` | {} |",
            r.as_str(),
            if r.ends_stream() { "yes" } else { "no" }
        );
        assert!(
            doc.contains(&row),
            "docs/probe.md lacks the row starting {row:?}"
        );
    }
}

#[test]
fn every_canary_key_is_documented() {
    let doc = doc();
    for key in CANARY_KEYS {
        assert!(
            doc.contains(&format!("| `{key}` |")) || doc.contains(&format!("| `{key}.")),
            "docs/probe.md does not document canary key {key:?}"
        );
    }
}
