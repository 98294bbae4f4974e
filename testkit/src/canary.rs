//! The fully equipped canary: one config entry against the example feed with every check the
//! prober runs on a stream, for tests that want them all at once.

use std::net::SocketAddr;

/// How often the equipped canary's checks run, and how long each may take.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Heartbeat, head check and publish period.
    pub every: &'static str,
    /// Heartbeat, head check and publish timeout.
    pub timeout: &'static str,
    /// `max_silence`.
    pub max_silence: &'static str,
}

/// A `canaries:` list item named `name` against the example feed at `feed`: sequence,
/// timestamp, `max_silence`, heartbeat, a head check (the reply matched by `/type` = `head`)
/// and publishing over HTTP, each at `pace`.
pub fn equipped_canary(name: &str, feed: SocketAddr, pace: Pace) -> String {
    let Pace {
        every,
        timeout,
        max_silence,
    } = pace;
    format!(
        r#"  - name: {name}
    url: ws://{feed}/ws
    connect_timeout: 2s
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    timestamp: {{ pointer: /ts, unit: ms }}
    max_silence: {max_silence}
    heartbeat: {{ every: {every}, timeout: {timeout} }}
    head_check: {{ send: '{{"op":"head"}}', match: {{ pointer: /type, equals: head }}, pointer: /seq, every: {every}, timeout: {timeout} }}
    publish:
      http: {{ url: 'http://{feed}/publish', method: POST, body: '{{"nonce":"{{{{nonce}}}}"}}' }}
      every: {every}
      match: /nonce
      timeout: {timeout}
"#
    )
}
