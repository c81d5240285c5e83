//! Clinics with an identity provider: staff bearer JWTs verified against the provider's
//! JWKS, served here by a local HTTP server with real RSA and EC keys generated in the
//! test. Every bad token gets a 401 with a reason and changes nothing.

use crate::kit::*;
use axum::{Json, Router, routing::get};
use examroom::identity::Role;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISS: &str = "https://idp.clinic.test";
const AUD: &str = "examroom-staff";

struct Key {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    pem: String,
    jwk: Jwk,
}

fn key(kid: &str, alg: Algorithm) -> Key {
    let rc = match alg {
        Algorithm::RS256 => &rcgen::PKCS_RSA_SHA256,
        _ => &rcgen::PKCS_ECDSA_P256_SHA256,
    };
    let pair = rcgen::KeyPair::generate_for(rc).unwrap();
    let pem = pair.serialize_pem();
    let enc = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&enc, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    Key {
        kid: kid.into(),
        alg,
        enc,
        pem: pair.public_key_pem(),
        jwk,
    }
}

/// A JWKS endpoint whose key set the test can rotate.
async fn jwks_server(keys: Arc<Mutex<Vec<Jwk>>>) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = keys.clone();
            async move {
                Json(JwkSet {
                    keys: keys.lock().unwrap().clone(),
                })
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

fn claims(email: &str, exp_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": format!("idp|{email}"), "email": email, "name": "Dr Idp", "roles": ["physician"],
           "iss": ISS, "aud": AUD, "iat": now, "nbf": now - 5, "exp": now + exp_in})
}

fn sign(k: &Key, c: &Value) -> String {
    let mut h = Header::new(k.alg);
    h.kid = Some(k.kid.clone());
    jsonwebtoken::encode(&h, c, &k.enc).unwrap()
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    app.call_json("GET", "/api/me", Some(token), None).await
}

async fn idp_app(keys: &[&Key]) -> (TestApp, Arc<Mutex<Vec<Jwk>>>) {
    let set = Arc::new(Mutex::new(
        keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
    ));
    let url = jwks_server(set.clone()).await;
    let app = TestApp::spawn_with(|s| {
        s.identity.oidc_issuer = ISS.into();
        s.identity.oidc_audience = AUD.into();
        s.identity.oidc_jwks_url = url.clone();
    })
    .await;
    (app, set)
}

#[tokio::test]
async fn rsa_and_ec_tokens_from_the_provider_are_accepted_and_bad_ones_refused() {
    let rsa = key("rsa-1", Algorithm::RS256);
    let ec = key("ec-1", Algorithm::ES256);
    let (app, _) = idp_app(&[&rsa, &ec]).await;

    let (s, body) = me(&app, &sign(&rsa, &claims("grey@clinic.test", 300))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["email"], "grey@clinic.test");
    let (s, body) = me(&app, &sign(&ec, &claims("house@clinic.test", 300))).await;
    assert_eq!(s, 200, "{body}");

    let refused = |s: u16, b: &Value, code: &str| {
        assert_eq!((s, b["error"].as_str()), (401, Some(code)), "{b}");
    };
    // Expired, wrong audience, wrong issuer.
    let (s, b) = me(&app, &sign(&rsa, &claims("grey@clinic.test", -60))).await;
    refused(s, &b, "token_expired");
    let mut c = claims("grey@clinic.test", 300);
    c["aud"] = json!("someone-else");
    let (s, b) = me(&app, &sign(&rsa, &c)).await;
    refused(s, &b, "token_wrong_audience");
    let mut c = claims("grey@clinic.test", 300);
    c["iss"] = json!("https://evil.test");
    let (s, b) = me(&app, &sign(&rsa, &c)).await;
    refused(s, &b, "token_wrong_audience");
    // Signed by a key the provider never published, under a known kid: bad signature.
    let impostor = key("rsa-1", Algorithm::RS256);
    let (s, b) = me(&app, &sign(&impostor, &claims("grey@clinic.test", 300))).await;
    refused(s, &b, "token_bad_signature");
    // Algorithm confusion: HS256 "signed" with the provider's public key as the secret.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &h,
        &claims("grey@clinic.test", 300),
        &EncodingKey::from_secret(rsa.pem.as_bytes()),
    )
    .unwrap();
    let (s, b) = me(&app, &confused).await;
    assert_eq!(s, 401, "{b}");
    // alg: none with a known kid.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","kid":"rsa-1"}"#),
        b64.encode(claims("grey@clinic.test", 300).to_string())
    );
    let (s, _) = me(&app, &none).await;
    assert_eq!(s, 401);
    // Tampered payload: roles widened after signing.
    let good = sign(&rsa, &claims("grey@clinic.test", 300));
    let tampered = with_widened_roles(&good);
    let (s, b) = me(&app, &tampered).await;
    refused(s, &b, "token_bad_signature");
    // A physician from the provider is not an admin.
    let (s, b) = app.call_json("GET", "/api/rooms", Some(&good), None).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_admin")));

    // The same token works on the WebSocket: the dashboard's live queue.
    let (_, me_body) = me(&app, &good).await;
    let id = examroom::ids::StaffId::parse(me_body["id"].as_str().unwrap()).unwrap();
    let room = app
        .room("IdP room", examroom::visit::RoomKind::Physician, &[&id])
        .await;
    let mut doc = app.join(&good).await;
    let q = doc.expect("queue").await;
    assert_eq!(q["room"], room.id.as_str());
    let mut c = app.ws().await;
    c.send(json!({"type": "hello", "v": 1, "token": tampered}))
        .await;
    assert_eq!(c.expect("error").await["code"], "unauthenticated");
}

#[tokio::test]
async fn an_unknown_kid_is_refused_and_a_rotated_key_is_fetched() {
    let old = key("k-2025", Algorithm::ES256);
    let (app, set) = idp_app(&[&old]).await;
    assert_eq!(
        me(&app, &sign(&old, &claims("grey@clinic.test", 300)))
            .await
            .0,
        200
    );

    // The provider rotates to a new key. Right after our last fetch an unknown kid is
    // refused (refetches are rate-limited so junk kids cannot hammer the provider)...
    let new = key("k-2026", Algorithm::RS256);
    set.lock().unwrap().push(new.jwk.clone());
    let (s, b) = me(&app, &sign(&new, &claims("grey@clinic.test", 300))).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("token_unknown_key")),
        "{b}"
    );
    // ...and once the refetch interval has passed, the new key is fetched and accepted.
    tokio::time::sleep(examroom::identity::oidc::REFETCH_INTERVAL + Duration::from_secs(1)).await;
    let (s, b) = me(&app, &sign(&new, &claims("grey@clinic.test", 300))).await;
    assert_eq!(s, 200, "{b}");
    // A kid the provider never had stays refused.
    let stranger = key("k-unknown", Algorithm::ES256);
    let (s, b) = me(&app, &sign(&stranger, &claims("grey@clinic.test", 300))).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("token_unknown_key")),
        "{b}"
    );
}

/// A provider token for the provider account `sub`, claiming `email`.
fn claims_of(sub: &str, email: &str, email_verified: Option<bool>, roles: Value) -> Value {
    let mut c = claims(email, 300);
    c["sub"] = json!(sub);
    c["roles"] = roles;
    if let Some(v) = email_verified {
        c["email_verified"] = json!(v);
    }
    c
}

const ADMIN_PW: &str = "correct horse battery staple";

#[tokio::test]
async fn a_provider_token_with_the_admins_email_does_not_open_the_admin_account() {
    let rsa = key("rsa-1", Algorithm::RS256);
    let (app, _) = idp_app(&[&rsa]).await;
    let admin = app
        .staff_with_password("ada@clinic.test", vec![Role::Admin], ADMIN_PW)
        .await;
    let roles = json!(["admin", "physician"]);

    // Someone at the provider set their email to the admin's, unverified.
    for verified in [Some(false), None, Some(true)] {
        let token = sign(
            &rsa,
            &claims_of("mallory", "ada@clinic.test", verified, roles.clone()),
        );
        let (s, b) = me(&app, &token).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (403, Some("idp_not_linked")),
            "email_verified {verified:?}, linking by email is off by default: {b}"
        );
        let (s, _) = app.call_json("GET", "/api/staff", Some(&token), None).await;
        assert_eq!(s, 403);
    }
    // The admin still signs in with their password, and is still only an admin.
    let body = app.sign_in("ada@clinic.test", ADMIN_PW).await;
    assert_eq!(body["staff"]["id"], admin.as_str());
    assert_eq!(body["staff"]["roles"], json!(["admin"]));
}

#[tokio::test]
async fn with_linking_on_only_a_verified_email_links_and_only_once() {
    let rsa = key("rsa-1", Algorithm::RS256);
    let url = jwks_server(Arc::new(Mutex::new(vec![rsa.jwk.clone()]))).await;
    let app = TestApp::spawn_with(|s| {
        s.identity.oidc_issuer = ISS.into();
        s.identity.oidc_audience = AUD.into();
        s.identity.oidc_jwks_url = url.clone();
        s.identity.oidc_link_by_verified_email = true;
    })
    .await;
    let grey = app
        .staff_with_password("grey@clinic.test", vec![Role::Physician], ADMIN_PW)
        .await;
    let physician = |sub: &str, email: &str, verified: Option<bool>| {
        sign(&rsa, &claims_of(sub, email, verified, json!(["physician"])))
    };

    let unverified = physician("u-grey", "grey@clinic.test", Some(false));
    let (s, b) = me(&app, &unverified).await;
    assert_eq!(b["error"], "idp_not_linked", "{b}");
    assert_eq!(s, 403);

    let verified = physician("u-grey", "grey@clinic.test", Some(true));
    let (s, b) = me(&app, &verified).await;
    assert_eq!((s, b["id"].as_str()), (200, Some(grey.as_str())), "{b}");
    // Linked for good: found by (iss, sub) from now on, whatever the email claim says.
    let renamed = physician("u-grey", "dr.grey@clinic.test", Some(false));
    let (s, b) = me(&app, &renamed).await;
    assert_eq!((s, b["id"].as_str()), (200, Some(grey.as_str())), "{b}");
    // Another provider account with the same verified email cannot take it over.
    let other = physician("u-other", "grey@clinic.test", Some(true));
    let (s, b) = me(&app, &other).await;
    assert_eq!(b["error"], "idp_not_linked", "{b}");
    assert_eq!(s, 403);
    // A provider account with a new email gets its own new account.
    let house = physician("u-house", "house@clinic.test", None);
    let (s, b) = me(&app, &house).await;
    assert_eq!(
        (s, b["email"].as_str()),
        (200, Some("house@clinic.test")),
        "{b}"
    );
    assert_ne!(b["id"], grey.as_str());
}
