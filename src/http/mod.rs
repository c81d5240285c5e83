//! The HTTP edge: thin handlers over the domain. Each sub-module owns a group of
//! routes; [`router`] puts them together.

pub mod admin;
pub mod appointments;
pub mod auth;
mod clinic;
mod directory;
pub mod error;
pub mod extract;
pub mod headers;
mod health;
mod links;
mod notes;
pub mod openapi;
mod pages;
mod records;
mod referrals;
pub mod routes;
mod session;
pub mod surveys;
mod ws;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    let policy = Arc::new(headers::WebPolicy::new(&state.settings));
    Router::new()
        .merge(health::routes())
        .merge(clinic::routes())
        .merge(ws::routes())
        .merge(records::routes())
        .merge(notes::routes())
        .merge(pages::routes())
        .merge(session::routes())
        .merge(links::routes())
        .merge(admin::routes())
        .merge(surveys::routes())
        .merge(directory::routes())
        .merge(referrals::routes())
        .merge(appointments::routes())
        .merge(openapi::routes())
        .layer(DefaultBodyLimit::max(body_limit))
        // Outermost last: errors are made JSON first, then every answer gets the headers.
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            headers::security_headers,
        ))
        .with_state(state)
}
