//! `GET /ws`: upgrade to the signalling WebSocket. Authentication happens in the first
//! message (`hello`), so tokens never appear in URLs or access logs.

use crate::app::AppState;
use crate::http::auth::Client;
use crate::signalling::admission::Refused;
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

async fn upgrade(State(state): State<AppState>, client: Client, ws: WebSocketUpgrade) -> Response {
    let slot = match state.admission.pending(client.ip) {
        Ok(slot) => slot,
        Err(refused) => return refusal(refused),
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
        .on_upgrade(move |socket| crate::signalling::session::run(socket, state, slot))
}

fn refusal(refused: Refused) -> Response {
    let (status, code) = match refused {
        Refused::ServerFull | Refused::TooManyUnauthenticated => {
            (StatusCode::SERVICE_UNAVAILABLE, "server_full")
        }
        Refused::TooManyFromAddress => (StatusCode::TOO_MANY_REQUESTS, "too_many_connections"),
    };
    let body = serde_json::json!({"error": code, "message": refused.to_string()});
    (status, axum::Json(body)).into_response()
}
