//! Join links: physicians mint them (`POST /api/links`, `POST /api/links/guest`) and
//! revoke them (`DELETE /api/links/{id}`); patients and guests redeem them for a
//! short-lived token (`POST /api/join/{code}`); a patient whose link names a record
//! confirms who they are (`POST /api/identity`). The rules live in `identity::links`
//! and `identity::chart`.
//!
//! A patient link may name a record (`patient_ref`) only from a trusted source: an admin,
//! or a physician when `links.physicians_may_name_patient` is on (links made from the
//! EHR's launch context). Staff cannot redeem patient links from a staff session or a
//! browser that signed in as staff ([`STAFF_DEVICE_COOKIE`]).

use super::auth::{Client, ParticipantAuth, SESSION_COOKIE, StaffAuth};
use super::error::ApiError;
use super::extract::Json;
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::config::IdentityFactor;
use crate::durable::{Link, LinkKind, NewLink};
use crate::identity::chart::{self, IdentityError};
use crate::identity::links::{self as rules, LinkRefusal, RedeemError};
use crate::identity::{Role, hash_secret};
use crate::ids::{LinkId, PatientRef, RoomId, VisitId};
use crate::state::AppState;
use crate::visit::{Millis, RoomConfig};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/links", post(mint))
        .route("/api/links/guest", post(mint_guest))
        .route("/api/links/{id}", delete(revoke))
        .route("/api/join/{code}", post(redeem))
        .route("/api/identity", post(confirm_identity))
}

/// Set on every staff sign-in and kept after sign-out: a browser that ever signed in as
/// staff may not redeem patient links. Not a credential (its value means nothing); a
/// marker the patient page cannot read or clear (HttpOnly).
pub const STAFF_DEVICE_COOKIE: &str = "examroom_staff_device";

/// The `Set-Cookie` value for [`STAFF_DEVICE_COOKIE`]: one year, every path.
pub fn staff_device_cookie(https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{STAFF_DEVICE_COOKIE}=1; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("examroom_staff_device=1; Path=/"))
}

/// Longest a guest link lives, seconds: guests join one visit, today.
pub const GUEST_LINK_SECS: i64 = 24 * 3600;

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

fn not_your_room() -> ApiError {
    ApiError::forbidden("not_your_room", "you are not a physician of this room")
}

async fn live_room(state: &AppState, id: &RoomId) -> Result<RoomConfig, ApiError> {
    match state.durable.room(id).await? {
        Some(r) if !r.archived => Ok(r),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_room",
            "no such room",
        )),
    }
}

fn is_room_physician(auth: &StaffAuth, room: &RoomConfig) -> bool {
    auth.has(Role::Physician) && room.physicians.contains(&auth.staff)
}

fn optional_text(
    v: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max => Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mint {
    room: RoomId,
    patient_name: Option<String>,
    patient_ref: Option<PatientRef>,
    reason: Option<String>,
    lang: Option<String>,
    not_before: Option<Millis>,
    expires_at: Option<Millis>,
}

/// A link for `code` with no patient details; patient links fill those in on top.
fn new_link(
    code: &str,
    kind: LinkKind,
    room: &RoomConfig,
    visit: VisitId,
    auth: &StaffAuth,
    now: Millis,
    expires_at: Millis,
) -> NewLink {
    NewLink {
        id: LinkId::new(),
        code_hash: hash_secret(code),
        kind,
        room: room.id.clone(),
        visit,
        patient_name: None,
        patient_ref: None,
        reason: None,
        lang: None,
        not_before: None,
        expires_at,
        created_by: auth.staff.clone(),
        created_at: now,
    }
}

fn minted(state: &AppState, link: &Link, code: &str) -> Response {
    let body = json!({
        "id": link.id,
        "code": code,
        "url": format!("{}/join/{code}", state.settings.public_url()),
        "visit": link.visit,
        "expires_at": link.expires_at,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// A physician of the room, or an admin, makes a patient's join link.
async fn mint(
    State(state): State<AppState>,
    auth: StaffAuth,
    Json(m): Json<Mint>,
) -> Result<Response, ApiError> {
    let room = live_room(&state, &m.room).await?;
    if !(auth.has(Role::Admin) || is_room_physician(&auth, &room)) {
        return Err(not_your_room());
    }
    // A hand-typed record id is how any physician could open any chart: only admins, or
    // physicians working from the EHR's launch context (operator's choice), may name one.
    if m.patient_ref.is_some()
        && !auth.has(Role::Admin)
        && !state.settings.links.physicians_may_name_patient
    {
        tracing::warn!(room = %room.id, staff = %auth.staff, "join link refused: physician named a patient record");
        return Err(ApiError {
            field: Some("patient_ref"),
            ..ApiError::forbidden(
                "patient_ref_not_allowed",
                "only an admin (or the EHR's scheduling context, when enabled) may put a patient record on a link",
            )
        });
    }
    let now = now_ms();
    let expires_at = m
        .expires_at
        .unwrap_or(now + state.settings.identity.join_link_secs as i64 * 1000);
    if expires_at <= now {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    if m.not_before.is_some_and(|nb| nb >= expires_at) {
        return Err(ApiError::invalid("not_before", "must be before expires_at"));
    }
    let lang = optional_text(m.lang, "lang", 35)?;
    if lang
        .as_deref()
        .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(ApiError::invalid(
            "lang",
            "a BCP 47 tag such as `en` or `pt-BR`",
        ));
    }
    let code = rules::new_code();
    let new = NewLink {
        patient_name: optional_text(m.patient_name, "patient_name", 200)?,
        patient_ref: m.patient_ref,
        reason: optional_text(m.reason, "reason", 500)?,
        lang,
        not_before: m.not_before,
        ..new_link(
            &code,
            LinkKind::Patient,
            &room,
            VisitId::new(),
            &auth,
            now,
            expires_at,
        )
    };
    let link = state.durable.create_link(new).await?;
    tracing::info!(link = %link.id, room = %room.id, staff = %auth.staff, "join link minted");
    Ok(minted(&state, &link, &code))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintGuest {
    room: RoomId,
    visit: VisitId,
}

/// A physician of the room invites a guest (interpreter, family) into one visit.
async fn mint_guest(
    State(state): State<AppState>,
    auth: StaffAuth,
    Json(m): Json<MintGuest>,
) -> Result<Response, ApiError> {
    let room = live_room(&state, &m.room).await?;
    if !is_room_physician(&auth, &room) {
        return Err(not_your_room());
    }
    if !room.invites_allowed {
        return Err(ApiError::forbidden(
            "invites_disabled",
            "this room does not allow guests",
        ));
    }
    // The visit must belong to this room: a patient link made it, or history has it.
    let links = state.durable.list_links(Some(&room.id)).await?;
    let known = links
        .iter()
        .any(|l| l.visit == m.visit && l.kind == LinkKind::Patient)
        || state
            .durable
            .visit(&m.visit)
            .await?
            .is_some_and(|v| v.room == room.id);
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_visit",
            "no such visit in this room",
        ));
    }
    let now = now_ms();
    let code = rules::new_code();
    let expires_at =
        now + GUEST_LINK_SECS.min(state.settings.identity.join_link_secs as i64) * 1000;
    let new = new_link(
        &code,
        LinkKind::Guest,
        &room,
        m.visit,
        &auth,
        now,
        expires_at,
    );
    let link = state.durable.create_link(new).await?;
    tracing::info!(link = %link.id, room = %room.id, staff = %auth.staff, "guest link minted");
    Ok(minted(&state, &link, &code))
}

/// The room's physician or an admin revokes a link; its tokens stop at the next hello.
async fn revoke(
    State(state): State<AppState>,
    auth: StaffAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "unknown_link", "no such link");
    let id = LinkId::parse(&id).map_err(|_| unknown())?;
    let link = state.durable.link(&id).await?.ok_or_else(unknown)?;
    if !auth.has(Role::Admin) {
        let room = state.durable.room(&link.room).await?;
        if !room.is_some_and(|r| is_room_physician(&auth, &r)) {
            return Err(not_your_room());
        }
    }
    state.durable.revoke_link(&id).await?;
    tracing::info!(link = %id, staff = %auth.staff, "join link revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Redeem {
    device: String,
}

fn refusal(r: LinkRefusal) -> Response {
    let status = match r {
        LinkRefusal::Revoked | LinkRefusal::Expired => StatusCode::GONE,
        LinkRefusal::NotYetValid { .. } => StatusCode::FORBIDDEN,
        LinkRefusal::InUse => StatusCode::CONFLICT,
    };
    let mut body = json!({ "error": r.code(), "message": r.to_string() });
    if let LinkRefusal::NotYetValid { at } = r {
        body["not_before"] = json!(at);
    }
    (status, Json(body)).into_response()
}

/// A patient or guest opens their link (`identity::links::redeem`): a token for the
/// waiting room, bound to the link's room and visit.
async fn redeem(
    State(state): State<AppState>,
    Path(code): Path<String>,
    client: Client,
    headers: HeaderMap,
    Json(r): Json<Redeem>,
) -> Result<Response, ApiError> {
    let with = rules::JoinServices {
        durable: state.durable.as_ref(),
        live: state.live.as_ref(),
        keys: &state.keys,
        guesses: &state.guards.join_ip,
        token_secs: state.settings.identity.patient_token_secs,
    };
    let attempt = rules::Redeem {
        code: &code,
        device: &r.device,
        ip: client.ip,
        staff: staff_presence(&state, &headers).map(|s| s.actor()),
    };
    let j = match rules::redeem(&with, attempt, now_ms()).await {
        Ok(j) => j,
        Err(e) => return redeem_error(e),
    };
    let kind = match j.link.kind {
        LinkKind::Patient => "patient",
        LinkKind::Guest => "guest",
    };
    let identity = identity_status(&state, &j.link).await?;
    let room = &j.room;
    let body: Value = json!({
        "token": j.token,
        "expires_at": j.expires_at,
        "participant": j.participant,
        "room": { "id": room.id, "name": room.name, "waiting_message": room.waiting_message },
        "visit": j.link.visit,
        "name": j.name,
        // `name` falls back to "Patient"; the page asks the patient's own name either way
        // and prefills it with this one.
        "linked_name": j.link.patient_name,
        "lang": j.link.lang,
        "kind": kind,
        "identity": identity,
    });
    Ok(Json(body).into_response())
}

/// The one answer for each way a link is not opened.
fn redeem_error(e: RedeemError) -> Result<Response, ApiError> {
    let message = e.to_string();
    match e {
        RedeemError::BadDevice => Err(ApiError::invalid("device", message)),
        RedeemError::RateLimited(wait) => {
            let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
                .into_response();
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            Ok(resp)
        }
        RedeemError::UnknownLink => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_link",
            message,
        )),
        RedeemError::Refused(r) => Ok(refusal(r)),
        RedeemError::StaffCannotJoinAsPatient => {
            Err(ApiError::forbidden("staff_cannot_join_as_patient", message))
        }
        RedeemError::RoomGone => Err(ApiError::not_found("room")),
        RedeemError::Store(e) => Err(e.into()),
    }
}

/// How a request shows it comes from staff.
enum StaffPresence {
    /// A verified examroom staff token (bearer or session cookie): the staff id.
    Session(String),
    /// A staff browser (session cookie of any age, the staff-device marker) or an
    /// identity-provider token: staff, but not who.
    Marker,
}

impl StaffPresence {
    /// Who to name in the audit log.
    fn actor(&self) -> String {
        match self {
            StaffPresence::Session(id) => id.clone(),
            StaffPresence::Marker => "staff-device".into(),
        }
    }
}

/// Whether this request comes from staff, and how it shows; `None` for anyone else.
fn staff_presence(state: &AppState, headers: &HeaderMap) -> Option<StaffPresence> {
    let cookies = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let session = cookies()
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v);
    for token in bearer.into_iter().chain(session) {
        match state.keys.verify(token) {
            Ok(c) if c.is_staff() => return Some(StaffPresence::Session(c.sub)),
            Ok(_) => {}
            // A token from the clinic's identity provider is a staff sign-in too.
            Err(_)
                if state.guards.jwks.is_some()
                    && crate::identity::oidc::Jwks::claims_token(token) =>
            {
                return Some(StaffPresence::Marker);
            }
            Err(_) => {}
        }
    }
    // Any session cookie at all (even expired or signed out) marks a staff browser.
    if session.is_some() || cookies().any(|(k, _)| k == STAFF_DEVICE_COOKIE) {
        return Some(StaffPresence::Marker);
    }
    None
}

/// What the patient page must ask before the physician's panel opens.
async fn identity_status(state: &AppState, link: &Link) -> Result<Value, ApiError> {
    let factor = state.settings.links.identity_factor;
    let required = link.kind == LinkKind::Patient
        && link.patient_ref.is_some()
        && factor != IdentityFactor::None;
    if !required {
        return Ok(json!({ "required": false }));
    }
    let check = state.durable.identity_check(&link.visit).await?;
    let confirmed = check.as_ref().is_some_and(|c| c.confirmed_at.is_some());
    let max = state.settings.links.identity_attempts;
    let used = check.map_or(0, |c| c.attempts);
    Ok(json!({
        "required": true,
        "factor": factor.as_str(),
        "confirmed": confirmed,
        "attempts_left": if confirmed { max } else { max.saturating_sub(used) },
    }))
}

#[derive(Deserialize)]
struct ConfirmIdentity {
    birth_date: Option<String>,
}

/// The answer to a failed identity check, in the documented error shape; a wrong
/// answer also says how many tries are left.
fn identity_error(e: IdentityError) -> Response {
    let code = e.code();
    let message = e.to_string();
    match e {
        IdentityError::BadAnswer => ApiError::invalid("birth_date", message).into_response(),
        IdentityError::Mismatch { attempts_left } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": code,
                "message": message,
                "field": "birth_date",
                "attempts_left": attempts_left,
            })),
        )
            .into_response(),
        IdentityError::Locked => ApiError::forbidden(code, message).into_response(),
        IdentityError::Unverifiable => {
            ApiError::new(StatusCode::CONFLICT, code, message).into_response()
        }
        IdentityError::Store(d) => ApiError::from(d).into_response(),
    }
}

/// The joining patient confirms the identity factor (date of birth) against the record
/// source. Every answer is audited; wrong answers are limited per visit.
async fn confirm_identity(
    who: ParticipantAuth,
    State(state): State<AppState>,
    body: Option<axum::Json<ConfirmIdentity>>,
) -> Result<Response, ApiError> {
    let claims = &who.claims;
    if !claims.has(Role::Patient) {
        return Err(ApiError::forbidden(
            "not_patient",
            "only the patient confirms who they are",
        ));
    }
    let Some(visit) = claims.visit.clone() else {
        return Err(ApiError::forbidden("not_participant", "token has no visit"));
    };
    let answer = body
        .and_then(|axum::Json(b)| b.birth_date)
        .unwrap_or_default();
    let answer = match chart::parse_birth_date(&answer) {
        Ok(a) => a,
        Err(e) => return Ok(identity_error(e)),
    };
    let Some(patient) = claims.patient.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_patient_record",
            "this visit's link named no patient record; nothing to confirm",
        ));
    };
    if state.settings.links.identity_factor == IdentityFactor::None {
        return Ok(Json(json!({ "confirmed": true, "required": false })).into_response());
    }
    // The link (if any) still has to be live: a revoked link confirms nothing.
    if let Some(link) = claims
        .sid
        .as_deref()
        .and_then(|s| crate::ids::LinkId::parse(s).ok())
        && state.durable.link(&link).await?.is_some_and(|l| l.revoked)
    {
        return Err(ApiError::new(
            StatusCode::GONE,
            "link_revoked",
            "this link was revoked",
        ));
    }
    let now = now_ms();
    let mut entry = NewAuditEntry {
        at: now,
        actor: claims.sub.clone(),
        action: "identity.confirm".into(),
        patient_ref: Some(patient.clone()),
        visit: Some(visit.clone()),
        sections: vec!["demographics".into()],
        outcome: AuditOutcome::Refused,
        reason: None,
    };
    // The record source, not anything the link's creator wrote, holds the truth.
    let recorded = match state.records.get(&visit, &patient, false).await {
        Ok(served) => chart::recorded_birth_date(served.summary.demographics.birth_date.as_deref()),
        Err(e) => {
            entry.reason = Some("source_error".into());
            state.durable.append_audit(entry).await?;
            tracing::warn!(visit = %visit, error = %e, "identity check: record source failed");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "records_unavailable",
                "the clinic's record system could not be reached; try again shortly",
            ));
        }
    };
    let max = state.settings.links.identity_attempts;
    let result =
        chart::confirm_birth_date(state.durable.as_ref(), &visit, answer, recorded, max, now).await;
    match &result {
        Ok(()) => entry.outcome = AuditOutcome::Allowed,
        // Nothing was decided: the store failed before or while taking the slot.
        Err(IdentityError::Store(_)) => {}
        Err(e) => entry.reason = Some(e.code().to_owned()),
    }
    if !matches!(result, Err(IdentityError::Store(_))) {
        state.durable.append_audit(entry).await?;
    }
    match result {
        Ok(()) => {
            tracing::info!(visit = %visit, "patient confirmed their identity");
            Ok(Json(json!({ "confirmed": true })).into_response())
        }
        Err(e) => {
            if matches!(e, IdentityError::Locked) {
                tracing::warn!(visit = %visit, "identity check locked: too many wrong answers");
            }
            Ok(identity_error(e))
        }
    }
}
