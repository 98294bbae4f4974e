//! `wsmon-probe daemon` as a child process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

pub struct ProberDaemon {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// The prober binary next to this test's own binary (`target/<profile>/wsmon-probe`).
///
/// `cargo test --workspace` already builds it (the prober's own integration tests need it). It
/// is rebuilt here only when missing or older than the sources it is made from, because a
/// `cargo build -p wsmon-probe` resolves features differently from the workspace test build
/// and would relink it from scratch every time.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join(format!("wsmon-probe{}", std::env::consts::EXE_SUFFIX));
    if is_newer_than_sources(&bin) {
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "wsmon-probe", "--bin", "wsmon-probe"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(wsmon_tests::repo::root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build wsmon-probe: {e}"));
    assert!(status.success(), "cargo build -p wsmon-probe failed");
    assert!(
        bin.is_file(),
        "{} not found after `cargo build -p wsmon-probe`",
        bin.display()
    );
    bin
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

fn is_newer_than_sources(bin: &Path) -> bool {
    let Some(built) = modified(bin) else {
        return false;
    };
    let root = wsmon_tests::repo::root();
    let sources = [
        "probe/src",
        "probe/Cargo.toml",
        "middleware/src",
        "middleware/Cargo.toml",
        "Cargo.lock",
    ];
    sources
        .iter()
        .all(|s| newest_under(&root.join(s)).is_some_and(|t| t <= built))
}

impl ProberDaemon {
    /// Starts `wsmon-probe daemon -c <dir>/probe.yaml` with `canaries_yaml` (the `canaries:`
    /// list, already indented) and waits for `/healthz`.
    pub async fn start(bin: &Path, dir: &Path, canaries_yaml: &str) -> Self {
        let addr = super::free_local_addr();
        let config = format!(
            "listen: {addr}\ndefaults:\n  connect_timeout: 2s\n  first_payload_timeout: 2s\n  \
             backoff: {{ initial: 200ms, max: 2s }}\ncanaries:\n{canaries_yaml}"
        );
        let path = dir.join("probe.yaml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("probe.log");
        let child = tokio::process::Command::new(bin)
            .arg("daemon")
            .arg("-c")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let http = reqwest::Client::new();
        let up = super::eventually(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                let r = http
                    .get(format!("http://{addr}/healthz"))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
        if up.is_none() {
            panic!(
                "wsmon-probe daemon did not serve /healthz on {addr}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Self { child, addr, log }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
