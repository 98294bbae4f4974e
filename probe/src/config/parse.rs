//! Reading one value: `${VAR}` substitution, and each kind of value the file holds, with
//! errors that name the file, the key and what was expected. Which keys exist is declared in
//! `keys.rs`; how a declared key is read lives in `schema.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::types::TargetUrl;
use super::units::{parse_duration, parse_size, quote};
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

pub(super) const DURATION: &str = "a duration like 500ms, 5s or 2m";
pub(super) const POINTER: &str = "a JSON pointer like /seq";

/// What every read needs: the file, for errors and relative paths, and the environment.
pub(super) struct Cx<'a> {
    pub(super) file: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

/// `path.key`, or `key` at the top level.
pub(super) fn join(path: &str, key: &str) -> String {
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

impl Cx<'_> {
    pub(super) fn invalid(
        &self,
        key: &str,
        expected: impl Into<String>,
        node: &Node,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.into(),
            found: found(node),
        }
    }

    pub(super) fn missing(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
        }
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

    pub(super) fn string(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        match node {
            Node::String(s) => self.substitute(s, key),
            _ => Err(self.invalid(key, "a string", node)),
        }
    }

    pub(super) fn duration(&self, node: &Node, key: &str) -> Result<Duration, ConfigError> {
        let Node::String(_) = node else {
            return Err(self.invalid(key, DURATION, node));
        };
        let s = self.string(node, key)?;
        match parse_duration(&s) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid(key, DURATION, node)),
        }
    }

    pub(super) fn size(&self, node: &Node, key: &str) -> Result<usize, ConfigError> {
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

    pub(super) fn uint(&self, node: &Node, key: &str) -> Result<u64, ConfigError> {
        match node {
            Node::Int(i) if *i >= 0 => Ok(*i as u64),
            _ => Err(self.invalid(key, "a non-negative integer", node)),
        }
    }

    pub(super) fn boolean(&self, node: &Node, key: &str) -> Result<bool, ConfigError> {
        match node {
            Node::Bool(b) => Ok(*b),
            _ => Err(self.invalid(key, "true or false", node)),
        }
    }

    /// A string that must contain `placeholder`, such as `{{nonce}}`.
    pub(super) fn template(
        &self,
        node: &Node,
        key: &str,
        placeholder: &str,
    ) -> Result<String, ConfigError> {
        let s = self.string(node, key)?;
        if s.contains(placeholder) {
            Ok(s)
        } else {
            Err(self.invalid(key, format!("a template containing {placeholder}"), node))
        }
    }

    pub(super) fn pointer(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        let s = self.string(node, key)?;
        if s.starts_with('/') {
            Ok(s)
        } else {
            Err(self.invalid(key, POINTER, node))
        }
    }

    pub(super) fn strings(&self, node: &Node, key: &str) -> Result<Vec<String>, ConfigError> {
        match node {
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.string(n, &format!("{key}[{i}]")))
                .collect(),
            _ => Err(self.invalid(key, "a list of strings", node)),
        }
    }

    pub(super) fn headers(
        &self,
        node: &Node,
        key: &str,
    ) -> Result<Vec<(String, Secret)>, ConfigError> {
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

    pub(super) fn url(
        &self,
        node: &Node,
        key: &str,
        schemes: &[&str],
    ) -> Result<TargetUrl, ConfigError> {
        let expected = format!("a {} URL", schemes.join(":// or ") + "://");
        let s = self.string(node, key)?;
        match TargetUrl::parse(&s) {
            Ok(u) if schemes.contains(&u.scheme()) && u.expose().host_str().is_some() => Ok(u),
            // The URL may hold credentials: show the file's text, not the substituted value.
            _ => Err(self.invalid(key, expected, node)),
        }
    }
}

/// A stand-in for values that a required key or a `one_of` always replaces before use.
pub(super) fn unset_url() -> TargetUrl {
    TargetUrl::parse("ws://unset.invalid/").expect("valid URL")
}
