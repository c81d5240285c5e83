//! Staff accounts, their sign-in sessions and one-time setup tokens (first admin, invites,
//! password resets).

use super::DurableError;
use crate::ids::{Role, StaffId};
use crate::visit::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStaff {
    pub email: String,
    pub name: String,
    /// `Physician` and/or `Admin`; at least one.
    pub roles: Vec<Role>,
    pub password_hash: Option<String>,
    pub languages: Vec<String>,
    pub gender: Option<String>,
}

/// Who a staff member is at the clinic's identity provider: the token's `iss` and
/// `sub`, which (unlike the email) the provider never reassigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpIdentity {
    pub issuer: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: StaffId,
    /// As entered; lookups ignore case.
    pub email: String,
    pub name: String,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub active: bool,
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub languages: Vec<String>,
    pub gender: Option<String>,
    /// Stamped by the store's clock.
    pub created_at: Millis,
    pub last_sign_in_at: Option<Millis>,
    /// The identity-provider account this one is linked to, if any.
    #[serde(skip)]
    pub idp: Option<IdpIdentity>,
}

impl Staff {
    pub fn has_role(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

/// Fields left `None` are unchanged. `password_hash: Some(None)` clears the password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffUpdate {
    pub name: Option<String>,
    pub roles: Option<Vec<Role>>,
    pub active: Option<bool>,
    pub password_hash: Option<Option<String>>,
    pub languages: Option<Vec<String>>,
    pub gender: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Already a hash of the cookie value.
    pub id: String,
    pub staff: StaffId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub staff: StaffId,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The store does not judge expiry; callers compare `expires_at` with now.
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupPurpose {
    FirstAdmin,
    Invite,
    Reset,
}

impl SetupPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupPurpose::FirstAdmin => "first_admin",
            SetupPurpose::Invite => "invite",
            SetupPurpose::Reset => "reset",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "first_admin" => Some(SetupPurpose::FirstAdmin),
            "invite" => Some(SetupPurpose::Invite),
            "reset" => Some(SetupPurpose::Reset),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSetupToken {
    pub hash: String,
    pub purpose: SetupPurpose,
    /// The account an invite or reset is for; `None` for `FirstAdmin`.
    pub staff: Option<StaffId>,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupToken {
    pub hash: String,
    pub purpose: SetupPurpose,
    pub staff: Option<StaffId>,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// Accounts, sessions and setup tokens.
#[async_trait::async_trait]
pub trait StaffStore: Send + Sync {
    /// Duplicate email (any case) → `Conflict{email}`; bad email/name/roles → `Invalid`.
    async fn create_staff(&self, new: NewStaff) -> Result<Staff, DurableError>;

    async fn staff(&self, id: &StaffId) -> Result<Option<Staff>, DurableError>;

    /// Case-insensitive.
    async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>, DurableError>;

    /// Ordered by name.
    async fn list_staff(&self) -> Result<Vec<Staff>, DurableError>;

    async fn update_staff(&self, id: &StaffId, update: StaffUpdate) -> Result<Staff, DurableError>;

    async fn count_staff(&self) -> Result<u64, DurableError>;

    async fn record_sign_in(&self, id: &StaffId, at: Millis) -> Result<(), DurableError>;

    /// The account linked to an identity provider's (`iss`, `sub`).
    async fn staff_by_idp(&self, idp: &IdpIdentity) -> Result<Option<Staff>, DurableError>;

    /// A new account linked to `idp` from the start, in one statement. Duplicate email →
    /// `Conflict{email}`; `idp` linked already → `Conflict{idp}`.
    async fn create_idp_staff(
        &self,
        new: NewStaff,
        idp: &IdpIdentity,
    ) -> Result<Staff, DurableError>;

    /// Link an existing account to `idp`, only if it is linked to nothing yet (one
    /// conditional statement). Linked to something else, or `idp` linked to another
    /// account → `Conflict{idp}`; unknown → `NotFound{staff}`.
    async fn link_staff_idp(&self, id: &StaffId, idp: &IdpIdentity) -> Result<Staff, DurableError>;

    /// Unknown staff → `NotFound{staff}`; duplicate id → `Conflict{id}`.
    async fn create_session(&self, s: NewSession) -> Result<(), DurableError>;

    async fn session(&self, id: &str) -> Result<Option<Session>, DurableError>;

    /// Unknown session → `NotFound{session}`; revoking twice is fine.
    async fn revoke_session(&self, id: &str) -> Result<(), DurableError>;

    /// Revokes every live session of `staff`; returns how many were revoked now.
    async fn revoke_sessions_of(&self, staff: &StaffId) -> Result<u64, DurableError>;

    async fn create_setup_token(&self, t: NewSetupToken) -> Result<(), DurableError>;

    /// Marks the token used in one atomic statement: of concurrent callers exactly one wins.
    /// `NotFound` / `Expired` (`expires_at <= now`) / `AlreadyUsed`.
    async fn consume_setup_token(
        &self,
        hash: &str,
        now: Millis,
    ) -> Result<SetupToken, DurableError>;

    /// The token, used or not, without touching it (to learn its purpose).
    async fn setup_token(&self, hash: &str) -> Result<Option<SetupToken>, DurableError>;

    /// Create the first admin from a `FirstAdmin` token, in one transaction that fails —
    /// creating nothing — unless the token is unused and unexpired *and no admin account
    /// exists*. The token is spent only with success, or when an admin exists (then it
    /// can never succeed): `Conflict{admin}`. Bad account fields → `Invalid` and a
    /// duplicate email → `Conflict{email}`, leaving the token unspent. A token of another
    /// purpose is `NotFound`, like an unknown one.
    async fn create_first_admin(
        &self,
        token_hash: &str,
        now: Millis,
        new: NewStaff,
    ) -> Result<Staff, DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

/// Binds `$1`…`$9` of an `INSERT INTO staff`: id, email, email_norm, name, roles,
/// password_hash, languages, gender, created_at — in that order, for every insert.
macro_rules! bind_new_staff {
    ($query:expr, $id:expr, $new:expr, $roles:expr) => {
        $query
            .bind($id.as_str())
            .bind($new.email.trim())
            .bind(normalise_email(&$new.email))
            .bind($new.name.trim())
            .bind(to_json(&$roles))
            .bind(&$new.password_hash)
            .bind(to_json(&$new.languages))
            .bind(&$new.gender)
            .bind(now_millis())
    };
}

pub(super) use bind_new_staff;

macro_rules! impl_staff_store {
    ($store:ty) => {
        impl $store {
            /// A new active staff account, linked to an identity-provider account or not.
            async fn insert_staff(
                &self,
                new: NewStaff,
                idp: Option<&IdpIdentity>,
            ) -> Result<Staff, DurableError> {
                let roles = check_new_staff(&new)?;
                let id = $crate::ids::StaffId::new();
                let r = $crate::durable::staff::bind_new_staff!(
                    sqlx::query(
                        "INSERT INTO staff (id, email, email_norm, name, roles, active, \
                         password_hash, languages, gender, created_at, idp_issuer, idp_subject) \
                         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8, $9, $10, $11)",
                    ),
                    id, new, roles
                )
                .bind(idp.map(|i| i.issuer.as_str()))
                .bind(idp.map(|i| i.subject.as_str()))
                .execute(&self.pool)
                .await;
                match r {
                    Err(e) if is_unique(&e, "email") => return Err(email_taken()),
                    Err(e) if is_unique(&e, "idp") => {
                        return Err(DurableError::conflict(
                            "idp",
                            "this identity-provider account is linked already",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                self.staff(&id)
                    .await?
                    .ok_or_else(|| DurableError::Internal("staff vanished after insert".into()))
            }
        }

        #[async_trait::async_trait]
        impl StaffStore for $store {
            async fn create_staff(&self, new: NewStaff) -> Result<Staff, DurableError> {
                self.insert_staff(new, None).await
            }

            async fn staff(
                &self,
                id: &$crate::ids::StaffId,
            ) -> Result<Option<Staff>, DurableError> {
                let sql = format!("SELECT {STAFF_COLS} FROM staff WHERE id = $1");
                self.find_one(&sql, id.as_str(), StaffRow::into_staff).await
            }

            async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>, DurableError> {
                let sql = format!("SELECT {STAFF_COLS} FROM staff WHERE email_norm = $1");
                self.find_one(&sql, &normalise_email(email), StaffRow::into_staff).await
            }

            async fn list_staff(&self) -> Result<Vec<Staff>, DurableError> {
                self.find_all(
                    sqlx::query_as::<_, StaffRow>(&format!(
                        "SELECT {STAFF_COLS} FROM staff ORDER BY name, id"
                    )),
                    StaffRow::into_staff,
                )
                .await
            }

            async fn update_staff(
                &self,
                id: &$crate::ids::StaffId,
                update: StaffUpdate,
            ) -> Result<Staff, DurableError> {
                if let Some(n) = &update.name {
                    check_name(n)?;
                }
                let roles = update.roles.as_deref().map(check_roles).transpose()?;
                // One statement, so concurrent updates of different fields both land.
                let r = sqlx::query(
                    "UPDATE staff SET name = COALESCE($2, name), roles = COALESCE($3, roles), \
                     active = COALESCE($4, active), languages = COALESCE($5, languages), \
                     password_hash = CASE WHEN $6 THEN $7 ELSE password_hash END, \
                     gender = CASE WHEN $8 THEN $9 ELSE gender END \
                     WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(update.name.as_deref().map(str::trim))
                .bind(roles.as_ref().map(to_json))
                .bind(update.active)
                .bind(update.languages.as_ref().map(to_json))
                .bind(update.password_hash.is_some())
                .bind(update.password_hash.flatten())
                .bind(update.gender.is_some())
                .bind(update.gender.flatten())
                .execute(&self.pool)
                .await?;
                one_changed(r.rows_affected(), "staff")?;
                self.staff(id)
                    .await?
                    .ok_or(DurableError::NotFound { what: "staff" })
            }

            async fn count_staff(&self) -> Result<u64, DurableError> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM staff")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n.max(0) as u64)
            }

            async fn record_sign_in(
                &self,
                id: &$crate::ids::StaffId,
                at: Millis,
            ) -> Result<(), DurableError> {
                let q = sqlx::query("UPDATE staff SET last_sign_in_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(at);
                self.update_one(q, "staff").await
            }

            async fn staff_by_idp(
                &self,
                idp: &IdpIdentity,
            ) -> Result<Option<Staff>, DurableError> {
                sqlx::query_as::<_, StaffRow>(&format!(
                    "SELECT {STAFF_COLS} FROM staff WHERE idp_issuer = $1 AND idp_subject = $2"
                ))
                .bind(&idp.issuer)
                .bind(&idp.subject)
                .fetch_optional(&self.pool)
                .await?
                .map(StaffRow::into_staff)
                .transpose()
            }

            async fn create_idp_staff(
                &self,
                new: NewStaff,
                idp: &IdpIdentity,
            ) -> Result<Staff, DurableError> {
                self.insert_staff(new, Some(idp)).await
            }

            async fn link_staff_idp(
                &self,
                id: &$crate::ids::StaffId,
                idp: &IdpIdentity,
            ) -> Result<Staff, DurableError> {
                let linked_elsewhere = || {
                    DurableError::conflict(
                        "idp",
                        "the account or the identity-provider account is linked already",
                    )
                };
                // Conditional: an account linked to one provider account is never relinked.
                let r = sqlx::query(
                    "UPDATE staff SET idp_issuer = $2, idp_subject = $3 \
                     WHERE id = $1 AND idp_subject IS NULL",
                )
                .bind(id.as_str())
                .bind(&idp.issuer)
                .bind(&idp.subject)
                .execute(&self.pool)
                .await;
                match r {
                    Err(e) if is_unique(&e, "") => return Err(linked_elsewhere()),
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                let staff = self
                    .staff(id)
                    .await?
                    .ok_or(DurableError::NotFound { what: "staff" })?;
                if staff.idp.as_ref() != Some(idp) {
                    return Err(linked_elsewhere());
                }
                Ok(staff)
            }

            // --- sessions ----------------------------------------------------------------

            async fn create_session(&self, s: NewSession) -> Result<(), DurableError> {
                let r = sqlx::query(
                    "INSERT INTO staff_sessions (id, staff_id, created_at, expires_at, revoked) \
                     VALUES ($1, $2, $3, $4, FALSE)",
                )
                .bind(&s.id)
                .bind(s.staff.as_str())
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&self.pool)
                .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if is_foreign_key(&e) => Err(DurableError::NotFound { what: "staff" }),
                    Err(e) if is_unique(&e, "") => {
                        Err(DurableError::conflict("id", "session id already exists"))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn session(&self, id: &str) -> Result<Option<Session>, DurableError> {
                let sql = "SELECT id, staff_id, created_at, expires_at, revoked \
                           FROM staff_sessions WHERE id = $1";
                self.find_one(sql, id, SessionRow::into_session).await
            }

            async fn revoke_session(&self, id: &str) -> Result<(), DurableError> {
                let q = sqlx::query("UPDATE staff_sessions SET revoked = TRUE WHERE id = $1")
                    .bind(id);
                self.update_one(q, "session").await
            }

            async fn revoke_sessions_of(
                &self,
                staff: &$crate::ids::StaffId,
            ) -> Result<u64, DurableError> {
                let r = sqlx::query(
                    "UPDATE staff_sessions SET revoked = TRUE \
                     WHERE staff_id = $1 AND revoked = FALSE",
                )
                .bind(staff.as_str())
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            // --- setup tokens ------------------------------------------------------------

            async fn create_setup_token(&self, t: NewSetupToken) -> Result<(), DurableError> {
                let r = sqlx::query(
                    "INSERT INTO setup_tokens (hash, purpose, staff_id, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&t.hash)
                .bind(t.purpose.as_str())
                .bind(t.staff.as_ref().map(|s| s.as_str().to_owned()))
                .bind(t.expires_at)
                .execute(&self.pool)
                .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if is_foreign_key(&e) => {
                        Err(DurableError::invalid("staff", "no such staff account"))
                    }
                    Err(e) if is_unique(&e, "") => {
                        Err(DurableError::conflict("hash", "token already exists"))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn consume_setup_token(
                &self,
                hash: &str,
                now: Millis,
            ) -> Result<SetupToken, DurableError> {
                // One conditional UPDATE: the database lets exactly one caller through.
                let won = sqlx::query_as::<_, SetupTokenRow>(
                    "UPDATE setup_tokens SET used_at = $2 \
                     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     RETURNING hash, purpose, staff_id, expires_at, used_at",
                )
                .bind(hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(t) = won {
                    return t.into_token();
                }
                let t = sqlx::query_as::<_, SetupTokenRow>(
                    "SELECT hash, purpose, staff_id, expires_at, used_at \
                     FROM setup_tokens WHERE hash = $1",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                Err(match t {
                    None => DurableError::NotFound { what: "token" },
                    Some(t) if t.used_at.is_some() => DurableError::AlreadyUsed,
                    Some(_) => DurableError::Expired,
                })
            }

            async fn setup_token(&self, hash: &str) -> Result<Option<SetupToken>, DurableError> {
                let sql = "SELECT hash, purpose, staff_id, expires_at, used_at \
                           FROM setup_tokens WHERE hash = $1";
                self.find_one(sql, hash, SetupTokenRow::into_token).await
            }

            async fn create_first_admin(
                &self,
                token_hash: &str,
                now: Millis,
                new: NewStaff,
            ) -> Result<Staff, DurableError> {
                // Before the transaction: a bad form never touches the token.
                let roles = check_new_staff(&new)?;
                if !roles.contains(&$crate::ids::Role::Admin) {
                    return Err(DurableError::invalid("roles", "the first admin is an admin"));
                }
                // Holds off every other write to `staff` until we commit, so no admin can
                // appear between the check below and our insert.
                let mut tx = self.begin_staff_write().await?;
                let token = sqlx::query_as::<_, SetupTokenRow>(
                    "SELECT hash, purpose, staff_id, expires_at, used_at \
                     FROM setup_tokens WHERE hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?
                .map(SetupTokenRow::into_token)
                .transpose()?
                .filter(|t| t.purpose == SetupPurpose::FirstAdmin)
                .ok_or(DurableError::NotFound { what: "token" })?;
                if token.used_at.is_some() {
                    return Err(DurableError::AlreadyUsed);
                }
                if token.expires_at <= now {
                    return Err(DurableError::Expired);
                }
                let spend = sqlx::query(
                    "UPDATE setup_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL",
                )
                .bind(token_hash)
                .bind(now);
                let (admins,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM staff WHERE roles LIKE '%\"admin\"%'",
                )
                .fetch_one(&mut *tx)
                .await?;
                if admins > 0 {
                    // The link can never succeed now: spend it, so it is dead for good.
                    spend.execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Err(DurableError::conflict(
                        "admin",
                        "an admin account exists already",
                    ));
                }
                let id = $crate::ids::StaffId::new();
                let r = $crate::durable::staff::bind_new_staff!(
                    sqlx::query(
                        "INSERT INTO staff (id, email, email_norm, name, roles, active, \
                         password_hash, languages, gender, created_at) \
                         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8, $9)",
                    ),
                    id, new, roles
                )
                .execute(&mut *tx)
                .await;
                match r {
                    // Dropping `tx` rolls back: the token stays unspent.
                    Err(e) if is_unique(&e, "email") => return Err(email_taken()),
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                spend.execute(&mut *tx).await?;
                tx.commit().await?;
                self.staff(&id)
                    .await?
                    .ok_or_else(|| DurableError::Internal("staff vanished after insert".into()))
            }
        }
    };
}

pub(super) use impl_staff_store;
