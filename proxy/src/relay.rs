//! The byte relay of one upgraded connection: two pumps, one per direction, each reading into
//! a bounded buffer, parsing frame headers as bytes pass, and writing the same bytes on.
//!
//! - Backpressure: a pump reads again only after the previous chunk was written, so a peer that
//!   does not read stops the other peer's sends at its TCP window; nothing grows unbounded.
//! - Closes: the first close frame seen is the connection's (client or server initiator); a
//!   leg that ends without one leaves 1006/`none`, recorded once when the observer drops.
//! - The proxy writes frames of its own only between frames (a close: on shutdown with 1001,
//!   on a client violation with 1002/1009 to both legs, on upstream garbage with 1011 to the
//!   client and 1002 to the upstream), and then only drains until the peer's close or EOF.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;
use wsmon::close_code::Initiator;
use wsmon::frame::FrameType;
use wsmon::observe::Direction;
use wsmon::queue::OverflowPolicy;
use wsmon::{ConnectionObserver, StampExtractor};

use crate::frame::{close_frame, Event, FrameParser, Invalid, ParserConfig, Sender};
use crate::wake_pair::{self, First};

/// Limits of one relayed connection.
#[derive(Clone)]
pub struct RelayConfig {
    /// Bytes each direction holds while its receiver is written to.
    pub buffer_bytes: usize,
    /// A write to the client pending this long marks a slow consumer.
    pub slow_after: Duration,
    /// A write to the client pending this long overflows: the client is dropped and the
    /// upstream is sent 1013.
    pub stall_timeout: Duration,
    /// How long a closing connection waits for the peers' close frames.
    pub drain_timeout: Duration,
    /// How long one direction may outlive the other's end.
    pub linger: Duration,
    /// Longest client message; longer ones close both legs with 1009.
    pub max_message_bytes: Option<u64>,
    /// permessage-deflate was negotiated: RSV1 is allowed on data messages.
    pub compression: bool,
    /// Reads stamps from uncompressed server messages (set from the stamp pointers).
    pub stamp_extractor: Option<StampExtractor>,
    /// Largest uncompressed server message the stamp extractor reads.
    pub stamp_capture_bytes: usize,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("buffer_bytes", &self.buffer_bytes)
            .field("slow_after", &self.slow_after)
            .field("stall_timeout", &self.stall_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("linger", &self.linger)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("compression", &self.compression)
            .field("stamp_extractor", &self.stamp_extractor.is_some())
            .finish()
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            buffer_bytes: 64 << 10,
            slow_after: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            linger: Duration::from_secs(10),
            max_message_bytes: None,
            compression: false,
            stamp_extractor: None,
            stamp_capture_bytes: 64 << 10,
        }
    }
}

/// Close codes the proxy sends on its own; `None` drops that leg without a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The code sent to the client, unmasked.
    pub to_client: Option<u16>,
    /// The code sent to the upstream, masked as a client's frame.
    pub to_upstream: Option<u16>,
}

impl Closing {
    /// Graceful shutdown: 1001 to both legs.
    pub const SHUTDOWN: Closing = Closing {
        to_client: Some(wsmon::close_code::GOING_AWAY),
        to_upstream: Some(wsmon::close_code::GOING_AWAY),
    };
}

/// Sent to the client when the upstream sends something that is not WebSocket: 1011
/// (internal error), not 1014 (bad gateway), because tungstenite and other clients still
/// refuse 1014 as a protocol error.
pub const UPSTREAM_INVALID: u16 = 1011;

struct Conn<'a> {
    observer: &'a ConnectionObserver,
    config: &'a RelayConfig,
    closing: Arc<ClosingFlag>,
    /// The last server ping passing through and when, for the client's pong.
    ping: Mutex<Option<([u8; 8], usize, Instant)>>,
}

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
}

/// Relays between `client` and `upstream` until both directions end. `shutdown` turns to true
/// for a graceful shutdown.
///
/// Run it as a task of its own (`tokio::spawn`): the shutdown watcher wakes the waker of the
/// first poll, which is the task's.
pub async fn run(
    mut client: Leg,
    mut upstream: Leg,
    observer: ConnectionObserver,
    config: &RelayConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let conn = Conn {
        observer: &observer,
        config,
        closing: Arc::new(ClosingFlag(AtomicU64::new(0))),
        ping: Mutex::new(None),
    };
    // Borrowed halves of each socket: both pumps run in this one task, so no lock or Arc is
    // needed between a socket's reader and writer (unlike `tokio::io::split`).
    let (client_rx, client_tx) = client.stream.split();
    let (upstream_rx, upstream_tx) = upstream.stream.split();
    let up = pump(
        &conn,
        Sender::Client,
        client_rx,
        client.read_ahead,
        upstream_tx,
    );
    let down = pump(
        &conn,
        Sender::Server,
        upstream_rx,
        upstream.read_ahead,
        client_tx,
    );
    tokio::pin!(up, down);
    // The shutdown watch is awaited in a task of its own, which raises a bit in the flag and
    // wakes this one: polled here on every wake-up, the watch's `Notify` took a lock per
    // relayed message (BENCHMARKS.md, 9b). Aborted when the relay ends.
    let _watcher = {
        let relay = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let flag = Arc::clone(&conn.closing);
        AbortOnDropHandle::new(tokio::spawn(async move {
            if shutdown.wait_for(|s| *s).await.is_ok() {
                flag.raise_shutdown(relay);
            }
        }))
    };
    let on_shutdown = async {
        conn.closing.shutdown_raised().await;
        conn.observer
            .close(Initiator::Server, wsmon::close_code::GOING_AWAY);
        conn.closing.set(Closing::SHUTDOWN).await;
        std::future::pending::<()>().await
    };
    tokio::pin!(on_shutdown);
    let linger = config.linger;
    // Each pump is polled only on its own wake-ups, or when the closing flag changed (whoever
    // changes it wakes a pump or the task). Biased: an unbiased `select!` draws a random start
    // per poll.
    let first = {
        let pair = wake_pair::first_of(up.as_mut(), down.as_mut(), || conn.closing.bits());
        tokio::select! {
            biased;
            first = pair => first,
            _ = &mut on_shutdown => unreachable!("on_shutdown never completes"),
        }
    };
    let _ = match first {
        First::A => {
            tokio::time::timeout(linger, select_shutdown(&mut down, &mut on_shutdown)).await
        }
        First::B => tokio::time::timeout(linger, select_shutdown(&mut up, &mut on_shutdown)).await,
    };
}

/// The connection's closing decision, set by a pump or by the shutdown, last one wins, and
/// read by both pumps. All of them run in the relay's one task, and a setter wakes that task,
/// so a pump polled before the store sees it on the next poll: no waiter per pump, which cost
/// a `Notify` poll on every wake-up.
struct ClosingFlag(AtomicU64);

const DECIDED: u64 = 1 << 63;
const HAS_CODE: u64 = 1 << 16;
/// Raised by the shutdown watcher; the relay then decides the shutdown closing.
const SHUTTING_DOWN: u64 = 1 << 62;

impl ClosingFlag {
    /// The raw state, which changes with every decision and with the shutdown.
    fn bits(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn get(&self) -> Option<Closing> {
        let v = self.0.load(Ordering::Acquire);
        let code = |bits: u64| (bits & HAS_CODE != 0).then_some(bits as u16);
        (v & DECIDED != 0).then(|| Closing {
            to_client: code(v),
            to_upstream: code(v >> 32),
        })
    }

    async fn set(&self, closing: Closing) {
        let bits = |c: Option<u16>| c.map_or(0, |c| HAS_CODE | u64::from(c));
        let v = DECIDED | bits(closing.to_client) | bits(closing.to_upstream) << 32;
        // Keeps the watcher's bit, so a pump's decision cannot hide a shutdown.
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Acquire, |old| {
                Some(v | (old & SHUTTING_DOWN))
            });
        std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            std::task::Poll::Ready(())
        })
        .await
    }

    /// Raised by the shutdown watcher, outside the relay's task, which `relay` wakes.
    fn raise_shutdown(&self, relay: std::task::Waker) {
        self.0.fetch_or(SHUTTING_DOWN, Ordering::Release);
        relay.wake();
    }

    /// Ready once the watcher raised the shutdown; relies on its wake-up.
    fn shutdown_raised(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|_| match self.0.load(Ordering::Acquire) & SHUTTING_DOWN {
            0 => Poll::Pending,
            _ => Poll::Ready(()),
        })
    }
}

/// Polls `f` once: its output if it was ready, `None` (and `f` still pending) if not.
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

async fn select_shutdown(
    rest: &mut (impl std::future::Future<Output = ()> + Unpin),
    on_shutdown: &mut (impl std::future::Future<Output = ()> + Unpin),
) {
    tokio::select! {
        biased;
        _ = rest => {}
        _ = on_shutdown => {}
    }
}

/// One direction's buffer: bytes `start..end` were read and are not forwarded yet. Plain
/// indices over one allocation: `BytesMut`'s reserve and advance cost about 70 instructions
/// per relayed message (BENCHMARKS.md, 9b). The zeroed (readable) part grows by doubling up
/// to the capacity only as reads fill it, so an idle connection keeps few pages resident.
struct Chunk {
    bytes: Vec<u8>,
    capacity: usize,
    start: usize,
    end: usize,
}

/// The least a direction's buffer holds, whatever `queue.buffer` says: room for the longest
/// incomplete frame head the parser leaves behind (139 bytes) and a read after it.
const MIN_CHUNK: usize = 256;
/// The zeroed part a buffer starts with.
const FIRST_CHUNK: usize = 4096;

impl Chunk {
    fn new(capacity: usize, read_ahead: &[u8]) -> Self {
        let capacity = capacity.max(read_ahead.len()).max(MIN_CHUNK);
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(read_ahead);
        bytes.resize(read_ahead.len().max(FIRST_CHUNK.min(capacity)), 0);
        Self {
            bytes,
            capacity,
            start: 0,
            end: read_ahead.len(),
        }
    }

    /// Read and not yet consumed.
    fn pending(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for the next read: the unconsumed rest (a few bytes of an incomplete frame) moves
    /// to the front first. A full buffer at capacity (only a drain lets that happen) is
    /// emptied.
    fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.bytes.len() {
            if self.bytes.len() < self.capacity {
                let grown = (self.bytes.len() * 2).min(self.capacity);
                self.bytes.resize(grown, 0);
            } else {
                self.end = 0;
            }
        }
        debug_assert!(self.end < self.bytes.len(), "a read needs room");
        &mut self.bytes[self.end..]
    }

    /// `n` bytes were read into [`Chunk::spare`].
    fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Reads from `src` into the spare room; `Ok(0)` is the end of the stream.
    fn poll_read_from<R: AsyncRead + Unpin>(
        &mut self,
        src: &mut R,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        let mut read = ReadBuf::new(self.spare());
        std::task::ready!(std::pin::Pin::new(src).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.filled(n);
        Poll::Ready(Ok(n))
    }
}

/// The next read into `buf`, unless a closing was decided first. The flag is read on every
/// poll: whoever decides it wakes the relay's task, so a waiting read sees it at once.
fn read_unless_closing<'a, R: AsyncRead + Unpin>(
    closing: &'a ClosingFlag,
    src: &'a mut R,
    buf: &'a mut Chunk,
) -> impl std::future::Future<Output = Result<std::io::Result<usize>, Closing>> + 'a {
    std::future::poll_fn(move |cx| {
        if let Some(c) = closing.get() {
            return Poll::Ready(Err(c));
        }
        buf.poll_read_from(src, cx).map(Ok)
    })
}

/// One direction: `sender`'s bytes from `src` (after `read_ahead`) to the other leg's `dst`.
async fn pump<R, W>(conn: &Conn<'_>, sender: Sender, mut src: R, read_ahead: Bytes, mut dst: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = conn.config;
    let mut parser = FrameParser::new(ParserConfig {
        sender,
        compression: config.compression,
        // The limit protects the upstream from clients, as the middleware's does.
        max_message_bytes: match sender {
            Sender::Client => config.max_message_bytes,
            Sender::Server => None,
        },
        capture_limit: match (sender, &config.stamp_extractor) {
            (Sender::Server, Some(_)) => config.stamp_capture_bytes,
            _ => 0,
        },
    });
    let mut buf = Chunk::new(config.buffer_bytes, &read_ahead);
    // Bytes in `buf` not parsed yet: the read-ahead, before the first read.
    let mut unparsed = !buf.pending().is_empty();
    let closing_now = {
        loop {
            if unparsed {
                unparsed = false;
            } else {
                let read = match read_unless_closing(&conn.closing, &mut src, &mut buf).await {
                    Ok(read) => read,
                    Err(closing) => break closing,
                };
                match read {
                    Ok(0) | Err(_) => {
                        // Mirror the end: the receiver sees its peer's TCP end, not a close
                        // frame.
                        let _ = tokio::time::timeout(config.drain_timeout, dst.shutdown()).await;
                        return;
                    }
                    Ok(_) => {}
                }
            }
            let mut messages = 0usize;
            let parsed = parser.feed(buf.pending(), |event| {
                messages += 1;
                conn.on_event(sender, event);
            });
            let (forward, invalid) = match parsed {
                Ok(n) => (n, None),
                Err(Invalid {
                    valid_bytes,
                    violation,
                }) => (valid_bytes, Some(violation)),
            };
            if forward > 0
                && !conn
                    .write(sender, &mut dst, &buf.pending()[..forward], messages)
                    .await
            {
                return;
            }
            buf.consume(forward);
            if let Some(violation) = invalid {
                tracing::debug!(?sender, %violation, "protocol violation, closing");
                let closing_now = match sender {
                    Sender::Client => {
                        let code = violation.close_code();
                        conn.observer.close(Initiator::Server, code);
                        Closing {
                            to_client: Some(code),
                            to_upstream: Some(code),
                        }
                    }
                    Sender::Server => {
                        conn.observer.close(Initiator::Server, UPSTREAM_INVALID);
                        Closing {
                            to_client: Some(UPSTREAM_INVALID),
                            to_upstream: Some(wsmon::close_code::PROTOCOL_ERROR),
                        }
                    }
                };
                conn.closing.set(closing_now).await;
                // The source's stream can no longer be parsed: stop reading it.
                let code = match sender {
                    Sender::Client => closing_now.to_upstream,
                    Sender::Server => closing_now.to_client,
                };
                conn.send_close(sender, &mut dst, code, parser.at_frame_boundary())
                    .await;
                return;
            }
        }
    };
    let code = match sender {
        Sender::Client => closing_now.to_upstream,
        Sender::Server => closing_now.to_client,
    };
    conn.send_close(sender, &mut dst, code, parser.at_frame_boundary())
        .await;
    // Drain: read the source until its close frame (its answer to the other pump's close) or
    // its end, forwarding nothing.
    if !parser.saw_close() {
        let drain = async {
            loop {
                match std::future::poll_fn(|cx| buf.poll_read_from(&mut src, cx)).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                match parser.feed(buf.pending(), |_| {}) {
                    Ok(n) => buf.consume(n),
                    Err(_) => return,
                }
                if parser.saw_close() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(config.drain_timeout, drain).await;
    }
}

impl Conn<'_> {
    fn on_event(&self, sender: Sender, event: Event<'_>) {
        let direction = match sender {
            Sender::Client => Direction::Receive,
            Sender::Server => Direction::Transmit,
        };
        let initiator = match sender {
            Sender::Client => Initiator::Client,
            Sender::Server => Initiator::Server,
        };
        match event {
            Event::Message {
                frame_type,
                payload_bytes,
                payload,
                ..
            } => {
                self.observer
                    .message(direction, frame_type, payload_bytes as usize);
                if let (Some(payload), Some(extract)) = (payload, &self.config.stamp_extractor) {
                    if let Some(stamp) = extract(payload) {
                        self.observer.stamp(stamp);
                    }
                }
            }
            Event::Ping(payload) => {
                self.observer
                    .message(direction, FrameType::Ping, payload.len());
                if sender == Sender::Server {
                    let mut key = [0u8; 8];
                    let n = payload.len().min(8);
                    key[..n].copy_from_slice(&payload[..n]);
                    *self.ping.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((key, payload.len(), Instant::now()));
                }
            }
            Event::Pong(payload) => {
                self.observer
                    .message(direction, FrameType::Pong, payload.len());
                if sender == Sender::Client {
                    let mut ping = self.ping.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((key, len, at)) = *ping {
                        let n = payload.len().min(8);
                        if len == payload.len() && key[..n] == payload[..n] {
                            self.observer.ping_rtt(at.elapsed());
                            *ping = None;
                        }
                    }
                }
            }
            Event::Close(code) => {
                self.observer.message(direction, FrameType::Close, 2);
                self.observer.close(initiator, code);
            }
        }
    }

    /// Writes a chunk on. Toward the client, a write pending past `slow_after` marks a slow
    /// consumer and one pending past `stall_timeout` overflows. False when the pump must end.
    async fn write<W: AsyncWrite + Unpin>(
        &self,
        sender: Sender,
        dst: &mut W,
        bytes: &[u8],
        messages: usize,
    ) -> bool {
        if sender == Sender::Client {
            return dst.write_all(bytes).await.is_ok();
        }
        let config = self.config;
        self.observer.queue_depth(messages, false);
        let write = dst.write_all(bytes);
        tokio::pin!(write);
        // Most writes complete at once into the socket buffer: try before arming the slow
        // timer, which would cost a timer entry per write.
        if let Some(done) = poll_once(&mut write).await {
            self.observer.queue_drained();
            return done.is_ok();
        }
        let done = match tokio::time::timeout(config.slow_after, &mut write).await {
            Ok(done) => done,
            Err(_) => {
                self.observer.queue_depth(messages, true);
                let rest = config.stall_timeout.saturating_sub(config.slow_after);
                match tokio::time::timeout(rest, &mut write).await {
                    Ok(done) => done,
                    Err(_) => {
                        self.observer.overflow(OverflowPolicy::Disconnect);
                        self.observer
                            .close(Initiator::Server, wsmon::close_code::TRY_AGAIN_LATER);
                        self.closing
                            .set(Closing {
                                to_client: None,
                                to_upstream: Some(wsmon::close_code::TRY_AGAIN_LATER),
                            })
                            .await;
                        self.observer.queue_drained();
                        return false;
                    }
                }
            }
        };
        self.observer.queue_drained();
        done.is_ok()
    }

    /// Sends the proxy's own close frame to `dst`, if there is a code and `dst`'s stream is
    /// between frames; then ends `dst`'s write side.
    async fn send_close<W: AsyncWrite + Unpin>(
        &self,
        sender: Sender,
        dst: &mut W,
        code: Option<u16>,
        at_boundary: bool,
    ) {
        let timeout = self.config.drain_timeout;
        if let (Some(code), true) = (code, at_boundary) {
            // Toward the upstream the proxy speaks as a client, so its frames are masked.
            let mask = (sender == Sender::Client).then(rand::random::<[u8; 4]>);
            let frame = close_frame(code, mask);
            let _ = tokio::time::timeout(timeout, async {
                dst.write_all(&frame).await?;
                dst.flush().await
            })
            .await;
        }
        if code.is_none() {
            let _ = tokio::time::timeout(timeout, dst.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Chunk;

    #[test]
    fn a_chunk_keeps_the_unconsumed_rest_in_front_of_the_next_read() {
        let mut c = Chunk::new(8192, b"abc");
        assert_eq!(c.pending(), b"abc");
        c.consume(2);
        let spare = c.spare();
        spare[..2].copy_from_slice(b"de");
        c.filled(2);
        assert_eq!(c.pending(), b"cde");
        c.consume(3);
        assert_eq!(c.pending(), b"");
        assert_eq!(c.spare().len(), 4096, "the zeroed part starts at 4 KiB");
    }

    #[test]
    fn a_chunk_grows_by_doubling_up_to_its_capacity_then_a_full_one_is_emptied() {
        let mut c = Chunk::new(10_000, b"");
        let mut seen = Vec::new();
        loop {
            let n = c.spare().len();
            c.filled(n);
            seen.push(c.pending().len());
            if c.pending().len() == 10_000 {
                break;
            }
        }
        assert_eq!(seen, [4096, 8192, 10_000]);
        // Full at capacity with nothing consumed (a drain): the next read starts over.
        assert_eq!(c.spare().len(), 10_000);
        assert_eq!(c.pending(), b"");
    }

    #[test]
    fn a_tiny_configured_buffer_still_has_room_after_an_incomplete_frame() {
        let mut c = Chunk::new(1, &[0u8; 139]);
        assert!(!c.spare().is_empty());
    }
}
