//! Message-rate limiting in one-second windows.

use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
