//! Why a canary failed: a fixed, documented set, so `reason` labels stay bounded.

use std::fmt;

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
    /// The TLS handshake failed or timed out (certificate, protocol, name mismatch).
    Tls,
    /// The server sent no complete upgrade response within `connect_timeout`.
    HandshakeTimeout,
    /// The upgrade response was not `101 Switching Protocols`.
    HandshakeStatus,
    /// The upgrade response was malformed or violated RFC 6455.
    HandshakeError,
    /// No data message arrived within `first_payload_within` of the upgrade.
    FirstPayloadTimeout,
    /// The stream was silent for longer than `max_silence`.
    Stall,
    /// A sequence number was skipped and not filled within the reorder window.
    SequenceGap,
    /// A sequence number arrived twice.
    SequenceDuplicate,
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
    /// The server broke the WebSocket protocol, or closed with 1002.
    ProtocolError,
    /// A message exceeded `max_message_bytes`, or the server closed with 1009.
    MessageTooBig,
}

impl FailureReason {
    /// Every reason, in documentation order.
    pub const ALL: &'static [FailureReason] = &[
        FailureReason::Dns,
        FailureReason::ConnectRefused,
        FailureReason::ConnectTimeout,
        FailureReason::ConnectError,
        FailureReason::Tls,
        FailureReason::HandshakeTimeout,
        FailureReason::HandshakeStatus,
        FailureReason::HandshakeError,
        FailureReason::FirstPayloadTimeout,
        FailureReason::Stall,
        FailureReason::SequenceGap,
        FailureReason::SequenceDuplicate,
        FailureReason::HeadLag,
        FailureReason::HeadTimeout,
        FailureReason::PublishTimeout,
        FailureReason::PublishError,
        FailureReason::HeartbeatTimeout,
        FailureReason::Closed,
        FailureReason::ProtocolError,
        FailureReason::MessageTooBig,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::ConnectRefused => "connect_refused",
            FailureReason::ConnectTimeout => "connect_timeout",
            FailureReason::ConnectError => "connect_error",
            FailureReason::Tls => "tls",
            FailureReason::HandshakeTimeout => "handshake_timeout",
            FailureReason::HandshakeStatus => "handshake_status",
            FailureReason::HandshakeError => "handshake_error",
            FailureReason::FirstPayloadTimeout => "first_payload_timeout",
            FailureReason::Stall => "stall",
            FailureReason::SequenceGap => "sequence_gap",
            FailureReason::SequenceDuplicate => "sequence_duplicate",
            FailureReason::HeadLag => "head_lag",
            FailureReason::HeadTimeout => "head_timeout",
            FailureReason::PublishTimeout => "publish_timeout",
            FailureReason::PublishError => "publish_error",
            FailureReason::HeartbeatTimeout => "heartbeat_timeout",
            FailureReason::Closed => "closed",
            FailureReason::ProtocolError => "protocol_error",
            FailureReason::MessageTooBig => "message_too_big",
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
        )
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
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
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
