//! One canary's bounded history for `/status`: a summary per wall-clock minute for the last
//! 24 hours, and its last state changes. Free of I/O: every call takes `now`.
//!
//! Rules:
//! - at most [`MINUTES`] minute entries and [`STATE_CHANGES`] state changes are kept; the
//!   oldest go first, so a canary's history never costs more than a fixed bound
//!   (measured in BENCHMARKS.md, "Status page history");
//! - a minute's up fraction is the share of the time it was observed during which the
//!   canary was `up` (connected and receiving); minutes with no event carry the state on;
//! - a minute's worst reason is its most frequent failure reason (the first on a tie);
//! - a state change carries the failure reported since the previous change, or, for a
//!   change away from `up` that had none, the first one reported right after it (a stall);
//! - freshness p50/p99 come from the minute's own samples (1 ms resolution, up to 1 h).

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::failure::FailureReason;

/// Minute entries kept: 24 hours.
pub const MINUTES: usize = 24 * 60;
/// State changes kept.
pub const STATE_CHANGES: usize = 50;
/// Characters of a failure detail kept with a state change.
const DETAIL_CHARS: usize = 160;

/// One minute of one canary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch at its start (u32 lasts until the year 10000).
    pub minute: u32,
    /// Share of the observed time the canary was up, 0..=1.
    pub up: f32,
    /// Its most frequent failure reason, if any failed.
    #[serde(serialize_with = "reason_name")]
    pub worst: Option<FailureReason>,
    /// Failures recorded in it.
    pub failures: u32,
    /// Data messages received in it.
    pub messages: u32,
    /// Freshness median and 99th percentile, seconds, when any was measured.
    pub freshness_p50: Option<f32>,
    pub freshness_p99: Option<f32>,
}

fn reason_name<S: serde::Serializer>(r: &Option<FailureReason>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(r.as_str()),
        None => s.serialize_none(),
    }
}

/// One change of a canary's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub from: &'static str,
    pub to: &'static str,
    /// The failure that led to it, if one did since the previous change.
    #[serde(serialize_with = "reason_name")]
    pub reason: Option<FailureReason>,
    /// That failure's detail (untrusted text from the server, escaped on output).
    pub detail: String,
    /// The close code of a stream that ended since the previous change.
    pub close_code: Option<u16>,
    /// Its close reason (untrusted text from the server, escaped on output).
    pub close_reason: String,
}

/// The minute being accumulated.
#[derive(Debug)]
struct Current {
    minute: u64,
    up_ms: u64,
    observed_ms: u64,
    reasons: Vec<(FailureReason, u32)>,
    failures: u32,
    messages: u32,
    freshness: Histogram<u32>,
}

/// One canary's history; see the [module docs](self).
#[derive(Debug)]
pub struct History {
    minutes: VecDeque<Minute>,
    changes: VecDeque<StateChange>,
    current: Option<Current>,
    /// Whether the canary is up now, and since when (ms since the epoch) it was accounted.
    up: bool,
    accounted_ms: u64,
    /// The newest failure and close since the last state change.
    pending: Option<(FailureReason, String)>,
    pending_close: Option<(u16, String)>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl History {
    pub fn new() -> Self {
        Self {
            minutes: VecDeque::new(),
            changes: VecDeque::new(),
            current: None,
            up: false,
            accounted_ms: 0,
            pending: None,
            pending_close: None,
        }
    }

    /// Accounts time up to `now` and closes every minute that ended before it.
    pub fn roll(&mut self, now: SystemTime) {
        let now_ms = ms(now);
        if self.accounted_ms == 0 {
            self.accounted_ms = now_ms;
        }
        loop {
            let cur = self.current_mut(self.accounted_ms);
            let minute_end = (cur.minute + 1) * 60_000;
            let until = now_ms.min(minute_end);
            let span = until.saturating_sub(self.accounted_ms);
            self.account(span);
            self.accounted_ms = self.accounted_ms.max(until);
            if now_ms < minute_end {
                break;
            }
            self.close_minute();
            // Far behind (a suspended machine): skip to the window that is kept.
            let oldest_kept = (now_ms / 60_000).saturating_sub(MINUTES as u64) * 60_000;
            self.accounted_ms = self.accounted_ms.max(oldest_kept);
        }
    }

    fn account(&mut self, span: u64) {
        let up = self.up;
        if let Some(cur) = self.current.as_mut() {
            cur.observed_ms += span;
            if up {
                cur.up_ms += span;
            }
        }
    }

    fn current_mut(&mut self, at_ms: u64) -> &mut Current {
        let minute = at_ms / 60_000;
        self.current.get_or_insert_with(|| Current {
            minute,
            up_ms: 0,
            observed_ms: 0,
            reasons: Vec::new(),
            failures: 0,
            messages: 0,
            // 1 ms .. 1 h at 2 significant figures: a few KiB, one per canary.
            freshness: Histogram::new_with_bounds(1, 3_600_000, 2).expect("valid bounds"),
        })
    }

    fn close_minute(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let entry = summarize(&cur, self.up);
        if self.minutes.len() == MINUTES {
            self.minutes.pop_front();
        } else if self.minutes.len() == self.minutes.capacity() {
            // Grow by doubling but never past the bound: a full day holds exactly MINUTES.
            let more = self.minutes.len().clamp(16, MINUTES - self.minutes.len());
            self.minutes.reserve_exact(more);
        }
        self.minutes.push_back(entry);
        // The next minute reuses nothing: its histogram starts empty.
    }

    /// The canary went from `from` to `to` at `now`; `up` says whether `to` counts as up.
    pub fn state_change(
        &mut self,
        now: SystemTime,
        from: &'static str,
        to: &'static str,
        up: bool,
    ) {
        self.roll(now);
        self.up = up;
        let (reason, detail) = match self.pending.take() {
            Some((r, d)) => (Some(r), d),
            None => (None, String::new()),
        };
        if self.changes.len() == STATE_CHANGES {
            self.changes.pop_front();
        }
        self.changes.push_back(StateChange {
            at_ms: ms(now),
            from,
            to,
            reason,
            detail,
            close_code: self.pending_close.as_ref().map(|c| c.0),
            close_reason: self.pending_close.take().map(|c| c.1).unwrap_or_default(),
        });
    }

    pub fn failure(&mut self, now: SystemTime, reason: FailureReason, detail: &str) {
        self.roll(now);
        let cur = self.current_mut(ms(now));
        cur.failures += 1;
        match cur.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => cur.reasons.push((reason, 1)),
        }
        let detail: String = detail.chars().take(DETAIL_CHARS).collect();
        // A stall is reported just after the state changed for it: it explains that change.
        match self.changes.back_mut() {
            Some(last) if last.reason.is_none() && last.to != "up" && self.pending.is_none() => {
                last.reason = Some(reason);
                last.detail = detail;
            }
            _ => self.pending = Some((reason, detail)),
        }
    }

    pub fn closed(&mut self, code: u16, reason: &str) {
        self.pending_close = Some((code, reason.chars().take(DETAIL_CHARS).collect()));
    }

    pub fn message(&mut self, now: SystemTime) {
        self.roll(now);
        self.current_mut(ms(now)).messages += 1;
    }

    pub fn freshness(&mut self, now: SystemTime, secs: f64) {
        self.roll(now);
        let v = (secs * 1e3).clamp(1.0, 3_600_000.0) as u64;
        let _ = self.current_mut(ms(now)).freshness.record(v);
    }

    /// The history as of `now`: closed minutes oldest first, then the current one so far.
    pub fn view(&mut self, now: SystemTime) -> HistoryView {
        self.roll(now);
        let mut minutes: Vec<Minute> = self.minutes.iter().copied().collect();
        if let Some(cur) = &self.current {
            minutes.push(summarize(cur, self.up));
        }
        HistoryView {
            uptime_1h: uptime(&minutes, 60),
            uptime_24h: uptime(&minutes, MINUTES),
            minutes,
            changes: self.changes.iter().cloned().collect(),
        }
    }
}

/// A minute's entry from what was accumulated in it; `up_now` stands for a minute with no
/// observed time.
fn summarize(cur: &Current, up_now: bool) -> Minute {
    let worst = cur
        .reasons
        .iter()
        .fold(None::<(FailureReason, u32)>, |best, &(r, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((r, n)),
        })
        .map(|(r, _)| r);
    let fresh = |q: f64| {
        (!cur.freshness.is_empty()).then(|| cur.freshness.value_at_quantile(q) as f32 / 1e3)
    };
    let up = match cur.observed_ms {
        0 => f32::from(u8::from(up_now)),
        observed => cur.up_ms as f32 / observed as f32,
    };
    Minute {
        minute: cur.minute as u32,
        up,
        worst,
        failures: cur.failures,
        messages: cur.messages,
        freshness_p50: fresh(0.5),
        freshness_p99: fresh(0.99),
    }
}

/// The mean up fraction over the newest `n` minutes; `None` with no minutes.
fn uptime(minutes: &[Minute], n: usize) -> Option<f64> {
    let newest = &minutes[minutes.len().saturating_sub(n)..];
    (!newest.is_empty())
        .then(|| newest.iter().map(|m| f64::from(m.up)).sum::<f64>() / newest.len() as f64)
}

/// A copy of a [`History`] for rendering (`/status`, `/status.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    /// Up to [`MINUTES`] + 1 minutes, oldest first; the last is the current, partial one.
    pub minutes: Vec<Minute>,
    /// Up to [`STATE_CHANGES`], oldest first.
    pub changes: Vec<StateChange>,
    /// Mean up fraction over the last hour and day of minutes kept.
    pub uptime_1h: Option<f64>,
    pub uptime_24h: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        // A minute boundary, so tests read in whole minutes.
        UNIX_EPOCH + Duration::from_secs(1_700_000_040 + secs)
    }

    #[test]
    fn a_minute_half_up_has_an_up_fraction_of_a_half() {
        let mut h = History::new();
        h.roll(at(0));
        h.state_change(at(0), "connecting", "up", true);
        h.state_change(at(30), "up", "backoff", false);
        let v = h.view(at(60));
        assert_eq!(v.minutes.len(), 2, "{v:?}");
        assert!((v.minutes[0].up - 0.5).abs() < 0.01, "{:?}", v.minutes[0]);
    }

    #[test]
    fn quiet_minutes_carry_the_state_on_and_the_window_stays_bounded() {
        let mut h = History::new();
        h.roll(at(0));
        h.state_change(at(0), "connecting", "up", true);
        let v = h.view(at(60 * 60 * 30));
        assert_eq!(v.minutes.len(), MINUTES + 1);
        assert!(v.minutes.iter().all(|m| m.up == 1.0));
        assert_eq!(v.uptime_24h, Some(1.0));
    }

    #[test]
    fn the_worst_reason_is_the_most_frequent_and_changes_carry_reason_and_code() {
        let mut h = History::new();
        h.roll(at(0));
        h.state_change(at(1), "connecting", "up", true);
        h.failure(at(2), FailureReason::Stall, "quiet");
        h.failure(at(3), FailureReason::SequenceGap, "gap");
        h.failure(at(4), FailureReason::SequenceGap, "gap again");
        h.closed(1006, "");
        h.state_change(at(5), "up", "backoff", false);
        let v = h.view(at(61));
        assert_eq!(v.minutes[0].worst, Some(FailureReason::SequenceGap));
        assert_eq!(v.minutes[0].failures, 3);
        let last = v.changes.last().unwrap();
        assert_eq!(last.reason, Some(FailureReason::SequenceGap));
        assert_eq!(last.detail, "gap again");
        assert_eq!(last.close_code, Some(1006));
    }

    #[test]
    fn only_the_last_state_changes_are_kept() {
        let mut h = History::new();
        for i in 0..(STATE_CHANGES as u64 + 20) {
            h.state_change(at(i), "up", "stalled", i % 2 == 0);
        }
        let v = h.view(at(200));
        assert_eq!(v.changes.len(), STATE_CHANGES);
        assert_eq!(v.changes[0].at_ms, ms(at(20)));
    }

    #[test]
    fn freshness_percentiles_come_from_the_minutes_samples() {
        let mut h = History::new();
        h.roll(at(0));
        for i in 1..=100 {
            h.freshness(at(1), f64::from(i) / 1e3);
        }
        let v = h.view(at(61));
        let p50 = v.minutes[0].freshness_p50.unwrap();
        let p99 = v.minutes[0].freshness_p99.unwrap();
        assert!((0.049..=0.051).contains(&p50), "{p50}");
        assert!((0.098..=0.1).contains(&p99), "{p99}");
    }
}
