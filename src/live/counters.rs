//! Failure counters kept in this process: the one-node default, and what a Redis node
//! falls back to while Redis is away.

use super::Counters;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys above this many are pruned of closed windows on the next failure.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct LocalCounters {
    // std Mutex: held for a map lookup only, never across an await.
    windows: Mutex<HashMap<String, Window>>,
}

struct Window {
    ends: Instant,
    failures: u32,
}

impl LocalCounters {
    pub fn fail_at(&self, key: &str, window: Duration, now: Instant) {
        let mut map = self.windows.lock().expect("poisoned");
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, w| now < w.ends);
        }
        let w = map.entry(key.to_owned()).or_insert(Window {
            ends: now + window,
            failures: 0,
        });
        if now >= w.ends {
            *w = Window {
                ends: now + window,
                failures: 0,
            };
        }
        w.failures += 1;
    }

    pub fn current_at(&self, key: &str, now: Instant) -> Option<(u32, Duration)> {
        let map = self.windows.lock().expect("poisoned");
        let w = map.get(key).filter(|w| now < w.ends)?;
        Some((w.failures, w.ends - now))
    }

    pub fn clear_now(&self, key: &str) {
        self.windows.lock().expect("poisoned").remove(key);
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn fail(&self, key: &str, window: Duration) {
        self.fail_at(key, window, Instant::now());
    }
    async fn current(&self, key: &str) -> Option<(u32, Duration)> {
        self.current_at(key, Instant::now())
    }
    async fn clear(&self, key: &str) {
        self.clear_now(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_at_the_first_failure_and_closes_after_its_length() {
        let c = LocalCounters::default();
        let minute = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(c.current_at("a", t0), None);
        c.fail_at("a", minute, t0);
        c.fail_at("a", minute, t0 + Duration::from_secs(30));
        assert_eq!(
            c.current_at("a", t0 + Duration::from_secs(30)),
            Some((2, Duration::from_secs(30)))
        );
        assert_eq!(c.current_at("b", t0), None);
        assert_eq!(c.current_at("a", t0 + minute), None);
        c.fail_at("a", minute, t0 + minute);
        assert_eq!(c.current_at("a", t0 + minute), Some((1, minute)));
        c.clear_now("a");
        assert_eq!(c.current_at("a", t0 + minute), None);
    }
}
