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

/// `key`'s open window, opened afresh when there is none or it has closed.
fn open_window<'a>(
    map: &'a mut HashMap<String, Window>,
    key: &str,
    window: Duration,
    now: Instant,
) -> &'a mut Window {
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
    w
}

impl LocalCounters {
    pub fn fail_at(&self, key: &str, window: Duration, now: Instant) {
        let mut map = self.windows.lock().expect("poisoned");
        let w = open_window(&mut map, key, window, now);
        w.failures += 1;
    }

    pub fn current_at(&self, key: &str, now: Instant) -> Option<(u32, Duration)> {
        let map = self.windows.lock().expect("poisoned");
        let w = map.get(key).filter(|w| now < w.ends)?;
        Some((w.failures, w.ends - now))
    }

    pub fn take_at(
        &self,
        key: &str,
        max: u32,
        window: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut map = self.windows.lock().expect("poisoned");
        let w = open_window(&mut map, key, window, now);
        if w.failures >= max {
            return Err(w.ends - now);
        }
        w.failures += 1;
        Ok(())
    }

    pub fn give_back_now(&self, key: &str) {
        let mut map = self.windows.lock().expect("poisoned");
        if let Some(w) = map.get_mut(key) {
            w.failures = w.failures.saturating_sub(1);
        }
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
    async fn take(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        self.take_at(key, max, window, Instant::now())
    }
    async fn give_back(&self, key: &str) {
        self.give_back_now(key);
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

    #[test]
    fn slots_run_out_at_max_and_a_given_back_slot_can_be_taken_again() {
        let c = LocalCounters::default();
        let minute = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(c.take_at("a", 2, minute, t0), Ok(()));
        assert_eq!(c.take_at("a", 2, minute, t0), Ok(()));
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            c.take_at("a", 2, minute, later),
            Err(Duration::from_secs(40))
        );
        assert_eq!(c.current_at("a", later), Some((2, Duration::from_secs(40))));
        c.give_back_now("a");
        assert_eq!(c.take_at("a", 2, minute, later), Ok(()));
        assert!(
            c.take_at("a", 2, minute, t0 + minute).is_ok(),
            "a new window"
        );
    }
}
