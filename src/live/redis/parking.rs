//! Parked visit history in Redis: `<prefix>:history:parked`, one list the cluster shares
//! (`live::Parking`). A node parks a transition there when the database does not take it
//! at once, and removes it once written; whatever a node leaves behind (it stopped, or
//! died, before the database came back) another node writes. It shares the node's
//! [`super::RedisConnection`], so the history writer can exist before the live store.

use crate::config::Settings;
use crate::live::{LiveError, Parking};
use ::redis::AsyncCommands;
use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use std::future::Future;
use std::time::Duration;

pub struct RedisParking {
    redis: ConnectionManager,
    key: String,
    timeout: Duration,
}

impl RedisParking {
    /// Parking over the node's Redis connection.
    pub fn new(conn: &super::RedisConnection, settings: &Settings) -> Self {
        RedisParking {
            redis: conn.redis.clone(),
            key: format!("{}:history:parked", settings.redis.key_prefix),
            timeout: conn.timeout,
        }
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, LiveError> {
        super::timed(self.timeout, what, fut).await
    }
}

#[async_trait]
impl Parking for RedisParking {
    async fn park(&self, item: &str) -> Result<(), LiveError> {
        let mut c = self.redis.clone();
        self.call("park history", c.rpush::<_, _, ()>(&self.key, item))
            .await
    }

    async fn unpark(&self, item: &str) -> Result<(), LiveError> {
        let mut c = self.redis.clone();
        self.call("unpark history", c.lrem::<_, _, ()>(&self.key, 1, item))
            .await
    }

    async fn parked(&self, max: usize) -> Result<Vec<String>, LiveError> {
        let mut c = self.redis.clone();
        let last = max.max(1) as isize - 1;
        self.call("read parked history", c.lrange(&self.key, 0, last))
            .await
    }
}
