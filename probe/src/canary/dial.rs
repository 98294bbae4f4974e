//! Dialling a canary's URL phase by phase (resolve, TCP, TLS, upgrade), each timed and each
//! with its own failure reason. Every await is bounded by `connect_timeout`.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::canary::handshake::{self, UpgradeError};
use crate::canary::io::{Io, Socket};
use crate::canary::tls;
use crate::config::CanaryConfig;
use crate::failure::FailureReason;
use crate::measure::Fault;
use crate::record::recorder::CanaryRecorder;
use crate::record::series::Phase;

/// Bytes read per socket read. tungstenite's 128 KiB default is reserved per connection, which
/// at thousands of canaries dwarfs everything else; a larger message still arrives whole, since
/// tungstenite reserves a frame's full length once its header is read.
const READ_BUFFER_BYTES: usize = 1024;

/// Upgrade handshakes in flight at once, process-wide. Each one holds buffers several times a
/// held stream's size; a daemon starting thousands of canaries would otherwise hold them all at
/// once, and the allocator keeps that peak as resident memory long after.
const HANDSHAKE_CONCURRENCY: usize = 128;
static HANDSHAKE_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(HANDSHAKE_CONCURRENCY);

/// The `User-Agent` of every upgrade, unless the canary's `headers` set one.
pub const USER_AGENT: &str = concat!("wsmon-probe/", env!("CARGO_PKG_VERSION"));

/// Connects, timing each phase, and returns the upgraded socket.
pub async fn connect(cfg: &CanaryConfig, rec: &CanaryRecorder) -> Result<Socket, Fault> {
    connect_to(cfg, cfg.url.expose(), rec).await
}

/// As [`connect`], to `url` instead of the canary's own (a resume adds its query parameter).
pub async fn connect_to(
    cfg: &CanaryConfig,
    url: &url::Url,
    rec: &CanaryRecorder,
) -> Result<Socket, Fault> {
    let host = url
        .host_str()
        .ok_or_else(|| Fault::new(FailureReason::Dns, "URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let limit = cfg.connect_timeout;

    let started = Instant::now();
    let addrs: Vec<std::net::SocketAddr> =
        match timeout(limit, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                return Err(Fault::new(
                    FailureReason::Dns,
                    format!("resolving {host}: {e}"),
                ))
            }
            Err(_) => {
                return Err(Fault::new(
                    FailureReason::Dns,
                    format!("resolving {host} took longer than {limit:?}"),
                ))
            }
        };
    if addrs.is_empty() {
        return Err(Fault::new(
            FailureReason::Dns,
            format!("{host} has no addresses"),
        ));
    }
    rec.phase(Phase::Dns, started.elapsed());

    let started = Instant::now();
    let tcp = connect_tcp(&addrs, limit).await?;
    let _ = tcp.set_nodelay(true);
    rec.phase(Phase::Tcp, started.elapsed());

    let stream: Box<dyn Io> = if url.scheme() == "wss" {
        let started = Instant::now();
        let tls = tls::connector(&cfg.tls)?;
        let server_name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| {
            Fault::new(
                FailureReason::Tls,
                format!("invalid TLS server name {host}: {e}"),
            )
        })?;
        let stream = match timeout(limit, tls.connect(server_name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Fault::new(
                    tls::failure_reason(&e),
                    format!("TLS handshake: {e}"),
                ))
            }
            Err(_) => {
                return Err(Fault::new(
                    FailureReason::Tls,
                    format!("TLS handshake took longer than {limit:?}"),
                ))
            }
        };
        rec.phase(Phase::Tls, started.elapsed());
        Box::new(stream)
    } else {
        Box::new(tcp)
    };

    // Waiting for a slot is not part of the upgrade phase.
    let _slot = HANDSHAKE_SLOTS
        .acquire()
        .await
        .expect("the handshake semaphore is never closed");
    let started = Instant::now();
    let request = upgrade_request(cfg, url)?;
    let mut ws_config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    ws_config.max_message_size = Some(cfg.max_message_bytes);
    // One byte more for frames, so that `on_error` can tell a frame header refused outright
    // (`frame_too_big`) from a message that grew too big (`message_too_big`) by `max_size`.
    ws_config.max_frame_size = Some(cfg.max_message_bytes.saturating_add(1));
    match timeout(limit, handshake::upgrade(stream, request, ws_config)).await {
        Ok(Ok((socket, status))) => {
            rec.phase(Phase::Upgrade, started.elapsed());
            rec.handshake_status(status.as_u16(), true);
            Ok(socket)
        }
        Ok(Err(e)) => {
            // A refused 101 still reports 101: that is what the server answered.
            if let Some(status) = e.status() {
                rec.handshake_status(status.as_u16(), false);
            }
            Err(upgrade_fault(e))
        }
        Err(_) => Err(Fault::new(
            FailureReason::HandshakeTimeout,
            format!("no upgrade response within {limit:?}"),
        )),
    }
}

/// The fault for an upgrade that did not produce a WebSocket.
fn upgrade_fault(e: UpgradeError) -> Fault {
    match e {
        UpgradeError::Status(status) if status.is_redirection() => {
            // Never followed: a canary checks the URL it was given, and loops cost nothing.
            Fault::new(
                FailureReason::Redirect,
                format!(
                    "upgrade answered HTTP {} (a redirect, not followed)",
                    status.as_u16()
                ),
            )
        }
        UpgradeError::Status(status) => Fault::new(
            FailureReason::HandshakeStatus,
            format!("upgrade answered HTTP {} instead of 101", status.as_u16()),
        ),
        UpgradeError::AcceptMismatch => Fault::new(
            FailureReason::HandshakeAcceptMismatch,
            "Sec-WebSocket-Accept does not match the key sent: not a WebSocket server, or a proxy rewrote the response",
        ),
        e => Fault::new(FailureReason::HandshakeError, format!("upgrade failed: {e}")),
    }
}

async fn connect_tcp(addrs: &[std::net::SocketAddr], limit: Duration) -> Result<TcpStream, Fault> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some((addr, e)),
            Err(_) => {
                return Err(Fault::new(
                    FailureReason::ConnectTimeout,
                    format!("TCP connect to {addr} took longer than {limit:?}"),
                ))
            }
        }
    }
    let (addr, e) = last.expect("at least one address");
    let reason = if e.kind() == std::io::ErrorKind::ConnectionRefused {
        FailureReason::ConnectRefused
    } else {
        FailureReason::ConnectError
    };
    Err(Fault::new(reason, format!("TCP connect to {addr}: {e}")))
}

fn upgrade_request(cfg: &CanaryConfig, url: &url::Url) -> Result<http::Request<()>, Fault> {
    let bad = |e: &dyn std::fmt::Display| {
        Fault::new(
            FailureReason::HandshakeError,
            format!("building the upgrade request: {e}"),
        )
    };
    let mut request = url.as_str().into_client_request().map_err(|e| bad(&e))?;
    let headers = request.headers_mut();
    for (name, value) in &cfg.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
        let mut value = http::HeaderValue::from_str(value.expose()).map_err(|e| bad(&e))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    // The canary says what it is, so the server can record its view of canaries apart from
    // its users' (wsmon's `CanaryRecognition`); a configured User-Agent wins.
    if !headers.contains_key(http::header::USER_AGENT) {
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
    }
    if let Some(origin) = &cfg.origin {
        headers.insert(
            http::header::ORIGIN,
            http::HeaderValue::from_str(origin).map_err(|e| bad(&e))?,
        );
    }
    if !cfg.subprotocols.is_empty() {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_str(&cfg.subprotocols.join(", ")).map_err(|e| bad(&e))?,
        );
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Defaults, TargetUrl};
    use wsmon::Secret;

    fn canary() -> CanaryConfig {
        let url = TargetUrl::parse("ws://127.0.0.1:1/ws").unwrap();
        CanaryConfig::new("c", url, &Defaults::default())
    }

    #[test]
    fn every_upgrade_says_it_is_wsmon_probe_with_its_version() {
        let cfg = canary();
        let request = upgrade_request(&cfg, cfg.url.expose()).unwrap();
        let ua = request.headers().get(http::header::USER_AGENT).unwrap();
        assert_eq!(
            ua.to_str().unwrap(),
            format!("wsmon-probe/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn a_configured_user_agent_replaces_the_probers() {
        let mut cfg = canary();
        cfg.headers
            .push(("User-Agent".into(), Secret::new("my-canary/2")));
        let request = upgrade_request(&cfg, cfg.url.expose()).unwrap();
        let all: Vec<_> = request
            .headers()
            .get_all(http::header::USER_AGENT)
            .iter()
            .collect();
        assert_eq!(all, ["my-canary/2"]);
    }
}
