//! [`Memo`] for one node: the notes live in this process, as everything else does when
//! there is no Redis.

use super::{LiveError, Memo};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many notes, a write first drops the expired ones.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct MemoryMemo {
    /// std Mutex: a map lookup or insert, never held across an await.
    notes: Mutex<HashMap<String, (String, Instant)>>,
}

#[async_trait]
impl Memo for MemoryMemo {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), LiveError> {
        let now = Instant::now();
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if notes.len() > PRUNE_ABOVE {
            notes.retain(|_, (_, until)| *until > now);
        }
        notes.insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, LiveError> {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(notes
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone()))
    }

    async fn delete(&self, key: &str) -> Result<(), LiveError> {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_note_reads_back_until_it_expires_or_is_deleted() {
        let m = MemoryMemo::default();
        m.put("a", "1", Duration::from_secs(60)).await.unwrap();
        m.put("b", "2", Duration::ZERO).await.unwrap();
        assert_eq!(m.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(m.get("b").await.unwrap(), None, "expired");
        m.delete("a").await.unwrap();
        assert_eq!(m.get("a").await.unwrap(), None);
    }
}
