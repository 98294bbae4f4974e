//! The README's integration example is the crate doc's, line for line, and the crate doc's
//! is compiled as a doctest. So the README cannot drift from code that builds.

use std::path::Path;

/// The lines of the first ```` ```rust ```` block after `heading` in markdown text.
fn readme_block(readme: &str, heading: &str) -> Vec<String> {
    let after = &readme[readme.find(heading).expect("heading in README")..];
    let body = &after[after.find("```rust\n").expect("a rust block") + "```rust\n".len()..];
    body[..body.find("```").unwrap()]
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The visible lines of the crate doc's first rust example (hidden `# ` lines left out).
fn crate_doc_block(lib_rs: &str) -> Vec<String> {
    let doc: Vec<&str> = lib_rs
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```rust")
        .expect("a rust example")
        + 1;
    let end = start + doc[start..].iter().position(|l| *l == "```").unwrap();
    doc[start..end]
        .iter()
        .filter(|l| !l.starts_with("# ") && **l != "#")
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn the_readme_integration_example_is_the_compiled_crate_doc_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let lib_rs = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let readme_lines = readme_block(&readme, "## Instrument an axum server");
    let doc_lines = crate_doc_block(&lib_rs);
    assert!(readme_lines.len() > 10, "{readme_lines:?}");
    assert_eq!(readme_lines, doc_lines);
}
