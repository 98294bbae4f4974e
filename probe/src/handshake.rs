//! The client side of the WebSocket upgrade (RFC 6455 §4.1), with tungstenite's request
//! builder and key derivation but our own response read.
//!
//! Why not `tokio_tungstenite::client_async`: it reads the response through a 4 KiB buffer and
//! then keeps that buffer as the connection's read buffer for the stream's whole life. For a
//! prober holding ten thousand quiet canaries that one buffer was the largest thing each canary
//! owned. Here the response is read into a scratch buffer that is freed once the upgrade is
//! done, and the socket starts with the small read buffer its config asks for.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_request;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::canary::{Io, Socket};

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
    #[error("Sec-WebSocket-Accept does not match the key sent")]
    AcceptMismatch,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Sends the upgrade `request` on `stream` and checks the response; returns the socket and the
/// response status (always 101).
pub async fn upgrade(
    mut stream: Box<dyn Io>,
    request: http::Request<()>,
    config: WebSocketConfig,
) -> Result<(Socket, StatusCode), UpgradeError> {
    let offered = offered_subprotocols(&request);
    let (bytes, key) =
        generate_request(request).map_err(|e| UpgradeError::Invalid(format!("request: {e}")))?;
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
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
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
        return Err(UpgradeError::Invalid(
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
        return Err(UpgradeError::Invalid(
            "the 101 response has no `Upgrade: websocket` header".into(),
        ));
    }
    if !is("connection", "upgrade") {
        return Err(UpgradeError::Invalid(
            "the 101 response has no `Connection: upgrade` header".into(),
        ));
    }
    if header(response, "sec-websocket-accept") != Some(accept_key.as_bytes()) {
        return Err(UpgradeError::AcceptMismatch);
    }
    match header(response, "sec-websocket-protocol") {
        None if !offered.is_empty() => Err(UpgradeError::Invalid(
            "the server chose none of the subprotocols offered".into(),
        )),
        Some(_) if offered.is_empty() => Err(UpgradeError::Invalid(
            "the server chose a subprotocol although none was offered".into(),
        )),
        Some(chosen) if !offered.iter().any(|p| p.as_bytes() == chosen) => {
            Err(UpgradeError::Invalid(format!(
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
}
