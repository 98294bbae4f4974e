//! Reconnect delays for WebSocket clients: exponential backoff with full jitter, the behaviour
//! wsmon recommends (see `docs/reconnect.md`).
//!
//! When a server dies, every client sees the end at the same instant. Retrying after a fixed
//! or merely exponential delay keeps them in step, so the reconnects arrive as one spike that
//! can knock the restarted server over again. Full jitter draws each delay uniformly from
//! `[0, min(max, initial·2^attempt)]`, which spreads the herd over the whole window.
//!
//! ```
//! use std::time::Duration;
//! use wsmon::backoff::Backoff;
//!
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
//! let first = backoff.next_delay();   // somewhere in [0, 100 ms]
//! let second = backoff.next_delay();  // somewhere in [0, 200 ms]
//! assert!(first <= Duration::from_millis(100) && second <= Duration::from_millis(200));
//! backoff.reset();                     // after a connection that delivered data
//! ```
//!
//! A client loop: wait `next_delay()` before each attempt, and `reset()` once a connection
//! has proved healthy (it delivered data), not merely once the handshake succeeded, so a server
//! that accepts and immediately drops does not get hammered.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How much of each delay is random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The delay is uniform in `[0, ceiling]`: the recommended setting.
    Full,
    /// The delay is the ceiling itself. Only for comparison: clients stay in step.
    None,
}

/// Exponential backoff with full jitter. Not shared between clients: each holds its own.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    jitter: Jitter,
    rng: SmallRng,
}

impl Backoff {
    /// Delays whose ceiling starts at `initial` and doubles up to `max` (raised to `initial`
    /// if smaller), with full jitter, randomly seeded.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
            jitter: Jitter::Full,
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// Draws from a fixed seed, so a test sees the same delays every run.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.rng = SmallRng::seed_from_u64(seed);
        self
    }

    /// Sets the jitter; [`Jitter::Full`] is the default.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The ceiling of the next delay: `min(max, initial·2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        // 2^31 · initial saturates any realistic max well before the shift overflows.
        let factor = 1u32 << self.attempt.min(31);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before the next attempt; each call counts one attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(self.rng.random_range(0..=nanos))
            }
        }
    }

    /// Attempts counted since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `initial`; call it once a connection has proved healthy.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_from_initial_until_max() {
        let mut b = Backoff::new(100 * MS, 1000 * MS).jitter(Jitter::None);
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_uses_the_whole_window() {
        let mut b = Backoff::new(100 * MS, 100 * MS).seeded(7);
        let delays: Vec<_> = (0..2000).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= 100 * MS));
        assert!(delays.iter().any(|d| *d < 10 * MS), "reaches the bottom");
        assert!(delays.iter().any(|d| *d > 90 * MS), "reaches the top");
    }

    #[test]
    fn seeded_backoffs_repeat_and_different_seeds_differ() {
        let run = |seed| {
            let mut b = Backoff::new(50 * MS, 5000 * MS).seeded(seed);
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn reset_starts_over_from_initial() {
        let mut b = Backoff::new(10 * MS, 10_000 * MS).jitter(Jitter::None);
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), 10 * MS);
    }

    #[test]
    fn many_attempts_never_overflow_past_max() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::MAX);
        for _ in 0..200 {
            b.next_delay();
        }
        assert_eq!(
            b.ceiling(),
            Duration::from_secs(3600).saturating_mul(1 << 31)
        );
        let mut small = Backoff::new(MS, 30_000 * MS);
        for _ in 0..1000 {
            assert!(small.next_delay() <= 30_000 * MS);
        }
    }

    #[test]
    fn a_max_below_initial_is_raised_to_initial() {
        let mut b = Backoff::new(500 * MS, 100 * MS).jitter(Jitter::None);
        assert_eq!(b.next_delay(), 500 * MS);
        assert_eq!(b.next_delay(), 500 * MS);
    }
}
