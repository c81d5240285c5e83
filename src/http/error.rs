//! One error type for every HTTP handler: a status, a stable reason code and a sentence
//! for the client; the cause goes to the log (never patient data, never secrets).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable reason code, e.g. `token_expired`, `not_admin`, `invalid_field`.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }
    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::CONFLICT, "conflict", message)
        }
    }
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(cause = %cause, "a store is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a service examroom needs is unavailable; try again shortly",
        )
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::durable::DurableError> for ApiError {
    fn from(e: crate::durable::DurableError) -> Self {
        use crate::durable::DurableError as D;
        match e {
            D::NotFound { what } => ApiError::not_found(what),
            D::Conflict { field, message } => ApiError::conflict(field, message),
            D::Invalid { field, message } => ApiError::invalid(field, message),
            D::Expired => ApiError::new(StatusCode::GONE, "expired", "this has expired"),
            D::AlreadyUsed => {
                ApiError::new(StatusCode::GONE, "already_used", "this was already used")
            }
            D::Unavailable(c) => ApiError::unavailable(c),
            D::Internal(c) => ApiError::internal(c),
        }
    }
}
