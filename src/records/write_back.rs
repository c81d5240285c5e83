//! The write-back of a visit to the patient's record (issue 22): the note is kept in the
//! durable store first ([`save_note`]), then written to the record source by the outbox
//! ([`NoteOutbox`]).
//!
//! The outbox runs on every node. Each round it claims due notes with a lease (only one
//! node writes a note at a time, and a node that dies mid-write loses its lease when it
//! runs out), writes each through [`RecordWriter`], and marks it written, or counts the
//! failure and sets the next attempt with doubling backoff ([`next_attempt_in`]). A submit
//! on this node wakes it at once; otherwise it looks every `first_retry`. The writers are
//! idempotent, so a lease that ran out during a slow write costs a second write of the
//! same visit, never a second Encounter.

use super::RecordWriter;
use super::visit_note::{NoteError, VisitNote, VisitWrite};
use crate::durable::{Claim, DurableError, DurableStore, FailedAttempt, SavedNote, VisitRecord};
use crate::ids::{PatientRef, ReferralId, StaffId, VisitId};
use crate::visit::Millis;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a note could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum NoteSaveError {
    #[error(transparent)]
    Invalid(#[from] NoteError),
    #[error(transparent)]
    Store(#[from] DurableError),
}

/// Who writes the note of which visit about whom; the caller checked that `physician` is
/// this visit's physician and may open this patient's chart.
pub struct NoteAuthor<'a> {
    pub visit: &'a VisitRecord,
    pub patient: PatientRef,
    pub physician: StaffId,
    pub physician_name: String,
}

/// Keep the physician's note of a visit (checked and trimmed), due to go out now.
/// The period is the visit's: from the call's start (or the admit) to its end, or to
/// `now` for a note written before the call ended.
pub async fn save_note(
    durable: &dyn DurableStore,
    author: NoteAuthor<'_>,
    note: VisitNote,
    now: Millis,
) -> Result<SavedNote, NoteSaveError> {
    let note = note.check()?;
    let v = author.visit;
    let start = v.call_started_at.or(v.admitted_at).unwrap_or(v.created_at);
    let end = v.ended_at.unwrap_or(now).max(start);
    let write = VisitWrite {
        v: 1,
        visit: v.id.clone(),
        patient: author.patient,
        physician: author.physician,
        physician_name: author.physician_name,
        start,
        end,
        written_at: now,
        note,
    };
    Ok(durable.save_visit_note(write).await?)
}

/// How the outbox retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Wait after the first failure; doubles each failure. Also how often the outbox looks
    /// for due notes.
    pub first_retry: Duration,
    /// Longest wait between attempts.
    pub max_retry: Duration,
    /// How long a claimed note is this node's to write.
    pub lease: Duration,
    /// Failed attempts after which a write is given up (marked failed).
    pub max_attempts: u32,
    /// Age (from when the write was saved) after which a failing write is given up.
    pub max_age: Duration,
}

impl RetryPolicy {
    /// Whether a write failing for the `failures`th time, waiting since `since`, is given
    /// up at `at` rather than tried again.
    pub fn gives_up(&self, failures: u32, since: Millis, at: Millis) -> bool {
        failures >= self.max_attempts || at.saturating_sub(since) >= self.max_age.as_millis() as i64
    }

    /// What follows a failed attempt at `at` of a write that had failed `attempts` times
    /// before and waits since `since`.
    fn after_failure(&self, attempts: u32, since: Millis, at: Millis) -> Failure {
        let failures = attempts + 1;
        let wait = next_attempt_in(failures, self.first_retry, self.max_retry);
        Failure {
            failures,
            wait,
            next_attempt_at: at + wait.as_millis() as i64,
            give_up: self.gives_up(failures, since, at),
        }
    }
}

/// A failed attempt's consequences (see [`RetryPolicy::after_failure`]).
struct Failure {
    /// Failed attempts so far, this one included.
    failures: u32,
    wait: Duration,
    next_attempt_at: Millis,
    give_up: bool,
}

/// The wait before the next attempt after `failures` failed ones (1 or more): `first`,
/// doubling, at most `max`.
pub fn next_attempt_in(failures: u32, first: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << doublings).min(max)
}

/// Notes a round claims at most.
const CLAIM_BATCH: i64 = 20;

/// The outbox of note writes on this node.
pub struct NoteOutbox {
    durable: Arc<dyn DurableStore>,
    writer: Arc<dyn RecordWriter>,
    policy: RetryPolicy,
    /// This node's name on the leases it takes.
    owner: String,
    wake: Notify,
}

impl NoteOutbox {
    /// The outbox, running until `shutdown`.
    pub fn start(
        durable: Arc<dyn DurableStore>,
        writer: Arc<dyn RecordWriter>,
        policy: RetryPolicy,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let outbox = Arc::new(Self::new(durable, writer, policy));
        tokio::spawn(outbox.clone().run(shutdown));
        outbox
    }

    /// An outbox that writes only when its [`Self::round`] is called (tests drive it).
    pub fn new(
        durable: Arc<dyn DurableStore>,
        writer: Arc<dyn RecordWriter>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            durable,
            writer,
            policy,
            owner: format!("node-{}", crate::ids::random_id()),
            wake: Notify::new(),
        }
    }

    /// Look for due notes now (a note was just saved).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            // A round that found work looks again at once: there may be more.
            let busy = match self.round(now_millis()).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "note outbox: the durable store is unavailable");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.policy.first_retry) => {}
            }
        }
    }

    /// One round: claim what is due, write it, record how it went. How many were claimed.
    pub async fn round(&self, now: Millis) -> Result<usize, DurableError> {
        let claim = Claim {
            owner: &self.owner,
            now,
            lease_until: now + self.policy.lease.as_millis() as i64,
            limit: CLAIM_BATCH,
        };
        let due = self.durable.claim_note_writes(claim).await?;
        let mut claimed = due.len();
        for note in due {
            let visit = note.write.visit.clone();
            let outcome = self.writer.write_visit(&note.write).await;
            let at = now_millis();
            match outcome {
                Ok(receipt) => {
                    let kept = self
                        .durable
                        .note_written(&visit, &self.owner, &receipt, at)
                        .await?;
                    tracing::info!(visit = %visit, kept, "visit note written to the record");
                }
                Err(e) => {
                    let (attempts, since) = (note.attempts, note.saved_at);
                    self.attempt_failed(OutboxRow::Note(&visit), attempts, since, at, e)
                        .await?
                }
            }
        }
        claimed += self.referral_round(claim).await?;
        Ok(claimed)
    }

    /// The referrals' part of a round.
    async fn referral_round(&self, claim: Claim<'_>) -> Result<usize, DurableError> {
        let due = self.durable.claim_referral_writes(claim).await?;
        let claimed = due.len();
        for mut row in due {
            let id = row.write.referral.clone();
            row.write.encounter = self
                .durable
                .visit_note(&row.write.visit)
                .await?
                .and_then(|n| n.receipt)
                .map(|r| r.encounter);
            let outcome = self.writer.write_referral(&row.write).await;
            let at = now_millis();
            match outcome {
                Ok(reference) => {
                    let kept = self
                        .durable
                        .referral_written(&id, &self.owner, row.version, &reference, at)
                        .await?;
                    tracing::info!(referral = %id, kept, "referral written to the record");
                }
                Err(e) => {
                    let (attempts, since) = (row.attempts, row.pending_since);
                    self.attempt_failed(OutboxRow::Referral(&id), attempts, since, at, e)
                        .await?
                }
            }
        }
        Ok(claimed)
    }

    /// Counts the attempt made at `at` to write `row` as failed; the row had failed
    /// `attempts` times before and waits since `since`. It is due again after the backoff,
    /// or given up (listed for admins).
    async fn attempt_failed(
        &self,
        row: OutboxRow<'_>,
        attempts: u32,
        since: Millis,
        at: Millis,
        error: super::RecordsError,
    ) -> Result<(), DurableError> {
        let Failure {
            failures,
            wait,
            next_attempt_at,
            give_up,
        } = self.policy.after_failure(attempts, since, at);
        // Errors of the record adapters carry no patient data.
        let cause = error.to_string();
        let failed = FailedAttempt {
            owner: &self.owner,
            error: &cause,
            at,
            next_attempt_at,
            give_up,
        };
        let (visit, referral, what) = match row {
            OutboxRow::Note(visit) => {
                self.durable.note_write_failed(visit, failed).await?;
                (Some(visit), None, "visit note")
            }
            OutboxRow::Referral(id) => {
                self.durable.referral_write_failed(id, failed).await?;
                (None, Some(id), "referral")
            }
        };
        // One of the two is recorded: the note's visit, or the referral.
        let visit = visit.map(tracing::field::display);
        let referral = referral.map(tracing::field::display);
        if give_up {
            tracing::error!(visit, referral, failures, error = %cause,
                "{what} not written to the record; given up (listed for admins)");
        } else {
            tracing::warn!(
                visit,
                referral,
                failures,
                retry_in_secs = wait.as_secs(),
                error = %cause,
                "{what} not written to the record yet; will retry"
            );
        }
        Ok(())
    }
}

/// The outbox row an attempt was for.
#[derive(Clone, Copy)]
enum OutboxRow<'a> {
    Note(&'a VisitId),
    Referral(&'a ReferralId),
}

fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_first_wait_up_to_the_longest() {
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(600));
        let waits: Vec<u64> = (1..=10)
            .map(|n| next_attempt_in(n, first, max).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(next_attempt_in(u32::MAX, first, max), max);
    }

    #[test]
    fn a_write_is_given_up_after_its_attempts_or_its_age_whichever_first() {
        let p = RetryPolicy {
            first_retry: Duration::from_secs(10),
            max_retry: Duration::from_secs(900),
            lease: Duration::from_secs(120),
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
        };
        let hour = 3_600_000;
        assert!(!p.gives_up(2, 0, hour - 1));
        assert!(p.gives_up(3, 0, 1), "the third failure is the last");
        assert!(p.gives_up(1, 0, hour), "an hour old");
        assert!(
            !p.gives_up(1, hour, hour + 1),
            "counted from when it was saved"
        );
    }
}
