//! `/healthz` (the process is alive), `/readyz` (ready to take visits: stores reachable,
//! a free connection slot, not stopping)
//! and `/metrics` (Prometheus, for holders of `metrics.token` only: the counts say how
//! busy the clinic is and which errors clients see, which is nobody else's business).

use crate::http::error::ApiError;
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let limit = Duration::from_secs(2);
    let durable = match tokio::time::timeout(limit, state.durable.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("unavailable: {e}"),
        Err(_) => "unavailable: timed out".to_owned(),
    };
    let live = match tokio::time::timeout(limit, state.live.ready()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("unavailable: {e}"),
        Err(_) => "unavailable: timed out".to_owned(),
    };
    let shutting_down = state.shutdown.is_cancelled();
    // Full: every connection slot taken. A balancer that checks /readyz sends new
    // visits elsewhere; the visits here carry on.
    let max = state.connection_limit;
    let free = state.connection_slots.available_permits();
    let full = free == 0;
    let ready = durable == "ok" && live == "ok" && !shutting_down && !full;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "durable": durable, "live": live, "shutting_down": shutting_down, "full": full },
        "connections": { "open": max.saturating_sub(free), "max": max, "unauthenticated": state.admission.unauthenticated() },
    });
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let want = &state.settings.metrics.token;
    if want.is_empty() {
        return Err(ApiError::unauthorized(
            ApiErrorCode::MetricsTokenRequired,
            "metrics are off: set metrics.token (EXAMROOM__METRICS__TOKEN) and scrape with it as a bearer token",
        ));
    }
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared as hashes, so the time taken says nothing about how much of it was right.
    let hash = crate::identity::hash_secret;
    if sent.map(hash) != Some(hash(want.expose())) {
        return Err(ApiError::unauthorized(
            ApiErrorCode::BadMetricsToken,
            "send the metrics token as Authorization: Bearer",
        ));
    }
    let stats = state.live.stats();
    let body = state.metrics.render(&stats.visits);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
