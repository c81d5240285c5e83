//! Join links, listed: admins see all, physicians the links of their rooms. The code
//! itself is never shown (only its hash is stored). Minting and revoking are `identity`'s.

use super::{now_millis, parse_room};
use crate::durable::{Link, LinkKind};
use crate::http::auth::StaffAuth;
use crate::http::error::ApiError;
use crate::identity::Role;
use crate::ids::{LinkId, RoomId, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use crate::visit::Millis;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_links))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    #[schema(value_type = String)]
    pub id: LinkId,
    /// `patient` or `guest`.
    #[schema(value_type = String)]
    pub kind: LinkKind,
    #[schema(value_type = String)]
    pub room: RoomId,
    #[schema(value_type = String)]
    pub visit: VisitId,
    pub patient_name: Option<String>,
    pub lang: Option<String>,
    pub not_before: Option<Millis>,
    pub expires_at: Millis,
    pub expired: bool,
    #[schema(value_type = String)]
    pub created_by: StaffId,
    pub created_at: Millis,
    pub revoked: bool,
    /// Whether it was ever opened.
    pub used: bool,
    pub first_used_at: Option<Millis>,
    pub use_count: i64,
}

impl LinkView {
    fn new(l: Link, now: Millis) -> Self {
        LinkView {
            id: l.new.id,
            kind: l.new.kind,
            room: l.new.room,
            visit: l.new.visit,
            patient_name: l.new.patient_name,
            lang: l.new.lang,
            not_before: l.new.not_before,
            expired: l.new.expires_at <= now,
            expires_at: l.new.expires_at,
            created_by: l.new.created_by,
            created_at: l.new.created_at,
            revoked: l.revoked,
            used: l.first_used_at.is_some(),
            first_used_at: l.first_used_at,
            use_count: l.use_count,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LinksQuery {
    /// Only this room's links.
    room: Option<String>,
}

/// Join links, newest first. Admins: any room. Physicians: only rooms they are
/// assigned to (another room → 403 `not_your_room`).
#[utoipa::path(get, path = "/api/links", tag = "links", params(LinksQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [LinkView]), (status = 403)))]
async fn list_links(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<LinksQuery>,
) -> Result<Json<Vec<LinkView>>, ApiError> {
    let room = parse_room("room", q.room.as_deref())?;
    let links = state.durable.list_links(room.as_ref()).await?;
    let links = if me.has(Role::Admin) {
        links
    } else {
        let mine: Vec<RoomId> = state
            .durable
            .rooms_for_physician(&me.staff)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        if let Some(r) = &room
            && !mine.contains(r)
        {
            return Err(ApiError::forbidden(
                ApiErrorCode::NotYourRoom,
                "you are not a physician of that room",
            ));
        }
        links
            .into_iter()
            .filter(|l| mine.contains(&l.new.room))
            .collect()
    };
    let now = now_millis();
    Ok(Json(
        links.into_iter().map(|l| LinkView::new(l, now)).collect(),
    ))
}
