//! Emergency accesses to patient records, for admins to review: who opened which visit's
//! chart without the patient's identity confirmation, when, and why (issue 17, item 1).
//! Granting one is `http::records`'; each grant is in the audit log too.

use crate::durable::EmergencyAccess;
use crate::http::auth::AdminAuth;
use crate::http::error::ApiError;
use crate::ids::{RoomId, StaffId, VisitId};
use crate::state::AppState;
use crate::visit::Millis;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_emergency_access))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyAccessView {
    pub id: String,
    #[schema(value_type = String)]
    pub visit: VisitId,
    #[schema(value_type = String)]
    pub room: RoomId,
    pub room_name: Option<String>,
    #[schema(value_type = String)]
    pub staff: StaffId,
    pub staff_name: Option<String>,
    /// The physician's reason, as typed.
    pub reason: String,
    pub at: Millis,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EmergencyQuery {
    /// Most entries returned, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Emergency accesses to patient records, newest first. Admins only.
#[utoipa::path(get, path = "/api/emergency-access", tag = "records", params(EmergencyQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [EmergencyAccessView]), (status = 403)))]
async fn list_emergency_access(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Query(q): Query<EmergencyQuery>,
) -> Result<Json<Vec<EmergencyAccessView>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let grants = state.durable.list_emergency_access(limit).await?;
    let staff = state.durable.list_staff().await?;
    let rooms = state.durable.list_rooms(true).await?;
    let view = |EmergencyAccess { id, grant: g }: EmergencyAccess| EmergencyAccessView {
        staff_name: staff
            .iter()
            .find(|s| s.id == g.staff)
            .map(|s| s.name.clone()),
        room_name: rooms
            .iter()
            .find(|r| r.id == g.room)
            .map(|r| r.name.clone()),
        id,
        visit: g.visit,
        room: g.room,
        staff: g.staff,
        reason: g.reason,
        at: g.at,
    };
    Ok(Json(grants.into_iter().map(view).collect()))
}
