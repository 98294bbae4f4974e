//! Test support shared by wsmon's test trees, each piece once: the exposition parser, the
//! feed, prober daemon and Redis harnesses, the fully equipped canary, free ports,
//! `eventually`, raw frames, promtool, headless Chromium, an in-process OTLP receiver, a relay
//! that kills connections mid-stream; real nginx and HAProxy, and network namespaces with
//! their faults.

pub mod canary;
pub mod chromium;
pub mod daemon;
pub mod eventually;
pub mod exposition;
pub mod feed;
pub mod frame;
pub mod haproxy;
pub mod kill_relay;
pub mod netns;
pub mod nginx;
pub mod otlp_receiver;
pub mod ports;
pub mod promtool;
pub mod proxy_process;
pub mod redis;

pub use eventually::eventually;
pub use ports::{free_local_addr, free_port};
