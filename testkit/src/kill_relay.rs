//! A loopback TCP relay whose connections a test kills mid-stream: the fault a resume must
//! survive, for a client (such as the prober) whose sockets the test does not hold.
//!
//! Each accepted connection goes to the next upstream in turn (one that refuses is passed
//! over for the one after it). Killing drops both sides with `SO_LINGER` 0, so each sees an
//! RST and whatever was in flight is lost. The relay records the request line each connection
//! opened with, so a test can check the URL a client dialled.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The relay; it stops serving when dropped.
pub struct KillRelay {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for KillRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillRelay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct Shared {
    upstreams: Vec<SocketAddr>,
    /// Bumped by [`KillRelay::kill_all`]; each connection ends when it changes.
    kills: watch::Sender<u64>,
    /// While true, new connections wait before going upstream.
    held: watch::Sender<bool>,
    /// Each connection lives a random time in this range, then is killed.
    lifetime: Mutex<Option<(Duration, Duration)>>,
    request_lines: Mutex<Vec<String>>,
    next: Mutex<u64>,
}

impl KillRelay {
    /// Starts relaying from a free loopback port to `upstreams`, in turn.
    pub async fn start(upstreams: Vec<SocketAddr>) -> Self {
        assert!(!upstreams.is_empty(), "a relay needs an upstream");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstreams,
            kills: watch::channel(0).0,
            held: watch::channel(false).0,
            lifetime: Mutex::new(None),
            request_lines: Mutex::new(Vec::new()),
            next: Mutex::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(serving.clone(), client));
            }
        });
        Self { addr, shared, task }
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Kills every connection now open.
    pub fn kill_all(&self) {
        self.shared.kills.send_modify(|n| *n += 1);
    }

    /// From now on, kills each connection a random time between `min` and `max` after it
    /// opened.
    pub fn kill_every(&self, min: Duration, max: Duration) {
        *self.shared.lifetime.lock().unwrap() = Some((min, max.max(min)));
    }

    /// Holds new connections (accepted, not yet relayed) until [`KillRelay::release`].
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Lets held and new connections through.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// The request line of every connection so far, in order (`GET /ws?from=7 HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.shared.request_lines.lock().unwrap().clone()
    }
}

impl Drop for KillRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.kill_all();
    }
}

/// A small xorshift: the lifetimes' jitter, reproducible, with no dependency.
fn jitter(seed: u64, min: Duration, max: Duration) -> Duration {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let span = (max - min).as_millis() as u64;
    min + Duration::from_millis(if span == 0 { 0 } else { x % span })
}

async fn relay(shared: Arc<Shared>, mut client: TcpStream) {
    let _ = client.set_zero_linger();
    let mut kills = shared.kills.subscribe();
    kills.borrow_and_update();
    let mut held = shared.held.subscribe();
    let released = held.wait_for(|h| !*h);
    tokio::select! {
        r = released => if r.is_err() { return },
        _ = kills.changed() => return,
    }
    let n = {
        let mut next = shared.next.lock().unwrap();
        *next += 1;
        *next - 1
    };
    let mut upstream = None;
    for i in 0..shared.upstreams.len() as u64 {
        let addr = shared.upstreams[((n + i) % shared.upstreams.len() as u64) as usize];
        if let Ok(s) = TcpStream::connect(addr).await {
            upstream = Some(s);
            break;
        }
    }
    let Some(mut upstream) = upstream else { return };
    let _ = upstream.set_zero_linger();
    let lifetime = *shared.lifetime.lock().unwrap();
    let die = async move {
        match lifetime {
            Some((min, max)) => tokio::time::sleep(jitter(n, min, max)).await,
            None => std::future::pending().await,
        }
    };
    let pipe = async {
        // Read until the request line is whole, then copy both ways.
        let mut line = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            upstream.write_all(&buf[..n]).await?;
            line.extend_from_slice(&buf[..n]);
            if let Some(end) = line.windows(2).position(|w| w == b"\r\n") {
                let text = String::from_utf8_lossy(&line[..end]).into_owned();
                shared.request_lines.lock().unwrap().push(text);
                break;
            }
        }
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok(())
    };
    tokio::select! {
        _ = pipe => {}
        _ = kills.changed() => {}
        _ = die => {}
    }
    // Dropping both with linger 0 sends each an RST.
}
