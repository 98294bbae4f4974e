//! Test support shared by wsmon's crates.

pub mod otlp_receiver;
pub mod promtool;
