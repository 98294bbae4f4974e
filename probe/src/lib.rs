//! # wsmon-probe: canary streams that measure end-to-end freshness
//!
//! The prober answers from outside: is this stream alive, up to date and fast, as a client
//! sees it? Each canary holds one WebSocket and checks a first payload, a sequence that must
//! not skip, a head it can ask for, and nonces it publishes and must see arrive.
//!
//! The binary (`wsmon-probe once|daemon|check|demo`) is the main interface; this library
//! exposes the same pieces for tests and embedding. See `docs/probe.md`.

pub mod backoff;
pub mod canary;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod failure;
pub mod http;
pub mod measure;
pub mod metrics;
pub mod once;
pub mod probe_endpoint;
pub mod publish;
pub mod recorder;
pub mod report;
pub mod status_page;
pub mod yaml;
