//! Test support shared by wsmon's crates.

pub mod otlp_receiver;
