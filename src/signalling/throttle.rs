//! Per-connection message-rate cap: a token bucket.

use std::time::Instant;

pub struct Throttle {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        let burst = burst.max(1) as f64;
        Self {
            rate: rate_per_sec as f64,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Take one token; false when the client is over its rate.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10, 5);
        assert!((0..5).all(|_| t.allow(t0)));
        assert!(!t.allow(t0));
        assert!(t.allow(t0 + Duration::from_millis(100)));
        assert!(!t.allow(t0 + Duration::from_millis(100)));
    }
}
