//! What the proxy harnesses share: a server process started in the foreground from a
//! config in a temp dir (optionally inside a network namespace), waited for until it
//! listens, and stopped by PID, its workers included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Why a proxy could not be started or reloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The binary is not installed.
    #[error("cannot start `{program}` ({source}): install Debian's `{package}` package (`bash scripts/test.sh` does)")]
    Missing {
        /// The program.
        program: String,
        /// Its Debian package.
        package: &'static str,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// It exited, or never listened on every port.
    #[error("{program} did not listen on ports {ports:?} within {within:?} (exit: {exit:?}); its log:\n{log}")]
    NotListening {
        /// The program.
        program: String,
        /// The ports it was to listen on.
        ports: Vec<u16>,
        /// How long it was given.
        within: Duration,
        /// Its exit status, if it exited.
        exit: Option<std::process::ExitStatus>,
        /// The tail of its log.
        log: String,
    },
    /// A control command (`nginx -s reload`) failed, or its effect was not seen.
    #[error("{what}: {detail}")]
    Control {
        /// What was asked.
        what: String,
        /// What happened instead.
        detail: String,
    },
}

/// How long a proxy gets to listen or to finish a reload.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

/// A command for `program`, inside namespace `netns` when given (`ip netns exec` execs
/// it, so the child's PID is the program's own).
pub fn command(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// Spawns `cmd` with stdout and stderr appended to `log`.
pub fn spawn(
    mut cmd: Command,
    program: &str,
    package: &'static str,
    log: &Path,
) -> Result<Child, DaemonError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("proxy log file");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("log fd"))
        .stderr(file)
        .spawn()
        .map_err(|source| DaemonError::Missing {
            program: program.to_string(),
            package,
            source,
        })
}

/// Fails early with a clear message when `program` is not on PATH (`ip netns exec` would
/// otherwise start and report it only in the log).
pub fn require_installed(program: &str, package: &'static str) -> Result<(), DaemonError> {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|source| DaemonError::Missing {
            program: program.to_string(),
            package,
            source,
        })
}

/// TCP ports in LISTEN state in the network namespace of `pid`, from `/proc/PID/net/tcp`
/// (which shows that process's namespace, so this works inside one too).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let mut ports = Vec::new();
    for file in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if fields.len() > 3 && fields[3] == "0A" {
                if let Some(port) = fields[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

/// Waits until `child` listens on every one of `ports`; fails if it exits first.
pub async fn wait_listening(
    child: &mut Child,
    program: &str,
    ports: &[u16],
    log: &Path,
) -> Result<(), DaemonError> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let exit = child.try_wait().ok().flatten();
        let listening = listening_ports(child.id());
        if exit.is_none() && ports.iter().all(|p| listening.contains(p)) {
            return Ok(());
        }
        if exit.is_some() || tokio::time::Instant::now() >= deadline {
            return Err(DaemonError::NotListening {
                program: program.to_string(),
                ports: ports.to_vec(),
                within: READY_WITHIN,
                exit,
                log: log_tail(log, 30),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PIDs whose parent is `pid` (a master's workers), from `/proc/*/stat`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// SIGKILL to `child` and to its workers (which would otherwise outlive it, holding the
/// listening sockets and their connections), then reaps it.
pub fn kill_tree(child: &mut Child) {
    let workers = children(child.id());
    let _ = child.kill();
    for w in workers {
        // SAFETY: kill has no memory preconditions; these are our own child's children.
        unsafe { libc::kill(w as i32, libc::SIGKILL) };
    }
    let _ = child.wait();
}

/// The last `lines` lines of `path`.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A fresh temp dir for one proxy's config, logs and runtime files.
pub fn temp_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsmon-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("proxy temp dir");
    dir
}
