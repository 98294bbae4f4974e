//! Sequence tracking: gaps, reorders and duplicates in a stream's sequence numbers.

use std::collections::VecDeque;

/// Counters changed by one observation, to be added to metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceDelta {
    pub gaps: u64,
    pub missed: u64,
    pub duplicates: u64,
    pub reorders: u64,
}

impl SequenceDelta {
    /// Saturating: a server jumping from 0 to u64::MAX twice must not overflow the totals.
    fn add(&mut self, other: SequenceDelta) {
        self.gaps = self.gaps.saturating_add(other.gaps);
        self.missed = self.missed.saturating_add(other.missed);
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
        self.reorders = self.reorders.saturating_add(other.reorders);
    }
}

#[derive(Debug, Clone)]
struct PendingGap {
    /// Missing sequences `start..=end`.
    start: u64,
    end: u64,
    /// Late arrivals inside the range; at most `reorder_window` of them.
    filled: Vec<u64>,
    /// Messages seen since the gap opened.
    age: u32,
}

impl PendingGap {
    fn remaining(&self) -> u64 {
        self.end - self.start + 1 - self.filled.len() as u64
    }
}

/// Confirmed-missing ranges remembered so that a very late arrival is a reorder, not a duplicate.
const REMEMBERED_MISSING: usize = 64;

/// Tracks a stream's sequence numbers.
///
/// - A skip opens a *pending* gap; messages that fill it within `reorder_window` further
///   messages count as reorders, and a gap filled completely is no gap.
/// - A gap is confirmed (counted once, with its unfilled size added to `missed`) when the window
///   passes or the stream ends ([`SequenceTracker::flush`]).
/// - A sequence at or below the highest seen that fills nothing is a duplicate.
/// - After a reconnect without resume, [`SequenceTracker::new_baseline`] makes the next sequence
///   a fresh start; with resume the tracker simply continues, so the replay must fill the hole
///   exactly and anything replayed twice is a duplicate.
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    reorder_window: u32,
    highest: Option<u64>,
    pending: VecDeque<PendingGap>,
    missing: VecDeque<(u64, u64)>,
    totals: SequenceDelta,
}

impl SequenceTracker {
    pub fn new(reorder_window: u32) -> Self {
        Self {
            reorder_window,
            highest: None,
            pending: VecDeque::new(),
            missing: VecDeque::new(),
            totals: SequenceDelta::default(),
        }
    }

    /// The highest sequence received, used for `{{last_seq}}` and head lag.
    pub fn last(&self) -> Option<u64> {
        self.highest
    }

    pub fn totals(&self) -> SequenceDelta {
        self.totals
    }

    pub fn observe(&mut self, seq: u64) -> SequenceDelta {
        let mut delta = SequenceDelta::default();
        for gap in &mut self.pending {
            gap.age = gap.age.saturating_add(1);
        }
        match self.highest {
            None => self.highest = Some(seq),
            // checked: a server may count up to u64::MAX, and the next step must not panic.
            Some(h) if h.checked_add(1) == Some(seq) => self.highest = Some(seq),
            Some(h) if seq > h => {
                self.pending.push_back(PendingGap {
                    start: h + 1,
                    end: seq - 1,
                    filled: Vec::new(),
                    age: 0,
                });
                self.highest = Some(seq);
            }
            Some(_) => {
                if let Some(gap) = self
                    .pending
                    .iter_mut()
                    .find(|g| (g.start..=g.end).contains(&seq))
                {
                    if gap.filled.contains(&seq) {
                        delta.duplicates += 1;
                    } else {
                        gap.filled.push(seq);
                        delta.reorders += 1;
                    }
                } else if self.missing.iter().any(|(s, e)| (*s..=*e).contains(&seq)) {
                    delta.reorders += 1;
                    self.missing
                        .retain(|(s, e)| !(*s..=*e).contains(&seq) || s != e);
                } else {
                    delta.duplicates += 1;
                }
            }
        }
        // A completely filled gap was only a reordering.
        self.pending.retain(|g| g.remaining() > 0);
        let window = self.reorder_window;
        while self.pending.front().is_some_and(|g| g.age >= window) {
            let gap = self.pending.pop_front().expect("checked");
            delta.add(self.confirm(gap));
        }
        self.totals.add(delta);
        delta
    }

    fn confirm(&mut self, gap: PendingGap) -> SequenceDelta {
        if self.missing.len() == REMEMBERED_MISSING {
            self.missing.pop_front();
        }
        self.missing.push_back((gap.start, gap.end));
        SequenceDelta {
            gaps: 1,
            missed: gap.remaining(),
            ..SequenceDelta::default()
        }
    }

    /// Confirms every pending gap: the stream ended, so nothing more can fill them.
    pub fn flush(&mut self) -> SequenceDelta {
        let mut delta = SequenceDelta::default();
        while let Some(gap) = self.pending.pop_front() {
            delta.add(self.confirm(gap));
        }
        self.totals.add(delta);
        delta
    }

    /// After a reconnect without resume: pending gaps are confirmed, and the next sequence
    /// is a new baseline rather than a gap.
    pub fn new_baseline(&mut self) -> SequenceDelta {
        let delta = self.flush();
        self.highest = None;
        self.missing.clear();
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(window: u32, seqs: &[u64]) -> SequenceTracker {
        let mut t = SequenceTracker::new(window);
        for s in seqs {
            t.observe(*s);
        }
        t
    }

    fn totals(window: u32, seqs: &[u64]) -> (u64, u64, u64, u64) {
        let mut t = run(window, seqs);
        t.flush();
        let d = t.totals();
        (d.gaps, d.missed, d.duplicates, d.reorders)
    }

    #[test]
    fn consecutive_sequences_have_no_faults() {
        assert_eq!(totals(4, &[5, 6, 7, 8]), (0, 0, 0, 0));
    }

    #[test]
    fn the_first_sequence_is_a_baseline_not_a_gap() {
        assert_eq!(totals(4, &[1000, 1001]), (0, 0, 0, 0));
    }

    #[test]
    fn a_gap_is_counted_once_with_its_size_in_missed() {
        assert_eq!(totals(0, &[1, 2, 6, 7]), (1, 3, 0, 0));
        assert_eq!(totals(4, &[1, 2, 6, 7]), (1, 3, 0, 0));
    }

    #[test]
    fn missed_messages_sum_over_gaps() {
        assert_eq!(totals(0, &[1, 3, 4, 10, 11, 13]), (3, 1 + 5 + 1, 0, 0));
    }

    #[test]
    fn a_gap_is_confirmed_after_the_reorder_window() {
        let mut t = SequenceTracker::new(2);
        assert_eq!(t.observe(1).gaps, 0);
        assert_eq!(t.observe(3).gaps, 0);
        assert_eq!(t.observe(4).gaps, 0);
        let d = t.observe(5);
        assert_eq!((d.gaps, d.missed), (1, 1));
        assert_eq!(t.flush(), SequenceDelta::default(), "counted once");
    }

    #[test]
    fn a_late_fill_within_the_window_is_a_reorder_not_a_gap() {
        assert_eq!(totals(4, &[1, 2, 4, 3, 5]), (0, 0, 0, 1));
        assert_eq!(totals(4, &[1, 5, 3, 2, 4, 6]), (0, 0, 0, 3));
    }

    #[test]
    fn a_partly_filled_gap_counts_what_stayed_missing() {
        assert_eq!(totals(4, &[1, 5, 3, 6]), (1, 2, 0, 1));
    }

    #[test]
    fn a_fill_after_confirmation_is_a_reorder() {
        assert_eq!(totals(0, &[1, 3, 2]), (1, 1, 0, 1));
    }

    #[test]
    fn a_repeated_sequence_is_a_duplicate() {
        assert_eq!(totals(4, &[1, 2, 2, 3, 1]), (0, 0, 2, 0));
    }

    #[test]
    fn a_repeated_late_fill_is_a_duplicate() {
        assert_eq!(totals(4, &[1, 3, 2, 2, 4]), (0, 0, 1, 1));
    }

    #[test]
    fn reconnect_without_resume_starts_a_new_baseline() {
        let mut t = run(4, &[1, 2, 3]);
        t.new_baseline();
        t.observe(50);
        t.observe(51);
        t.flush();
        assert_eq!(t.totals(), SequenceDelta::default());
        assert_eq!(t.last(), Some(51));
    }

    #[test]
    fn new_baseline_confirms_pending_gaps() {
        let mut t = run(4, &[1, 4]);
        let d = t.new_baseline();
        assert_eq!((d.gaps, d.missed), (1, 2));
    }

    #[test]
    fn resume_replay_that_fills_exactly_is_clean() {
        // Held 1..=3, reconnected with resume from 3, the server replays 4.. onwards.
        assert_eq!(totals(4, &[1, 2, 3, 4, 5, 6]), (0, 0, 0, 0));
    }

    #[test]
    fn resume_replay_from_too_early_counts_duplicates() {
        // Resumed from 3, but the server replays from 2.
        assert_eq!(totals(4, &[1, 2, 3, 2, 3, 4, 5]), (0, 0, 2, 0));
    }

    #[test]
    fn resume_replay_that_starts_late_is_a_gap() {
        assert_eq!(totals(4, &[1, 2, 3, 6, 7, 8, 9, 10]), (1, 2, 0, 0));
    }

    #[test]
    fn remembered_missing_ranges_are_bounded() {
        let mut t = SequenceTracker::new(0);
        for i in 0..1000u64 {
            t.observe(i * 2);
        }
        assert!(t.missing.len() <= REMEMBERED_MISSING);
        assert_eq!(t.totals().gaps, 999);
    }
}
