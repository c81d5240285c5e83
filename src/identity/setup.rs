//! Accounts made outside the web UI: the first admin (a one-time link printed at the
//! first start) and `examroom admin create` on the command line.

use super::{Role, hash_secret, password};
use crate::app::AppState;
use crate::durable::{DurableError, DurableStore, NewSetupToken, NewStaff, SetupPurpose, Staff};

/// Lifetime of the first-admin setup link, seconds.
pub const FIRST_ADMIN_LINK_SECS: i64 = 24 * 3600;

/// With no staff account yet, make a one-time link for creating the first admin.
/// `None` when there is staff already.
pub async fn first_admin_link(
    state: &AppState,
    public_url: &str,
) -> Result<Option<String>, DurableError> {
    if state.durable.count_staff().await? > 0 {
        return Ok(None);
    }
    let token = super::links::new_code();
    state
        .durable
        .create_setup_token(NewSetupToken {
            hash: hash_secret(&token),
            purpose: SetupPurpose::FirstAdmin,
            staff: None,
            expires_at: chrono::Utc::now().timestamp_millis() + FIRST_ADMIN_LINK_SECS * 1000,
        })
        .await?;
    Ok(Some(format!("{public_url}/setup/{token}")))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Policy(#[from] password::PolicyError),
    #[error("{0}")]
    Store(#[from] DurableError),
}

/// Create a staff account with a password (the CLI's `admin create`).
pub async fn create_staff(
    store: &dyn DurableStore,
    email: &str,
    name: &str,
    roles: Vec<Role>,
    pw: &str,
) -> Result<Staff, CreateError> {
    password::check_policy(pw)?;
    let pw = pw.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| DurableError::Internal(e.to_string()))?;
    Ok(store
        .create_staff(NewStaff {
            email: email.trim().to_owned(),
            name: name.trim().to_owned(),
            roles,
            password_hash: Some(hash),
            languages: Vec::new(),
            gender: None,
        })
        .await?)
}
