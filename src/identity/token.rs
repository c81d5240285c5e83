//! The tokens examroom signs: HS256 JWTs with a fixed issuer and audience.
//!
//! Verification pins the algorithm to HS256, so `alg: none` and algorithm-confusion
//! tokens are refused before their claims are looked at.

use super::Role;
use crate::config::Secret;
use crate::ids::{ParticipantId, PatientRef, RoomId, VisitId};
use crate::protocol::ApiErrorCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "examroom";
pub const AUDIENCE: &str = "examroom";

/// What a token says about its holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Subject: staff id for staff, participant id for patients and guests.
    pub sub: String,
    /// Display name shown to the other side.
    pub name: String,
    pub roles: Vec<Role>,
    /// The room a patient/guest token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    /// The visit a patient/guest token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<VisitId>,
    /// The patient's record id, when the link carried one. Never sent to the patient's peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientRef>,
    /// Staff session id (for server-side revocation) or join-link id for patients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Preferred language (BCP 47), from the link or page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl Claims {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_staff(&self) -> bool {
        self.has(Role::Physician) || self.has(Role::Admin)
    }
    /// The participant this token acts as on the WebSocket.
    pub fn participant(&self) -> Option<ParticipantId> {
        ParticipantId::parse(&self.sub).ok()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token signature or algorithm is not accepted")]
    BadSignature,
    #[error("token issuer or audience is wrong")]
    WrongAudience,
    #[error("token is malformed")]
    Malformed,
}

impl TokenError {
    /// Stable reason code for clients.
    pub fn code(self) -> ApiErrorCode {
        match self {
            TokenError::Expired => ApiErrorCode::TokenExpired,
            TokenError::NotYetValid => ApiErrorCode::TokenNotYetValid,
            TokenError::BadSignature => ApiErrorCode::TokenBadSignature,
            TokenError::WrongAudience => ApiErrorCode::TokenWrongAudience,
            TokenError::Malformed => ApiErrorCode::TokenMalformed,
        }
    }
}

/// Signing and verification keys for examroom's own tokens.
#[derive(Clone)]
pub struct TokenKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    /// A one-way fingerprint of the key, for deriving per-session values (CSRF).
    fingerprint: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys([redacted])")
    }
}

/// What to put in a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub sub: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub room: Option<RoomId>,
    pub visit: Option<VisitId>,
    pub patient: Option<PatientRef>,
    pub sid: Option<String>,
    pub lang: Option<String>,
    pub ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        let bytes = secret.expose().as_bytes();
        Self {
            enc: EncodingKey::from_secret(bytes),
            dec: DecodingKey::from_secret(bytes),
            fingerprint: super::hash_secret(&format!("fingerprint:{}", secret.expose())),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn issue(&self, t: NewToken, now: i64) -> String {
        let claims = Claims {
            sub: t.sub,
            name: t.name,
            roles: t.roles,
            room: t.room,
            visit: t.visit,
            patient: t.patient,
            sid: t.sid,
            lang: t.lang,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            nbf: now - 5,
            exp: now + t.ttl_secs as i64,
            jti: crate::ids::random_id(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.validate_nbf = true;
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer | K::InvalidAudience => TokenError::WrongAudience,
                K::InvalidSignature | K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                    TokenError::BadSignature
                }
                _ => TokenError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("k".repeat(32)))
    }

    fn token(ttl: u64, now: i64) -> String {
        keys().issue(
            NewToken {
                sub: "p_1".into(),
                name: "Ana".into(),
                roles: vec![Role::Patient],
                room: Some(RoomId::parse("r_1").unwrap()),
                visit: Some(VisitId::parse("v_1").unwrap()),
                patient: None,
                sid: None,
                lang: None,
                ttl_secs: ttl,
            },
            now,
        )
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip() {
        let c = keys().verify(&token(60, now())).unwrap();
        assert_eq!(c.sub, "p_1");
        assert!(c.has(Role::Patient) && !c.is_staff());
    }

    #[test]
    fn expired_and_future_refused() {
        assert_eq!(
            keys().verify(&token(10, now() - 100)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys().verify(&token(1000, now() + 100)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn alg_none_and_tampering_refused() {
        let t = token(60, now());
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_header}.{}.", parts[1]);
        assert!(keys().verify(&forged).is_err());
        let mut payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        payload["roles"] = serde_json::json!(["admin"]);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(payload.to_string()),
            parts[2]
        );
        assert_eq!(keys().verify(&tampered), Err(TokenError::BadSignature));
        let other = TokenKeys::new(&Secret::new("z".repeat(32)));
        assert_eq!(other.verify(&t), Err(TokenError::BadSignature));
    }
}
