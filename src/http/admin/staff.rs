//! Staff accounts: admins list, invite, edit, deactivate and send password resets.
//! Accepting an invitation or reset (`POST /api/setup/{token}`) is `identity`'s route.

use super::{new_setup_secret, now_millis};
use crate::durable::{NewSetupToken, NewStaff, SetupPurpose, Staff, StaffUpdate};
use crate::http::auth::AdminAuth;
use crate::http::error::ApiError;
use crate::http::extract::{Json, staff_id};
use crate::identity::Role;
use crate::ids::StaffId;
use crate::state::AppState;
use crate::visit::Millis;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long an invitation link works.
pub const INVITE_TTL_MS: Millis = 7 * 24 * 3600 * 1000;
/// How long a password-reset link works.
pub const RESET_TTL_MS: Millis = 24 * 3600 * 1000;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_staff, create_staff))
        .routes(routes!(update_staff))
        .routes(routes!(reset_staff))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    #[schema(value_type = String, example = "s_1b2c…")]
    pub id: StaffId,
    pub email: String,
    pub name: String,
    /// `physician` and/or `admin`.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub active: bool,
    pub languages: Vec<String>,
    pub gender: Option<String>,
    pub created_at: Millis,
    /// Unix ms of the last sign-in; `null` if never (e.g. invitation not yet accepted).
    pub last_sign_in_at: Option<Millis>,
    /// Whether a password is set (an invited account has none until it is accepted).
    pub has_password: bool,
}

impl From<Staff> for StaffView {
    fn from(s: Staff) -> Self {
        StaffView {
            has_password: s.password_hash.is_some(),
            id: s.id,
            email: s.email,
            name: s.name,
            roles: s.roles,
            active: s.active,
            languages: s.languages,
            gender: s.gender,
            created_at: s.created_at,
            last_sign_in_at: s.last_sign_in_at,
        }
    }
}

fn staff_roles(roles: &[Role]) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::invalid(
            "roles",
            "give at least one of physician, admin",
        ));
    }
    if let Some(r) = roles
        .iter()
        .find(|r| !matches!(r, Role::Physician | Role::Admin))
    {
        return Err(ApiError::invalid(
            "roles",
            format!("`{}` is not a staff role (physician, admin)", r.as_str()),
        ));
    }
    Ok(())
}

fn check_languages(langs: &[String]) -> Result<(), ApiError> {
    let ok = |l: &String| {
        !l.is_empty() && l.len() <= 35 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if langs.len() > 20 || !langs.iter().all(ok) {
        return Err(ApiError::invalid(
            "languages",
            "up to 20 BCP 47 language tags, e.g. en, pt-BR",
        ));
    }
    Ok(())
}

fn check_gender(g: Option<&str>) -> Result<(), ApiError> {
    if g.is_some_and(|g| g.chars().count() > 50) {
        return Err(ApiError::invalid("gender", "at most 50 characters"));
    }
    Ok(())
}

/// All staff accounts, by name, with their last sign-in.
#[utoipa::path(get, path = "/api/staff", tag = "staff",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [StaffView]), (status = 403, description = "not_admin")))]
async fn list_staff(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<Json<Vec<StaffView>>, ApiError> {
    let all = state.durable.list_staff().await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaffBody {
    pub email: String,
    pub name: String,
    /// `physician` and/or `admin`.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    /// BCP 47 tags the staff member speaks, for matching patients.
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub gender: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub staff: StaffView,
    /// Send this to the new staff member: it sets their password. Valid for 7 days,
    /// once. It is shown only here.
    pub invitation_url: String,
    pub expires_at: Millis,
}

async fn setup_link(
    state: &AppState,
    staff: &StaffId,
    purpose: SetupPurpose,
    ttl: Millis,
) -> Result<(String, Millis), ApiError> {
    let (secret, hash) = new_setup_secret();
    let expires_at = now_millis() + ttl;
    state
        .durable
        .create_setup_token(NewSetupToken {
            hash,
            purpose,
            staff: Some(staff.clone()),
            expires_at,
        })
        .await?;
    Ok((
        format!("{}/setup/{secret}", state.settings.public_url()),
        expires_at,
    ))
}

/// Invite a staff member (admin): creates the account without a password and returns
/// a one-time invitation link.
#[utoipa::path(post, path = "/api/staff", tag = "staff", request_body = NewStaffBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, body = Invitation), (status = 409, description = "email taken"),
        (status = 422)))]
async fn create_staff(
    _: AdminAuth,
    State(state): State<AppState>,
    Json(body): Json<NewStaffBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    staff_roles(&body.roles)?;
    check_languages(&body.languages)?;
    check_gender(body.gender.as_deref())?;
    let staff = state
        .durable
        .create_staff(NewStaff {
            email: body.email.trim().to_owned(),
            name: body.name.trim().to_owned(),
            roles: body.roles,
            password_hash: None,
            languages: body.languages,
            gender: body.gender.filter(|g| !g.trim().is_empty()),
        })
        .await?;
    // A second write: if it fails the account exists without a link, and
    // `POST /api/staff/{id}/reset` gives one.
    let (invitation_url, expires_at) =
        setup_link(&state, &staff.id, SetupPurpose::Invite, INVITE_TTL_MS).await?;
    tracing::info!(staff = %staff.id, "staff member invited");
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            staff: staff.into(),
            invitation_url,
            expires_at,
        }),
    ))
}

/// `null` and absent differ for `gender`: absent keeps it, `null` clears it.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Fields left out are unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffPatch {
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub roles: Option<Vec<Role>>,
    /// `false` deactivates the account and signs it out everywhere at once.
    pub active: Option<bool>,
    pub languages: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub gender: Option<Option<String>>,
}

/// Edit a staff member (admin). Deactivating revokes all their sessions.
#[utoipa::path(patch, path = "/api/staff/{id}", tag = "staff", params(("id" = String, Path)),
    request_body = StaffPatch, security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = StaffView), (status = 404), (status = 422)))]
async fn update_staff(
    AdminAuth(me): AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<StaffPatch>,
) -> Result<Json<StaffView>, ApiError> {
    let id = staff_id(&id)?;
    if let Some(roles) = &body.roles {
        staff_roles(roles)?;
        // An admin who removes their own admin role could leave no one able to undo it.
        if id == me.staff && !roles.contains(&Role::Admin) {
            return Err(ApiError::invalid(
                "roles",
                "you cannot remove your own admin role",
            ));
        }
    }
    if id == me.staff && body.active == Some(false) {
        return Err(ApiError::invalid(
            "active",
            "you cannot deactivate yourself",
        ));
    }
    if let Some(l) = &body.languages {
        check_languages(l)?;
    }
    if let Some(g) = &body.gender {
        check_gender(g.as_deref())?;
    }
    let update = StaffUpdate {
        name: body.name.map(|n| n.trim().to_owned()),
        roles: body.roles,
        active: body.active,
        password_hash: None,
        languages: body.languages,
        gender: body.gender.map(|g| g.filter(|g| !g.trim().is_empty())),
    };
    let before = state.durable.staff(&id).await?;
    let staff = state.durable.update_staff(&id, update).await?;
    if body.active == Some(false) {
        let n = state.durable.revoke_sessions_of(&id).await?;
        tracing::info!(staff = %id, sessions = n, "staff member deactivated; sessions revoked");
    }
    // Open sockets hold what `hello` granted: close them when that changed.
    let was = before.map(|b| (b.active, b.roles));
    if was.as_ref() != Some(&(staff.active, staff.roles.clone())) {
        crate::signalling::staff_access_changed(&state, &id).await;
    }
    Ok(Json(staff.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetLink {
    /// Send this to the staff member: it sets a new password. Valid for 24 hours, once.
    pub reset_url: String,
    pub expires_at: Millis,
}

/// A password-reset (or fresh invitation) link for an active staff member (admin).
#[utoipa::path(post, path = "/api/staff/{id}/reset", tag = "staff",
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ResetLink), (status = 404),
        (status = 409, description = "the account is deactivated")))]
async fn reset_staff(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ResetLink>, ApiError> {
    let id = staff_id(&id)?;
    let staff = state
        .durable
        .staff(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff"))?;
    if !staff.active {
        return Err(ApiError::conflict(
            "active",
            "the account is deactivated; reactivate it first",
        ));
    }
    let (reset_url, expires_at) =
        setup_link(&state, &id, SetupPurpose::Reset, RESET_TTL_MS).await?;
    tracing::info!(staff = %id, "password reset link issued");
    Ok(Json(ResetLink {
        reset_url,
        expires_at,
    }))
}
