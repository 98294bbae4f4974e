//! `docs/metrics.md` is generated from the catalog; this keeps the committed tables in step.

use std::path::PathBuf;

const BEGIN: &str = "<!-- catalog:begin -->\n";
const END: &str = "<!-- catalog:end -->";

#[test]
fn docs_metrics_md_matches_the_catalog() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let doc = std::fs::read_to_string(&path).expect("docs/metrics.md exists");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = wsmon_catalog::docs::markdown_tables();
    if std::env::var_os("WSMON_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc[start..end] == generated,
        "docs/metrics.md is out of date with catalog/src; regenerate with\n  \
         WSMON_BLESS=1 cargo test -p wsmon-catalog --test metrics_md"
    );
}
