//! [`Memo`] for several nodes: `<prefix>:memo:<key>`, plain strings with an expiry
//! (`SET … PX`), so every node reads what any node wrote. It shares the node's
//! [`super::RedisConnection`] and exists before the live store.

use super::timed;
use crate::config::Settings;
use crate::live::{LiveError, Memo};
use ::redis::AsyncCommands;
use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use std::time::Duration;

pub struct RedisMemo {
    redis: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl RedisMemo {
    /// Notes over the node's Redis connection.
    pub fn new(conn: &super::RedisConnection, settings: &Settings) -> Self {
        RedisMemo {
            redis: conn.redis.clone(),
            prefix: format!("{}:memo:", settings.redis.key_prefix),
            timeout: conn.timeout,
        }
    }
}

#[async_trait]
impl Memo for RedisMemo {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), LiveError> {
        let mut c = self.redis.clone();
        let ms = (ttl.as_millis() as u64).max(1);
        let set = c.pset_ex::<_, _, ()>(format!("{}{key}", self.prefix), value, ms);
        timed(self.timeout, "write a note", set).await
    }

    async fn get(&self, key: &str) -> Result<Option<String>, LiveError> {
        let mut c = self.redis.clone();
        let get = c.get(format!("{}{key}", self.prefix));
        timed(self.timeout, "read a note", get).await
    }

    async fn delete(&self, key: &str) -> Result<(), LiveError> {
        let mut c = self.redis.clone();
        let del = c.del::<_, ()>(format!("{}{key}", self.prefix));
        timed(self.timeout, "delete a note", del).await
    }
}
