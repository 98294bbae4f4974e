//! The instrumented socket: a `Stream` + `Sink` wrapper that records stream metrics as frames
//! pass, and runs the optional heartbeat and graceful-shutdown close.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::{Sink, SinkExt, Stream, StreamExt};

use crate::close_code::{self, Initiator};
use crate::frame::{FrameType, WsError, WsMessage};
use crate::heartbeat::{Beat, HeartbeatState};
use crate::metrics::{ConnShared, RouteMetrics};
use crate::sequencer::{Stamp, StampExtractor};
use crate::ConnectionConfig;

/// A WebSocket whose traffic is recorded under one route.
///
/// Wraps any `Stream<Item = Result<M, E>> + Sink<M>` of WebSocket messages: axum's
/// `WebSocket` (see [`crate::WebSocket`]) or tokio-tungstenite's `WebSocketStream`.
/// It has the same `recv`/`send` methods and `Stream`/`Sink` impls as axum's socket, so a
/// handler body does not change.
pub struct Instrumented<S> {
    inner: S,
    conn: Connection,
}

/// The wrapped socket is not printed (axum's `WebSocket` has no `Debug`); the connection's
/// recording state is.
impl<S> std::fmt::Debug for Instrumented<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("connection", &self.conn.shared)
            .field("sent_payload", &self.conn.sent_payload)
            .field("close_sent", &self.conn.close_sent)
            .field("heartbeat", &self.conn.heartbeat.is_some())
            .finish_non_exhaustive()
    }
}

/// Per-connection recording state. Its `Drop` records how the connection ended.
struct Connection {
    shared: Arc<ConnShared>,
    route: Arc<RouteMetrics>,
    upgraded_at: Instant,
    sent_payload: bool,
    close_sent: bool,
    terminated: bool,
    heartbeat: Option<HeartbeatState>,
    shutting_down: Arc<AtomicBool>,
    /// The shutdown close was sent (or found unnecessary).
    shutdown_handled: bool,
    stamp_extractor: Option<StampExtractor>,
}

/// A handle to one instrumented connection, usable from other tasks (a writer behind a split,
/// an application queue); cheap to clone.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    shared: Arc<ConnShared>,
}

impl ConnectionHandle {
    /// Stamps the next data message sent on this connection with its sequence and publish
    /// time, for the sequencer-lag metrics.
    pub fn stamp_next(&self, stamp: Stamp) {
        self.shared.set_stamp(stamp);
    }

    /// Reports the depth of an application-owned outbound queue, for
    /// `websocket_server_outbound_queue_messages` and `..._depth`. Not needed with
    /// [`crate::outbound_queue`], which reports itself.
    pub fn report_queue_depth(&self, messages: usize, slow: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.shared.queue_messages.store(messages as u64, Relaxed);
        self.shared.slow.store(slow, Relaxed);
        self.shared.route.queue_depth.observe(messages as f64);
    }

    /// The route template this connection is recorded under.
    pub fn route(&self) -> &str {
        self.shared.route.name()
    }

    pub(crate) fn shared(&self) -> &Arc<ConnShared> {
        &self.shared
    }

    #[cfg(test)]
    pub(crate) fn from_shared(shared: Arc<ConnShared>) -> Self {
        Self { shared }
    }
}

impl<S> Instrumented<S> {
    pub(crate) fn new(
        inner: S,
        route: Arc<RouteMetrics>,
        config: &ConnectionConfig,
        canary: bool,
    ) -> Self {
        let shared = route.register_connection(canary);
        Self {
            inner,
            conn: Connection {
                shared,
                route,
                upgraded_at: Instant::now(),
                sent_payload: false,
                close_sent: false,
                terminated: false,
                heartbeat: config.heartbeat.map(HeartbeatState::new),
                shutting_down: config.shutting_down.clone(),
                shutdown_handled: false,
                stamp_extractor: config.stamp_extractor.clone(),
            },
        }
    }

    /// A handle for stamping messages and reporting queue depth from other tasks.
    pub fn handle(&self) -> ConnectionHandle {
        ConnectionHandle {
            shared: self.conn.shared.clone(),
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped socket, mutably. Frames sent or read through it are not recorded.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, M, E> Instrumented<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: WsMessage,
    E: WsError,
{
    /// Receives the next message; `None` once the stream has closed.
    pub async fn recv(&mut self) -> Option<Result<M, E>> {
        self.next().await
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: M) -> Result<(), E> {
        SinkExt::send(self, msg).await
    }

    /// Sends a data message stamped with its sequence and publish time.
    pub async fn send_stamped(&mut self, msg: M, stamp: Stamp) -> Result<(), E> {
        self.conn.shared.set_stamp(stamp);
        self.send(msg).await
    }

    /// Queues a control frame the wrapper itself originates, if the sink has room now.
    fn send_control(&mut self, cx: &mut Context<'_>, msg: M) {
        if let Poll::Ready(Ok(())) = Pin::new(&mut self.inner).poll_ready(cx) {
            let out = self.conn.describe(&msg);
            if Pin::new(&mut self.inner).start_send(msg).is_ok() {
                if let Some(out) = out {
                    self.conn.on_sent(out);
                }
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
        }
    }
}

/// What a send records, taken before the message moves into the sink.
struct Outgoing {
    frame_type: FrameType,
    payload_len: usize,
    close_code: Option<u16>,
    stamp: Option<Stamp>,
}

impl Connection {
    #[inline]
    fn describe<M: WsMessage>(&self, msg: &M) -> Option<Outgoing> {
        let frame_type = msg.frame_type()?;
        let payload = msg.payload();
        let stamp = if frame_type.is_data() {
            self.shared
                .take_stamp()
                .or_else(|| self.stamp_extractor.as_ref().and_then(|x| x(payload)))
        } else {
            None
        };
        Some(Outgoing {
            frame_type,
            payload_len: payload.len(),
            close_code: msg.close_code(),
            stamp,
        })
    }

    /// Records a frame the sink accepted; frames it refused were never sent.
    #[inline]
    fn on_sent(&mut self, out: Outgoing) {
        let t = out.frame_type;
        self.route.count_transmitted(t, out.payload_len);
        if t.is_data() {
            if !self.sent_payload {
                self.sent_payload = true;
                let latency = self.upgraded_at.elapsed().as_secs_f64();
                self.route.first_payload.observe(latency);
                if self.shared.canary {
                    self.route.canary.first_payload.observe(latency);
                }
            }
            if let Some(stamp) = out.stamp {
                self.route.record_stamp(stamp);
            }
        } else if t == FrameType::Close {
            self.close_sent = true;
            let code = out.close_code.unwrap_or(close_code::NO_STATUS);
            // A reply to the client's close is already recorded as the client's.
            self.shared.record_close(Initiator::Server, code);
        }
    }

    #[inline]
    fn on_receive<M: WsMessage>(&mut self, msg: &M) -> bool {
        let Some(t) = msg.frame_type() else {
            return true;
        };
        let payload = msg.payload();
        self.route.count_received(t, payload.len());
        match t {
            FrameType::Pong => {
                if let Some(rtt) = self.heartbeat.as_mut().and_then(|h| h.on_pong(payload)) {
                    self.route.ping_rtt.observe(rtt.as_secs_f64());
                    // Our own heartbeat's pong: the application never asked for it.
                    return false;
                }
            }
            FrameType::Close if !self.close_sent => {
                let code = msg.close_code().unwrap_or(close_code::NO_STATUS);
                self.shared.record_close(Initiator::Client, code);
            }
            _ => {}
        }
        true
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared
            .record_close(Initiator::None, close_code::ABNORMAL);
        if !self.sent_payload {
            self.route.without_payload.inc();
            if self.shared.canary {
                self.route.canary.without_payload.inc();
            }
        }
        self.route
            .connection_duration
            .observe(self.upgraded_at.elapsed().as_secs_f64());
        self.route.unregister_connection(self.shared.id());
    }
}

impl<S, M, E> Stream for Instrumented<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: WsMessage,
    E: WsError,
{
    type Item = Result<M, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.conn.terminated {
            return Poll::Ready(None);
        }
        if !this.conn.shutdown_handled {
            // Register before reading the flag, so a shutdown between the two still wakes us.
            // Both are this connection's own atomics plus one shared read: no lock.
            this.conn.shared.waker.register(cx.waker());
            if this.conn.shutting_down.load(SeqCst) {
                this.conn.shutdown_handled = true;
                if !this.conn.close_sent {
                    this.send_control(cx, M::close(close_code::GOING_AWAY, "server shutting down"));
                }
            }
        }
        if let Some(hb) = this.conn.heartbeat.as_mut() {
            match hb.poll_beat(cx) {
                Beat::Idle => {}
                Beat::Ping(payload) => this.send_control(cx, M::ping(payload)),
                Beat::TimedOut => {
                    this.conn.heartbeat = None;
                    this.conn.terminated = true;
                    this.conn.route.heartbeat_timeouts.inc();
                    // The peer is unresponsive: no close handshake is possible.
                    this.conn
                        .shared
                        .record_close(Initiator::Server, close_code::ABNORMAL);
                    return Poll::Ready(None);
                }
            }
        }
        loop {
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(msg))) => {
                    if this.conn.on_receive(&msg) {
                        return Poll::Ready(Some(Ok(msg)));
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    if let Some(code) = err.kind().close_code() {
                        if !this.conn.close_sent && !this.conn.shared.close_recorded() {
                            let reason = match code {
                                close_code::MESSAGE_TOO_BIG => "message too big",
                                close_code::PROTOCOL_ERROR => "protocol error",
                                _ => "invalid payload",
                            };
                            this.send_control(cx, M::close(code, reason));
                            // Record even if the frame could not be queued.
                            this.conn.shared.record_close(Initiator::Server, code);
                        }
                    }
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    this.conn.terminated = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl<S, M, E> Sink<M> for Instrumented<S>
where
    S: Sink<M, Error = E> + Unpin,
    M: WsMessage,
{
    type Error = E;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: M) -> Result<(), E> {
        let out = self.conn.describe(&msg);
        Pin::new(&mut self.inner).start_send(msg)?;
        if let Some(out) = out {
            self.conn.on_sent(out);
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<S: futures_util::stream::FusedStream> futures_util::stream::FusedStream for Instrumented<S>
where
    Self: Stream,
{
    fn is_terminated(&self) -> bool {
        self.conn.terminated || self.inner.is_terminated()
    }
}

#[cfg(feature = "axum")]
impl Instrumented<axum::extract::ws::WebSocket> {
    /// The selected subprotocol, as on axum's `WebSocket`.
    pub fn protocol(&self) -> Option<&http::HeaderValue> {
        self.inner.protocol()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Sleep;

    /// The hot-path budget allows 512 bytes per connection beyond axum's own socket.
    #[test]
    fn per_connection_overhead_fits_in_512_bytes() {
        let heartbeat = std::mem::size_of::<HeartbeatState>() + std::mem::size_of::<Sleep>();
        // ConnShared in its Arc (two counters) plus its slot in the route's live map.
        let shared = std::mem::size_of::<ConnShared>() + 16 + 8 + 8 + 8;
        let total = std::mem::size_of::<Connection>() + heartbeat + shared;
        eprintln!("per-connection overhead: {total} bytes");
        assert!(total <= 512, "per-connection overhead is {total} bytes");
    }
}
