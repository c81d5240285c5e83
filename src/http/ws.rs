//! `GET /ws`: upgrade to the signalling WebSocket. Authentication happens in the first
//! message (`hello`), so tokens never appear in URLs or access logs.
//!
//! Browsers: the upgrade's `Origin` must be one of ours (`http::headers::check_origin`),
//! and a staff page authenticates with its `HttpOnly` session cookie, which comes with the
//! upgrade — its `hello` carries no token, so page scripts never hold the staff token.
//! Tools (load generator, tests) send no `Origin` and say `hello` with a bearer token.

use crate::http::auth::Client;
use crate::protocol::ApiErrorCode;
use crate::signalling::socket::{HandshakeError, Upgrade};
use crate::state::AppState;
use crate::state::admission::Refused;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    ws: Result<Upgrade, HandshakeError>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            let code = match e {
                HandshakeError::NotGet => ApiErrorCode::MethodNotAllowed,
                _ => ApiErrorCode::BadRequest,
            };
            return super::error::ApiError::new(e.status(), code, e.to_string()).into_response();
        }
    };
    // Cross-site WebSocket hijacking: a page elsewhere cannot ride the staff cookie.
    // Checked before a place is taken, so refused upgrades cost nothing.
    if let Err(e) = super::headers::check_origin(&state.settings, &headers) {
        return super::error::ApiError::forbidden(ApiErrorCode::OriginNotAllowed, e.to_string())
            .into_response();
    }
    let cookie = super::auth::session_cookie(&headers).map(str::to_owned);
    let slot = match state.admission.pending(client.ip) {
        Ok(slot) => slot,
        Err(refused) => return refusal(refused),
    };
    if state.shutdown.is_cancelled() {
        return super::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Unavailable,
            "server is shutting down",
        )
        .into_response();
    }
    let response = ws.response();
    tokio::spawn(async move {
        // The place is given back when `slot` drops, whether or not the switch happens.
        match ws.on.await {
            Ok(io) => crate::signalling::session::run(io, state, slot, cookie).await,
            Err(e) => tracing::debug!(error = %e, "websocket upgrade did not complete"),
        }
    });
    response
}

fn refusal(refused: Refused) -> Response {
    let (status, code) = match refused {
        Refused::ServerFull | Refused::TooManyUnauthenticated => {
            (StatusCode::SERVICE_UNAVAILABLE, ApiErrorCode::ServerFull)
        }
        Refused::TooManyFromAddress => (
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::TooManyConnections,
        ),
    };
    super::error::ApiError::new(status, code, refused.to_string()).into_response()
}
