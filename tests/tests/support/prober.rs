//! `wsmon-probe daemon` as a child process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub struct ProberDaemon {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
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
            // The daemon logs each reconnect with its jittered delay at info: scenarios read them.
            .env("RUST_LOG", "warn,wsmon_probe::run::daemon=info")
            .env("NO_COLOR", "1")
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

impl ProberDaemon {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
