//! Visit history (every transition, and a summary per visit) and post-visit surveys.

use super::{DurableError, ExperienceStats};
use crate::ids::{PatientRef, RoomId, StaffId, VisitId};
use crate::visit::{Millis, VisitState};
use serde::Serialize;

/// One transition, as the live visit state machine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitEvent {
    pub visit: VisitId,
    pub room: RoomId,
    pub state: VisitState,
    pub at: Millis,
    /// Who caused it (staff id, participant id, `system`).
    pub actor: Option<String>,
    /// The physician involved (who admitted, who is in the call).
    pub physician: Option<StaffId>,
    pub patient_ref: Option<PatientRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitTransition {
    pub state: VisitState,
    pub at: Millis,
    pub actor: Option<String>,
    pub physician: Option<StaffId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitRecord {
    pub id: VisitId,
    pub room: RoomId,
    /// The latest state reported.
    pub state: VisitState,
    /// First `Waiting` (or the first event, if `Waiting` never arrived).
    pub created_at: Millis,
    pub admitted_at: Option<Millis>,
    pub admitted_by: Option<StaffId>,
    /// First `InCall`.
    pub call_started_at: Option<Millis>,
    /// First final state.
    pub ended_at: Option<Millis>,
    /// The final state, once there is one.
    pub outcome: Option<VisitState>,
    /// The last physician named by any event.
    pub physician: Option<StaffId>,
    pub patient_ref: Option<PatientRef>,
    /// The name on the visit's patient link, as staff wrote it (none for a link without one).
    pub patient_name: Option<String>,
    /// `(admitted_at, else ended_at) - created_at`, seconds.
    pub wait_secs: Option<f64>,
    /// `ended_at - call_started_at`, seconds.
    pub call_secs: Option<f64>,
    /// In time order.
    pub transitions: Vec<VisitTransition>,
}

/// Which visits: all fields optional and combined with AND. `from`/`to` bound
/// `created_at` (`from` inclusive, `to` exclusive). Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitFilter {
    pub room: Option<RoomId>,
    pub physician: Option<StaffId>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    /// Most visits returned by `list_visits`; ignored by `experience`.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSurvey {
    pub visit: VisitId,
    /// 0..=10, "how likely are you to recommend…".
    pub score: i64,
    pub comment: Option<String>,
    pub at: Millis,
}

/// Visit history, surveys and the statistics over them.
#[async_trait::async_trait]
pub trait VisitStore: Send + Sync {
    /// Appends a transition and updates the visit's summary in one transaction.
    /// Recording the same `(visit, state, at)` twice changes nothing.
    async fn record_visit_event(&self, ev: VisitEvent) -> Result<(), DurableError>;

    async fn visit(&self, id: &VisitId) -> Result<Option<VisitRecord>, DurableError>;

    async fn list_visits(&self, f: &VisitFilter) -> Result<Vec<VisitRecord>, DurableError>;

    /// Score outside 0..=10 → `Invalid{score}`; unknown visit → `NotFound{visit}`;
    /// a second survey for a visit → `Conflict{visit}`.
    async fn submit_survey(&self, s: NewSurvey) -> Result<(), DurableError>;

    /// NPS over surveys of the matching visits; wait and no-show figures over the visits.
    async fn experience(&self, f: &VisitFilter) -> Result<ExperienceStats, DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_visit_store {
    ($store:ty) => {
        impl $store {
            async fn visit_summaries(
                &self,
                f: &VisitFilter,
                limit: i64,
            ) -> Result<Vec<VisitRow>, DurableError> {
                let cols = VISIT_COLS
                    .split(", ")
                    .map(|c| format!("v.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {cols}, {VISIT_PATIENT_NAME} FROM visits v WHERE {VISIT_FILTER} \
                     ORDER BY v.created_at DESC, v.id LIMIT $5"
                );
                Ok(sqlx::query_as::<_, VisitRow>(&sql)
                    .bind(f.room.as_ref().map(|r| r.as_str().to_owned()))
                    .bind(f.physician.as_ref().map(|p| p.as_str().to_owned()))
                    .bind(f.from)
                    .bind(f.to)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn visit_events(&self, visit_id: &str) -> Result<Vec<EventRow>, DurableError> {
                Ok(sqlx::query_as::<_, EventRow>(&format!(
                    "SELECT {EVENT_COLS} FROM visit_events WHERE visit_id = $1 ORDER BY at, id"
                ))
                .bind(visit_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn visit_record(&self, row: VisitRow) -> Result<VisitRecord, DurableError> {
                let transitions = self
                    .visit_events(&row.id)
                    .await?
                    .iter()
                    .map(EventRow::to_transition)
                    .collect::<Result<Vec<_>, _>>()?;
                row.into_record(transitions)
            }
        }

        #[async_trait::async_trait]
        impl VisitStore for $store {
            async fn record_visit_event(&self, ev: VisitEvent) -> Result<(), DurableError> {
                let mut tx = self.begin_write().await?;
                // Create or touch the summary row first: in PostgreSQL this locks it, so
                // events of one visit are applied one at a time.
                sqlx::query(
                    "INSERT INTO visits (id, room_id, state, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET id = visits.id",
                )
                .bind(ev.visit.as_str())
                .bind(ev.room.as_str())
                .bind(ev.state.as_str())
                .bind(ev.at)
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO visit_events (visit_id, state, at, actor, physician_id, \
                     patient_ref) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (visit_id, state, at) DO NOTHING",
                )
                .bind(ev.visit.as_str())
                .bind(ev.state.as_str())
                .bind(ev.at)
                .bind(&ev.actor)
                .bind(ev.physician.as_ref().map(|p| p.as_str().to_owned()))
                .bind(ev.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // The same transition again (a retry): nothing changes.
                    tx.rollback().await?;
                    return Ok(());
                }
                let events = sqlx::query_as::<_, EventRow>(&format!(
                    "SELECT {EVENT_COLS} FROM visit_events WHERE visit_id = $1 ORDER BY at, id"
                ))
                .bind(ev.visit.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let s = summarise(&events)?;
                sqlx::query(
                    "UPDATE visits SET state = $2, created_at = $3, admitted_at = $4, \
                     admitted_by = $5, call_started_at = $6, ended_at = $7, outcome = $8, \
                     physician_id = $9, patient_ref = $10 WHERE id = $1",
                )
                .bind(ev.visit.as_str())
                .bind(&s.state)
                .bind(s.created_at)
                .bind(s.admitted_at)
                .bind(&s.admitted_by)
                .bind(s.call_started_at)
                .bind(s.ended_at)
                .bind(&s.outcome)
                .bind(&s.physician_id)
                .bind(&s.patient_ref)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn visit(
                &self,
                id: &$crate::ids::VisitId,
            ) -> Result<Option<VisitRecord>, DurableError> {
                let Some(row) = sqlx::query_as::<_, VisitRow>(&format!(
                    "SELECT {VISIT_COLS}, {VISIT_PATIENT_NAME} FROM visits v WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                Ok(Some(self.visit_record(row).await?))
            }

            async fn list_visits(&self, f: &VisitFilter) -> Result<Vec<VisitRecord>, DurableError> {
                let rows = self
                    .visit_summaries(f, f.limit.unwrap_or(i64::MAX).max(0))
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    out.push(self.visit_record(row).await?);
                }
                Ok(out)
            }

            // --- surveys -----------------------------------------------------------------

            async fn submit_survey(&self, s: NewSurvey) -> Result<(), DurableError> {
                if !(0..=10).contains(&s.score) {
                    return Err(DurableError::invalid("score", "must be between 0 and 10"));
                }
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM visits WHERE id = $1")
                        .bind(s.visit.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if known.is_none() {
                    return Err(DurableError::NotFound { what: "visit" });
                }
                let r = sqlx::query(
                    "INSERT INTO surveys (visit_id, score, comment, at) VALUES ($1, $2, $3, $4)",
                )
                .bind(s.visit.as_str())
                .bind(s.score)
                .bind(&s.comment)
                .bind(s.at)
                .execute(&self.pool)
                .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique(&e, "") => Err(DurableError::conflict(
                        "visit",
                        "a survey was already submitted for this visit",
                    )),
                    Err(e) if is_foreign_key(&e) => Err(DurableError::NotFound { what: "visit" }),
                    Err(e) => Err(e.into()),
                }
            }

            async fn experience(&self, f: &VisitFilter) -> Result<ExperienceStats, DurableError> {
                let visits = self.visit_summaries(f, i64::MAX).await?;
                let mut waits = Vec::new();
                let (mut finished, mut no_shows) = (0u64, 0u64);
                for v in visits.iter() {
                    // Reuse the record's own wait definition.
                    let r = v.clone().into_record(Vec::new())?;
                    if let Some(w) = r.wait_secs {
                        waits.push(w);
                    }
                    if let Some(o) = r.outcome {
                        finished += 1;
                        if o == $crate::visit::VisitState::NoShow {
                            no_shows += 1;
                        }
                    }
                }
                let scores: Vec<(i64,)> = sqlx::query_as(&format!(
                    "SELECT s.score FROM surveys s JOIN visits v ON v.id = s.visit_id \
                     WHERE {VISIT_FILTER}"
                ))
                .bind(f.room.as_ref().map(|r| r.as_str().to_owned()))
                .bind(f.physician.as_ref().map(|p| p.as_str().to_owned()))
                .bind(f.from)
                .bind(f.to)
                .fetch_all(&self.pool)
                .await?;
                let scores: Vec<i64> = scores.into_iter().map(|(s,)| s).collect();
                let counts = stats::NpsCounts::from_scores(&scores);
                Ok(ExperienceStats {
                    nps: counts.nps(),
                    answers: counts.answers(),
                    promoters: counts.promoters,
                    passives: counts.passives,
                    detractors: counts.detractors,
                    median_wait_secs: stats::median(&waits),
                    p90_wait_secs: stats::p90(&waits),
                    no_show_rate: stats::rate(no_shows, finished),
                    visits: visits.len() as u64,
                })
            }
        }
    };
}

pub(super) use impl_visit_store;
