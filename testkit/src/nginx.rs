//! A real `nginx` (Debian's package) from a config written into a temp dir, in the
//! foreground (`nginx -c CONF -p DIR -g 'daemon off;'`), on loopback or inside a network
//! namespace. It never touches the package's own config or default site.
//!
//! ```no_run
//! # async fn f() {
//! use wsmon_testkit::nginx::Nginx;
//! let http = "server { listen 127.0.0.1:18080; location / { return 204; } }";
//! let mut nginx = Nginx::start(None, http, &[18080]).await.unwrap();
//! nginx.reload().await.unwrap(); // new workers; old ones finish the streams they hold
//! nginx.kill();                  // SIGKILL, master and workers
//! nginx.restart().await.unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::netns::Netns;
use crate::proxy_process::{self as daemon, DaemonError};

/// A running nginx; killed (master and workers) on drop.
pub struct Nginx {
    dir: PathBuf,
    conf: PathBuf,
    netns: Option<String>,
    ports: Vec<u16>,
    master: Option<Child>,
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("dir", &self.dir)
            .field("netns", &self.netns)
            .field("ports", &self.ports)
            .field("master", &self.master.as_ref().map(Child::id))
            .finish()
    }
}

/// The full config around the caller's `http { … }` contents: every path inside `dir`.
fn full_config(dir: &Path, http: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         access_log {d}/access.log;\n\
         client_body_temp_path {d}/client_body;\n\
         proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n\
         {http}\n\
         }}\n"
    )
}

impl Nginx {
    /// Writes the config (`http` is the body of the `http` block: servers, upstreams, maps),
    /// starts nginx, in `netns` when given, and waits until it listens on every one of
    /// `ports`.
    pub async fn start(
        netns: Option<&Netns>,
        http: &str,
        ports: &[u16],
    ) -> Result<Self, DaemonError> {
        daemon::require_installed("nginx", "nginx")?;
        let dir = daemon::temp_dir("nginx");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, full_config(&dir, http)).expect("write nginx.conf");
        let mut nginx = Self {
            dir,
            conf,
            netns: netns.map(|n| n.name().to_string()),
            ports: ports.to_vec(),
            master: None,
        };
        nginx.spawn().await?;
        Ok(nginx)
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = daemon::command(self.netns.as_deref(), "nginx");
        cmd.arg("-c").arg(&self.conf).arg("-p").arg(&self.dir);
        cmd
    }

    async fn spawn(&mut self) -> Result<(), DaemonError> {
        let mut cmd = self.command();
        cmd.args(["-g", "daemon off;"]);
        let log = self.log_path();
        let mut child = daemon::spawn(cmd, "nginx", "nginx", &log)?;
        if let Err(e) = daemon::wait_listening(&mut child, "nginx", &self.ports, &log).await {
            daemon::kill_tree(&mut child);
            return Err(e);
        }
        self.master = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nginx.out")
    }

    /// The master's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.master.as_ref().map(Child::id)
    }

    /// The master's current workers (old ones still draining included).
    pub fn workers(&self) -> Vec<u32> {
        self.pid().map(daemon::children).unwrap_or_default()
    }

    /// `nginx -s reload` with the same config and prefix, and waits until a new worker has
    /// started. Workers that hold connections keep serving them (see docs/proxies.md).
    pub async fn reload(&mut self) -> Result<(), DaemonError> {
        let before = self.workers();
        let mut cmd = self.command();
        cmd.args(["-s", "reload"]);
        let out = cmd.output().map_err(|e| DaemonError::Control {
            what: "nginx -s reload".into(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(DaemonError::Control {
                what: "nginx -s reload".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let deadline = tokio::time::Instant::now() + daemon::READY_WITHIN;
        while tokio::time::Instant::now() < deadline {
            if self.workers().iter().any(|w| !before.contains(w)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(DaemonError::Control {
            what: "nginx -s reload".into(),
            detail: format!(
                "no new worker within {:?} (workers before {before:?}, now {:?}); error log:\n{}",
                daemon::READY_WITHIN,
                self.workers(),
                self.error_log()
            ),
        })
    }

    /// Replaces the `http` block's body, then [`Nginx::reload`]s.
    pub async fn reload_with(&mut self, http: &str) -> Result<(), DaemonError> {
        std::fs::write(&self.conf, full_config(&self.dir, http)).expect("write nginx.conf");
        self.reload().await
    }

    /// SIGKILL to the master and its workers: every connection drops without a close frame.
    pub fn kill(&mut self) {
        if let Some(mut master) = self.master.take() {
            daemon::kill_tree(&mut master);
        }
    }

    /// [`Nginx::kill`], then the same config on the same ports.
    pub async fn restart(&mut self) -> Result<(), DaemonError> {
        self.kill();
        self.spawn().await
    }

    /// The tail of nginx's error log.
    pub fn error_log(&self) -> String {
        daemon::log_tail(&self.dir.join("error.log"), 40)
    }

    /// The temp dir holding the config and logs (for certificates the config names).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
