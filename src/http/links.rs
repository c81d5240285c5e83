//! Join links: physicians mint them (`POST /api/links`, `POST /api/links/guest`) and
//! revoke them (`DELETE /api/links/{id}`); patients and guests redeem them for a
//! short-lived token (`POST /api/join/{code}`); a patient whose link names a record
//! confirms who they are (`POST /api/identity`). The rules live in `identity::links`
//! and `identity::chart`.
//!
//! Who may make which link, and what it may carry, is `identity::links::mint`. Staff
//! cannot redeem patient links from a staff session or a browser that signed in as staff ([`STAFF_DEVICE_COOKIE`]).

use super::auth::{Client, ParticipantAuth, SESSION_COOKIE, StaffAuth};
use super::error::ApiError;
use super::extract::Json;
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::config::IdentityFactor;
use crate::durable::{Link, LinkKind};
use crate::identity::Role;
use crate::identity::chart::{self, IdentityError};
use crate::identity::links::mint::{self, Maker, MintError, MintRules, Minted, PatientLinkRequest};
use crate::identity::links::{self as rules, LinkRefusal, RedeemError};
use crate::ids::{LinkId, PatientRef, RoomId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use crate::visit::{Millis, RoomConfig};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes with their OpenAPI description (`http::openapi` merges it).
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mint))
        .routes(routes!(mint_guest))
        .routes(routes!(revoke))
        .routes(routes!(redeem))
        .routes(routes!(confirm_identity))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
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

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The one place a refused mint or revoke becomes an answer.
fn mint_error(e: MintError) -> ApiError {
    let message = e.to_string();
    match e {
        MintError::Store(e) => e.into(),
        MintError::Invalid { field, message } => ApiError::invalid(field, message),
        MintError::UnknownRoom | MintError::UnknownVisit | MintError::UnknownLink => {
            ApiError::new(StatusCode::NOT_FOUND, e.code(), message)
        }
        MintError::PatientRefNotAllowed => ApiError {
            field: Some("patient_ref"),
            ..ApiError::forbidden(e.code(), message)
        },
        MintError::NotYourRoom | MintError::InvitesDisabled => {
            ApiError::forbidden(e.code(), message)
        }
    }
}

fn mint_rules(state: &AppState) -> MintRules {
    MintRules {
        link_secs: state.settings.identity.join_link_secs,
        physicians_may_name_patient: state.settings.links.physicians_may_name_patient,
    }
}

fn maker(auth: &StaffAuth) -> Maker<'_> {
    Maker {
        staff: &auth.staff,
        claims: &auth.claims,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Mint {
    #[schema(value_type = String)]
    room: RoomId,
    /// Shown to the physician in the queue; the patient may correct it when joining.
    patient_name: Option<String>,
    /// The patient's record id at the record source; only when the clinic allows it.
    #[schema(value_type = Option<String>)]
    patient_ref: Option<PatientRef>,
    /// Why the visit is booked; shown to staff only.
    reason: Option<String>,
    /// The patient page's language tag (`en`, `es`).
    lang: Option<String>,
    /// The link opens from this time (unix ms).
    not_before: Option<Millis>,
    /// The link stops opening at this time (unix ms); defaults to `identity.join_link_secs`.
    expires_at: Option<Millis>,
}

/// A new link. `code` and `url` are shown once: only the code's hash is kept.
#[derive(Serialize, ToSchema)]
struct LinkMade {
    #[schema(value_type = String)]
    id: LinkId,
    code: String,
    url: String,
    #[schema(value_type = String)]
    visit: VisitId,
    expires_at: Millis,
}

fn minted(state: &AppState, m: Minted) -> (StatusCode, Json<LinkMade>) {
    let url = format!("{}/join/{}", state.settings.public_url(), m.code);
    let made = LinkMade {
        id: m.link.new.id,
        code: m.code,
        url,
        visit: m.link.new.visit,
        expires_at: m.link.new.expires_at,
    };
    (StatusCode::CREATED, Json(made))
}

/// A physician of the room, or an admin, makes a patient's join link.
#[utoipa::path(post, path = "/api/links", tag = "links", request_body = Mint,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = LinkMade),
        (status = 403, description = "not a physician of the room, or `patient_ref` not allowed"),
        (status = 404, description = "unknown room"),
        (status = 422, description = "a field out of range (`field` names it)")))]
async fn mint(
    State(state): State<AppState>,
    auth: StaffAuth,
    Json(m): Json<Mint>,
) -> Result<(StatusCode, Json<LinkMade>), ApiError> {
    let request = PatientLinkRequest {
        room: m.room,
        patient_name: m.patient_name,
        patient_ref: m.patient_ref,
        reason: m.reason,
        lang: m.lang,
        not_before: m.not_before,
        expires_at: m.expires_at,
    };
    let made = mint::mint_patient_link(
        state.durable.as_ref(),
        mint_rules(&state),
        maker(&auth),
        request,
        now_ms(),
    )
    .await
    .map_err(mint_error)?;
    Ok(minted(&state, made))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MintGuest {
    #[schema(value_type = String)]
    room: RoomId,
    #[schema(value_type = String)]
    visit: VisitId,
}

/// A physician of the room invites a guest (interpreter, family) into one visit.
#[utoipa::path(post, path = "/api/links/guest", tag = "links", request_body = MintGuest,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = LinkMade),
        (status = 403, description = "not a physician of the room, or the room allows no invitations"),
        (status = 404, description = "unknown room or visit")))]
async fn mint_guest(
    State(state): State<AppState>,
    auth: StaffAuth,
    Json(m): Json<MintGuest>,
) -> Result<(StatusCode, Json<LinkMade>), ApiError> {
    let made = mint::mint_guest_link(
        state.durable.as_ref(),
        mint_rules(&state),
        maker(&auth),
        &m.room,
        m.visit,
        now_ms(),
    )
    .await
    .map_err(mint_error)?;
    Ok(minted(&state, made))
}

/// The room's physician or an admin revokes a link; its tokens stop at the next hello.
#[utoipa::path(delete, path = "/api/links/{id}", tag = "links",
    params(("id" = String, Path, description = "the link's id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "revoked"),
        (status = 403, description = "not a physician of the link's room"),
        (status = 404, description = "unknown link")))]
async fn revoke(
    State(state): State<AppState>,
    auth: StaffAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = LinkId::parse(&id).map_err(|_| mint_error(MintError::UnknownLink))?;
    let token_ttl = std::time::Duration::from_secs(state.settings.identity.patient_token_secs);
    let memo = state.memo.as_ref();
    mint::revoke_link(state.durable.as_ref(), memo, token_ttl, maker(&auth), &id)
        .await
        .map_err(mint_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
struct Redeem {
    /// A random id the page keeps for this browser: a link opens on one device.
    device: String,
}

/// What a patient or guest needs to enter the waiting room.
#[derive(Serialize, ToSchema)]
struct Joined {
    /// The participant token for `/ws` and the patient APIs.
    token: String,
    expires_at: Millis,
    #[schema(value_type = String)]
    participant: crate::ids::ParticipantId,
    room: JoinedRoom,
    #[schema(value_type = String)]
    visit: VisitId,
    /// The name to greet with; "Patient" when the link named nobody.
    name: String,
    /// The name the link was made for, to prefill; the page asks the patient's own name.
    linked_name: Option<String>,
    /// The language the link asks for.
    lang: Option<String>,
    /// `patient` or `guest`.
    kind: String,
    identity: IdentityStatus,
    /// Whom the patient will see, when the room has one (active) physician.
    physician_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct JoinedRoom {
    #[schema(value_type = String)]
    id: RoomId,
    name: String,
    waiting_message: String,
    /// The waiting message in other languages, by language tag.
    waiting_messages: BTreeMap<String, String>,
}

/// Whether the patient must confirm who they are before the physician's panel opens.
#[derive(Serialize, ToSchema)]
struct IdentityStatus {
    required: bool,
    /// `birth_date`, when required.
    #[serde(skip_serializing_if = "Option::is_none")]
    factor: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u32>,
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
/// waiting room, bound to the link's room and visit. Public; guesses are limited per address.
#[utoipa::path(post, path = "/api/join/{code}", tag = "links", request_body = Redeem,
    params(("code" = String, Path, description = "the code from the link")),
    responses((status = 200, body = Joined),
        (status = 403, description = "`link_not_yet_valid` (with `not_before`), or a staff browser"),
        (status = 404, description = "unknown link"),
        (status = 409, description = "`link_in_use`: opened on another device"),
        (status = 410, description = "`link_revoked` or `link_expired`"),
        (status = 422, description = "`device` malformed"),
        (status = 429, description = "too many guesses from this address (`Retry-After`)")))]
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
    let kind = match j.link.new.kind {
        LinkKind::Patient => "patient",
        LinkKind::Guest => "guest",
    };
    let identity = identity_status(&state, &j.link).await?;
    let room = &j.room;
    let physician_name = physician_name(&state, room).await?;
    let body = Joined {
        token: j.token,
        expires_at: j.expires_at,
        participant: j.participant,
        room: JoinedRoom {
            id: room.id.clone(),
            name: room.name.clone(),
            waiting_message: room.waiting_message.clone(),
            waiting_messages: room.waiting_messages.clone(),
        },
        visit: j.link.new.visit,
        name: j.name,
        linked_name: j.link.new.patient_name,
        lang: j.link.new.lang,
        kind: kind.into(),
        identity,
        physician_name,
    };
    Ok(Json(body).into_response())
}

/// The one answer for each way a link is not opened.
fn redeem_error(e: RedeemError) -> Result<Response, ApiError> {
    let message = e.to_string();
    match e {
        RedeemError::BadDevice => Err(ApiError::invalid("device", message)),
        RedeemError::RateLimited(wait) => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ApiErrorCode::RateLimited,
                message,
            )
            .into_response();
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            Ok(resp)
        }
        RedeemError::UnknownLink => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownLink,
            message,
        )),
        RedeemError::Refused(r) => Ok(refusal(r)),
        RedeemError::StaffCannotJoinAsPatient => Err(ApiError::forbidden(
            ApiErrorCode::StaffCannotJoinAsPatient,
            message,
        )),
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
/// Whom the patient will see, when the room says so: a physician's own room, or a room with
/// one physician. A clinic room with several physicians names nobody (whoever is free
/// admits), and neither does one whose physician is deactivated.
async fn physician_name(state: &AppState, room: &RoomConfig) -> Result<Option<String>, ApiError> {
    let [only] = room.physicians.as_slice() else {
        return Ok(None);
    };
    let staff = state.durable.staff(only).await?;
    Ok(staff.filter(|s| s.active).map(|s| s.name))
}

async fn identity_status(state: &AppState, link: &Link) -> Result<IdentityStatus, ApiError> {
    let factor = state.settings.links.identity_factor;
    let required = link.new.kind == LinkKind::Patient
        && link.new.patient_ref.is_some()
        && factor != IdentityFactor::None;
    if !required {
        return Ok(IdentityStatus {
            required: false,
            factor: None,
            confirmed: None,
            attempts_left: None,
        });
    }
    let check = state.durable.identity_check(&link.new.visit).await?;
    let confirmed = check.as_ref().is_some_and(|c| c.confirmed_at.is_some());
    let max = state.settings.links.identity_attempts;
    let used = check.map_or(0, |c| c.attempts);
    Ok(IdentityStatus {
        required: true,
        factor: Some(factor.as_str()),
        confirmed: Some(confirmed),
        attempts_left: Some(if confirmed {
            max
        } else {
            max.saturating_sub(used)
        }),
    })
}

#[derive(Deserialize, ToSchema)]
struct ConfirmIdentity {
    /// `YYYY-MM-DD`.
    birth_date: Option<String>,
}

/// The identity check passed (`required: false` when the clinic asks for none).
#[derive(Serialize, ToSchema)]
struct IdentityConfirmed {
    confirmed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    required: Option<bool>,
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
#[utoipa::path(post, path = "/api/identity", tag = "links", request_body = ConfirmIdentity,
    security(("patient" = [])),
    responses((status = 200, body = IdentityConfirmed),
        (status = 403, description = "not a patient token, or `identity_locked` after too many wrong answers"),
        (status = 404, description = "the visit's link named no patient record"),
        (status = 409, description = "the record has no date of birth to check against"),
        (status = 410, description = "the link was revoked"),
        (status = 422, description = "malformed date, or `identity_mismatch` with `attempts_left`"),
        (status = 503, description = "the record source could not be reached")))]
async fn confirm_identity(
    who: ParticipantAuth,
    State(state): State<AppState>,
    body: Option<axum::Json<ConfirmIdentity>>,
) -> Result<Response, ApiError> {
    let claims = &who.claims;
    if !claims.has(Role::Patient) {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotPatient,
            "only the patient confirms who they are",
        ));
    }
    let Some(visit) = claims.visit.clone() else {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotParticipant,
            "token has no visit",
        ));
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
            ApiErrorCode::NoPatientRecord,
            "this visit's link named no patient record; nothing to confirm",
        ));
    };
    if state.settings.links.identity_factor == IdentityFactor::None {
        let answer = IdentityConfirmed {
            confirmed: true,
            required: Some(false),
        };
        return Ok(Json(answer).into_response());
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
            ApiErrorCode::LinkRevoked,
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
                ApiErrorCode::RecordsUnavailable,
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
        Err(e) => entry.reason = Some(e.code().as_str().to_owned()),
    }
    if !matches!(result, Err(IdentityError::Store(_))) {
        state.durable.append_audit(entry).await?;
    }
    match result {
        Ok(()) => {
            tracing::info!(visit = %visit, "patient confirmed their identity");
            let answer = IdentityConfirmed {
                confirmed: true,
                required: None,
            };
            Ok(Json(answer).into_response())
        }
        Err(e) => {
            if matches!(e, IdentityError::Locked) {
                tracing::warn!(visit = %visit, "identity check locked: too many wrong answers");
            }
            Ok(identity_error(e))
        }
    }
}
