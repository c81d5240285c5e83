//! What the record-write outboxes (`visit_notes`, `referral_writes`) share: a row is
//! pending until the record source took it (written) or it was given up (failed); a node
//! takes the lease on due rows in one statement and only the lease holder marks the
//! outcome (the statements are `claim_record_writes` and `record_write_failed` in
//! `methods.rs`).

pub(crate) const PENDING: &str = "pending";
pub(crate) const WRITTEN: &str = "written";
pub(crate) const FAILED: &str = "failed";
/// Longest `last_error` kept, characters.
pub(crate) const MAX_ERROR_CHARS: usize = 500;
