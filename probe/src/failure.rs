//! Why a canary failed: a fixed, documented set, so `reason` labels stay bounded.

use std::fmt;

use crate::config::CanaryConfig;

/// The reason a canary run failed or a stream ended. `as_str` values are stable: they appear in
/// `--format json`, in the `reason` label and in `docs/probe.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The host name did not resolve (or resolution timed out).
    Dns,
    /// The TCP connection was refused.
    ConnectRefused,
    /// The TCP connection did not complete within `connect_timeout`.
    ConnectTimeout,
    /// Any other TCP connect error (unreachable network, reset during connect).
    ConnectError,
    /// The TLS handshake failed or timed out for another reason (protocol, bad ca_file).
    Tls,
    /// The server's certificate (or one in its chain) has expired or is not yet valid.
    TlsExpired,
    /// The server's certificate does not chain to a trusted root (self-signed, unknown CA).
    TlsUntrusted,
    /// The server's certificate is not valid for the host name in the URL.
    TlsHostname,
    /// The server sent no complete upgrade response within `connect_timeout`.
    HandshakeTimeout,
    /// The upgrade response was not `101 Switching Protocols`.
    HandshakeStatus,
    /// The upgrade was answered with a 3xx redirect; the prober never follows them.
    Redirect,
    /// The upgrade response was malformed or violated RFC 6455.
    HandshakeError,
    /// The `Sec-WebSocket-Accept` header did not match the key the prober sent.
    HandshakeAcceptMismatch,
    /// No data message arrived within `first_payload_within` of the upgrade.
    FirstPayloadTimeout,
    /// The stream was silent for longer than `max_silence`.
    Stall,
    /// A sequence number was skipped and not filled within the reorder window.
    SequenceGap,
    /// A sequence number arrived twice.
    SequenceDuplicate,
    /// The sequence pointer held something that is not an unsigned 64-bit integer.
    InvalidSequence,
    /// A JSON message nested deeper than the parser's recursion limit (128).
    PayloadTooDeep,
    /// The head check showed the stream more than `max_lag` messages behind.
    HeadLag,
    /// No head check reply within its timeout.
    HeadTimeout,
    /// A published nonce did not arrive on the stream within the timeout.
    PublishTimeout,
    /// The publish request failed or returned a non-2xx status.
    PublishError,
    /// No pong to a heartbeat ping within its timeout.
    HeartbeatTimeout,
    /// The stream ended: a close frame from the server, or the TCP connection dropping (1006).
    Closed,
    /// The TCP connection was reset (RST) mid-stream.
    Reset,
    /// The server broke the WebSocket protocol in another way, or closed with 1002.
    ProtocolError,
    /// A frame had a reserved bit (RSV1-3) set without a negotiated extension.
    ReservedBits,
    /// A frame used a reserved opcode.
    BadOpcode,
    /// A control frame (close, ping, pong) was fragmented or over 125 bytes.
    FragmentedControl,
    /// A text message (or close reason) was not valid UTF-8.
    InvalidUtf8,
    /// A close frame carried a code RFC 6455 forbids on the wire, or a malformed payload.
    InvalidCloseCode,
    /// The server sent frames after its close frame.
    DataAfterClose,
    /// A fragmented message grew past `max_message_bytes`, or the server closed with 1009.
    MessageTooBig,
    /// A frame header declared a payload over `max_message_bytes`; refused before reading it.
    FrameTooBig,
    /// The server sent more than [`PING_FLOOD_PER_SECOND`] pings within a second.
    PingFlood,
    /// Data messages arrived faster than the canary's `max_message_rate`.
    MessageFlood,
    /// A resume found part of what followed its point no longer retained (`resume_miss`).
    ResumeMiss,
    /// A resumed connection began with a snapshot or a sequence other than the next one.
    ResumeIgnored,
    /// The server closed a resumed connection with 1013 `resume unavailable`.
    ResumeUnavailable,
}

/// More pings than this within one second end the stream with `ping_flood`: a server has no
/// honest reason to ping that often, and every ping costs the prober a pong.
pub const PING_FLOOD_PER_SECOND: u32 = 100;

impl FailureReason {
    /// Every reason, in documentation order.
    pub const ALL: &'static [FailureReason] = &[
        FailureReason::Dns,
        FailureReason::ConnectRefused,
        FailureReason::ConnectTimeout,
        FailureReason::ConnectError,
        FailureReason::Tls,
        FailureReason::TlsExpired,
        FailureReason::TlsUntrusted,
        FailureReason::TlsHostname,
        FailureReason::HandshakeTimeout,
        FailureReason::HandshakeStatus,
        FailureReason::Redirect,
        FailureReason::HandshakeError,
        FailureReason::HandshakeAcceptMismatch,
        FailureReason::FirstPayloadTimeout,
        FailureReason::Stall,
        FailureReason::SequenceGap,
        FailureReason::SequenceDuplicate,
        FailureReason::InvalidSequence,
        FailureReason::PayloadTooDeep,
        FailureReason::HeadLag,
        FailureReason::HeadTimeout,
        FailureReason::PublishTimeout,
        FailureReason::PublishError,
        FailureReason::HeartbeatTimeout,
        FailureReason::Closed,
        FailureReason::Reset,
        FailureReason::ProtocolError,
        FailureReason::ReservedBits,
        FailureReason::BadOpcode,
        FailureReason::FragmentedControl,
        FailureReason::InvalidUtf8,
        FailureReason::InvalidCloseCode,
        FailureReason::DataAfterClose,
        FailureReason::MessageTooBig,
        FailureReason::FrameTooBig,
        FailureReason::PingFlood,
        FailureReason::MessageFlood,
        FailureReason::ResumeMiss,
        FailureReason::ResumeIgnored,
        FailureReason::ResumeUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::ConnectRefused => "connect_refused",
            FailureReason::ConnectTimeout => "connect_timeout",
            FailureReason::ConnectError => "connect_error",
            FailureReason::Tls => "tls",
            FailureReason::TlsExpired => "tls_expired",
            FailureReason::TlsUntrusted => "tls_untrusted",
            FailureReason::TlsHostname => "tls_hostname",
            FailureReason::HandshakeTimeout => "handshake_timeout",
            FailureReason::HandshakeStatus => "handshake_status",
            FailureReason::Redirect => "redirect",
            FailureReason::HandshakeError => "handshake_error",
            FailureReason::HandshakeAcceptMismatch => "handshake_accept_mismatch",
            FailureReason::FirstPayloadTimeout => "first_payload_timeout",
            FailureReason::Stall => "stall",
            FailureReason::SequenceGap => "sequence_gap",
            FailureReason::SequenceDuplicate => "sequence_duplicate",
            FailureReason::InvalidSequence => "invalid_sequence",
            FailureReason::PayloadTooDeep => "payload_too_deep",
            FailureReason::HeadLag => "head_lag",
            FailureReason::HeadTimeout => "head_timeout",
            FailureReason::PublishTimeout => "publish_timeout",
            FailureReason::PublishError => "publish_error",
            FailureReason::HeartbeatTimeout => "heartbeat_timeout",
            FailureReason::Closed => "closed",
            FailureReason::Reset => "reset",
            FailureReason::ProtocolError => "protocol_error",
            FailureReason::ReservedBits => "reserved_bits",
            FailureReason::BadOpcode => "bad_opcode",
            FailureReason::FragmentedControl => "fragmented_control",
            FailureReason::InvalidUtf8 => "invalid_utf8",
            FailureReason::InvalidCloseCode => "invalid_close_code",
            FailureReason::DataAfterClose => "data_after_close",
            FailureReason::MessageTooBig => "message_too_big",
            FailureReason::FrameTooBig => "frame_too_big",
            FailureReason::PingFlood => "ping_flood",
            FailureReason::MessageFlood => "message_flood",
            FailureReason::ResumeMiss => "resume_miss",
            FailureReason::ResumeIgnored => "resume_ignored",
            FailureReason::ResumeUnavailable => "resume_unavailable",
        }
    }

    /// Whether this fault ends the stream (and so the `once` run, or triggers a reconnect).
    pub fn ends_stream(self) -> bool {
        !matches!(
            self,
            FailureReason::Stall
                | FailureReason::SequenceGap
                | FailureReason::SequenceDuplicate
                | FailureReason::HeadLag
                | FailureReason::HeadTimeout
                | FailureReason::PublishTimeout
                | FailureReason::PublishError
                | FailureReason::InvalidSequence
                | FailureReason::PayloadTooDeep
                | FailureReason::ResumeMiss
                | FailureReason::ResumeIgnored
        )
    }

    /// The reasons canary `cfg` can fail with: every connect and protocol reason, plus those
    /// of the checks it has configured. Its `failures_total` series start from these at zero.
    pub fn possible_for(cfg: &CanaryConfig) -> Vec<FailureReason> {
        use FailureReason as R;
        let needs_json = cfg.sequence.is_some()
            || cfg.timestamp.is_some()
            || cfg.publish.is_some()
            || cfg.head_check.is_some();
        let tls = cfg.url.scheme() == "wss";
        FailureReason::ALL
            .iter()
            .copied()
            .filter(|r| match r {
                R::Tls | R::TlsExpired | R::TlsUntrusted | R::TlsHostname => tls,
                R::Stall => cfg.max_silence.is_some(),
                R::SequenceGap | R::SequenceDuplicate | R::InvalidSequence => {
                    cfg.sequence.is_some()
                }
                R::PayloadTooDeep => needs_json,
                R::HeadLag => cfg.head_check.as_ref().is_some_and(|h| h.max_lag.is_some()),
                R::HeadTimeout => cfg.head_check.is_some(),
                R::PublishTimeout | R::PublishError => cfg.publish.is_some(),
                R::HeartbeatTimeout => cfg.heartbeat.is_some(),
                R::MessageFlood => cfg.max_message_rate.is_some(),
                R::ResumeMiss | R::ResumeIgnored | R::ResumeUnavailable => cfg.resume.is_some(),
                _ => true,
            })
            .collect()
    }

    /// The reason for a stream that ended with close `code` from the server.
    pub fn for_close_code(code: u16) -> Self {
        match code {
            wsmon::close_code::PROTOCOL_ERROR => FailureReason::ProtocolError,
            wsmon::close_code::MESSAGE_TOO_BIG => FailureReason::MessageTooBig,
            _ => FailureReason::Closed,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_strings_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in FailureReason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{s}"
            );
        }
    }

    #[test]
    fn close_codes_map_to_their_reasons() {
        assert_eq!(
            FailureReason::for_close_code(1009),
            FailureReason::MessageTooBig
        );
        assert_eq!(
            FailureReason::for_close_code(1002),
            FailureReason::ProtocolError
        );
        assert_eq!(FailureReason::for_close_code(1001), FailureReason::Closed);
        assert_eq!(FailureReason::for_close_code(1013), FailureReason::Closed);
    }
}
