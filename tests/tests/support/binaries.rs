//! Workspace binaries the scenarios run as child processes: the prober, the example feed and
//! the proxy.
//!
//! Each is taken from next to this test's own binary (`target/<profile>/…`). `cargo test
//! --workspace --all-targets` already builds both, so they are rebuilt here only when missing
//! or older than the sources they are made from: a `cargo build -p …` resolves features
//! differently from the workspace test build and would relink from scratch every time.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One binary: where it lands under `target/<profile>/`, how cargo builds it, and the sources
/// that make it stale.
struct WorkspaceBinary {
    /// Relative to `target/<profile>/`.
    path: &'static str,
    /// `cargo build` arguments.
    build: &'static [&'static str],
    /// Relative to the workspace root.
    sources: &'static [&'static str],
}

/// `wsmon-probe`.
pub fn wsmon_probe() -> PathBuf {
    WorkspaceBinary {
        path: "wsmon-probe",
        build: &["-p", "wsmon-probe", "--bin", "wsmon-probe"],
        sources: &[
            "probe/src",
            "probe/Cargo.toml",
            "feed/src",
            "feed/Cargo.toml",
            "middleware/src",
            "middleware/Cargo.toml",
            "Cargo.lock",
        ],
    }
    .locate()
}

/// The example feed (`cargo run -p wsmon-feed`), as a process a test can `kill -9`.
pub fn example_feed() -> PathBuf {
    WorkspaceBinary {
        path: "wsmon-feed",
        build: &["-p", "wsmon-feed", "--bin", "wsmon-feed"],
        sources: &[
            "feed/src",
            "feed/Cargo.toml",
            "middleware/src",
            "middleware/Cargo.toml",
            "Cargo.lock",
        ],
    }
    .locate()
}

/// The `wsmon-proxy` sidecar.
pub fn wsmon_proxy() -> PathBuf {
    WorkspaceBinary {
        path: "wsmon-proxy",
        build: &["-p", "wsmon-proxy", "--bin", "wsmon-proxy"],
        sources: &[
            "proxy/src",
            "proxy/Cargo.toml",
            "middleware/src",
            "middleware/Cargo.toml",
            "Cargo.lock",
        ],
    }
    .locate()
}

impl WorkspaceBinary {
    fn locate(&self) -> PathBuf {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = profile_dir.join(format!("{}{}", self.path, std::env::consts::EXE_SUFFIX));
        if self.is_newer_than_sources(&bin) {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.arg("build").args(self.build);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let shown = format!("cargo build {}", self.build.join(" "));
        let status = cmd
            .current_dir(wsmon_tests::repo::root())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
        assert!(status.success(), "`{shown}` failed");
        assert!(bin.is_file(), "{} not found after `{shown}`", bin.display());
        bin
    }

    fn is_newer_than_sources(&self, bin: &Path) -> bool {
        let Some(built) = modified(bin) else {
            return false;
        };
        let root = wsmon_tests::repo::root();
        self.sources
            .iter()
            .all(|s| newest_under(&root.join(s)).is_some_and(|t| t <= built))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_under(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_under(&e.path()))
        .chain(own)
        .max()
}
