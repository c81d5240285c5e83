//! Referrals (issue 22): a physician refers a visit's patient (`POST /api/referrals`), the
//! physician referred to answers (`POST /api/referrals/{id}/accept|decline`), both see
//! their lists (`GET /api/referrals?box=inbox|sent`), and the patient sees the visit's
//! referrals through their link (`GET /api/visits/{visit}/referrals`). The rules are
//! `referrals`'.

use super::auth::{ParticipantAuth, PhysicianAuth};
use super::error::ApiError;
use super::extract::Json;
use crate::durable::referrals::{Referral, ReferralStatus, Urgency};
use crate::ids::{PatientRef, ReferralId, Role, RoomId, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::referrals::{self, ReferralError, ReferralRequest, SeeInWaitingRoom};
use crate::state::AppState;
use crate::visit::Millis;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(for_patient))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The one place a refused referral becomes an answer.
fn refused(e: ReferralError) -> ApiError {
    let message = e.to_string();
    match e {
        ReferralError::UnknownVisit => {
            ApiError::new(StatusCode::NOT_FOUND, ApiErrorCode::UnknownVisit, message)
        }
        ReferralError::NotYourVisit => ApiError::forbidden(ApiErrorCode::NotYourVisit, message),
        ReferralError::UnknownPhysician => ApiError {
            field: Some("to"),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                ApiErrorCode::UnknownPhysician,
                message,
            )
        },
        ReferralError::SelfReferral => ApiError {
            field: Some("to"),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ApiErrorCode::SelfReferral,
                message,
            )
        },
        ReferralError::Invalid { field, message } => ApiError::invalid(field, message),
        ReferralError::UnknownReferral => ApiError::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownReferral,
            message,
        ),
        ReferralError::NotYours => ApiError::forbidden(ApiErrorCode::NotYourReferral, message),
        ReferralError::Answered => ApiError::new(
            StatusCode::CONFLICT,
            ApiErrorCode::ReferralAnswered,
            message,
        ),
        ReferralError::NotYourRoom => ApiError {
            field: Some("room"),
            ..ApiError::forbidden(ApiErrorCode::NotYourRoom, message)
        },
        ReferralError::NoWaitingRoom | ReferralError::ChooseRoom => ApiError {
            field: Some("room"),
            ..ApiError::new(StatusCode::NOT_FOUND, ApiErrorCode::UnknownRoom, message)
        },
        ReferralError::Store(e) => e.into(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralBody {
    /// The visit whose patient is referred; you must have been its physician.
    #[schema(value_type = String)]
    visit: VisitId,
    /// The physician referred to (staff id).
    #[schema(value_type = String)]
    to: StaffId,
    /// Why, for the receiving physician: 1–2000 characters.
    reason: String,
    urgency: Urgency,
}

/// A referral as the two physicians see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralView {
    #[schema(value_type = String)]
    id: ReferralId,
    #[schema(value_type = String)]
    visit: VisitId,
    patient_name: Option<String>,
    #[schema(value_type = Option<String>)]
    patient_ref: Option<PatientRef>,
    #[schema(value_type = String)]
    from: StaffId,
    from_name: Option<String>,
    #[schema(value_type = String)]
    to: StaffId,
    to_name: Option<String>,
    reason: String,
    urgency: Urgency,
    status: ReferralStatus,
    response_note: Option<String>,
    created_at: Millis,
    responded_at: Option<Millis>,
    /// Accepted to be seen in a waiting room: which room, and until when the patient's
    /// link opens it.
    #[schema(value_type = Option<String>)]
    join_room: Option<RoomId>,
    join_expires_at: Option<Millis>,
}

async fn names(state: &AppState) -> Result<HashMap<StaffId, String>, ApiError> {
    let staff = state.durable.list_staff().await?;
    Ok(staff.into_iter().map(|s| (s.id, s.name)).collect())
}

fn view(r: Referral, names: &HashMap<StaffId, String>) -> ReferralView {
    ReferralView {
        from_name: names.get(&r.new.from).cloned(),
        to_name: names.get(&r.new.to).cloned(),
        id: r.id,
        visit: r.new.visit,
        patient_name: r.new.patient_name,
        patient_ref: r.new.patient_ref,
        from: r.new.from,
        to: r.new.to,
        reason: r.new.reason,
        urgency: r.new.urgency,
        status: r.status,
        response_note: r.response_note,
        created_at: r.new.at,
        responded_at: r.responded_at,
        join_room: r.join.as_ref().map(|j| j.room.clone()),
        join_expires_at: r.join.as_ref().map(|j| j.expires_at),
    }
}

/// Refer the patient of one of your visits to another physician.
#[utoipa::path(post, path = "/api/referrals", tag = "referrals", request_body = ReferralBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = ReferralView),
        (status = 403, description = "`not_physician`, or `not_your_visit`"),
        (status = 404, description = "`unknown_visit`, or `unknown_physician` (`field: to`)"),
        (status = 422, description = "`self_referral`, or a field out of range")))]
async fn create(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    Json(body): Json<ReferralBody>,
) -> Result<(StatusCode, axum::Json<ReferralView>), ApiError> {
    let req = ReferralRequest {
        visit: body.visit,
        to: body.to,
        reason: body.reason,
        urgency: body.urgency,
    };
    let made = referrals::refer(state.durable.as_ref(), &me.staff, req, now_ms())
        .await
        .map_err(refused)?;
    state.notes.wake();
    Ok((
        StatusCode::CREATED,
        axum::Json(view(made, &names(&state).await?)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `inbox` (referred to you, the default) or `sent` (by you).
    #[serde(rename = "box")]
    which: Option<String>,
}

/// Your referrals: received (`box=inbox`) or sent (`box=sent`), newest first.
#[utoipa::path(get, path = "/api/referrals", tag = "referrals", params(ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [ReferralView]), (status = 403, description = "not_physician"),
        (status = 422, description = "`box` is not inbox or sent")))]
async fn list(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<ReferralView>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let inbox = match q.which.as_deref() {
        None | Some("inbox") => true,
        Some("sent") => false,
        Some(_) => return Err(ApiError::invalid("box", "inbox or sent")),
    };
    let list = state.durable.referrals_of(&me.staff, inbox).await?;
    let names = names(&state).await?;
    Ok(axum::Json(
        list.into_iter().map(|r| view(r, &names)).collect(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// For the referring physician: up to 2000 characters.
    #[serde(default)]
    note: String,
    /// Accept only: see the patient in your waiting room. The patient's referral view then
    /// carries a join link into it (`join_url`, valid 14 days). Default false.
    #[serde(default)]
    waiting_room: bool,
    /// Accept with `waiting_room` only: which of your rooms. Default: the room you take
    /// bookings in, else your only physician room.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    room: Option<RoomId>,
}

async fn respond(
    state: &AppState,
    me: &StaffId,
    id: &str,
    accept: bool,
    body: Option<axum::Json<AnswerBody>>,
) -> Result<axum::Json<ReferralView>, ApiError> {
    let id = ReferralId::parse(id).map_err(|_| refused(ReferralError::UnknownReferral))?;
    let body = body.map(|axum::Json(b)| b).unwrap_or_default();
    if !accept && (body.waiting_room || body.room.is_some()) {
        return Err(ApiError::invalid(
            "waiting_room",
            "only an accepted referral sees the patient in a waiting room",
        ));
    }
    let see = body.waiting_room.then_some(SeeInWaitingRoom {
        room: body.room,
        key: &state.referral_key,
    });
    let done = referrals::answer(
        state.durable.as_ref(),
        me,
        &id,
        accept,
        &body.note,
        see,
        now_ms(),
    )
    .await
    .map_err(refused)?;
    state.notes.wake();
    Ok(axum::Json(view(done, &names(state).await?)))
}

/// The physician referred to accepts; the patient then sees it through their link. With
/// `waiting_room: true` the patient's view also carries a join link into that physician's
/// waiting room (`not_your_room`, 403, for a named room that is not theirs).
#[utoipa::path(post, path = "/api/referrals/{id}/accept", tag = "referrals", request_body = AnswerBody,
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ReferralView),
        (status = 403, description = "`not_your_referral`: referred to someone else"),
        (status = 404, description = "`unknown_referral`; `unknown_room` (`field: room`): no waiting room of yours, or several and none named"),
        (status = 409, description = "`referral_answered`: the first answer stands")))]
async fn accept(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<axum::Json<AnswerBody>>,
) -> Result<axum::Json<ReferralView>, ApiError> {
    respond(&state, &me.staff, &id, true, body).await
}

/// The physician referred to declines, with a note for the referring physician.
#[utoipa::path(post, path = "/api/referrals/{id}/decline", tag = "referrals", request_body = AnswerBody,
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ReferralView),
        (status = 403, description = "`not_your_referral`"),
        (status = 404, description = "unknown_referral"),
        (status = 409, description = "`referral_answered`")))]
async fn decline(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<axum::Json<AnswerBody>>,
) -> Result<axum::Json<ReferralView>, ApiError> {
    respond(&state, &me.staff, &id, false, body).await
}

/// A referral as the patient sees it: to whom, why, how soon and where it stands. The
/// physicians' answer note is theirs, not shown here.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientReferral {
    #[schema(value_type = String)]
    id: ReferralId,
    to_name: Option<String>,
    reason: String,
    urgency: Urgency,
    status: ReferralStatus,
    created_at: Millis,
    /// Once accepted, where the patient books the physician referred to (when that
    /// physician takes appointments online).
    #[serde(skip_serializing_if = "Option::is_none")]
    book_url: Option<String>,
    /// Accepted to be seen in the physician's waiting room: the patient's join link into
    /// it (one patient, until `join_expires_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    join_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_expires_at: Option<Millis>,
}

/// The patient's view of the referrals made in their visit (their join link's token).
#[utoipa::path(get, path = "/api/visits/{visit}/referrals", tag = "referrals",
    params(("visit" = String, Path)), security(("patient" = [])),
    responses((status = 200, body = [PatientReferral]),
        (status = 403, description = "`not_patient`, or `not_your_visit`")))]
async fn for_patient(
    who: ParticipantAuth,
    State(state): State<AppState>,
    Path(visit): Path<String>,
) -> Result<axum::Json<Vec<PatientReferral>>, ApiError> {
    if !who.claims.has(Role::Patient) {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotPatient,
            "only the visit's patient sees its referrals here",
        ));
    }
    let mine = VisitId::parse(&visit)
        .ok()
        .filter(|v| who.claims.visit.as_ref() == Some(v));
    let Some(visit) = mine else {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotYourVisit,
            "this token is for another visit",
        ));
    };
    let list = state.durable.referrals_for_visit(&visit).await?;
    let names = names(&state).await?;
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let book_url = match r.status {
            ReferralStatus::Accepted if state.durable.schedule(&r.new.to).await?.is_some() => {
                let base = state.settings.public_url();
                Some(format!("{base}/book?physician={}", r.new.to))
            }
            _ => None,
        };
        let now = now_ms();
        let join = r
            .join
            .as_ref()
            .filter(|j| j.expires_at > now && r.status == ReferralStatus::Accepted);
        let join_url = join.map(|_| {
            let code = state.referral_key.join_code(&r.id);
            format!("{}/join/{code}", state.settings.public_url())
        });
        out.push(PatientReferral {
            join_url,
            join_expires_at: join.map(|j| j.expires_at),
            to_name: names.get(&r.new.to).cloned(),
            id: r.id,
            reason: r.new.reason,
            urgency: r.new.urgency,
            status: r.status,
            created_at: r.new.at,
            book_url,
        });
    }
    Ok(axum::Json(out))
}
