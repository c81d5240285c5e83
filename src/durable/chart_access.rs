//! Who may open a visit's record beyond the physician in it: the patient's identity check
//! and physicians' emergency access.

use super::DurableError;
use crate::ids::{PatientRef, RoomId, StaffId, VisitId};
use crate::visit::Millis;
use serde::Serialize;

/// A visit's identity check: answers taken (right or wrong) and when the patient confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCheck {
    pub attempts: u32,
    pub confirmed_at: Option<Millis>,
}

/// A physician opens one visit's record around the identity check, with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewEmergencyAccess {
    pub visit: VisitId,
    pub room: RoomId,
    pub staff: StaffId,
    pub patient_ref: Option<PatientRef>,
    /// Free text from the physician; kept for the admins' review, never logged.
    pub reason: String,
    pub at: Millis,
}

/// A recorded grant: what was asked for (the reason trimmed), under its own id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmergencyAccess {
    pub id: String,
    #[serde(flatten)]
    pub grant: NewEmergencyAccess,
}

/// Identity checks and emergency access.
#[async_trait::async_trait]
pub trait ChartAccessStore: Send + Sync {
    /// The visit's identity check, if any answer was ever taken.
    async fn identity_check(&self, visit: &VisitId) -> Result<Option<IdentityCheck>, DurableError>;

    /// Takes one answer slot in a single atomic statement, before the answer is compared:
    /// of concurrent callers at most `max` ever get one. The slot's number (1-based), or
    /// `None` when the visit is already confirmed or all `max` slots are taken.
    async fn take_identity_attempt(
        &self,
        visit: &VisitId,
        max: u32,
    ) -> Result<Option<u32>, DurableError>;

    /// Marks the visit's patient confirmed (keeps the first time); `NotFound{visit}` when
    /// no slot was taken.
    async fn confirm_identity(&self, visit: &VisitId, at: Millis) -> Result<(), DurableError>;

    /// Empty reason → `Invalid{reason}`; unknown staff → `Invalid{staff}`.
    async fn record_emergency_access(
        &self,
        e: NewEmergencyAccess,
    ) -> Result<EmergencyAccess, DurableError>;

    /// Whether `staff` was granted emergency access to this visit's record.
    async fn emergency_access_granted(
        &self,
        visit: &VisitId,
        staff: &StaffId,
    ) -> Result<bool, DurableError>;

    /// Newest first, at most `limit` (capped at 1000).
    async fn list_emergency_access(&self, limit: i64)
    -> Result<Vec<EmergencyAccess>, DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_chart_access_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl ChartAccessStore for $store {
            async fn identity_check(
                &self,
                visit: &$crate::ids::VisitId,
            ) -> Result<Option<$crate::durable::IdentityCheck>, DurableError> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT attempts, confirmed_at FROM visit_identity WHERE visit_id = $1",
                )
                .bind(visit.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(attempts, confirmed_at)| $crate::durable::IdentityCheck {
                    attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                    confirmed_at,
                }))
            }

            async fn take_identity_attempt(
                &self,
                visit: &$crate::ids::VisitId,
                max: u32,
            ) -> Result<Option<u32>, DurableError> {
                if max == 0 {
                    return Ok(None);
                }
                // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes
                // concurrent callers take slots one after another.
                let row: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO visit_identity (visit_id, attempts, confirmed_at) VALUES ($1, 1, NULL) \
                     ON CONFLICT (visit_id) DO UPDATE SET attempts = visit_identity.attempts + 1 \
                     WHERE visit_identity.attempts < $2 AND visit_identity.confirmed_at IS NULL \
                     RETURNING attempts",
                )
                .bind(visit.as_str())
                .bind(max as i64)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(n,)| n.clamp(0, u32::MAX as i64) as u32))
            }

            async fn confirm_identity(
                &self,
                visit: &$crate::ids::VisitId,
                at: Millis,
            ) -> Result<(), DurableError> {
                let q = sqlx::query(
                    "UPDATE visit_identity SET confirmed_at = COALESCE(confirmed_at, $2) \
                     WHERE visit_id = $1",
                )
                .bind(visit.as_str())
                .bind(at);
                self.update_one(q, "visit").await
            }

            async fn record_emergency_access(
                &self,
                e: $crate::durable::NewEmergencyAccess,
            ) -> Result<$crate::durable::EmergencyAccess, DurableError> {
                let reason = e.reason.trim().to_owned();
                if reason.is_empty() {
                    return Err(DurableError::invalid("reason", "must not be empty"));
                }
                let id = $crate::ids::random_id();
                sqlx::query(
                    "INSERT INTO emergency_access (id, visit_id, room_id, staff_id, patient_ref, reason, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(e.visit.as_str())
                .bind(e.room.as_str())
                .bind(e.staff.as_str())
                .bind(e.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(&reason)
                .bind(e.at)
                .execute(&self.pool)
                .await
                .map_err(unknown_staff)?;
                let grant = $crate::durable::NewEmergencyAccess { reason, ..e };
                Ok($crate::durable::EmergencyAccess { id, grant })
            }

            async fn emergency_access_granted(
                &self,
                visit: &$crate::ids::VisitId,
                staff: &$crate::ids::StaffId,
            ) -> Result<bool, DurableError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM emergency_access WHERE visit_id = $1 AND staff_id = $2 LIMIT 1",
                )
                .bind(visit.as_str())
                .bind(staff.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn list_emergency_access(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::durable::EmergencyAccess>, DurableError> {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(String, String, String, String, Option<String>, String, i64)> =
                    sqlx::query_as(
                        "SELECT id, visit_id, room_id, staff_id, patient_ref, reason, at \
                         FROM emergency_access ORDER BY at DESC, id LIMIT $1",
                    )
                    .bind(limit.clamp(0, 1000))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(id, visit, room, staff, patient, reason, at)| {
                        let grant = $crate::durable::NewEmergencyAccess {
                            visit: parse_id(&visit, "emergency_access.visit_id")?,
                            room: parse_id(&room, "emergency_access.room_id")?,
                            staff: parse_id(&staff, "emergency_access.staff_id")?,
                            patient_ref: patient
                                .map(|p| parse_id(&p, "emergency_access.patient_ref"))
                                .transpose()?,
                            reason,
                            at,
                        };
                        Ok($crate::durable::EmergencyAccess { id, grant })
                    })
                    .collect()
            }
        }
    };
}

pub(super) use impl_chart_access_store;
