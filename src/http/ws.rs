//! `GET /ws`: upgrade to the signalling WebSocket. Authentication happens in the first
//! message (`hello`), so tokens never appear in URLs or access logs.
//!
//! Browsers: the upgrade's `Origin` must be one of ours (`http::headers::check_origin`),
//! and a staff page authenticates with its `HttpOnly` session cookie, which comes with the
//! upgrade — its `hello` carries no token, so page scripts never hold the staff token.
//! Tools (load generator, tests) send no `Origin` and say `hello` with a bearer token.

use crate::app::AppState;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Hard cap on one WebSocket message: above it the connection is closed (1009).
/// Between `signalling.max_message_bytes` and this, the message is refused with
/// `too_large` and the connection stays up.
pub const HARD_MESSAGE_LIMIT: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Cross-site WebSocket hijacking: a page elsewhere cannot ride the staff cookie.
    if let Err(e) = super::headers::check_origin(&state.settings, &headers) {
        return super::error::ApiError::forbidden("origin_not_allowed", e.to_string())
            .into_response();
    }
    let cookie = super::auth::session_cookie(&headers).map(str::to_owned);
    let Ok(slot) = state.connection_slots.clone().try_acquire_owned() else {
        let body = serde_json::json!({"error": "server_full", "message": "this server is at its connection limit; try again shortly"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    };
    if state.shutdown.is_cancelled() {
        let body =
            serde_json::json!({"error": "unavailable", "message": "server is shutting down"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let cfg = &state.settings.signalling;
    ws.read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.read_buffer_bytes)
        .max_message_size(HARD_MESSAGE_LIMIT)
        .max_frame_size(HARD_MESSAGE_LIMIT)
        .on_upgrade(move |socket| async move {
            crate::signalling::session::run(socket, state, cookie).await;
            drop(slot);
        })
}
