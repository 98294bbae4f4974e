//! Pieces of the live scenarios: a real Prometheus, the prober daemon, the example feed and
//! Redis as processes, and WebSocket clients that misbehave on purpose.

#![allow(dead_code)]

pub mod alerts;
pub mod binaries;
pub mod clients;
pub mod feed_process;
pub mod prober;
pub mod prometheus;

#[allow(unused_imports)] // each scenario uses some of them
pub use wsmon_testkit::{eventually, exposition, free_local_addr};
