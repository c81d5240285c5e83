//! Join links: who a link admits, to which room and visit, and how it has been used.

use super::DurableError;
use crate::ids::{LinkId, PatientRef, RoomId, StaffId, VisitId};
use crate::visit::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Patient,
    Guest,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Patient => "patient",
            LinkKind::Guest => "guest",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "patient" => Some(LinkKind::Patient),
            "guest" => Some(LinkKind::Guest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub id: LinkId,
    /// Hash of the secret code; unique.
    pub code_hash: String,
    pub kind: LinkKind,
    pub room: RoomId,
    /// Pre-assigned so the visit id is known before anyone joins.
    pub visit: VisitId,
    pub patient_name: Option<String>,
    pub patient_ref: Option<PatientRef>,
    pub reason: Option<String>,
    pub lang: Option<String>,
    pub not_before: Option<Millis>,
    pub expires_at: Millis,
    pub created_by: StaffId,
    pub created_at: Millis,
}

/// A stored link: the link as it was made, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub new: NewLink,
    pub revoked: bool,
    pub first_used_at: Option<Millis>,
    pub use_count: i64,
}

/// Join links and the browsers they are bound to.
#[async_trait::async_trait]
pub trait LinkStore: Send + Sync {
    /// Unknown or archived room → `Invalid{room}`; unknown creator → `Invalid{created_by}`;
    /// duplicate id/code → `Conflict{id|code_hash}`.
    async fn create_link(&self, new: NewLink) -> Result<Link, DurableError>;

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, DurableError>;

    async fn link_by_code_hash(&self, hash: &str) -> Result<Option<Link>, DurableError>;

    /// Newest first.
    async fn list_links(&self, room: Option<&RoomId>) -> Result<Vec<Link>, DurableError>;

    /// Idempotent; `NotFound{link}`.
    async fn revoke_link(&self, id: &LinkId) -> Result<(), DurableError>;

    /// Counts a use and keeps the first use time; `NotFound{link}`. Whether the link may
    /// still be used (revoked, expired, single-use) is the caller's rule.
    async fn mark_link_used(&self, id: &LinkId, at: Millis) -> Result<(), DurableError>;

    /// The browser a join link is bound to (the hash of its device id), if any.
    async fn link_device(&self, id: &LinkId) -> Result<Option<String>, DurableError>;

    /// Binds a join link to a browser, replacing an earlier binding; `NotFound{link}`.
    async fn bind_link_device(
        &self,
        id: &LinkId,
        device_hash: &str,
        at: Millis,
    ) -> Result<(), DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_link_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl LinkStore for $store {
            async fn create_link(&self, new: NewLink) -> Result<Link, DurableError> {
                if new.expires_at <= new.created_at {
                    return Err(DurableError::invalid(
                        "expires_at",
                        "must be after created_at",
                    ));
                }
                if new.not_before.is_some_and(|nb| nb >= new.expires_at) {
                    return Err(DurableError::invalid(
                        "not_before",
                        "must be before expires_at",
                    ));
                }
                Self::room_in_use(&self.pool, &new.room).await?;
                let r = Self::insert_link(&new).execute(&self.pool).await;
                match r {
                    Ok(_) => {}
                    Err(e) if is_unique(&e, "code_hash") => {
                        return Err(DurableError::conflict("code_hash", "code already in use"));
                    }
                    Err(e) if is_unique(&e, "") => {
                        return Err(DurableError::conflict("id", "link id already exists"));
                    }
                    Err(e) if is_foreign_key(&e) => {
                        return Err(DurableError::invalid(
                            "created_by",
                            "no such staff account",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
                self.link(&new.id)
                    .await?
                    .ok_or_else(|| DurableError::Internal("link vanished after insert".into()))
            }

            async fn link(&self, id: &$crate::ids::LinkId) -> Result<Option<Link>, DurableError> {
                let sql = format!("SELECT {LINK_COLS} FROM links WHERE id = $1");
                self.find_one(&sql, id.as_str(), LinkRow::into_link).await
            }

            async fn link_by_code_hash(&self, hash: &str) -> Result<Option<Link>, DurableError> {
                let sql = format!("SELECT {LINK_COLS} FROM links WHERE code_hash = $1");
                self.find_one(&sql, hash, LinkRow::into_link).await
            }

            async fn list_links(
                &self,
                room: Option<&$crate::ids::RoomId>,
            ) -> Result<Vec<Link>, DurableError> {
                self.find_all(
                    sqlx::query_as::<_, LinkRow>(&format!(
                        "SELECT {LINK_COLS} FROM links WHERE ($1 IS NULL OR room_id = $1) \
                         ORDER BY created_at DESC, id"
                    ))
                    .bind(room.map(|r| r.as_str().to_owned())),
                    LinkRow::into_link,
                )
                .await
            }

            async fn revoke_link(&self, id: &$crate::ids::LinkId) -> Result<(), DurableError> {
                let q = sqlx::query("UPDATE links SET revoked = TRUE WHERE id = $1")
                    .bind(id.as_str());
                self.update_one(q, "link").await
            }

            async fn mark_link_used(
                &self,
                id: &$crate::ids::LinkId,
                at: Millis,
            ) -> Result<(), DurableError> {
                let q = sqlx::query(
                    "UPDATE links SET use_count = use_count + 1, \
                     first_used_at = COALESCE(first_used_at, $2) WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(at);
                self.update_one(q, "link").await
            }

            async fn link_device(
                &self,
                id: &$crate::ids::LinkId,
            ) -> Result<Option<String>, DurableError> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT device_hash FROM link_devices WHERE link_id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(h,)| h))
            }

            async fn bind_link_device(
                &self,
                id: &$crate::ids::LinkId,
                device_hash: &str,
                at: Millis,
            ) -> Result<(), DurableError> {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM links WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if exists.is_none() {
                    return Err(DurableError::NotFound { what: "link" });
                }
                sqlx::query(
                    "INSERT INTO link_devices (link_id, device_hash, bound_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (link_id) DO UPDATE SET device_hash = excluded.device_hash, bound_at = excluded.bound_at",
                )
                .bind(id.as_str())
                .bind(device_hash)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_link_store;
