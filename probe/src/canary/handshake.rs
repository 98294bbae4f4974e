//! The client side of the WebSocket upgrade (RFC 6455 §4.1): tungstenite's key derivation, but
//! our own request writer and response read.
//!
//! Why not `tokio_tungstenite::client_async`: it reads the response through a 4 KiB buffer and
//! then keeps that buffer as the connection's read buffer for the stream's whole life. For a
//! prober holding ten thousand quiet canaries that one buffer was the largest thing each canary
//! owned. Here the response is read into a scratch buffer that is freed once the upgrade is
//! done, and the socket starts with the small read buffer its config asks for.
//!
//! Why not tungstenite's `generate_request` either: it logs the whole request at trace level,
//! `Authorization` header and URL query included, and secrets must not reach a log at any level.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::canary::io::{Io, Socket};

/// Largest response head accepted, as tungstenite allows: a server streaming headers forever
/// is refused rather than buffered.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Header count httparse is given room for, tungstenite's figure.
const MAX_HEADERS: usize = 124;
/// Bytes asked for per read of the response.
const READ_CHUNK: usize = 1024;

/// Why an upgrade did not produce a WebSocket.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The server answered, but not with 101.
    #[error("upgrade answered HTTP {}", .0.as_u16())]
    Status(StatusCode),
    /// The 101's `Sec-WebSocket-Accept` is not the one derived from the key sent.
    #[error("Sec-WebSocket-Accept does not match the key sent")]
    AcceptMismatch,
    /// The server answered 101 but broke another of RFC 6455 §4.1's rules.
    #[error("{0}")]
    Refused(String),
    /// No usable response: malformed, too large, or the connection closed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl UpgradeError {
    /// The status line the refused response carried, if one was read: 101 when the prober
    /// refused a 101 for breaking another rule.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            UpgradeError::Status(s) => Some(*s),
            UpgradeError::AcceptMismatch | UpgradeError::Refused(_) => {
                Some(StatusCode::SWITCHING_PROTOCOLS)
            }
            UpgradeError::Invalid(_) | UpgradeError::Io(_) => None,
        }
    }
}

/// Sends the upgrade `request` on `stream` and checks the response; returns the socket and the
/// response status (always 101).
pub async fn upgrade(
    mut stream: Box<dyn Io>,
    request: http::Request<()>,
    config: WebSocketConfig,
) -> Result<(Socket, StatusCode), UpgradeError> {
    let offered = offered_subprotocols(&request);
    let (bytes, key) = request_bytes(&request)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;

    let mut buf = Vec::with_capacity(READ_CHUNK);
    let head_len = loop {
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(UpgradeError::Invalid(format!(
                "the response head is larger than {} KiB",
                MAX_RESPONSE_HEAD / 1024
            )));
        }
        buf.reserve(READ_CHUNK);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(UpgradeError::Invalid(
                "the connection closed during the upgrade".into(),
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                verify(&response, &derive_accept_key(key.as_bytes()), &offered)?;
                break len;
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => {
                return Err(UpgradeError::Invalid(format!(
                    "malformed upgrade response: {e}"
                )))
            }
        }
    };
    // Frames the server sent right behind the 101 belong to the stream.
    let early_frames = buf[head_len..].to_vec();
    drop(buf);
    let socket =
        WebSocketStream::from_partially_read(stream, early_frames, Role::Client, Some(config))
            .await;
    Ok((socket, StatusCode::SWITCHING_PROTOCOLS))
}

/// Headers every upgrade request carries, written first and in this order (some servers
/// compare names case-sensitively, so they keep tungstenite's spelling).
const UPGRADE_HEADERS: [&str; 5] = [
    "Host",
    "Connection",
    "Upgrade",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Key",
];

/// The request head as sent, and its `Sec-WebSocket-Key`. Nothing here logs: the head holds
/// the canary's secrets.
fn request_bytes(request: &http::Request<()>) -> Result<(Vec<u8>, String), UpgradeError> {
    let invalid = |what: &str| UpgradeError::Invalid(format!("request: {what}"));
    let target = request
        .uri()
        .path_and_query()
        .ok_or_else(|| invalid("the URL has no path"))?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let headers = request.headers();
    for name in UPGRADE_HEADERS {
        let mut values = headers.get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(invalid(&format!("exactly one {name} header is required")));
        };
        line(name, value.as_bytes());
    }
    for (name, value) in headers {
        let name = name.as_str();
        if UPGRADE_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            continue;
        }
        let name = match name {
            "sec-websocket-protocol" => "Sec-WebSocket-Protocol",
            "origin" => "Origin",
            other => other,
        };
        line(name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    let key = headers
        .get("Sec-WebSocket-Key")
        .and_then(|k| k.to_str().ok())
        .ok_or_else(|| invalid("the Sec-WebSocket-Key is not ASCII"))?
        .to_string();
    Ok((out, key))
}

fn offered_subprotocols(request: &http::Request<()>) -> Vec<String> {
    request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn header<'a>(response: &httparse::Response<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    headers(response, name).next()
}

fn headers<'r, 'a: 'r>(
    response: &'r httparse::Response<'_, 'a>,
    name: &'r str,
) -> impl Iterator<Item = &'a [u8]> + 'r {
    response
        .headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// RFC 6455 §4.1's checks of the server's handshake, in its order.
fn verify(
    response: &httparse::Response<'_, '_>,
    accept_key: &str,
    offered: &[String],
) -> Result<(), UpgradeError> {
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| UpgradeError::Invalid(format!("invalid HTTP status {code}")))?;
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(UpgradeError::Status(status));
    }
    if response.version != Some(1) {
        return Err(UpgradeError::Refused(
            "the 101 response is not HTTP/1.1".into(),
        ));
    }
    let is = |name: &str, want: &str| {
        header(response, name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(want.as_bytes()))
        })
    };
    if !is("upgrade", "websocket") {
        return Err(UpgradeError::Refused(
            "the 101 response has no `Upgrade: websocket` header".into(),
        ));
    }
    if !is("connection", "upgrade") {
        return Err(UpgradeError::Refused(
            "the 101 response has no `Connection: upgrade` header".into(),
        ));
    }
    // Whatever the order: a proxy that adds a second Accept must not pass on the first one.
    let accepts = headers(response, "sec-websocket-accept").count();
    if accepts > 1 {
        return Err(UpgradeError::Refused(format!(
            "the 101 response has {accepts} Sec-WebSocket-Accept headers"
        )));
    }
    if header(response, "sec-websocket-accept") != Some(accept_key.as_bytes()) {
        return Err(UpgradeError::AcceptMismatch);
    }
    // The prober offers no extension (tungstenite implements none), so any selected one is
    // unoffered and its frames could not be read: §4.1 says fail the connection.
    if let Some(selected) = headers(response, "sec-websocket-extensions")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|e| e.trim_ascii())
        .find(|e| !e.is_empty())
    {
        return Err(UpgradeError::Refused(format!(
            "the server selected extension {:?}, which was not offered",
            String::from_utf8_lossy(selected)
        )));
    }
    match header(response, "sec-websocket-protocol") {
        None if !offered.is_empty() => Err(UpgradeError::Refused(
            "the server chose none of the subprotocols offered".into(),
        )),
        Some(_) if offered.is_empty() => Err(UpgradeError::Refused(
            "the server chose a subprotocol although none was offered".into(),
        )),
        Some(chosen) if !offered.iter().any(|p| p.as_bytes() == chosen) => {
            Err(UpgradeError::Refused(format!(
                "the server chose subprotocol {:?}, which was not offered",
                String::from_utf8_lossy(chosen)
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, offered: &[&str]) -> Result<(), UpgradeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        assert!(response.parse(raw.as_bytes()).unwrap().is_complete());
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        verify(&response, "KEY", &offered)
    }

    const OK: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: KEY\r\n";

    #[test]
    fn a_correct_response_passes_with_case_and_token_lists() {
        check(&format!("{OK}\r\n"), &[]).unwrap();
        check(
            &format!("{OK}Sec-WebSocket-Protocol: b\r\n\r\n"),
            &["a", "b"],
        )
        .unwrap();
    }

    #[test]
    fn each_rfc_check_refuses() {
        let cases = [
            ("HTTP/1.1 200 OK\r\n\r\n", "HTTP 200"),
            (
                "HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: KEY\r\n\r\n",
                "Upgrade: websocket",
            ),
            (
                "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: KEY\r\n\r\n",
                "Connection: upgrade",
            ),
            (
                "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: NOPE\r\n\r\n",
                "does not match",
            ),
            (
                &format!("{OK}Sec-WebSocket-Protocol: c\r\n\r\n"),
                "none was offered",
            ),
        ];
        for (raw, expected) in cases {
            let e = check(raw, &[]).unwrap_err().to_string();
            assert!(e.contains(expected), "{raw:?}: {e}");
        }
        let e = check(&format!("{OK}Sec-WebSocket-Protocol: c\r\n\r\n"), &["a"]).unwrap_err();
        assert!(e.to_string().contains("not offered"), "{e}");
        let e = check(&format!("{OK}\r\n"), &["a"]).unwrap_err();
        assert!(e.to_string().contains("none of the subprotocols"), "{e}");
    }

    #[test]
    fn the_request_carries_the_upgrade_headers_first_and_every_other_header() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = "ws://u:p@h:1/ws?token=t".into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", http::HeaderValue::from_static("Bearer b"));
        request.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static("v1"),
        );
        let (bytes, key) = request_bytes(&request).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /ws?token=t HTTP/1.1\r\nHost: h:1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        assert!(
            text.contains(&format!("Sec-WebSocket-Key: {key}\r\n")),
            "{text}"
        );
        assert!(text.contains("authorization: Bearer b\r\n"), "{text}");
        assert!(text.contains("Sec-WebSocket-Protocol: v1\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n") && !text.contains("u:p"),
            "{text}"
        );
    }

    #[test]
    fn an_unoffered_extension_is_refused() {
        for ext in [
            "permessage-deflate",
            "x-custom; a=1",
            ", permessage-deflate",
        ] {
            let e =
                check(&format!("{OK}Sec-WebSocket-Extensions: {ext}\r\n\r\n"), &[]).unwrap_err();
            assert!(matches!(e, UpgradeError::Refused(_)), "{ext}: {e:?}");
            assert!(e.to_string().contains("not offered"), "{e}");
        }
    }

    #[test]
    fn a_duplicated_accept_is_refused_in_either_order() {
        let base = "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        for accepts in [["KEY", "NOPE"], ["NOPE", "KEY"], ["KEY", "KEY"]] {
            let raw = format!(
                "{base}Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accepts[0], accepts[1]
            );
            let e = check(&raw, &[]).unwrap_err();
            assert!(
                e.to_string().contains("2 Sec-WebSocket-Accept"),
                "{accepts:?}: {e}"
            );
        }
    }

    #[test]
    fn a_refused_101_still_reports_status_101() {
        let no_upgrade =
            "HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: KEY\r\n\r\n";
        let wrong = "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: NOPE\r\n\r\n";
        for raw in [no_upgrade, wrong] {
            let e = check(raw, &[]).unwrap_err();
            assert_eq!(e.status(), Some(StatusCode::SWITCHING_PROTOCOLS), "{e:?}");
        }
        let e = check("HTTP/1.1 403 Forbidden\r\n\r\n", &[]).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    }
}
