//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the route
//! registrations themselves (`utoipa_axum::OpenApiRouter`), so it cannot drift from what
//! the server serves. A module joins it by exposing `api() -> OpenApiRouter<AppState>`
//! (handlers annotated with `#[utoipa::path]`) and adding one line to [`document`];
//! `docs/api.md` says how.

use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "examroom API",
        description = "Telehealth consultation server: rooms, staff, links, visit history, \
                       surveys and patient experience. Times are unix milliseconds. \
                       Errors are `{error, message, field?}`. See docs/api.md.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "rooms", description = "Rooms and opening hours"),
        (name = "staff", description = "Staff accounts, invitations and resets"),
        (name = "links", description = "Join links: made by staff, opened by patients and guests"),
        (name = "visits", description = "Visit history, JSON and CSV"),
        (name = "records", description = "Emergency accesses to patient records (review); visit notes written back to the record"),
        (name = "surveys", description = "Post-visit surveys and patient experience"),
        (name = "appointments", description = "Booking, manage links, schedules and notices (docs/scheduling.md)"),
        (name = "session", description = "Staff sign-in, sessions and one-time set-up links"),
        (name = "directory", description = "The public physician directory and the profiles behind it"),
        (name = "referrals", description = "Referrals between physicians, and what the patient sees of them"),
        (name = "meta", description = "This document, and who runs this server")
    )
)]
struct Base;

/// Every documented route group. Add yours here.
fn groups() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<Base as utoipa::OpenApi>::openapi())
        .merge(super::admin::api())
        .merge(super::surveys::api())
        .merge(super::appointments::api())
        .merge(super::clinic::api())
        .merge(super::session::api())
        .merge(super::links::api())
        .merge(super::records::api())
        .merge(super::directory::api())
        .merge(super::referrals::api())
        .merge(super::notes::api())
        .merge(OpenApiRouter::new().routes(utoipa_axum::routes!(openapi_json)))
}

/// The document, built once.
pub fn document() -> OpenApi {
    let mut doc = groups().into_openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("Staff token from `POST /api/session`"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::auth::SESSION_COOKIE,
            "Staff session cookie; state-changing requests also need `X-CSRF-Token`",
        ))),
    );
    components.add_security_scheme(
        "patient",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("Patient token given by a join link"))
                .build(),
        ),
    );
    doc
}

pub fn routes() -> Router<AppState> {
    let json: Arc<serde_json::Value> =
        Arc::new(serde_json::to_value(document()).expect("the OpenAPI document serialises"));
    Router::new().route(
        "/api/openapi.json",
        get(move || {
            let json = json.clone();
            async move { Json((*json).clone()) }
        }),
    )
}

/// This OpenAPI document. Public.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)] // Registered for the document only; `routes` serves the cached copy.
async fn openapi_json() {}
