//! Published nonces awaiting their arrival on the stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
