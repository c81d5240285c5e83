//! `GET /ws`: upgrade to the signalling WebSocket. Authentication happens in the first
//! message (`hello`), so tokens never appear in URLs or access logs.

use crate::app::AppState;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Hard cap on one WebSocket message: above it the connection is closed (1009).
/// Between `signalling.max_message_bytes` and this, the message is refused with
/// `too_large` and the connection stays up.
pub const HARD_MESSAGE_LIMIT: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
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
            crate::signalling::session::run(socket, state).await;
            drop(slot);
        })
}
