//! WebSocket clients for the scenario, healthy and faulty, on tokio-tungstenite.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Connects over a socket with an optional small receive buffer (which also switches off the
/// kernel's buffer autotuning, so that a client that does not read pushes back at once).
pub async fn connect(addr: SocketAddr, recv_buffer: Option<u32>) -> Result<Ws, String> {
    connect_to(addr, "/ws", recv_buffer).await
}

/// [`connect`] on `path`.
pub async fn connect_to(
    addr: SocketAddr,
    path: &str,
    recv_buffer: Option<u32>,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| e.to_string())?;
    }
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// A well-behaved subscriber: reads (and so answers pings) until aborted.
pub fn healthy_reader(addr: SocketAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ws = connect(addr, None).await.expect("healthy client connects");
        while let Some(Ok(_)) = ws.next().await {}
    })
}

/// Connects, waits for the first message, then resets the TCP connection without a close
/// frame: the server must record 1006 with no initiator.
pub async fn abrupt_drop(addr: SocketAddr) -> Result<(), String> {
    abrupt_drop_on(addr, "/ws").await
}

/// [`abrupt_drop`] on `path`.
pub async fn abrupt_drop_on(addr: SocketAddr, path: &str) -> Result<(), String> {
    let mut ws = connect_to(addr, path, None).await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    ws.get_ref().set_zero_linger().map_err(|e| e.to_string())?;
    drop(ws);
    Ok(())
}

/// An upgrade with a foreign Origin; returns the HTTP status the server refused it with.
pub async fn upgrade_with_origin(addr: SocketAddr, origin: &str) -> Option<u16> {
    upgrade_refusal(&url(addr), Some(origin)).await
}

/// An upgrade to `url`, with `origin` if given; returns the HTTP status it was refused with,
/// `None` when it was accepted or failed otherwise.
pub async fn upgrade_refusal(url: &str, origin: Option<&str>) -> Option<u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        Err(_) => None,
    }
}

/// A slow consumer: a tiny receive buffer, no reading at all for `stall`, then one message
/// every `per_message` until aborted.
pub fn slow_reader(addr: SocketAddr, stall: Duration, per_message: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ws = connect(addr, Some(4096))
            .await
            .expect("slow client connects");
        tokio::time::sleep(stall).await;
        while let Some(Ok(_)) = ws.next().await {
            tokio::time::sleep(per_message).await;
        }
    })
}

/// Holds a connection and never reads from it (so it never answers a ping either).
pub async fn never_reader(addr: SocketAddr) -> Ws {
    connect(addr, Some(4096)).await.expect("client connects")
}

/// Connects, waits for the first message, and closes normally (1000).
pub async fn wait_for_first_message_then_close(addr: SocketAddr) {
    if let Ok(mut ws) = connect(addr, None).await {
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let _ = ws.close(None).await;
    }
}

/// Resumes after `from` (`GET /ws?from=N`), waits for the first message, and closes normally;
/// returns that message's `seq` (the feed's first replayed message, `from + 1`, on a hit).
pub async fn resume_then_close(addr: SocketAddr, from: u64) -> Result<u64, String> {
    let url = format!("{}?from={from}", url(addr));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .map_err(|_| "no message within 10s".to_string())?
        .ok_or("closed before any message")?
        .map_err(|e| e.to_string())?;
    let _ = ws.close(None).await;
    let text = first.into_text().map_err(|e| e.to_string())?;
    let message: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    message["seq"]
        .as_u64()
        .ok_or_else(|| format!("no seq in {text}"))
}
