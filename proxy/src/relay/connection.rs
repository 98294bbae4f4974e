//! One upgraded connection as a state machine over its two non-blocking sockets: the event
//! loop tells it which socket became ready and when a deadline passed, and [`Connection::drive`]
//! makes all the progress that is possible without blocking.
//!
//! Each direction (a pump) reads its source into a bounded buffer, parses the frame headers in
//! place and writes the same bytes to the other socket. It reads again only once the previous
//! read is written, so a peer that does not read stops the other's sends at its TCP window.

use std::io::{self, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use wsmon::close_code::Initiator;
use wsmon::frame::FrameType;
use wsmon::observe::Direction;
use wsmon::queue::OverflowPolicy;
use wsmon::ConnectionObserver;

use super::chunk::Chunk;
use super::limits::{Closing, RelayConfig, UPSTREAM_INVALID};
use crate::frame::{close_frame, Event, FrameParser, Invalid, ParserConfig, Sender, Violation};

/// The client's socket, in [`Connection::socket`] and [`Connection::ready`].
pub(super) const CLIENT: usize = 0;
/// The upstream's socket.
pub(super) const UPSTREAM: usize = 1;

/// Both pumps, in [`Connection`]'s `woken`.
const BOTH: u8 = 0b11;

/// Steps one pump takes per drive before the loop turns to other connections: a stream whose
/// two ends are always ready must not hold the relay thread. 16 reads of up to the buffer.
const TURN: u32 = 16;

/// The time, read once per event-loop turn and only if something needs it.
#[derive(Debug, Default)]
pub(super) struct Now(Option<Instant>);

impl Now {
    pub(super) fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// A socket and what is known of its readiness. Edge-triggered: a flag stays set until a call
/// says otherwise (`WouldBlock`, or a read that did not fill the room, as tokio also assumes).
struct Socket {
    stream: TcpStream,
    read_ready: bool,
    /// The peer's end (or an error) was reported: a read returns it, however short the
    /// previous one was.
    read_closed: bool,
    write_ready: bool,
}

impl Socket {
    fn readable(&self) -> bool {
        self.read_ready || self.read_closed
    }
}

/// Where a pump is. Fieldless, so the check on every step is one byte compare; the closing
/// states keep their data in [`Pump::close`] and [`Pump::until`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Relaying,
    /// Writing the proxy's own close frame until `until`; then draining, if `close.drain`.
    Closing,
    /// Reading the source until its close frame or its end (or `until`), forwarding nothing.
    Draining,
    Done,
}

/// The proxy's own close frame on its way to the receiver.
#[derive(Default)]
struct CloseFrame {
    frame: Vec<u8>,
    sent: usize,
    /// Drain the source after it.
    drain: bool,
}

struct Pump {
    sender: Sender,
    src: usize,
    dst: usize,
    parser: FrameParser,
    buf: Chunk,
    /// The read-ahead is in `buf` and not parsed yet.
    unparsed: bool,
    /// Parsed bytes at the front of `buf` not yet written to `dst`.
    out: usize,
    /// Messages among them: the queue depth reported toward the client.
    messages: usize,
    /// A violation right after `out`, acted on once `out` is written.
    invalid: Option<Violation>,
    /// Toward the client, while a write is pending: when it turns slow, and when it overflows.
    slow_at: Option<Instant>,
    stall_at: Option<Instant>,
    state: State,
    close: CloseFrame,
    /// The deadline of [`State::Closing`] or [`State::Draining`].
    until: Option<Instant>,
}

/// What both pumps share.
struct Shared {
    observer: ConnectionObserver,
    config: RelayConfig,
    /// The connection's closing decision, by a pump or by the shutdown; the last one wins.
    closing: Option<Closing>,
    /// Counts the decisions, so the loop in [`Connection::drive`] sees a new one.
    decisions: u32,
    /// Some deadline may be set: false lets a relayed message skip the deadline checks.
    timed: bool,
    /// The last server ping passing through and when, for the client's pong.
    ping: Option<([u8; 8], usize, Instant)>,
}

/// One relayed connection: both legs, both directions, and the metrics they record.
pub(super) struct Connection {
    sockets: [Socket; 2],
    pumps: [Pump; 2],
    shared: Shared,
    /// Once one direction ended, the other may run until then.
    linger_until: Option<Instant>,
    /// The pumps (bit 0: from the client, bit 1: from the upstream) a readiness event may
    /// have unblocked: only they run on the next drive.
    woken: u8,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("route", &self.shared.observer.route())
            .field("closing", &self.shared.closing)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A relay between `client` and `upstream`, each with the bytes already read from it.
    pub(super) fn new(
        client: (TcpStream, &[u8]),
        upstream: (TcpStream, &[u8]),
        observer: ConnectionObserver,
        config: RelayConfig,
    ) -> Self {
        let socket = |stream| Socket {
            stream,
            read_ready: true,
            read_closed: false,
            write_ready: true,
        };
        let pump = |sender, src, dst, read_ahead: &[u8]| {
            let parser = FrameParser::new(ParserConfig {
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
            Pump {
                sender,
                src,
                dst,
                parser,
                buf: Chunk::new(config.buffer_bytes, read_ahead),
                unparsed: !read_ahead.is_empty(),
                out: 0,
                messages: 0,
                invalid: None,
                slow_at: None,
                stall_at: None,
                state: State::Relaying,
                close: CloseFrame::default(),
                until: None,
            }
        };
        let pumps = [
            pump(Sender::Client, CLIENT, UPSTREAM, client.1),
            pump(Sender::Server, UPSTREAM, CLIENT, upstream.1),
        ];
        Self {
            sockets: [socket(client.0), socket(upstream.0)],
            pumps,
            shared: Shared {
                observer,
                config,
                closing: None,
                decisions: 0,
                timed: false,
                ping: None,
            },
            linger_until: None,
            woken: BOTH,
        }
    }

    /// The socket of `leg` ([`CLIENT`] or [`UPSTREAM`]), to register it.
    pub(super) fn socket(&mut self, leg: usize) -> &mut TcpStream {
        &mut self.sockets[leg].stream
    }

    /// The event loop saw `leg` become readable or writable (an error or hang-up counts as
    /// both: the next call reports it).
    pub(super) fn ready(&mut self, leg: usize, event: &mio::event::Event) {
        let s = &mut self.sockets[leg];
        let failed = event.is_error();
        if event.is_readable() || event.is_read_closed() || failed {
            s.read_ready = true;
            s.read_closed |= event.is_read_closed() || failed;
            // The pump reading this socket has the same index as the leg.
            self.woken |= 1 << leg;
        }
        if (event.is_writable() || event.is_write_closed() || failed) && !s.write_ready {
            s.write_ready = true;
            // Only a pump that found the socket full waits for this.
            self.woken |= 1 << (1 - leg);
        }
    }

    /// Graceful shutdown: 1001 to both legs, then both drain.
    pub(super) fn shutdown(&mut self) {
        self.shared
            .observer
            .close(Initiator::Server, wsmon::close_code::GOING_AWAY);
        self.shared.decide(Closing::SHUTDOWN);
        self.woken = BOTH;
    }

    /// A pump used up its turn with more to do: drive again without waiting for an event.
    pub(super) fn runnable(&self) -> bool {
        self.woken != 0
    }

    /// The earliest deadline this connection waits for, if any.
    pub(super) fn deadline(&mut self) -> Option<Instant> {
        if !self.shared.timed {
            return None;
        }
        let mut at = self.linger_until;
        for p in &self.pumps {
            let own = match p.state {
                State::Relaying => earliest(p.slow_at, p.stall_at),
                State::Closing | State::Draining => p.until,
                State::Done => None,
            };
            at = earliest(at, own);
        }
        self.shared.timed = at.is_some();
        at
    }

    /// Makes all the progress possible now: deadlines that passed, then reads and writes until
    /// each would block. False once the relay is over and the connection can be dropped.
    pub(super) fn drive(&mut self, now: &mut Now) -> bool {
        let mut run = std::mem::take(&mut self.woken);
        if self.shared.timed {
            let t = now.get();
            if self.linger_until.is_some_and(|l| l <= t) {
                return false;
            }
            for p in &mut self.pumps {
                p.on_time(t, &mut self.shared);
            }
            run = BOTH;
        }
        // Each woken pump runs until it would block; both once more if a closing was decided
        // meanwhile, so the other pump acts on it.
        loop {
            let decisions = self.shared.decisions;
            for (i, p) in self.pumps.iter_mut().enumerate() {
                if run & (1 << i) != 0 {
                    let mut steps = 0;
                    while p.step(&mut self.sockets, &mut self.shared, now) {
                        steps += 1;
                        if steps == TURN {
                            // Its turn is over, not its work: it runs again next time.
                            self.woken |= 1 << i;
                            break;
                        }
                    }
                }
            }
            if self.shared.decisions == decisions {
                break;
            }
            run = BOTH;
        }
        let done = self.pumps.iter().filter(|p| p.state == State::Done);
        match done.count() {
            0 => true,
            1 => {
                if self.linger_until.is_none() {
                    self.linger_until = Some(now.get() + self.shared.config.linger);
                    self.shared.timed = true;
                }
                true
            }
            _ => false,
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Pump {
    /// Acts on the deadlines that passed by `t`.
    fn on_time(&mut self, t: Instant, shared: &mut Shared) {
        match self.state {
            State::Relaying => {
                if self.slow_at.is_some_and(|at| at <= t) {
                    self.slow_at = None;
                    shared.observer.queue_depth(self.messages, true);
                }
                if self.stall_at.is_some_and(|at| at <= t) {
                    // The client does not read: drop it, and tell the upstream to try later.
                    let observer = &shared.observer;
                    observer.overflow(OverflowPolicy::Disconnect);
                    observer.close(Initiator::Server, wsmon::close_code::TRY_AGAIN_LATER);
                    shared.decide(Closing {
                        to_client: None,
                        to_upstream: Some(wsmon::close_code::TRY_AGAIN_LATER),
                    });
                    shared.observer.queue_drained();
                    self.stall_at = None;
                    self.state = State::Done;
                }
            }
            State::Closing if self.until.is_some_and(|u| u <= t) => {
                // The close frame could not be written in time; drain as if it had been.
                self.after_close(self.close.drain, t, shared);
            }
            State::Draining if self.until.is_some_and(|u| u <= t) => self.state = State::Done,
            _ => {}
        }
    }

    /// One step of this direction; true if it changed anything (so another may follow).
    #[inline(always)]
    fn step(&mut self, sockets: &mut [Socket; 2], shared: &mut Shared, now: &mut Now) -> bool {
        match self.state {
            State::Relaying => self.relay(sockets, shared, now),
            State::Closing => {
                let dst = &mut sockets[self.dst];
                if !dst.write_ready {
                    return false;
                }
                let c = &mut self.close;
                match dst.stream.write(&c.frame[c.sent..]) {
                    Ok(n) if n > 0 => c.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        dst.write_ready = false;
                        return false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
                    // The leg is gone: nothing more to tell it.
                    _ => c.sent = c.frame.len(),
                }
                if c.sent == c.frame.len() {
                    let drain = c.drain;
                    self.after_close(drain, now.get(), shared);
                }
                true
            }
            State::Draining => {
                let src = &mut sockets[self.src];
                if !src.readable() {
                    return false;
                }
                let more = match self.buf.read_from(&mut src.stream) {
                    Ok((0, _)) => {
                        self.state = State::Done;
                        return true;
                    }
                    Ok((_, filled)) => filled,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        src.read_ready = false;
                        return false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
                    Err(_) => {
                        self.state = State::Done;
                        return true;
                    }
                };
                src.read_ready &= more;
                match self.parser.feed(self.buf.pending(), |_| {}) {
                    Ok(n) => self.buf.consume(n),
                    Err(_) => self.state = State::Done,
                }
                if self.parser.saw_close() {
                    self.state = State::Done;
                }
                true
            }
            State::Done => false,
        }
    }

    /// Relaying: write what is parsed, then read and parse the next bytes.
    fn relay(&mut self, sockets: &mut [Socket; 2], shared: &mut Shared, now: &mut Now) -> bool {
        if self.out > 0 {
            return self.write_out(sockets, shared, now);
        }
        if let Some(violation) = self.invalid.take() {
            self.violated(violation, sockets, shared, now);
            return true;
        }
        if let Some(closing) = shared.closing {
            let code = self.code_in(closing);
            self.send_close(code, true, sockets, now, shared);
            return true;
        }
        if self.unparsed {
            self.unparsed = false;
        } else {
            let src = &mut sockets[self.src];
            if !src.readable() {
                return false;
            }
            match self.buf.read_from(&mut src.stream) {
                Ok((0, _)) => return self.mirror_end(sockets),
                Ok((_, filled)) => src.read_ready &= filled,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    src.read_ready = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
                Err(_) => return self.mirror_end(sockets),
            }
        }
        let mut messages = 0usize;
        let sender = self.sender;
        let parsed = self.parser.feed(self.buf.pending(), |event| {
            messages += 1;
            shared.on_event(sender, event);
        });
        let (forward, invalid) = match parsed {
            Ok(n) => (n, None),
            Err(Invalid {
                valid_bytes,
                violation,
            }) => (valid_bytes, Some(violation)),
        };
        self.out = forward;
        self.messages = messages;
        self.invalid = invalid;
        if forward > 0 {
            if sender == Sender::Server {
                shared.observer.queue_depth(messages, false);
            }
            // Most writes complete at once: try now rather than in another step.
            self.write_out(sockets, shared, now);
        }
        // Another step only if it has something to do: a step that finds nothing costs about
        // as much as the read's own bookkeeping (BENCHMARKS.md, 9b).
        self.state != State::Relaying
            || self.invalid.is_some()
            || (self.out > 0 && sockets[self.dst].write_ready)
            || (self.out == 0 && sockets[self.src].readable())
    }

    /// The source ended (or failed) without a close frame: the receiver sees its peer's TCP
    /// end, not a close frame.
    fn mirror_end(&mut self, sockets: &mut [Socket; 2]) -> bool {
        let _ = sockets[self.dst].stream.shutdown(Shutdown::Write);
        self.state = State::Done;
        true
    }

    /// Writes parsed bytes on. Toward the client, a write still pending after `slow_after`
    /// marks a slow consumer and one pending after `stall_timeout` overflows ([`Pump::on_time`]).
    #[inline(always)]
    fn write_out(&mut self, sockets: &mut [Socket; 2], shared: &mut Shared, now: &mut Now) -> bool {
        let dst = &mut sockets[self.dst];
        if !dst.write_ready {
            return false;
        }
        match dst.stream.write(&self.buf.pending()[..self.out]) {
            Ok(n) if n > 0 => {
                self.buf.consume(n);
                self.out -= n;
                if self.out == 0 {
                    if self.sender == Sender::Server {
                        shared.observer.queue_drained();
                    }
                    self.slow_at = None;
                    self.stall_at = None;
                } else if self.sender == Sender::Server && self.stall_at.is_none() {
                    self.arm_slow(now.get(), shared);
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                dst.write_ready = false;
                if self.sender == Sender::Server && self.stall_at.is_none() {
                    self.arm_slow(now.get(), shared);
                }
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            // The receiver is gone: this direction ends.
            _ => {
                if self.sender == Sender::Server {
                    shared.observer.queue_drained();
                }
                self.slow_at = None;
                self.stall_at = None;
                self.state = State::Done;
                true
            }
        }
    }

    fn arm_slow(&mut self, t: Instant, shared: &mut Shared) {
        self.slow_at = Some(t + shared.config.slow_after);
        self.stall_at = Some(t + shared.config.stall_timeout);
        shared.timed = true;
    }

    /// The source broke the protocol: decide the closing for both legs, tell the receiver,
    /// and stop reading the source, whose stream can no longer be parsed.
    fn violated(
        &mut self,
        violation: Violation,
        sockets: &mut [Socket; 2],
        shared: &mut Shared,
        now: &mut Now,
    ) {
        tracing::debug!(sender = ?self.sender, %violation, "protocol violation, closing");
        let closing = match self.sender {
            Sender::Client => {
                let code = violation.close_code();
                shared.observer.close(Initiator::Server, code);
                Closing {
                    to_client: Some(code),
                    to_upstream: Some(code),
                }
            }
            Sender::Server => {
                shared.observer.close(Initiator::Server, UPSTREAM_INVALID);
                Closing {
                    to_client: Some(UPSTREAM_INVALID),
                    to_upstream: Some(wsmon::close_code::PROTOCOL_ERROR),
                }
            }
        };
        shared.decide(closing);
        let code = self.code_in(closing);
        self.send_close(code, false, sockets, now, shared);
    }

    /// The code this direction's receiver is sent.
    fn code_in(&self, closing: Closing) -> Option<u16> {
        match self.sender {
            Sender::Client => closing.to_upstream,
            Sender::Server => closing.to_client,
        }
    }

    /// Sends the proxy's own close frame to the receiver, if there is a code and its stream is
    /// between frames; without a code, ends the receiver's stream instead. Then drains the
    /// source if `drain`.
    fn send_close(
        &mut self,
        code: Option<u16>,
        drain: bool,
        sockets: &mut [Socket; 2],
        now: &mut Now,
        shared: &mut Shared,
    ) {
        let t = now.get();
        let config = &shared.config;
        match code {
            Some(code) if self.parser.at_frame_boundary() => {
                // Toward the upstream the proxy speaks as a client, so its frames are masked.
                let mask = (self.sender == Sender::Client).then(rand::random::<[u8; 4]>);
                self.close = CloseFrame {
                    frame: close_frame(code, mask),
                    sent: 0,
                    drain,
                };
                self.state = State::Closing;
                self.until = Some(t + config.drain_timeout);
                shared.timed = true;
            }
            Some(_) => self.after_close(drain, t, shared),
            None => {
                let _ = sockets[self.dst].stream.shutdown(Shutdown::Write);
                self.after_close(drain, t, shared);
            }
        }
    }

    /// The proxy's close was sent (or could not be): drain the source until its close frame
    /// (the answer to the other direction's close) or its end.
    fn after_close(&mut self, drain: bool, t: Instant, shared: &mut Shared) {
        self.state = if drain && !self.parser.saw_close() {
            shared.timed = true;
            self.until = Some(t + shared.config.drain_timeout);
            State::Draining
        } else {
            State::Done
        };
    }
}

impl Shared {
    fn decide(&mut self, closing: Closing) {
        self.closing = Some(closing);
        self.decisions = self.decisions.wrapping_add(1);
    }

    fn on_event(&mut self, sender: Sender, event: Event<'_>) {
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
                    self.ping = Some((key, payload.len(), Instant::now()));
                }
            }
            Event::Pong(payload) => {
                self.observer
                    .message(direction, FrameType::Pong, payload.len());
                if sender == Sender::Client {
                    if let Some((key, len, at)) = self.ping {
                        let n = payload.len().min(8);
                        if len == payload.len() && key[..n] == payload[..n] {
                            self.observer.ping_rtt(at.elapsed());
                            self.ping = None;
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
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::time::{Duration, Instant};

    use super::{Connection, Now, TURN};
    use crate::relay::RelayConfig;

    /// A connected loopback pair: (the far end, the relay's non-blocking end).
    fn pair() -> (StdStream, mio::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let far = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (near, _) = listener.accept().unwrap();
        near.set_nonblocking(true).unwrap();
        (far, mio::net::TcpStream::from_std(near))
    }

    #[test]
    fn a_stream_with_both_ends_always_ready_yields_after_its_turn_and_then_goes_on() {
        let wsmon = wsmon::WsMon::builder()
            .route("/ws")
            .build(&prometheus::Registry::new())
            .unwrap();
        let observer = wsmon.observe_connection(&wsmon.route("/ws").unwrap());
        let (mut client, client_leg) = pair();
        let (mut upstream, upstream_leg) = pair();
        let config = RelayConfig {
            buffer_bytes: 256,
            ..RelayConfig::default()
        };
        // 64 KiB of masked client frames, all in the relay's receive buffer before it runs.
        let mut sent = Vec::new();
        for i in 0..64u8 {
            sent.extend(crate::frame::encode(
                true,
                2,
                &[i; 1016],
                Some([1, 2, 3, i]),
            ));
        }
        client.write_all(&sent).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut peek = vec![0u8; sent.len()];
        while client_leg.peek(&mut peek).unwrap_or(0) < sent.len() {
            assert!(
                Instant::now() < deadline,
                "the bytes reached the relay's socket"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut relay = Connection::new((client_leg, &[]), (upstream_leg, &[]), observer, config);

        assert!(relay.drive(&mut Now::default()), "the relay goes on");
        assert!(relay.runnable(), "its turn ended with more to read");
        upstream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut first = vec![0u8; sent.len()];
        let mut got = 0;
        while let Ok(n) = upstream.read(&mut first[got..]) {
            if n == 0 {
                break;
            }
            got += n;
        }
        let turn = TURN as usize * 256;
        assert!(
            got > 0 && got <= turn,
            "one turn relays at most {TURN} reads of the 256-byte buffer: {got} bytes"
        );

        let mut all = first[..got].to_vec();
        while relay.runnable() {
            assert!(relay.drive(&mut Now::default()));
            assert!(
                Instant::now() < deadline,
                "the rest was relayed in later turns"
            );
        }
        upstream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = vec![0u8; sent.len() - all.len()];
        upstream.read_exact(&mut rest).unwrap();
        all.extend(rest);
        assert_eq!(all, sent, "every byte, in order, across the turns");
    }
}
