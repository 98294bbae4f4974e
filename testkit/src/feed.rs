//! The example feed in-process, on its own registry: the server most tests measure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsmon_feed::{Feed, FeedConfig};

/// A running feed; stopped by [`FeedServer::shutdown`] or when dropped.
pub struct FeedServer {
    /// Where it listens (HTTP and `/ws`).
    pub addr: SocketAddr,
    /// The hub, for publishing from the test.
    pub feed: Arc<Feed>,
    /// The registry its metrics are in.
    pub registry: prometheus::Registry,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for FeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FeedServer {
    /// Starts the feed on a free loopback port.
    pub async fn start(config: FeedConfig) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts the feed on `addr` (to restart one on the address it had).
    pub async fn start_on(addr: SocketAddr, config: FeedConfig) -> Self {
        let registry = prometheus::Registry::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr, feed, task) = wsmon_feed::spawn(addr, config, &registry, async move {
            let _ = stopped.await;
        })
        .await
        .expect("feed starts");
        Self {
            addr,
            feed,
            registry,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the feed and waits (10 s at most) until it no longer serves.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
