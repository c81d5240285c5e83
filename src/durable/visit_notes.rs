//! Visit notes and their write to the record source (issue 22): the note is kept here
//! first, then a node that holds the row's lease writes it out; failures wait their turn
//! with backoff and are listed for admins.
//!
//! Invariants:
//! - One note per visit. Saving the same note again changes nothing (a retried submit);
//!   saving a different one is a `Conflict{note}`: what was kept may already be in the
//!   record.
//! - A pending row is written by at most one node at a time: [`VisitNoteStore::claim_note_writes`]
//!   takes the lease in one statement, and only the lease holder may mark the outcome.
//! - Nothing here logs the note or the patient; `last_error` holds causes without patient
//!   data (the record adapters' errors never carry any).

use super::{Claim, DurableError, FailedAttempt, PendingWrite};
use crate::ids::VisitId;
use crate::records::visit_note::{VisitWrite, WriteReceipt};
use crate::visit::Millis;
use serde::Serialize;

/// Where a note stands with the record source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteDelivery {
    /// Kept here, not yet (or not wholly) in the record.
    Pending,
    /// The record source holds the visit's Encounter and DocumentReference.
    Written,
    /// Given up after `records.write_max_attempts` attempts or `write_max_age_hours`:
    /// no more attempts; listed for admins.
    Failed,
}

impl NoteDelivery {
    fn as_str(self) -> &'static str {
        match self {
            NoteDelivery::Pending => "pending",
            NoteDelivery::Written => "written",
            NoteDelivery::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Result<Self, DurableError> {
        match s {
            "pending" => Ok(NoteDelivery::Pending),
            "written" => Ok(NoteDelivery::Written),
            "failed" => Ok(NoteDelivery::Failed),
            _ => Err(DurableError::Internal("unknown note state in store".into())),
        }
    }
}

/// A kept note and how its write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVisitNote {
    pub write: VisitWrite,
    pub saved_at: Millis,
    pub state: NoteDelivery,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub last_attempt_at: Option<Millis>,
    /// Why the last attempt failed (no patient data).
    pub last_error: Option<String>,
    pub receipt: Option<WriteReceipt>,
    /// When the record source took it.
    pub written_at: Option<Millis>,
}

/// Whether [`VisitNoteStore::save_visit_note`] kept a new note or found the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedNote {
    pub note: StoredVisitNote,
    pub created: bool,
}

/// Visit notes and their outbox.
#[async_trait::async_trait]
pub trait VisitNoteStore: Send + Sync {
    /// Keep the note of `w.visit`, pending, due at `w.written_at`. The same note again:
    /// the one kept (`created: false`); another note: `Conflict{note}`; unknown staff:
    /// `Invalid{staff}`.
    async fn save_visit_note(&self, w: VisitWrite) -> Result<SavedNote, DurableError>;

    async fn visit_note(&self, visit: &VisitId) -> Result<Option<StoredVisitNote>, DurableError>;

    /// Take the lease `claim` asks for on the pending notes due, in one statement: two
    /// nodes never hold the same row. Oldest due first.
    async fn claim_note_writes(
        &self,
        claim: Claim<'_>,
    ) -> Result<Vec<StoredVisitNote>, DurableError>;

    /// The lease holder says the record took the note. `false` when `owner` no longer
    /// holds the lease (another node took it over; what it writes finds ours).
    async fn note_written(
        &self,
        visit: &VisitId,
        owner: &str,
        receipt: &WriteReceipt,
        at: Millis,
    ) -> Result<bool, DurableError>;

    /// The lease holder says its attempt failed (see [`FailedAttempt`]). `false` when it
    /// no longer holds the lease.
    async fn note_write_failed(
        &self,
        visit: &VisitId,
        attempt: FailedAttempt<'_>,
    ) -> Result<bool, DurableError>;

    /// Pending and failed note writes, oldest first, at most `limit` (capped at 1000).
    async fn pending_note_writes(&self, limit: i64) -> Result<Vec<PendingWrite>, DurableError>;
}

/// One row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct NoteRow {
    body: String,
    saved_at: i64,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_attempt_at: Option<i64>,
    last_error: Option<String>,
    encounter_ref: Option<String>,
    document_ref: Option<String>,
    written_at: Option<i64>,
}

pub(super) const NOTE_COLS: &str = "body, saved_at, state, attempts, next_attempt_at, \
    last_attempt_at, last_error, encounter_ref, document_ref, written_at";

pub(super) fn decode_note(r: NoteRow) -> Result<StoredVisitNote, DurableError> {
    let write: VisitWrite = serde_json::from_str(&r.body)
        .map_err(|_| DurableError::Internal("malformed JSON in column visit_notes.body".into()))?;
    let receipt = match (r.encounter_ref, r.document_ref) {
        (Some(encounter), Some(document)) => Some(WriteReceipt {
            encounter,
            document,
        }),
        _ => None,
    };
    Ok(StoredVisitNote {
        write,
        saved_at: r.saved_at,
        state: NoteDelivery::parse(&r.state)?,
        attempts: r.attempts.clamp(0, u32::MAX as i64) as u32,
        next_attempt_at: r.next_attempt_at,
        last_attempt_at: r.last_attempt_at,
        last_error: r.last_error,
        receipt,
        written_at: r.written_at,
    })
}

pub(super) fn pending_state() -> &'static str {
    NoteDelivery::Pending.as_str()
}

pub(super) fn written_state() -> &'static str {
    NoteDelivery::Written.as_str()
}

pub(super) fn failed_state() -> &'static str {
    NoteDelivery::Failed.as_str()
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_visit_note_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl VisitNoteStore for $store {
            async fn save_visit_note(
                &self,
                w: $crate::records::visit_note::VisitWrite,
            ) -> Result<$crate::durable::SavedNote, DurableError> {
                use $crate::durable::visit_notes::*;
                let body = serde_json::to_string(&w)
                    .map_err(|e| DurableError::Internal(format!("note JSON: {e}")))?;
                let done = sqlx::query(
                    "INSERT INTO visit_notes (visit_id, staff_id, patient_ref, body, saved_at, state, \
                     attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $5) \
                     ON CONFLICT (visit_id) DO NOTHING",
                )
                .bind(w.visit.as_str())
                .bind(w.physician.as_str())
                .bind(w.patient.as_str())
                .bind(&body)
                .bind(w.written_at)
                .bind(pending_state())
                .execute(&self.pool)
                .await
                .map_err(unknown_staff)?;
                let kept = self
                    .visit_note(&w.visit)
                    .await?
                    .ok_or(DurableError::NotFound { what: "note" })?;
                if done.rows_affected() == 1 {
                    return Ok(SavedNote {
                        note: kept,
                        created: true,
                    });
                }
                // A retried submit is the same note by the same physician for the same
                // patient; its times may differ (it was sent again later).
                let same = kept.write.note == w.note
                    && kept.write.physician == w.physician
                    && kept.write.patient == w.patient;
                if same {
                    Ok(SavedNote {
                        note: kept,
                        created: false,
                    })
                } else {
                    Err(DurableError::conflict(
                        "note",
                        "this visit's note is already saved; it cannot be replaced",
                    ))
                }
            }

            async fn visit_note(
                &self,
                visit: &$crate::ids::VisitId,
            ) -> Result<Option<$crate::durable::StoredVisitNote>, DurableError> {
                use $crate::durable::visit_notes::*;
                let sql = format!("SELECT {NOTE_COLS} FROM visit_notes WHERE visit_id = $1");
                self.find_one(&sql, visit.as_str(), decode_note).await
            }

            async fn claim_note_writes(
                &self,
                claim: $crate::durable::Claim<'_>,
            ) -> Result<Vec<$crate::durable::StoredVisitNote>, DurableError> {
                use $crate::durable::visit_notes::*;
                let rows: Vec<NoteRow> = self
                    .claim_record_writes("visit_notes", "visit_id", NOTE_COLS, claim)
                    .await?;
                let mut notes = rows
                    .into_iter()
                    .map(decode_note)
                    .collect::<Result<Vec<_>, _>>()?;
                notes.sort_by_key(|n| (n.next_attempt_at, n.write.visit.clone()));
                Ok(notes)
            }

            async fn note_written(
                &self,
                visit: &$crate::ids::VisitId,
                owner: &str,
                receipt: &$crate::records::visit_note::WriteReceipt,
                at: Millis,
            ) -> Result<bool, DurableError> {
                use $crate::durable::visit_notes::*;
                let done = sqlx::query(
                    "UPDATE visit_notes SET state = $3, encounter_ref = $4, document_ref = $5, \
                     written_at = $6, last_attempt_at = $6, lease_owner = NULL, lease_until = NULL \
                     WHERE visit_id = $1 AND lease_owner = $2 AND state = $7",
                )
                .bind(visit.as_str())
                .bind(owner)
                .bind(written_state())
                .bind(&receipt.encounter)
                .bind(&receipt.document)
                .bind(at)
                .bind(pending_state())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn note_write_failed(
                &self,
                visit: &$crate::ids::VisitId,
                attempt: $crate::durable::FailedAttempt<'_>,
            ) -> Result<bool, DurableError> {
                self.record_write_failed("visit_notes", "visit_id", visit.as_str(), attempt)
                    .await
            }

            async fn pending_note_writes(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::durable::PendingWrite>, DurableError> {
                use $crate::durable::visit_notes::*;
                let rows: Vec<PendingRow> = sqlx::query_as(
                    "SELECT CAST(NULL AS TEXT) AS referral_id, visit_id, staff_id, saved_at, \
                     attempts, next_attempt_at, last_attempt_at, last_error, lease_until, state \
                     FROM visit_notes WHERE state IN ($1, $3) ORDER BY saved_at, visit_id LIMIT $2",
                )
                .bind(pending_state())
                .bind(limit.clamp(0, 1000))
                .bind(failed_state())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(|r| r.decode()).collect()
            }
        }
    };
}

pub(super) use impl_visit_note_store;
