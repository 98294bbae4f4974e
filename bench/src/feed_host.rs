//! The example feed (`wsmon::feed`), hosted in the orchestrator so that the prober and k6,
//! each in a process of its own, are measured alone.

use std::net::SocketAddr;
use std::sync::Arc;

use wsmon::catalog::{self, label};
use wsmon_feed::{Feed, FeedConfig};
use wsmon_testkit::feed::FeedServer;

pub struct FeedHost {
    pub addr: SocketAddr,
    pub feed: Arc<Feed>,
    server: FeedServer,
}

impl FeedHost {
    /// Starts the feed on an ephemeral loopback port, ticking `rate` times per second.
    pub async fn start(rate: f64) -> anyhow::Result<Self> {
        let server = FeedServer::start(FeedConfig {
            rate,
            // Pings are not what is measured; neither k6 nor the prober is asked to send any.
            heartbeat: None,
            ..FeedConfig::default()
        })
        .await;
        Ok(Self {
            addr: server.addr,
            feed: server.feed.clone(),
            server,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn subscribers(&self) -> usize {
        self.feed.hub().subscribers()
    }

    /// Text messages the feed has sent, from its own `websocket_server_messages_total`.
    pub fn text_sent(&self) -> u64 {
        let mut total = 0.0;
        for family in self.server.registry.gather() {
            if family.name() != catalog::MESSAGES_TOTAL.name {
                continue;
            }
            for m in family.get_metric() {
                let is = |k: &str, v: &str| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == k && l.value() == v)
                };
                if is(label::DIRECTION, "transmit") && is(label::FRAME_TYPE, "text") {
                    total += m.get_counter().value();
                }
            }
        }
        total as u64
    }
}
