//! The HTTP edge: thin handlers over the domain. Each sub-module owns a group of
//! routes; [`router`] puts them together.

pub mod admin;
pub mod auth;
pub mod error;
mod health;
mod links;
pub mod openapi;
mod pages;
mod records;
pub mod routes;
mod session;
pub mod surveys;
mod ws;

use crate::app::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    Router::new()
        .merge(health::routes())
        .merge(ws::routes())
        .merge(records::routes())
        .merge(pages::routes())
        .merge(session::routes())
        .merge(links::routes())
        .merge(admin::routes())
        .merge(surveys::routes())
        .merge(openapi::routes())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
