//! The only place YAML is read or written (serde_yaml is frozen upstream; swapping it out
//! should touch this file alone).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize YAML for {path}: {source}")]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Reads `path` into `T`; errors name the file (and serde_yaml's line, column and key).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| YamlError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` to `path` as YAML.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), YamlError> {
    let text = serde_yaml::to_string(value).map_err(|source| YamlError::Serialize {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| YamlError::Write {
        path: path.to_path_buf(),
        source,
    })
}
