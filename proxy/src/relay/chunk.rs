//! One direction's buffer: bytes `start..end` were read and are not forwarded yet.
//!
//! Plain indices over one allocation: `BytesMut`'s reserve and advance cost about 70
//! instructions per relayed message (BENCHMARKS.md, 9b). The zeroed (readable) part grows by
//! doubling up to the capacity only as reads fill it, so an idle connection keeps few pages
//! resident.

use std::io::{self, Read};

pub(super) struct Chunk {
    bytes: Vec<u8>,
    capacity: usize,
    start: usize,
    end: usize,
}

/// The least a direction's buffer holds, whatever `queue.buffer` says: room for the longest
/// incomplete frame head the parser leaves behind (139 bytes) and a read after it.
const MIN_CHUNK: usize = 256;
/// The zeroed part a buffer starts with.
const FIRST_CHUNK: usize = 4096;

impl Chunk {
    pub(super) fn new(capacity: usize, read_ahead: &[u8]) -> Self {
        let capacity = capacity.max(read_ahead.len()).max(MIN_CHUNK);
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(read_ahead);
        bytes.resize(read_ahead.len().max(FIRST_CHUNK.min(capacity)), 0);
        Self {
            bytes,
            capacity,
            start: 0,
            end: read_ahead.len(),
        }
    }

    /// Read and not yet consumed.
    pub(super) fn pending(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for the next read: the unconsumed rest (a few bytes of an incomplete frame) moves
    /// to the front first. A full buffer at capacity (only a drain lets that happen) is
    /// emptied.
    fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.bytes.len() {
            if self.bytes.len() < self.capacity {
                let grown = (self.bytes.len() * 2).min(self.capacity);
                self.bytes.resize(grown, 0);
            } else {
                self.end = 0;
            }
        }
        debug_assert!(self.end < self.bytes.len(), "a read needs room");
        &mut self.bytes[self.end..]
    }

    /// `n` bytes were read into [`Chunk::spare`].
    fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// One read from `src` into the spare room: the bytes read (0 at the end of the stream)
    /// and whether they filled it, so more may be waiting.
    pub(super) fn read_from(&mut self, src: &mut impl Read) -> io::Result<(usize, bool)> {
        let spare = self.spare();
        let room = spare.len();
        let n = src.read(spare)?;
        self.filled(n);
        Ok((n, n == room))
    }
}

#[cfg(test)]
mod tests {
    use super::Chunk;

    #[test]
    fn a_chunk_keeps_the_unconsumed_rest_in_front_of_the_next_read() {
        let mut c = Chunk::new(8192, b"abc");
        assert_eq!(c.pending(), b"abc");
        c.consume(2);
        let spare = c.spare();
        spare[..2].copy_from_slice(b"de");
        c.filled(2);
        assert_eq!(c.pending(), b"cde");
        c.consume(3);
        assert_eq!(c.pending(), b"");
        assert_eq!(c.spare().len(), 4096, "the zeroed part starts at 4 KiB");
    }

    #[test]
    fn a_chunk_grows_by_doubling_up_to_its_capacity_then_a_full_one_is_emptied() {
        let mut c = Chunk::new(10_000, b"");
        let mut seen = Vec::new();
        loop {
            let n = c.spare().len();
            c.filled(n);
            seen.push(c.pending().len());
            if c.pending().len() == 10_000 {
                break;
            }
        }
        assert_eq!(seen, [4096, 8192, 10_000]);
        // Full at capacity with nothing consumed (a drain): the next read starts over.
        assert_eq!(c.spare().len(), 10_000);
        assert_eq!(c.pending(), b"");
    }

    #[test]
    fn a_tiny_configured_buffer_still_has_room_after_an_incomplete_frame() {
        let mut c = Chunk::new(1, &[0u8; 139]);
        assert!(!c.spare().is_empty());
    }

    #[test]
    fn a_read_says_whether_it_filled_the_room() {
        let mut c = Chunk::new(256, b"");
        let mut short: &[u8] = b"hello";
        assert_eq!(c.read_from(&mut short).unwrap(), (5, false));
        let mut long: &[u8] = &[7u8; 1000];
        assert_eq!(c.read_from(&mut long).unwrap(), (251, true));
        assert_eq!(c.pending().len(), 256);
    }
}
