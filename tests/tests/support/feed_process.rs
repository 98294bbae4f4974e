//! The example feed as a child process, so a scenario can `kill -9` it and start it again on
//! the same port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub struct FeedProcess {
    child: Option<tokio::process::Child>,
    /// Where the test (and Prometheus) reach it: its listen address, or on loopback the
    /// relay into its namespace.
    pub addr: SocketAddr,
    /// Its `--listen`.
    pub listen: SocketAddr,
    netns: Option<(String, wsmon_testkit::netns::Forward)>,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl FeedProcess {
    /// Starts `feed --listen <free port> ARGS...`, logging to `<dir>/feed-<name>.log`, and
    /// waits until its `/metrics` answers.
    pub async fn start(bin: &Path, dir: &Path, name: &str, args: &[String]) -> Self {
        let addr = super::free_local_addr();
        let mut feed = Self {
            child: None,
            addr,
            listen: addr,
            netns: None,
            bin: bin.to_path_buf(),
            args: args.to_vec(),
            log: dir.join(format!("feed-{name}.log")),
        };
        feed.spawn().await;
        feed
    }

    /// [`FeedProcess::start`] inside `netns`, listening on `listen` there; reached through
    /// a loopback relay.
    pub async fn start_in(
        netns: &wsmon_testkit::netns::Netns,
        listen: SocketAddr,
        bin: &Path,
        dir: &Path,
        name: &str,
        args: &[String],
    ) -> Self {
        let forward = netns
            .forward_from_loopback(listen)
            .expect("relay into the feed's namespace");
        let mut feed = Self {
            child: None,
            addr: forward.addr,
            listen,
            netns: Some((netns.name().to_string(), forward)),
            bin: bin.to_path_buf(),
            args: args.to_vec(),
            log: dir.join(format!("feed-{name}.log")),
        };
        feed.spawn().await;
        feed
    }

    /// Its PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// SIGTERM, as a deploy drains an instance; waits (15 s at most) until it exits.
    pub async fn sigterm(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id()? as i32;
        // SAFETY: kill has no memory preconditions; the PID is our own running child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    async fn spawn(&mut self) {
        let http = reqwest::Client::new();
        // A port just freed by a killed process can take a moment to bind again: retry.
        for _ in 0..20 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap();
            let mut command = match &self.netns {
                Some((ns, _)) => {
                    let mut c = tokio::process::Command::new("ip");
                    c.args(["netns", "exec", ns]).arg(&self.bin);
                    c
                }
                None => tokio::process::Command::new(&self.bin),
            };
            let mut child = command
                .arg("--listen")
                .arg(self.listen.to_string())
                .args(&self.args)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let mut serving = false;
            while !serving && tokio::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was not free yet
                }
                serving = http
                    .get(format!("http://{}/metrics", self.addr))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !serving {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if serving {
                self.child = Some(child);
                return;
            }
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "the example feed did not serve on {}:\n{}",
            self.addr,
            self.log_tail()
        );
    }

    /// SIGKILL: no close frames, no goodbye; the kernel drops every connection.
    pub async fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9 the feed");
        }
    }

    /// The same feed, with the same arguments, on the same address.
    pub async fn restart(&mut self) {
        self.kill_9().await;
        self.spawn().await;
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}
