//! The prober's configuration: typed, validated up front, with errors that name the file, the
//! key path and what was expected.
//!
//! Unknown keys are errors. Durations read like `500ms`, `5s`, `2m`, `1h`; sizes like `64KiB`,
//! `1MiB` or a plain byte count. `${VAR}` in any string is replaced by the environment variable
//! (`$$` is a literal `$`); a missing variable is an error naming the key. Header values and
//! URLs are [`Secret`]s / [`TargetUrl`]s, which never print their credentials.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod yaml;

use yaml::Node;

/// Errors from loading a config file. Each names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML at {error}")]
    Syntax {
        file: PathBuf,
        error: yaml::SyntaxError,
    },
    #[error("{file}: {key}: expected {expected}, found {found}")]
    Invalid {
        file: PathBuf,
        key: String,
        expected: String,
        found: String,
    },
    #[error("{file}: {key}: unknown key; expected one of: {allowed}")]
    UnknownKey {
        file: PathBuf,
        key: String,
        allowed: String,
    },
    #[error("{file}: {key}: missing; expected {expected}")]
    Missing {
        file: PathBuf,
        key: String,
        expected: String,
    },
    #[error("{file}: {key}: environment variable {var} is not set")]
    MissingEnv {
        file: PathBuf,
        key: String,
        var: String,
    },
}

/// A string that must not reach logs, metrics, the status page or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct ResumeConfig {
    /// Sent after a reconnect, with `{{last_seq}}` replaced by the last sequence received.
    pub send: String,
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
}

impl CanaryConfig {
    /// A canary with only a name and URL, everything else from `defaults`.
    pub fn new(name: impl Into<String>, url: TargetUrl, defaults: &Defaults) -> Self {
        Self {
            name: name.into(),
            url,
            headers: Vec::new(),
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
        }
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
    /// Reads and validates `path`, substituting `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, &|var| std::env::var(var).ok())
    }

    /// Validates `text` as if read from `file`; `env` resolves `${VAR}`.
    pub fn parse(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let root = yaml::parse(text).map_err(|error| ConfigError::Syntax {
            file: file.to_path_buf(),
            error,
        })?;
        let cx = Cx { file, env };
        cx.config(&root)
    }

    pub fn canary(&self, name: &str) -> Option<&CanaryConfig> {
        self.canaries.iter().find(|c| c.name == name)
    }

    /// The resolved configuration as YAML, with secrets shown as `***`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let d = &self.defaults;
        out.push_str(&format!("listen: {}\n", self.listen));
        out.push_str("defaults:\n");
        out.push_str(&format!(
            "  connect_timeout: {}\n",
            fmt_duration(d.connect_timeout)
        ));
        out.push_str(&format!(
            "  first_payload_timeout: {}\n",
            fmt_duration(d.first_payload_timeout)
        ));
        out.push_str(&format!("  max_message_bytes: {}\n", d.max_message_bytes));
        out.push_str(&format!("  backoff: {}\n", fmt_backoff(&d.backoff)));
        out.push_str("canaries:\n");
        for c in &self.canaries {
            render_canary(&mut out, c);
        }
        out
    }
}

fn fmt_backoff(b: &Backoff) -> String {
    format!(
        "{{ initial: {}, max: {} }}",
        fmt_duration(b.initial),
        fmt_duration(b.max)
    )
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn render_canary(out: &mut String, c: &CanaryConfig) {
    let start = out.len();
    let mut line = |s: String| {
        out.push_str("    ");
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("name: {}", quote(&c.name)));
    line(format!("url: {}", quote(&c.url.redacted())));
    if !c.headers.is_empty() {
        let h: Vec<String> = c
            .headers
            .iter()
            .map(|(k, v)| format!("{}: {}", quote(k), quote(&v.to_string())))
            .collect();
        line(format!("headers: {{ {} }}", h.join(", ")));
    }
    if let Some(o) = &c.origin {
        line(format!("origin: {}", quote(o)));
    }
    if !c.subprotocols.is_empty() {
        let s: Vec<String> = c.subprotocols.iter().map(|s| quote(s)).collect();
        line(format!("subprotocols: [{}]", s.join(", ")));
    }
    if !c.on_open.is_empty() {
        let s: Vec<String> = c.on_open.iter().map(|s| quote(s)).collect();
        line(format!("on_open: [{}]", s.join(", ")));
    }
    line(format!(
        "connect_timeout: {}",
        fmt_duration(c.connect_timeout)
    ));
    line(format!(
        "first_payload_within: {}",
        fmt_duration(c.first_payload_within)
    ));
    line(format!("max_message_bytes: {}", c.max_message_bytes));
    if let Some(r) = c.max_message_rate {
        line(format!("max_message_rate: {r}"));
    }
    line(format!("backoff: {}", fmt_backoff(&c.backoff)));
    if c.tls != TlsConfig::default() {
        let ca = c
            .tls
            .ca_file
            .as_ref()
            .map_or("null".to_string(), |p| quote(&p.display().to_string()));
        line(format!(
            "tls: {{ ca_file: {ca}, insecure_skip_verify: {} }}",
            c.tls.insecure_skip_verify
        ));
    }
    if let Some(s) = &c.sequence {
        line(format!(
            "sequence: {{ pointer: {}, reorder_window: {} }}",
            quote(&s.pointer),
            s.reorder_window
        ));
    }
    if let Some(t) = &c.timestamp {
        line(format!(
            "timestamp: {{ pointer: {}, unit: {} }}",
            quote(&t.pointer),
            t.unit.as_str()
        ));
    }
    if let Some(m) = c.max_silence {
        line(format!("max_silence: {}", fmt_duration(m)));
    }
    if let Some(h) = &c.heartbeat {
        line(format!(
            "heartbeat: {{ every: {}, timeout: {} }}",
            fmt_duration(h.every),
            fmt_duration(h.timeout)
        ));
    }
    if let Some(h) = &c.head_check {
        let reply = h.reply.as_ref().map_or(String::new(), |r| {
            format!(
                ", match: {{ pointer: {}, equals: {} }}",
                quote(&r.pointer),
                quote(&r.equals)
            )
        });
        let max_lag = h
            .max_lag
            .map_or(String::new(), |l| format!(", max_lag: {l}"));
        line(format!(
            "head_check: {{ send: {}, pointer: {}{reply}, every: {}, timeout: {}{max_lag} }}",
            quote(&h.send),
            quote(&h.pointer),
            fmt_duration(h.every),
            fmt_duration(h.timeout)
        ));
    }
    if let Some(p) = &c.publish {
        line("publish:".to_string());
        match &p.via {
            PublishVia::Http(h) => {
                let headers: Vec<String> = h
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{}: {}", quote(k), quote(&v.to_string())))
                    .collect();
                line(format!(
                    "  http: {{ url: {}, method: {}, body: {}, headers: {{ {} }} }}",
                    quote(&h.url.redacted()),
                    h.method,
                    quote(&h.body),
                    headers.join(", ")
                ));
            }
            PublishVia::WebSocket(w) => line(format!(
                "  ws: {{ url: {}, send: {} }}",
                quote(&w.url.redacted()),
                quote(&w.send)
            )),
        }
        line(format!("  every: {}", fmt_duration(p.every)));
        line(format!("  match: {}", quote(&p.match_pointer)));
        line(format!("  timeout: {}", fmt_duration(p.timeout)));
    }
    if let Some(r) = &c.resume {
        line(format!("resume: {{ send: {} }}", quote(&r.send)));
    }
    // The first line carries the list marker.
    out.replace_range(start..start + 4, "  - ");
}

/// Formats a duration in the config's own notation.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}us", d.as_micros());
    }
    if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses `1MiB`, `64KiB`, `1GiB`, `1MB`, `512B` or a plain byte count.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    usize::try_from(value.checked_mul(mult)?).ok()
}

const DURATION: &str = "a duration like 500ms, 5s or 2m";
const POINTER: &str = "a JSON pointer like /seq";

struct Cx<'a> {
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// A mapping whose keys were checked against the allowed set.
struct Fields<'n> {
    entries: &'n [(String, Node)],
    path: String,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<(&'n Node, String)> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| (v, join(&self.path, key)))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a value looked like, for errors; strings are shown as written, before substitution.
fn found(node: &Node) -> String {
    match node {
        Node::String(s) => quote(s),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        Node::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

impl<'a> Cx<'a> {
    fn invalid(&self, key: &str, expected: impl Into<String>, node: &Node) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.into(),
            found: found(node),
        }
    }

    fn missing(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
        }
    }

    fn fields<'n>(
        &self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Result<Fields<'n>, ConfigError> {
        let Node::Map(entries) = node else {
            return Err(self.invalid(
                if path.is_empty() { "(top level)" } else { path },
                "a mapping",
                node,
            ));
        };
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if !allowed.contains(&k.as_str()) {
                return Err(ConfigError::UnknownKey {
                    file: self.file.to_path_buf(),
                    key: join(path, k),
                    allowed: allowed.join(", "),
                });
            }
            seen.insert(k.as_str());
        }
        Ok(Fields {
            entries,
            path: path.to_string(),
        })
    }

    fn substitute(&self, raw: &str, key: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let end = tail.find('}').ok_or_else(|| ConfigError::Invalid {
                    file: self.file.to_path_buf(),
                    key: key.to_string(),
                    expected: "${VAR} with a closing brace".into(),
                    found: quote(raw),
                })?;
                let var = &tail[..end];
                let value = (self.env)(var).ok_or_else(|| ConfigError::MissingEnv {
                    file: self.file.to_path_buf(),
                    key: key.to_string(),
                    var: var.to_string(),
                })?;
                out.push_str(&value);
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn string(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        match node {
            Node::String(s) => self.substitute(s, key),
            _ => Err(self.invalid(key, "a string", node)),
        }
    }

    fn opt<T>(
        &self,
        f: &Fields<'_>,
        key: &str,
        read: impl FnOnce(&Node, &str) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        match f.get(key) {
            None | Some((Node::Null, _)) => Ok(None),
            Some((node, path)) => read(node, &path).map(Some),
        }
    }

    fn req<T>(
        &self,
        f: &Fields<'_>,
        key: &str,
        expected: &str,
        read: impl FnOnce(&Node, &str) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match f.get(key) {
            None | Some((Node::Null, _)) => Err(self.missing(&join(&f.path, key), expected)),
            Some((node, path)) => read(node, &path),
        }
    }

    fn duration(&self, node: &Node, key: &str) -> Result<Duration, ConfigError> {
        let Node::String(_) = node else {
            return Err(self.invalid(key, DURATION, node));
        };
        let s = self.string(node, key)?;
        match parse_duration(&s) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid(key, DURATION, node)),
        }
    }

    fn size(&self, node: &Node, key: &str) -> Result<usize, ConfigError> {
        const SIZE: &str = "a size like 64KiB or 1MiB";
        let parsed = match node {
            Node::Int(i) if *i > 0 => usize::try_from(*i).ok(),
            Node::String(_) => parse_size(&self.string(node, key)?),
            _ => None,
        };
        match parsed {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.invalid(key, SIZE, node)),
        }
    }

    fn uint(&self, node: &Node, key: &str) -> Result<u64, ConfigError> {
        match node {
            Node::Int(i) if *i >= 0 => Ok(*i as u64),
            _ => Err(self.invalid(key, "a non-negative integer", node)),
        }
    }

    fn boolean(&self, node: &Node, key: &str) -> Result<bool, ConfigError> {
        match node {
            Node::Bool(b) => Ok(*b),
            _ => Err(self.invalid(key, "true or false", node)),
        }
    }

    /// A string that must contain `placeholder`, such as `{{nonce}}`.
    fn template(&self, node: &Node, key: &str, placeholder: &str) -> Result<String, ConfigError> {
        let s = self.string(node, key)?;
        if s.contains(placeholder) {
            Ok(s)
        } else {
            Err(self.invalid(key, format!("a template containing {placeholder}"), node))
        }
    }

    fn pointer(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        let s = self.string(node, key)?;
        if s.starts_with('/') {
            Ok(s)
        } else {
            Err(self.invalid(key, POINTER, node))
        }
    }

    fn strings(&self, node: &Node, key: &str) -> Result<Vec<String>, ConfigError> {
        match node {
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.string(n, &format!("{key}[{i}]")))
                .collect(),
            _ => Err(self.invalid(key, "a list of strings", node)),
        }
    }

    fn headers(&self, node: &Node, key: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
        let Node::Map(entries) = node else {
            return Err(self.invalid(key, "a mapping of header names to values", node));
        };
        entries
            .iter()
            .map(|(name, value)| {
                let path = join(key, name);
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ConfigError::Invalid {
                        file: self.file.to_path_buf(),
                        key: path,
                        expected: "a valid HTTP header name".into(),
                        found: quote(name),
                    });
                }
                let Node::String(_) = value else {
                    // The value may be a secret: say only what kind of thing it was.
                    return Err(ConfigError::Invalid {
                        file: self.file.to_path_buf(),
                        key: path,
                        expected: "a string".into(),
                        found: value.kind().into(),
                    });
                };
                let resolved = self.string(value, &path)?;
                if http::HeaderValue::from_str(&resolved).is_err() {
                    return Err(ConfigError::Invalid {
                        file: self.file.to_path_buf(),
                        key: path,
                        expected: "a valid HTTP header value (visible ASCII)".into(),
                        found: "a value with control characters".into(),
                    });
                }
                Ok((name.clone(), Secret::new(resolved)))
            })
            .collect()
    }

    fn url(&self, node: &Node, key: &str, schemes: &[&str]) -> Result<TargetUrl, ConfigError> {
        let expected = format!("a {} URL", schemes.join(":// or ") + "://");
        let s = self.string(node, key)?;
        match TargetUrl::parse(&s) {
            Ok(u) if schemes.contains(&u.scheme()) && u.expose().host_str().is_some() => Ok(u),
            // The URL may hold credentials: show the file's text, not the substituted value.
            _ => Err(self.invalid(key, expected, node)),
        }
    }

    fn backoff(&self, node: &Node, key: &str, base: Backoff) -> Result<Backoff, ConfigError> {
        let f = self.fields(node, key, &["initial", "max"])?;
        let initial = self
            .opt(&f, "initial", |n, k| self.duration(n, k))?
            .unwrap_or(base.initial);
        let max = self
            .opt(&f, "max", |n, k| self.duration(n, k))?
            .unwrap_or(base.max);
        if max < initial {
            let (n, k) = f.get("max").or(f.get("initial")).expect("one was set");
            return Err(self.invalid(
                &k,
                format!("backoff.max >= backoff.initial ({})", fmt_duration(initial)),
                n,
            ));
        }
        Ok(Backoff { initial, max })
    }

    fn config(&self, root: &Node) -> Result<Config, ConfigError> {
        let f = self.fields(root, "", &["listen", "defaults", "canaries"])?;
        let listen = self
            .opt(&f, "listen", |n, k| {
                self.string(n, k)?
                    .parse::<SocketAddr>()
                    .map_err(|_| self.invalid(k, "an address like 127.0.0.1:9477", n))
            })?
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let defaults = self
            .opt(&f, "defaults", |n, k| self.defaults(n, k))?
            .unwrap_or_default();
        let canaries = self.req(&f, "canaries", "a list of canaries", |n, k| {
            let Node::Seq(items) = n else {
                return Err(self.invalid(k, "a list of canaries", n));
            };
            if items.is_empty() {
                return Err(self.invalid(k, "at least one canary", n));
            }
            let mut names = HashSet::new();
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("{k}[{i}]");
                let c = self.canary(item, &path, &defaults)?;
                if !names.insert(c.name.clone()) {
                    let (n, k) = self.fields(item, &path, CANARY_KEYS)?.get("name").unwrap();
                    return Err(self.invalid(&k, "a name not used by another canary", n));
                }
                out.push(c);
            }
            Ok(out)
        })?;
        Ok(Config {
            listen,
            defaults,
            canaries,
        })
    }

    fn defaults(&self, node: &Node, key: &str) -> Result<Defaults, ConfigError> {
        let base = Defaults::default();
        let f = self.fields(
            node,
            key,
            &[
                "connect_timeout",
                "first_payload_timeout",
                "max_message_bytes",
                "backoff",
            ],
        )?;
        Ok(Defaults {
            connect_timeout: self
                .opt(&f, "connect_timeout", |n, k| self.duration(n, k))?
                .unwrap_or(base.connect_timeout),
            first_payload_timeout: self
                .opt(&f, "first_payload_timeout", |n, k| self.duration(n, k))?
                .unwrap_or(base.first_payload_timeout),
            max_message_bytes: self
                .opt(&f, "max_message_bytes", |n, k| self.size(n, k))?
                .unwrap_or(base.max_message_bytes),
            backoff: self
                .opt(&f, "backoff", |n, k| self.backoff(n, k, base.backoff))?
                .unwrap_or(base.backoff),
        })
    }

    fn canary(&self, node: &Node, path: &str, d: &Defaults) -> Result<CanaryConfig, ConfigError> {
        let f = self.fields(node, path, CANARY_KEYS)?;
        let name = self.req(&f, "name", "a canary name", |n, k| {
            let s = self.string(n, k)?;
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if ok {
                Ok(s)
            } else {
                Err(self.invalid(k, "1-64 characters of [A-Za-z0-9_.-]", n))
            }
        })?;
        let url = self.req(&f, "url", "a ws:// or wss:// URL", |n, k| {
            self.url(n, k, &["ws", "wss"])
        })?;
        let mut c = CanaryConfig::new(name, url, d);
        c.headers = self
            .opt(&f, "headers", |n, k| self.headers(n, k))?
            .unwrap_or_default();
        c.origin = self.opt(&f, "origin", |n, k| self.string(n, k))?;
        c.subprotocols = self
            .opt(&f, "subprotocols", |n, k| self.strings(n, k))?
            .unwrap_or_default();
        c.on_open = self
            .opt(&f, "on_open", |n, k| self.strings(n, k))?
            .unwrap_or_default();
        if let Some(v) = self.opt(&f, "connect_timeout", |n, k| self.duration(n, k))? {
            c.connect_timeout = v;
        }
        if let Some(v) = self.opt(&f, "first_payload_within", |n, k| self.duration(n, k))? {
            c.first_payload_within = v;
        }
        if let Some(v) = self.opt(&f, "max_message_bytes", |n, k| self.size(n, k))? {
            c.max_message_bytes = v;
        }
        c.max_message_rate = self.opt(&f, "max_message_rate", |n, k| {
            u32::try_from(self.uint(n, k)?)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| self.invalid(k, "messages per second, from 1 to 4294967295", n))
        })?;
        if let Some(v) = self.opt(&f, "backoff", |n, k| self.backoff(n, k, d.backoff))? {
            c.backoff = v;
        }
        c.tls = self
            .opt(&f, "tls", |n, k| self.tls(n, k))?
            .unwrap_or_default();
        c.sequence = self.opt(&f, "sequence", |n, k| {
            let f = self.fields(n, k, &["pointer", "reorder_window"])?;
            Ok(SequenceConfig {
                pointer: self.req(&f, "pointer", POINTER, |n, k| self.pointer(n, k))?,
                reorder_window: self
                    .opt(&f, "reorder_window", |n, k| {
                        let v = self.uint(n, k)?;
                        u32::try_from(v)
                            .ok()
                            .filter(|v| *v <= 10_000)
                            .ok_or_else(|| self.invalid(k, "an integer from 0 to 10000", n))
                    })?
                    .unwrap_or(4),
            })
        })?;
        c.timestamp = self.opt(&f, "timestamp", |n, k| {
            let f = self.fields(n, k, &["pointer", "unit"])?;
            Ok(TimestampConfig {
                pointer: self.req(&f, "pointer", POINTER, |n, k| self.pointer(n, k))?,
                unit: self
                    .opt(&f, "unit", |n, k| match self.string(n, k)?.as_str() {
                        "s" => Ok(TimeUnit::Seconds),
                        "ms" => Ok(TimeUnit::Millis),
                        "us" => Ok(TimeUnit::Micros),
                        "ns" => Ok(TimeUnit::Nanos),
                        _ => Err(self.invalid(k, "one of s, ms, us, ns", n)),
                    })?
                    .unwrap_or(TimeUnit::Millis),
            })
        })?;
        c.max_silence = self.opt(&f, "max_silence", |n, k| self.duration(n, k))?;
        c.heartbeat = self.opt(&f, "heartbeat", |n, k| {
            let f = self.fields(n, k, &["every", "timeout"])?;
            let every = self.req(&f, "every", DURATION, |n, k| self.duration(n, k))?;
            Ok(HeartbeatConfig {
                every,
                timeout: self
                    .opt(&f, "timeout", |n, k| self.duration(n, k))?
                    .unwrap_or(every),
            })
        })?;
        c.head_check = self
            .opt(&f, "head_check", |n, k| self.head_check(n, k))?
            .map(Box::new);
        c.publish = self
            .opt(&f, "publish", |n, k| self.publish(n, k))?
            .map(Box::new);
        c.resume = self.opt(&f, "resume", |n, k| {
            let f = self.fields(n, k, &["send"])?;
            let send = self.req(&f, "send", "a message template", |n, k| {
                self.template(n, k, "{{last_seq}}")
            })?;
            Ok(ResumeConfig { send })
        })?;
        for (key, needs_sequence) in [
            ("resume", c.resume.is_some()),
            ("head_check", c.head_check.is_some()),
        ] {
            if needs_sequence && c.sequence.is_none() {
                return Err(self.missing(
                    &join(path, "sequence"),
                    &format!("a sequence pointer, which {key} needs"),
                ));
            }
        }
        Ok(c)
    }

    fn tls(&self, node: &Node, key: &str) -> Result<TlsConfig, ConfigError> {
        let f = self.fields(node, key, &["ca_file", "insecure_skip_verify"])?;
        let ca_file = self.opt(&f, "ca_file", |n, k| {
            let p = PathBuf::from(self.string(n, k)?);
            // Relative paths are relative to the config file, as a reader of the file expects.
            let p = if p.is_relative() {
                self.file.parent().unwrap_or(Path::new(".")).join(p)
            } else {
                p
            };
            if p.is_file() {
                Ok(p)
            } else {
                Err(self.invalid(k, "a readable PEM file", n))
            }
        })?;
        Ok(TlsConfig {
            ca_file,
            insecure_skip_verify: self
                .opt(&f, "insecure_skip_verify", |n, k| self.boolean(n, k))?
                .unwrap_or(false),
        })
    }

    fn head_check(&self, node: &Node, key: &str) -> Result<HeadCheckConfig, ConfigError> {
        let f = self.fields(
            node,
            key,
            &["send", "pointer", "match", "every", "timeout", "max_lag"],
        )?;
        let every = self.req(&f, "every", DURATION, |n, k| self.duration(n, k))?;
        Ok(HeadCheckConfig {
            send: self.req(&f, "send", "the request message", |n, k| self.string(n, k))?,
            pointer: self.req(&f, "pointer", POINTER, |n, k| self.pointer(n, k))?,
            reply: self.opt(&f, "match", |n, k| {
                let f = self.fields(n, k, &["pointer", "equals"])?;
                Ok(MatchRule {
                    pointer: self.req(&f, "pointer", POINTER, |n, k| self.pointer(n, k))?,
                    equals: self.req(&f, "equals", "a string or number", |n, k| match n {
                        Node::Int(i) => Ok(i.to_string()),
                        Node::Bool(b) => Ok(b.to_string()),
                        _ => self.string(n, k),
                    })?,
                })
            })?,
            every,
            timeout: self
                .opt(&f, "timeout", |n, k| self.duration(n, k))?
                .unwrap_or(every),
            max_lag: self.opt(&f, "max_lag", |n, k| self.uint(n, k))?,
        })
    }

    fn publish(&self, node: &Node, key: &str) -> Result<PublishConfig, ConfigError> {
        let f = self.fields(node, key, &["http", "ws", "every", "match", "timeout"])?;
        const VIA: &str = "one of http or ws";
        let http = self.opt(&f, "http", |n, k| {
            let f = self.fields(n, k, &["url", "method", "body", "headers"])?;
            let url = self.req(&f, "url", "an http:// or https:// URL", |n, k| {
                self.url(n, k, &["http", "https"])
            })?;
            let method = self
                .opt(&f, "method", |n, k| {
                    let m = self.string(n, k)?.to_ascii_uppercase();
                    if ["GET", "POST", "PUT", "PATCH"].contains(&m.as_str()) {
                        Ok(m)
                    } else {
                        Err(self.invalid(k, "one of GET, POST, PUT, PATCH", n))
                    }
                })?
                .unwrap_or_else(|| "POST".into());
            let body = self
                .opt(&f, "body", |n, k| self.string(n, k))?
                .unwrap_or_default();
            if !body.contains("{{nonce}}") && !url.expose().as_str().contains("%7B%7Bnonce%7D%7D") {
                let (n, k) = f.get("body").unwrap_or((n, k.to_string()));
                return Err(self.invalid(&k, "a template containing {{nonce}}", n));
            }
            Ok(HttpPublishConfig {
                url,
                method,
                body,
                headers: self
                    .opt(&f, "headers", |n, k| self.headers(n, k))?
                    .unwrap_or_default(),
            })
        })?;
        let ws = self.opt(&f, "ws", |n, k| {
            let f = self.fields(n, k, &["url", "send"])?;
            let url = self.req(&f, "url", "a ws:// or wss:// URL", |n, k| {
                self.url(n, k, &["ws", "wss"])
            })?;
            let send = self.req(&f, "send", "a message template", |n, k| {
                self.template(n, k, "{{nonce}}")
            })?;
            Ok(WsPublishConfig { url, send })
        })?;
        let via = match (http, ws) {
            (Some(h), None) => PublishVia::Http(h),
            (None, Some(w)) => PublishVia::WebSocket(w),
            (None, None) => return Err(self.missing(&join(key, "http"), VIA)),
            (Some(_), Some(_)) => {
                let (n, k) = f.get("ws").expect("present");
                return Err(self.invalid(&k, format!("{VIA}, not both"), n));
            }
        };
        let every = self.req(&f, "every", DURATION, |n, k| self.duration(n, k))?;
        Ok(PublishConfig {
            via,
            every,
            match_pointer: self.req(&f, "match", POINTER, |n, k| self.pointer(n, k))?,
            timeout: self
                .opt(&f, "timeout", |n, k| self.duration(n, k))?
                .unwrap_or(every),
        })
    }
}

/// Every key a canary accepts, in documentation order.
pub const CANARY_KEYS: &[&str] = &[
    "name",
    "url",
    "headers",
    "origin",
    "subprotocols",
    "on_open",
    "connect_timeout",
    "first_payload_within",
    "max_message_bytes",
    "max_message_rate",
    "backoff",
    "tls",
    "sequence",
    "timestamp",
    "max_silence",
    "heartbeat",
    "head_check",
    "publish",
    "resume",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("t.yaml"), &|v| {
            (v == "TOKEN").then(|| "s3cret".to_string())
        })
    }

    #[test]
    fn durations_and_sizes_read_like_the_docs() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1XB"), None);
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn env_substitution_fills_secrets_and_redacts_them() {
        let c = parse(
            "canaries:\n  - name: a\n    url: ws://u:${TOKEN}@h/ws?key=${TOKEN}\n    headers: { Authorization: \"Bearer ${TOKEN}\" }\n",
        )
        .unwrap();
        let a = &c.canaries[0];
        assert_eq!(a.headers[0].1.expose(), "Bearer s3cret");
        assert_eq!(a.url.expose().password(), Some("s3cret"));
        let shown = format!("{:?} {} {}", a, a.url, c.render());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ws://***@h/ws?key=***"), "{shown}");
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        let c = parse("canaries:\n  - name: a\n    url: ws://h/\n    on_open: ['$${TOKEN}']\n")
            .unwrap();
        assert_eq!(c.canaries[0].on_open[0], "${TOKEN}");
    }

    #[test]
    fn missing_env_names_the_key_and_variable() {
        let err =
            parse("canaries:\n  - name: a\n    url: ws://h/\n    headers: { X: \"${NOPE}\" }\n")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.yaml: canaries[0].headers.X: environment variable NOPE is not set"
        );
    }

    #[test]
    fn render_round_trips_through_the_parser() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/good.yaml"),
        )
        .unwrap();
        let env = |_: &str| Some("x".to_string());
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/good.yaml");
        let c = Config::parse(&text, &file, &env).unwrap();
        let again = Config::parse(&c.render(), &file, &env).unwrap();
        // Secrets render as ***, so compare everything else.
        assert_eq!(c.canaries.len(), again.canaries.len());
        for (a, b) in c.canaries.iter().zip(&again.canaries) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.sequence, b.sequence);
            assert_eq!(a.heartbeat, b.heartbeat);
            assert_eq!(a.head_check, b.head_check);
            assert_eq!(a.backoff, b.backoff);
            assert_eq!(a.first_payload_within, b.first_payload_within);
        }
    }
}
