//! Purpose-built WebSocket servers, each misbehaving in one way.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// A server running `behave` on every connection; connections are aborted when it drops.
pub struct Server {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// When each connection was accepted.
    pub accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

impl Server {
    /// Aborts every live connection without a close frame (an abrupt TCP close).
    pub fn drop_connections(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// Serves raw TCP connections on `addr` (port 0 for a free one).
pub async fn raw_at<F, Fut>(addr: SocketAddr, behave: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let accepted: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (c, a) = (conns.clone(), accepted.clone());
    let behave = Arc::new(behave);
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            a.lock().unwrap().push(Instant::now());
            let behave = behave.clone();
            c.lock()
                .unwrap()
                .push(tokio::spawn(async move { behave(tcp).await }));
        }
    });
    Server {
        addr,
        accept,
        conns,
        accepted,
    }
}

pub async fn raw<F, Fut>(behave: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    raw_at("127.0.0.1:0".parse().unwrap(), behave).await
}

/// Serves WebSocket connections: completes the upgrade, then runs `behave`.
pub async fn ws_at<F, Fut>(addr: SocketAddr, behave: F) -> Server
where
    F: Fn(Ws) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let behave = Arc::new(behave);
    raw_at(addr, move |tcp| {
        let behave = behave.clone();
        async move {
            let mut config = WebSocketConfig::default();
            // Let the faulty server send what it likes; the prober enforces its own limit.
            config.max_message_size = None;
            config.max_frame_size = None;
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await {
                behave(ws).await;
            }
        }
    })
    .await
}

pub async fn ws<F, Fut>(behave: F) -> Server
where
    F: Fn(Ws) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    ws_at("127.0.0.1:0".parse().unwrap(), behave).await
}

pub fn seq_msg(seq: u64) -> Message {
    Message::text(format!(r#"{{"seq":{seq}}}"#))
}

/// Sends `seqs` as `{"seq":N}` messages, `gap` apart.
pub async fn send_seqs(ws: &mut Ws, seqs: &[u64], gap: Duration) {
    for s in seqs {
        if ws.send(seq_msg(*s)).await.is_err() {
            return;
        }
        tokio::time::sleep(gap).await;
    }
}

/// Reads and discards until the client goes away, so pings are answered.
pub async fn drain(ws: &mut Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// Holds the connection open while answering pings, for up to `limit`.
pub async fn hold(ws: &mut Ws, limit: Duration) {
    let _ = tokio::time::timeout(limit, drain(ws)).await;
}

pub async fn close_with(ws: &mut Ws, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        })))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), drain(ws)).await;
}

/// Answers every upgrade request with `status` and no upgrade.
pub async fn http_status(status: &'static str) -> Server {
    raw(move |mut tcp| async move {
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tcp
            .write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
    })
    .await
}

/// Accepts TCP and reads the request, but never answers the upgrade.
pub async fn silent_handshake() -> Server {
    raw(|mut tcp| async move {
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    })
    .await
}

/// Relays to `upstream`, or once `refuse` is set answers new connections with a 400 (after
/// reading the request head, as a proxy would).
pub async fn gate(upstream: std::net::SocketAddr, refuse: Arc<AtomicBool>) -> Server {
    raw(move |mut client| {
        let refuse = refuse.clone();
        async move {
            if refuse.load(Ordering::SeqCst) {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = client
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    })
    .await
}
