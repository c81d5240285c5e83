//! Authentication extractors: a handler that takes one of these cannot forget to check.
//!
//! - [`StaffAuth`]: a signed-in staff member, by `Authorization: Bearer <token>` or the
//!   `examroom_session` cookie, with a live server-side session. Cookie-authenticated
//!   requests that change state must carry `X-CSRF-Token` (see [`csrf_token`]).
//! - [`AdminAuth`], [`PhysicianAuth`]: the same, with the role required (403 otherwise).
//! - [`ParticipantAuth`]: a patient or guest token (bearer), bound to one room and visit.
//! - [`Client`]: the caller's address and whether it came over HTTPS (never rejects).
//!
//! With an identity provider configured, a bearer token with an asymmetric `alg` is
//! checked against the provider's keys instead (`identity::oidc`).

use super::error::ApiError;
use crate::durable::Staff;
use crate::identity::oidc::{self, IdpSignInError, Jwks, OidcError};
use crate::identity::{Claims, Role, TokenError};
use crate::ids::StaffId;
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use axum::extract::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use std::net::{IpAddr, SocketAddr};

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

/// The staff session cookie's token, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    cookie_in(headers, SESSION_COOKIE)
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
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
            (None, None) => {
                return Err(ApiError::unauthorized(
                    ApiErrorCode::NoCredentials,
                    "sign in first",
                ));
            }
        };
        let guards = &state.guards;
        if let (Some(jwks), false) = (&guards.jwks, by_cookie)
            && Jwks::claims_token(token)
        {
            return idp_staff(state, jwks, token).await;
        }
        let mut claims = state.keys.verify(token).map_err(token_error)?;
        if !claims.is_staff() {
            return Err(ApiError::forbidden(
                ApiErrorCode::NotStaff,
                "this needs a staff sign-in",
            ));
        }
        crate::identity::access::check_staff_session(state.durable.as_ref(), &claims)
            .await
            .map_err(|e| ApiError::unauthorized(ApiErrorCode::SessionRevoked, e.to_string()))?;
        if by_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let sid = claims.sid.as_deref().unwrap_or_default();
            if sent != Some(csrf_token(state, sid).as_str()) {
                return Err(ApiError::forbidden(
                    ApiErrorCode::Csrf,
                    "missing or wrong X-CSRF-Token header",
                ));
            }
        }
        let staff = StaffId::parse(&claims.sub)
            .map_err(|_| ApiError::unauthorized(ApiErrorCode::TokenMalformed, "bad subject"))?;
        // Roles and the active flag come from the account, not the token: a demotion
        // or deactivation takes effect on the next request.
        let account = active_staff(state, &staff).await?;
        claims.roles = account.roles.clone();
        Ok(StaffAuth { claims, staff })
    }
}

async fn active_staff(state: &AppState, id: &StaffId) -> Result<Staff, ApiError> {
    match state.durable.staff(id).await? {
        Some(s) if s.active => Ok(s),
        Some(_) => Err(ApiError::forbidden(
            ApiErrorCode::AccountDeactivated,
            "this account is deactivated",
        )),
        None => Err(ApiError::unauthorized(
            ApiErrorCode::SessionRevoked,
            "this account no longer exists",
        )),
    }
}

/// A staff member signed in at the clinic's identity provider (`identity::oidc::sign_in`).
async fn idp_staff(state: &AppState, jwks: &Jwks, token: &str) -> Result<StaffAuth, ApiError> {
    let (claims, staff) = oidc::sign_in(
        state.durable.as_ref(),
        jwks,
        &state.settings.identity,
        token,
    )
    .await
    .map_err(idp_error)?;
    Ok(StaffAuth { claims, staff })
}

fn idp_error(e: IdpSignInError) -> ApiError {
    match e {
        IdpSignInError::Token(OidcError::Unavailable(cause)) => ApiError::unavailable(cause),
        IdpSignInError::Token(e) => ApiError::unauthorized(e.code(), e.to_string()),
        e @ (IdpSignInError::NoRole | IdpSignInError::NotLinked | IdpSignInError::Deactivated) => {
            ApiError::forbidden(e.code(), e.to_string())
        }
        IdpSignInError::Store(e) => e.into(),
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the
/// nearest untrusted address in `X-Forwarded-For`.
pub fn client_ip(state: &AppState, parts: &Parts) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let trusted = &state.settings.server.trusted_proxies;
    if !trusted.contains(&peer) {
        return peer;
    }
    parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

/// Whether the browser reached us over HTTPS: we serve TLS, or a trusted proxy says so.
pub fn is_https(state: &AppState, parts: &Parts) -> bool {
    if state.settings.server.tls_cert.is_some() {
        return true;
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    peer.is_some_and(|p| state.settings.server.trusted_proxies.contains(&p))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Where the request came from, for rate limits and cookies. Never rejects.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: IpAddr,
    pub https: bool,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Client {
            ip: client_ip(state, parts),
            https: is_https(state, parts),
        })
    }
}

/// An extractor for signed-in staff who hold `$role`; anyone else gets 403 `$code`.
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr, $code:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub StaffAuth);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let s = StaffAuth::from_request_parts(parts, state).await?;
                if !s.has($role) {
                    return Err(ApiError::forbidden($code, $message));
                }
                Ok($name(s))
            }
        }
    };
}

role_extractor!(
    /// Staff with the admin role.
    AdminAuth,
    Role::Admin,
    ApiErrorCode::NotAdmin,
    "this needs the admin role"
);
role_extractor!(
    /// Staff with the physician role.
    PhysicianAuth,
    Role::Physician,
    ApiErrorCode::NotPhysician,
    "this needs the physician role"
);

/// A patient or guest, by the bearer token their join link gave them.
#[derive(Debug, Clone)]
pub struct ParticipantAuth {
    pub claims: Claims,
}

impl FromRequestParts<AppState> for ParticipantAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(ApiErrorCode::NoCredentials, "no patient token")
        })?;
        let claims = state.keys.verify(token).map_err(token_error)?;
        if !(claims.has(Role::Patient) || claims.has(Role::Guest)) || claims.visit.is_none() {
            return Err(ApiError::forbidden(
                ApiErrorCode::NotParticipant,
                "this needs a patient or guest token",
            ));
        }
        Ok(ParticipantAuth { claims })
    }
}
