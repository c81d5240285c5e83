//! Checking a staff member's email and password, the way an attacker cannot exploit:
//!
//! - **Slots before Argon2.** Every attempt takes a failure slot per client IP and per
//!   email *before* its password is checked, and gives it back only if the password was
//!   right. However many attempts arrive at once (on one node or spread over nodes
//!   sharing Redis), no more passwords are checked than the limits allow.
//! - **One answer for every refusal.** Unknown email, wrong password, no password set and
//!   a deactivated account all end in [`SignInError::BadCredentials`], after the same
//!   Argon2 work (a dummy hash when there is no real one), and all count as failures. The
//!   real reason of a deactivated account goes to the log and the audit log, never to the
//!   client: otherwise the answer would confirm that the guessed password was right.

use super::{Guards, password};
use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::durable::{DurableError, DurableStore, Staff};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The audit action of a refused sign-in whose real reason the client is not told.
pub const AUDIT_ACTION: &str = "staff.sign_in";

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("too many failed sign-ins; retry after {0:?}")]
    RateLimited(Duration),
    /// Wrong email or password, or an account that may not sign in.
    #[error("wrong email or password")]
    BadCredentials,
    #[error("{0}")]
    Store(#[from] DurableError),
}

/// The account `email` and `password` sign in as, from `ip`.
pub async fn check_password(
    durable: &Arc<dyn DurableStore>,
    guards: &Guards,
    ip: IpAddr,
    email: &str,
    password: String,
) -> Result<Staff, SignInError> {
    let email_key = email.trim().to_lowercase();
    let ip_key = ip.to_string();
    if let Err(wait) = guards.sign_in_ip.take(&ip_key).await {
        tracing::warn!(ip = %ip, email = %email_key, "sign-in refused: rate limited");
        return Err(SignInError::RateLimited(wait));
    }
    if let Err(wait) = guards.sign_in_email.take(&email_key).await {
        // Nothing was checked, so this attempt does not count against the IP.
        guards.sign_in_ip.give_back(&ip_key).await;
        tracing::warn!(ip = %ip, email = %email_key, "sign-in refused: rate limited");
        return Err(SignInError::RateLimited(wait));
    }
    let account = match durable.staff_by_email(&email_key).await {
        Ok(a) => a,
        Err(e) => {
            // The store failed, not the caller: the attempt is not a failure.
            tokio::join!(
                guards.sign_in_ip.give_back(&ip_key),
                guards.sign_in_email.give_back(&email_key)
            );
            return Err(e.into());
        }
    };
    let stored = account.as_ref().and_then(|s| s.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, stored.as_deref()))
        .await
        .unwrap_or(false);
    match account {
        Some(account) if ok && account.active => {
            tokio::join!(
                guards.sign_in_ip.give_back(&ip_key),
                guards.sign_in_email.clear(&email_key)
            );
            Ok(account)
        }
        Some(account) if ok => {
            // The slots stay taken: to the client this is a wrong password like any other.
            tracing::warn!(ip = %ip, staff = %account.id, "sign-in refused: account deactivated");
            audit_refusal(durable.clone(), &account, "account_deactivated");
            Err(SignInError::BadCredentials)
        }
        _ => {
            tracing::warn!(ip = %ip, email = %email_key, "sign-in failed: bad credentials");
            Err(SignInError::BadCredentials)
        }
    }
}

/// Append the refusal to the audit log without making the answer wait for it: a
/// slower answer would tell the caller this case from a wrong password.
fn audit_refusal(durable: Arc<dyn DurableStore>, account: &Staff, reason: &'static str) {
    let entry = NewAuditEntry {
        at: chrono::Utc::now().timestamp_millis(),
        actor: account.id.to_string(),
        action: AUDIT_ACTION.into(),
        patient_ref: None,
        visit: None,
        sections: Vec::new(),
        outcome: AuditOutcome::Refused,
        reason: Some(reason.into()),
    };
    tokio::spawn(async move {
        if let Err(e) = durable.append_audit(entry).await {
            tracing::warn!(error = %e, reason, "a refused sign-in could not be audited");
        }
    });
}
