//! Failure limits in fixed windows: sign-in per client IP and per email, join-code
//! redemption per IP. Sign-in [`Limiter::take`]s a slot before the Argon2 check and
//! gives it back only on success, so a burst of concurrent guesses checks no more
//! passwords than the limit allows. Counted in the live store's [`Counters`], so with several nodes
//! every node sees the same count (a guesser gains nothing by spreading over nodes).

use crate::live::Counters;
use std::sync::Arc;
use std::time::Duration;

pub struct Limiter {
    /// Keeps the limits' keys apart in the shared counters.
    scope: &'static str,
    max_failures: u32,
    window: Duration,
    counters: Arc<dyn Counters>,
}

impl Limiter {
    pub fn new(
        scope: &'static str,
        max_failures: u32,
        window: Duration,
        counters: Arc<dyn Counters>,
    ) -> Self {
        Self {
            scope,
            max_failures,
            window,
            counters,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.scope)
    }

    /// `Some(retry_after)` when `key` has used up its failures in the current window.
    pub async fn blocked(&self, key: &str) -> Option<Duration> {
        let (n, left) = self.counters.current(&self.key(key)).await?;
        (n >= self.max_failures).then_some(left)
    }

    pub async fn fail(&self, key: &str) {
        self.counters.fail(&self.key(key), self.window).await;
    }

    pub async fn clear(&self, key: &str) {
        self.counters.clear(&self.key(key)).await;
    }

    /// Count an attempt as a failure before it is checked: `Err(retry_after)` when `key`
    /// has no failures left. Concurrent attempts each take their own slot, so no more
    /// than `max_failures` are ever checked in a window, however many arrive at once.
    pub async fn take(&self, key: &str) -> Result<(), Duration> {
        self.counters
            .take(&self.key(key), self.max_failures, self.window)
            .await
    }

    /// The attempt `take` counted was not a failure after all.
    pub async fn give_back(&self, key: &str) {
        self.counters.give_back(&self.key(key)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::counters::LocalCounters;

    #[tokio::test]
    async fn blocks_after_max_failures_and_scopes_do_not_mix() {
        let shared: Arc<dyn Counters> = Arc::new(LocalCounters::default());
        let minute = Duration::from_secs(60);
        let by_ip = Limiter::new("ip", 3, minute, shared.clone());
        let by_email = Limiter::new("email", 3, minute, shared);
        for _ in 0..3 {
            assert!(by_ip.blocked("a").await.is_none());
            by_ip.fail("a").await;
        }
        let wait = by_ip.blocked("a").await.expect("blocked");
        assert!(wait <= minute);
        assert!(by_ip.blocked("b").await.is_none());
        assert!(by_email.blocked("a").await.is_none());
        by_ip.clear("a").await;
        assert!(by_ip.blocked("a").await.is_none());
    }
}
