//! What the record-write outboxes (`visit_notes`, `referral_writes`) share: a row is
//! pending until the record source took it (written) or it was given up (failed); a node
//! takes the lease on due rows in one statement ([`Claim`]) and only the lease holder marks
//! the outcome ([`FailedAttempt`]; the statements are `claim_record_writes` and
//! `record_write_failed` in `methods.rs`).

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
