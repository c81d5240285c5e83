//! Referrals (issue 22): a physician refers the patient of one of their visits to another
//! physician, who accepts or declines with a note. The rules (who may refer whom) are the
//! `referrals` use case's; this area stores and answers atomically.

use super::DurableError;
use crate::ids::{PatientRef, ReferralId, StaffId, VisitId};
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
}

#[async_trait::async_trait]
pub trait ReferralStore: Send + Sync {
    async fn create_referral(&self, new: NewReferral) -> Result<Referral, DurableError>;

    async fn referral(&self, id: &ReferralId) -> Result<Option<Referral>, DurableError>;

    /// Sent to `staff` (`inbox`) or by `staff` (not `inbox`), newest first, at most 500.
    async fn referrals_of(
        &self,
        staff: &StaffId,
        inbox: bool,
    ) -> Result<Vec<Referral>, DurableError>;

    /// Made in `visit`, oldest first.
    async fn referrals_for_visit(&self, visit: &VisitId) -> Result<Vec<Referral>, DurableError>;

    /// Answers a pending referral in one statement: of two concurrent answers one wins and
    /// the other is `Conflict{status}`; an unknown id is `NotFound`.
    async fn answer_referral(
        &self,
        id: &ReferralId,
        status: ReferralStatus,
        note: Option<String>,
        at: Millis,
    ) -> Result<Referral, DurableError>;
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
);

pub(crate) const REFERRAL_COLUMNS: &str = "id, visit_id, patient_ref, patient_name, from_staff, \
     to_staff, reason, urgency, status, response_note, created_at, responded_at";

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
    })
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_referral_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl ReferralStore for $store {
            async fn create_referral(
                &self,
                new: $crate::durable::referrals::NewReferral,
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
                .execute(&self.pool)
                .await?;
                Ok($crate::durable::referrals::Referral {
                    id,
                    new,
                    status,
                    response_note: None,
                    responded_at: None,
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
                let rows: Vec<$crate::durable::referrals::ReferralRow> = sqlx::query_as(&sql)
                    .bind(staff.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map($crate::durable::referrals::decode_referral)
                    .collect()
            }

            async fn referrals_for_visit(
                &self,
                visit: &$crate::ids::VisitId,
            ) -> Result<Vec<$crate::durable::referrals::Referral>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM referrals WHERE visit_id = $1 ORDER BY created_at, id",
                    $crate::durable::referrals::REFERRAL_COLUMNS
                );
                let rows: Vec<$crate::durable::referrals::ReferralRow> = sqlx::query_as(&sql)
                    .bind(visit.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map($crate::durable::referrals::decode_referral)
                    .collect()
            }

            async fn answer_referral(
                &self,
                id: &$crate::ids::ReferralId,
                status: $crate::durable::referrals::ReferralStatus,
                note: Option<String>,
                at: Millis,
            ) -> Result<$crate::durable::referrals::Referral, DurableError> {
                // One statement: only a pending referral changes, so one answer wins.
                let done = sqlx::query(
                    "UPDATE referrals SET status = $2, response_note = $3, responded_at = $4 \
                     WHERE id = $1 AND status = 'pending'",
                )
                .bind(id.as_str())
                .bind(status.as_str())
                .bind(note.as_deref())
                .bind(at)
                .execute(&self.pool)
                .await?;
                let now = self.referral(id).await?;
                match (done.rows_affected(), now) {
                    (_, None) => Err(DurableError::NotFound { what: "referral" }),
                    (0, Some(_)) => Err(DurableError::conflict("status", "already answered")),
                    (_, Some(r)) => Ok(r),
                }
            }
        }
    };
}

pub(super) use impl_referral_store;
