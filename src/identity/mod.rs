//! Who is calling: roles, the tokens examroom signs, and the checks every route and
//! WebSocket message makes.
//!
//! examroom issues its own short-lived tokens (HS256 JWTs signed with
//! `identity.token_secret`) for staff sessions and patients. The token names the
//! subject, its roles and — for patients and guests — the one room and visit it is
//! bound to. Nothing a client sends can widen that.

pub mod links;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod setup;
pub mod token;

pub use token::{Claims, TokenError, TokenKeys};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Patient,
    Physician,
    Admin,
    /// Someone a physician invited into one visit (interpreter, family member).
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Physician => "physician",
            Role::Admin => "admin",
            Role::Guest => "guest",
        }
    }
}

pub mod access;

/// The stored form of a random secret (session id, join code, setup token): hex SHA-256.
/// These secrets carry ≥128 bits of randomness, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Per-server identity state that is not configuration: failure counters and the
/// identity provider's key cache.
pub struct Guards {
    /// Failed sign-ins per client IP.
    pub sign_in_ip: ratelimit::Limiter,
    /// Failed sign-ins per email (lower-cased).
    pub sign_in_email: ratelimit::Limiter,
    /// Failed join-code redemptions per client IP.
    pub join_ip: ratelimit::Limiter,
    pub jwks: Option<oidc::Jwks>,
}

/// Failed sign-ins allowed per email per minute.
pub const SIGN_IN_FAILURES_PER_EMAIL: u32 = 5;
/// Failed sign-ins allowed per client IP per minute.
pub const SIGN_IN_FAILURES_PER_IP: u32 = 20;
/// Failed join-code redemptions allowed per client IP per minute.
pub const JOIN_FAILURES_PER_IP: u32 = 10;

/// The guards of the server `state` belongs to.
///
/// `AppState` has no slot for them (it is wired in `app.rs`), so they live in a
/// registry keyed by the server's data directory: one set per server, also when tests
/// run several servers in one process. Moving them into `AppState` is a one-line change.
pub fn guards(state: &crate::app::AppState) -> std::sync::Arc<Guards> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static ALL: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<Guards>>>> = OnceLock::new();
    let minute = std::time::Duration::from_secs(60);
    ALL.get_or_init(Default::default)
        .lock()
        .expect("poisoned")
        .entry(state.settings.server.data_dir.clone())
        .or_insert_with(|| {
            Arc::new(Guards {
                sign_in_ip: ratelimit::Limiter::new(SIGN_IN_FAILURES_PER_IP, minute),
                sign_in_email: ratelimit::Limiter::new(SIGN_IN_FAILURES_PER_EMAIL, minute),
                join_ip: ratelimit::Limiter::new(JOIN_FAILURES_PER_IP, minute),
                jwks: oidc::Jwks::from_settings(&state.settings.identity),
            })
        })
        .clone()
}
