//! The held socket and its bounded writes: a peer that stops reading, or never answers a
//! close, can fail a canary but never wedge it.

use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::failure::FailureReason;
use crate::measure::Fault;

/// Anything the WebSocket can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// Writes bounded by `limit`: a peer that stops reading must not wedge the canary.
pub(crate) async fn send(ws: &mut Socket, msg: Message, limit: Duration) -> Result<(), Fault> {
    let mut sending = std::pin::pin!(ws.send(msg));
    // Most writes complete at once. Arming the timer first would wake the runtime's timer
    // thread on every send, which a heartbeat's round trip would then include.
    let sent = match futures_util::poll!(&mut sending) {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => timeout(limit, sending).await,
    };
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Fault::new(
            FailureReason::Closed,
            format!("sending failed: {e}"),
        )),
        Err(_) => Err(Fault::new(
            FailureReason::Closed,
            format!("the server stopped reading: a write blocked for {limit:?}"),
        )),
    }
}

/// Closes politely, bounded: a server that never answers the close does not hold us.
pub(crate) async fn close(ws: &mut Socket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = timeout(Duration::from_secs(1), async {
        let _ = ws.close(Some(frame)).await;
        // Drain until the server's close arrives or the stream ends.
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
