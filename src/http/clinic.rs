//! `GET /api/clinic`: the clinic's name and how to reach it (`[clinic]` in the settings),
//! for the pages that cannot go on — a bad, expired or revoked join link, a set-up link
//! that cannot be used. Public: whoever holds a dead link has nothing else to go by.

use crate::http::extract::Json;
use crate::state::AppState;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(clinic))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

/// Who runs this server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Clinic {
    /// As patients know it; empty when not configured.
    pub name: String,
    /// How to reach the clinic (plain text); empty when not configured.
    pub contact: String,
}

/// The clinic's name and contact. Public: no sign-in.
#[utoipa::path(get, path = "/api/clinic", tag = "meta",
    responses((status = 200, body = Clinic)))]
async fn clinic(State(state): State<AppState>) -> Json<Clinic> {
    let c = &state.settings.clinic;
    Json(Clinic {
        name: c.name.clone(),
        contact: c.contact.clone(),
    })
}
