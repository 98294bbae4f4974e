//! Support for wsmon-proxy's black-box tests: foreign peers as processes, an in-process proxy,
//! and reading its metrics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use wsmon_proxy::{Proxy, Settings, Upstream};

pub fn foreign_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/foreign")
}

/// True when `tool` (and for node, the installed `ws` package) is available. Missing under
/// `CI=true` is a failure; elsewhere the test says so and passes nothing off as checked.
pub fn require(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ws = match tool {
        "node" => foreign_dir().join("node_modules/ws").exists(),
        "python3" => Command::new("python3")
            .args(["-c", "import websockets"])
            .status()
            .is_ok_and(|s| s.success()),
        _ => true,
    };
    if found && ws {
        return true;
    }
    let why = format!("{tool} or its WebSocket library is missing (run scripts/test.sh)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// A foreign upstream server process, killed on drop.
pub struct ForeignServer {
    pub child: Child,
    pub port: u16,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl ForeignServer {
    pub fn node() -> Self {
        Self::start("node", "node_server.js")
    }

    pub fn python() -> Self {
        Self::start("python3", "python_server.py")
    }

    fn start(program: &str, script: &str) -> Self {
        let mut child = Command::new(program)
            .arg(foreign_dir().join(script))
            .current_dir(foreign_dir())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} {script}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{script} did not print READY"));
        let port = ready
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} printed {ready:?}"));
        Self {
            child,
            port,
            lines: rx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next line printed after READY, within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ForeignServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a foreign client script to completion and returns its JSON line.
pub fn run_client(program: &str, script: &str, url: &str, mode: &str) -> serde_json::Value {
    let out = Command::new(program)
        .arg(foreign_dir().join(script))
        .args([url, mode])
        .current_dir(foreign_dir())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{script} {mode}: no JSON result; stdout {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A proxy running in this test's runtime.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    pub async fn start(upstream: &str, configure: impl FnOnce(&mut Settings)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::new(addr, Upstream::parse(upstream).unwrap());
        settings.routes = vec!["/ws".into(), "/rooms/{id}".into()];
        settings.close_code_allowlist = vec![4001];
        settings.metrics_listen = None;
        configure(&mut settings);
        let wsmon = settings.wsmon(&prometheus::Registry::new()).unwrap();
        let proxy = Proxy::new(settings, wsmon).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proxy.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            proxy,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn metrics(&self) -> String {
        self.proxy.wsmon().render()
    }

    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample(&self.metrics(), name, labels)
    }

    /// Polls until no relayed connection is live.
    pub async fn quiescent(&self, within: Duration) {
        let wsmon = self.proxy.wsmon();
        wait_until(
            within,
            || wsmon.active_connections() == 0,
            "connections to end",
        )
        .await;
    }

    /// Starts a graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.task.take().expect("running").await.unwrap();
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The value of the sample of `name` whose labels include all of `labels`; 0 when absent.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric = l.split(['{', ' ']).next().unwrap_or("");
            metric == name
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    matching.iter().sum()
}

/// Every `websocket_server_closes_total` sample that is not zero, as (initiator, code, value).
pub fn nonzero_closes(text: &str) -> Vec<(String, String, f64)> {
    let mut out = vec![];
    for l in text
        .lines()
        .filter(|l| l.starts_with("websocket_server_closes_total{"))
    {
        let value: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        if value == 0.0 {
            continue;
        }
        let label = |k: &str| {
            let start = l.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
            l[start..].split('"').next().unwrap().to_owned()
        };
        out.push((label("initiator"), label("close_code"), value));
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WebSocket client on a raw socket, for sending what no library would.
pub struct RawClient {
    pub stream: tokio::net::TcpStream,
}

impl RawClient {
    /// Connects and completes the upgrade for `path`; panics unless the answer is 101.
    pub async fn upgrade(addr: SocketAddr, path: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![];
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "upgrade answer ended"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads until EOF (or `within`), returning the close code of the first close frame seen.
    pub async fn close_code(&mut self, within: Duration) -> Option<u16> {
        use tokio::io::AsyncReadExt;
        let mut all = vec![];
        let _ = tokio::time::timeout(within, async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        // Frames from the server are unmasked; walk them to the first close.
        let mut i = 0;
        while i + 2 <= all.len() {
            let (op, len7) = (all[i] & 0x0f, (all[i + 1] & 0x7f) as usize);
            let (len, hdr) = match len7 {
                126 => (u16::from_be_bytes([all[i + 2], all[i + 3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(all[i + 2..i + 10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n, 2),
            };
            if op == 8 && len >= 2 {
                return Some(u16::from_be_bytes([all[i + hdr], all[i + hdr + 1]]));
            }
            i += hdr + len;
        }
        None
    }
}

/// One final frame, masked with `mask` if given.
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    wsmon_proxy::frame::encode(true, opcode, payload, mask)
}

/// An in-process tokio-tungstenite echo upstream.
pub async fn echo_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// An upstream on a raw socket: it answers one upgrade with a 101 and then reads and writes
/// exactly what the test says, to see the relay's bytes and ends as the upstream does.
pub struct RawUpstream {
    pub addr: SocketAddr,
    accepted: tokio::sync::oneshot::Receiver<tokio::net::TcpStream>,
}

impl RawUpstream {
    pub async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = vec![];
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            // The key is the RawClient's fixed one, so this is its RFC 6455 answer.
            let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                          Connection: Upgrade\r\n\
                          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            stream.write_all(answer.as_bytes()).await.unwrap();
            let _ = tx.send(stream);
        });
        Self { addr, accepted }
    }

    /// The upgraded connection, once the proxy has opened it.
    pub async fn stream(self) -> tokio::net::TcpStream {
        tokio::time::timeout(Duration::from_secs(10), self.accepted)
            .await
            .expect("the proxy opened the upstream leg")
            .expect("the upstream accepted")
    }
}

/// Reads `stream` until EOF or `within`: the bytes, and whether EOF came.
pub async fn read_to_end(stream: &mut tokio::net::TcpStream, within: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut all = vec![];
    let ended = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (all, ended)
}
