//! Every key of the file, declared once: its name, what its absence means, how it is read and
//! how `check` shows it. A table's order is the documentation order (see `schema.rs`).
//!
//! The tables, top down: this file (the top level and `defaults`), `canary.rs` (a canary and
//! its connection), `stream.rs` (what is checked on the stream), `publish.rs`, `backoff.rs`.
//! To add a canary key: add its field to [`CanaryConfig`] (and [`CanaryConfig::new`]), one
//! `Key` to the `CANARY` table, and its row to docs/probe.md.

mod backoff;
mod canary;
mod publish;
mod stream;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;

use super::parse::{ConfigError, Cx};
use super::schema::{block, field, flow, names, Absent, Key, Section};
use super::types::*;
use super::units::{show_duration, show_plain};
use super::yaml;
use backoff::BACKOFF;
use canary::{canaries, CANARY};

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
        let start = Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            defaults: Defaults::default(),
            canaries: Vec::new(),
        };
        Cx { file, env }.section(&root, "", &CONFIG, start)
    }

    /// The resolved configuration as YAML, with secrets shown as `***`.
    pub fn render(&self) -> String {
        block(&CONFIG, self, 0) + "\n"
    }
}

/// Every key a canary accepts, in documentation order.
pub const CANARY_KEYS: &[&str] = &names::<CanaryConfig, { CANARY.keys.len() }>(CANARY.keys);

const CONFIG: Section<Config> = Section {
    keys: &[
        Key {
            name: "listen",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.listen = cx
                    .string(n, k)?
                    .parse::<SocketAddr>()
                    .map_err(|_| cx.invalid(k, "an address like 127.0.0.1:9477", n))?;
                Ok(())
            },
            show: |c| Some(c.listen.to_string()),
        },
        Key {
            name: "defaults",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.defaults = cx.section(n, k, &DEFAULTS, Defaults::default())?;
                Ok(())
            },
            show: |c| Some(format!("\n{}", block(&DEFAULTS, &c.defaults, 2))),
        },
        Key {
            name: "canaries",
            absent: Absent::Required("a list of canaries"),
            read: |cx, n, k, c| {
                c.canaries = canaries(cx, n, k, &c.defaults)?;
                Ok(())
            },
            show: |c| {
                let items: Vec<String> = c
                    .canaries
                    .iter()
                    // The first line carries the list marker.
                    .map(|c| format!("  - {}", &block(&CANARY, c, 4)[4..]))
                    .collect();
                Some(format!("\n{}", items.join("\n")))
            },
        },
    ],
    one_of: &[],
    check: None,
};

const DEFAULTS: Section<Defaults> = Section {
    keys: &[
        field!(
            "connect_timeout",
            Absent::Keep,
            connect_timeout,
            duration(),
            show_duration
        ),
        field!(
            "first_payload_timeout",
            Absent::Keep,
            first_payload_timeout,
            duration(),
            show_duration
        ),
        field!(
            "max_message_bytes",
            Absent::Keep,
            max_message_bytes,
            size(),
            show_plain
        ),
        Key {
            name: "backoff",
            absent: Absent::Keep,
            read: |cx, n, k, d| {
                d.backoff = cx.section(n, k, &BACKOFF, d.backoff)?;
                Ok(())
            },
            show: |d| Some(flow(&BACKOFF, &d.backoff)),
        },
    ],
    one_of: &[],
    check: None,
};
