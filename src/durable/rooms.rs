//! Rooms as admins configure them, and which physicians serve each.

use super::DurableError;
use crate::ids::{RoomId, StaffId};
use crate::visit::{Millis, RoomConfig, RoomKind};
use serde::{Deserialize, Serialize};

/// A room as an admin writes it. Limits: non-empty name (≤ 200 chars) unique among
/// non-archived rooms; `physicians` are active staff with the physician role;
/// `max_participants` 2..=8; `max_wait_secs` ≥ 60.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoom {
    pub name: String,
    pub kind: RoomKind,
    pub physicians: Vec<StaffId>,
    pub waiting_message: String,
    /// The waiting message in other languages, by language tag.
    pub waiting_messages: std::collections::BTreeMap<String, String>,
    pub max_wait_secs: u64,
    pub max_participants: usize,
    pub chat_allowed: bool,
    pub invites_allowed: bool,
    /// Free text shown to patients, e.g. `Mon-Fri 08:00-17:00`.
    pub opening_hours: Option<String>,
}

impl NewRoom {
    /// A room with the settings the admin API gives when only the name, kind and
    /// physicians are sent: no waiting message, 30 minutes' wait, four participants, chat
    /// and invitations on, no opening hours. Callers override what they need with `..`.
    pub fn with_defaults(name: &str, kind: RoomKind, physicians: Vec<StaffId>) -> Self {
        NewRoom {
            name: name.into(),
            kind,
            physicians,
            waiting_message: String::new(),
            waiting_messages: Default::default(),
            max_wait_secs: 1800,
            max_participants: 4,
            chat_allowed: true,
            invites_allowed: true,
            opening_hours: None,
        }
    }
}

/// A room with what `RoomConfig` (the state machine's view) does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomDetails {
    pub config: RoomConfig,
    pub opening_hours: Option<String>,
    pub created_at: Millis,
}

/// Room configuration.
#[async_trait::async_trait]
pub trait RoomStore: Send + Sync {
    async fn create_room(&self, new: NewRoom) -> Result<RoomConfig, DurableError>;

    /// Replaces the configuration (archived rooms too); `NotFound{room}`.
    async fn update_room(&self, id: &RoomId, new: NewRoom) -> Result<RoomConfig, DurableError>;

    /// Idempotent; `NotFound{room}`. Archived rooms keep their history and links.
    async fn archive_room(&self, id: &RoomId) -> Result<(), DurableError>;

    async fn room(&self, id: &RoomId) -> Result<Option<RoomConfig>, DurableError>;

    /// The room with its opening hours and creation time.
    async fn room_details(&self, id: &RoomId) -> Result<Option<RoomDetails>, DurableError>;

    /// Ordered by name.
    async fn list_rooms(&self, include_archived: bool) -> Result<Vec<RoomConfig>, DurableError>;

    /// Non-archived rooms listing `staff` among their physicians.
    async fn rooms_for_physician(&self, staff: &StaffId) -> Result<Vec<RoomConfig>, DurableError>;
}

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

/// Binds the next ten parameters of a room write (after its id): name, name_norm, kind,
/// waiting_message, max_wait_secs, max_participants, chat_allowed, invites_allowed,
/// opening_hours, waiting_messages (JSON) — the same for insert and update.
macro_rules! bind_new_room {
    ($query:expr, $new:expr) => {
        $query
            .bind($new.name.trim())
            .bind($new.name.trim().to_lowercase())
            .bind($new.kind.as_str())
            .bind(&$new.waiting_message)
            .bind($new.max_wait_secs as i64)
            .bind($new.max_participants as i64)
            .bind($new.chat_allowed)
            .bind($new.invites_allowed)
            .bind(&$new.opening_hours)
            .bind(
                // Invariant: a map of strings always serialises.
                serde_json::to_string(&$new.waiting_messages).expect("string maps serialise"),
            )
    };
}

pub(super) use bind_new_room;

macro_rules! impl_room_store {
    ($store:ty) => {
        impl $store {
            async fn room_physicians(
                &self,
                room_id: &str,
            ) -> Result<Vec<$crate::ids::StaffId>, DurableError> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT staff_id FROM room_physicians WHERE room_id = $1 ORDER BY position",
                )
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|(s,)| parse_id(s, "room_physicians.staff_id"))
                    .collect()
            }

            /// Turn room rows into configs with one query for all their physicians: of every
            /// room, or (`of_physician`) only of the rooms that physician serves — a physician's
            /// sign-in then reads their own rooms' lists, not the whole clinic's.
            async fn rooms_with_physicians(
                &self,
                rows: Vec<RoomRow>,
                of_physician: Option<&$crate::ids::StaffId>,
            ) -> Result<Vec<$crate::visit::RoomConfig>, DurableError> {
                let links: Vec<RoomPhysicianRow> = match of_physician {
                    None => {
                        sqlx::query_as(
                            "SELECT room_id, staff_id FROM room_physicians \
                             ORDER BY room_id, position",
                        )
                        .fetch_all(&self.pool)
                        .await?
                    }
                    Some(staff) => {
                        sqlx::query_as(
                            "SELECT room_id, staff_id FROM room_physicians WHERE room_id IN \
                             (SELECT room_id FROM room_physicians WHERE staff_id = $1) \
                             ORDER BY room_id, position",
                        )
                        .bind(staff.as_str())
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                let mut by_room: std::collections::HashMap<String, Vec<$crate::ids::StaffId>> =
                    std::collections::HashMap::new();
                for l in links {
                    by_room
                        .entry(l.room_id)
                        .or_default()
                        .push(parse_id(&l.staff_id, "room_physicians.staff_id")?);
                }
                rows.iter()
                    .map(|r| r.to_config(by_room.remove(&r.id).unwrap_or_default()))
                    .collect()
            }

            /// Check `physicians` name active physicians and write the room's list, inside `tx`.
            async fn write_room_physicians(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                room_id: &str,
                physicians: &[$crate::ids::StaffId],
            ) -> Result<(), DurableError> {
                for p in physicians {
                    let row: Option<(String, bool)> =
                        sqlx::query_as("SELECT roles, active FROM staff WHERE id = $1")
                            .bind(p.as_str())
                            .fetch_optional(&mut **tx)
                            .await?;
                    let ok = match row {
                        Some((roles, active)) => is_active_physician(&roles, active)?,
                        None => false,
                    };
                    if !ok {
                        return Err(DurableError::invalid(
                            "physicians",
                            format!("{p} is not an active physician"),
                        ));
                    }
                }
                sqlx::query("DELETE FROM room_physicians WHERE room_id = $1")
                    .bind(room_id)
                    .execute(&mut **tx)
                    .await?;
                for (i, p) in physicians.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO room_physicians (room_id, staff_id, position) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(room_id)
                    .bind(p.as_str())
                    .bind(i as i64)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl RoomStore for $store {
            async fn create_room(
                &self,
                new: NewRoom,
            ) -> Result<$crate::visit::RoomConfig, DurableError> {
                let physicians = check_new_room(&new)?;
                let id = $crate::ids::RoomId::new();
                let mut tx = self.begin_write().await?;
                let r = $crate::durable::rooms::bind_new_room!(
                    sqlx::query(
                        "INSERT INTO rooms (id, name, name_norm, kind, waiting_message, \
                         max_wait_secs, max_participants, chat_allowed, invites_allowed, \
                         opening_hours, waiting_messages, archived, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE, $12)",
                    )
                    .bind(id.as_str()),
                    new
                )
                .bind(now_millis())
                .execute(&mut *tx)
                .await;
                match r {
                    Err(e) if is_unique(&e, "name") => return Err(room_name_taken()),
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                Self::write_room_physicians(&mut tx, id.as_str(), &physicians).await?;
                tx.commit().await?;
                self.room(&id)
                    .await?
                    .ok_or_else(|| DurableError::Internal("room vanished after insert".into()))
            }

            async fn update_room(
                &self,
                id: &$crate::ids::RoomId,
                new: NewRoom,
            ) -> Result<$crate::visit::RoomConfig, DurableError> {
                let physicians = check_new_room(&new)?;
                let mut tx = self.begin_write().await?;
                let r = $crate::durable::rooms::bind_new_room!(
                    sqlx::query(
                        "UPDATE rooms SET name = $2, name_norm = $3, kind = $4, waiting_message = $5, \
                         max_wait_secs = $6, max_participants = $7, chat_allowed = $8, \
                         invites_allowed = $9, opening_hours = $10, waiting_messages = $11 \
                         WHERE id = $1",
                    )
                    .bind(id.as_str()),
                    new
                )
                .execute(&mut *tx)
                .await;
                match r {
                    Err(e) if is_unique(&e, "name") => return Err(room_name_taken()),
                    Err(e) => return Err(e.into()),
                    Ok(r) if r.rows_affected() == 0 => {
                        return Err(DurableError::NotFound { what: "room" });
                    }
                    Ok(_) => {}
                }
                Self::write_room_physicians(&mut tx, id.as_str(), &physicians).await?;
                tx.commit().await?;
                self.room(id)
                    .await?
                    .ok_or(DurableError::NotFound { what: "room" })
            }

            async fn archive_room(&self, id: &$crate::ids::RoomId) -> Result<(), DurableError> {
                let r = sqlx::query("UPDATE rooms SET archived = TRUE WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "room" });
                }
                Ok(())
            }

            async fn room(
                &self,
                id: &$crate::ids::RoomId,
            ) -> Result<Option<$crate::visit::RoomConfig>, DurableError> {
                Ok(self.room_details(id).await?.map(|d| d.config))
            }

            async fn room_details(
                &self,
                id: &$crate::ids::RoomId,
            ) -> Result<Option<RoomDetails>, DurableError> {
                let Some(row) = sqlx::query_as::<_, RoomRow>(&format!(
                    "SELECT {ROOM_COLS} FROM rooms WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                let physicians = self.room_physicians(&row.id).await?;
                Ok(Some(RoomDetails {
                    config: row.to_config(physicians)?,
                    opening_hours: row.opening_hours.clone(),
                    created_at: row.created_at,
                }))
            }

            async fn list_rooms(
                &self,
                include_archived: bool,
            ) -> Result<Vec<$crate::visit::RoomConfig>, DurableError> {
                let rows = sqlx::query_as::<_, RoomRow>(&format!(
                    "SELECT {ROOM_COLS} FROM rooms WHERE ($1 OR archived = FALSE) \
                     ORDER BY name_norm, id"
                ))
                .bind(include_archived)
                .fetch_all(&self.pool)
                .await?;
                self.rooms_with_physicians(rows, None).await
            }

            async fn rooms_for_physician(
                &self,
                staff: &$crate::ids::StaffId,
            ) -> Result<Vec<$crate::visit::RoomConfig>, DurableError> {
                let rows = sqlx::query_as::<_, RoomRow>(&format!(
                    "SELECT {ROOM_COLS} FROM rooms WHERE archived = FALSE AND id IN \
                     (SELECT room_id FROM room_physicians WHERE staff_id = $1) \
                     ORDER BY name_norm, id"
                ))
                .bind(staff.as_str())
                .fetch_all(&self.pool)
                .await?;
                self.rooms_with_physicians(rows, Some(staff)).await
            }
        }
    };
}

pub(super) use impl_room_store;
