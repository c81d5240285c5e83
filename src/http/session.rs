//! Staff sign-in: `POST /api/session` (sign in), `DELETE /api/session` (sign out),
//! `GET /api/me`, `GET /api/setup/{token}` (what a one-time link is for, without spending
//! it) and `POST /api/setup/{token}` (first admin, invitation or reset from that link).
//!
//! A session is a random id; the store keeps only its hash. The token given out is an
//! examroom JWT naming the session, so signing out (revoking the session) stops it
//! everywhere at once. Browsers get it as an `HttpOnly; SameSite=Strict` cookie and send
//! `X-CSRF-Token` on changes; tools use `Authorization: Bearer`.

use super::auth::{Client, SESSION_COOKIE, StaffAuth, csrf_token};
use super::error::ApiError;
use super::extract::Json;
use crate::durable::{DurableError, NewSession, SetupPurpose, Staff};
use crate::identity::setup::{FirstAdminError, create_first_admin};
use crate::identity::signin::{SignInError, check_password};
use crate::identity::token::NewToken;
use crate::identity::{hash_secret, password};
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/session", post(sign_in).delete(sign_out))
        .route("/api/me", get(me))
        .route("/api/setup/{token}", get(setup_info).post(setup))
}

#[derive(Deserialize)]
struct SignIn {
    email: String,
    password: String,
}

fn staff_json(s: &Staff) -> Value {
    json!({ "id": s.id, "name": s.name, "email": s.email, "roles": s.roles })
}

fn rate_limited(retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs().max(1);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ApiErrorCode::RateLimited,
        format!("too many failed attempts; try again in {secs} s"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    let checked = check_password(
        &state.durable,
        &state.guards,
        client.ip,
        &body.email,
        body.password,
    )
    .await;
    let account = match checked {
        Ok(a) => a,
        Err(SignInError::RateLimited(wait)) => return Ok(rate_limited(wait)),
        Err(SignInError::BadCredentials) => {
            return Err(ApiError::unauthorized(
                ApiErrorCode::BadCredentials,
                "wrong email or password",
            ));
        }
        Err(SignInError::Store(e)) => return Err(e.into()),
    };
    tracing::info!(ip = %client.ip, staff = %account.id, "signed in");
    start_session(&state, &account, client).await
}

/// Create a server-side session for `account` and answer as sign-in does.
async fn start_session(
    state: &AppState,
    account: &Staff,
    client: Client,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now();
    let ttl = state.settings.identity.staff_session_secs;
    let expires_at = now.timestamp_millis() + ttl as i64 * 1000;
    let sid = crate::identity::links::new_code();
    state
        .durable
        .create_session(NewSession {
            id: hash_secret(&sid),
            staff: account.id.clone(),
            created_at: now.timestamp_millis(),
            expires_at,
        })
        .await?;
    let _ = state
        .durable
        .record_sign_in(&account.id, now.timestamp_millis())
        .await;
    let token = state.keys.issue(
        NewToken {
            sub: account.id.to_string(),
            name: account.name.clone(),
            roles: account.roles.clone(),
            room: None,
            visit: None,
            patient: None,
            sid: Some(sid.clone()),
            lang: None,
            ttl_secs: ttl,
        },
        now.timestamp(),
    );
    let secure = if client.https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"
    );
    let body = json!({
        "token": token,
        "csrf_token": csrf_token(state, &sid),
        "expires_at": expires_at,
        "staff": staff_json(account),
    });
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    // Marks this browser as a staff one for good: it may not redeem patient links.
    r.headers_mut().append(
        header::SET_COOKIE,
        super::links::staff_device_cookie(client.https),
    );
    Ok(r)
}

async fn sign_out(
    State(state): State<AppState>,
    auth: StaffAuth,
    client: Client,
) -> Result<Response, ApiError> {
    if let Some(sid) = &auth.claims.sid {
        state.durable.revoke_session(&hash_secret(sid)).await?;
        crate::identity::access::session_ended(state.memo.as_ref(), &hash_secret(sid)).await;
    }
    tracing::info!(staff = %auth.staff, "signed out");
    let secure = if client.https { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// Who is signed in. With a session (the pages' cookie) it also gives that session's CSRF
/// token and expiry, so a second tab of the same browser joins the session instead of
/// asking to sign in again. Only a same-origin page can read it (no CORS with
/// credentials; the cookie is `SameSite=Strict`), which is all the CSRF token needs.
async fn me(State(state): State<AppState>, auth: StaffAuth) -> Result<Json<Value>, ApiError> {
    let s = state
        .durable
        .staff(&auth.staff)
        .await?
        .ok_or_else(|| ApiError::not_found("staff"))?;
    let mut body = staff_json(&s);
    if let Some(sid) = auth.claims.sid.as_deref() {
        body["csrf_token"] = json!(csrf_token(&state, sid));
        body["expires_at"] = json!(auth.claims.exp * 1000);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct Setup {
    /// First admin: required. Invitations and resets: the account already has one.
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    password: String,
}

fn unknown_setup_token() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ApiErrorCode::UnknownSetupToken,
        "this setup link is not valid",
    )
}

/// What a one-time setup link is for, without spending it: the set-up page shows the
/// e-mail of an invitation or reset read-only and prefills the name. A link that is
/// used, expired or for a deactivated account answers as `POST` would, so the page can
/// say so before anyone types a password.
async fn setup_info(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .durable
        .setup_token(&hash_secret(&token))
        .await?
        .ok_or_else(unknown_setup_token)?;
    if t.used_at.is_some() {
        return Err(DurableError::AlreadyUsed.into());
    }
    if t.expires_at <= chrono::Utc::now().timestamp_millis() {
        return Err(DurableError::Expired.into());
    }
    let account = match &t.staff {
        Some(id) => Some(
            state
                .durable
                .staff(id)
                .await?
                .ok_or_else(unknown_setup_token)?,
        ),
        None => None,
    };
    if account.as_ref().is_some_and(|a| !a.active) {
        return Err(ApiError::forbidden(
            ApiErrorCode::AccountDeactivated,
            "this account is deactivated",
        ));
    }
    Ok(Json(json!({
        "purpose": t.purpose.as_str(),
        "expires_at": t.expires_at,
        "email": account.as_ref().map(|a| a.email.as_str()),
        "name": account.as_ref().map(|a| a.name.as_str()),
    })))
}

/// A one-time setup link: create the first admin (printed at first start), accept a
/// staff invitation, or reset a password.
async fn setup(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: Client,
    Json(body): Json<Setup>,
) -> Result<Response, ApiError> {
    // Check the form before spending the token, so a typo does not burn it.
    password::check_policy(&body.password)
        .map_err(|e| ApiError::invalid("password", e.to_string()))?;
    let email = body
        .email
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if body.email.is_some() && (!email.contains('@') || email.len() > 320) {
        return Err(ApiError::invalid("email", "not an email address"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "give a name of 1-200 characters"));
    }
    let unknown = |e| match e {
        DurableError::NotFound { .. } => unknown_setup_token(),
        e => e.into(),
    };
    let token_hash = hash_secret(&token);
    let peeked = state.durable.setup_token(&token_hash).await?;
    if peeked
        .as_ref()
        .is_some_and(|t| t.purpose == SetupPurpose::FirstAdmin)
    {
        // Checked, created and spent in one use case, so neither a bad form nor an
        // admin made in the meantime can go wrong halfway.
        let account = create_first_admin(
            state.durable.as_ref(),
            &token_hash,
            &email,
            &name,
            body.password,
        )
        .await
        .map_err(|e| match e {
            FirstAdminError::Invalid { field, message } => ApiError::invalid(field, message),
            FirstAdminError::AdminExists => ApiError::new(
                StatusCode::GONE,
                ApiErrorCode::AdminExists,
                "an admin account exists already; sign in instead",
            ),
            FirstAdminError::Store(e) => unknown(e),
        })?;
        return start_session(&state, &account, client).await;
    }
    // An invitation or reset is for one account: an e-mail sent with it must be that
    // account's, or the person would sign in later with an address that does not work.
    // Checked before the token is spent.
    if let Some(id) = peeked.as_ref().and_then(|t| t.staff.as_ref())
        && !email.is_empty()
        && let Some(account) = state.durable.staff(id).await?
        && !account.email.trim().eq_ignore_ascii_case(&email)
    {
        return Err(ApiError::invalid(
            "email",
            "this link was made for another e-mail address; sign in later with the address it was sent to",
        ));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let t = state
        .durable
        .consume_setup_token(&token_hash, now)
        .await
        .map_err(unknown)?;
    let pw = body.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(ApiError::internal)?;
    let account = match t.purpose {
        SetupPurpose::FirstAdmin => {
            return Err(ApiError::internal(
                "first-admin token past the first-admin path",
            ));
        }
        // An invitation or a reset sets the password of the account it was made for.
        SetupPurpose::Invite | SetupPurpose::Reset => {
            let staff = t
                .staff
                .ok_or_else(|| ApiError::internal("setup token without an account"))?;
            let update = crate::durable::StaffUpdate {
                password_hash: Some(Some(hash)),
                name: (!name.is_empty()).then_some(name),
                ..Default::default()
            };
            let account = state.durable.update_staff(&staff, update).await?;
            if !account.active {
                return Err(ApiError::forbidden(
                    ApiErrorCode::AccountDeactivated,
                    "this account is deactivated",
                ));
            }
            // A reset ends every other session of the account.
            if t.purpose == SetupPurpose::Reset {
                state.durable.revoke_sessions_of(&staff).await?;
                // …and closes its open sockets, on every node.
                crate::signalling::staff_access_changed(&state, &staff).await;
            }
            tracing::info!(staff = %account.id, purpose = t.purpose.as_str(), "password set from a setup link");
            account
        }
    };
    start_session(&state, &account, client).await
}
