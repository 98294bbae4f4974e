//! Raw WebSocket frames (RFC 6455 §5.2), for sending what no well-behaved library will:
//! reserved bits, bad opcodes, unmasked client frames, lying lengths.

/// FIN bit of the first byte.
pub const FIN: u8 = 0x80;
/// RSV1 bit of the first byte (permessage-deflate's flag).
pub const RSV1: u8 = 0x40;
/// Opcodes.
pub const CONTINUATION: u8 = 0x0;
/// Text frame opcode.
pub const TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const BINARY: u8 = 0x2;
/// Close frame opcode.
pub const CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const PING: u8 = 0x9;
/// Pong frame opcode.
pub const PONG: u8 = 0xA;

/// One frame: `first` is the FIN/RSV/opcode byte; the length takes its shortest form; with
/// `mask` (a client frame) the payload is masked with that key.
pub fn encode(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend_from_slice(&length_header(payload.len() as u64, mask.is_some()));
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The second byte and extended length of a frame carrying `len` bytes.
pub fn length_header(len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = Vec::with_capacity(9);
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u64::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_their_shortest_form_and_masks_apply() {
        assert_eq!(encode(FIN | TEXT, None, b"hi"), [0x81, 2, b'h', b'i']);
        assert_eq!(encode(FIN | BINARY, None, &[0; 126])[1..4], [126, 0, 126]);
        assert_eq!(
            encode(FIN | BINARY, None, &[0; 65536])[1..10],
            [127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        let key = [1, 2, 3, 4];
        assert_eq!(
            encode(FIN | TEXT, Some(key), b"ab"),
            [0x81, 0x82, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2]
        );
    }
}
