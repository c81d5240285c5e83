//! Failure counters in fixed windows: sign-in per client IP and per email, join-code
//! redemption per IP. In-process (one node): with several nodes behind a balancer each
//! node counts on its own, which still bounds guessing to nodes × limit per window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries above this many are pruned of expired windows on the next failure.
const PRUNE_ABOVE: usize = 10_000;

pub struct Limiter {
    max_failures: u32,
    window: Duration,
    // std Mutex: held for a map lookup only, never across an await.
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` when `key` has used up its failures in the current window.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().expect("poisoned");
        let (start, n) = map.get(key)?;
        let end = *start + self.window;
        (now < end && *n >= self.max_failures).then(|| end - now)
    }

    pub fn fail(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().expect("poisoned");
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (start, _)| now < *start + self.window);
        }
        let e = map.entry(key.to_owned()).or_insert((now, 0));
        if now >= e.0 + self.window {
            *e = (now, 0);
        }
        e.1 += 1;
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().expect("poisoned").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let l = Limiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.blocked("a", t0).is_none());
            l.fail("a", t0);
        }
        let wait = l.blocked("a", t0).expect("blocked");
        assert!(wait <= Duration::from_secs(60));
        assert!(l.blocked("b", t0).is_none());
        assert!(l.blocked("a", t0 + Duration::from_secs(61)).is_none());
        l.clear("a");
        assert!(l.blocked("a", t0).is_none());
    }
}
