//! Close-code classification into a bounded label set.
//!
//! - 1000–1015 appear as themselves;
//! - application codes collapse to `3xxx` / `4xxx` unless allow-listed;
//! - anything else is `other`.
//!
//! A connection that ends without a close frame is `1006` (see [`ABNORMAL`]).

use std::collections::BTreeMap;
use std::sync::Arc;

/// RFC 6455 §7.4.1: "no close frame was received".
pub const ABNORMAL: u16 = 1006;
/// A close frame that carried no status code.
pub const NO_STATUS: u16 = 1005;
/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (server shutdown, page navigation).
pub const GOING_AWAY: u16 = 1001;
/// A protocol violation.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A message over the size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Overload: the server asks the client to try again later (an evicted slow consumer).
pub const TRY_AGAIN_LATER: u16 = 1013;

const STANDARD: [&str; 16] = [
    "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011",
    "1012", "1013", "1014", "1015",
];

/// Who ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// The client sent the first close frame.
    Client,
    /// The server sent the first close frame (or cut an unresponsive peer off).
    Server,
    /// The connection ended without a close handshake.
    None,
}

impl Initiator {
    /// The `initiator` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Client => "client",
            Initiator::Server => "server",
            Initiator::None => "none",
        }
    }
}

/// Maps close codes to label values; the allowlist is the only way to widen the set.
#[derive(Debug, Clone, Default)]
pub struct CloseCodeClassifier {
    allowed: Arc<BTreeMap<u16, Arc<str>>>,
}

impl CloseCodeClassifier {
    /// A classifier that keeps the listed application codes (3000–4999) as themselves.
    pub fn with_allowlist(codes: impl IntoIterator<Item = u16>) -> Self {
        let allowed = codes
            .into_iter()
            .filter(|c| (3000..=4999).contains(c))
            .map(|c| (c, Arc::from(c.to_string())))
            .collect();
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// The label value for `code`.
    pub fn classify(&self, code: u16) -> &str {
        if let Some(label) = self.allowed.get(&code) {
            return label;
        }
        classify(code)
    }

    /// Every label value this classifier can produce: the bound on `close_code` cardinality.
    pub fn label_values(&self) -> Vec<&str> {
        let mut v: Vec<&str> = STANDARD.to_vec();
        v.extend(self.allowed.values().map(|s| &**s));
        v.extend(["3xxx", "4xxx", "other"]);
        v
    }
}

/// Classification without an allowlist.
pub fn classify(code: u16) -> &'static str {
    match code {
        1000..=1015 => STANDARD[(code - 1000) as usize],
        3000..=3999 => "3xxx",
        4000..=4999 => "4xxx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes_appear_as_themselves() {
        for code in 1000..=1015 {
            assert_eq!(classify(code), code.to_string());
        }
    }

    #[test]
    fn application_codes_collapse_unless_allowlisted() {
        let c = CloseCodeClassifier::with_allowlist([4001, 4404]);
        assert_eq!(c.classify(4001), "4001");
        assert_eq!(c.classify(4002), "4xxx");
        assert_eq!(c.classify(3500), "3xxx");
        assert_eq!(c.classify(999), "other");
        assert_eq!(c.classify(1016), "other");
        assert_eq!(c.classify(2000), "other");
        assert_eq!(c.classify(65535), "other");
    }

    #[test]
    fn allowlist_ignores_codes_outside_the_application_range() {
        let c = CloseCodeClassifier::with_allowlist([1, 2999, 5000]);
        assert_eq!(c.label_values().len(), 16 + 3);
    }

    #[test]
    fn every_u16_maps_into_the_declared_label_set() {
        let c = CloseCodeClassifier::with_allowlist([4001]);
        let values = c.label_values();
        for code in 0..=u16::MAX {
            assert!(values.contains(&c.classify(code)), "{code}");
        }
    }
}
