//! What a user's `Cargo.toml` meets: with default features, `wsmon` pulls in at most 10
//! crates beyond what axum (with `ws`), prometheus and tokio-tungstenite need on their own,
//! and none of the heavy optional ones.
//!
//! Both sides are computed, not written down, as a new user would meet them: two scratch
//! packages outside the workspace, one depending on `wsmon` (by path, default features), the
//! other on exactly `axum = { version = "0.8.9", features = ["ws"] }`, `prometheus = "0.14"`
//! and `tokio-tungstenite = "0.29"` with their default features. Both resolve against a copy
//! of the workspace's `Cargo.lock`, so they use the same versions. A count is the number of
//! distinct package names in `cargo tree -e normal`, without the scratch package itself;
//! wsmon counts as one of its own ten.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BUDGET: usize = 10;
const FORBIDDEN: [&str; 5] = ["redis", "tonic", "prost", "reqwest", "ring"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Distinct package names in `cargo tree -e normal`, minus `root`.
fn tree(dir: &Path, args: &[&str], root: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args([
            "tree", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != root)
        .map(str::to_owned)
        .collect()
}

/// The normal dependency tree of a scratch package (outside the workspace, so no workspace
/// member's features or dev-dependencies leak in) with these `[dependencies]`, resolved
/// against a copy of the workspace's lock file, offline.
fn scratch_tree(name: &str, dependencies: &str) -> BTreeSet<String> {
    let root = workspace_root();
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[workspace]\n\n[dependencies]\n{dependencies}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let names = tree(&dir, &["--offline"], name);
    std::fs::remove_dir_all(&dir).unwrap();
    names
}

#[test]
fn default_features_stay_within_ten_crates_of_axum_prometheus_and_tokio_tungstenite() {
    let middleware = env!("CARGO_MANIFEST_DIR");
    // What `wsmon = "0.1"` gives a new user; wsmon itself counts as one of the ten.
    let wsmon = scratch_tree(
        "wsmon-user",
        &format!("wsmon = {{ path = {middleware:?} }}\n"),
    );
    for name in FORBIDDEN {
        assert!(!wsmon.contains(name), "{name} is in wsmon's default tree");
    }
    let baseline = scratch_tree(
        "wsmon-baseline",
        "axum = { version = \"0.8.9\", features = [\"ws\"] }\n\
         prometheus = \"0.14\"\n\
         tokio-tungstenite = \"0.29\"\n",
    );
    assert!(baseline.contains("axum") && baseline.contains("prometheus"));
    assert!(wsmon.contains("wsmon") && wsmon.contains("axum"));
    let extra: Vec<&String> = wsmon.difference(&baseline).collect();
    eprintln!(
        "baseline {} crates, wsmon {} crates, extra: {extra:?}",
        baseline.len(),
        wsmon.len()
    );
    assert!(
        wsmon.len() <= baseline.len() + BUDGET,
        "wsmon's default tree has {} crates, the baseline {} (+{BUDGET} allowed); extra: {extra:?}",
        wsmon.len(),
        baseline.len()
    );
}

#[test]
fn the_optional_crates_come_only_with_their_features() {
    let root = workspace_root();
    let all = tree(&root, &["-p", "wsmon", "--all-features"], "wsmon");
    for name in ["tonic", "prost", "reqwest", "serde_json"] {
        assert!(all.contains(name), "{name} missing with --all-features");
    }
    let none = tree(&root, &["-p", "wsmon", "--no-default-features"], "wsmon");
    for name in ["axum", "hyper", "tonic", "reqwest", "serde_json"] {
        assert!(!none.contains(name), "{name} present without features");
    }
}
