//! [`Secret`]: redaction at the type level, so no code path can print a token.
//!
//! ```
//! use wsmon::Secret;
//!
//! let token = Secret::new("Bearer abc");
//! assert_eq!(format!("{token:?} {token}"), "*** ***");
//! assert_eq!(token.expose(), "Bearer abc");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// A string that prints as `***` (`Debug` and `Display`); [`Secret::expose`] is the one way
/// to read it, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads the secret from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        match std::env::var(var) {
            Ok(value) => Ok(Self(value)),
            Err(std::env::VarError::NotPresent) => Err(SecretError::EnvUnset { var: var.into() }),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(SecretError::EnvNotUnicode { var: var.into() })
            }
        }
    }

    /// Reads the secret from a file (a mounted Kubernetes secret, say), without its trailing
    /// newline.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self(text.trim_end_matches(['\r', '\n']).to_owned()))
    }

    /// The value itself.
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

/// Why a [`Secret`] could not be read. It names where it looked, never the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {var} is not set")]
    EnvUnset {
        /// The variable's name.
        var: String,
    },
    /// The environment variable is not valid UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable's name.
        var: String,
    },
    /// The file could not be read.
    #[error("reading the secret file {}: {source}", path.display())]
    File {
        /// The file's path.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_read_from_a_file_drops_its_newline_and_never_prints() {
        let path = std::env::temp_dir().join(format!("wsmon-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = Secret::from_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(format!("{secret:?}/{secret}"), "***/***");
        let missing = Secret::from_file(&path).unwrap_err().to_string();
        assert!(missing.contains("wsmon-secret-"), "{missing}");
        let unset = Secret::from_env("WSMON_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            unset.to_string(),
            "environment variable WSMON_SURELY_UNSET_VARIABLE is not set"
        );
    }
}
