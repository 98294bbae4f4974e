//! The measurement rules, free of I/O: sequence tracking, stalls, freshness, nonces and the
//! verdict. The canary feeds these with receive times; everything here is tested without sockets.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::config::TimeUnit;
use crate::failure::FailureReason;

/// How a canary keeps latency samples for its quantiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Every sample of a bounded check (`once`, `/probe`), to 3 significant digits.
    WholeRun,
    /// The latest [`RECENT_SAMPLES`] of a canary held indefinitely (`daemon`). A histogram
    /// costs kilobytes per canary; Prometheus keeps the long-run distribution anyway, and the
    /// status page wants how the stream is doing now.
    Recent,
}

/// Samples kept per measure under [`Retention::Recent`]; also the sparkline's length.
pub const RECENT_SAMPLES: usize = 60;

/// Quantiles of [`LatencyStats`], in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Samples recorded in all, including those no longer in a recent window.
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

const MAX_MICROS: u64 = 3_600_000_000;

/// A latency measure with microsecond resolution. Allocates nothing until its first sample.
#[derive(Debug, Clone)]
pub struct LatencyStats {
    count: u64,
    samples: Samples,
}

#[derive(Debug, Clone)]
enum Samples {
    /// Auto-resizing, so it grows only to the range actually recorded.
    WholeRun(Option<Box<Histogram<u32>>>),
    /// Oldest first, in seconds.
    Recent(VecDeque<f32>),
}

impl LatencyStats {
    pub fn new(retention: Retention) -> Self {
        let samples = match retention {
            Retention::WholeRun => Samples::WholeRun(None),
            Retention::Recent => Samples::Recent(VecDeque::new()),
        };
        Self { count: 0, samples }
    }

    pub fn record(&mut self, d: Duration) {
        self.count = self.count.saturating_add(1);
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        match &mut self.samples {
            Samples::WholeRun(h) => {
                let h = h.get_or_insert_with(|| {
                    Box::new(Histogram::new(3).expect("3 significant digits is valid"))
                });
                // `record` grows the histogram; the saturating form would clamp instead.
                if h.record(us).is_err() {
                    h.saturating_record(us);
                }
            }
            Samples::Recent(window) => {
                if window.len() == RECENT_SAMPLES {
                    window.pop_front();
                }
                window.push_back(us as f32 / 1e6);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The recent samples in seconds, oldest first; empty under [`Retention::WholeRun`].
    pub fn recent(&self) -> Vec<f64> {
        match &self.samples {
            Samples::Recent(window) => window.iter().map(|&s| f64::from(s)).collect(),
            Samples::WholeRun(_) => Vec::new(),
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let secs = |us: u64| us as f64 / 1e6;
        match &self.samples {
            Samples::WholeRun(Some(h)) if !h.is_empty() => LatencySummary {
                count: self.count,
                p50: secs(h.value_at_quantile(0.5)),
                p99: secs(h.value_at_quantile(0.99)),
                max: secs(h.max()),
            },
            Samples::Recent(window) if !window.is_empty() => {
                let mut sorted: Vec<f64> = window.iter().map(|&s| f64::from(s)).collect();
                sorted.sort_by(f64::total_cmp);
                // Nearest rank, as hdrhistogram reports it.
                let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1];
                LatencySummary {
                    count: self.count,
                    p50: rank(0.5),
                    p99: rank(0.99),
                    max: sorted[sorted.len() - 1],
                }
            }
            _ => LatencySummary::default(),
        }
    }
}

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

/// Detects silences longer than `max_silence`, once per silence.
///
/// The silence clock starts at the first data message: until then `first_payload_within`
/// governs, so a slow first message is `first_payload_timeout`, never `stall`.
#[derive(Debug, Clone)]
pub struct StallDetector {
    max_silence: Duration,
    /// `None` until the first data message.
    last_message: Option<Instant>,
    stalled: bool,
}

impl StallDetector {
    pub fn new(max_silence: Duration) -> Self {
        Self {
            max_silence,
            last_message: None,
            stalled: false,
        }
    }

    /// A message arrived; starts the silence clock, or restarts it and ends any stall.
    pub fn on_message(&mut self, now: Instant) {
        self.last_message = Some(now);
        self.stalled = false;
    }

    /// True exactly once when a silence crosses `max_silence`.
    pub fn poll(&mut self, now: Instant) -> bool {
        let Some(last) = self.last_message else {
            return false;
        };
        if !self.stalled && now.saturating_duration_since(last) > self.max_silence {
            self.stalled = true;
            return true;
        }
        false
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// When the current silence becomes a stall; `None` before the first message or while
    /// stalled.
    pub fn deadline(&self) -> Option<Instant> {
        let last = self.last_message.filter(|_| !self.stalled)?;
        Some(last + self.max_silence + Duration::from_millis(1))
    }
}

/// Reads an unsigned sequence (a JSON number or numeric string) at `pointer`.
pub fn u64_at(value: &Value, pointer: &str) -> Option<u64> {
    sequence_at(value, pointer).ok().flatten()
}

/// The sequence at `pointer`: `Ok(None)` when absent, `Err` (saying what was found) when
/// present but not an unsigned 64-bit integer, so a broken sequence is reported, not ignored.
pub fn sequence_at(value: &Value, pointer: &str) -> Result<Option<u64>, InvalidSequence> {
    let Some(found) = value.pointer(pointer) else {
        return Ok(None);
    };
    let seq = match found {
        Value::Number(n) => n.as_u64().or_else(|| {
            // 2^64 as f64: anything at or above it would saturate silently.
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 18_446_744_073_709_551_616.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    seq.map(Some)
        .ok_or_else(|| InvalidSequence::describe(found))
}

/// What stood where a sequence number should be (kind and a short preview, never a label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSequence(pub String);

impl InvalidSequence {
    const PREVIEW_CHARS: usize = 32;

    fn describe(found: &Value) -> Self {
        let kind = match found {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number that is not an unsigned 64-bit integer",
            Value::String(_) => "a string that is not an unsigned 64-bit integer",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        let preview: String = found
            .to_string()
            .chars()
            .take(Self::PREVIEW_CHARS)
            .collect();
        Self(format!("{kind} ({preview})"))
    }
}

/// Why a message was not measured as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRefusal {
    /// Not JSON at all: such messages count but are not otherwise measured.
    NotJson,
    /// Nested past serde_json's recursion limit (128): refused without deep recursion.
    TooDeep,
}

/// Parses a message for measurement. Parsing is bounded twice over: the message is already
/// capped at `max_message_bytes`, and serde_json refuses nesting deeper than 128.
pub fn parse_json(text: &str) -> Result<Value, JsonRefusal> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json has no public error code for this; its message is stable.
        if e.to_string().starts_with("recursion limit exceeded") {
            JsonRefusal::TooDeep
        } else {
            JsonRefusal::NotJson
        }
    })
}

/// Counts events in one-second windows and says when a window exceeds `limit`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limit: u32,
    window_start: Instant,
    count: u32,
}

impl RateLimit {
    pub fn new(limit: u32, now: Instant) -> Self {
        Self {
            limit,
            window_start: now,
            count: 0,
        }
    }

    /// Records one event at `now`; true when it is over the limit of its window.
    pub fn exceeded(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count > self.limit
    }
}

/// Reads the value at `pointer` as text, for nonce and reply matching.
pub fn text_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Receive time minus the server's timestamp at `pointer`, in seconds. Negative when the
/// server's clock is ahead of ours: freshness from a server timestamp includes clock skew.
pub fn freshness_seconds(
    received: SystemTime,
    value: &Value,
    pointer: &str,
    unit: TimeUnit,
) -> Option<f64> {
    let ts = match value.pointer(pointer)? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    let ts_secs = match unit {
        TimeUnit::Seconds => ts,
        TimeUnit::Millis => ts / 1e3,
        TimeUnit::Micros => ts / 1e6,
        TimeUnit::Nanos => ts / 1e9,
    };
    let now = received.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    let f = now - ts_secs;
    f.is_finite().then_some(f)
}

/// Nonces published and not yet seen on the stream.
#[derive(Debug, Default)]
pub struct NonceTracker {
    pending: HashMap<String, Instant>,
}

impl NonceTracker {
    pub fn published(&mut self, nonce: String, at: Instant) {
        self.pending.insert(nonce, at);
    }

    /// The publish-to-receive time if `nonce` was ours and still pending.
    pub fn observe(&mut self, nonce: &str, received: Instant) -> Option<Duration> {
        self.pending
            .remove(nonce)
            .map(|at| received.saturating_duration_since(at))
    }

    /// Drops a nonce whose publish failed, so that it does not time out later as well;
    /// `false` if it was not pending (it arrived or expired already).
    pub fn forget(&mut self, nonce: &str) -> bool {
        self.pending.remove(nonce).is_some()
    }

    /// Drops nonces older than `timeout`; returns how many timed out.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let before = self.pending.len();
        self.pending
            .retain(|_, at| now.saturating_duration_since(*at) <= timeout);
        before - self.pending.len()
    }

    /// When the oldest pending nonce times out.
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.pending
            .values()
            .min()
            .map(|at| *at + timeout + Duration::from_millis(1))
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// One fault, with a human detail that may contain server-supplied text.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub reason: FailureReason,
    pub detail: String,
}

impl Fault {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The run's verdict: the first fault wins; later faults are counted but do not replace it.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    first: Option<Fault>,
}

impl Verdict {
    /// Records a fault; returns true if it became the verdict.
    pub fn fault(&mut self, reason: FailureReason, detail: impl Into<String>) -> bool {
        if self.first.is_some() {
            return false;
        }
        self.first = Some(Fault {
            reason,
            detail: detail.into(),
        });
        true
    }

    pub fn first(&self) -> Option<&Fault> {
        self.first.as_ref()
    }

    pub fn success(&self) -> bool {
        self.first.is_none()
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

    #[test]
    fn a_stall_is_reported_once_per_silence() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(Duration::from_secs(1));
        s.on_message(t0);
        assert!(!s.poll(t0 + Duration::from_millis(999)));
        assert!(s.poll(t0 + Duration::from_millis(1001)));
        assert!(!s.poll(t0 + Duration::from_secs(5)), "same silence");
        assert!(s.is_stalled());
        s.on_message(t0 + Duration::from_secs(6));
        assert!(!s.is_stalled());
        assert!(s.poll(t0 + Duration::from_millis(7001)), "a new silence");
    }

    #[test]
    fn the_silence_clock_starts_at_the_first_message() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(Duration::from_secs(1));
        assert!(
            !s.poll(t0 + Duration::from_secs(60)),
            "no message yet: not a stall"
        );
        assert_eq!(s.deadline(), None);
        s.on_message(t0 + Duration::from_secs(3));
        assert!(!s.poll(t0 + Duration::from_millis(3999)));
        assert!(s.poll(t0 + Duration::from_millis(4001)));
        assert_eq!(s.deadline(), None, "stalled: nothing more to wait for");
    }

    #[test]
    fn freshness_is_receive_time_minus_timestamp_in_any_unit() {
        let recv = UNIX_EPOCH + Duration::from_millis(10_250);
        let v: Value =
            serde_json::json!({"ts": 10_000, "s": 10.0, "us": 10_000_000u64, "str": "10000"});
        let f = |p, u| freshness_seconds(recv, &v, p, u).unwrap();
        assert!((f("/ts", TimeUnit::Millis) - 0.25).abs() < 1e-9);
        assert!((f("/s", TimeUnit::Seconds) - 0.25).abs() < 1e-9);
        assert!((f("/us", TimeUnit::Micros) - 0.25).abs() < 1e-9);
        assert!((f("/str", TimeUnit::Millis) - 0.25).abs() < 1e-9);
        assert_eq!(
            freshness_seconds(recv, &v, "/missing", TimeUnit::Millis),
            None
        );
    }

    #[test]
    fn a_server_clock_ahead_gives_negative_freshness() {
        let recv = UNIX_EPOCH + Duration::from_secs(10);
        let v = serde_json::json!({"ts": 11_000});
        assert!(freshness_seconds(recv, &v, "/ts", TimeUnit::Millis).unwrap() < 0.0);
    }

    #[test]
    fn sequences_read_from_numbers_and_numeric_strings() {
        let v = serde_json::json!({"a": 5, "b": "6", "c": -1, "d": 1.5, "e": {"f": 7}});
        assert_eq!(u64_at(&v, "/a"), Some(5));
        assert_eq!(u64_at(&v, "/b"), Some(6));
        assert_eq!(u64_at(&v, "/c"), None);
        assert_eq!(u64_at(&v, "/d"), None);
        assert_eq!(u64_at(&v, "/e/f"), Some(7));
    }

    #[test]
    fn a_present_sequence_that_is_not_a_u64_is_invalid_and_an_absent_one_is_not() {
        let v = serde_json::json!({
            "neg": -1, "frac": 1.5, "big": 1e20, "word": "abc", "null": null,
            "list": [1], "obj": {}, "flag": true, "max": u64::MAX, "maxs": "18446744073709551615"
        });
        assert_eq!(sequence_at(&v, "/absent"), Ok(None));
        assert_eq!(sequence_at(&v, "/max"), Ok(Some(u64::MAX)));
        assert_eq!(sequence_at(&v, "/maxs"), Ok(Some(u64::MAX)));
        for bad in [
            "/neg", "/frac", "/big", "/word", "/null", "/list", "/obj", "/flag",
        ] {
            assert!(sequence_at(&v, bad).is_err(), "{bad}");
        }
        let long = serde_json::json!({ "s": "x".repeat(1000) });
        assert!(sequence_at(&long, "/s").unwrap_err().0.len() < 100);
    }

    #[test]
    fn json_nested_past_the_recursion_limit_is_too_deep_not_merely_not_json() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_json(&deep).unwrap_err(), JsonRefusal::TooDeep);
        assert_eq!(parse_json("{not json").unwrap_err(), JsonRefusal::NotJson);
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_json(&ok).is_ok());
    }

    #[test]
    fn rate_limit_trips_above_the_limit_within_one_second_and_resets_after() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(3, t0);
        assert!(!r.exceeded(t0));
        assert!(!r.exceeded(t0));
        assert!(!r.exceeded(t0 + Duration::from_millis(900)));
        assert!(r.exceeded(t0 + Duration::from_millis(950)));
        assert!(!r.exceeded(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn nonces_match_once_and_expire() {
        let t0 = Instant::now();
        let mut n = NonceTracker::default();
        n.published("a".into(), t0);
        n.published("b".into(), t0);
        assert_eq!(
            n.observe("a", t0 + Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert_eq!(n.observe("a", t0 + Duration::from_millis(40)), None, "once");
        assert_eq!(n.observe("zzz", t0), None, "not ours");
        assert_eq!(
            n.expire(t0 + Duration::from_secs(1), Duration::from_secs(2)),
            0
        );
        assert_eq!(
            n.expire(t0 + Duration::from_secs(3), Duration::from_secs(2)),
            1
        );
        assert!(n.is_empty());
    }

    #[test]
    fn the_first_fault_is_the_verdict() {
        let mut v = Verdict::default();
        assert!(v.success());
        assert!(v.fault(FailureReason::SequenceGap, "gap"));
        assert!(!v.fault(FailureReason::Closed, "closed"));
        assert_eq!(v.first().unwrap().reason, FailureReason::SequenceGap);
        assert!(!v.success());
    }

    #[test]
    fn latencies_keep_microseconds() {
        let mut h = LatencyStats::new(Retention::WholeRun);
        h.record(Duration::from_micros(250));
        h.record(Duration::from_micros(250));
        h.record(Duration::from_millis(10));
        let s = h.summary();
        assert_eq!(s.count, 3);
        assert!((s.p50 - 0.000250).abs() < 1e-6, "{s:?}");
        assert!((s.max - 0.010).abs() < 0.0001, "{s:?}");
        assert!(h.recent().is_empty());
        for retention in [Retention::WholeRun, Retention::Recent] {
            assert_eq!(
                LatencyStats::new(retention).summary(),
                LatencySummary::default()
            );
        }
    }

    #[test]
    fn recent_stats_keep_the_latest_window_and_the_total_count() {
        let mut h = LatencyStats::new(Retention::Recent);
        // 100 ms for the first 40 samples, then 1..=60 ms: only the latter stay.
        for _ in 0..40 {
            h.record(Duration::from_millis(100));
        }
        for ms in 1..=RECENT_SAMPLES as u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 40 + RECENT_SAMPLES as u64);
        assert!((s.p50 - 0.030).abs() < 1e-6, "{s:?}");
        assert!((s.p99 - 0.060).abs() < 1e-6, "{s:?}");
        assert!((s.max - 0.060).abs() < 1e-6, "{s:?}");
        let recent = h.recent();
        assert_eq!(recent.len(), RECENT_SAMPLES);
        assert!((recent[0] - 0.001).abs() < 1e-6 && (recent[59] - 0.060).abs() < 1e-6);
    }

    #[test]
    fn whole_run_stats_grow_to_large_samples() {
        let mut h = LatencyStats::new(Retention::WholeRun);
        h.record(Duration::from_micros(3));
        h.record(Duration::from_secs(30));
        h.record(Duration::MAX);
        let s = h.summary();
        assert_eq!(s.count, 3);
        assert!((s.max - 3600.0).abs() / 3600.0 < 0.001, "{s:?}");
    }
}
