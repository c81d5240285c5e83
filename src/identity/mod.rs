//! Who is calling: roles, the tokens examroom signs, and the checks every route and
//! WebSocket message makes.
//!
//! examroom issues its own short-lived tokens (HS256 JWTs signed with
//! `identity.token_secret`) for staff sessions and patients. The token names the
//! subject, its roles and — for patients and guests — the one room and visit it is
//! bound to. Nothing a client sends can widen that.

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
