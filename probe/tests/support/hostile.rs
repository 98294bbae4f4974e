//! Hostile servers: each breaks the WebSocket (or HTTP, or TCP) contract in one way, written
//! byte by byte where tungstenite would refuse to misbehave.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::faulty::{self, Server};

/// How long a hostile server keeps a connection before giving up on its own.
const HOLD: Duration = Duration::from_secs(30);

/// Reads an HTTP request head; returns its `Sec-WebSocket-Key`, or `None` if the client left.
async fn read_upgrade_request(tcp: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        seen.extend_from_slice(&buf[..n]);
        if seen.len() > 64 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&seen);
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    })
}

fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// Reads and discards until the peer leaves or `HOLD` passes (keeps the connection open and
/// stops the prober's writes from blocking).
async fn drain(mut read: impl tokio::io::AsyncRead + Unpin) {
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(HOLD, async {
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A server frame (never masked): `first` is the FIN/RSV/opcode byte.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    wsmon_testkit::frame::encode(first, None, payload)
}

#[allow(unused_imports)] // each test binary uses some of them
pub use wsmon_testkit::frame::{CLOSE, CONTINUATION, FIN, PING, RSV1, TEXT};

/// `{"seq":N}` as one final text frame.
pub fn seq_frame(seq: u64) -> Vec<u8> {
    frame(FIN | TEXT, format!(r#"{{"seq":{seq}}}"#).as_bytes())
}

/// Completes a correct upgrade by hand, then runs `behave` on the raw TCP stream: for frames
/// tungstenite would never send.
pub async fn upgraded<F, Fut>(behave: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let behave = std::sync::Arc::new(behave);
    faulty::raw(move |mut tcp| {
        let behave = behave.clone();
        async move {
            let Some(key) = read_upgrade_request(&mut tcp).await else {
                return;
            };
            let accept = derive_accept_key(key.as_bytes());
            if tcp
                .write_all(switching_protocols(&accept).as_bytes())
                .await
                .is_ok()
            {
                behave(tcp).await;
            }
        }
    })
    .await
}

/// Upgrades, writes `bytes` once (after one good `{"seq":1}` so the stream has started), then
/// reads until the prober leaves.
pub async fn sends_after_upgrade(bytes: Vec<u8>) -> Server {
    upgraded(move |tcp| {
        let bytes = bytes.clone();
        async move {
            let (read, mut write) = tcp.into_split();
            let mut all = seq_frame(1);
            all.extend_from_slice(&bytes);
            if write.write_all(&all).await.is_ok() {
                drain(read).await;
            }
        }
    })
    .await
}

/// Upgrades, then writes what `next` returns as fast as the socket takes it, forever (while
/// draining whatever the prober sends).
pub async fn floods(next: fn(u64) -> Vec<u8>) -> Server {
    upgraded(move |tcp| async move {
        let (read, mut write) = tcp.into_split();
        let reader = tokio::spawn(drain(read));
        let mut n = 0u64;
        loop {
            // Batches keep the writes large: wire speed, not syscall speed.
            let mut batch = Vec::with_capacity(64 * 1024);
            while batch.len() < 60 * 1024 {
                n += 1;
                batch.extend_from_slice(&next(n));
            }
            if write.write_all(&batch).await.is_err() {
                break;
            }
        }
        reader.abort();
    })
    .await
}

/// Answers the upgrade with a `101` whose `Sec-WebSocket-Accept` is for another key.
pub async fn wrong_accept() -> Server {
    faulty::raw(|mut tcp| async move {
        if read_upgrade_request(&mut tcp).await.is_some() {
            let wrong = derive_accept_key(b"not the key the client sent");
            let _ = tcp.write_all(switching_protocols(&wrong).as_bytes()).await;
            drain(tcp).await;
        }
    })
    .await
}

/// Answers the upgrade with the response `head` builds around the correct
/// `Sec-WebSocket-Accept`, then holds the connection.
pub async fn answers_upgrade_with(head: fn(&str) -> String) -> Server {
    faulty::raw(move |mut tcp| async move {
        if let Some(key) = read_upgrade_request(&mut tcp).await {
            let accept = derive_accept_key(key.as_bytes());
            let _ = tcp.write_all(head(&accept).as_bytes()).await;
            drain(tcp).await;
        }
    })
    .await
}

/// Redirects every upgrade to itself.
pub async fn redirect_loop() -> Server {
    faulty::raw(|mut tcp| async move {
        if read_upgrade_request(&mut tcp).await.is_some() {
            let _ = tcp
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: /ws\r\nContent-Length: 0\r\n\r\n")
                .await;
            drain(tcp).await;
        }
    })
    .await
}

/// Sends a correct `101` response one byte per second.
pub async fn trickled_handshake() -> Server {
    faulty::raw(|mut tcp| async move {
        let Some(key) = read_upgrade_request(&mut tcp).await else {
            return;
        };
        let response = switching_protocols(&derive_accept_key(key.as_bytes()));
        for byte in response.as_bytes() {
            if tcp.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
}

/// Sends `{"seq":1}` and half of a frame, then resets the connection (TCP RST).
pub async fn resets_mid_frame() -> Server {
    upgraded(resets_mid_frame_on).await
}

async fn resets_mid_frame_on(mut tcp: TcpStream) {
    let mut bytes = seq_frame(1);
    let half = frame(FIN | TEXT, &[b'x'; 100]);
    bytes.extend_from_slice(&half[..half.len() / 2]);
    if tcp.write_all(&bytes).await.is_ok() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Closing with a zero linger sends RST instead of FIN.
        let _ = tcp.set_zero_linger();
        drop(tcp);
    }
}

/// Sends text messages `{"seq":...}` with each of `values` as the sequence, 20ms apart.
pub async fn sequences_that_are_not_numbers(values: &'static [&'static str]) -> Server {
    faulty::ws(move |mut ws| async move {
        for v in values {
            let msg = tokio_tungstenite::tungstenite::Message::text(format!(r#"{{"seq":{v}}}"#));
            if futures_util::SinkExt::send(&mut ws, msg).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        faulty::hold(&mut ws, HOLD).await;
    })
    .await
}

/// JSON nested `depth` arrays deep under `/deep`, after a valid sequence.
pub fn deeply_nested_json(depth: usize) -> String {
    format!(
        r#"{{"seq":2,"deep":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// A server whose connections take turns at six faults: a drop after twenty messages, a close
/// with 1011, a reset mid-frame, silence, a ping flood, and a header claiming an exabyte.
/// The soak's fault source: the prober must survive each, over and over.
pub async fn rotating_faults() -> Server {
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reset = resets_mid_frame_on;
    upgraded(move |tcp| {
        let turn = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 6;
        async move {
            if turn == 2 {
                return reset(tcp).await;
            }
            let (read, mut write) = tcp.into_split();
            let reader = tokio::spawn(drain(read));
            let _ = tokio::time::timeout(HOLD, async {
                match turn {
                    0 => {
                        for seq in 1..=20 {
                            write.write_all(&seq_frame(seq)).await?;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    1 => {
                        write.write_all(&seq_frame(1)).await?;
                        write
                            .write_all(&frame(FIN | CLOSE, &1011u16.to_be_bytes()))
                            .await?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    3 => tokio::time::sleep(Duration::from_secs(3)).await,
                    4 => {
                        let pings: Vec<u8> =
                            (0..30_000).flat_map(|_| frame(FIN | PING, b"")).collect();
                        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
                        while tokio::time::Instant::now() < until {
                            write.write_all(&pings).await?;
                        }
                    }
                    _ => {
                        let mut header = vec![FIN | TEXT, 127];
                        header.extend_from_slice(&(1u64 << 60).to_be_bytes());
                        write.write_all(&header).await?;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
                Ok::<(), std::io::Error>(())
            })
            .await;
            reader.abort();
        }
    })
    .await
}
