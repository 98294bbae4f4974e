//! The byte relay of upgraded connections: two pumps per connection, one per direction, each
//! reading into a bounded buffer, parsing frame headers as bytes pass, and writing the same
//! bytes on.
//!
//! - Where it runs: after the 101, both sockets leave tokio for a relay thread of its own
//!   (of [`Relays`], `threads` of them) that polls them edge-triggered with `mio`, as nginx
//!   does; [`run`] hands them over and waits for the end.
//! - Backpressure: a pump reads again only after the previous chunk was written, so a peer that
//!   does not read stops the other peer's sends at its TCP window; nothing grows unbounded.
//! - Closes: the first close frame seen is the connection's (client or server initiator); a
//!   leg that ends without one leaves 1006/`none`, recorded once when the observer drops.
//! - The proxy writes frames of its own only between frames (a close: on shutdown with 1001,
//!   on a client violation with 1002/1009 to both legs, on upstream garbage with 1011 to the
//!   client and 1002 to the upstream), and then only drains until the peer's close or EOF.

mod chunk;
mod connection;
mod event_loop;
mod limits;

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use wsmon::ConnectionObserver;

pub use event_loop::Relays;
pub use limits::{Closing, RelayConfig, UPSTREAM_INVALID};

/// One leg of an upgraded connection: its socket, and the bytes that arrived with the
/// handshake (hyper read them past the HTTP head; they are the stream's first frames).
#[derive(Debug)]
pub struct Leg {
    /// The TCP connection, taken back from hyper so the relay reads and writes it directly.
    pub stream: TcpStream,
    /// Bytes already read from `stream`, relayed before anything else.
    pub read_ahead: Bytes,
}

impl Leg {
    /// A leg with nothing read ahead.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read_ahead: Bytes::new(),
        }
    }

    fn into_mio(self) -> std::io::Result<(mio::net::TcpStream, Bytes)> {
        // Still non-blocking: tokio's `into_std` keeps the mode.
        let stream = mio::net::TcpStream::from_std(self.stream.into_std()?);
        Ok((stream, self.read_ahead))
    }
}

/// Relays between `client` and `upstream` until both directions end (or one ended and the
/// other outlived it by `config.linger`). `shutdown` turning true starts a graceful shutdown:
/// 1001 to both legs, then a drain.
///
/// The relay runs on one of `relays`' threads; this future only waits for it.
pub async fn run(
    relays: &Relays,
    client: Leg,
    upstream: Leg,
    observer: ConnectionObserver,
    config: &RelayConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let (client, upstream) = match client
        .into_mio()
        .and_then(|c| Ok((c, upstream.into_mio()?)))
    {
        Ok(legs) => legs,
        Err(err) => {
            // The observer's drop records the stream's end (1006).
            tracing::error!(error = %err, "could not take over an upgraded connection");
            return;
        }
    };
    let handle = relays.pick();
    let connection = connection::Connection::new(
        (client.0, &client.1),
        (upstream.0, &upstream.1),
        observer,
        config.clone(),
    );
    let ticket = Arc::new(event_loop::Ticket::default());
    let (done, mut over) = oneshot::channel();
    if let Err(err) = handle.add(connection, Arc::clone(&ticket), done) {
        tracing::error!(error = %err, "could not hand an upgraded connection over");
        return;
    }
    tokio::select! {
        _ = &mut over => return,
        started = shutdown.wait_for(|s| *s) => {
            if started.is_ok() {
                let _ = handle.shutdown(ticket);
            }
        }
    }
    let _ = over.await;
}
