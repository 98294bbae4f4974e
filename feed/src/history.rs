//! The bounded in-memory history of recent messages that `GET /ws?from=N` replays from.
//!
//! Rules, kept by [`History::push`] and relied on by the resume path:
//! - entries are contiguous: each one's sequence is its predecessor's plus one. A message
//!   that does not follow the newest entry (a hole in the stream) restarts the history at
//!   that message, so "covered" always means "nothing missing";
//! - at most `capacity` entries are kept; the oldest goes first;
//! - a capacity of 0 keeps nothing (every resume is then answered from Redis, or missed).

use std::collections::VecDeque;
use std::time::SystemTime;

use axum::extract::ws::Utf8Bytes;

/// One sequenced message as it goes on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) published: SystemTime,
    /// Shared with every subscriber's queue: replaying clones a reference, not the text.
    pub(crate) text: Utf8Bytes,
}

/// Where a resume point stands against the history.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// Every message after the resume point is here (possibly none).
    Covered,
    /// The resume point is older than the oldest entry: messages `from+1 .. oldest` are gone.
    Behind { oldest: u64 },
    /// The resume point is newer than the newest message this history knows (`head`).
    Ahead { head: u64 },
}

#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<Entry>,
    capacity: usize,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        if self.capacity == 0 {
            return;
        }
        if self
            .entries
            .back()
            .is_some_and(|last| last.seq + 1 != entry.seq)
        {
            self.entries.clear();
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Where `from` stands, given the newest sequence `head` (which the history may not hold
    /// when its capacity is 0).
    pub(crate) fn coverage(&self, from: u64, head: u64) -> Coverage {
        if from > head {
            return Coverage::Ahead { head };
        }
        if from == head {
            return Coverage::Covered;
        }
        match self.entries.front() {
            Some(first) if first.seq <= from + 1 && self.newest() == Some(head) => {
                Coverage::Covered
            }
            Some(first) if self.newest() == Some(head) => Coverage::Behind { oldest: first.seq },
            // Empty (or not reaching the head): nothing after `from` is here.
            _ => Coverage::Behind { oldest: head + 1 },
        }
    }

    fn newest(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// The entries after `from`, oldest first (cheap clones of shared text).
    pub(crate) fn after(&self, from: u64) -> Vec<Entry> {
        let Some(first) = self.entries.front() else {
            return Vec::new();
        };
        let skip = (from + 1).saturating_sub(first.seq) as usize;
        self.entries.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            published: SystemTime::UNIX_EPOCH,
            text: Utf8Bytes::from(seq.to_string()),
        }
    }

    fn filled(capacity: usize, seqs: impl IntoIterator<Item = u64>) -> History {
        let mut h = History::new(capacity);
        seqs.into_iter().for_each(|s| h.push(entry(s)));
        h
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_resume_point_inside_the_history_replays_everything_after_it() {
        let h = filled(10, 1..=5);
        assert_eq!(h.coverage(2, 5), Coverage::Covered);
        assert_eq!(seqs(&h.after(2)), [3, 4, 5]);
        assert_eq!(h.coverage(0, 5), Coverage::Covered);
        assert_eq!(seqs(&h.after(0)), [1, 2, 3, 4, 5]);
        assert_eq!(h.coverage(5, 5), Coverage::Covered);
        assert!(h.after(5).is_empty());
    }

    #[test]
    fn the_oldest_entries_go_first_and_an_older_resume_point_is_behind() {
        let h = filled(3, 1..=10);
        assert_eq!(seqs(&h.after(0)), [8, 9, 10]);
        assert_eq!(h.coverage(7, 10), Coverage::Covered);
        assert_eq!(h.coverage(6, 10), Coverage::Behind { oldest: 8 });
    }

    #[test]
    fn a_resume_point_past_the_head_is_ahead() {
        let h = filled(3, 1..=4);
        assert_eq!(h.coverage(5, 4), Coverage::Ahead { head: 4 });
    }

    #[test]
    fn a_hole_restarts_the_history_so_coverage_never_spans_a_gap() {
        let h = filled(10, [1, 2, 3, 7, 8]);
        assert_eq!(seqs(&h.after(0)), [7, 8]);
        assert_eq!(h.coverage(2, 8), Coverage::Behind { oldest: 7 });
        assert_eq!(h.coverage(6, 8), Coverage::Covered);
    }

    #[test]
    fn an_empty_or_disabled_history_covers_only_the_head() {
        let h = filled(0, 1..=4);
        assert_eq!(h.coverage(4, 4), Coverage::Covered);
        assert_eq!(h.coverage(3, 4), Coverage::Behind { oldest: 5 });
        assert_eq!(History::new(5).coverage(0, 0), Coverage::Covered);
    }
}
