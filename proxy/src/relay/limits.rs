//! What one relayed connection is allowed, and the close codes the proxy sends of its own.

use std::time::Duration;

use wsmon::StampExtractor;

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
