//! Test support: small purpose-built servers (well-behaved and faulty), the daemon in-process,
//! and helpers to run the binary and read `/metrics`.
#![allow(dead_code)]

pub mod faulty;
pub mod hostile;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use wsmon_probe::config::Config;
use wsmon_probe::run::daemon::Daemon;

/// The example feed on a free port, stopped when the returned guard drops.
pub use wsmon_testkit::feed::FeedServer as Feed;

pub async fn feed(rate: f64) -> Feed {
    Feed::start(wsmon_feed::FeedConfig {
        rate,
        ..Default::default()
    })
    .await
}

/// Writes `yaml` into a fresh temp dir and returns (dir guard, path).
pub fn config_file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

pub fn parse_config(yaml: &str) -> Config {
    Config::parse(yaml, std::path::Path::new("test.yaml"), &|_| None).expect("test config is valid")
}

pub const BIN: &str = env!("CARGO_BIN_EXE_wsmon-probe");

/// The prober binary with `args`, killed when the handle drops.
pub fn spawn_bin(args: &[&str], stdout: std::process::Stdio) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(args)
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("wsmon-probe {args:?}: {e}"))
}

pub use wsmon_testkit::daemon::ProberDaemon;

/// `wsmon-probe daemon` as its own process (its own runtime, apart from the test's servers),
/// on a free port, serving before this returns. `config` is the file without `listen:`.
pub async fn daemon_process(config: &str) -> ProberDaemon {
    ProberDaemon::start(std::path::Path::new(BIN), config).await
}

/// GET `url`, which must answer 200.
pub async fn metrics_at(url: &str) -> String {
    let (code, body) = get(url).await;
    assert_eq!(code, 200, "{url} must keep answering");
    body
}

/// Polls the metrics at `url` (asserting they answer every time) until `check` holds or
/// `limit` passes.
pub async fn wait_for_metrics(
    url: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let body = metrics_at(url).await;
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last {url}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the binary with `args` and an extra environment, bounded so a hang fails the test.
pub async fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("wsmon-probe finished within 60s")
        .expect("wsmon-probe runs")
}

/// `once --format json` on a config; returns the exit code and the one canary's JSON object.
pub async fn once_json(yaml: &str, duration: &str) -> (i32, serde_json::Value) {
    let run = once_run(yaml, duration).await;
    (run.code, run.json)
}

/// One `once` run of the binary, watched from outside.
pub struct OnceRun {
    pub code: i32,
    /// The one canary's JSON object.
    pub json: serde_json::Value,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// The highest resident set size seen (VmHWM), in KiB.
    pub peak_rss_kib: u64,
}

/// Peak resident set size of `pid` so far, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `once --format json` on a config, bounded at 60s, sampling the prober's peak RSS.
pub async fn once_run(yaml: &str, duration: &str) -> OnceRun {
    let (_dir, path) = config_file(yaml);
    let started = Instant::now();
    let child = tokio::process::Command::new(BIN)
        .args([
            "once",
            "-c",
            path.to_str().unwrap(),
            "--duration",
            duration,
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wsmon-probe runs");
    let pid = child.id().expect("a pid");
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("wsmon-probe finished within 60s")
        .expect("wsmon-probe runs");
    let wall = started.elapsed();
    // The child is reaped, so /proc/<pid> is gone and the sampler has stopped.
    let peak_rss_kib = sampler.await.unwrap_or(0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_else(|| {
        panic!(
            "no JSON on stdout; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    OnceRun {
        code: out.status.code().unwrap_or(-1),
        json,
        wall,
        peak_rss_kib,
    }
}

/// A daemon in-process with its HTTP server on a free port.
pub struct RunningDaemon {
    pub daemon: Daemon,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl RunningDaemon {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let daemon = Daemon::start(config).unwrap();
        let router = wsmon_probe::serve::router(daemon.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            daemon,
            addr,
            server,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        get(&format!("http://{}{path}", self.addr)).await
    }

    pub async fn metrics(&self) -> String {
        metrics_at(&format!("http://{}/metrics", self.addr)).await
    }

    /// Polls `/metrics` (asserting it answers every time) until `check` holds or `limit` passes.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        wait_for_metrics(&format!("http://{}/metrics", self.addr), limit, what, check).await
    }

    pub async fn stop(self) {
        self.daemon.shutdown().await;
        self.server.abort();
    }
}

pub async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of the sample `name{labels}` in Prometheus text, where `labels` is the exact
/// label set as rendered (e.g. `canary="a",reason="stall"`).
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let scrape = wsmon_testkit::exposition::Scrape::parse(text);
    let wanted = wsmon_testkit::exposition::Scrape::parse(&format!("{name}{{{labels}}} 0\n"));
    let wanted = &wanted.samples[0].labels;
    let value = scrape
        .matching(name, &[])
        .find(|s| s.labels == *wanted)
        .map(|s| s.value);
    value
}

/// [`sample`], or NaN where there is no such sample (so an equality check fails on it).
pub fn value(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or(f64::NAN)
}

/// `promtool check metrics` must find nothing to complain about.
pub fn promtool_check(metrics: &str) {
    wsmon_testkit::promtool::assert_metrics_clean(metrics);
}

/// A broadcast server: every text message a client sends is relayed to every connection with
/// a `seq` added, like a chat room. Used to publish nonces over a second WebSocket.
pub async fn relay_server() -> faulty::Server {
    use futures_util::{SinkExt, StreamExt};
    let (tx, _) = tokio::sync::broadcast::channel::<String>(256);
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    faulty::ws(move |ws| {
        let tx = tx.clone();
        let seq = seq.clone();
        async move {
            let mut rx = tx.subscribe();
            let (mut sink, mut stream) = ws.split();
            let _ = sink.send(faulty::seq_msg(seq.load(std::sync::atomic::Ordering::SeqCst))).await;
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                            let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(t.as_str()) else { continue };
                            let n = seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            o.insert("seq".into(), n.into());
                            let _ = tx.send(serde_json::Value::Object(o).to_string());
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    relayed = rx.recv() => match relayed {
                        Ok(text) => if sink.send(tokio_tungstenite::tungstenite::Message::text(text)).await.is_err() { return },
                        Err(_) => return,
                    },
                }
            }
        }
    })
    .await
}

/// Series one canary exports from the start, counted in the text exposition.
pub fn series_at_start(yaml: &str) -> usize {
    use std::sync::{Arc, RwLock};
    use wsmon_probe::record::metrics::{CanaryCollector, UpMeans};
    use wsmon_probe::record::recorder::CanaryRecorder;
    let cfg = parse_config(yaml).canaries.remove(0);
    let rec = Arc::new(CanaryRecorder::for_canary(
        &cfg,
        wsmon_probe::measure::Retention::Recent,
    ));
    let registry = prometheus::Registry::new();
    let set = Arc::new(RwLock::new(vec![rec]));
    registry
        .register(Box::new(CanaryCollector::new(set, UpMeans::Holding)))
        .unwrap();
    wsmon_testkit::exposition::Scrape::parse(&wsmon::export::prometheus::render(&registry))
        .samples
        .len()
}
