//! Headless Chromium (Debian package `chromium`) as a test client: run it with any
//! arguments and take its stdout (`--dump-dom`), or a PNG screenshot, with a deadline.
//!
//! Each run gets its own throw-away profile directory and its own process group, and the
//! whole group is killed when the run ends or its guard drops (a panicking test leaves no
//! renderer behind).
//!
//! ```no_run
//! use std::time::Duration;
//! let chromium = wsmon_testkit::chromium::Chromium::locate().unwrap();
//! let dom = chromium
//!     .dump_dom("data:text/html,<p id=x></p><script>x.textContent='js'</script>")
//!     .unwrap();
//! assert!(dom.contains("<p id=\"x\">js</p>"));
//! ```

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a Chromium run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChromiumError {
    /// No `chromium` binary (or `$CHROMIUM`) could be started.
    #[error(
        "chromium is not installed (or not on PATH; `$CHROMIUM` overrides): `bash \
         scripts/test.sh` installs it (Debian package `chromium`): {0}"
    )]
    Missing(#[source] std::io::Error),
    /// Starting the process or its profile directory failed.
    #[error("starting chromium {args:?}: {source}")]
    Spawn {
        /// The arguments it was given.
        args: Vec<OsString>,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// It ran past the deadline and was killed.
    #[error("chromium {args:?} did not finish within {limit:?} (killed); stderr tail:\n{stderr}")]
    Timeout {
        /// The arguments it was given.
        args: Vec<OsString>,
        /// The deadline.
        limit: Duration,
        /// The end of its stderr.
        stderr: String,
    },
    /// It exited unsuccessfully.
    #[error("chromium {args:?} exited with {status}; stderr tail:\n{stderr}")]
    Failed {
        /// The arguments it was given.
        args: Vec<OsString>,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr.
        stderr: String,
    },
    /// `--screenshot` exited successfully but wrote no PNG.
    #[error("chromium exited successfully but wrote no PNG at {0}")]
    NoScreenshot(PathBuf),
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Output {
    /// Its stdout (the DOM, with `--dump-dom`).
    pub stdout: String,
    /// Its stderr (Chromium logs there, noisily).
    pub stderr: String,
}

/// A headless Chromium to run: the binary, the arguments every run gets, and a deadline.
#[derive(Debug, Clone)]
pub struct Chromium {
    binary: OsString,
    args: Vec<OsString>,
    timeout: Duration,
}

impl Chromium {
    /// Finds `$CHROMIUM` or `chromium` on PATH and checks that it starts (`--version`).
    ///
    /// Every run is `--headless=new --no-sandbox --disable-gpu` (tests often run as root,
    /// where the sandbox refuses to start) with a fresh profile and no first-run UI, and a
    /// 60 s deadline (generous: CI machines are shared and loaded).
    pub fn locate() -> Result<Self, ChromiumError> {
        let binary = std::env::var_os("CHROMIUM").unwrap_or_else(|| "chromium".into());
        Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(ChromiumError::Missing)?;
        Ok(Self {
            binary,
            args: [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--metrics-recording-only",
                "--mute-audio",
            ]
            .map(OsString::from)
            .to_vec(),
            timeout: Duration::from_secs(60),
        })
    }

    /// [`Chromium::locate`], panicking with the install hint when it is missing: a test that
    /// needs a browser fails loudly rather than passing without one.
    pub fn require() -> Self {
        Self::locate().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adds an argument to every run (e.g. `--ignore-certificate-errors`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments to every run.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets the deadline of each run (default 60 s); past it the run is killed.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Starts Chromium with the common arguments, then `extra`, and leaves it running: for a
    /// page that reports back to the test's server, which then ends the run with
    /// [`Browser::finish`]. Dropping the [`Browser`] kills it.
    pub fn spawn<I, S>(&self, extra: I) -> Result<Browser, ChromiumError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let profile = Profile::create()?;
        let mut args = self.args.clone();
        let mut user_data_dir = OsString::from("--user-data-dir=");
        user_data_dir.push(profile.path());
        args.push(user_data_dir);
        args.extend(extra.into_iter().map(|a| a.as_ref().to_owned()));
        let mut child = Command::new(&self.binary)
            .args(&args)
            // Its own group, so the renderer and GPU processes die with it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ChromiumError::Spawn {
                args: args.clone(),
                source,
            })?;
        Ok(Browser {
            stdout: Some(drain(child.stdout.take().expect("piped stdout"))),
            stderr: Some(drain(child.stderr.take().expect("piped stderr"))),
            running: Running { child: Some(child) },
            args,
            _profile: profile,
        })
    }

    /// Runs Chromium with the common arguments, then `extra`, and waits for it to exit
    /// (within the deadline, or it is killed).
    ///
    /// Blocking: from an async test, call it in `tokio::task::spawn_blocking` so the server
    /// under test keeps running.
    pub fn run<I, S>(&self, extra: I) -> Result<Output, ChromiumError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut browser = self.spawn(extra)?;
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match browser.try_wait()? {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let args = browser.args.clone();
        let output = browser.finish();
        match status {
            None => Err(ChromiumError::Timeout {
                args,
                limit: self.timeout,
                stderr: tail(&output.stderr),
            }),
            Some(status) if !status.success() => Err(ChromiumError::Failed {
                args,
                status,
                stderr: tail(&output.stderr),
            }),
            Some(_) => Ok(output),
        }
    }

    /// Loads `url` and returns the DOM after its scripts ran.
    ///
    /// `--virtual-time-budget` lets the page's timers and network settle first; tests that
    /// wait on sockets should pass their own budget through [`Chromium::run`].
    pub fn dump_dom(&self, url: &str) -> Result<String, ChromiumError> {
        self.run(["--virtual-time-budget=10000", "--dump-dom", url])
            .map(|o| o.stdout)
    }

    /// Loads `url` in a `width`×`height` window and writes a PNG screenshot to `png`.
    pub fn screenshot(
        &self,
        url: &str,
        png: &Path,
        width: u32,
        height: u32,
    ) -> Result<Output, ChromiumError> {
        let _ = std::fs::remove_file(png);
        let mut shot = OsString::from("--screenshot=");
        shot.push(png);
        let window = format!("--window-size={width},{height}");
        let output = self.run([
            shot,
            window.into(),
            "--hide-scrollbars".into(),
            "--virtual-time-budget=10000".into(),
            url.into(),
        ])?;
        match std::fs::read(png) {
            Ok(bytes) if bytes.starts_with(b"\x89PNG\r\n\x1a\n") => Ok(output),
            _ => Err(ChromiumError::NoScreenshot(png.to_owned())),
        }
    }
}

/// A browser started by [`Chromium::spawn`]; dropping it kills its whole process group.
#[derive(Debug)]
pub struct Browser {
    running: Running,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    args: Vec<OsString>,
    _profile: Profile,
}

impl Browser {
    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ChromiumError> {
        let args = &self.args;
        self.running
            .child_mut()
            .try_wait()
            .map_err(|source| ChromiumError::Spawn {
                args: args.clone(),
                source,
            })
    }

    /// Kills it (if still running) and returns what it printed.
    pub fn finish(mut self) -> Output {
        // Killing the group also closes the pipes the readers hold, so they end.
        self.running.kill_group();
        let read = |h: Option<JoinHandle<Vec<u8>>>| {
            let bytes = h.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Output {
            stdout: read(self.stdout.take()),
            stderr: read(self.stderr.take()),
        }
    }
}

#[derive(Debug)]
struct Running {
    child: Option<Child>,
}

impl Running {
    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child until killed")
    }

    fn kill_group(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals that process group; no memory
            // is involved. The group is ours (process_group(0) above).
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// A fresh `--user-data-dir`, removed afterwards.
#[derive(Debug)]
struct Profile(PathBuf);

impl Profile {
    fn create() -> Result<Self, ChromiumError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsmon-chromium-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|source| ChromiumError::Spawn {
            args: Vec::new(),
            source,
        })?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The last lines of Chromium's (long, noisy) stderr, for an error message.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_dom_returns_the_dom_after_scripts_ran() {
        let dom = Chromium::require()
            .dump_dom("data:text/html,<p id=x>html</p><script>x.textContent='js'</script>")
            .unwrap();
        assert!(dom.contains(r#"<p id="x">js</p>"#), "{dom}");
    }

    #[test]
    fn screenshot_writes_a_png_of_the_window_size() {
        let png = std::env::temp_dir().join(format!("wsmon-shot-{}.png", std::process::id()));
        Chromium::require()
            .screenshot("data:text/html,<h1>shot</h1>", &png, 320, 200)
            .unwrap();
        let bytes = std::fs::read(&png).unwrap();
        std::fs::remove_file(&png).unwrap();
        // IHDR: width and height, big-endian, right after the 8-byte signature and the
        // chunk's length and type.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (320, 200));
    }

    #[test]
    fn a_run_past_its_deadline_is_killed_and_says_so() {
        let started = Instant::now();
        let err = Chromium::require()
            .timeout(Duration::from_millis(300))
            // Without --dump-dom or --screenshot, headless Chromium stays up until killed.
            .run(["data:text/html,<p>idle</p>"])
            .unwrap_err();
        assert!(matches!(err, ChromiumError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
