//! The patient-record side panel over HTTP, and the public key the EHR registers.
//!
//! `GET /api/visits/{visit}/record`: only a physician who admitted (or is in) that visit,
//! while it is open or for `records.after_visit_minutes` after it ended. The patient is
//! the one the join link named — a physician cannot ask for an arbitrary patient id.
//! Every request that names a visit, allowed or refused, is written to the audit log
//! (who, which patient, which sections, which visit, when, outcome). Patient data never
//! goes to the application log.

use super::auth::{ParticipantAuth, StaffAuth};
use super::error::ApiError;
use crate::app::AppState;
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::identity::Role;
use crate::ids::{PatientRef, VisitId};
use crate::records::summary::SectionStatus;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/visits/{visit}/record", get(record))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.client_key.jwks())
}

/// Whoever is asking, so that refusals are audited too.
enum Asker {
    Staff(StaffAuth),
    Participant(ParticipantAuth),
}

impl Asker {
    fn actor(&self) -> String {
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
struct Who {
    asker: Result<Asker, ApiError>,
    /// The verified token subject when there is one (a revoked session or a deactivated
    /// account still names who it was), else `ip:<client address>`.
    known_as: String,
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

async fn audit(state: &AppState, entry: NewAuditEntry) -> Result<(), ApiError> {
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
            audit_refused_read(&state, who.known_as, &visit, patient, refusal.code).await?;
            return Err(refusal);
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let decision = decide(&state, &asker, &visit, now).await?;
    let (patient_ref, refusal) = match &decision {
        Ok(p) => (Some(p.clone()), None),
        Err((p, code, why)) => (p.clone(), Some((*code, *why))),
    };
    let mut entry = NewAuditEntry {
        at: now,
        actor: asker.actor(),
        action: "records.read".into(),
        patient_ref: patient_ref.clone(),
        visit: Some(visit.clone()),
        sections: Vec::new(),
        outcome: AuditOutcome::Refused,
        reason: refusal.map(|(code, _)| code.to_owned()),
    };
    if let Some((code, why)) = refusal {
        audit_refused_read(&state, entry.actor, &visit, entry.patient_ref, code).await?;
        return Err(ApiError::forbidden(code, why));
    }
    let patient = patient_ref.expect("allowed reads name a patient");
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
            if entry.sections.len() < crate::records::record::Part::ALL.len() {
                entry.reason = Some("some_sections_unavailable".into());
            }
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
            entry.reason = Some("source_error".into());
            audit(&state, entry).await?;
            Err(records_error(e))
        }
    }
}

type Refusal = (Option<PatientRef>, &'static str, &'static str);

/// Whether `asker` may read this visit's record now: the patient, or why not.
async fn decide(
    state: &AppState,
    asker: &Asker,
    visit: &VisitId,
    now: i64,
) -> Result<Result<PatientRef, Refusal>, ApiError> {
    let mut record = state.durable.visit(visit).await?;
    let patient = record.as_ref().and_then(|r| r.patient_ref.clone());
    let staff = match asker {
        Asker::Staff(s) if s.has(Role::Physician) => s,
        _ => {
            return Ok(Err((
                patient,
                "not_physician",
                "only the visit's physician may read the record",
            )));
        }
    };
    // The visit's history is written just after the admit; allow it a moment to land.
    for _ in 0..10 {
        if record.as_ref().is_some_and(|r| r.admitted_by.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        record = state.durable.visit(visit).await?;
    }
    let Some(record) = record else {
        return Ok(Err((
            None,
            "not_your_visit",
            "you are not the physician of this visit",
        )));
    };
    let mine = record.admitted_by.as_ref() == Some(&staff.staff)
        || record.physician.as_ref() == Some(&staff.staff);
    if !mine {
        return Ok(Err((
            patient,
            "not_your_visit",
            "you are not the physician of this visit",
        )));
    }
    let window = state.settings.records.after_visit_minutes as i64 * 60_000;
    if record.ended_at.is_some_and(|end| now > end + window) {
        return Ok(Err((
            patient,
            "visit_closed",
            "the visit is over and its record window has closed",
        )));
    }
    match patient {
        Some(p) => Ok(Ok(p)),
        None => Ok(Err((
            None,
            "no_patient_record",
            "this visit's link named no patient record",
        ))),
    }
}

fn records_error(e: crate::records::RecordsError) -> ApiError {
    use crate::records::RecordsError as R;
    use axum::http::StatusCode;
    match e {
        R::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_record",
            "the record source has no such patient",
        ),
        R::Timeout(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "records_timeout",
            "the record source did not answer in time",
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "records_unavailable",
            format!("the record source failed: {other}"),
        ),
    }
}
