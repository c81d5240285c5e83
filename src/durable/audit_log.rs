//! The record-access audit log: an append-only hash chain (the chain rules live in
//! `crate::audit`).

use super::{AuditEntry, AuditVerification, DurableError, NewAuditEntry};

/// The audit log.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Assigns `seq`, `prev_hash` and `hash` under a lock on the chain head, so concurrent
    /// appends never fork the chain.
    async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, DurableError>;

    /// Entries with `seq > after_seq`, ascending, at most `limit` (capped at 1000).
    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DurableError>;

    /// Re-hashes the whole chain and compares with the stored chain head.
    async fn verify_audit(&self) -> Result<AuditVerification, DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl AuditStore for $store {
            async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, DurableError> {
                let mut tx = self.begin_write().await?;
                // Taking the head first locks it (PostgreSQL row lock; SQLite holds the
                // write lock already): appenders queue here, so the chain cannot fork.
                let (seq, prev_hash): (i64, String) = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
                )
                .fetch_one(&mut *tx)
                .await?;
                let entry = AuditEntry::seal(seq, &prev_hash, e);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, patient_ref, visit_id, \
                     sections, outcome, reason, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(entry.seq)
                .bind(entry.entry.at)
                .bind(&entry.entry.actor)
                .bind(&entry.entry.action)
                .bind(
                    entry
                        .entry
                        .patient_ref
                        .as_ref()
                        .map(|p| p.as_str().to_owned()),
                )
                .bind(entry.entry.visit.as_ref().map(|v| v.as_str().to_owned()))
                .bind(to_json(&entry.entry.sections))
                .bind(entry.entry.outcome.as_str())
                .bind(&entry.entry.reason)
                .bind(&entry.prev_hash)
                .bind(&entry.hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                    .bind(&entry.hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn audit_entries(
                &self,
                after_seq: i64,
                limit: i64,
            ) -> Result<Vec<AuditEntry>, DurableError> {
                self.find_all(
                    sqlx::query_as::<_, AuditRow>(&format!(
                        "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ))
                    .bind(after_seq)
                    .bind(limit.clamp(0, 1000)),
                    AuditRow::into_entry,
                )
                .await
            }

            async fn verify_audit(&self) -> Result<AuditVerification, DurableError> {
                // Read the head first and only entries up to it, so appends running
                // meanwhile do not look like damage.
                let (head_seq, head_hash): (i64, String) =
                    sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await?;
                // Page through the log so a long one never sits in memory whole.
                let mut verifier = $crate::audit::ChainVerifier::new();
                let mut after = 0i64;
                loop {
                    let page = sqlx::query_as::<_, AuditRow>(&format!(
                        "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 AND seq <= $2 \
                         ORDER BY seq LIMIT 1000"
                    ))
                    .bind(after)
                    .bind(head_seq)
                    .fetch_all(&self.pool)
                    .await?;
                    let Some(last) = page.last().map(|r| r.seq) else {
                        break;
                    };
                    after = last;
                    for row in page {
                        let seq = row.seq;
                        match row.into_entry() {
                            Ok(e) => verifier.push(&e),
                            // A value no entry could hold is tampering too, not a crash.
                            Err(_) => verifier.unreadable(seq),
                        };
                    }
                }
                Ok(verifier.finish(Some((head_seq, head_hash.as_str()))))
            }
        }
    };
}

pub(super) use impl_audit_store;
