//! Accounts made outside the web UI: the first admin (a one-time link printed at the
//! first start) and `examroom admin create` on the command line.
//!
//! The first-admin link is only ever good for the *first* admin: it is refused (and
//! spent) once any admin exists, however that admin came to be (`admin create`, another
//! node, a concurrent use of the same link). A form the server refuses never spends it.

use super::{Role, hash_secret, password};
use crate::durable::{DurableError, DurableStore, NewSetupToken, NewStaff, SetupPurpose, Staff};

/// Lifetime of the first-admin setup link, seconds.
pub const FIRST_ADMIN_LINK_SECS: i64 = 24 * 3600;

/// With no staff account yet, make a one-time link for creating the first admin.
/// `None` when there is staff already.
pub async fn first_admin_link(
    durable: &dyn DurableStore,
    public_url: &str,
) -> Result<Option<String>, DurableError> {
    if durable.count_staff().await? > 0 {
        return Ok(None);
    }
    let token = super::links::new_code();
    durable
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

#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// An admin exists already: the link is dead.
    #[error("an admin account exists already")]
    AdminExists,
    #[error("{0}")]
    Store(DurableError),
}

/// Create the first admin (admin and physician) from the one-time link `token_hash`.
/// The form is checked before the link is looked at; the account and the spending of the
/// link are one transaction that fails if an admin exists (see
/// [`DurableStore::create_first_admin`]).
pub async fn create_first_admin(
    store: &dyn DurableStore,
    token_hash: &str,
    email: &str,
    name: &str,
    pw: String,
) -> Result<Staff, FirstAdminError> {
    let invalid = |field, message: &str| FirstAdminError::Invalid {
        field,
        message: message.to_owned(),
    };
    let (email, name) = (email.trim(), name.trim());
    password::check_policy(&pw).map_err(|e| invalid("password", &e.to_string()))?;
    if !email.contains('@') || email.len() > 320 {
        return Err(invalid("email", "not an email address"));
    }
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "give a name of 1-200 characters"));
    }
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| FirstAdminError::Store(DurableError::Internal(e.to_string())))?;
    let now = chrono::Utc::now().timestamp_millis();
    let new = NewStaff {
        email: email.to_owned(),
        name: name.to_owned(),
        roles: vec![Role::Admin, Role::Physician],
        password_hash: Some(hash),
        languages: Vec::new(),
        gender: None,
    };
    match store.create_first_admin(token_hash, now, new).await {
        Ok(account) => {
            tracing::info!(staff = %account.id, "first admin created from the setup link");
            Ok(account)
        }
        Err(DurableError::Conflict { field: "admin", .. }) => {
            tracing::warn!("first-admin setup link refused: an admin exists already");
            Err(FirstAdminError::AdminExists)
        }
        Err(DurableError::Invalid { field, message }) => {
            Err(FirstAdminError::Invalid { field, message })
        }
        Err(e) => Err(FirstAdminError::Store(e)),
    }
}
