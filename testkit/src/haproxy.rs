//! A real `haproxy` (Debian's package) from a config written into a temp dir, in the
//! foreground (`haproxy -f CFG -db`), on loopback or inside a network namespace. The
//! package's own service and config are never used.
//!
//! ```no_run
//! # async fn f() {
//! use wsmon_testkit::haproxy::HaProxy;
//! let cfg = "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  \
//!            timeout server 30s\n  timeout tunnel 3s\n\
//!            frontend fe\n  bind 127.0.0.1:18081\n  default_backend be\n\
//!            backend be\n  server feed 127.0.0.1:18082\n";
//! let mut haproxy = HaProxy::start(None, cfg, &[18081]).await.unwrap();
//! haproxy.kill();
//! haproxy.restart().await.unwrap();
//! # }
//! ```

use std::path::PathBuf;
use std::process::Child;

use crate::netns::Netns;
use crate::proxy_process::{self as daemon, DaemonError};

/// A running haproxy; killed on drop.
pub struct HaProxy {
    dir: PathBuf,
    cfg: PathBuf,
    netns: Option<String>,
    ports: Vec<u16>,
    child: Option<Child>,
}

impl std::fmt::Debug for HaProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaProxy")
            .field("dir", &self.dir)
            .field("netns", &self.netns)
            .field("ports", &self.ports)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

impl HaProxy {
    /// Writes `config` (the `defaults`, `frontend` and `backend` sections; a `global`
    /// section is prepended) and starts haproxy, in `netns` when given, waiting until it
    /// listens on every one of `ports`.
    pub async fn start(
        netns: Option<&Netns>,
        config: &str,
        ports: &[u16],
    ) -> Result<Self, DaemonError> {
        daemon::require_installed("haproxy", "haproxy")?;
        let dir = daemon::temp_dir("haproxy");
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, format!("global\n  maxconn 4096\n\n{config}"))
            .expect("write haproxy.cfg");
        let mut haproxy = Self {
            dir,
            cfg,
            netns: netns.map(|n| n.name().to_string()),
            ports: ports.to_vec(),
            child: None,
        };
        haproxy.spawn().await?;
        Ok(haproxy)
    }

    async fn spawn(&mut self) -> Result<(), DaemonError> {
        let mut cmd = daemon::command(self.netns.as_deref(), "haproxy");
        cmd.arg("-f").arg(&self.cfg).arg("-db");
        let log = self.dir.join("haproxy.out");
        let mut child = daemon::spawn(cmd, "haproxy", "haproxy", &log)?;
        if let Err(e) = daemon::wait_listening(&mut child, "haproxy", &self.ports, &log).await {
            daemon::kill_tree(&mut child);
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    /// Its PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: every connection drops without a close frame.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            daemon::kill_tree(&mut child);
        }
    }

    /// [`HaProxy::kill`], then the same config on the same ports.
    pub async fn restart(&mut self) -> Result<(), DaemonError> {
        self.kill();
        self.spawn().await
    }

    /// The tail of its output.
    pub fn log(&self) -> String {
        daemon::log_tail(&self.dir.join("haproxy.out"), 40)
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
