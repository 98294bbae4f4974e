//! A hand-rolled WebSocket client over raw TCP, for sending what no well-behaved library will:
//! unmasked frames, reserved bits, bad opcodes, lying length headers, invalid UTF-8.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(unused_imports)] // each test binary uses some of them
pub use wsmon_testkit::frame::{
    BINARY as OP_BINARY, CLOSE as OP_CLOSE, CONTINUATION as OP_CONTINUATION, PING as OP_PING,
    TEXT as OP_TEXT,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The upgrade request for `path`, as a client would send it.
pub fn upgrade_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Connects and completes the upgrade by hand; the stream is positioned at the first frame.
pub async fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
    tcp.write_all(upgrade_request(addr, path).as_bytes())
        .await
        .unwrap();
    // Byte by byte, so no frame bytes after the headers are swallowed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte))
            .await
            .expect("upgrade response in time")
            .expect("read upgrade response");
        assert_eq!(n, 1, "server closed during the upgrade: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    tcp
}

/// One frame. `rsv` holds the three reserved bits in its low bits; `mask` is what every
/// client must do and what the hostile cases leave out.
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: bool, payload: &[u8]) -> Vec<u8> {
    let first = (u8::from(fin) << 7) | ((rsv & 0b111) << 4) | (opcode & 0x0f);
    wsmon_testkit::frame::encode(first, mask.then_some(MASK), payload)
}

/// A well-formed masked client frame.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, true, payload)
}

/// A masked binary frame header that claims `len` payload bytes, with none following.
pub fn header_claiming(len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | OP_BINARY];
    out.extend_from_slice(&wsmon_testkit::frame::length_header(len, true));
    out.extend_from_slice(&MASK);
    out
}

/// How the server ended the connection, as seen by the raw client.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerEnd {
    /// A close frame with this code (`None` when it carried no code).
    Close(Option<u16>),
    /// EOF or reset with no close frame.
    Dropped,
}

/// Reads server frames until a close frame or the end of the connection (at most 5 s).
pub async fn read_until_close(tcp: &mut TcpStream) -> ServerEnd {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut head = [0u8; 2];
            if tcp.read_exact(&mut head).await.is_err() {
                return ServerEnd::Dropped;
            }
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    if tcp.read_exact(&mut b).await.is_err() {
                        return ServerEnd::Dropped;
                    }
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    if tcp.read_exact(&mut b).await.is_err() {
                        return ServerEnd::Dropped;
                    }
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            assert!(!masked, "a server must not mask its frames");
            let mut payload = vec![0u8; len];
            if tcp.read_exact(&mut payload).await.is_err() {
                return ServerEnd::Dropped;
            }
            if opcode == OP_CLOSE {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                return ServerEnd::Close(code);
            }
        }
    })
    .await
    .expect("the server ends the connection within 5 s")
}
