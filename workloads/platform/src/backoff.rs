//! Retry delays.

/// Capped exponential backoff with full jitter: 100 ms doubling to 10 s.
pub fn backoff_delay(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let cap_ms = 100u64.saturating_mul(1 << attempt.min(7)).min(10_000);
    std::time::Duration::from_millis(rand::rng().random_range(cap_ms / 2..=cap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 0..20 {
            let d = backoff_delay(attempt);
            let cap = std::time::Duration::from_millis((100u64 << attempt.min(7)).min(10_000));
            assert!(d <= cap && d >= cap / 2, "attempt {attempt}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
    }
}
