//! Staff tokens from the clinic's identity provider: JWTs signed with RS256 or ES256,
//! checked against the provider's JWKS (`identity.oidc_jwks_url`), its issuer and
//! our audience.
//!
//! Keys are cached by `kid`. A token naming a `kid` we do not know triggers one refetch
//! (key rotation), at most once per [`REFETCH_INTERVAL`], so junk `kid`s cannot make us
//! hammer the provider. Only RSA keys verify RS256 and only P-256 keys verify ES256;
//! any other algorithm (`none`, HS256 with a public key as secret, …) is refused before
//! a key is looked at.

use crate::config::IdentitySettings;
use crate::durable::{DurableError, DurableStore, IdpIdentity, NewStaff, Staff};
use crate::identity::Role;
use crate::protocol::ApiErrorCode;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two JWKS fetches caused by an unknown `kid`.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Timeout of one JWKS fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum OidcError {
    #[error("identity-provider token uses an algorithm we do not accept")]
    Algorithm,
    #[error("identity-provider token names no key we know")]
    UnknownKey,
    #[error("identity-provider token signature is wrong")]
    BadSignature,
    #[error("identity-provider token expired")]
    Expired,
    #[error("identity-provider token not yet valid")]
    NotYetValid,
    #[error("identity-provider token issuer or audience is wrong")]
    WrongAudience,
    #[error("identity-provider token is malformed or lacks an email")]
    Malformed,
    #[error("identity provider unreachable: {0}")]
    Unavailable(String),
}

impl OidcError {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            OidcError::Algorithm | OidcError::BadSignature => ApiErrorCode::TokenBadSignature,
            OidcError::UnknownKey => ApiErrorCode::TokenUnknownKey,
            OidcError::Expired => ApiErrorCode::TokenExpired,
            OidcError::NotYetValid => ApiErrorCode::TokenNotYetValid,
            OidcError::WrongAudience => ApiErrorCode::TokenWrongAudience,
            OidcError::Malformed => ApiErrorCode::TokenMalformed,
            OidcError::Unavailable(_) => ApiErrorCode::Unavailable,
        }
    }
}

/// What an identity-provider token says about a staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpStaff {
    /// `iss` and `sub`: who this is at the provider, for good.
    pub identity: IdpIdentity,
    pub email: String,
    /// The provider vouches that `email` belongs to this person (`email_verified`).
    /// Absent means no.
    pub email_verified: bool,
    pub name: Option<String>,
    /// Only `physician` and `admin` are kept.
    pub roles: Vec<Role>,
    pub exp: i64,
}

struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// The provider's keys and how to check its tokens.
pub struct Jwks {
    url: String,
    issuer: String,
    audience: String,
    role_claim: String,
    http: reqwest::Client,
    // std Mutex: held to read or swap the map, never across the fetch.
    keys: Mutex<Keys>,
    // Serialises fetches so concurrent unknown-kid tokens cause one request.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// `None` when no provider is configured.
    pub fn from_settings(s: &IdentitySettings) -> Option<Jwks> {
        if s.oidc_jwks_url.is_empty() {
            return None;
        }
        Some(Jwks {
            url: s.oidc_jwks_url.clone(),
            issuer: s.oidc_issuer.clone(),
            audience: s.oidc_audience.clone(),
            role_claim: s.oidc_role_claim.clone(),
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("reqwest client builds"),
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                fetched_at: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether a token looks like one of the provider's (an asymmetric `alg`), so the
    /// caller knows which verifier to use. Unparseable headers are not.
    pub fn claims_token(token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .map(|h| h.alg != Algorithm::HS256)
            .unwrap_or(false)
    }

    fn cached(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.keys.lock().expect("poisoned").by_kid.get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), OidcError> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let _one_fetch = self.fetching.lock().await;
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let recently = self
            .keys
            .lock()
            .expect("poisoned")
            .fetched_at
            .is_some_and(|t| t.elapsed() < REFETCH_INTERVAL);
        if recently {
            return Err(OidcError::UnknownKey);
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.lock().expect("poisoned");
        keys.fetched_at = Some(Instant::now());
        keys.by_kid = fetched?;
        keys.by_kid.get(kid).cloned().ok_or(OidcError::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, OidcError> {
        let unavailable = |e: reqwest::Error| OidcError::Unavailable(e.to_string());
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut out = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            // The key type decides the algorithm; a JWK cannot widen it.
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                out.insert(kid.clone(), (alg, key));
            }
        }
        tracing::info!(keys = out.len(), "fetched identity-provider keys");
        Ok(out)
    }

    /// Verify a provider token and read the staff member it names.
    pub async fn verify(&self, token: &str) -> Result<IdpStaff, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(OidcError::Algorithm);
        }
        let kid = header.kid.ok_or(OidcError::UnknownKey)?;
        let (alg, key) = self.key(&kid).await?;
        if alg != header.alg {
            return Err(OidcError::Algorithm);
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.validate_nbf = true;
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        use jsonwebtoken::errors::ErrorKind as K;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
                match e.kind() {
                    K::ExpiredSignature => OidcError::Expired,
                    K::ImmatureSignature => OidcError::NotYetValid,
                    K::InvalidIssuer | K::InvalidAudience => OidcError::WrongAudience,
                    K::InvalidSignature | K::InvalidAlgorithm => OidcError::BadSignature,
                    _ => OidcError::Malformed,
                }
            })?;
        let c = data.claims;
        let email = c["email"]
            .as_str()
            .filter(|e| e.contains('@'))
            .ok_or(OidcError::Malformed)?
            .to_owned();
        let role_names: Vec<String> = match &c[self.role_claim.as_str()] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = role_names
            .iter()
            .filter_map(|r| match r.as_str() {
                "physician" => Some(Role::Physician),
                "admin" => Some(Role::Admin),
                _ => None,
            })
            .collect();
        roles.sort();
        roles.dedup();
        let subject = c["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(OidcError::Malformed)?
            .to_owned();
        // Some providers send the flag as a string.
        let email_verified = matches!(&c["email_verified"], serde_json::Value::Bool(true))
            || c["email_verified"].as_str() == Some("true");
        Ok(IdpStaff {
            // `iss` was checked to be ours above.
            identity: IdpIdentity {
                issuer: self.issuer.clone(),
                subject,
            },
            email,
            email_verified,
            name: c["name"].as_str().map(str::to_owned),
            roles,
            exp: c["exp"].as_i64().unwrap_or_default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdpAccountError {
    /// A staff account has the token's email but is not linked to this provider
    /// account, and may not be linked by email (unverified, switched off, or linked to
    /// another provider account already).
    #[error("a staff account with this email exists but is not linked to this sign-in")]
    NotLinked,
    #[error("{0}")]
    Store(#[from] DurableError),
}

/// The staff account an identity-provider sign-in is: the one linked to its (`iss`,
/// `sub`); else, only when `link_by_verified_email` and the provider verified the email,
/// the unlinked account with that email (linked now, for good); else a new account
/// linked from the start. The email alone never opens an existing account: a provider
/// that lets users type their own email would otherwise let anyone become the admin.
pub async fn staff_account(
    store: &dyn DurableStore,
    idp: &IdpStaff,
    link_by_verified_email: bool,
) -> Result<Staff, IdpAccountError> {
    if let Some(s) = store.staff_by_idp(&idp.identity).await? {
        return Ok(s);
    }
    // Another first request of the same provider account may win any race below; then
    // the account is found by (`iss`, `sub`) after all.
    let linked_meanwhile = || async {
        store
            .staff_by_idp(&idp.identity)
            .await?
            .ok_or(IdpAccountError::NotLinked)
    };
    if let Some(existing) = store.staff_by_email(&idp.email).await? {
        let may_link = link_by_verified_email && idp.email_verified && existing.idp.is_none();
        if !may_link {
            tracing::warn!(
                staff = %existing.id,
                email_verified = idp.email_verified,
                "identity-provider sign-in refused: the account with its email is not linked to it"
            );
            return Err(IdpAccountError::NotLinked);
        }
        return match store.link_staff_idp(&existing.id, &idp.identity).await {
            Ok(s) => {
                tracing::info!(staff = %s.id, "linked a staff account to the identity provider by its verified email");
                Ok(s)
            }
            Err(DurableError::Conflict { .. }) => linked_meanwhile().await,
            Err(e) => Err(e.into()),
        };
    }
    let new = NewStaff {
        email: idp.email.clone(),
        name: idp.name.clone().unwrap_or_else(|| idp.email.clone()),
        roles: idp.roles.clone(),
        password_hash: None,
        languages: Vec::new(),
        gender: None,
    };
    match store.create_idp_staff(new, &idp.identity).await {
        Ok(s) => {
            tracing::info!(staff = %s.id, "created a staff account from the identity provider");
            Ok(s)
        }
        Err(DurableError::Conflict { .. }) => linked_meanwhile().await,
        Err(e) => Err(e.into()),
    }
}

/// Why an identity-provider token does not sign a staff member in. One variant per
/// answer the client can get; the edge maps each to its HTTP status or protocol code.
#[derive(Debug, thiserror::Error)]
pub enum IdpSignInError {
    /// The token itself failed (signature, expiry, audience…) or the provider's keys
    /// could not be fetched ([`OidcError::Unavailable`]).
    #[error("{0}")]
    Token(#[from] OidcError),
    #[error("the identity provider gives this account no examroom role")]
    NoRole,
    #[error(
        "a staff account with this email exists but is not linked to this sign-in; ask an admin"
    )]
    NotLinked,
    #[error("this account is deactivated")]
    Deactivated,
    #[error("{0}")]
    Store(#[from] DurableError),
}

impl From<IdpAccountError> for IdpSignInError {
    fn from(e: IdpAccountError) -> Self {
        match e {
            IdpAccountError::NotLinked => IdpSignInError::NotLinked,
            IdpAccountError::Store(e) => IdpSignInError::Store(e),
        }
    }
}

impl IdpSignInError {
    /// The stable reason code clients see (HTTP `error`, or in a WebSocket message).
    pub fn code(&self) -> ApiErrorCode {
        match self {
            IdpSignInError::Token(e) => e.code(),
            IdpSignInError::NoRole => ApiErrorCode::NotStaff,
            IdpSignInError::NotLinked => ApiErrorCode::IdpNotLinked,
            IdpSignInError::Deactivated => ApiErrorCode::AccountDeactivated,
            IdpSignInError::Store(_) => ApiErrorCode::Unavailable,
        }
    }
}

/// A staff member signed in at the clinic's identity provider: the claims examroom
/// treats them with. The account is the one linked to the token's (`iss`, `sub`) —
/// see [`staff_account`] for when an email may link one; the provider's roles are the
/// ones that count, and are copied onto the account.
pub async fn sign_in(
    store: &dyn DurableStore,
    jwks: &Jwks,
    settings: &IdentitySettings,
    token: &str,
) -> Result<(crate::identity::Claims, crate::ids::StaffId), IdpSignInError> {
    let idp = jwks.verify(token).await?;
    if idp.roles.is_empty() {
        return Err(IdpSignInError::NoRole);
    }
    let account = staff_account(store, &idp, settings.oidc_link_by_verified_email).await?;
    if !account.active {
        return Err(IdpSignInError::Deactivated);
    }
    if account.roles != idp.roles {
        let update = crate::durable::StaffUpdate {
            roles: Some(idp.roles.clone()),
            ..Default::default()
        };
        store.update_staff(&account.id, update).await?;
    }
    let now = chrono::Utc::now().timestamp();
    let claims = crate::identity::Claims {
        sub: account.id.to_string(),
        name: account.name.clone(),
        roles: idp.roles,
        room: None,
        visit: None,
        patient: None,
        sid: None,
        lang: None,
        iss: settings.oidc_issuer.clone(),
        aud: settings.oidc_audience.clone(),
        iat: now,
        nbf: now,
        exp: idp.exp,
        jti: crate::ids::random_id(),
    };
    Ok((claims, account.id))
}
