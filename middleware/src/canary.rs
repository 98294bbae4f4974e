//! Recognising canary upgrades, so the server's view of its own canaries is recorded apart
//! from its users' (`websocket_server_canary_*`, see [`crate::catalog`]).
//!
//! wsmon-probe sends `User-Agent: wsmon-probe/<version>` on every upgrade, so the default
//! needs no configuration:
//!
//! ```
//! # fn main() -> Result<(), wsmon::Error> {
//! use wsmon::{CanaryRecognition, WsMon};
//!
//! let registry = prometheus::Registry::new();
//! let wsmon = WsMon::builder()
//!     // the default, spelled out; or ::header(..) for a header of your own, or ::off()
//!     .canary_recognition(CanaryRecognition::user_agent_prefix("wsmon-probe/"))
//!     .build(&registry)?;
//! # Ok(()) }
//! ```
//!
//! Anyone can send that `User-Agent`. A client that pretends to be a canary moves its own
//! connections from the users' view to the canaries' and can do nothing else: the families
//! carry no label it controls, so cardinality stays bounded. Where that matters, match a
//! header that only your prober sends (`canary_header` in its config, a value from a secret
//! file) with [`CanaryRecognition::header`].

use std::fmt;

use http::{header, HeaderMap, HeaderName};

/// How the middleware tells a canary's upgrade from a user's. Default:
/// [`CanaryRecognition::user_agent_prefix`]`("wsmon-probe/")`.
#[derive(Clone)]
pub struct CanaryRecognition {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Off,
    UserAgentPrefix(Vec<u8>),
    Header { name: HeaderName, value: Vec<u8> },
}

impl CanaryRecognition {
    /// A canary is an upgrade whose `User-Agent` starts with `prefix` (case-sensitive, as
    /// product tokens are compared).
    pub fn user_agent_prefix(prefix: impl Into<String>) -> Self {
        Self {
            rule: Rule::UserAgentPrefix(prefix.into().into_bytes()),
        }
    }

    /// A canary is an upgrade that carries header `name` with exactly `value`.
    pub fn header(name: HeaderName, value: impl Into<String>) -> Self {
        Self {
            rule: Rule::Header {
                name,
                value: value.into().into_bytes(),
            },
        }
    }

    /// No upgrade is a canary's: the `websocket_server_canary_*` families stay at zero.
    pub fn off() -> Self {
        Self { rule: Rule::Off }
    }

    /// Whether an upgrade with these headers is a canary's.
    pub(crate) fn matches(&self, headers: &HeaderMap) -> bool {
        match &self.rule {
            Rule::Off => false,
            Rule::UserAgentPrefix(prefix) => headers
                .get(header::USER_AGENT)
                .is_some_and(|ua| ua.as_bytes().starts_with(prefix)),
            Rule::Header { name, value } => headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == value.as_slice()),
        }
    }
}

impl Default for CanaryRecognition {
    fn default() -> Self {
        Self::user_agent_prefix("wsmon-probe/")
    }
}

/// The header value is not printed: it may be a shared secret.
impl fmt::Debug for CanaryRecognition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Off => f.write_str("CanaryRecognition::Off"),
            Rule::UserAgentPrefix(p) => f
                .debug_tuple("CanaryRecognition::UserAgentPrefix")
                .field(&String::from_utf8_lossy(p))
                .finish(),
            Rule::Header { name, .. } => f
                .debug_struct("CanaryRecognition::Header")
                .field("name", name)
                .field("value", &"***")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_default_recognises_the_probers_user_agent_only() {
        let r = CanaryRecognition::default();
        assert!(r.matches(&headers(&[("user-agent", "wsmon-probe/0.1.0")])));
        assert!(!r.matches(&headers(&[("user-agent", "Mozilla/5.0 wsmon-probe/0.1")])));
        assert!(!r.matches(&headers(&[("user-agent", "WSMON-PROBE/0.1")])));
        assert!(!r.matches(&HeaderMap::new()));
    }

    #[test]
    fn a_header_rule_needs_the_exact_value_and_ignores_the_user_agent() {
        let r = CanaryRecognition::header(HeaderName::from_static("x-canary"), "s3cret");
        assert!(r.matches(&headers(&[("x-canary", "other"), ("x-canary", "s3cret")])));
        assert!(!r.matches(&headers(&[("x-canary", "s3cret2")])));
        assert!(!r.matches(&headers(&[("user-agent", "wsmon-probe/0.1.0")])));
        assert!(!format!("{r:?}").contains("s3cret"));
    }

    #[test]
    fn off_recognises_nothing() {
        let r = CanaryRecognition::off();
        assert!(!r.matches(&headers(&[("user-agent", "wsmon-probe/0.1.0")])));
    }
}
