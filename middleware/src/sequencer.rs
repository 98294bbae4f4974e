//! Sequencer lag: how far behind the head, in messages and seconds, a message is when it is
//! written to a socket.
//!
//! The application reports the head per route ([`crate::RouteHandle::set_head`]) and, for
//! each message it sends, its sequence and publish time: explicitly
//! ([`crate::ConnectionHandle::stamp_next`]) or through a [`StampExtractor`] that reads them
//! from the outgoing payload. Nothing is parsed unless an extractor is configured.

use std::sync::Arc;
use std::time::SystemTime;

/// The sequence and publish time of one outgoing message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stamp {
    /// The message's sequence number, for lag in messages.
    pub seq: Option<u64>,
    /// When the message was published, for lag in seconds.
    pub published: Option<SystemTime>,
}

impl Stamp {
    /// Both parts known. `Stamp::default()` is neither; set one with the fields.
    pub fn new(seq: u64, published: SystemTime) -> Self {
        Self {
            seq: Some(seq),
            published: Some(published),
        }
    }
}

/// Reads a [`Stamp`] from an outgoing data payload. Runs on the send path: keep it cheap.
pub type StampExtractor = Arc<dyn Fn(&[u8]) -> Option<Stamp> + Send + Sync>;

/// An extractor for JSON payloads: `seq_pointer` names an integer, `ts_ms_pointer` a Unix
/// timestamp in milliseconds (RFC 6901 JSON pointers, e.g. `/seq`). This parses every
/// outgoing data message, so prefer explicit stamps on busy streams.
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub fn json_stamp_extractor(seq_pointer: &str, ts_ms_pointer: Option<&str>) -> StampExtractor {
    let seq_pointer = seq_pointer.to_owned();
    let ts_pointer = ts_ms_pointer.map(str::to_owned);
    Arc::new(move |payload: &[u8]| {
        let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
        let seq = value.pointer(&seq_pointer).and_then(|v| v.as_u64());
        let published = ts_pointer
            .as_deref()
            .and_then(|p| value.pointer(p))
            .and_then(|v| v.as_u64())
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        (seq.is_some() || published.is_some()).then_some(Stamp { seq, published })
    })
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    #[test]
    fn json_extractor_reads_sequence_and_timestamp() {
        let x = json_stamp_extractor("/seq", Some("/ts"));
        let s = x(br#"{"type":"tick","seq":42,"ts":1700000000123}"#).unwrap();
        assert_eq!(s.seq, Some(42));
        assert_eq!(
            s.published,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(x(b"not json"), None);
        assert_eq!(x(br#"{"other":1}"#), None);
    }
}
