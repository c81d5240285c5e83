//! The admin REST API: rooms, staff, join-link listing, visit history (JSON and CSV).
//! Post-visit surveys and experience scores live in `http::surveys`.
//!
//! Access is decided by the extractor each handler takes (`AdminAuth`, `PhysicianAuth`,
//! `StaffAuth` plus a per-row check for "physicians see their own"); the table is in
//! `docs/api.md`. Every handler validates its whole input before the one store call that
//! writes, so bad input is a 4xx naming the field and nothing is half-written.
//!
//! Routes are registered through `utoipa_axum`, so the OpenAPI document (`http::openapi`)
//! is generated from the same registrations that serve requests and cannot drift.

mod emergency;
mod links;
mod rooms;
mod staff;
mod visits;

/// Who may see which visits; `http::surveys` uses it for the experience figures too.
pub use visits::scoped_filter;

use super::error::ApiError;
use crate::ids::{RoomId, StaffId};
use crate::state::AppState;
use crate::visit::Millis;
use utoipa_axum::router::OpenApiRouter;

/// The admin routes with their OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(rooms::api())
        .merge(staff::api())
        .merge(links::api())
        .merge(visits::api())
        .merge(emergency::api())
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

/// Query parameters arrive as strings and are parsed here, so a bad one is a 422 naming
/// it rather than axum's plain-text rejection.
pub fn parse_room(field: &'static str, v: Option<&str>) -> Result<Option<RoomId>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| RoomId::parse(s).map_err(|e| ApiError::invalid(field, e.to_string())))
        .transpose()
}

pub fn parse_staff(field: &'static str, v: Option<&str>) -> Result<Option<StaffId>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| StaffId::parse(s).map_err(|e| ApiError::invalid(field, e.to_string())))
        .transpose()
}

pub fn parse_millis(field: &'static str, v: Option<&str>) -> Result<Option<Millis>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Millis>()
                .map_err(|_| ApiError::invalid(field, "must be a time in unix milliseconds"))
        })
        .transpose()
}

/// `from` inclusive, `to` exclusive; `to` before `from` is refused rather than empty.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<Millis>, Option<Millis>), ApiError> {
    let from = parse_millis("from", from)?;
    let to = parse_millis("to", to)?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(ApiError::invalid("to", "must not be before `from`"));
    }
    Ok((from, to))
}

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh one-time secret for a setup link, and the hash the store keeps (256 bits).
pub fn new_setup_secret() -> (String, String) {
    let secret = crate::ids::random_id() + &crate::ids::random_id();
    let hash = crate::identity::hash_secret(&secret);
    (secret, hash)
}
