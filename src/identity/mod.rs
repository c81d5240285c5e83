//! Who is calling: roles, the tokens examroom signs, and the checks every route and
//! WebSocket message makes.
//!
//! examroom issues its own short-lived tokens (HS256 JWTs signed with
//! `identity.token_secret`) for staff sessions and patients. The token names the
//! subject, its roles and — for patients and guests — the one room and visit it is
//! bound to. Nothing a client sends can widen that.

pub mod chart;
pub mod links;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod setup;
pub mod signin;
pub mod token;

pub use crate::ids::Role;
pub use token::{Claims, TokenError, TokenKeys};

use crate::live::Counters;
use ratelimit::Limiter;
use std::sync::Arc;

pub mod access;

/// The stored form of a random secret (session id, join code, setup token): hex SHA-256.
/// These secrets carry ≥128 bits of randomness, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Per-server identity state that is not configuration: failure limits (counted
/// cluster-wide when the live store is Redis) and the identity provider's key cache.
pub struct Guards {
    /// Failed sign-ins per client IP.
    pub sign_in_ip: Limiter,
    /// Failed sign-ins per email (lower-cased).
    pub sign_in_email: Limiter,
    /// Failed join-code redemptions per client IP.
    pub join_ip: Limiter,
    pub jwks: Option<oidc::Jwks>,
}

/// Failed sign-ins allowed per email per minute.
pub const SIGN_IN_FAILURES_PER_EMAIL: u32 = 5;
/// Failed sign-ins allowed per client IP per minute.
pub const SIGN_IN_FAILURES_PER_IP: u32 = 20;
/// Failed join-code redemptions allowed per client IP per minute.
pub const JOIN_FAILURES_PER_IP: u32 = 10;

impl Guards {
    /// Failure limits counted in `counters` (the live store's: cluster-wide with Redis).
    pub fn new(settings: &crate::config::IdentitySettings, counters: Arc<dyn Counters>) -> Self {
        let minute = std::time::Duration::from_secs(60);
        Guards {
            sign_in_ip: Limiter::new(
                "sign-in-ip",
                SIGN_IN_FAILURES_PER_IP,
                minute,
                counters.clone(),
            ),
            sign_in_email: Limiter::new(
                "sign-in-email",
                SIGN_IN_FAILURES_PER_EMAIL,
                minute,
                counters.clone(),
            ),
            join_ip: Limiter::new("join-ip", JOIN_FAILURES_PER_IP, minute, counters),
            jwks: oidc::Jwks::from_settings(settings),
        }
    }
}
