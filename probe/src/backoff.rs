//! Retry delays: exponential with full jitter, so a fleet of probers never retries in step.

use std::time::Duration;

use crate::config::Backoff;

/// The delay before retry number `attempt` (0-based): uniform in `[0, min(max, initial·2^attempt))`.
/// `unit` is a uniform random number in `[0, 1)`, passed in so the rule is testable.
pub fn full_jitter(backoff: &Backoff, attempt: u32, unit: f64) -> Duration {
    let cap = backoff
        .initial
        .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(backoff.max);
    cap.mul_f64(unit.clamp(0.0, 1.0))
}

/// `full_jitter` with a fresh random number.
pub fn next_delay(backoff: &Backoff, attempt: u32) -> Duration {
    full_jitter(backoff, attempt, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_ceiling_doubles_until_max() {
        let almost_one = 0.999_999;
        assert!(full_jitter(&b(), 0, almost_one) < Duration::from_millis(500));
        assert!(full_jitter(&b(), 1, almost_one) > Duration::from_millis(999));
        assert!(full_jitter(&b(), 3, almost_one) > Duration::from_millis(3999));
        assert!(full_jitter(&b(), 10, almost_one) <= Duration::from_secs(30));
        assert!(full_jitter(&b(), 1000, almost_one) <= Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_reaches_zero() {
        assert_eq!(full_jitter(&b(), 5, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(&b(), 5, 0.5), Duration::from_secs(8));
    }
}
