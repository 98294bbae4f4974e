//! Pieces of the live scenarios: a real Prometheus, the prober daemon, the example feed and
//! Redis as processes, and WebSocket clients that misbehave on purpose.

#![allow(dead_code)]

pub mod alerts;
pub mod binaries;
pub mod clients;
pub mod exposition;
pub mod feed_process;
pub mod prober;
pub mod prometheus;
/// The middleware's own Redis fixture (a real `redis-server` on a free loopback port, killed
/// and restarted on the same port), shared rather than copied.
#[path = "../../../middleware/tests/support/redis.rs"]
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

/// A free port on 127.0.0.1 (bound and released; the race is acceptable on a test machine).
pub fn free_local_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap()
}

/// Polls `check` every `every` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
