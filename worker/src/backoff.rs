//! The delay before a failed task's next attempt: exponential in the attempt number, capped, with
//! "equal jitter" (half fixed, half random) so retries of many tasks spread out while each
//! task's delays still grow.

use std::time::Duration;

use rand::Rng;

/// Delay before the attempt after `attempt` (1-based): `base · 2^(attempt-1)`, capped at `max`,
/// of which the upper half is random.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter_ms = rng.random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1_000);
        for _ in 0..200 {
            let d1 = retry_delay(1, base, max, &mut rng);
            let d2 = retry_delay(2, base, max, &mut rng);
            let d3 = retry_delay(3, base, max, &mut rng);
            assert!((50..=100).contains(&d1.as_millis()), "{d1:?}");
            assert!((100..=200).contains(&d2.as_millis()), "{d2:?}");
            assert!((200..=400).contains(&d3.as_millis()), "{d3:?}");
            let d9 = retry_delay(9, base, max, &mut rng);
            assert!((500..=1_000).contains(&d9.as_millis()), "{d9:?}");
        }
        assert!(retry_delay(u32::MAX, base, max, &mut rng) <= max);
    }
}
