//! Stall detection: silences longer than `max_silence`.

use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
