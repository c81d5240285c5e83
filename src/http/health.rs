//! `/healthz` (the process is alive), `/readyz` (ready to take visits: stores reachable,
//! a free connection slot, not stopping)
//! and `/metrics` (Prometheus).

use crate::app::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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
        "connections": { "open": max.saturating_sub(free), "max": max },
    });
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.live.stats();
    let body = state.metrics.render(&stats.visits);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
