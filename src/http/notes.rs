//! The physician's note of a visit, written back to the patient's record (issue 22).
//!
//! `POST /api/visits/{visit}/note`: the visit's physician, who may open this visit's chart
//! (`identity::chart::may_open`: their visit, within the record window, the patient
//! confirmed or emergency access), writes the note; it is audited (`records.write`), kept
//! durably, and sent to the record source by the outbox (`records::write_back`).
//! Refusals are audited like refused reads. `GET` of the same path: where the note stands
//! ("sending" or "in_record"), for that physician. `GET /api/record-writes`: notes the
//! record source has not taken yet, with why, for admins.

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::Json;
use super::records::{Who, audit, chart_refusal, chart_request};
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::durable::{NoteDelivery, PendingWrite, StoredVisitNote};
use crate::identity::chart::{self, ChartGate, ChartRules};
use crate::ids::{ReferralId, StaffId, VisitId};
use crate::records::visit_note::VisitNote;
use crate::records::write_back::{self, NoteAuthor, NoteSaveError};
use crate::state::AppState;
use crate::visit::Millis;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_note, note_status))
        .routes(routes!(pending_writes))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

/// The note: reason required; each part and the whole bounded (reason 500, findings
/// 4000, plan 4000, follow-up 1000, all together 8000 characters).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Why the patient came (the Encounter's `reasonCode.text`).
    pub reason: String,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub follow_up: String,
}

/// Where a visit's note stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    #[schema(value_type = String)]
    pub visit: VisitId,
    /// `sending`: kept by examroom, not yet in the record (the source may be down; it is
    /// retried). `in_record`: the record source holds the visit and its note. `failed`:
    /// given up after `records.write_max_attempts` or `write_max_age_hours`; an admin sees
    /// it in `GET /api/record-writes`.
    pub state: String,
    pub saved_at: Millis,
    /// When the record source took it.
    pub written_at: Option<Millis>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (while `sending`).
    pub next_attempt_at: Option<Millis>,
    /// Where it is in the record: `Encounter/<id>`, `DocumentReference/<id>`.
    pub encounter: Option<String>,
    pub document: Option<String>,
    /// The note as kept (in the answer to its submission only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<NoteBody>,
}

impl NoteView {
    fn of(n: &StoredVisitNote, with_note: bool) -> Self {
        let sending = n.state == NoteDelivery::Pending;
        let note = &n.write.note;
        NoteView {
            visit: n.write.visit.clone(),
            state: match n.state {
                NoteDelivery::Pending => "sending",
                NoteDelivery::Written => "in_record",
                NoteDelivery::Failed => "failed",
            }
            .into(),
            saved_at: n.saved_at,
            written_at: n.written_at,
            attempts: n.attempts,
            next_attempt_at: sending.then_some(n.next_attempt_at),
            encounter: n.receipt.as_ref().map(|r| r.encounter.clone()),
            document: n.receipt.as_ref().map(|r| r.document.clone()),
            note: with_note.then(|| NoteBody {
                reason: note.reason.clone(),
                findings: note.findings.clone(),
                plan: note.plan.clone(),
                follow_up: note.follow_up.clone(),
            }),
        }
    }
}

fn write_entry(actor: String, visit: &VisitId, now: Millis) -> NewAuditEntry {
    NewAuditEntry {
        at: now,
        actor,
        action: "records.write".into(),
        patient_ref: None,
        visit: Some(visit.clone()),
        sections: vec!["visit_note".into()],
        outcome: AuditOutcome::Refused,
        reason: None,
    }
}

/// The visit's physician writes the visit's note; it goes to the patient's record.
/// The same note again answers 200 with where it stands (a retried submit writes nothing
/// new); another note for the same visit is refused (409).
#[utoipa::path(post, path = "/api/visits/{visit}/note", tag = "records",
    params(("visit" = String, Path, description = "the visit id")),
    request_body = NoteBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = NoteView, description = "kept; on its way to the record"),
        (status = 200, body = NoteView, description = "this note was already kept"),
        (status = 401), (status = 403, description = "not this visit's physician, the record window closed, or the patient's identity not confirmed"),
        (status = 404, description = "unknown visit"),
        (status = 409, description = "another note is kept for this visit (`field: note`)"),
        (status = 422, description = "a part too long, the reason missing, control characters (`field` names it)")))]
async fn submit_note(
    who: Who,
    State(state): State<AppState>,
    Path(visit): Path<String>,
    // Read after the caller is known: who may not write hears that, whatever they sent.
    body: Result<Json<NoteBody>, ApiError>,
) -> Result<(StatusCode, Json<NoteView>), ApiError> {
    let visit = VisitId::parse(&visit).map_err(|_| ApiError::not_found("visit"))?;
    let now = chrono::Utc::now().timestamp_millis();
    let asker = match who.asker {
        Ok(a) => a,
        Err(refusal) => {
            let mut entry = write_entry(who.known_as, &visit, now);
            entry.reason = Some(refusal.code.as_str().to_owned());
            audit(&state, entry).await?;
            return Err(refusal);
        }
    };
    let mut entry = write_entry(asker.actor(), &visit, now);
    let rules = ChartRules::from_settings(&state.settings);
    let physician: Option<StaffId> = asker.physician().cloned();
    let request = chart_request(&state, &rules, physician.as_ref(), &visit, now);
    let (patient, gate) = match chart::may_open(request).await? {
        Ok(allowed) => allowed,
        Err(denied) => {
            entry.patient_ref = denied.patient;
            entry.reason = Some(denied.why.code().as_str().to_owned());
            audit(&state, entry).await?;
            return Err(chart_refusal(denied.why));
        }
    };
    let (Some(physician), Some(record)) = (physician, state.durable.visit(&visit).await?) else {
        return Err(ApiError::internal("a visit physician without a visit"));
    };
    let Json(body) = body?;
    let note = VisitNote {
        reason: body.reason,
        findings: body.findings,
        plan: body.plan,
        follow_up: body.follow_up,
    };
    // Bad input writes nothing, not even an audit entry of a write.
    let note = note.check().map_err(note_refusal)?;
    let name = state
        .durable
        .staff(&physician)
        .await?
        .map(|s| s.name)
        .unwrap_or_else(|| physician.to_string());
    entry.patient_ref = Some(patient.clone());
    // Another note kept for this visit: refused before anything is written (the store
    // refuses it too, should two submits race).
    if let Some(kept) = state.durable.visit_note(&visit).await?
        && kept.write.note != note
    {
        entry.reason = Some("note_already_kept".into());
        audit(&state, entry).await?;
        return Err(ApiError::conflict(
            "note",
            "this visit's note is already saved; it cannot be replaced",
        ));
    }
    // The audit entry first: a write that cannot be audited does not happen.
    entry.outcome = AuditOutcome::Allowed;
    entry.reason = match gate {
        ChartGate::Emergency => Some("emergency_access".into()),
        ChartGate::FactorOff => Some("identity_factor_none".into()),
        ChartGate::Confirmed => None,
    };
    audit(&state, entry).await?;
    let author = NoteAuthor {
        visit: &record,
        patient,
        physician,
        physician_name: name,
    };
    let saved = write_back::save_note(state.durable.as_ref(), author, note, now)
        .await
        .map_err(|e| match e {
            NoteSaveError::Invalid(e) => note_refusal(e),
            NoteSaveError::Store(e) => e.into(),
        })?;
    state.notes.wake();
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(NoteView::of(&saved.note, true))))
}

fn note_refusal(e: crate::records::visit_note::NoteError) -> ApiError {
    ApiError::invalid(e.field(), e.to_string())
}

/// Where the visit's note stands: `sending` or `in_record`. The visit's physician only,
/// within the record window; the note's text is not in it (it is chart content).
#[utoipa::path(get, path = "/api/visits/{visit}/note", tag = "records",
    params(("visit" = String, Path, description = "the visit id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = NoteView), (status = 401),
        (status = 403, description = "not this visit's physician, or the record window closed"),
        (status = 404, description = "unknown visit, or no note kept for it")))]
async fn note_status(
    who: Who,
    State(state): State<AppState>,
    Path(visit): Path<String>,
) -> Result<Json<NoteView>, ApiError> {
    let visit = VisitId::parse(&visit).map_err(|_| ApiError::not_found("visit"))?;
    let asker = who.asker?;
    let now = chrono::Utc::now().timestamp_millis();
    let rules = ChartRules::from_settings(&state.settings);
    let request = chart_request(&state, &rules, asker.physician(), &visit, now);
    if let Err(denied) = chart::physician_of_visit(request).await? {
        return Err(chart_refusal(denied.why));
    }
    let note = state
        .durable
        .visit_note(&visit)
        .await?
        .ok_or_else(|| ApiError::not_found("note"))?;
    Ok(Json(NoteView::of(&note, false)))
}

/// A write the record source has not taken yet (a visit note, or a referral): no text,
/// no patient.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingWriteView {
    /// `visit_note` or `referral` (its `ServiceRequest`).
    pub kind: String,
    /// The referral, for `kind: referral`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub referral: Option<ReferralId>,
    #[schema(value_type = String)]
    pub visit: VisitId,
    /// Who wrote the note, or made the referral.
    #[schema(value_type = String)]
    pub staff: StaffId,
    pub saved_at: Millis,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub last_attempt_at: Option<Millis>,
    /// Why the last attempt failed (the record source's status or the transport error).
    pub last_error: Option<String>,
    /// A node is writing it now, until then.
    pub leased_until: Option<Millis>,
    /// Given up (`records.write_max_attempts` / `write_max_age_hours`): no more attempts.
    pub failed: bool,
}

impl From<PendingWrite> for PendingWriteView {
    fn from(p: PendingWrite) -> Self {
        let kind = if p.referral.is_some() {
            "referral"
        } else {
            "visit_note"
        };
        PendingWriteView {
            kind: kind.into(),
            referral: p.referral,
            visit: p.visit,
            staff: p.staff,
            saved_at: p.saved_at,
            attempts: p.attempts,
            next_attempt_at: p.next_attempt_at,
            last_attempt_at: p.last_attempt_at,
            last_error: p.last_error,
            leased_until: p.leased_until,
            failed: p.failed,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PendingQuery {
    /// Most entries returned, oldest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Visit notes and referrals not yet in the record source, oldest first, with the last
/// failure. Admins.
#[utoipa::path(get, path = "/api/record-writes", tag = "records", params(PendingQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [PendingWriteView]), (status = 403), (status = 422)))]
async fn pending_writes(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Query(q): Query<PendingQuery>,
) -> Result<Json<Vec<PendingWriteView>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let mut pending = state.durable.pending_note_writes(limit).await?;
    pending.extend(state.durable.pending_referral_writes(limit).await?);
    let mut pending: Vec<PendingWriteView> = pending.into_iter().map(Into::into).collect();
    pending.sort_by_key(|p| p.saved_at);
    pending.truncate(limit as usize);
    Ok(Json(pending))
}
