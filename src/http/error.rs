//! One error type for every HTTP handler: a status, a stable reason code and a sentence
//! for the client; the cause goes to the log (never patient data, never secrets).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::protocol::ApiErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable reason code, e.g. `token_expired`, `not_admin`, `invalid_field`.
    pub code: ApiErrorCode,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn unauthorized(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotFound,
            format!("{what} not found"),
        )
    }
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ApiErrorCode::InvalidField,
                message,
            )
        }
    }
    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::CONFLICT, ApiErrorCode::Conflict, message)
        }
    }
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(cause = %cause, "a store is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Unavailable,
            "a service examroom needs is unavailable; try again shortly",
        )
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiErrorCode::Internal,
            "something went wrong on our side",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code.as_str(), "message": self.message });
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
            D::Expired => {
                ApiError::new(StatusCode::GONE, ApiErrorCode::Expired, "this has expired")
            }
            D::AlreadyUsed => ApiError::new(
                StatusCode::GONE,
                ApiErrorCode::AlreadyUsed,
                "this was already used",
            ),
            D::Unavailable(c) => ApiError::unavailable(c),
            D::Internal(c) => ApiError::internal(c),
        }
    }
}

/// The reason code for an error the framework answered itself (no handler ran, or an
/// extractor refused the request before it did).
fn framework_code(status: StatusCode) -> ApiErrorCode {
    match status {
        StatusCode::NOT_FOUND => ApiErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiErrorCode::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ApiErrorCode::InvalidBody,
        s if s.is_server_error() => ApiErrorCode::Internal,
        _ => ApiErrorCode::BadRequest,
    }
}

/// Every error answer is `{error, message, field?}` JSON. Handlers answer with
/// [`ApiError`]; what the framework answers by itself (an unknown route, a wrong method,
/// a query or path that does not parse, a body over the limit, a WebSocket request
/// without the upgrade headers) is plain text, and is rewritten here into the same shape
/// so that clients need one error parser.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    // Framework answers are a sentence; anything longer is not one of them.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase(),
        t => t.to_owned(),
    };
    let mut out = ApiError::new(status, framework_code(status), message).into_response();
    // Keep what the framework said besides the body (`Allow`, `Retry-After`, …).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
