//! The YAML config file: the only place YAML is parsed. Every key is optional and overrides
//! the defaults; the command line overrides the file. Unknown keys are errors, and every
//! error names the file, the key path and what was expected.
//!
//! Durations read like `500ms`, `5s`, `2m`; sizes like `64KiB`, `1MiB` or a byte count.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::settings::{Settings, StampPointers, Upstream};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        /// The key path, like `relay.stall_timeout`; `.` for the document itself.
        key: String,
        message: String,
    },
}

/// The file's shape; each field mirrors a [`Settings`] field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, deserialize_with = "address")]
    pub listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "upstream")]
    pub upstream: Option<Upstream>,
    pub routes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "address")]
    pub metrics_listen: Option<SocketAddr>,
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "size")]
    pub max_message_size: Option<usize>,
    pub close_code_allowlist: Option<Vec<CloseCode>>,
    pub stamp_pointers: Option<StampConfig>,
    #[serde(default, deserialize_with = "duration")]
    pub upstream_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "size")]
    pub max_header_size: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub shutdown_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "threads")]
    pub threads: Option<usize>,
    pub queue: Option<QueueFile>,
}

/// `queue`: the per-connection relay buffer toward the client.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    #[serde(default, deserialize_with = "size")]
    pub buffer: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub slow_after: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub stall_timeout: Option<Duration>,
}

/// `stamp_pointers`: RFC 6901 pointers into uncompressed JSON server messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampConfig {
    pub seq: String,
    pub published_ms: Option<String>,
}

/// An application close code (3000–4999).
#[derive(Debug, Clone, Copy)]
pub struct CloseCode(pub u16);

impl<'de> Deserialize<'de> for CloseCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        match n {
            3000..=4999 => Ok(CloseCode(n as u16)),
            _ => Err(de::Error::custom(format!(
                "expected an application close code (3000-4999), found {n}"
            ))),
        }
    }
}

impl FileConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`, naming `file` in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().to_string();
            // serde_yaml prefixes its own (shorter) path; ours is the whole one. Its trailing
            // " at line L column C" stays: it helps find the key.
            let message = match message.split_once(": ") {
                Some((prefix, rest)) if !prefix.contains(' ') && key.starts_with(prefix) => {
                    rest.to_owned()
                }
                _ => message,
            };
            ConfigError::Invalid {
                file: file.to_owned(),
                key,
                message,
            }
        })?;
        if let Some(p) = &config.stamp_pointers {
            for (key, ptr) in [
                ("stamp_pointers.seq", Some(&p.seq)),
                ("stamp_pointers.published_ms", p.published_ms.as_ref()),
            ] {
                if let Some(ptr) = ptr {
                    if !ptr.starts_with('/') {
                        return Err(ConfigError::Invalid {
                            file: file.to_owned(),
                            key: key.to_owned(),
                            message: format!(
                                "expected a JSON pointer starting with '/', found {ptr:?}"
                            ),
                        });
                    }
                }
            }
        }
        Ok(config)
    }

    /// Overrides `settings` with what the file sets.
    pub fn apply(self, settings: &mut Settings) {
        if let Some(v) = self.listen {
            settings.listen = v;
        }
        if let Some(v) = self.upstream {
            settings.upstream = v;
        }
        if let Some(v) = self.routes {
            settings.routes = v;
        }
        if let Some(v) = self.metrics_listen {
            settings.metrics_listen = Some(v);
        }
        if let Some(v) = self.allowed_origins {
            settings.allowed_origins = Some(v);
        }
        if let Some(v) = self.max_message_size {
            settings.relay.max_message_bytes = Some(v as u64);
        }
        if let Some(v) = self.close_code_allowlist {
            settings.close_code_allowlist = v.into_iter().map(|c| c.0).collect();
        }
        if let Some(v) = self.stamp_pointers {
            settings.stamp_pointers = Some(StampPointers {
                seq: v.seq,
                published_ms: v.published_ms,
            });
        }
        if let Some(v) = self.upstream_timeout {
            settings.upstream_timeout = v;
        }
        if let Some(v) = self.header_read_timeout {
            settings.header_read_timeout = v;
        }
        if let Some(v) = self.max_header_size {
            settings.max_header_bytes = v;
        }
        if let Some(v) = self.shutdown_timeout {
            settings.shutdown_timeout = v;
        }
        if let Some(v) = self.threads {
            settings.threads = v;
        }
        if let Some(q) = self.queue {
            if let Some(v) = q.buffer {
                settings.relay.buffer_bytes = v;
            }
            if let Some(v) = q.slow_after {
                settings.relay.slow_after = v;
            }
            if let Some(v) = q.stall_timeout {
                settings.relay.stall_timeout = v;
            }
        }
    }
}

fn upstream<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Upstream>, D::Error> {
    let s = String::deserialize(d)?;
    Upstream::parse(&s)
        .map(Some)
        .map_err(|e| de::Error::custom(format!("expected {e}")))
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(|_| {
        de::Error::custom(format!(
            "expected an address like 0.0.0.0:8080, found {s:?}"
        ))
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map(Some).ok_or_else(|| {
        de::Error::custom(format!(
            "expected a duration like 500ms, 5s or 2m, found {s:?}"
        ))
    })
}

fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = u64::deserialize(d)?;
    match n {
        1..=1024 => Ok(Some(n as usize)),
        _ => Err(de::Error::custom(format!(
            "expected a thread count from 1 to 1024, found {n}"
        ))),
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    let found = match Raw::deserialize(d)? {
        Raw::N(n) => return Ok(Some(n as usize)),
        Raw::S(s) => s,
    };
    parse_size(&found).map(Some).ok_or_else(|| {
        de::Error::custom(format!(
            "expected a size like 65536, 64KiB or 1MiB, found {found:?}"
        ))
    })
}

/// `500ms`, `5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

/// `65536`, `64KiB`, `1MiB`.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().ok()?;
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(scale)
}
