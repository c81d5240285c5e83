//! A JSON body extractor whose refusals are [`ApiError`]s in the documented shape
//! `{error, message, field?}`: `axum::Json` answers malformed bodies with `text/plain`.
//!
//! Use `super::extract::Json` in place of `axum::Json` (it is also a response, so the
//! import is all that changes). What a refusal says:
//! - wrong or missing `Content-Type` → 415 `unsupported_media_type`;
//! - a body over `server.max_body_bytes` → 413 `too_large`;
//! - not JSON (syntax, truncated, not UTF-8) → 400 `bad_json`;
//! - JSON of the wrong shape (missing field, wrong type, unknown field) → 422
//!   `invalid_field` with `field` naming the top-level field at fault (`body` when the
//!   whole body is wrong).

use super::error::ApiError;
use crate::protocol::ApiErrorCode;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeOwned, Visitor};

/// A JSON request body, or a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime_guess::mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == "application"
                    && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ApiErrorCode::UnsupportedMediaType,
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(e.status(), ApiErrorCode::TooLarge, "the body is too large")
                } else {
                    ApiError::new(
                        e.status(),
                        ApiErrorCode::BadBody,
                        "the body could not be read",
                    )
                }
            })?;
        parse(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parse a JSON body; the error names the top-level field at fault, or `body`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ApiErrorCode::BadJson,
                "the body is not valid JSON",
            );
        }
        let msg = inner.to_string();
        // `missing field `x`` and `unknown field `x`` errors sit at the parent's path.
        let first = path.split(['.', '[']).next().unwrap_or_default();
        let quoted = msg.split('`').nth(1).unwrap_or_default();
        let fields = fields_of::<T>();
        let field = fields
            .iter()
            .find(|f| **f == first)
            .or_else(|| fields.iter().find(|f| **f == quoted))
            .copied()
            .unwrap_or("body");
        // Drop serde's "at line 1 column 7": the field says where.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        ApiError::invalid(field, msg)
    })?;
    // Trailing garbage after one JSON value is a syntax error, as with `axum::Json`.
    de.end().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::BadJson,
            "the body is not valid JSON",
        )
    })?;
    Ok(value)
}

/// The field names a struct body declares, read from what its `Deserialize` impl hands
/// to `deserialize_struct`; empty for anything that is not a struct. This is how an error
/// names a field as a `&'static str` without every body type listing its fields.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> de::Deserializer<'de> for &mut Probe {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// A staff id from the path; one that cannot be an id is a staff member that does not exist.
pub fn staff_id(id: &str) -> Result<crate::ids::StaffId, ApiError> {
    crate::ids::StaffId::parse(id).map_err(|_| ApiError::not_found("staff"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        name: String,
        n: u32,
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(fields_of::<B>(), &["name", "n"]);
        assert!(fields_of::<Vec<u8>>().is_empty());
        let e = parse::<B>(br#"{"name":"a","n":-1}"#).unwrap_err();
        assert_eq!(e.field, Some("n"));
        let e = parse::<B>(br#"{"n":1}"#).unwrap_err();
        assert_eq!(e.field, Some("name"));
        let e = parse::<B>(br#"{"name":"a","n":1,"x":2}"#).unwrap_err();
        assert_eq!(e.field, Some("body"));
        let e = parse::<B>(br#"[1]"#).unwrap_err();
        assert_eq!(e.field, Some("body"));
        let e = parse::<B>(br#"{"name":"#).unwrap_err();
        assert_eq!(e.code, ApiErrorCode::BadJson);
        let e = parse::<B>(br#"{"name":"a","n":1} x"#).unwrap_err();
        assert_eq!(e.code, ApiErrorCode::BadJson);
    }
}
