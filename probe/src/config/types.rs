//! The validated configuration's types, as the rest of the prober reads them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wsmon::Secret;

/// A URL whose user info and query values are redacted when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl(url::Url);

impl TargetUrl {
    pub fn parse(s: &str) -> Result<Self, url::ParseError> {
        url::Url::parse(s).map(Self)
    }

    /// The full URL, credentials included, for the one place that connects.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    /// This URL with `name=value` added to its query (after any pairs already there).
    pub fn with_query_pair(&self, name: &str, value: &str) -> Self {
        let mut url = self.0.clone();
        url.query_pairs_mut().append_pair(name, value);
        Self(url)
    }

    /// The URL with user info and query values replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        if !url.username().is_empty() || url.password().is_some() {
            let _ = url.set_username("***");
            let _ = url.set_password(None);
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, _)| (k.into_owned(), "***".to_string()))
                .collect();
            url.set_query(None);
            if !pairs.is_empty() {
                let query = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&");
                url.set_query(Some(&query));
            }
        }
        url.to_string()
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Retry delays: exponential from `initial` up to `max`, with full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// Settings every canary inherits unless it overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub connect_timeout: Duration,
    pub first_payload_timeout: Duration,
    pub max_message_bytes: usize,
    pub backoff: Backoff,
    /// Upgrade headers every canary sends (a shared canary token, say); a canary's own
    /// `headers` win by name.
    pub headers: Vec<(String, Secret)>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_payload_timeout: Duration::from_secs(5),
            max_message_bytes: 1 << 20,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// Extra PEM roots, trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceConfig {
    /// JSON pointer to the sequence number.
    pub pointer: String,
    /// Messages to wait for late arrivals before a gap is confirmed.
    pub reorder_window: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl TimeUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimestampConfig {
    pub pointer: String,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartbeatConfig {
    pub every: Duration,
    pub timeout: Duration,
}

/// Identifies a reply: the value at `pointer` equals `equals`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRule {
    pub pointer: String,
    pub equals: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeadCheckConfig {
    pub send: String,
    /// JSON pointer to the head sequence in the reply.
    pub pointer: String,
    /// How to tell the reply from stream messages; without it, the first message after the
    /// request is taken as the reply.
    pub reply: Option<MatchRule>,
    pub every: Duration,
    pub timeout: Duration,
    /// Lag above this many messages is a failure.
    pub max_lag: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpPublishConfig {
    pub url: TargetUrl,
    pub method: String,
    pub body: String,
    pub headers: Vec<(String, Secret)>,
}

/// Publishing by sending a text message on a second WebSocket connection.
#[derive(Debug, Clone, PartialEq)]
pub struct WsPublishConfig {
    /// Connected with the canary's headers, TLS settings and timeouts.
    pub url: TargetUrl,
    /// The message, with `{{nonce}}` replaced.
    pub send: String,
}

/// The service's own publish path that a nonce goes through.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishVia {
    Http(HttpPublishConfig),
    WebSocket(WsPublishConfig),
}

impl PublishVia {
    /// Where nonces are published, credentials redacted.
    pub fn target(&self) -> String {
        match self {
            PublishVia::Http(h) => h.url.redacted(),
            PublishVia::WebSocket(w) => w.url.redacted(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    pub via: PublishVia,
    pub every: Duration,
    /// JSON pointer to the nonce in stream messages.
    pub match_pointer: String,
    pub timeout: Duration,
}

/// Something the daemon does beside the held stream every `every`: `connect_check`, `recycle`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EveryConfig {
    /// How often (jittered by ±10%).
    pub every: Duration,
}

/// A fresh connection beside the held stream (see `canary::connect_check`).
pub type ConnectCheckConfig = EveryConfig;

/// Replacing the held stream make-before-break (see `canary::recycle`).
pub type RecycleConfig = EveryConfig;

/// How a reconnected canary asks for what it missed; exactly one way per canary.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResumeConfig {
    /// Sent after a reconnect, with `{{last_seq}}` replaced.
    Send(String),
    /// Reconnect with `?<name>=<last_seq>` added to the URL.
    Query(String),
}

/// One canary: a stream the prober holds and what it expects of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub name: String,
    pub url: TargetUrl,
    pub headers: Vec<(String, Secret)>,
    pub origin: Option<String>,
    pub subprotocols: Vec<String>,
    pub on_open: Vec<String>,
    pub connect_timeout: Duration,
    pub first_payload_within: Duration,
    pub max_message_bytes: usize,
    /// Data messages per second above which the stream ends with `message_flood`.
    pub max_message_rate: Option<u32>,
    pub backoff: Backoff,
    pub tls: TlsConfig,
    pub sequence: Option<SequenceConfig>,
    pub timestamp: Option<TimestampConfig>,
    pub max_silence: Option<Duration>,
    pub heartbeat: Option<HeartbeatConfig>,
    // Boxed: most canaries have neither, and inline they were a third of every canary's config.
    pub head_check: Option<Box<HeadCheckConfig>>,
    pub publish: Option<Box<PublishConfig>>,
    pub resume: Option<ResumeConfig>,
    pub connect_check: Option<ConnectCheckConfig>,
    pub recycle: Option<RecycleConfig>,
}

impl CanaryConfig {
    /// A canary with only a name and URL, everything else from `defaults`.
    pub fn new(name: impl Into<String>, url: TargetUrl, defaults: &Defaults) -> Self {
        Self {
            name: name.into(),
            url,
            headers: defaults.headers.clone(),
            origin: None,
            subprotocols: Vec::new(),
            on_open: Vec::new(),
            connect_timeout: defaults.connect_timeout,
            first_payload_within: defaults.first_payload_timeout,
            max_message_bytes: defaults.max_message_bytes,
            max_message_rate: None,
            backoff: defaults.backoff,
            tls: TlsConfig::default(),
            sequence: None,
            timestamp: None,
            max_silence: None,
            heartbeat: None,
            head_check: None,
            publish: None,
            resume: None,
            connect_check: None,
            recycle: None,
        }
    }
}

impl CanaryConfig {
    /// The config a fresh-connection check connects with: this canary's URL, headers, origin,
    /// subprotocols, TLS, `on_open` and timeouts, without what only a held stream does
    /// (publish, head checks, heartbeats, stall detection, resume, recycling).
    pub fn for_connect_check(&self) -> CanaryConfig {
        let mut c = self.clone();
        c.publish = None;
        c.head_check = None;
        c.heartbeat = None;
        c.max_silence = None;
        c.resume = None;
        c.connect_check = None;
        c.recycle = None;
        c
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";

/// A validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub defaults: Defaults,
    pub canaries: Vec<CanaryConfig>,
}

impl Config {
    pub fn canary(&self, name: &str) -> Option<&CanaryConfig> {
        self.canaries.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::TargetUrl;

    #[test]
    fn a_query_pair_is_added_after_any_already_there() {
        let bare = TargetUrl::parse("ws://h/ws").unwrap();
        let with = bare.with_query_pair("from", "41");
        assert_eq!(with.expose().as_str(), "ws://h/ws?from=41");
        let more = TargetUrl::parse("ws://h/ws?token=t").unwrap();
        let with = more.with_query_pair("from", "41");
        assert_eq!(with.expose().as_str(), "ws://h/ws?token=t&from=41");
    }
}
