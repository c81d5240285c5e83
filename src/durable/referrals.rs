//! Referrals (issue 22): a physician refers the patient of one of their visits to another
//! physician, who accepts or declines with a note. The rules (who may refer whom) are the
//! `referrals` use case's; this area stores and answers atomically.
//!
//! A referral about a patient with a record (`patient_ref`) also goes to the record source
//! as a FHIR `ServiceRequest` (`records::service_request`): its outbox row
//! (`referral_writes`, migration 0011) is made in the same transaction as the referral and
//! made due again in the same transaction as the answer (its `version` goes up, so a write
//! of the older version that ends meanwhile does not count as this one). Rows are claimed
//! with a lease, like the visit notes' (`visit_notes.rs`).

use super::{Claim, DurableError, FailedAttempt, NewLink, PendingWrite};
use crate::ids::{LinkId, PatientRef, ReferralId, RoomId, StaffId, VisitId};
use crate::records::service_request::{ReferralWrite, RequestAnswer};
use crate::visit::Millis;
use serde::Serialize;

/// How soon the receiving physician should see the patient (FHIR `ServiceRequest.priority`,
/// without `stat`: a video referral is not an emergency route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Routine,
    Urgent,
    Asap,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
            Urgency::Asap => "asap",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Urgency::Routine, Urgency::Urgent, Urgency::Asap]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    Pending,
    Accepted,
    Declined,
}

impl ReferralStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Pending => "pending",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::Declined => "declined",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Declined]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReferral {
    pub visit: VisitId,
    pub patient_ref: Option<PatientRef>,
    pub patient_name: Option<String>,
    pub from: StaffId,
    pub to: StaffId,
    /// Clinical free text: never logged.
    pub reason: String,
    pub urgency: Urgency,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: ReferralId,
    pub new: NewReferral,
    pub status: ReferralStatus,
    pub response_note: Option<String>,
    pub responded_at: Option<Millis>,
    /// Accepted to be seen in the receiving physician's waiting room: the patient's link.
    pub join: Option<ReferralJoin>,
}

/// The join link an accepted referral gave the patient into a waiting room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralJoin {
    pub link: LinkId,
    pub room: RoomId,
    pub expires_at: Millis,
}

/// What the record's copy of a referral needs beyond the referral: the physicians' names
/// as their accounts have them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCopy {
    pub requester_name: String,
    pub performer_name: String,
}

/// A referral write claimed by this node: what to send, and the version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedReferralWrite {
    /// `encounter` is not filled here: the outbox looks for the visit's note.
    pub write: ReferralWrite,
    pub version: i64,
    pub attempts: u32,
    /// Since when this version waits to be written (the referral, or its answer).
    pub pending_since: Millis,
}

/// Where a referral stands with the record source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralRecordState {
    /// `true` once the record holds the referral as it stands now.
    pub written: bool,
    /// `ServiceRequest/<id>`, once the record took any version.
    pub service_request: Option<String>,
    pub attempts: u32,
}

#[async_trait::async_trait]
pub trait ReferralStore: Send + Sync {
    /// Keeps the referral and, with `record` (the patient has a record), its pending
    /// write to the record, in one transaction.
    async fn create_referral(
        &self,
        new: NewReferral,
        record: Option<RecordCopy>,
    ) -> Result<Referral, DurableError>;

    async fn referral(&self, id: &ReferralId) -> Result<Option<Referral>, DurableError>;

    /// Sent to `staff` (`inbox`) or by `staff` (not `inbox`), newest first, at most 500.
    async fn referrals_of(
        &self,
        staff: &StaffId,
        inbox: bool,
    ) -> Result<Vec<Referral>, DurableError>;

    /// Made in `visit`, oldest first.
    async fn referrals_for_visit(&self, visit: &VisitId) -> Result<Vec<Referral>, DurableError>;

    /// Answers a pending referral in one transaction: of two concurrent answers one wins
    /// and the other is `Conflict{status}`; an unknown id is `NotFound`. With `join`, the
    /// patient's join link is made in it too. The record write, if any, is due again.
    async fn answer_referral(
        &self,
        id: &ReferralId,
        status: ReferralStatus,
        note: Option<String>,
        at: Millis,
        join: Option<NewLink>,
    ) -> Result<Referral, DurableError>;

    /// Take the lease `claim` asks for on the referral writes due, in one statement.
    /// Oldest due first.
    async fn claim_referral_writes(
        &self,
        claim: Claim<'_>,
    ) -> Result<Vec<ClaimedReferralWrite>, DurableError>;

    /// The lease holder says the record took `version`; the row is `written` unless an
    /// answer made a newer version meanwhile (then it stays due). `false` when `owner` no
    /// longer holds the lease.
    async fn referral_written(
        &self,
        id: &ReferralId,
        owner: &str,
        version: i64,
        service_request: &str,
        at: Millis,
    ) -> Result<bool, DurableError>;

    /// The lease holder says its attempt failed (see [`FailedAttempt`]). `false` when it
    /// no longer holds the lease.
    async fn referral_write_failed(
        &self,
        id: &ReferralId,
        attempt: FailedAttempt<'_>,
    ) -> Result<bool, DurableError>;

    /// Referral writes pending or given up, oldest first, at most `limit` (capped at 1000).
    async fn pending_referral_writes(&self, limit: i64) -> Result<Vec<PendingWrite>, DurableError>;

    /// Where the referral stands with the record source; `None` when it is not written
    /// there (no patient record).
    async fn referral_record_state(
        &self,
        id: &ReferralId,
    ) -> Result<Option<ReferralRecordState>, DurableError>;
}

pub(crate) type ReferralRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

pub(crate) const REFERRAL_COLUMNS: &str = "id, visit_id, patient_ref, patient_name, from_staff, \
     to_staff, reason, urgency, status, response_note, created_at, responded_at, join_link_id, \
     join_room_id, join_expires_at";

pub(crate) fn decode_referral(r: ReferralRow) -> Result<Referral, DurableError> {
    let bad = |what: &str| DurableError::Internal(format!("referral: bad {what}"));
    Ok(Referral {
        id: ReferralId::parse(&r.0).map_err(|_| bad("id"))?,
        new: NewReferral {
            visit: VisitId::parse(&r.1).map_err(|_| bad("visit"))?,
            patient_ref: r
                .2
                .map(|p| PatientRef::parse(&p))
                .transpose()
                .map_err(|_| bad("patient"))?,
            patient_name: r.3,
            from: StaffId::parse(&r.4).map_err(|_| bad("from"))?,
            to: StaffId::parse(&r.5).map_err(|_| bad("to"))?,
            reason: r.6,
            urgency: Urgency::parse(&r.7).ok_or_else(|| bad("urgency"))?,
            at: r.10,
        },
        status: ReferralStatus::parse(&r.8).ok_or_else(|| bad("status"))?,
        response_note: r.9,
        responded_at: r.11,
        join: match (r.12, r.13, r.14) {
            (Some(link), Some(room), Some(expires_at)) => Some(ReferralJoin {
                link: LinkId::parse(&link).map_err(|_| bad("join link"))?,
                room: RoomId::parse(&room).map_err(|_| bad("join room"))?,
                expires_at,
            }),
            _ => None,
        },
    })
}

/// A claimed outbox row: the referral, the names, the version and attempts so far.
pub(crate) type ClaimRow = (String, String, i64, i64, i64);

/// The write a claimed row stands for. `None` for a referral without a patient record
/// (no such row is ever made; a row left by hand is skipped).
pub(crate) fn decode_claim(
    r: Referral,
    (requester_name, performer_name, version, attempts, pending_since): ClaimRow,
) -> Option<ClaimedReferralWrite> {
    let answer = match r.status {
        ReferralStatus::Pending => None,
        s => Some(RequestAnswer {
            accepted: s == ReferralStatus::Accepted,
            note: r.response_note.clone(),
            at: r.responded_at.unwrap_or(r.new.at),
        }),
    };
    Some(ClaimedReferralWrite {
        write: ReferralWrite {
            referral: r.id,
            visit: r.new.visit,
            patient: r.new.patient_ref?,
            requester: r.new.from,
            requester_name,
            performer: r.new.to,
            performer_name,
            reason: r.new.reason,
            priority: r.new.urgency.as_str().to_owned(),
            authored_on: r.new.at,
            answer,
            encounter: None,
        },
        version,
        attempts: attempts.clamp(0, u32::MAX as i64) as u32,
        pending_since,
    })
}

pub(crate) use super::record_writes::{FAILED, PENDING as PENDING_WRITE, WRITTEN};

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_referral_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl ReferralStore for $store {
            async fn create_referral(
                &self,
                new: $crate::durable::referrals::NewReferral,
                record: Option<$crate::durable::referrals::RecordCopy>,
            ) -> Result<$crate::durable::referrals::Referral, DurableError> {
                let id = $crate::ids::ReferralId::new();
                let status = $crate::durable::referrals::ReferralStatus::Pending;
                let known: Vec<(String,)> =
                    sqlx::query_as("SELECT id FROM staff WHERE id = $1 OR id = $2")
                        .bind(new.from.as_str())
                        .bind(new.to.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                for (field, who) in [("from", &new.from), ("to", &new.to)] {
                    if !known.iter().any(|(k,)| k == who.as_str()) {
                        return Err(DurableError::invalid(field, "no such staff member"));
                    }
                }
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO referrals (id, visit_id, patient_ref, patient_name, from_staff, \
                     to_staff, reason, urgency, status, response_note, created_at, responded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, NULL)",
                )
                .bind(id.as_str())
                .bind(new.visit.as_str())
                .bind(new.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(new.patient_name.as_deref())
                .bind(new.from.as_str())
                .bind(new.to.as_str())
                .bind(&new.reason)
                .bind(new.urgency.as_str())
                .bind(status.as_str())
                .bind(new.at)
                .execute(&mut *tx)
                .await?;
                if let (Some(copy), Some(_)) = (record, new.patient_ref.as_ref()) {
                    sqlx::query(
                        "INSERT INTO referral_writes (referral_id, requester_name, performer_name, \
                         version, state, attempts, created_at, next_attempt_at, pending_since) \
                         VALUES ($1, $2, $3, 1, $4, 0, $5, $5, $5)",
                    )
                    .bind(id.as_str())
                    .bind(&copy.requester_name)
                    .bind(&copy.performer_name)
                    .bind($crate::durable::referrals::PENDING_WRITE)
                    .bind(new.at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok($crate::durable::referrals::Referral {
                    id,
                    new,
                    status,
                    response_note: None,
                    responded_at: None,
                    join: None,
                })
            }

            async fn referral(
                &self,
                id: &$crate::ids::ReferralId,
            ) -> Result<Option<$crate::durable::referrals::Referral>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM referrals WHERE id = $1",
                    $crate::durable::referrals::REFERRAL_COLUMNS
                );
                self.find_one(&sql, id.as_str(), $crate::durable::referrals::decode_referral)
                    .await
            }

            async fn referrals_of(
                &self,
                staff: &$crate::ids::StaffId,
                inbox: bool,
            ) -> Result<Vec<$crate::durable::referrals::Referral>, DurableError> {
                let column = if inbox { "to_staff" } else { "from_staff" };
                let sql = format!(
                    "SELECT {} FROM referrals WHERE {column} = $1 \
                     ORDER BY created_at DESC, id LIMIT 500",
                    $crate::durable::referrals::REFERRAL_COLUMNS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::referrals::ReferralRow>(&sql)
                        .bind(staff.as_str()),
                    $crate::durable::referrals::decode_referral,
                )
                .await
            }

            async fn referrals_for_visit(
                &self,
                visit: &$crate::ids::VisitId,
            ) -> Result<Vec<$crate::durable::referrals::Referral>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM referrals WHERE visit_id = $1 ORDER BY created_at, id",
                    $crate::durable::referrals::REFERRAL_COLUMNS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::referrals::ReferralRow>(&sql)
                        .bind(visit.as_str()),
                    $crate::durable::referrals::decode_referral,
                )
                .await
            }

            async fn answer_referral(
                &self,
                id: &$crate::ids::ReferralId,
                status: $crate::durable::referrals::ReferralStatus,
                note: Option<String>,
                at: Millis,
                join: Option<$crate::durable::NewLink>,
            ) -> Result<$crate::durable::referrals::Referral, DurableError> {
                use $crate::durable::referrals::*;
                let mut tx = self.begin_write().await?;
                // One statement decides: only a pending referral changes, so one answer wins.
                let done = sqlx::query(
                    "UPDATE referrals SET status = $2, response_note = $3, responded_at = $4, \
                     join_link_id = $5, join_room_id = $6, join_expires_at = $7 \
                     WHERE id = $1 AND status = 'pending'",
                )
                .bind(id.as_str())
                .bind(status.as_str())
                .bind(note.as_deref())
                .bind(at)
                .bind(join.as_ref().map(|l| l.id.as_str().to_owned()))
                .bind(join.as_ref().map(|l| l.room.as_str().to_owned()))
                .bind(join.as_ref().map(|l| l.expires_at))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    if let Some(link) = &join {
                        Self::room_in_use(&mut *tx, &link.room).await?;
                        Self::insert_link(link).execute(&mut *tx).await?;
                    }
                    sqlx::query(
                        "UPDATE referral_writes SET version = version + 1, state = $2, \
                         attempts = 0, next_attempt_at = $3, pending_since = $3 \
                         WHERE referral_id = $1",
                    )
                    .bind(id.as_str())
                    .bind(PENDING_WRITE)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                let sql = format!("SELECT {REFERRAL_COLUMNS} FROM referrals WHERE id = $1");
                let now: Option<ReferralRow> = sqlx::query_as(&sql)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                match (done.rows_affected(), now) {
                    (_, None) => Err(DurableError::NotFound { what: "referral" }),
                    (0, Some(_)) => Err(DurableError::conflict("status", "already answered")),
                    (_, Some(r)) => decode_referral(r),
                }
            }

            async fn claim_referral_writes(
                &self,
                claim: $crate::durable::Claim<'_>,
            ) -> Result<Vec<$crate::durable::referrals::ClaimedReferralWrite>, DurableError> {
                use $crate::durable::referrals::*;
                let claimed: Vec<(String,)> = self
                    .claim_record_writes("referral_writes", "referral_id", "referral_id", claim)
                    .await?;
                let mut out = Vec::with_capacity(claimed.len());
                for (id,) in claimed {
                    // The version first, then the referral: an answer in between makes the
                    // referral newer than the version, so the row stays due after this
                    // write and the next one sends the answer (never the reverse).
                    let row: Option<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
                        "SELECT requester_name, performer_name, version, attempts, \
                         pending_since, next_attempt_at FROM referral_writes \
                         WHERE referral_id = $1 AND lease_owner = $2",
                    )
                    .bind(&id)
                    .bind(claim.owner)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some((requester, performer, version, attempts, since, due)) = row else {
                        continue;
                    };
                    let referral_id: $crate::ids::ReferralId =
                        parse_id(&id, "referral_writes.referral_id")?;
                    let Some(referral) = self.referral(&referral_id).await? else {
                        continue;
                    };
                    if let Some(c) =
                        decode_claim(referral, (requester, performer, version, attempts, since))
                    {
                        out.push((due, c));
                    }
                }
                out.sort_by(|a, b| (a.0, &a.1.write.referral).cmp(&(b.0, &b.1.write.referral)));
                Ok(out.into_iter().map(|(_, c)| c).collect())
            }

            async fn referral_written(
                &self,
                id: &$crate::ids::ReferralId,
                owner: &str,
                version: i64,
                service_request: &str,
                at: Millis,
            ) -> Result<bool, DurableError> {
                use $crate::durable::referrals::*;
                let done = sqlx::query(
                    "UPDATE referral_writes SET \
                     state = CASE WHEN version = $3 THEN $4 ELSE state END, \
                     written_at = CASE WHEN version = $3 THEN $6 ELSE written_at END, \
                     service_request_ref = $5, last_attempt_at = $6, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE referral_id = $1 AND lease_owner = $2 AND state = $7",
                )
                .bind(id.as_str())
                .bind(owner)
                .bind(version)
                .bind(WRITTEN)
                .bind(service_request)
                .bind(at)
                .bind(PENDING_WRITE)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn referral_write_failed(
                &self,
                id: &$crate::ids::ReferralId,
                attempt: $crate::durable::FailedAttempt<'_>,
            ) -> Result<bool, DurableError> {
                self.record_write_failed("referral_writes", "referral_id", id.as_str(), attempt)
                    .await
            }

            async fn pending_referral_writes(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::durable::PendingWrite>, DurableError> {
                use $crate::durable::referrals::*;
                let rows: Vec<PendingRow> = sqlx::query_as(
                    "SELECT r.id AS referral_id, r.visit_id, r.from_staff AS staff_id, \
                     w.created_at AS saved_at, w.attempts, w.next_attempt_at, w.last_attempt_at, \
                     w.last_error, w.lease_until, w.state \
                     FROM referral_writes w JOIN referrals r ON r.id = w.referral_id \
                     WHERE w.state IN ($1, $3) ORDER BY w.created_at, r.id LIMIT $2",
                )
                .bind(PENDING_WRITE)
                .bind(limit.clamp(0, 1000))
                .bind(FAILED)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(|r| r.decode()).collect()
            }

            async fn referral_record_state(
                &self,
                id: &$crate::ids::ReferralId,
            ) -> Result<Option<$crate::durable::referrals::ReferralRecordState>, DurableError> {
                use $crate::durable::referrals::*;
                let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
                    "SELECT state, service_request_ref, attempts FROM referral_writes \
                     WHERE referral_id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(state, service_request, attempts)| ReferralRecordState {
                    written: state == WRITTEN,
                    service_request,
                    attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                }))
            }
        }
    };
}

pub(super) use impl_referral_store;
