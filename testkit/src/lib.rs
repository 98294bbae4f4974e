//! Test support shared by wsmon's test trees, each piece once: the exposition parser, the
//! feed, prober daemon and Redis harnesses, the fully equipped canary, free ports,
//! `eventually`, raw frames, promtool and an in-process OTLP receiver.

pub mod canary;
pub mod daemon;
pub mod eventually;
pub mod exposition;
pub mod feed;
pub mod frame;
pub mod otlp_receiver;
pub mod ports;
pub mod promtool;
pub mod redis;

pub use eventually::eventually;
pub use ports::{free_local_addr, free_port};
