//! The patient-record side panel over HTTP, and the public key the EHR registers.
//!
//! `GET /api/visits/{visit}/record`: only a physician who admitted (or is in) that visit,
//! while it is open or for `records.after_visit_minutes` after it ended, and only once the
//! joining patient confirmed who they are (`identity::chart`). The patient is the one the
//! join link named — a physician cannot ask for an arbitrary patient id.
//! `POST /api/visits/{visit}/record/emergency-access`: that physician opens the chart
//! without the patient's confirmation, giving a reason; audited, admins alerted.
//! Every request that names a visit, allowed or refused, is written to the audit log
//! (who, which patient, which sections, which visit, when, outcome). Patient data never
//! goes to the application log.

use super::auth::{ParticipantAuth, StaffAuth};
use super::error::ApiError;
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::durable::NewEmergencyAccess;
use crate::identity::Role;
use crate::identity::chart::{self, ChartAccessError, ChartGate, ChartRequest, ChartRules};
use crate::ids::{PatientRef, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::records::summary::SectionStatus;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

/// The record panel's routes with their OpenAPI description (`http::openapi` merges it).
pub fn api() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(record))
        .routes(utoipa_axum::routes!(emergency_access))
}

pub fn routes() -> Router<AppState> {
    api()
        .split_for_parts()
        .0
        .route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.client_key.jwks())
}

/// Whoever is asking, so that refusals are audited too.
pub(super) enum Asker {
    Staff(StaffAuth),
    Participant(ParticipantAuth),
}

impl Asker {
    pub(super) fn actor(&self) -> String {
        match self {
            Asker::Staff(s) => s.staff.to_string(),
            Asker::Participant(p) => p.claims.sub.clone(),
        }
    }
}

async fn asker(parts: &mut Parts, state: &AppState) -> Result<Asker, ApiError> {
    match StaffAuth::from_request_parts(parts, state).await {
        Ok(s) => Ok(Asker::Staff(s)),
        Err(staff_err) => match ParticipantAuth::from_request_parts(parts, state).await {
            Ok(p) => Ok(Asker::Participant(p)),
            Err(_) => Err(staff_err),
        },
    }
}

/// Whoever is asking — or why they could not be identified, and what is known of them —
/// so that refusals at authentication are audited like every other refusal.
pub(super) struct Who {
    pub(super) asker: Result<Asker, ApiError>,
    /// The verified token subject when there is one (a revoked session or a deactivated
    /// account still names who it was), else `ip:<client address>`.
    pub(super) known_as: String,
}

impl FromRequestParts<AppState> for Who {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let asker = asker(parts, state).await;
        let known_as = match &asker {
            Ok(a) => a.actor(),
            Err(_) => presented_subject(parts, state)
                .unwrap_or_else(|| format!("ip:{}", super::auth::client_ip(state, parts))),
        };
        Ok(Who { asker, known_as })
    }
}

/// The subject of a token the caller presented, when its signature holds (it may still
/// be refused: session revoked, account deactivated, not staff).
fn presented_subject(parts: &Parts, state: &AppState) -> Option<String> {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = super::auth::session_cookie(&parts.headers);
    let token = bearer.or(cookie)?;
    state.keys.verify(token).ok().map(|c| c.sub)
}

/// Write one refused record read to the audit log: who (as far as known), which visit
/// and patient was asked for, and why it was refused (a stable reason code). Every
/// refusal of a record read goes through here, whatever refused it.
pub(crate) async fn audit_refused_read(
    state: &AppState,
    actor: String,
    visit: &VisitId,
    patient_ref: Option<PatientRef>,
    reason: &str,
) -> Result<(), ApiError> {
    let entry = NewAuditEntry {
        at: chrono::Utc::now().timestamp_millis(),
        actor,
        action: "records.read".into(),
        patient_ref,
        visit: Some(visit.clone()),
        sections: Vec::new(),
        outcome: AuditOutcome::Refused,
        reason: Some(reason.to_owned()),
    };
    audit(state, entry).await
}

pub(super) async fn audit(state: &AppState, entry: NewAuditEntry) -> Result<(), ApiError> {
    // A read that cannot be audited does not happen.
    state
        .durable
        .append_audit(entry)
        .await
        .map(|_| ())
        .map_err(ApiError::from)
}

#[derive(serde::Deserialize)]
struct RecordQuery {
    /// Read the source anew instead of serving the cache ("Refresh", "Try again").
    #[serde(default)]
    refresh: bool,
}

/// The patient-record panel for the visit's patient (docs/records.md describes the answer:
/// each section `recorded`, `none_recorded` or `unavailable`, never "none" for "not read").
/// Only the visit's physician, once the patient confirmed who they are (or with emergency
/// access); every read and every refusal is audited.
#[utoipa::path(get, path = "/api/visits/{visit}/record", tag = "records",
    params(("visit" = String, Path), ("refresh" = Option<bool>, Query,
        description = "read the source anew instead of serving the cache")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "the panel (docs/records.md)", body = serde_json::Value),
        (status = 403, description = "`not_physician`, `not_your_visit`, `identity_not_confirmed`, `identity_locked`, `visit_closed`"),
        (status = 404, description = "`no_record`: the source has no record for this patient"),
        (status = 502, description = "`records_unavailable`"),
        (status = 504, description = "`records_timeout`")))]
async fn record(
    who: Who,
    State(state): State<AppState>,
    Path(visit): Path<String>,
    Query(query): Query<RecordQuery>,
) -> Result<impl IntoResponse, ApiError> {
    // An id that does not parse names no visit and so no chart: nothing to audit.
    let visit = VisitId::parse(&visit).map_err(|_| ApiError::not_found("visit"))?;
    let asker = match who.asker {
        Ok(a) => a,
        Err(refusal) => {
            // What was asked for: the chart of the patient this visit names, if any.
            let patient = state
                .durable
                .visit(&visit)
                .await?
                .and_then(|r| r.patient_ref);
            audit_refused_read(&state, who.known_as, &visit, patient, refusal.code.as_str())
                .await?;
            return Err(refusal);
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let rules = ChartRules::from_settings(&state.settings);
    let request = chart_request(&state, &rules, asker.physician(), &visit, now);
    let decision = chart::may_open(request).await?;
    let (patient, gate) = match decision {
        Ok(allowed) => allowed,
        Err(denied) => {
            let code = denied.why.code();
            audit_refused_read(&state, asker.actor(), &visit, denied.patient, code.as_str())
                .await?;
            return Err(chart_refusal(denied.why));
        }
    };
    let mut entry = NewAuditEntry {
        at: now,
        actor: asker.actor(),
        action: "records.read".into(),
        patient_ref: Some(patient.clone()),
        visit: Some(visit.clone()),
        sections: Vec::new(),
        outcome: AuditOutcome::Refused,
        reason: None,
    };
    // Why the chart opened, when it was not the patient's confirmation.
    let note = match gate {
        ChartGate::Emergency => Some("emergency_access"),
        ChartGate::FactorOff => Some("identity_factor_none"),
        ChartGate::Confirmed => None,
    };
    match state.records.get(&visit, &patient, query.refresh).await {
        Ok(served) => {
            // Audit what was shown: the sections that could be read.
            entry.sections = served
                .summary
                .section_outcomes()
                .iter()
                .filter(|(_, st)| *st != SectionStatus::Unavailable)
                .map(|(k, _)| k.to_string())
                .collect();
            entry.outcome = AuditOutcome::Allowed;
            let partial = (entry.sections.len() < crate::records::record::Part::ALL.len())
                .then_some("some_sections_unavailable");
            let notes: Vec<&str> = note.into_iter().chain(partial).collect();
            entry.reason = (!notes.is_empty()).then(|| notes.join(";"));
            audit(&state, entry).await?;
            let mut body = serde_json::to_value(&*served.summary).map_err(ApiError::internal)?;
            body["cached"] = serde_json::Value::Bool(served.cached);
            // Patient data: no browser or proxy keeps a copy.
            Ok((
                [(axum::http::header::CACHE_CONTROL, "no-store")],
                Json(body),
            ))
        }
        Err(e) => {
            entry.reason =
                Some(note.map_or("source_error".into(), |n| format!("{n};source_error")));
            audit(&state, entry).await?;
            Err(records_error(e))
        }
    }
}

impl Asker {
    /// The asker's staff account when they hold the physician role.
    pub(super) fn physician(&self) -> Option<&StaffId> {
        match self {
            Asker::Staff(s) if s.has(Role::Physician) => Some(&s.staff),
            _ => None,
        }
    }
}

/// The chart question about `visit`, asked of this node's stores.
pub(super) fn chart_request<'a>(
    state: &'a AppState,
    rules: &'a ChartRules,
    physician: Option<&'a StaffId>,
    visit: &'a VisitId,
    now: i64,
) -> ChartRequest<'a> {
    ChartRequest {
        durable: state.durable.as_ref(),
        physician,
        visit,
        now,
        rules,
        written: &state.history_written,
    }
}

pub(super) fn chart_refusal(why: ChartAccessError) -> ApiError {
    ApiError::forbidden(why.code(), why.to_string())
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
struct EmergencyBody {
    /// Why the chart must open before the identity check (kept for the admins' review).
    reason: Option<String>,
}

/// The grant: this physician, this visit, from this time.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct EmergencyGranted {
    #[schema(value_type = String)]
    visit: VisitId,
    granted_at: i64,
}

/// The visit's physician opens the chart without the patient's identity confirmation.
/// Refused like a read (and audited) unless it is their visit; the reason is required.
#[utoipa::path(post, path = "/api/visits/{visit}/record/emergency-access", tag = "records",
    params(("visit" = String, Path)), request_body = EmergencyBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = EmergencyGranted),
        (status = 403, description = "`not_physician`, `not_your_visit`, `visit_closed`"),
        (status = 422, description = "no reason given (`field: reason`)")))]
async fn emergency_access(
    who: Who,
    State(state): State<AppState>,
    Path(visit): Path<String>,
    body: Option<Json<EmergencyBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let visit = VisitId::parse(&visit).map_err(|_| ApiError::not_found("visit"))?;
    let now = chrono::Utc::now().timestamp_millis();
    let asker = match who.asker {
        Ok(a) => a,
        Err(refusal) => {
            // Refused at authentication: audited like every other refused attempt.
            let entry = NewAuditEntry {
                at: now,
                actor: who.known_as,
                action: "records.emergency_access".into(),
                patient_ref: None,
                visit: Some(visit.clone()),
                sections: Vec::new(),
                outcome: AuditOutcome::Refused,
                reason: Some(refusal.code.as_str().to_owned()),
            };
            audit(&state, entry).await?;
            return Err(refusal);
        }
    };
    let mut entry = NewAuditEntry {
        at: now,
        actor: asker.actor(),
        action: "records.emergency_access".into(),
        patient_ref: None,
        visit: Some(visit.clone()),
        sections: Vec::new(),
        outcome: AuditOutcome::Refused,
        reason: None,
    };
    let rules = ChartRules::from_settings(&state.settings);
    let physician = asker.physician().cloned();
    let request = chart_request(&state, &rules, physician.as_ref(), &visit, now);
    let decision = chart::physician_of_visit(request).await?;
    let (record, patient) = match decision {
        Ok(v) => v,
        Err(denied) => {
            entry.patient_ref = denied.patient;
            entry.reason = Some(denied.why.code().as_str().to_owned());
            audit(&state, entry).await?;
            return Err(chart_refusal(denied.why));
        }
    };
    entry.patient_ref = Some(patient.clone());
    let reason = body
        .and_then(|Json(b)| b.reason)
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let chars = reason.chars().count();
    if !(chart::MIN_EMERGENCY_REASON_CHARS..=chart::MAX_EMERGENCY_REASON_CHARS).contains(&chars) {
        entry.reason = Some("reason_missing".into());
        audit(&state, entry).await?;
        return Err(ApiError::invalid(
            "reason",
            format!(
                "say why you need the chart without the patient's confirmation ({}-{} characters)",
                chart::MIN_EMERGENCY_REASON_CHARS,
                chart::MAX_EMERGENCY_REASON_CHARS
            ),
        ));
    }
    let Some(staff) = physician else {
        return Err(ApiError::internal("a visit physician who is not staff"));
    };
    // The audit entry first: access that cannot be audited is not granted.
    entry.outcome = AuditOutcome::Allowed;
    entry.reason = Some(format!("emergency_access: {reason}"));
    audit(&state, entry).await?;
    let recorded = state
        .durable
        .record_emergency_access(NewEmergencyAccess {
            visit: visit.clone(),
            room: record.room.clone(),
            staff: staff.clone(),
            patient_ref: Some(patient),
            reason,
            at: now,
        })
        .await?;
    // The alert admins watch for; no patient, no reason text (it may name the patient).
    tracing::warn!(
        staff = %staff,
        visit = %visit,
        room = %record.room,
        "emergency access to a patient record (review: GET /api/emergency-access)"
    );
    Ok((
        axum::http::StatusCode::CREATED,
        Json(EmergencyGranted {
            visit,
            granted_at: recorded.grant.at,
        }),
    ))
}

fn records_error(e: crate::records::RecordsError) -> ApiError {
    use crate::records::RecordsError as R;
    use axum::http::StatusCode;
    match e {
        R::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NoRecord,
            "the record source has no such patient",
        ),
        R::Timeout(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ApiErrorCode::RecordsTimeout,
            "the record source did not answer in time",
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ApiErrorCode::RecordsUnavailable,
            format!("the record source failed: {other}"),
        ),
    }
}
