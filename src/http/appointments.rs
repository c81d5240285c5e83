//! Appointments over HTTP (issue 21): the public booking API, the patient's manage link,
//! the staff's appointment list and actions, schedules, failed notices. Each handler
//! parses, calls one `appointments::Appointments` method and maps its error
//! ([`Refusal`]); the rules live there. docs/api.md#appointments and docs/scheduling.md.

use crate::appointments::{
    AppointmentError, Bookable, BookingRequest, MAX_LISTING_DAYS, PhysicianFilter, StaffActor,
    channel_name,
};
use crate::durable::appointments::{Appointment, StoredNotice, StoredSchedule};
use crate::http::admin::now_millis;
use crate::http::auth::{AdminAuth, Client, PhysicianAuth, StaffAuth};
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids::{AppointmentId, RoomId, StaffId};
use crate::protocol::ApiErrorCode;
use crate::scheduling::{Exception, Schedule, Span, VisitType, VisitTypeKey};
use crate::state::AppState;
use crate::visit::Millis;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(booking_info, book))
        .routes(routes!(free_slots))
        .routes(routes!(confirm))
        .routes(routes!(manage_view))
        .routes(routes!(manage_cancel))
        .routes(routes!(manage_move))
        .routes(routes!(manage_reminders_off))
        .routes(routes!(list_appointments))
        .routes(routes!(staff_cancel))
        .routes(routes!(staff_move))
        .routes(routes!(failed_notices))
        .routes(routes!(appointment_stats))
        .routes(routes!(my_schedule, put_my_schedule))
        .routes(routes!(get_schedule, put_schedule))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

// ---------------------------------------------------------------------------------------
// Errors: one place maps the use case's refusals to HTTP.

/// An HTTP answer for a refused request.
pub struct Refusal(Response);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal(e.into_response())
    }
}

impl From<crate::durable::DurableError> for Refusal {
    fn from(e: crate::durable::DurableError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<AppointmentError> for Refusal {
    fn from(e: AppointmentError) -> Self {
        use AppointmentError as E;
        let e = match e {
            E::Invalid(f) => return ApiError::invalid(f.field, f.message).into(),
            E::Store(inner) => return ApiError::from(inner).into(),
            other => other,
        };
        let code = e.code();
        let message = e.to_string();
        let status = match &e {
            E::Invalid(_) | E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::SlotTaken => StatusCode::CONFLICT,
            E::SlotUnavailable(_) | E::WrongCode { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::UnknownPhysician | E::UnknownAppointment => StatusCode::NOT_FOUND,
            E::RemindersOff(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            E::CodeAttemptsUsed | E::HoldExpired => StatusCode::GONE,
            E::Closed(_) => StatusCode::CONFLICT,
            E::NotYours => StatusCode::FORBIDDEN,
        };
        let field = match &e {
            E::SlotTaken | E::SlotUnavailable(_) => Some("starts_at"),
            E::WrongCode { .. } => Some("code"),
            _ => None,
        };
        let mut err = ApiError::new(status, code, message);
        err.field = field;
        let mut r = err.into_response();
        if let E::RateLimited(wait) = e {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
        }
        Refusal(r)
    }
}

type Answer<T> = Result<T, Refusal>;

fn millis_param(field: &'static str, v: Option<&str>) -> Result<Option<Millis>, ApiError> {
    crate::http::admin::parse_millis(field, v)
}

fn staff_param(field: &'static str, v: Option<&str>) -> Result<Option<StaffId>, ApiError> {
    crate::http::admin::parse_staff(field, v)
}

/// Channels by their wire names (`email`, `text`).
fn channel_names(channels: Vec<crate::notify::Channel>) -> Vec<String> {
    channels
        .into_iter()
        .map(|c| channel_name(c).to_owned())
        .collect()
}

fn appointment_id(id: &str) -> Result<AppointmentId, ApiError> {
    AppointmentId::parse(id).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownAppointment,
            "no such appointment",
        )
    })
}

// ---------------------------------------------------------------------------------------
// Views

/// A physician who takes appointments, as the booking page shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhysicianView {
    #[schema(value_type = String)]
    pub id: StaffId,
    pub name: String,
    pub languages: Vec<String>,
    pub gender: Option<String>,
    /// The IANA zone the physician's hours are in, e.g. `Europe/Madrid`.
    pub zone: String,
    /// The length of the default (first) visit type.
    pub visit_mins: i64,
    /// What a patient can book, the default first.
    pub visit_types: Vec<VisitTypeBody>,
}

/// A kind of visit with its own length.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitTypeBody {
    /// 1–32 of `a-z 0-9 - _`, e.g. `follow-up`: what a booking names.
    pub key: String,
    /// In the clinic's words, e.g. "Follow-up visit"; at most 60 characters.
    #[serde(default)]
    pub name: String,
    /// 5–480 minutes, a multiple of 5.
    pub mins: i64,
}

impl From<&VisitType> for VisitTypeBody {
    fn from(t: &VisitType) -> Self {
        VisitTypeBody {
            key: t.key.to_string(),
            name: t.name.clone(),
            mins: t.length.num_minutes(),
        }
    }
}

fn visit_type_param(v: Option<&str>) -> Result<Option<VisitTypeKey>, ApiError> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| VisitTypeKey::parse(v).map_err(|e| ApiError::invalid("visit_type", e.to_string())))
        .transpose()
}

impl From<&Bookable> for PhysicianView {
    fn from(b: &Bookable) -> Self {
        PhysicianView {
            id: b.staff.id.clone(),
            name: b.staff.name.clone(),
            languages: b.staff.languages.clone(),
            gender: b.staff.gender.clone(),
            zone: b.schedule.schedule.zone.name().to_owned(),
            visit_mins: b
                .schedule
                .schedule
                .default_type()
                .map_or(0, |t| t.length.num_minutes()),
            visit_types: b
                .schedule
                .schedule
                .visit_types
                .iter()
                .map(VisitTypeBody::from)
                .collect(),
        }
    }
}

/// What the booking page needs before the patient picks a time.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingInfo {
    pub clinic: String,
    /// How a code and reminders can reach the patient: `email`, `text`. Empty: booking is
    /// off (no courier configured).
    pub channels: Vec<String>,
    pub physicians: Vec<PhysicianView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PhysicianQuery {
    /// Only this physician.
    physician: Option<String>,
    /// Only physicians who speak this language (`es`).
    language: Option<String>,
    /// Only physicians of this gender (as staff profiles state it).
    gender: Option<String>,
}

impl PhysicianQuery {
    fn filter(&self) -> Result<PhysicianFilter, ApiError> {
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let language = clean(&self.language);
        let gender = clean(&self.gender);
        if language.as_ref().is_some_and(|l| l.len() > 35) {
            return Err(ApiError::invalid("language", "at most 35 characters"));
        }
        if gender.as_ref().is_some_and(|g| g.len() > 40) {
            return Err(ApiError::invalid("gender", "at most 40 characters"));
        }
        Ok(PhysicianFilter {
            physician: staff_param("physician", self.physician.as_deref())?,
            language,
            gender,
        })
    }
}

/// Who takes appointments, and whether booking is on. Public.
#[utoipa::path(get, path = "/api/booking", tag = "appointments", params(PhysicianQuery),
    responses((status = 200, body = BookingInfo), (status = 422)))]
async fn booking_info(
    State(state): State<AppState>,
    Query(q): Query<PhysicianQuery>,
) -> Answer<Json<BookingInfo>> {
    let bookable = state.appointments.bookable(&q.filter()?).await?;
    Ok(Json(BookingInfo {
        clinic: state.settings.clinic.name.clone(),
        channels: channel_names(state.appointments.channels()),
        physicians: bookable.iter().map(PhysicianView::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotView {
    /// Unix ms.
    pub starts_at: Millis,
    pub ends_at: Millis,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhysicianSlots {
    pub physician: PhysicianView,
    /// The visit type the slots are for (its length is theirs).
    pub visit_type: String,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SlotsQuery {
    /// Unix ms, inclusive. Required.
    from: Option<String>,
    /// Unix ms, exclusive; at most 31 days after `from`. Required.
    to: Option<String>,
    /// Slots of this visit type (its key), of the physicians who offer it. Default: each
    /// physician's first.
    visit_type: Option<String>,
    physician: Option<String>,
    language: Option<String>,
    gender: Option<String>,
}

/// Free slots per physician in `[from, to)` for one visit type (at most 31 days; only
/// what may still be booked). Public.
#[utoipa::path(get, path = "/api/booking/slots", tag = "appointments", params(SlotsQuery),
    responses((status = 200, body = [PhysicianSlots]), (status = 422)))]
async fn free_slots(
    State(state): State<AppState>,
    Query(q): Query<SlotsQuery>,
) -> Answer<Json<Vec<PhysicianSlots>>> {
    let from = millis_param("from", q.from.as_deref())?
        .ok_or_else(|| ApiError::invalid("from", "required (unix ms)"))?;
    let to = millis_param("to", q.to.as_deref())?
        .ok_or_else(|| ApiError::invalid("to", "required (unix ms)"))?;
    if to <= from || to - from > MAX_LISTING_DAYS * 86_400_000 {
        return Err(ApiError::invalid(
            "to",
            format!("must be after `from`, at most {MAX_LISTING_DAYS} days later"),
        )
        .into());
    }
    let kind = visit_type_param(q.visit_type.as_deref())?;
    let filter = PhysicianQuery {
        physician: q.physician,
        language: q.language,
        gender: q.gender,
    }
    .filter()?;
    let now = now_millis();
    let mut out = Vec::new();
    for b in state.appointments.bookable(&filter).await? {
        let offered = match &kind {
            Some(k) => b.schedule.schedule.visit_type(k).ok(),
            None => b.schedule.schedule.default_type(),
        };
        let Some(offered) = offered.cloned() else {
            continue;
        };
        let slots = state
            .appointments
            .free_slots_of(&b, &offered, from, to, now)
            .await?;
        out.push(PhysicianSlots {
            physician: PhysicianView::from(&b),
            visit_type: offered.key.to_string(),
            slots: slots
                .into_iter()
                .map(|s| SlotView {
                    starts_at: s.start.timestamp_millis(),
                    ends_at: s.end.timestamp_millis(),
                })
                .collect(),
        });
    }
    Ok(Json(out))
}

/// A booking. Give `email`, `phone` or both; the code goes to each one a courier reaches.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingBody {
    #[schema(value_type = String)]
    pub physician: StaffId,
    /// One of the physician's visit types (its key); default: the first.
    #[serde(default)]
    pub visit_type: Option<String>,
    /// Unix ms: the start of a free slot of that type from `GET /api/booking/slots`.
    pub starts_at: Millis,
    /// 1–200 characters.
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// E.164, e.g. `+34600111222` (spaces and hyphens are dropped).
    #[serde(default)]
    pub phone: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// 1–500 characters; seen by the physician, never in a notice.
    pub reason: String,
    /// The patient's language (`en`, `es`): notices and pages use it.
    pub lang: String,
    /// Consent to be contacted about this appointment; must be `true`.
    pub consent: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    #[schema(value_type = String)]
    pub appointment: AppointmentId,
    pub visit_type: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    /// Unix ms: confirm with the code before then.
    pub hold_until: Millis,
    /// Where the code went: `email`, `text`.
    pub channels: Vec<String>,
}

/// Book: holds the slot and sends a code to the contact. Public; rate limited per client
/// and per contact.
#[utoipa::path(post, path = "/api/booking", tag = "appointments", request_body = BookingBody,
    responses((status = 201, body = HeldView),
        (status = 409, description = "`slot_taken`"),
        (status = 422, description = "`invalid_field`, `slot_unavailable`"),
        (status = 429, description = "`rate_limited`"),
        (status = 503, description = "`reminders_off`")))]
async fn book(
    client: Client,
    State(state): State<AppState>,
    Json(b): Json<BookingBody>,
) -> Answer<(StatusCode, Json<HeldView>)> {
    let r = BookingRequest {
        physician: b.physician,
        visit_type: visit_type_param(b.visit_type.as_deref())?,
        starts_at: b.starts_at,
        name: b.name,
        email: b.email,
        phone: b.phone,
        birth_date: b.birth_date,
        reason: b.reason,
        lang: b.lang,
        consent: b.consent,
    };
    let held = state
        .appointments
        .book(r, &client.ip.to_string(), now_millis())
        .await?;
    let a = &held.appointment;
    Ok((
        StatusCode::CREATED,
        Json(HeldView {
            appointment: a.id.clone(),
            visit_type: a.visit_type.to_string(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            hold_until: a.hold_until,
            channels: channel_names(held.channels),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The six digits sent to the contact.
    pub code: String,
}

/// An appointment as its patient sees it (manage link).
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientView {
    #[schema(value_type = String)]
    pub id: AppointmentId,
    /// `pending`, `confirmed`, `cancelled`, `expired`, `no_show`.
    pub status: String,
    /// The visit type's key: a move keeps it (and its length).
    pub visit_type: String,
    /// Its name as the clinic called it when booked.
    pub visit_name: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    #[schema(value_type = String)]
    pub physician: StaffId,
    pub physician_name: String,
    /// The zone the physician's hours are in.
    pub zone: String,
    pub lang: String,
    pub reminders_off: bool,
    /// Opens the waiting room from `join_before_mins` before the start.
    pub join_url: Option<String>,
    pub manage_url: Option<String>,
}

async fn patient_view(state: &AppState, a: &Appointment) -> Result<PatientView, ApiError> {
    let physician_name = state
        .durable
        .staff(&a.physician)
        .await?
        .map(|s| s.name)
        .unwrap_or_default();
    let zone = state
        .durable
        .schedule(&a.physician)
        .await?
        .map_or_else(|| "UTC".to_owned(), |s| s.schedule.zone.name().to_owned());
    let confirmed = a.status == crate::durable::appointments::AppointmentStatus::Confirmed;
    Ok(PatientView {
        id: a.id.clone(),
        status: a.status.as_str().to_owned(),
        visit_type: a.visit_type.to_string(),
        visit_name: a.visit_name.clone(),
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        physician: a.physician.clone(),
        physician_name,
        zone,
        lang: a.lang.clone(),
        reminders_off: a.reminders_off,
        join_url: confirmed.then(|| state.appointments.join_url(&a.id)),
        manage_url: confirmed.then(|| state.appointments.manage_url(&a.id)),
    })
}

/// Confirm a held booking with the code sent to the contact. Public (the code is the
/// proof); limited attempts per booking.
#[utoipa::path(post, path = "/api/booking/{id}/confirm", tag = "appointments",
    params(("id" = String, Path)), request_body = ConfirmBody,
    responses((status = 200, body = PatientView), (status = 404),
        (status = 409, description = "`appointment_closed`"),
        (status = 410, description = "`hold_expired`, `code_attempts_used`"),
        (status = 422, description = "`wrong_code`")))]
async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<ConfirmBody>,
) -> Answer<Json<PatientView>> {
    let id = appointment_id(&id)?;
    if b.code.len() > 20 {
        return Err(ApiError::invalid("code", "six digits").into());
    }
    let done = state
        .appointments
        .confirm(&id, &b.code, now_millis())
        .await?;
    Ok(Json(patient_view(&state, &done.appointment).await?))
}

/// The appointment behind a manage link. Secret: the token in the path.
#[utoipa::path(get, path = "/api/manage/{token}", tag = "appointments",
    params(("token" = String, Path)),
    responses((status = 200, body = PatientView), (status = 404)))]
async fn manage_view(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Answer<Json<PatientView>> {
    let a = state.appointments.by_manage_token(&token).await?;
    Ok(Json(patient_view(&state, &a).await?))
}

/// Cancel through the manage link; the slot is free at once.
#[utoipa::path(post, path = "/api/manage/{token}/cancel", tag = "appointments",
    params(("token" = String, Path)),
    responses((status = 200, body = PatientView), (status = 404), (status = 409)))]
async fn manage_cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Answer<Json<PatientView>> {
    let a = state.appointments.by_manage_token(&token).await?;
    let done = state.appointments.cancel(&a, now_millis()).await?;
    Ok(Json(patient_view(&state, &done).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Unix ms: the start of another free slot of the same physician.
    pub starts_at: Millis,
}

/// Move through the manage link to another free slot, atomically.
#[utoipa::path(post, path = "/api/manage/{token}/move", tag = "appointments",
    params(("token" = String, Path)), request_body = MoveBody,
    responses((status = 200, body = PatientView), (status = 404), (status = 409), (status = 422)))]
async fn manage_move(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(b): Json<MoveBody>,
) -> Answer<Json<PatientView>> {
    let a = state.appointments.by_manage_token(&token).await?;
    let moved = state
        .appointments
        .reschedule(&a, b.starts_at, now_millis())
        .await?;
    Ok(Json(patient_view(&state, &moved).await?))
}

/// Stop this appointment's reminders (the opt-out link of a reminder leads here).
#[utoipa::path(post, path = "/api/manage/{token}/reminders-off", tag = "appointments",
    params(("token" = String, Path)),
    responses((status = 200, body = PatientView), (status = 404)))]
async fn manage_reminders_off(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Answer<Json<PatientView>> {
    let a = state.appointments.by_manage_token(&token).await?;
    state.appointments.reminders_off(&a, now_millis()).await?;
    let a = state.appointments.by_manage_token(&token).await?;
    Ok(Json(patient_view(&state, &a).await?))
}

// ---------------------------------------------------------------------------------------
// Staff

/// An appointment as staff see it: with the patient's details and reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    #[schema(value_type = String)]
    pub id: AppointmentId,
    pub status: String,
    /// The visit type's key and its name when booked.
    pub visit_type: String,
    pub visit_name: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    #[schema(value_type = String)]
    pub physician: StaffId,
    #[schema(value_type = String)]
    pub room: RoomId,
    pub patient_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birth_date: String,
    pub reason: String,
    pub lang: String,
    pub reminders_off: bool,
    /// The visit the appointment's join link opens: the `visit` of its queue entry when the
    /// patient waits. Only in lists; absent before confirmation.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visit: Option<crate::ids::VisitId>,
}

impl From<Appointment> for StaffView {
    fn from(a: Appointment) -> Self {
        StaffView {
            id: a.id,
            status: a.status.as_str().to_owned(),
            visit_type: a.visit_type.to_string(),
            visit_name: a.visit_name,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            physician: a.physician,
            room: a.room,
            patient_name: a.patient_name,
            email: a.email,
            phone: a.phone,
            birth_date: a.birth_date,
            reason: a.reason,
            lang: a.lang,
            reminders_off: a.reminders_off,
            visit: None,
        }
    }
}

fn actor(s: &StaffAuth) -> StaffActor<'_> {
    StaffActor {
        staff: &s.staff,
        admin: s.has(crate::ids::Role::Admin),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Unix ms, inclusive; default now.
    from: Option<String>,
    /// Unix ms, exclusive; default 31 days after `from`; at most a year after it.
    to: Option<String>,
    /// A physician's id (admins; a physician may name only themself).
    physician: Option<String>,
}

/// Appointments starting in `[from, to)`: a physician's own, an admin's of anyone.
#[utoipa::path(get, path = "/api/appointments", tag = "appointments", params(ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [StaffView]), (status = 403, description = "`not_your_visits`")))]
async fn list_appointments(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Answer<Json<Vec<StaffView>>> {
    let from = millis_param("from", q.from.as_deref())?.unwrap_or_else(now_millis);
    let to = millis_param("to", q.to.as_deref())?.unwrap_or(from + MAX_LISTING_DAYS * 86_400_000);
    let physician = staff_param("physician", q.physician.as_deref())?;
    let list = state
        .appointments
        .list_for_staff(actor(&me), physician.as_ref(), from, to)
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|l| StaffView {
                visit: l.visit,
                ..l.appointment.into()
            })
            .collect(),
    ))
}

/// Cancel an appointment (its physician, or an admin); the patient is told.
#[utoipa::path(post, path = "/api/appointments/{id}/cancel", tag = "appointments",
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = StaffView), (status = 403), (status = 404), (status = 409)))]
async fn staff_cancel(
    me: StaffAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<Json<StaffView>> {
    let a = state
        .appointments
        .for_staff(actor(&me), &appointment_id(&id)?)
        .await?;
    let done = state.appointments.cancel(&a, now_millis()).await?;
    Ok(Json(done.into()))
}

/// Move an appointment to another free slot of its physician (its physician, or an
/// admin); the patient is told.
#[utoipa::path(post, path = "/api/appointments/{id}/move", tag = "appointments",
    params(("id" = String, Path)), request_body = MoveBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = StaffView), (status = 403), (status = 404), (status = 409),
        (status = 422)))]
async fn staff_move(
    me: StaffAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<MoveBody>,
) -> Answer<Json<StaffView>> {
    let a = state
        .appointments
        .for_staff(actor(&me), &appointment_id(&id)?)
        .await?;
    let moved = state
        .appointments
        .reschedule(&a, b.starts_at, now_millis())
        .await?;
    Ok(Json(moved.into()))
}

/// A notice that could not be delivered (never its address or content).
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedNotice {
    #[schema(value_type = String)]
    pub id: crate::ids::NoticeId,
    #[schema(value_type = String)]
    pub appointment: AppointmentId,
    /// `code`, `booked`, `reminder`, `moved`, `cancelled`.
    pub kind: String,
    /// `email` or `text`.
    pub channel: String,
    pub attempts: i64,
    /// What the mail server or text provider said.
    pub error: Option<String>,
    pub failed_at: Option<Millis>,
}

impl From<StoredNotice> for FailedNotice {
    fn from(n: StoredNotice) -> Self {
        FailedNotice {
            id: n.id,
            appointment: n.appointment,
            kind: n.kind.as_str().to_owned(),
            channel: n.channel,
            attempts: n.attempts,
            error: n.last_error,
            failed_at: n.done_at,
        }
    }
}

/// Whether notices can go out, and the ones that failed (admin).
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeReport {
    /// `email`, `text`; empty: reminders are off (no courier configured).
    pub channels: Vec<String>,
    /// The newest 200.
    pub failed: Vec<FailedNotice>,
}

/// Failed notices (refused, or out of attempts), newest first (admin).
#[utoipa::path(get, path = "/api/appointments/notices/failed", tag = "appointments",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = NoticeReport), (status = 403)))]
async fn failed_notices(_: AdminAuth, State(state): State<AppState>) -> Answer<Json<NoticeReport>> {
    let failed = state.durable.failed_notices(200).await?;
    Ok(Json(NoticeReport {
        channels: channel_names(state.appointments.channels()),
        failed: failed.into_iter().map(FailedNotice::from).collect(),
    }))
}

/// Appointment figures beside the visit experience (NPS): booked, cancelled, no-shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentStats {
    /// Appointments confirmed (no-shows included).
    pub confirmed: u64,
    pub cancelled: u64,
    /// Confirmed appointments whose patient never opened the join link.
    pub no_shows: u64,
    /// `no_shows / confirmed`; `null` when none was confirmed.
    pub no_show_rate: Option<f64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// Unix ms, inclusive (appointment start).
    from: Option<String>,
    /// Unix ms, exclusive.
    to: Option<String>,
    /// A physician's id (admins; a physician sees only their own).
    physician: Option<String>,
}

/// Appointment counts and the no-show rate: a physician's own, an admin's of anyone or all.
#[utoipa::path(get, path = "/api/appointments/stats", tag = "appointments", params(StatsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = AppointmentStats), (status = 403)))]
async fn appointment_stats(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> Answer<Json<AppointmentStats>> {
    let (from, to) = crate::http::admin::parse_range(q.from.as_deref(), q.to.as_deref())?;
    let asked = staff_param("physician", q.physician.as_deref())?;
    let physician = if me.has(crate::ids::Role::Admin) {
        asked
    } else {
        match asked {
            Some(p) if p != me.staff => return Err(AppointmentError::NotYours.into()),
            _ => Some(me.staff.clone()),
        }
    };
    let c = state
        .durable
        .appointment_counts(physician.as_ref(), from, to)
        .await?;
    Ok(Json(AppointmentStats {
        confirmed: c.confirmed,
        cancelled: c.cancelled,
        no_shows: c.no_shows,
        no_show_rate: crate::durable::stats::rate(c.no_shows, c.confirmed),
    }))
}

// ---------------------------------------------------------------------------------------
// Schedules

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MAX_SPANS_PER_DAY: usize = 8;
const MAX_EXCEPTIONS: usize = 200;

/// Dated hours instead of the weekly ones (leave: no hours).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionBody {
    /// `YYYY-MM-DD`, local to the schedule's zone.
    pub first: String,
    /// `YYYY-MM-DD`, inclusive.
    pub last: String,
    /// `HH:MM-HH:MM` spans; empty for a day off.
    #[serde(default)]
    pub hours: Vec<String>,
}

/// A physician's schedule: wall-clock hours in `zone`; daylight saving is followed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The physician room booked patients wait in (one of the physician's rooms).
    #[schema(value_type = String)]
    pub room: RoomId,
    /// IANA time zone, e.g. `Europe/Madrid`.
    pub zone: String,
    /// Weekday (`mon` … `sun`) → `HH:MM-HH:MM` spans, at most 8 a day. Missing days: closed.
    #[serde(default)]
    pub weekly: BTreeMap<String, Vec<String>>,
    /// At most 200; a later one wins where two cover a day.
    #[serde(default)]
    pub exceptions: Vec<ExceptionBody>,
    /// Length of a visit, 5–480 minutes in steps of 5, for a schedule with one visit
    /// type. With `visit_types`: absent, or the first type's length.
    #[serde(default)]
    pub visit_mins: Option<i64>,
    /// What a patient picks from when booking, each with its own length (at most 12; the
    /// first is the default). Empty: one type of `visit_mins`, key `visit`.
    #[serde(default)]
    pub visit_types: Vec<VisitTypeBody>,
    /// Time kept free after each visit, 0–120 minutes in steps of 5. Default 0.
    #[serde(default)]
    pub buffer_mins: i64,
}

fn span(field: &'static str, v: &str) -> Result<Span, ApiError> {
    let bad = || ApiError::invalid(field, format!("`{v}` is not a span such as 09:00-13:00"));
    let (a, b) = v.trim().split_once('-').ok_or_else(bad)?;
    let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
    Ok(Span {
        start: t(a)?,
        end: t(b)?,
    })
}

fn spans(field: &'static str, v: &[String]) -> Result<Vec<Span>, ApiError> {
    if v.len() > MAX_SPANS_PER_DAY {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_SPANS_PER_DAY} spans a day"),
        ));
    }
    v.iter().map(|s| span(field, s)).collect()
}

impl ScheduleBody {
    fn into_schedule(self) -> Result<(RoomId, Schedule), ApiError> {
        let zone: chrono_tz::Tz = self
            .zone
            .parse()
            .map_err(|_| ApiError::invalid("zone", "an IANA time zone such as Europe/Madrid"))?;
        let mut weekly: [Vec<Span>; 7] = Default::default();
        for (day, list) in &self.weekly {
            let i = DAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(day.trim()))
                .ok_or_else(|| {
                    ApiError::invalid("weekly", format!("`{day}` is not a day (mon … sun)"))
                })?;
            weekly[i] = spans("weekly", list)?;
        }
        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(ApiError::invalid(
                "exceptions",
                format!("at most {MAX_EXCEPTIONS}"),
            ));
        }
        let date = |s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid("exceptions", format!("`{s}` is not a date")))
        };
        let exceptions = self
            .exceptions
            .iter()
            .map(|e| {
                Ok(Exception {
                    first: date(&e.first)?,
                    last: date(&e.last)?,
                    hours: spans("exceptions", &e.hours)?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let length = |field: &'static str, mins: i64| {
            if (5..=480).contains(&mins) && mins % 5 == 0 {
                Ok(chrono::Duration::minutes(mins))
            } else {
                Err(ApiError::invalid(field, "5 to 480 minutes, in steps of 5"))
            }
        };
        let visit_types = if self.visit_types.is_empty() {
            let mins = self
                .visit_mins
                .ok_or_else(|| ApiError::invalid("visit_mins", "give visit_mins or visit_types"))?;
            vec![VisitType::single(length("visit_mins", mins)?)]
        } else {
            if self.visit_types.len() > crate::scheduling::availability::MAX_VISIT_TYPES {
                return Err(ApiError::invalid("visit_types", "at most 12 visit types"));
            }
            let types = self
                .visit_types
                .iter()
                .map(|t| {
                    Ok(VisitType {
                        key: VisitTypeKey::parse(t.key.trim())
                            .map_err(|e| ApiError::invalid("visit_types", e.to_string()))?,
                        name: t.name.trim().to_owned(),
                        length: length("visit_types", t.mins)?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            if self
                .visit_mins
                .is_some_and(|m| Some(m) != types.first().map(|t| t.length.num_minutes()))
            {
                return Err(ApiError::invalid(
                    "visit_mins",
                    "with visit_types, leave it out or give the first type's length",
                ));
            }
            types
        };
        if !(0..=120).contains(&self.buffer_mins) || self.buffer_mins % 5 != 0 {
            return Err(ApiError::invalid(
                "buffer_mins",
                "0 to 120 minutes, in steps of 5",
            ));
        }
        Ok((
            self.room,
            Schedule {
                zone,
                weekly,
                exceptions,
                visit_types,
                buffer: chrono::Duration::minutes(self.buffer_mins),
            },
        ))
    }
}

fn fmt_span(s: &Span) -> String {
    format!("{}-{}", s.start.format("%H:%M"), s.end.format("%H:%M"))
}

impl From<StoredSchedule> for ScheduleBody {
    fn from(s: StoredSchedule) -> Self {
        let sc = s.schedule;
        ScheduleBody {
            room: s.room,
            zone: sc.zone.name().to_owned(),
            weekly: DAYS
                .iter()
                .zip(&sc.weekly)
                .filter(|(_, v)| !v.is_empty())
                .map(|(d, v)| ((*d).to_owned(), v.iter().map(fmt_span).collect()))
                .collect(),
            exceptions: sc
                .exceptions
                .iter()
                .map(|e| ExceptionBody {
                    first: e.first.to_string(),
                    last: e.last.to_string(),
                    hours: e.hours.iter().map(fmt_span).collect(),
                })
                .collect(),
            visit_mins: sc.default_type().map(|t| t.length.num_minutes()),
            visit_types: sc.visit_types.iter().map(VisitTypeBody::from).collect(),
            buffer_mins: sc.buffer.num_minutes(),
        }
    }
}

async fn read_schedule(state: &AppState, staff: &StaffId) -> Answer<Json<ScheduleBody>> {
    let s = state
        .durable
        .schedule(staff)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    Ok(Json(s.into()))
}

async fn write_schedule(
    state: &AppState,
    staff: &StaffId,
    body: ScheduleBody,
) -> Answer<Json<ScheduleBody>> {
    let (room, schedule) = body.into_schedule()?;
    let stored = state
        .appointments
        .set_schedule(staff, room, schedule, now_millis())
        .await?;
    Ok(Json(stored.into()))
}

/// The signed-in physician's own schedule.
#[utoipa::path(get, path = "/api/my/schedule", tag = "appointments",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ScheduleBody), (status = 404, description = "none set")))]
async fn my_schedule(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
) -> Answer<Json<ScheduleBody>> {
    read_schedule(&state, &me.staff).await
}

/// Set the signed-in physician's own schedule.
#[utoipa::path(put, path = "/api/my/schedule", tag = "appointments", request_body = ScheduleBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ScheduleBody), (status = 422)))]
async fn put_my_schedule(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    Json(body): Json<ScheduleBody>,
) -> Answer<Json<ScheduleBody>> {
    write_schedule(&state, &me.staff, body).await
}

/// A physician's schedule (admin).
#[utoipa::path(get, path = "/api/schedules/{id}", tag = "appointments",
    params(("id" = String, Path, description = "the physician's staff id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ScheduleBody), (status = 404)))]
async fn get_schedule(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<Json<ScheduleBody>> {
    let id = StaffId::parse(&id).map_err(|_| ApiError::not_found("schedule"))?;
    read_schedule(&state, &id).await
}

/// Set any physician's schedule (admin).
#[utoipa::path(put, path = "/api/schedules/{id}", tag = "appointments",
    params(("id" = String, Path, description = "the physician's staff id")),
    request_body = ScheduleBody, security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ScheduleBody), (status = 404), (status = 422)))]
async fn put_schedule(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ScheduleBody>,
) -> Answer<Json<ScheduleBody>> {
    let id = StaffId::parse(&id).map_err(|_| ApiError::not_found("physician"))?;
    write_schedule(&state, &id, body).await
}
