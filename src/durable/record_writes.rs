//! What the record-write outboxes (`visit_notes`, `referral_writes`) share: a row is
//! pending until the record source took it (written) or it was given up (failed); a node
//! takes the lease on due rows in one statement ([`Claim`]) and only the lease holder marks
//! the outcome ([`FailedAttempt`]; the statements are `claim_record_writes` and
//! `record_write_failed` in `methods.rs`).

use crate::ids::{ReferralId, StaffId, VisitId};
use crate::visit::Millis;

pub(crate) const PENDING: &str = "pending";
pub(crate) const WRITTEN: &str = "written";
pub(crate) const FAILED: &str = "failed";
/// Longest `last_error` kept, characters.
pub(crate) const MAX_ERROR_CHARS: usize = 500;

/// A node's claim on an outbox: the lease on up to `limit` rows (capped at 1000) due at
/// `now` and not leased by a node whose lease still runs, until `lease_until`, as `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The node's name on the leases it takes.
    pub owner: &'a str,
    pub now: Millis,
    pub lease_until: Millis,
    pub limit: i64,
}

/// The lease holder's word that its attempt at a row failed: the attempt is counted, the
/// lease released, and the row due again at `next_attempt_at` — or, with `give_up`, marked
/// failed (no more attempts; listed for admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt<'a> {
    pub owner: &'a str,
    /// Why (never patient data); kept to its first 500 characters.
    pub error: &'a str,
    pub at: Millis,
    pub next_attempt_at: Millis,
    pub give_up: bool,
}

/// A write the record source has not taken yet (a visit note, or a referral's
/// `ServiceRequest`), for the admins' list: no text, no patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// The referral, for a referral's write; `None` for a visit note.
    pub referral: Option<ReferralId>,
    pub visit: VisitId,
    /// Who wrote the note, or made the referral.
    pub staff: StaffId,
    /// When the note was saved, or the referral made.
    pub saved_at: Millis,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub last_attempt_at: Option<Millis>,
    /// Why the last attempt failed (no patient data).
    pub last_error: Option<String>,
    /// A node is writing it now (its lease runs until then).
    pub leased_until: Option<Millis>,
    /// Given up: no more attempts (an answer to a referral makes it due again).
    pub failed: bool,
}
