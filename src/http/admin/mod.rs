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
pub mod hours;
mod links;
mod rooms;
mod staff;
mod visits;

/// Who may see which visits; `http::surveys` uses it for the experience figures too.
pub use visits::scoped_filter;

use super::error::ApiError;
use crate::app::AppState;
use crate::ids::{RoomId, StaffId};
use crate::visit::Millis;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
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

/// A request body type that can name the field a deserialisation error is about.
pub trait BodyFields {
    /// Every top-level field the body accepts.
    const FIELDS: &'static [&'static str];
}

/// A JSON body whose errors come back as `ApiError`s naming the field at fault
/// (`axum::Json` answers with plain text that names nothing a client can act on).
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned + BodyFields,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
        parse_body(&bytes).map(JsonBody)
    }
}

/// Parse a JSON body; the error names the top-level field at fault, or `body`.
pub fn parse_body<T: DeserializeOwned + BodyFields>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_json",
                "the body is not valid JSON",
            );
        }
        let msg = inner.to_string();
        // `missing field `x`` and `unknown field `x`` errors sit at the parent's path.
        let first = path.split(['.', '[']).next().unwrap_or_default();
        let quoted = msg.split('`').nth(1).unwrap_or_default();
        let field = T::FIELDS
            .iter()
            .find(|f| **f == first)
            .or_else(|| T::FIELDS.iter().find(|f| **f == quoted))
            .copied()
            .unwrap_or("body");
        // Drop serde's "at line 1 column 7": the field says where.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        ApiError::invalid(field, msg)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        name: String,
        n: u32,
    }
    impl BodyFields for B {
        const FIELDS: &'static [&'static str] = &["name", "n"];
    }

    #[test]
    fn body_errors_name_the_field() {
        let e = parse_body::<B>(br#"{"name":"a","n":-1}"#).unwrap_err();
        assert_eq!(e.field, Some("n"));
        let e = parse_body::<B>(br#"{"n":1}"#).unwrap_err();
        assert_eq!(e.field, Some("name"));
        let e = parse_body::<B>(br#"{"name":"a","n":1,"x":2}"#).unwrap_err();
        assert_eq!(e.field, Some("body"));
        let e = parse_body::<B>(br#"{"name":"#).unwrap_err();
        assert_eq!(e.code, "bad_json");
    }
}
