//! A TCP proxy whose client can vanish without a FIN or RST: once `vanish` is called the proxy
//! stops forwarding in both directions but keeps both sockets open, exactly what the server
//! sees when a peer's machine loses power or a NAT drops the mapping.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct BlackholeProxy {
    pub addr: SocketAddr,
    vanished: CancellationToken,
    /// Dropped with the proxy: only then are the held sockets closed.
    release: CancellationToken,
}

impl BlackholeProxy {
    /// Proxies the next connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let vanished = CancellationToken::new();
        let release = CancellationToken::new();
        let (v, r) = (vanished.clone(), release.clone());
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(target).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(forward(cr, sw, v.clone()));
            let down = tokio::spawn(forward(sr, cw, v));
            // Hold both sockets open, silent, until the proxy itself is dropped.
            r.cancelled().await;
            up.abort();
            down.abort();
        });
        Self {
            addr,
            vanished,
            release,
        }
    }

    /// The client disappears: nothing more is forwarded and no FIN is sent either way.
    pub fn vanish(&self) {
        self.vanished.cancel();
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    vanished: CancellationToken,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = vanished.cancelled() => break,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Keep both halves alive (no shutdown, no FIN) until the task is aborted.
    vanished.cancelled().await;
    std::future::pending::<()>().await;
    drop((from, to));
}
