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
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(me))
        .routes(routes!(setup_info, setup))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

#[derive(Deserialize, ToSchema)]
struct SignIn {
    email: String,
    password: String,
}

/// A staff member as the session answers name them.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffBrief {
    #[schema(value_type = String, example = "s_5f0c…")]
    pub id: crate::ids::StaffId,
    pub name: String,
    pub email: String,
    /// `physician`, `admin`.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<crate::ids::Role>,
}

impl From<&Staff> for StaffBrief {
    fn from(s: &Staff) -> Self {
        StaffBrief {
            id: s.id.clone(),
            name: s.name.clone(),
            email: s.email.clone(),
            roles: s.roles.clone(),
        }
    }
}

/// A new staff session (sign-in, or a set-up link used). The cookie `examroom_session`
/// carries the same token for the pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// Bearer token for tools; the pages use the cookie and never keep it.
    pub token: String,
    /// Send as `X-CSRF-Token` on requests that change state (cookie sessions).
    pub csrf_token: String,
    /// Unix ms.
    pub expires_at: i64,
    pub staff: StaffBrief,
}

/// Who is signed in; with a cookie session also its CSRF token and expiry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub staff: StaffBrief,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// What a one-time set-up link is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupInfo {
    /// `first_admin`, `invite` or `reset`.
    pub purpose: String,
    /// Unix ms.
    pub expires_at: i64,
    /// The account's e-mail (invitations and resets); the page shows it read-only.
    pub email: Option<String>,
    /// The account's name (invitations and resets); the page prefills it.
    pub name: Option<String>,
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

/// Sign in with e-mail and password: a session (cookie and bearer token).
#[utoipa::path(post, path = "/api/session", tag = "session", request_body = SignIn,
    responses((status = 200, body = SessionAnswer),
        (status = 401, description = "bad_credentials"),
        (status = 429, description = "rate_limited, with Retry-After")))]
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
    let body = SessionAnswer {
        token,
        csrf_token: csrf_token(state, &sid),
        expires_at,
        staff: account.into(),
    };
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

/// Sign out: the session ends everywhere at once.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 401)))]
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
#[utoipa::path(get, path = "/api/me", tag = "session",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Me), (status = 401)))]
async fn me(State(state): State<AppState>, auth: StaffAuth) -> Result<Json<Me>, ApiError> {
    let s = state
        .durable
        .staff(&auth.staff)
        .await?
        .ok_or_else(|| ApiError::not_found("staff"))?;
    let sid = auth.claims.sid.as_deref();
    Ok(Json(Me {
        staff: (&s).into(),
        csrf_token: sid.map(|sid| csrf_token(&state, sid)),
        expires_at: sid.map(|_| auth.claims.exp * 1000),
    }))
}

/// The set-up form: a password, and for the first admin also e-mail and name.
#[derive(Deserialize, ToSchema)]
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
#[utoipa::path(get, path = "/api/setup/{token}", tag = "session",
    params(("token" = String, Path, description = "the secret of the set-up link")),
    responses((status = 200, body = SetupInfo),
        (status = 404, description = "unknown_setup_token"),
        (status = 410, description = "already_used, expired"),
        (status = 403, description = "account_deactivated")))]
async fn setup_info(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<SetupInfo>, ApiError> {
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
    Ok(Json(SetupInfo {
        purpose: t.purpose.as_str().to_owned(),
        expires_at: t.expires_at,
        email: account.as_ref().map(|a| a.email.clone()),
        name: account.as_ref().map(|a| a.name.clone()),
    }))
}

/// A one-time setup link: create the first admin (printed at first start), accept a
/// staff invitation, or reset a password. Answers as sign-in does.
#[utoipa::path(post, path = "/api/setup/{token}", tag = "session",
    params(("token" = String, Path, description = "the secret of the set-up link")),
    request_body = Setup,
    responses((status = 200, body = SessionAnswer),
        (status = 422, description = "a field is invalid; `field` names it"),
        (status = 404, description = "unknown_setup_token"),
        (status = 410, description = "already_used, expired, admin_exists"),
        (status = 403, description = "account_deactivated")))]
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
