//! What the socket wrapper needs to know about a message and an error, for both axum's and
//! tungstenite's types.

use tokio_tungstenite::tungstenite;

/// The `frame_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// A text message.
    Text = 0,
    /// A binary message.
    Binary = 1,
    /// A ping.
    Ping = 2,
    /// A pong.
    Pong = 3,
    /// A close frame.
    Close = 4,
}

impl FrameType {
    /// The `frame_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Text => "text",
            FrameType::Binary => "binary",
            FrameType::Ping => "ping",
            FrameType::Pong => "pong",
            FrameType::Close => "close",
        }
    }

    /// Text or binary: a message that carries application data.
    pub fn is_data(self) -> bool {
        matches!(self, FrameType::Text | FrameType::Binary)
    }
}

/// A WebSocket message type the wrapper can instrument: axum's and tungstenite's `Message`.
/// Sealed: wsmon implements it for those two only.
pub trait WsMessage: Sized + crate::sealed::Sealed {
    /// `None` for raw frames that are not messages.
    fn frame_type(&self) -> Option<FrameType>;
    /// The payload: data for text/binary, application data for ping/pong.
    fn payload(&self) -> &[u8];
    /// For a close message, its code (1005 when the frame carried none).
    fn close_code(&self) -> Option<u16>;
    /// A ping carrying `payload` (the heartbeat's nonce).
    fn ping(payload: [u8; 8]) -> Self;
    /// A close frame with `code` and `reason`.
    fn close(code: u16, reason: &'static str) -> Self;
}

/// How an error from the underlying stream ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer sent a message over the size limit: close with 1009.
    MessageTooBig,
    /// Text that is not UTF-8: close with 1007.
    InvalidPayload,
    /// A protocol violation: close with 1002.
    Protocol,
    /// Transport failure or already closed: nothing to send.
    Transport,
}

impl ErrorKind {
    /// The close code the server answers this error with, if any.
    pub fn close_code(self) -> Option<u16> {
        match self {
            ErrorKind::MessageTooBig => Some(crate::close_code::MESSAGE_TOO_BIG),
            ErrorKind::InvalidPayload => Some(1007),
            ErrorKind::Protocol => Some(crate::close_code::PROTOCOL_ERROR),
            ErrorKind::Transport => None,
        }
    }
}

/// An error type the wrapper can classify: axum's and tungstenite's. Sealed.
pub trait WsError: crate::sealed::Sealed {
    /// How this error ends the connection.
    fn kind(&self) -> ErrorKind;
}

impl crate::sealed::Sealed for tungstenite::Message {}
impl crate::sealed::Sealed for tungstenite::Error {}

impl WsMessage for tungstenite::Message {
    fn frame_type(&self) -> Option<FrameType> {
        use tungstenite::Message::*;
        Some(match self {
            Text(_) => FrameType::Text,
            Binary(_) => FrameType::Binary,
            Ping(_) => FrameType::Ping,
            Pong(_) => FrameType::Pong,
            Close(_) => FrameType::Close,
            Frame(_) => return None,
        })
    }

    fn payload(&self) -> &[u8] {
        use tungstenite::Message::*;
        match self {
            Text(t) => t.as_bytes(),
            Binary(b) | Ping(b) | Pong(b) => b,
            Close(_) | Frame(_) => &[],
        }
    }

    fn close_code(&self) -> Option<u16> {
        match self {
            tungstenite::Message::Close(frame) => Some(
                frame
                    .as_ref()
                    .map_or(crate::close_code::NO_STATUS, |f| u16::from(f.code)),
            ),
            _ => None,
        }
    }

    fn ping(payload: [u8; 8]) -> Self {
        tungstenite::Message::Ping(bytes::Bytes::copy_from_slice(&payload))
    }

    fn close(code: u16, reason: &'static str) -> Self {
        tungstenite::Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: tungstenite::Utf8Bytes::from_static(reason),
        }))
    }
}

impl WsError for tungstenite::Error {
    fn kind(&self) -> ErrorKind {
        use tungstenite::Error::*;
        match self {
            Capacity(_) => ErrorKind::MessageTooBig,
            Utf8(_) => ErrorKind::InvalidPayload,
            Protocol(p) => match p {
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake => {
                    ErrorKind::Transport
                }
                _ => ErrorKind::Protocol,
            },
            _ => ErrorKind::Transport,
        }
    }
}

#[cfg(feature = "axum")]
mod axum_impls {
    use super::*;
    use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};

    impl crate::sealed::Sealed for Message {}
    impl crate::sealed::Sealed for axum::Error {}

    impl WsMessage for Message {
        fn frame_type(&self) -> Option<FrameType> {
            Some(match self {
                Message::Text(_) => FrameType::Text,
                Message::Binary(_) => FrameType::Binary,
                Message::Ping(_) => FrameType::Ping,
                Message::Pong(_) => FrameType::Pong,
                Message::Close(_) => FrameType::Close,
            })
        }

        fn payload(&self) -> &[u8] {
            match self {
                Message::Text(t) => t.as_str().as_bytes(),
                Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
                Message::Close(_) => &[],
            }
        }

        fn close_code(&self) -> Option<u16> {
            match self {
                Message::Close(frame) => Some(
                    frame
                        .as_ref()
                        .map_or(crate::close_code::NO_STATUS, |f| f.code),
                ),
                _ => None,
            }
        }

        fn ping(payload: [u8; 8]) -> Self {
            Message::Ping(bytes::Bytes::copy_from_slice(&payload))
        }

        fn close(code: u16, reason: &'static str) -> Self {
            Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }))
        }
    }

    impl WsError for axum::Error {
        fn kind(&self) -> ErrorKind {
            // axum wraps tungstenite's error; classify the original.
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                std::error::Error::source(self);
            while let Some(err) = source {
                if let Some(t) = err.downcast_ref::<tungstenite::Error>() {
                    return t.kind();
                }
                source = err.source();
            }
            ErrorKind::Transport
        }
    }
}
