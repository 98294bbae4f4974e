//! One held stream: connect phase by phase, then watch every frame against the canary's rules.
//!
//! The connection is made by hand (resolve, TCP, TLS, upgrade) so each phase is timed and each
//! failure has its own reason. Every await is bounded: a hostile server can fail the canary but
//! never hang it.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::config::{CanaryConfig, TlsConfig};
use crate::failure::{FailureReason, PING_FLOOD_PER_SECOND};
use crate::handshake::{self, UpgradeError};
use crate::measure::{
    self, Fault, JsonRefusal, NonceTracker, RateLimit, SequenceTracker, StallDetector,
};
use crate::publish::{PublishFailure, Publisher};
use crate::recorder::{CanaryRecorder, CanaryState, Phase};

/// Anything the WebSocket can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// Why a session returned.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    /// The fault that ended the stream; `None` when it ended because we were told to stop.
    pub fault: Option<Fault>,
    /// Whether any data message arrived (a healthy session resets the backoff).
    pub got_payload: bool,
}

/// How a session should end when nothing goes wrong.
#[derive(Clone)]
pub struct SessionLimits {
    /// Close with 1001 and return when cancelled (daemon shutdown or reload).
    pub shutdown: CancellationToken,
    /// Close with 1000 and return at this instant (`once`, `/probe`).
    pub until: Option<Instant>,
    /// Return successfully as soon as the first payload arrives (`/probe`).
    pub stop_after_first_payload: bool,
}

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

fn fault(reason: FailureReason, detail: impl Into<String>) -> Fault {
    Fault {
        reason,
        detail: detail.into(),
    }
}

/// Connects, timing each phase, and returns the upgraded socket.
pub async fn connect(cfg: &CanaryConfig, rec: &CanaryRecorder) -> Result<Socket, Fault> {
    let url = cfg.url.expose();
    let host = url
        .host_str()
        .ok_or_else(|| fault(FailureReason::Dns, "URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let limit = cfg.connect_timeout;

    let started = Instant::now();
    let addrs: Vec<std::net::SocketAddr> =
        match timeout(limit, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(fault(FailureReason::Dns, format!("resolving {host}: {e}"))),
            Err(_) => {
                return Err(fault(
                    FailureReason::Dns,
                    format!("resolving {host} took longer than {limit:?}"),
                ))
            }
        };
    if addrs.is_empty() {
        return Err(fault(
            FailureReason::Dns,
            format!("{host} has no addresses"),
        ));
    }
    rec.phase(Phase::Dns, started.elapsed());

    let started = Instant::now();
    let tcp = connect_tcp(&addrs, limit).await?;
    let _ = tcp.set_nodelay(true);
    rec.phase(Phase::Tcp, started.elapsed());

    let stream: Box<dyn Io> = if cfg.url.scheme() == "wss" {
        let started = Instant::now();
        let tls = tls_connector(&cfg.tls)?;
        let server_name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| {
            fault(
                FailureReason::Tls,
                format!("invalid TLS server name {host}: {e}"),
            )
        })?;
        let stream = match timeout(limit, tls.connect(server_name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(fault(tls_failure_reason(&e), format!("TLS handshake: {e}"))),
            Err(_) => {
                return Err(fault(
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
    let request = upgrade_request(cfg)?;
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
        Err(_) => Err(fault(
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
            fault(
                FailureReason::Redirect,
                format!(
                    "upgrade answered HTTP {} (a redirect, not followed)",
                    status.as_u16()
                ),
            )
        }
        UpgradeError::Status(status) => fault(
            FailureReason::HandshakeStatus,
            format!("upgrade answered HTTP {} instead of 101", status.as_u16()),
        ),
        UpgradeError::AcceptMismatch => fault(
            FailureReason::HandshakeAcceptMismatch,
            "Sec-WebSocket-Accept does not match the key sent: not a WebSocket server, or a proxy rewrote the response",
        ),
        e => fault(FailureReason::HandshakeError, format!("upgrade failed: {e}")),
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
                return Err(fault(
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
    Err(fault(reason, format!("TCP connect to {addr}: {e}")))
}

fn tls_connector(tls: &TlsConfig) -> Result<tokio_rustls::TlsConnector, Fault> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fault(FailureReason::Tls, format!("TLS setup: {e}")))?;
    let mut verifier = Verifier {
        webpki: None,
        pinned: Vec::new(),
        provider: provider.clone(),
    };
    if !tls.insecure_skip_verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &tls.ca_file {
            use rustls_pki_types::pem::PemObject;
            let ca_error = |what: &str, e: &dyn std::fmt::Display| {
                fault(
                    FailureReason::Tls,
                    format!("{what} ca_file {}: {e}", path.display()),
                )
            };
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error("reading", &e))?;
            for cert in certs {
                let cert = cert.map_err(|e| ca_error("parsing", &e))?;
                roots
                    .add(cert.clone())
                    .map_err(|e| ca_error("adding", &e))?;
                verifier.pinned.push(cert);
            }
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| fault(FailureReason::Tls, format!("TLS setup: {e}")))?;
        verifier.webpki = Some(webpki);
    }
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// webpki's verification, plus what curl and OpenSSL accept: a server certificate that is
/// itself in `ca_file`, even when marked `CA:TRUE` (`openssl req -x509` does so by default),
/// once its name and validity check out. Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    /// `None` with `insecure_skip_verify: true`: any certificate is accepted.
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The certificates of `ca_file`, byte for byte.
    pinned: Vec<rustls_pki_types::CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(e)
                if is_ca_used_as_end_entity(&e) && self.pinned.iter().any(|p| p == end_entity) =>
            {
                // webpki checks a certificate's validity period before its CA bit, so this
                // error means it is in date (tests/tls.rs holds an expired one to that).
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// webpki's refusal of a certificate marked `CA:TRUE` as the server's own.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
    )
}

/// Which certificate problem failed the handshake, from the rustls error inside `e`.
fn tls_failure_reason(e: &std::io::Error) -> FailureReason {
    use rustls::CertificateError as C;
    let Some(error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return FailureReason::Tls;
    };
    // A self-signed `CA:TRUE` certificate not in ca_file: untrusted, like any self-signed one.
    if is_ca_used_as_end_entity(error) {
        return FailureReason::TlsUntrusted;
    }
    let rustls::Error::InvalidCertificate(cert) = error else {
        return FailureReason::Tls;
    };
    match cert {
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            FailureReason::TlsExpired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => FailureReason::TlsHostname,
        C::UnknownIssuer | C::BadSignature => FailureReason::TlsUntrusted,
        _ => FailureReason::Tls,
    }
}

fn upgrade_request(cfg: &CanaryConfig) -> Result<http::Request<()>, Fault> {
    let bad = |e: &dyn std::fmt::Display| {
        fault(
            FailureReason::HandshakeError,
            format!("building the upgrade request: {e}"),
        )
    };
    let mut request = cfg
        .url
        .expose()
        .as_str()
        .into_client_request()
        .map_err(|e| bad(&e))?;
    let headers = request.headers_mut();
    for (name, value) in &cfg.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
        let mut value = http::HeaderValue::from_str(value.expose()).map_err(|e| bad(&e))?;
        value.set_sensitive(true);
        headers.insert(name, value);
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

/// Writes bounded by `limit`: a peer that stops reading must not wedge the canary.
pub(crate) async fn send(ws: &mut Socket, msg: Message, limit: Duration) -> Result<(), Fault> {
    let mut sending = std::pin::pin!(ws.send(msg));
    // Most writes complete at once. Arming the timer first would wake the runtime's timer
    // thread on every send, which a heartbeat's round trip would then include.
    let sent = match futures_util::poll!(&mut sending) {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => timeout(limit, sending).await,
    };
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(fault(FailureReason::Closed, format!("sending failed: {e}"))),
        Err(_) => Err(fault(
            FailureReason::Closed,
            format!("the server stopped reading: a write blocked for {limit:?}"),
        )),
    }
}

/// Closes politely, bounded: a server that never answers the close does not hold us.
pub(crate) async fn close(ws: &mut Socket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = timeout(Duration::from_secs(1), async {
        let _ = ws.close(Some(frame)).await;
        // Drain until the server's close arrives or the stream ends.
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Runs one connection of canary `cfg` until a fault ends it or `limits` say stop.
///
/// `tracker` outlives the session: with `resume` the next session continues it, otherwise it
/// starts a new baseline.
pub async fn run_session(
    cfg: &CanaryConfig,
    rec: &CanaryRecorder,
    tracker: &mut SequenceTracker,
    limits: &SessionLimits,
) -> SessionEnd {
    rec.begin_attempt();
    // Boxed: connecting (TLS and upgrade in flight) is the largest state by far, and inline it
    // would stay part of every held canary's task for the stream's whole life.
    let mut ws = match Box::pin(connect_unless_stopped(cfg, rec, limits)).await {
        Some(Ok(ws)) => ws,
        Some(Err(f)) => {
            rec.fault(f.reason, f.detail.clone());
            return SessionEnd {
                fault: Some(f),
                got_payload: false,
            };
        }
        None => {
            return SessionEnd {
                fault: None,
                got_payload: false,
            }
        }
    };
    let mut session = Session::new(cfg, rec, Instant::now());
    let end = session.run(&mut ws, tracker, limits).await;
    // Without resume nothing can fill the pending gaps any more: confirm them now.
    if cfg.resume.is_none() {
        rec.sequence(tracker.flush());
    }
    if let Some(f) = &end.fault {
        rec.fault(f.reason, f.detail.clone());
    }
    if rec.with_status(|s| s.state) != CanaryState::Stopped {
        rec.set_state(CanaryState::Connecting);
    }
    end
}

/// Connects, or returns `None` if `limits` say stop first.
async fn connect_unless_stopped(
    cfg: &CanaryConfig,
    rec: &CanaryRecorder,
    limits: &SessionLimits,
) -> Option<Result<Socket, Fault>> {
    tokio::select! {
        r = connect(cfg, rec) => Some(r),
        _ = limits.shutdown.cancelled() => None,
        _ = sleep_or_never(limits.until) => None,
    }
}

async fn sleep_or_never(until: Option<Instant>) {
    match until {
        Some(t) => sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// The per-connection timers and pending checks.
struct Session<'a> {
    cfg: &'a CanaryConfig,
    rec: &'a CanaryRecorder,
    upgraded_at: Instant,
    got_payload: bool,
    stall: Option<StallDetector>,
    next_ping: Option<Instant>,
    ping_pending: Option<(u64, Instant)>,
    ping_counter: u64,
    next_head: Option<Instant>,
    head_pending: Option<Instant>,
    next_publish: Option<Instant>,
    nonces: NonceTracker,
    /// Boxed: few canaries publish.
    publisher: Option<Box<Publisher>>,
    /// Only canaries that read pointers pay for JSON parsing (a flood of text costs little).
    needs_json: bool,
    pings: RateLimit,
    messages: Option<RateLimit>,
    reported_invalid_sequence: bool,
    reported_too_deep: bool,
}

impl<'a> Session<'a> {
    fn new(cfg: &'a CanaryConfig, rec: &'a CanaryRecorder, now: Instant) -> Self {
        Self {
            cfg,
            rec,
            upgraded_at: now,
            got_payload: false,
            stall: cfg.max_silence.map(StallDetector::new),
            next_ping: cfg.heartbeat.map(|h| now + h.every),
            ping_pending: None,
            ping_counter: 0,
            next_head: cfg
                .head_check
                .as_ref()
                .map(|h| now + h.every.min(Duration::from_millis(200))),
            head_pending: None,
            next_publish: cfg
                .publish
                .as_ref()
                .map(|_| now + Duration::from_millis(100)),
            nonces: NonceTracker::default(),
            publisher: cfg
                .publish
                .as_ref()
                .map(|p| Box::new(Publisher::new(cfg, p))),
            needs_json: cfg.sequence.is_some()
                || cfg.timestamp.is_some()
                || cfg.publish.is_some()
                || cfg.head_check.is_some(),
            pings: RateLimit::new(PING_FLOOD_PER_SECOND, now),
            messages: cfg.max_message_rate.map(|r| RateLimit::new(r, now)),
            reported_invalid_sequence: false,
            reported_too_deep: false,
        }
    }

    fn end(&self, fault: Option<Fault>) -> SessionEnd {
        SessionEnd {
            fault,
            got_payload: self.got_payload,
        }
    }

    /// The earliest instant at which a timer needs attention.
    fn next_deadline(&self, until: Option<Instant>) -> Instant {
        let mut candidates: Vec<Instant> = Vec::with_capacity(8);
        if !self.got_payload {
            candidates.push(self.upgraded_at + self.cfg.first_payload_within);
        }
        if let Some(s) = &self.stall {
            candidates.extend(s.deadline());
        }
        if let (Some(hb), Some((_, sent))) = (self.cfg.heartbeat, self.ping_pending) {
            candidates.push(sent + hb.timeout);
        }
        candidates.extend(self.next_ping);
        if let (Some(h), Some(sent)) = (&self.cfg.head_check, self.head_pending) {
            candidates.push(sent + h.timeout);
        }
        candidates.extend(self.next_head);
        candidates.extend(self.next_publish);
        if let Some(p) = &self.cfg.publish {
            candidates.extend(self.nonces.deadline(p.timeout));
        }
        candidates.extend(until);
        candidates
            .into_iter()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn run(
        &mut self,
        ws: &mut Socket,
        tracker: &mut SequenceTracker,
        limits: &SessionLimits,
    ) -> SessionEnd {
        let write_limit = self.cfg.connect_timeout;
        // Subscribe first, then ask for the replay: the resume refers to the subscription.
        for text in &self.cfg.on_open {
            if let Err(f) = Box::pin(send(ws, Message::text(text.clone()), write_limit)).await {
                return self.end(Some(f));
            }
        }
        match (&self.cfg.resume, tracker.last()) {
            (Some(resume), Some(last)) => {
                let text = resume.send.replace("{{last_seq}}", &last.to_string());
                if let Err(f) = Box::pin(send(ws, Message::text(text), write_limit)).await {
                    return self.end(Some(f));
                }
            }
            _ => self.rec.sequence(tracker.new_baseline()),
        }
        loop {
            let deadline = self.next_deadline(limits.until);
            tokio::select! {
                _ = limits.shutdown.cancelled() => {
                    Box::pin(close(ws, CloseCode::Away, "prober shutting down")).await;
                    return self.end(None);
                }
                _ = sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    if limits.until.is_some_and(|u| now >= u) {
                        Box::pin(close(ws, CloseCode::Normal, "probe finished")).await;
                        return self.end(None);
                    }
                    // Boxed, as are the other rare paths: the held task's size is its largest
                    // state, and these would otherwise set it.
                    if let Some(end) = Box::pin(self.on_timers(ws, now)).await {
                        return end;
                    }
                }
                frame = ws.next() => {
                    // Receive time is taken as the frame is read, before any parsing.
                    let received = Instant::now();
                    let received_wall = SystemTime::now();
                    match frame {
                        Some(Ok(msg)) => {
                            // Boxed too: inline, its state would be part of every idle canary.
                            if let Some(end) = Box::pin(self.on_frame(ws, msg, received, received_wall, tracker)).await {
                                return end;
                            }
                            if limits.stop_after_first_payload && self.got_payload {
                                Box::pin(close(ws, CloseCode::Normal, "probe finished")).await;
                                return self.end(None);
                            }
                        }
                        Some(Err(e)) => return Box::pin(self.on_error(ws, e)).await,
                        None => {
                            self.rec.closed(wsmon::close_code::ABNORMAL, "");
                            return self.end(Some(fault(FailureReason::Closed, "the connection ended without a close frame (1006)")));
                        }
                    }
                }
                Some(failure) = recv_error(&mut self.publisher) => {
                    // The nonce can never arrive: undelivered now (the e2e SLI counts it bad),
                    // and its fault is the refusal, not a later timeout as well.
                    if self.nonces.forget(&failure.nonce) {
                        self.rec.publish_timeouts(1);
                    }
                    self.rec.fault(FailureReason::PublishError, failure.detail);
                }
            }
        }
    }

    async fn on_timers(&mut self, ws: &mut Socket, now: Instant) -> Option<SessionEnd> {
        let write_limit = self.cfg.connect_timeout;
        if !self.got_payload && now >= self.upgraded_at + self.cfg.first_payload_within {
            close(ws, CloseCode::Normal, "no first payload").await;
            return Some(self.end(Some(fault(
                FailureReason::FirstPayloadTimeout,
                format!(
                    "no data message within {:?} of the upgrade",
                    self.cfg.first_payload_within
                ),
            ))));
        }
        if let Some(s) = &mut self.stall {
            if s.poll(now) {
                self.rec.stall();
                self.rec.fault(
                    FailureReason::Stall,
                    format!(
                        "no message for longer than {:?}",
                        self.cfg.max_silence.unwrap_or_default()
                    ),
                );
            }
        }
        if let Some(hb) = self.cfg.heartbeat {
            if let Some((_, sent)) = self.ping_pending {
                if now >= sent + hb.timeout {
                    close(ws, CloseCode::Normal, "heartbeat timeout").await;
                    return Some(self.end(Some(fault(
                        FailureReason::HeartbeatTimeout,
                        format!("no pong within {:?}", hb.timeout),
                    ))));
                }
            }
            if self.next_ping.is_some_and(|t| now >= t) {
                self.next_ping = Some(now + hb.every);
                // One ping in flight at a time keeps RTTs unambiguous.
                if self.ping_pending.is_none() {
                    self.ping_counter += 1;
                    let payload = self.ping_counter.to_be_bytes().to_vec();
                    // Stamped before the write, as ping(8) does: on loopback the write itself
                    // delivers the frame and wakes the server, which is part of the trip.
                    let sent = Instant::now();
                    if let Err(f) = send(ws, Message::Ping(payload.into()), write_limit).await {
                        return Some(self.end(Some(f)));
                    }
                    self.ping_pending = Some((self.ping_counter, sent));
                }
            }
        }
        if let Some(h) = &self.cfg.head_check {
            if self
                .head_pending
                .is_some_and(|sent| now >= sent + h.timeout)
            {
                self.head_pending = None;
                self.rec.fault(
                    FailureReason::HeadTimeout,
                    format!("no head check reply within {:?}", h.timeout),
                );
            }
            if self.next_head.is_some_and(|t| now >= t) {
                self.next_head = Some(now + h.every);
                if self.head_pending.is_none() && self.got_payload {
                    if let Err(f) = send(ws, Message::text(h.send.clone()), write_limit).await {
                        return Some(self.end(Some(f)));
                    }
                    self.head_pending = Some(Instant::now());
                }
            }
        }
        if let Some(p) = &self.cfg.publish {
            let expired = self.nonces.expire(now, p.timeout);
            if expired > 0 {
                self.rec.publish_timeouts(expired as u64);
                self.rec.fault(
                    FailureReason::PublishTimeout,
                    format!(
                        "{expired} published nonce(s) did not arrive within {:?}",
                        p.timeout
                    ),
                );
            }
            if self.next_publish.is_some_and(|t| now >= t) {
                self.next_publish = Some(now + p.every);
                if self.got_payload {
                    let nonce = crate::publish::new_nonce();
                    // The clock starts before the request: publish latency is part of e2e.
                    self.nonces.published(nonce.clone(), Instant::now());
                    self.rec.published();
                    if let Some(publisher) = &self.publisher {
                        publisher.publish(&nonce);
                    }
                }
            }
        }
        None
    }

    async fn on_frame(
        &mut self,
        ws: &mut Socket,
        msg: Message,
        received: Instant,
        received_wall: SystemTime,
        tracker: &mut SequenceTracker,
    ) -> Option<SessionEnd> {
        let text: &str = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Binary(b) => std::str::from_utf8(b).unwrap_or(""),
            Message::Pong(payload) => {
                if let Some((id, sent)) = self.ping_pending {
                    if payload.as_ref() == id.to_be_bytes() {
                        self.ping_pending = None;
                        self.rec
                            .heartbeat_rtt(received.saturating_duration_since(sent));
                    }
                }
                return None;
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .as_ref()
                    .map_or((wsmon::close_code::NO_STATUS, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                self.rec.closed(code, &reason);
                // tungstenite queued the close reply; flush it, bounded.
                let _ = timeout(Duration::from_secs(1), ws.flush()).await;
                // tungstenite hides a forbidden close code (0, 1005, 1006, 5000, ...) by
                // handing us this exact frame instead; a server's own 1002 says something else.
                if code == wsmon::close_code::PROTOCOL_ERROR && reason == "Protocol violation" {
                    return Some(self.end(Some(fault(
                        FailureReason::InvalidCloseCode,
                        "the server closed with a code RFC 6455 forbids on the wire",
                    ))));
                }
                // The server should now end TCP; anything more it sends is a violation.
                if let Ok(Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ReceivedAfterClosing,
                )))) = timeout(Duration::from_secs(1), ws.next()).await
                {
                    return Some(self.end(Some(fault(
                        FailureReason::DataAfterClose,
                        format!("the server sent more frames after closing with {code}"),
                    ))));
                }
                let detail = if reason.is_empty() {
                    format!("the server closed the stream with {code}")
                } else {
                    format!("the server closed the stream with {code}: {reason}")
                };
                return Some(self.end(Some(fault(FailureReason::for_close_code(code), detail))));
            }
            Message::Ping(_) => {
                if self.pings.exceeded(received) {
                    close(ws, CloseCode::Policy, "ping flood").await;
                    self.rec.closed(u16::from(CloseCode::Policy), "");
                    return Some(self.end(Some(fault(
                        FailureReason::PingFlood,
                        format!("more than {PING_FLOOD_PER_SECOND} pings within a second"),
                    ))));
                }
                return None;
            }
            Message::Frame(_) => return None,
        };
        if let Some(limit) = &mut self.messages {
            if limit.exceeded(received) {
                close(ws, CloseCode::Policy, "message flood").await;
                self.rec.closed(u16::from(CloseCode::Policy), "");
                return Some(self.end(Some(fault(
                    FailureReason::MessageFlood,
                    format!(
                        "more than {} messages within a second (max_message_rate)",
                        self.cfg.max_message_rate.unwrap_or_default()
                    ),
                ))));
            }
        }
        if !self.got_payload {
            self.got_payload = true;
            self.rec
                .first_payload(received.saturating_duration_since(self.upgraded_at));
        }
        if let Some(s) = &mut self.stall {
            s.on_message(received);
        }
        self.rec.message(received, text);
        if !self.needs_json {
            return None;
        }
        let value = match measure::parse_json(text) {
            Ok(value) => value,
            Err(JsonRefusal::NotJson) => return None,
            Err(JsonRefusal::TooDeep) => {
                // Once per session: a server that always does this must not flood the log.
                if !std::mem::replace(&mut self.reported_too_deep, true) {
                    self.rec.fault(
                        FailureReason::PayloadTooDeep,
                        "a JSON message nested deeper than 128 levels was not measured",
                    );
                }
                return None;
            }
        };
        if self.take_head_reply(&value, tracker) {
            return None;
        }
        if let Some(p) = &self.cfg.publish {
            if let Some(nonce) = measure::text_at(&value, &p.match_pointer) {
                if let Some(took) = self.nonces.observe(&nonce, received) {
                    self.rec.e2e(took);
                }
            }
        }
        if let Some(seq_cfg) = &self.cfg.sequence {
            let seq = match measure::sequence_at(&value, &seq_cfg.pointer) {
                Ok(seq) => seq,
                Err(invalid) => {
                    if !std::mem::replace(&mut self.reported_invalid_sequence, true) {
                        self.rec.fault(
                            FailureReason::InvalidSequence,
                            format!("{} is {}", seq_cfg.pointer, invalid.0),
                        );
                    }
                    None
                }
            };
            if let Some(seq) = seq {
                let d = tracker.observe(seq);
                self.rec.sequence(d);
                if d.gaps > 0 {
                    self.rec.fault(
                        FailureReason::SequenceGap,
                        format!("{} message(s) missing before sequence {seq}", d.missed),
                    );
                }
                if d.duplicates > 0 {
                    self.rec.fault(
                        FailureReason::SequenceDuplicate,
                        format!("sequence {seq} arrived again"),
                    );
                }
            }
        }
        if let Some(ts) = &self.cfg.timestamp {
            if let Some(f) = measure::freshness_seconds(received_wall, &value, &ts.pointer, ts.unit)
            {
                self.rec.freshness(f);
            }
        }
        None
    }

    /// Takes `value` as the head check reply if one is pending and it matches.
    fn take_head_reply(&mut self, value: &Value, tracker: &SequenceTracker) -> bool {
        let (Some(h), Some(_)) = (&self.cfg.head_check, self.head_pending) else {
            return false;
        };
        let is_reply = match &h.reply {
            Some(rule) => measure::text_at(value, &rule.pointer).is_some_and(|v| v == rule.equals),
            None => true,
        };
        if !is_reply {
            return false;
        }
        self.head_pending = None;
        if let (Some(head), Some(last)) = (measure::u64_at(value, &h.pointer), tracker.last()) {
            let lag = head.saturating_sub(last);
            self.rec.head_lag(lag);
            if h.max_lag.is_some_and(|max| lag > max) {
                self.rec.fault(
                    FailureReason::HeadLag,
                    format!("{lag} messages behind the server's head {head}"),
                );
            }
        }
        true
    }

    async fn on_error(&mut self, ws: &mut Socket, e: tungstenite::Error) -> SessionEnd {
        let (reason, reply) = classify_error(&e, self.cfg.max_message_bytes);
        let detail = match &e {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size })
                if reason == FailureReason::FrameTooBig =>
            {
                format!(
                    "a frame header declared {size} bytes, over max_message_bytes ({})",
                    max_size - 1
                )
            }
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                format!("a {size}-byte message exceeded max_message_bytes ({max_size})")
            }
            _ if reason == FailureReason::Closed => {
                "the connection dropped without a close frame (1006)".to_string()
            }
            _ if reason == FailureReason::Reset => {
                "the connection was reset (TCP RST) without a close frame (1006)".to_string()
            }
            other => other.to_string(),
        };
        match reply {
            Some(code) => {
                close(ws, code, reason.as_str()).await;
                self.rec.closed(u16::from(code), "");
            }
            None => self.rec.closed(wsmon::close_code::ABNORMAL, ""),
        }
        self.end(Some(fault(reason, detail)))
    }
}

use tungstenite::error::{CapacityError, ProtocolError};

/// The failure reason for a read error, and the close code the prober answers with (`None`
/// when the connection is already gone).
fn classify_error(
    e: &tungstenite::Error,
    max_message_bytes: usize,
) -> (FailureReason, Option<CloseCode>) {
    use tungstenite::Error as E;
    match e {
        E::Capacity(CapacityError::MessageTooLong { max_size, .. })
            if *max_size != max_message_bytes =>
        {
            (FailureReason::FrameTooBig, Some(CloseCode::Size))
        }
        E::Capacity(_) => (FailureReason::MessageTooBig, Some(CloseCode::Size)),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
            (FailureReason::Reset, None)
        }
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | E::Io(_)
        | E::ConnectionClosed
        | E::AlreadyClosed => (FailureReason::Closed, None),
        E::Protocol(ProtocolError::ReceivedAfterClosing) => (FailureReason::DataAfterClose, None),
        E::Protocol(ProtocolError::NonZeroReservedBits) => {
            (FailureReason::ReservedBits, Some(CloseCode::Protocol))
        }
        E::Protocol(
            ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::InvalidOpcode(_),
        ) => (FailureReason::BadOpcode, Some(CloseCode::Protocol)),
        E::Protocol(ProtocolError::FragmentedControlFrame | ProtocolError::ControlFrameTooBig) => {
            (FailureReason::FragmentedControl, Some(CloseCode::Protocol))
        }
        E::Protocol(ProtocolError::InvalidCloseSequence) => {
            (FailureReason::InvalidCloseCode, Some(CloseCode::Protocol))
        }
        E::Utf8(_) => (FailureReason::InvalidUtf8, Some(CloseCode::Invalid)),
        _ => (FailureReason::ProtocolError, Some(CloseCode::Protocol)),
    }
}

async fn recv_error(publisher: &mut Option<Box<Publisher>>) -> Option<PublishFailure> {
    match publisher {
        Some(p) => p.next_error().await,
        None => std::future::pending().await,
    }
}
