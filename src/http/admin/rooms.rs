//! Rooms: admins create, edit and archive them; physicians list theirs; anyone may ask
//! whether a room is open (the patient page does, before joining).

use super::now_millis;
use crate::durable::{NewRoom, RoomDetails};
use crate::http::auth::{AdminAuth, PhysicianAuth};
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids::{RoomId, StaffId};
use crate::state::AppState;
use crate::visit::hours::{self, OpeningHours};
use crate::visit::{Millis, RoomConfig, RoomKind};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room, update_room, archive_room))
        .routes(routes!(room_status))
        .routes(routes!(my_rooms))
}

/// A room as admins configure it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    #[schema(value_type = String, example = "r_5f0c…")]
    pub id: RoomId,
    pub name: String,
    /// `physician` (named physicians admit) or `walk_in` (a pool; next free physician).
    #[schema(value_type = String, example = "physician")]
    pub kind: RoomKind,
    /// Staff ids of the room's physicians.
    #[schema(value_type = Vec<String>)]
    pub physicians: Vec<StaffId>,
    /// Shown to waiting patients whose page is in a language without its own message.
    pub waiting_message: String,
    /// The waiting message in other languages, by language tag (`{"es": "…"}`).
    pub waiting_messages: BTreeMap<String, String>,
    pub max_wait_secs: u64,
    pub max_participants: usize,
    pub chat_allowed: bool,
    pub invites_allowed: bool,
    /// See `docs/api.md#opening-hours`; `null` is always open.
    pub opening_hours: Option<String>,
    pub archived: bool,
    /// Unix ms.
    pub created_at: Millis,
}

impl From<RoomDetails> for RoomView {
    fn from(d: RoomDetails) -> Self {
        let c = d.config;
        RoomView {
            id: c.id,
            name: c.name,
            kind: c.kind,
            physicians: c.physicians,
            waiting_message: c.waiting_message,
            waiting_messages: c.waiting_messages,
            max_wait_secs: c.max_wait_secs,
            max_participants: c.max_participants,
            chat_allowed: c.chat_allowed,
            invites_allowed: c.invites_allowed,
            opening_hours: d.opening_hours,
            archived: c.archived,
            created_at: d.created_at,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_wait() -> i64 {
    1800
}
fn default_participants() -> i64 {
    4
}

/// A room's settings, for create (`POST`) and replace (`PUT`). Omitted optional fields
/// take their defaults on both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomBody {
    /// 1–200 characters, unique among rooms that are not archived (any case).
    pub name: String,
    #[schema(value_type = String, example = "physician")]
    pub kind: RoomKind,
    /// Active staff with the physician role. Default none.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub physicians: Vec<StaffId>,
    /// Shown to waiting patients whose page's language has no message of its own in
    /// `waiting_messages`. ≤ 2000 characters. Default empty.
    #[serde(default)]
    pub waiting_message: String,
    /// The waiting message per language: language tag (`es`, `pt-br`) → text, ≤ 2000
    /// characters each, at most 20 languages; an empty text is dropped. Default none.
    #[serde(default)]
    pub waiting_messages: BTreeMap<String, String>,
    /// Longest wait before the visit counts as a no-show; ≥ 60. Default 1800.
    #[serde(default = "default_wait")]
    pub max_wait_secs: i64,
    /// Most people in one visit, physician included; 2–8. Default 4.
    #[serde(default = "default_participants")]
    pub max_participants: i64,
    #[serde(default = "default_true")]
    pub chat_allowed: bool,
    #[serde(default = "default_true")]
    pub invites_allowed: bool,
    /// e.g. `Mon-Fri 08:00-17:00; Sat 09:00-12:00` (UTC). `null`/absent: always open.
    #[serde(default)]
    pub opening_hours: Option<String>,
}

const MAX_WAITING_MESSAGE: usize = 2000;
const MAX_WAITING_LANGUAGES: usize = 20;

/// A language tag as pages name their language: `es`, `pt-br` (lower case, 2–3 letters, then
/// optional subtags of 1–8 letters or digits).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| {
            (1..=8).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The per-language waiting messages as the store keeps them: trimmed, empty ones dropped.
fn waiting_messages(given: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    let field = "waiting_messages";
    let kept: BTreeMap<String, String> = given
        .into_iter()
        .map(|(lang, text)| (lang.trim().to_lowercase(), text.trim().to_owned()))
        .filter(|(_, text)| !text.is_empty())
        .collect();
    if kept.len() > MAX_WAITING_LANGUAGES {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_WAITING_LANGUAGES} languages"),
        ));
    }
    for (lang, text) in &kept {
        if !is_language_tag(lang) {
            return Err(ApiError::invalid(
                field,
                format!("`{lang}` is not a language tag such as `es` or `pt-br`"),
            ));
        }
        if text.chars().count() > MAX_WAITING_MESSAGE {
            return Err(ApiError::invalid(
                field,
                format!("the `{lang}` message has more than {MAX_WAITING_MESSAGE} characters"),
            ));
        }
    }
    Ok(kept)
}

impl RoomBody {
    /// Checks what the store does not (signs, sizes, the hours format); the store checks
    /// the rest (name, limits, physicians) inside its transaction.
    fn into_new_room(self) -> Result<NewRoom, ApiError> {
        if self.max_wait_secs <= 0 {
            return Err(ApiError::invalid(
                "max_wait_secs",
                "must be positive (at least 60)",
            ));
        }
        if self.max_participants <= 0 {
            return Err(ApiError::invalid(
                "max_participants",
                "must be positive (between 2 and 8)",
            ));
        }
        if self.waiting_message.chars().count() > MAX_WAITING_MESSAGE {
            return Err(ApiError::invalid(
                "waiting_message",
                format!("at most {MAX_WAITING_MESSAGE} characters"),
            ));
        }
        let waiting_messages = waiting_messages(self.waiting_messages)?;
        let opening_hours = match self.opening_hours.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                OpeningHours::parse(text)
                    .map_err(|e| ApiError::invalid("opening_hours", e.to_string()))?
                    .text()
                    .to_owned(),
            ),
        };
        Ok(NewRoom {
            name: self.name,
            kind: self.kind,
            physicians: self.physicians,
            waiting_message: self.waiting_message,
            waiting_messages,
            max_wait_secs: self.max_wait_secs as u64,
            max_participants: usize::try_from(self.max_participants).unwrap_or(usize::MAX),
            chat_allowed: self.chat_allowed,
            invites_allowed: self.invites_allowed,
            opening_hours,
        })
    }
}

async fn details(state: &AppState, rooms: Vec<RoomConfig>) -> Result<Vec<RoomView>, ApiError> {
    // One lookup per room: admin lists are tens of rooms, not thousands.
    let mut out = Vec::with_capacity(rooms.len());
    for r in rooms {
        if let Some(d) = state.durable.room_details(&r.id).await? {
            out.push(d.into());
        }
    }
    Ok(out)
}

fn room_id(id: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(id).map_err(|_| ApiError::not_found("room"))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListRoomsQuery {
    /// `true` to include archived rooms.
    archived: Option<bool>,
}

/// List rooms (admin), by name.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms", params(ListRoomsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [RoomView]), (status = 401), (status = 403)))]
async fn list_rooms(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(q): Query<ListRoomsQuery>,
) -> Result<Json<Vec<RoomView>>, ApiError> {
    let rooms = state
        .durable
        .list_rooms(q.archived.unwrap_or(false))
        .await?;
    Ok(Json(details(&state, rooms).await?))
}

/// Create a room (admin).
#[utoipa::path(post, path = "/api/rooms", tag = "rooms", request_body = RoomBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = RoomView), (status = 409, description = "name taken"),
        (status = 422, description = "a field is invalid; `field` names it")))]
async fn create_room(
    _: AdminAuth,
    State(state): State<AppState>,
    Json(body): Json<RoomBody>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let room = state.durable.create_room(body.into_new_room()?).await?;
    let d = state
        .durable
        .room_details(&room.id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// One room (admin), archived or not.
#[utoipa::path(get, path = "/api/rooms/{id}", tag = "rooms", params(("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = RoomView), (status = 404)))]
async fn get_room(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let d = state
        .durable
        .room_details(&room_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok(Json(d.into()))
}

/// Replace a room's settings (admin). A room in use picks them up at once.
#[utoipa::path(put, path = "/api/rooms/{id}", tag = "rooms", params(("id" = String, Path)),
    request_body = RoomBody, security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = RoomView), (status = 404), (status = 409), (status = 422)))]
async fn update_room(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RoomBody>,
) -> Result<Json<RoomView>, ApiError> {
    let id = room_id(&id)?;
    let new = body.into_new_room()?;
    let before: Vec<StaffId> = match state.durable.room_details(&id).await? {
        Some(d) => RoomView::from(d).physicians,
        None => Vec::new(),
    };
    let config = state.durable.update_room(&id, new).await?;
    tell_live(&state, config).await;
    let view: RoomView = state
        .durable
        .room_details(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?
        .into();
    // A physician taken off the room was given its queue (patient names) at hello: close
    // that socket, on whichever node holds it; the dashboard reconnects without the room.
    for gone in before.iter().filter(|p| !view.physicians.contains(p)) {
        crate::signalling::staff_access_changed(&state, gone).await;
    }
    Ok(Json(view))
}

/// Archive a room (admin): no new visits; history and links stay. Idempotent.
#[utoipa::path(delete, path = "/api/rooms/{id}", tag = "rooms", params(("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 404)))]
async fn archive_room(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = room_id(&id)?;
    state.durable.archive_room(&id).await?;
    if let Some(config) = state.durable.room(&id).await? {
        tell_live(&state, config).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The durable write is the truth; a live room that misses the change still loads it
/// when it next starts, so a failure here is logged, not returned.
async fn tell_live(state: &AppState, config: RoomConfig) {
    let id = config.id.clone();
    if let Err(e) = state.live.reconfigure(config).await {
        tracing::warn!(room = %id, error = %e, "live room did not take the new settings");
    }
}

/// Rooms the signed-in physician is assigned to (not archived).
#[utoipa::path(get, path = "/api/my/rooms", tag = "rooms",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [RoomView]), (status = 403, description = "not_physician")))]
async fn my_rooms(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
) -> Result<Json<Vec<RoomView>>, ApiError> {
    let rooms = state.durable.rooms_for_physician(&me.staff).await?;
    Ok(Json(details(&state, rooms).await?))
}

/// Whether a room is open now, for the patient page.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomStatus {
    pub name: String,
    pub open: bool,
    /// When a closed room next opens (unix ms); absent when open or not within a week.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Millis>,
    /// What to tell the patient: the waiting message when open, else when to come back.
    pub message: String,
    /// The room's opening hours as written, if it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
}

/// Is this room open now? Public: no sign-in. Unknown and archived rooms are 404.
#[utoipa::path(get, path = "/api/rooms/{id}/status", tag = "rooms",
    params(("id" = String, Path)),
    responses((status = 200, body = RoomStatus), (status = 404)))]
async fn room_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RoomStatus>, ApiError> {
    let d = state
        .durable
        .room_details(&room_id(&id)?)
        .await?
        .filter(|d| !d.config.archived)
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok(Json(status_of(&d, now_millis())))
}

pub fn status_of(d: &RoomDetails, now: Millis) -> RoomStatus {
    // Hours were validated on write; text that no longer parses means "always open"
    // rather than locking patients out.
    let parsed = d
        .opening_hours
        .as_deref()
        .and_then(|t| OpeningHours::parse(t).ok());
    let s = parsed.map(|h| h.status_at(now));
    let (open, opens_at) = s.map_or((true, None), |s| (s.open, s.opens_at));
    let message = match (open, opens_at) {
        (true, _) => d.config.waiting_message.clone(),
        (false, Some(at)) => format!(
            "{} is closed now. It opens {}; please come back then.",
            d.config.name,
            hours::describe(at)
        ),
        (false, None) => format!("{} is closed.", d.config.name),
    };
    RoomStatus {
        name: d.config.name.clone(),
        open,
        opens_at,
        message,
        opening_hours: d.opening_hours.clone(),
    }
}
