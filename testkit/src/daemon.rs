//! `wsmon-probe daemon` as a child process: its own runtime, apart from the test's servers,
//! on a free port, killed when the handle drops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A running `wsmon-probe daemon`, answering `/healthz` by the time [`ProberDaemon::start`]
/// returns.
#[derive(Debug)]
pub struct ProberDaemon {
    child: tokio::process::Child,
    /// Where it serves `/metrics`, `/probe`, `/status` and `/healthz`.
    pub addr: SocketAddr,
    /// `http://<addr>/metrics`.
    pub metrics_url: String,
    /// Its stderr.
    pub log: PathBuf,
    // Holds the config file and the log for the daemon's life.
    _dir: tempfile::TempDir,
}

impl ProberDaemon {
    /// Starts `bin daemon` on `config`, the config file without `listen:` (set here to a free
    /// port), and waits up to 30 s for `/healthz`; a daemon that never answers fails the test
    /// with its log.
    ///
    /// It logs at `warn`, and each reconnect with its jittered delay at `info`, which
    /// [`ProberDaemon::reconnect_delays`] reads back.
    pub async fn start(bin: &Path, config: &str) -> Self {
        let addr = crate::free_local_addr();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("probe.yaml");
        std::fs::write(&path, format!("listen: {addr}\n{config}")).expect("write the config");
        let log = dir.path().join("probe.log");
        let child = tokio::process::Command::new(bin)
            .arg("daemon")
            .arg("-c")
            .arg(&path)
            .env("RUST_LOG", "warn,wsmon_probe::run::daemon=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let daemon = Self {
            child,
            addr,
            metrics_url: format!("http://{addr}/metrics"),
            log,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let healthz = format!("http://{addr}/healthz");
        let up = crate::eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let r = http.get(&healthz).send().await.ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
        if up.is_none() {
            panic!(
                "wsmon-probe daemon did not serve {healthz}:\n{}",
                daemon.log_text()
            );
        }
        daemon
    }

    /// The process id, for reading its resources from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the daemon runs")
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The delays the daemon chose before each reconnect of `canary`, in order, from its log.
    pub fn reconnect_delays(&self, canary: &str) -> Vec<Duration> {
        let log = without_ansi_colours(&self.log_text());
        let canary_field = format!("canary={canary} ");
        log.lines()
            .filter(|l| l.contains("reconnecting after backoff") && l.contains(&canary_field))
            .filter_map(|l| {
                let ms = l.split("delay_ms=").nth(1)?;
                let ms: String = ms.chars().take_while(char::is_ascii_digit).collect();
                ms.parse().ok().map(Duration::from_millis)
            })
            .collect()
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Drops `ESC [ … m` sequences, in case the log was written with colours after all.
fn without_ansi_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
