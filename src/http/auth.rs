//! Authentication extractors: a handler that takes one of these cannot forget to check.
//!
//! - [`StaffAuth`]: a signed-in staff member, by `Authorization: Bearer <token>` or the
//!   `examroom_session` cookie, with a live server-side session. Cookie-authenticated
//!   requests that change state must carry `X-CSRF-Token` (see [`csrf_token`]).
//! - [`AdminAuth`], [`PhysicianAuth`]: the same, with the role required (403 otherwise).
//! - [`ParticipantAuth`]: a patient or guest token (bearer), bound to one room and visit.

use super::error::ApiError;
use crate::app::AppState;
use crate::identity::{Claims, Role, TokenError};
use crate::ids::StaffId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

pub const SESSION_COOKIE: &str = "examroom_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token for a session: derived from the session id with the server's key, so
/// it needs no storage and cannot be guessed from the cookie alone.
pub fn csrf_token(state: &AppState, sid: &str) -> String {
    crate::identity::hash_secret(&format!("csrf:{}:{sid}", state.keys.fingerprint()))
}

fn token_error(e: TokenError) -> ApiError {
    ApiError::unauthorized(e.code(), e.to_string())
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

#[derive(Debug, Clone)]
pub struct StaffAuth {
    pub claims: Claims,
    pub staff: StaffId,
}

impl StaffAuth {
    pub fn has(&self, role: Role) -> bool {
        self.claims.has(role)
    }
}

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, by_cookie) = match (bearer(parts), cookie(parts, SESSION_COOKIE)) {
            (Some(t), _) => (t, false),
            (None, Some(c)) => (c, true),
            (None, None) => return Err(ApiError::unauthorized("no_credentials", "sign in first")),
        };
        let claims = state.keys.verify(token).map_err(token_error)?;
        if !claims.is_staff() {
            return Err(ApiError::forbidden(
                "not_staff",
                "this needs a staff sign-in",
            ));
        }
        crate::identity::access::check_staff_session(state, &claims)
            .await
            .map_err(|(_, m)| ApiError::unauthorized("session_revoked", m))?;
        if by_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let sid = claims.sid.as_deref().unwrap_or_default();
            if sent != Some(csrf_token(state, sid).as_str()) {
                return Err(ApiError::forbidden(
                    "csrf",
                    "missing or wrong X-CSRF-Token header",
                ));
            }
        }
        let staff = StaffId::parse(&claims.sub)
            .map_err(|_| ApiError::unauthorized("token_malformed", "bad subject"))?;
        Ok(StaffAuth { claims, staff })
    }
}

#[derive(Debug, Clone)]
pub struct AdminAuth(pub StaffAuth);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let s = StaffAuth::from_request_parts(parts, state).await?;
        if !s.has(Role::Admin) {
            return Err(ApiError::forbidden(
                "not_admin",
                "this needs the admin role",
            ));
        }
        Ok(AdminAuth(s))
    }
}

#[derive(Debug, Clone)]
pub struct PhysicianAuth(pub StaffAuth);

impl FromRequestParts<AppState> for PhysicianAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let s = StaffAuth::from_request_parts(parts, state).await?;
        if !s.has(Role::Physician) {
            return Err(ApiError::forbidden(
                "not_physician",
                "this needs the physician role",
            ));
        }
        Ok(PhysicianAuth(s))
    }
}

/// A patient or guest, by the bearer token their join link gave them.
#[derive(Debug, Clone)]
pub struct ParticipantAuth {
    pub claims: Claims,
}

impl FromRequestParts<AppState> for ParticipantAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)
            .ok_or_else(|| ApiError::unauthorized("no_credentials", "no patient token"))?;
        let claims = state.keys.verify(token).map_err(token_error)?;
        if !(claims.has(Role::Patient) || claims.has(Role::Guest)) || claims.visit.is_none() {
            return Err(ApiError::forbidden(
                "not_participant",
                "this needs a patient or guest token",
            ));
        }
        Ok(ParticipantAuth { claims })
    }
}
