//! Reading a config file: YAML through [`super::yaml`], `${VAR}` substitution, and validation
//! of every key, with errors that name the file, the key and what was expected.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::render::quote;
use super::types::*;
use super::units::{fmt_duration, parse_duration, parse_size};
use super::yaml::{self, Node};
use wsmon::Secret;

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
            let f = self.fields(n, k, &["send", "query"])?;
            let send = self.opt(&f, "send", |n, k| self.template(n, k, "{{last_seq}}"))?;
            let query = self.opt(&f, "query", |n, k| {
                let name = self.string(n, k)?;
                // Unreserved characters only: the name goes into the URL as it is.
                let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
                if name.is_empty() || !name.chars().all(unreserved) {
                    return Err(self.invalid(k, "a query parameter name of [A-Za-z0-9-._~]", n));
                }
                Ok(name)
            })?;
            match (send, query) {
                (Some(send), None) => Ok(ResumeConfig::Send(send)),
                (None, Some(query)) => Ok(ResumeConfig::Query(query)),
                _ => Err(self.invalid(k, "exactly one of send or query", n)),
            }
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
