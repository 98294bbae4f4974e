//! # wsmon-probe: canary streams that measure end-to-end freshness
//!
//! The prober answers from outside: is this stream alive, up to date and fast, as a client
//! sees it? Each canary holds one WebSocket and checks a first payload, a sequence that must
//! not skip, a head it can ask for, and nonces it publishes and must see arrive.
//!
//! The binary (`wsmon-probe once|daemon|check|demo`) is the main interface; this library
//! exposes the same pieces for tests and embedding. See `docs/probe.md`.
//!
//! Running every canary of a config once, as `wsmon-probe once` does:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use wsmon_probe::config::Config;
//! use wsmon_probe::run::{once, report};
//!
//! let config = Config::load("probe.yaml".as_ref())?;
//! let registry = prometheus::Registry::new();
//! let runs = once::run(&config.canaries, Duration::from_secs(10), &registry).await?;
//! print!("{}", report::json_lines(&runs));
//! # Ok(()) }
//! ```
//!
//! Holding them, as `wsmon-probe daemon` does:
//!
//! ```no_run
//! # async fn run(config: wsmon_probe::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let daemon = wsmon_probe::run::daemon::Daemon::start(config)?;
//! axum::serve(listener, wsmon_probe::serve::router(daemon)).await?;
//! # Ok(()) }
//! ```
//!
//! The modules are layers, each using only those below it: the commands (`main.rs`), what the
//! daemon serves ([`serve`]), the run modes ([`run`]), one canary's life ([`canary`]),
//! recording and rendering ([`record`]), the I/O-free measurement core ([`measure`], and the
//! [`resume`] rules) with its [`failure`] reasons, and the [`config`].

pub mod canary;
pub mod config;
pub mod failure;
pub mod measure;
pub mod record;
pub mod resume;
pub mod run;
pub mod serve;
