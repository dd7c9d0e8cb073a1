//! When to try a failed batch again: exponential backoff with full jitter, a cap on
//! attempts, and `Retry-After` pauses (capped). Pure arithmetic; the worker keeps the
//! timers.

use std::time::Duration;

/// The retry policy (defaults: 5 attempts, backoff from 500 ms doubling to at most 30 s,
/// `Retry-After` honoured up to 60 s).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `attempt` (1-based), given a uniform random
    /// fraction in `[0, 1)`: full jitter over `min(cap, base * 2^(attempt - 1))`.
    pub(crate) fn backoff(&self, attempt: u32, fraction: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        ceiling.mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// The pause when the destination asked for one: at least the backoff, at most the cap.
    pub(crate) fn pause(&self, backoff: Duration, retry_after: Duration) -> Duration {
        backoff.max(retry_after).min(self.retry_after_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 0.999_999).as_millis(), 499);
        assert_eq!(policy.backoff(2, 1.0), Duration::from_secs(1));
        assert_eq!(policy.backoff(4, 1.0), Duration::from_secs(4));
        assert_eq!(policy.backoff(20, 1.0), Duration::from_secs(30));
        assert_eq!(policy.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_pauses_within_bounds() {
        let policy = RetryPolicy::default();
        let second = Duration::from_secs(1);
        assert_eq!(
            policy.pause(second, Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.pause(Duration::from_secs(3), second),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.pause(second, Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }
}
