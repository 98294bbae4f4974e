//! Publishing the canary's nonces through the service's own publish path: an HTTP request, or a
//! text message on a second WebSocket connection. Failures come back as `publish_error` details
//! that name only the redacted target, never the request.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::canary::dial;
use crate::canary::io::{self, Socket};
use crate::config::{CanaryConfig, HttpPublishConfig, PublishConfig, PublishVia, WsPublishConfig};
use crate::measure::Retention;
use crate::record::recorder::CanaryRecorder;

/// Replaces `{{nonce}}` in a publish template (also in its URL-encoded form, for URLs).
pub fn render_nonce(template: &str, nonce: &str) -> String {
    template
        .replace("{{nonce}}", nonce)
        .replace("%7B%7Bnonce%7D%7D", nonce)
}

/// A nonce unique enough that two probers never confuse theirs.
pub fn new_nonce() -> String {
    format!("wsmon-{:016x}", rand::random::<u64>())
}

enum Path {
    Http {
        client: reqwest::Client,
        cfg: HttpPublishConfig,
    },
    /// Messages for the task that holds the second connection; it ends when this drops.
    WebSocket(UnboundedSender<String>),
}

/// A publish that failed outright: its nonce was never sent, so it cannot also time out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    pub nonce: String,
    pub detail: String,
}

/// One session's publisher.
pub struct Publisher {
    path: Path,
    errors_tx: UnboundedSender<PublishFailure>,
    errors_rx: UnboundedReceiver<PublishFailure>,
}

impl Publisher {
    /// A publisher for `canary`'s `publish` settings.
    pub fn new(canary: &CanaryConfig, publish: &PublishConfig) -> Self {
        let (errors_tx, errors_rx) = unbounded_channel();
        let path = match &publish.via {
            PublishVia::Http(cfg) => Path::Http {
                client: reqwest::Client::builder()
                    .timeout(publish.timeout)
                    .user_agent(crate::canary::dial::USER_AGENT)
                    .build()
                    .unwrap_or_default(),
                cfg: cfg.clone(),
            },
            PublishVia::WebSocket(cfg) => {
                let (tx, rx) = unbounded_channel();
                tokio::spawn(hold_publish_socket(
                    publish_socket_config(canary, cfg),
                    rx,
                    errors_tx.clone(),
                ));
                Path::WebSocket(tx)
            }
        };
        Self {
            path,
            errors_tx,
            errors_rx,
        }
    }

    /// Publishes `nonce` without waiting; a failure arrives later from [`Publisher::next_error`].
    pub fn publish(&self, nonce: &str) {
        match &self.path {
            Path::Http { client, cfg } => self.publish_http(client, cfg, nonce),
            Path::WebSocket(tx) => {
                // The task outlives every send of this session, so this cannot fail.
                let _ = tx.send(nonce.to_string());
            }
        }
    }

    pub async fn next_error(&mut self) -> Option<PublishFailure> {
        self.errors_rx.recv().await
    }

    fn publish_http(&self, client: &reqwest::Client, cfg: &HttpPublishConfig, nonce: &str) {
        let url = render_nonce(cfg.url.expose().as_str(), nonce);
        let body = render_nonce(&cfg.body, nonce);
        let method = http::Method::from_bytes(cfg.method.as_bytes()).unwrap_or(http::Method::POST);
        let mut req = client.request(method, url);
        if body.trim_start().starts_with('{') || body.trim_start().starts_with('[') {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &cfg.headers {
            req = req.header(name.as_str(), value.expose());
        }
        let req = req.body(body);
        let errors = self.errors_tx.clone();
        let target = cfg.url.redacted();
        let nonce = nonce.to_string();
        tokio::spawn(async move {
            let detail = match req.send().await {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => format!(
                    "publish to {target} answered HTTP {}",
                    resp.status().as_u16()
                ),
                // reqwest errors include the URL; say what kind of failure, with ours.
                Err(e) if e.is_timeout() => format!("publish to {target} timed out"),
                Err(e) if e.is_connect() => format!("publish to {target} could not connect"),
                Err(_) => format!("publish to {target} failed"),
            };
            let _ = errors.send(PublishFailure { nonce, detail });
        });
    }
}

/// The canary's connection settings aimed at the publish URL.
fn publish_socket_config(canary: &CanaryConfig, ws: &WsPublishConfig) -> (CanaryConfig, String) {
    let mut cfg = canary.clone();
    cfg.name = format!("{}-publish", canary.name);
    cfg.url = ws.url.clone();
    cfg.on_open.clear();
    (cfg, ws.send.clone())
}

/// Holds the publishing connection: connects on demand, sends each nonce, reconnects on the
/// next nonce after a failure, and closes with 1000 when the session ends.
async fn hold_publish_socket(
    (cfg, template): (CanaryConfig, String),
    mut nonces: UnboundedReceiver<String>,
    errors: UnboundedSender<PublishFailure>,
) {
    // Phases of this connection are not the canary's: record them nowhere.
    let scratch = Arc::new(CanaryRecorder::new(
        &cfg.name,
        cfg.url.redacted(),
        Retention::WholeRun,
    ));
    let target = cfg.url.redacted();
    let mut socket: Option<Socket> = None;
    loop {
        tokio::select! {
            nonce = nonces.recv() => {
                let Some(nonce) = nonce else { break };
                if socket.is_none() {
                    match dial::connect(&cfg, &scratch).await {
                        Ok(s) => socket = Some(s),
                        Err(f) => {
                            let detail = format!("publish connection to {target} failed: {}", f.reason);
                            let _ = errors.send(PublishFailure { nonce, detail });
                            continue;
                        }
                    }
                }
                let ws = socket.as_mut().expect("connected above");
                let text = render_nonce(&template, &nonce);
                if let Err(f) = io::send(ws, Message::text(text), cfg.connect_timeout).await {
                    let detail = format!("publish to {target} failed: {}", f.detail);
                    let _ = errors.send(PublishFailure { nonce, detail });
                    socket = None;
                }
            }
            // Read (and drop) what the publish connection receives, so pings get answered.
            frame = next_frame(&mut socket) => {
                if !matches!(frame, Some(Ok(_))) {
                    socket = None;
                }
            }
        }
    }
    if let Some(mut ws) = socket {
        io::close(&mut ws, CloseCode::Normal, "canary session ended").await;
    }
}

async fn next_frame(
    socket: &mut Option<Socket>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match socket {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_templates_fill_body_and_encoded_urls() {
        assert_eq!(
            render_nonce(r#"{"nonce":"{{nonce}}"}"#, "n1"),
            r#"{"nonce":"n1"}"#
        );
        assert_eq!(
            render_nonce("http://h/p?n=%7B%7Bnonce%7D%7D", "n1"),
            "http://h/p?n=n1"
        );
    }

    #[test]
    fn nonces_are_unique() {
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn the_publish_socket_reuses_the_canary_settings_but_not_its_subscription() {
        let mut canary = CanaryConfig::new(
            "c",
            crate::config::TargetUrl::parse("wss://a/ws").unwrap(),
            &crate::config::Defaults::default(),
        );
        canary.on_open = vec!["subscribe".into()];
        canary.headers = vec![("X".into(), crate::config::Secret::new("v"))];
        let ws = WsPublishConfig {
            url: crate::config::TargetUrl::parse("wss://a/publish").unwrap(),
            send: "{{nonce}}".into(),
        };
        let (cfg, template) = publish_socket_config(&canary, &ws);
        assert_eq!(cfg.url.expose().path(), "/publish");
        assert!(cfg.on_open.is_empty());
        assert_eq!(cfg.headers.len(), 1);
        assert_eq!(template, "{{nonce}}");
    }
}
