//! Failure counters in Redis, so every node counts the same guesses: a key's window is
//! one counter with an expiry (`<prefix>:fail:<sha256(key)>`; keys name IPs and emails,
//! which need not sit in Redis in the clear). While Redis is away the node counts on
//! its own, which still bounds guessing to nodes × limit per window.

use super::Inner;
use crate::live::Counters;
use crate::live::counters::LocalCounters;
use ::redis::Script;
use async_trait::async_trait;
use sha2::Digest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub(super) struct RedisCounters {
    inner: Arc<Inner>,
    fail: Script,
    failures: Script,
    take: Script,
    give_back: Script,
    local: LocalCounters,
    /// Redis failed the last call: say so once, not per request.
    degraded: AtomicBool,
}

impl RedisCounters {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        RedisCounters {
            inner,
            fail: Script::new(super::scripts::FAIL),
            failures: Script::new(super::scripts::FAILURES),
            take: Script::new(super::scripts::TAKE),
            give_back: Script::new(super::scripts::GIVE_BACK),
            local: LocalCounters::default(),
            degraded: AtomicBool::new(false),
        }
    }

    fn key(&self, key: &str) -> String {
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        format!("{}:fail:{digest}", self.inner.keys.0)
    }

    fn health<T>(&self, r: Result<T, crate::live::LiveError>) -> Option<T> {
        match r {
            Ok(v) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis is back; failure counters are cluster-wide again");
                }
                Some(v)
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "failure counters fall back to this node while Redis is away");
                }
                None
            }
        }
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn fail(&self, key: &str, window: Duration) {
        let mut c = self.inner.redis.clone();
        let mut inv = self.fail.prepare_invoke();
        inv.key(self.key(key)).arg(window.as_millis() as u64);
        let r = self
            .inner
            .call("count failure", inv.invoke_async::<i64>(&mut c))
            .await;
        if self.health(r).is_none() {
            self.local.fail(key, window).await;
        }
    }

    async fn current(&self, key: &str) -> Option<(u32, Duration)> {
        let mut c = self.inner.redis.clone();
        let mut inv = self.failures.prepare_invoke();
        inv.key(self.key(key));
        let r = self
            .inner
            .call("read failures", inv.invoke_async::<(i64, i64)>(&mut c))
            .await;
        let local = self.local.current(key).await;
        let shared = match self.health(r) {
            Some((n, ms)) if n > 0 && ms > 0 => Some((n as u32, Duration::from_millis(ms as u64))),
            _ => None,
        };
        // What this node counted during an outage still counts until its window ends.
        match (shared, local) {
            (Some(s), Some(l)) => Some((s.0 + l.0, s.1.max(l.1))),
            (s, l) => s.or(l),
        }
    }

    async fn clear(&self, key: &str) {
        let mut c = self.inner.redis.clone();
        let k = self.key(key);
        let r = self
            .inner
            .call(
                "clear failures",
                ::redis::AsyncCommands::del::<_, i64>(&mut c, k),
            )
            .await;
        self.health(r);
        self.local.clear(key).await;
    }

    async fn take(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        // What this node counted during an outage still uses up slots until its window ends.
        let local = self.local.current(key).await;
        let (counted_here, left_here) = local.unwrap_or((0, Duration::ZERO));
        if counted_here >= max {
            return Err(left_here);
        }
        let mut c = self.inner.redis.clone();
        let mut inv = self.take.prepare_invoke();
        inv.key(self.key(key))
            .arg(window.as_millis() as u64)
            .arg(max - counted_here);
        let r = self
            .inner
            .call("take a slot", inv.invoke_async::<(i64, i64)>(&mut c))
            .await;
        match self.health(r) {
            Some((1, _)) => Ok(()),
            Some((_, ms)) => Err(Duration::from_millis(ms.max(0) as u64).max(left_here)),
            None => self.local.take(key, max, window).await,
        }
    }

    async fn give_back(&self, key: &str) {
        let mut c = self.inner.redis.clone();
        let mut inv = self.give_back.prepare_invoke();
        inv.key(self.key(key));
        let r = self
            .inner
            .call("give back a slot", inv.invoke_async::<i64>(&mut c))
            .await;
        // Redis away: the slot was most likely taken here too.
        if self.health(r).is_none() {
            self.local.give_back(key).await;
        }
    }
}
