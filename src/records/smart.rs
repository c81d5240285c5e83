//! SMART Backend Services: examroom's key pair, its JWKS, client assertions and
//! the cached access token.
//!
//! The key pair is made on first start and kept as PKCS#8 PEM under
//! `<data_dir>/fhir-client-<alg>.pem` (mode 0600); the EHR registers the public half
//! from [`ClientKey::jwks`] (served by the lead at `/.well-known/jwks.json`). Each
//! token request signs a fresh assertion (new `jti`, `exp` 4 minutes ahead): servers
//! refuse a replayed `jti` and an `exp` more than 5 minutes away.

use super::RecordsError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Lifetime of one client assertion (the spec allows at most 5 minutes).
const ASSERTION_LIFETIME_SECS: i64 = 240;
/// A cached token is renewed this long before it expires.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(60);
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The panel's read-only scopes (SMART v1 form; v1 `.read` covers read and search).
pub const SCOPES: &str = "system/Patient.read system/AllergyIntolerance.read \
system/MedicationRequest.read system/MedicationStatement.read system/Medication.read \
system/Condition.read system/Observation.read system/Immunization.read system/Encounter.read";

/// The write-back's scopes (SMART v1 form, `records.fhir_write_scopes`): create the
/// visit's Encounter and DocumentReference and the referral's ServiceRequest (updated when
/// answered), and search them by identifier first (so a retry finds what an earlier attempt
/// made). Requested in a token of their own, only when something is written. SMART v2
/// servers: `system/Encounter.crs system/DocumentReference.crs system/ServiceRequest.crus`.
pub const WRITE_SCOPES: &str = crate::config::DEFAULT_FHIR_WRITE_SCOPES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Rs384,
    Es384,
}

impl SigningAlg {
    pub fn parse(s: &str) -> Result<Self, RecordsError> {
        match s {
            "RS384" => Ok(Self::Rs384),
            "ES384" => Ok(Self::Es384),
            other => Err(RecordsError::Config(format!(
                "records.fhir_signing_alg must be RS384 or ES384, not {other:?}"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs384 => "RS384",
            Self::Es384 => "ES384",
        }
    }
    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs384 => Algorithm::RS384,
            Self::Es384 => Algorithm::ES384,
        }
    }
}

/// examroom's signing key for SMART Backend Services.
pub struct ClientKey {
    alg: SigningAlg,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn key_error(what: &str, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Config(format!("FHIR client key: {what}: {e}"))
}

impl ClientKey {
    /// The key file for `alg` under `data_dir`.
    pub fn path(data_dir: &Path, alg: SigningAlg) -> PathBuf {
        data_dir.join(format!("fhir-client-{}.pem", alg.as_str().to_lowercase()))
    }

    /// Load the key for `alg` from `data_dir`, making and saving one on first use.
    pub fn load_or_create(data_dir: &Path, alg: SigningAlg) -> Result<Self, RecordsError> {
        let path = Self::path(data_dir, alg);
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = generate_pem(alg)?;
                write_private(&path, &pem).map_err(|e| key_error("saving", e))?;
                tracing::info!(path = %path.display(), alg = alg.as_str(), "created FHIR client key pair");
                pem
            }
            Err(e) => return Err(key_error("reading", e)),
        };
        Self::from_pem(&pem, alg)
    }

    /// A key from PKCS#8 PEM.
    pub fn from_pem(pem: &[u8], alg: SigningAlg) -> Result<Self, RecordsError> {
        let key = match alg {
            SigningAlg::Rs384 => EncodingKey::from_rsa_pem(pem),
            SigningAlg::Es384 => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|e| key_error("parsing PEM", e))?;
        let jwk =
            Jwk::from_encoding_key(&key, alg.jwt()).map_err(|e| key_error("public key", e))?;
        let mut jwk = serde_json::to_value(jwk).map_err(|e| key_error("JWK", e))?;
        let kid = thumbprint(&jwk)?;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(alg.as_str());
        Ok(Self { alg, kid, key, jwk })
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// A fresh signed client assertion: iss = sub = `client_id`, aud = `token_url`,
    /// a new random `jti`, `exp` 4 minutes ahead.
    pub fn client_assertion(
        &self,
        client_id: &str,
        token_url: &str,
    ) -> Result<String, RecordsError> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let mut header = Header::new(self.alg.jwt());
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| key_error("signing", e))
    }
}

fn generate_pem(alg: SigningAlg) -> Result<Vec<u8>, RecordsError> {
    use aws_lc_rs::encoding::AsDer;
    let der: Vec<u8> = match alg {
        SigningAlg::Rs384 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072)
                .map_err(|e| key_error("generating RSA key", e))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                kp.as_der().map_err(|e| key_error("encoding RSA key", e))?;
            der.as_ref().to_vec()
        }
        SigningAlg::Es384 => {
            let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            )
            .map_err(|e| key_error("generating EC key", e))?;
            kp.to_pkcs8v1()
                .map_err(|e| key_error("encoding EC key", e))?
                .as_ref()
                .to_vec()
        }
    };
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem.into_bytes())
}

fn write_private(path: &Path, pem: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(pem)
}

/// RFC 7638 thumbprint of a public JWK.
fn thumbprint(jwk: &Value) -> Result<String, RecordsError> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| key_error("JWK", format!("missing {k}")))
    };
    let canonical = match s("kty")? {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        other => return Err(key_error("JWK", format!("unexpected kty {other}"))),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

struct Token {
    access: String,
    renew_at: Instant,
}

/// What a token request asks for and as whom: examroom's client registration at the
/// SMART token endpoint (its id and key) and the scopes asked for.
pub struct TokenClient {
    pub token_url: String,
    pub client_id: String,
    /// Space-separated SMART scopes.
    pub scope: String,
    pub key: ClientKey,
}

/// Gets and caches access tokens from the SMART token endpoint.
pub struct TokenSource {
    http: reqwest::Client,
    client: TokenClient,
    timeout: Duration,
    /// An async mutex, held across the token request on purpose: concurrent panel
    /// fetches then share one token request instead of each signing their own.
    cached: tokio::sync::Mutex<Option<Token>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(http: reqwest::Client, client: TokenClient, timeout: Duration) -> Self {
        Self {
            http,
            client,
            timeout,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub fn key(&self) -> &ClientKey {
        &self.client.key
    }

    /// A valid access token, from cache or a new token request.
    pub async fn token(&self) -> Result<String, RecordsError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.access.clone());
        }
        let t = self.request().await?;
        let access = t.access.clone();
        *cached = Some(t);
        Ok(access)
    }

    /// Forget the cached token (after the server refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<Token, RecordsError> {
        let TokenClient {
            token_url,
            client_id,
            scope,
            key,
        } = &self.client;
        let assertion = key.client_assertion(client_id, token_url)?;
        let mut form = reqwest::Url::parse("http://form.invalid/").expect("static url");
        form.query_pairs_mut()
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", &assertion);
        let body = form.query().unwrap_or_default().to_owned();
        let resp = self
            .http
            .post(token_url)
            .timeout(self.timeout)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        let status = resp.status();
        if status.is_client_error() {
            // OAuth errors name the problem (invalid_client, invalid_scope); no patient data.
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            return Err(RecordsError::Unauthorized {
                cause: format!("token endpoint answered {status}: {text}"),
            });
        }
        if !status.is_success() {
            return Err(RecordsError::Unavailable {
                cause: format!("token endpoint answered {status}"),
            });
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| RecordsError::BadData(format!("token response: {}", e.without_url())))?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(300));
        let renew_in = lifetime
            .saturating_sub(TOKEN_RENEW_MARGIN)
            .max(lifetime / 2);
        Ok(Token {
            access: t.access_token,
            renew_at: Instant::now() + renew_in,
        })
    }
}

/// A failed HTTP exchange with the EHR (token endpoint or FHIR server), without its URL
/// (which can carry a patient id).
pub(crate) fn transport_error(e: reqwest::Error, timeout: Duration) -> RecordsError {
    if e.is_timeout() {
        RecordsError::Timeout(timeout)
    } else {
        RecordsError::Unavailable {
            cause: e.without_url().to_string(),
        }
    }
}
