//! A passive RFC 6455 frame parser: it reads the byte stream of one direction, reports each
//! message and control frame, and finds protocol violations, without ever changing a byte.
//!
//! Rules, in the order they are checked for each frame header:
//! - frames from the client must be masked, frames from the server must not (§5.1);
//! - RSV2 and RSV3 are never set; RSV1 only on the first frame of a data message, and only
//!   when permessage-deflate was negotiated (RFC 7692 §6);
//! - opcodes 3–7 and 11–15 are reserved;
//! - control frames are final and carry at most 125 bytes (§5.5);
//! - a continuation needs a message in progress, a new data frame needs none (§5.4);
//! - a message longer than the configured maximum is a violation (1009), counted on the
//!   wire, so for compressed messages it is the compressed size.
//!
//! Data payloads are skipped, not buffered, except that the caller may ask for up to
//! `capture_limit` bytes of uncompressed server messages (for stamp pointers). A control frame
//! is reported only once it is whole, so [`FrameParser::feed`] leaves an incomplete header or
//! control frame unconsumed: the relay holds those bytes back, and never forwards a frame
//! whose header it has not checked.

use wsmon::frame::FrameType;

/// Who sends the bytes of the direction being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The client, toward the upstream.
    Client,
    /// The upstream, toward the client.
    Server,
}

/// What the parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct ParserConfig {
    /// Whose frames these are: client frames must be masked, server frames must not.
    pub sender: Sender,
    /// Whether RSV1 (permessage-deflate) was negotiated.
    pub compression: bool,
    /// Longest message accepted, in wire payload bytes.
    pub max_message_bytes: Option<u64>,
    /// Uncompressed data messages up to this size are reported with their payload.
    pub capture_limit: usize,
}

/// One complete message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A data message, reported when its final frame ends.
    Message {
        frame_type: FrameType,
        /// Payload bytes on the wire (compressed size when `compressed`).
        payload_bytes: u64,
        compressed: bool,
        /// The unmasked payload, when it was captured.
        payload: Option<&'a [u8]>,
    },
    /// A ping with its (unmasked) application data.
    Ping(&'a [u8]),
    /// A pong with its (unmasked) application data.
    Pong(&'a [u8]),
    /// A close frame with its code (1005 when it carried none).
    Close(u16),
}

/// Why a stream is not valid WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("server frame is masked")]
    Masked,
    #[error("reserved bits set")]
    ReservedBits,
    #[error("reserved opcode {0}")]
    ReservedOpcode(u8),
    #[error("control frame is fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("close frame with a one-byte payload")]
    BadClosePayload,
    #[error("continuation without a message in progress")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is in progress")]
    UnfinishedMessage,
    #[error("payload length with the most significant bit set")]
    BadLength,
    #[error("message longer than {limit} bytes")]
    MessageTooBig { limit: u64 },
}

impl Violation {
    /// The close code that answers this violation.
    pub fn close_code(self) -> u16 {
        match self {
            Violation::MessageTooBig { .. } => wsmon::close_code::MESSAGE_TOO_BIG,
            _ => wsmon::close_code::PROTOCOL_ERROR,
        }
    }
}

/// A violation and how many bytes before it were valid (and may be forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// Bytes before the offending frame: whole frames, safe to forward.
    pub valid_bytes: usize,
    pub violation: Violation,
}

#[derive(Debug, Default)]
struct Message {
    frame_type: Option<FrameType>,
    compressed: bool,
    bytes: u64,
    capturing: bool,
}

/// Incremental parser for one direction of one connection.
#[derive(Debug)]
pub struct FrameParser {
    config: ParserConfig,
    /// Payload bytes of the current data frame still to come.
    remaining: u64,
    final_frame: bool,
    mask: Option<[u8; 4]>,
    /// Offset within the current frame's payload, for unmasking captured bytes.
    frame_offset: u64,
    message: Message,
    captured: Vec<u8>,
    closed: bool,
}

const MAX_HEADER: usize = 14;

impl FrameParser {
    /// A parser at the start of a stream.
    pub fn new(config: ParserConfig) -> Self {
        Self {
            config,
            remaining: 0,
            final_frame: false,
            mask: None,
            frame_offset: 0,
            message: Message::default(),
            captured: Vec::new(),
            closed: false,
        }
    }

    /// True between frames: a frame of our own may be written to this direction's receiver.
    pub fn at_frame_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// True once a close frame was seen.
    pub fn saw_close(&self) -> bool {
        self.closed
    }

    /// Parses `buf`, calling `on_event` for each complete message or control frame. Returns how
    /// many bytes were consumed; the rest (an incomplete header or control frame, at most 139
    /// bytes) must be passed again with the bytes that follow.
    pub fn feed(
        &mut self,
        buf: &[u8],
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<usize, Invalid> {
        let mut pos = 0;
        loop {
            if self.remaining > 0 {
                let n = (self.remaining.min((buf.len() - pos) as u64)) as usize;
                if self.message.capturing {
                    self.capture(&buf[pos..pos + n]);
                }
                pos += n;
                self.remaining -= n as u64;
                self.frame_offset += n as u64;
                if self.remaining > 0 {
                    return Ok(pos);
                }
                self.end_data_frame(&mut on_event);
            }
            if pos == buf.len() {
                return Ok(pos);
            }
            let invalid = |violation| Invalid {
                valid_bytes: pos,
                violation,
            };
            let Some(header) = Header::parse(&buf[pos..]).map_err(invalid)? else {
                return Ok(pos);
            };
            self.check(&header).map_err(invalid)?;
            if header.opcode >= 8 {
                let end = pos + header.len + header.payload as usize;
                if buf.len() < end {
                    return Ok(pos);
                }
                let mut payload = [0u8; 125];
                let payload = &mut payload[..header.payload as usize];
                payload.copy_from_slice(&buf[pos + header.len..end]);
                if let Some(mask) = header.mask {
                    unmask(payload, mask, 0);
                }
                let event = match header.opcode {
                    8 => match payload.len() {
                        0 => Event::Close(wsmon::close_code::NO_STATUS),
                        1 => return Err(invalid(Violation::BadClosePayload)),
                        _ => Event::Close(u16::from_be_bytes([payload[0], payload[1]])),
                    },
                    9 => Event::Ping(payload),
                    _ => Event::Pong(payload),
                };
                if let Event::Close(_) = event {
                    self.closed = true;
                }
                on_event(event);
                pos = end;
                continue;
            }
            if header.opcode != 0 {
                let compressed = header.rsv1;
                self.message = Message {
                    frame_type: Some(if header.opcode == 1 {
                        FrameType::Text
                    } else {
                        FrameType::Binary
                    }),
                    compressed,
                    bytes: 0,
                    capturing: !compressed && self.config.capture_limit > 0,
                };
                self.captured.clear();
            }
            self.message.bytes += header.payload;
            if let Some(limit) = self.config.max_message_bytes {
                if self.message.bytes > limit {
                    return Err(invalid(Violation::MessageTooBig { limit }));
                }
            }
            pos += header.len;
            self.remaining = header.payload;
            self.final_frame = header.fin;
            self.mask = header.mask;
            self.frame_offset = 0;
            if self.remaining == 0 {
                self.end_data_frame(&mut on_event);
            }
        }
    }

    fn check(&self, h: &Header) -> Result<(), Violation> {
        match (self.config.sender, h.mask.is_some()) {
            (Sender::Client, false) => return Err(Violation::Unmasked),
            (Sender::Server, true) => return Err(Violation::Masked),
            _ => {}
        }
        if h.rsv23 || (h.rsv1 && !(self.config.compression && (h.opcode == 1 || h.opcode == 2))) {
            return Err(Violation::ReservedBits);
        }
        match h.opcode {
            0 if self.message.frame_type.is_none() => Err(Violation::UnexpectedContinuation),
            1 | 2 if self.message.frame_type.is_some() => Err(Violation::UnfinishedMessage),
            0..=2 => Ok(()),
            8..=10 if !h.fin || h.payload > 125 => Err(Violation::BadControlFrame),
            8..=10 => Ok(()),
            op => Err(Violation::ReservedOpcode(op)),
        }
    }

    fn capture(&mut self, bytes: &[u8]) {
        let room = self
            .config
            .capture_limit
            .saturating_sub(self.captured.len());
        if bytes.len() > room {
            self.message.capturing = false;
            self.captured.clear();
            return;
        }
        let start = self.captured.len();
        self.captured.extend_from_slice(bytes);
        if let Some(mask) = self.mask {
            unmask(&mut self.captured[start..], mask, self.frame_offset);
        }
    }

    fn end_data_frame(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if !self.final_frame {
            return;
        }
        let message = std::mem::take(&mut self.message);
        if let Some(frame_type) = message.frame_type {
            on_event(Event::Message {
                frame_type,
                payload_bytes: message.bytes,
                compressed: message.compressed,
                payload: message.capturing.then_some(&self.captured[..]),
            });
        }
    }
}

struct Header {
    fin: bool,
    rsv1: bool,
    rsv23: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: u64,
    /// Header length in bytes.
    len: usize,
}

impl Header {
    /// `Ok(None)` when `buf` does not hold the whole header yet.
    fn parse(buf: &[u8]) -> Result<Option<Header>, Violation> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let masked = b1 & 0x80 != 0;
        let (payload, mut len) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() >= 10 => {
                let n = u64::from_be_bytes(buf[2..10].try_into().expect("eight bytes"));
                if n >> 63 != 0 {
                    return Err(Violation::BadLength);
                }
                (n, 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        let mask = if masked {
            if buf.len() < len + 4 {
                return Ok(None);
            }
            let m = buf[len..len + 4].try_into().expect("four bytes");
            len += 4;
            Some(m)
        } else {
            None
        };
        debug_assert!(len <= MAX_HEADER);
        Ok(Some(Header {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv23: b0 & 0x30 != 0,
            opcode: b0 & 0x0f,
            mask,
            payload,
            len,
        }))
    }
}

fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= mask[((offset + i as u64) % 4) as usize];
    }
}

/// Encodes one frame: masked with `mask` (from a client) or not (from a server). The proxy
/// uses it only for its own close frames, between frames; tests use it for the rest.
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(m | n as u8),
        n @ 126..=65535 => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        unmask(&mut out[start + 4..], k, 0);
    }
    out
}

/// A close frame with `code`.
pub fn close_frame(code: u16, mask: Option<[u8; 4]>) -> Vec<u8> {
    encode(true, 8, &code.to_be_bytes(), mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    use encode as frame;

    fn config(sender: Sender) -> ParserConfig {
        ParserConfig {
            sender,
            compression: false,
            max_message_bytes: None,
            capture_limit: 1024,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Owned {
        Message(FrameType, u64, Option<Vec<u8>>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(u16),
    }

    /// Feeds `bytes` in chunks of `chunk`, re-passing what was not consumed, like the relay.
    fn parse(cfg: ParserConfig, bytes: &[u8], chunk: usize) -> Result<Vec<Owned>, Violation> {
        let mut p = FrameParser::new(cfg);
        let mut events = vec![];
        let mut pending: Vec<u8> = vec![];
        for piece in bytes.chunks(chunk) {
            pending.extend_from_slice(piece);
            let n = p
                .feed(&pending, |e| {
                    events.push(match e {
                        Event::Message {
                            frame_type,
                            payload_bytes,
                            payload,
                            ..
                        } => Owned::Message(frame_type, payload_bytes, payload.map(<[u8]>::to_vec)),
                        Event::Ping(p) => Owned::Ping(p.to_vec()),
                        Event::Pong(p) => Owned::Pong(p.to_vec()),
                        Event::Close(c) => Owned::Close(c),
                    })
                })
                .map_err(|i| i.violation)?;
            pending.drain(..n);
        }
        assert!(pending.is_empty(), "left over: {pending:?}");
        Ok(events)
    }

    #[test]
    fn fragmented_messages_with_interleaved_control_frames_parse_at_every_split() {
        let k = Some([1, 2, 3, 4]);
        let mut wire = frame(false, 1, b"hel", k);
        wire.extend(frame(true, 9, b"pp", k));
        wire.extend(frame(true, 0, b"lo", k));
        wire.extend(frame(true, 2, &[7u8; 300], k));
        wire.extend(frame(true, 8, &[0x03, 0xe8, b'b', b'y'], k));
        for chunk in 1..40 {
            let events = parse(config(Sender::Client), &wire, chunk).unwrap();
            assert_eq!(
                events,
                vec![
                    Owned::Ping(b"pp".to_vec()),
                    Owned::Message(FrameType::Text, 5, Some(b"hello".to_vec())),
                    Owned::Message(FrameType::Binary, 300, Some(vec![7u8; 300])),
                    Owned::Close(1000),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn masking_is_required_from_clients_and_refused_from_servers() {
        let unmasked = frame(true, 1, b"x", None);
        assert_eq!(
            parse(config(Sender::Client), &unmasked, 64),
            Err(Violation::Unmasked)
        );
        let masked = frame(true, 1, b"x", Some([9; 4]));
        assert_eq!(
            parse(config(Sender::Server), &masked, 64),
            Err(Violation::Masked)
        );
    }

    #[test]
    fn reserved_bits_and_opcodes_and_bad_control_frames_are_violations() {
        let s = config(Sender::Server);
        let mut rsv1 = frame(true, 1, b"x", None);
        rsv1[0] |= 0x40;
        assert_eq!(parse(s, &rsv1, 64), Err(Violation::ReservedBits));
        let deflate = ParserConfig {
            compression: true,
            ..s
        };
        assert!(parse(deflate, &rsv1, 64).is_ok());
        assert_eq!(
            parse(s, &frame(true, 3, b"", None), 64),
            Err(Violation::ReservedOpcode(3))
        );
        assert_eq!(
            parse(s, &frame(false, 9, b"", None), 64),
            Err(Violation::BadControlFrame)
        );
        assert_eq!(
            parse(s, &frame(true, 9, &[0; 126], None), 64),
            Err(Violation::BadControlFrame)
        );
        assert_eq!(
            parse(s, &frame(true, 0, b"x", None), 64),
            Err(Violation::UnexpectedContinuation)
        );
        let mut two = frame(false, 1, b"x", None);
        two.extend(frame(true, 1, b"y", None));
        assert_eq!(parse(s, &two, 64), Err(Violation::UnfinishedMessage));
        assert_eq!(
            parse(s, &frame(true, 8, b"x", None), 64),
            Err(Violation::BadClosePayload)
        );
    }

    #[test]
    fn an_oversized_message_is_refused_from_its_header_without_reading_the_payload() {
        let cfg = ParserConfig {
            max_message_bytes: Some(100),
            ..config(Sender::Server)
        };
        let mut header = vec![0x82, 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(
            parse(cfg, &header, 64),
            Err(Violation::MessageTooBig { limit: 100 })
        );
        let mut fragments = frame(false, 2, &[0; 60], None);
        fragments.extend(frame(true, 0, &[0; 60], None));
        assert_eq!(
            parse(cfg, &fragments, 64),
            Err(Violation::MessageTooBig { limit: 100 })
        );
    }

    #[test]
    fn the_valid_prefix_before_a_violation_is_reported() {
        let mut wire = frame(true, 1, b"ok", None);
        let good = wire.len();
        wire.extend(frame(true, 1, b"x", Some([1; 4])));
        let mut p = FrameParser::new(config(Sender::Server));
        let err = p.feed(&wire, |_| {}).unwrap_err();
        assert_eq!(err.valid_bytes, good);
    }

    #[test]
    fn large_messages_are_not_captured_and_compressed_ones_never() {
        let cfg = ParserConfig {
            capture_limit: 4,
            compression: true,
            ..config(Sender::Server)
        };
        let events = parse(cfg, &frame(true, 1, b"12345", None), 3).unwrap();
        assert_eq!(events, vec![Owned::Message(FrameType::Text, 5, None)]);
        let mut z = frame(true, 1, b"12", None);
        z[0] |= 0x40;
        assert_eq!(
            parse(cfg, &z, 64).unwrap(),
            vec![Owned::Message(FrameType::Text, 2, None)]
        );
    }

    #[test]
    fn our_close_frames_parse_back() {
        let mut p = FrameParser::new(config(Sender::Client));
        let mut seen = None;
        p.feed(&close_frame(1001, Some([5, 6, 7, 8])), |e| {
            seen = Some(format!("{e:?}"))
        })
        .unwrap();
        assert_eq!(seen.as_deref(), Some("Close(1001)"));
        let events = parse(config(Sender::Server), &close_frame(1014, None), 1).unwrap();
        assert_eq!(events, vec![Owned::Close(1014)]);
    }
}
