//! The `DurableStore` method bodies, expanded once per store type by
//! [`impl_durable_store!`]. The store type provides `pool` (an `sqlx::Pool`) and
//! `async fn begin_write(&self) -> Result<sqlx::Transaction<'static, DB>, DurableError>`.
//! See `sql.rs` for why one body fits both databases.

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

/// Binds the next nine parameters of a room write (after its id): name, name_norm, kind,
/// waiting_message, max_wait_secs, max_participants, chat_allowed, invites_allowed,
/// opening_hours — the same for insert and update.
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
    };
}

pub(super) use {bind_new_room, bind_new_staff};

macro_rules! impl_durable_store {
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
                let r = $crate::durable::methods::bind_new_staff!(
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

            /// Turn room rows into configs with one query for all their physicians.
            async fn rooms_with_physicians(
                &self,
                rows: Vec<RoomRow>,
            ) -> Result<Vec<$crate::visit::RoomConfig>, DurableError> {
                let links: Vec<RoomPhysicianRow> = sqlx::query_as(
                    "SELECT room_id, staff_id FROM room_physicians ORDER BY room_id, position",
                )
                .fetch_all(&self.pool)
                .await?;
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

            async fn visit_summaries(
                &self,
                f: &VisitFilter,
                limit: i64,
            ) -> Result<Vec<VisitRow>, DurableError> {
                let cols = VISIT_COLS
                    .split(", ")
                    .map(|c| format!("v.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {cols} FROM visits v WHERE {VISIT_FILTER} \
                     ORDER BY v.created_at DESC, v.id LIMIT $5"
                );
                Ok(sqlx::query_as::<_, VisitRow>(&sql)
                    .bind(f.room.as_ref().map(|r| r.as_str().to_owned()))
                    .bind(f.physician.as_ref().map(|p| p.as_str().to_owned()))
                    .bind(f.from)
                    .bind(f.to)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn visit_events(&self, visit_id: &str) -> Result<Vec<EventRow>, DurableError> {
                Ok(sqlx::query_as::<_, EventRow>(&format!(
                    "SELECT {EVENT_COLS} FROM visit_events WHERE visit_id = $1 ORDER BY at, id"
                ))
                .bind(visit_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn visit_record(&self, row: VisitRow) -> Result<VisitRecord, DurableError> {
                let transitions = self
                    .visit_events(&row.id)
                    .await?
                    .iter()
                    .map(EventRow::to_transition)
                    .collect::<Result<Vec<_>, _>>()?;
                row.into_record(transitions)
            }
        }

        #[async_trait::async_trait]
        impl DurableStore for $store {
            async fn ping(&self) -> Result<(), DurableError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            // --- staff -------------------------------------------------------------------

            async fn create_staff(&self, new: NewStaff) -> Result<Staff, DurableError> {
                self.insert_staff(new, None).await
            }

            async fn staff(
                &self,
                id: &$crate::ids::StaffId,
            ) -> Result<Option<Staff>, DurableError> {
                sqlx::query_as::<_, StaffRow>(&format!(
                    "SELECT {STAFF_COLS} FROM staff WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(StaffRow::into_staff)
                .transpose()
            }

            async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>, DurableError> {
                sqlx::query_as::<_, StaffRow>(&format!(
                    "SELECT {STAFF_COLS} FROM staff WHERE email_norm = $1"
                ))
                .bind(normalise_email(email))
                .fetch_optional(&self.pool)
                .await?
                .map(StaffRow::into_staff)
                .transpose()
            }

            async fn list_staff(&self) -> Result<Vec<Staff>, DurableError> {
                sqlx::query_as::<_, StaffRow>(&format!(
                    "SELECT {STAFF_COLS} FROM staff ORDER BY name, id"
                ))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(StaffRow::into_staff)
                .collect()
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
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "staff" });
                }
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
                let r = sqlx::query("UPDATE staff SET last_sign_in_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "staff" });
                }
                Ok(())
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
                sqlx::query_as::<_, SessionRow>(
                    "SELECT id, staff_id, created_at, expires_at, revoked \
                     FROM staff_sessions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(SessionRow::into_session)
                .transpose()
            }

            async fn revoke_session(&self, id: &str) -> Result<(), DurableError> {
                let r = sqlx::query("UPDATE staff_sessions SET revoked = TRUE WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "session" });
                }
                Ok(())
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
                sqlx::query_as::<_, SetupTokenRow>(
                    "SELECT hash, purpose, staff_id, expires_at, used_at \
                     FROM setup_tokens WHERE hash = $1",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?
                .map(SetupTokenRow::into_token)
                .transpose()
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
                let r = $crate::durable::methods::bind_new_staff!(
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

            // --- rooms -------------------------------------------------------------------

            async fn create_room(
                &self,
                new: NewRoom,
            ) -> Result<$crate::visit::RoomConfig, DurableError> {
                let physicians = check_new_room(&new)?;
                let id = $crate::ids::RoomId::new();
                let mut tx = self.begin_write().await?;
                let r = $crate::durable::methods::bind_new_room!(
                    sqlx::query(
                        "INSERT INTO rooms (id, name, name_norm, kind, waiting_message, \
                         max_wait_secs, max_participants, chat_allowed, invites_allowed, \
                         opening_hours, archived, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, FALSE, $11)",
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
                let r = $crate::durable::methods::bind_new_room!(
                    sqlx::query(
                        "UPDATE rooms SET name = $2, name_norm = $3, kind = $4, waiting_message = $5, \
                         max_wait_secs = $6, max_participants = $7, chat_allowed = $8, \
                         invites_allowed = $9, opening_hours = $10 WHERE id = $1",
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
                self.rooms_with_physicians(rows).await
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
                self.rooms_with_physicians(rows).await
            }

            // --- links -------------------------------------------------------------------

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
                let room: Option<(bool,)> =
                    sqlx::query_as("SELECT archived FROM rooms WHERE id = $1")
                        .bind(new.room.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if !matches!(room, Some((false,))) {
                    return Err(DurableError::invalid("room", "no such room in use"));
                }
                let r = sqlx::query(
                    "INSERT INTO links (id, code_hash, kind, room_id, visit_id, patient_name, \
                     patient_ref, reason, lang, not_before, expires_at, created_by, created_at, \
                     revoked, first_used_at, use_count) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     FALSE, NULL, 0)",
                )
                .bind(new.id.as_str())
                .bind(&new.code_hash)
                .bind(new.kind.as_str())
                .bind(new.room.as_str())
                .bind(new.visit.as_str())
                .bind(&new.patient_name)
                .bind(new.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(&new.reason)
                .bind(&new.lang)
                .bind(new.not_before)
                .bind(new.expires_at)
                .bind(new.created_by.as_str())
                .bind(new.created_at)
                .execute(&self.pool)
                .await;
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
                sqlx::query_as::<_, LinkRow>(&format!(
                    "SELECT {LINK_COLS} FROM links WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(LinkRow::into_link)
                .transpose()
            }

            async fn link_by_code_hash(&self, hash: &str) -> Result<Option<Link>, DurableError> {
                sqlx::query_as::<_, LinkRow>(&format!(
                    "SELECT {LINK_COLS} FROM links WHERE code_hash = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?
                .map(LinkRow::into_link)
                .transpose()
            }

            async fn list_links(
                &self,
                room: Option<&$crate::ids::RoomId>,
            ) -> Result<Vec<Link>, DurableError> {
                sqlx::query_as::<_, LinkRow>(&format!(
                    "SELECT {LINK_COLS} FROM links WHERE ($1 IS NULL OR room_id = $1) \
                     ORDER BY created_at DESC, id"
                ))
                .bind(room.map(|r| r.as_str().to_owned()))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(LinkRow::into_link)
                .collect()
            }

            async fn revoke_link(&self, id: &$crate::ids::LinkId) -> Result<(), DurableError> {
                let r = sqlx::query("UPDATE links SET revoked = TRUE WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "link" });
                }
                Ok(())
            }

            async fn mark_link_used(
                &self,
                id: &$crate::ids::LinkId,
                at: Millis,
            ) -> Result<(), DurableError> {
                let r = sqlx::query(
                    "UPDATE links SET use_count = use_count + 1, \
                     first_used_at = COALESCE(first_used_at, $2) WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "link" });
                }
                Ok(())
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

            // --- identity checks and emergency access -----------------------------------

            async fn identity_check(
                &self,
                visit: &$crate::ids::VisitId,
            ) -> Result<Option<$crate::durable::IdentityCheck>, DurableError> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT attempts, confirmed_at FROM visit_identity WHERE visit_id = $1",
                )
                .bind(visit.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(attempts, confirmed_at)| $crate::durable::IdentityCheck {
                    attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                    confirmed_at,
                }))
            }

            async fn take_identity_attempt(
                &self,
                visit: &$crate::ids::VisitId,
                max: u32,
            ) -> Result<Option<u32>, DurableError> {
                if max == 0 {
                    return Ok(None);
                }
                // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes
                // concurrent callers take slots one after another.
                let row: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO visit_identity (visit_id, attempts, confirmed_at) VALUES ($1, 1, NULL) \
                     ON CONFLICT (visit_id) DO UPDATE SET attempts = visit_identity.attempts + 1 \
                     WHERE visit_identity.attempts < $2 AND visit_identity.confirmed_at IS NULL \
                     RETURNING attempts",
                )
                .bind(visit.as_str())
                .bind(max as i64)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(n,)| n.clamp(0, u32::MAX as i64) as u32))
            }

            async fn confirm_identity(
                &self,
                visit: &$crate::ids::VisitId,
                at: Millis,
            ) -> Result<(), DurableError> {
                let r = sqlx::query(
                    "UPDATE visit_identity SET confirmed_at = COALESCE(confirmed_at, $2) \
                     WHERE visit_id = $1",
                )
                .bind(visit.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(DurableError::NotFound { what: "visit" });
                }
                Ok(())
            }

            async fn record_emergency_access(
                &self,
                e: $crate::durable::NewEmergencyAccess,
            ) -> Result<$crate::durable::EmergencyAccess, DurableError> {
                let reason = e.reason.trim().to_owned();
                if reason.is_empty() {
                    return Err(DurableError::invalid("reason", "must not be empty"));
                }
                let id = $crate::ids::random_id();
                sqlx::query(
                    "INSERT INTO emergency_access (id, visit_id, room_id, staff_id, patient_ref, reason, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(e.visit.as_str())
                .bind(e.room.as_str())
                .bind(e.staff.as_str())
                .bind(e.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(&reason)
                .bind(e.at)
                .execute(&self.pool)
                .await
                .map_err(|err| {
                    if is_foreign_key(&err) {
                        DurableError::invalid("staff", "unknown staff member")
                    } else {
                        err.into()
                    }
                })?;
                Ok($crate::durable::EmergencyAccess {
                    id,
                    visit: e.visit,
                    room: e.room,
                    staff: e.staff,
                    patient_ref: e.patient_ref,
                    reason,
                    at: e.at,
                })
            }

            async fn emergency_access_granted(
                &self,
                visit: &$crate::ids::VisitId,
                staff: &$crate::ids::StaffId,
            ) -> Result<bool, DurableError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM emergency_access WHERE visit_id = $1 AND staff_id = $2 LIMIT 1",
                )
                .bind(visit.as_str())
                .bind(staff.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn list_emergency_access(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::durable::EmergencyAccess>, DurableError> {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(String, String, String, String, Option<String>, String, i64)> =
                    sqlx::query_as(
                        "SELECT id, visit_id, room_id, staff_id, patient_ref, reason, at \
                         FROM emergency_access ORDER BY at DESC, id LIMIT $1",
                    )
                    .bind(limit.clamp(0, 1000))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(id, visit, room, staff, patient, reason, at)| {
                        Ok($crate::durable::EmergencyAccess {
                            id,
                            visit: parse_id(&visit, "emergency_access.visit_id")?,
                            room: parse_id(&room, "emergency_access.room_id")?,
                            staff: parse_id(&staff, "emergency_access.staff_id")?,
                            patient_ref: patient
                                .map(|p| parse_id(&p, "emergency_access.patient_ref"))
                                .transpose()?,
                            reason,
                            at,
                        })
                    })
                    .collect()
            }

            // --- visits ------------------------------------------------------------------

            async fn record_visit_event(&self, ev: VisitEvent) -> Result<(), DurableError> {
                let mut tx = self.begin_write().await?;
                // Create or touch the summary row first: in PostgreSQL this locks it, so
                // events of one visit are applied one at a time.
                sqlx::query(
                    "INSERT INTO visits (id, room_id, state, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET id = visits.id",
                )
                .bind(ev.visit.as_str())
                .bind(ev.room.as_str())
                .bind(ev.state.as_str())
                .bind(ev.at)
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO visit_events (visit_id, state, at, actor, physician_id, \
                     patient_ref) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (visit_id, state, at) DO NOTHING",
                )
                .bind(ev.visit.as_str())
                .bind(ev.state.as_str())
                .bind(ev.at)
                .bind(&ev.actor)
                .bind(ev.physician.as_ref().map(|p| p.as_str().to_owned()))
                .bind(ev.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // The same transition again (a retry): nothing changes.
                    tx.rollback().await?;
                    return Ok(());
                }
                let events = sqlx::query_as::<_, EventRow>(&format!(
                    "SELECT {EVENT_COLS} FROM visit_events WHERE visit_id = $1 ORDER BY at, id"
                ))
                .bind(ev.visit.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let s = summarise(&events)?;
                sqlx::query(
                    "UPDATE visits SET state = $2, created_at = $3, admitted_at = $4, \
                     admitted_by = $5, call_started_at = $6, ended_at = $7, outcome = $8, \
                     physician_id = $9, patient_ref = $10 WHERE id = $1",
                )
                .bind(ev.visit.as_str())
                .bind(&s.state)
                .bind(s.created_at)
                .bind(s.admitted_at)
                .bind(&s.admitted_by)
                .bind(s.call_started_at)
                .bind(s.ended_at)
                .bind(&s.outcome)
                .bind(&s.physician_id)
                .bind(&s.patient_ref)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn visit(
                &self,
                id: &$crate::ids::VisitId,
            ) -> Result<Option<VisitRecord>, DurableError> {
                let Some(row) = sqlx::query_as::<_, VisitRow>(&format!(
                    "SELECT {VISIT_COLS} FROM visits WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                Ok(Some(self.visit_record(row).await?))
            }

            async fn list_visits(&self, f: &VisitFilter) -> Result<Vec<VisitRecord>, DurableError> {
                let rows = self
                    .visit_summaries(f, f.limit.unwrap_or(i64::MAX).max(0))
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    out.push(self.visit_record(row).await?);
                }
                Ok(out)
            }

            // --- surveys -----------------------------------------------------------------

            async fn submit_survey(&self, s: NewSurvey) -> Result<(), DurableError> {
                if !(0..=10).contains(&s.score) {
                    return Err(DurableError::invalid("score", "must be between 0 and 10"));
                }
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM visits WHERE id = $1")
                        .bind(s.visit.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if known.is_none() {
                    return Err(DurableError::NotFound { what: "visit" });
                }
                let r = sqlx::query(
                    "INSERT INTO surveys (visit_id, score, comment, at) VALUES ($1, $2, $3, $4)",
                )
                .bind(s.visit.as_str())
                .bind(s.score)
                .bind(&s.comment)
                .bind(s.at)
                .execute(&self.pool)
                .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique(&e, "") => Err(DurableError::conflict(
                        "visit",
                        "a survey was already submitted for this visit",
                    )),
                    Err(e) if is_foreign_key(&e) => Err(DurableError::NotFound { what: "visit" }),
                    Err(e) => Err(e.into()),
                }
            }

            async fn experience(&self, f: &VisitFilter) -> Result<ExperienceStats, DurableError> {
                let visits = self.visit_summaries(f, i64::MAX).await?;
                let mut waits = Vec::new();
                let (mut finished, mut no_shows) = (0u64, 0u64);
                for v in visits.iter() {
                    // Reuse the record's own wait definition.
                    let r = v.clone().into_record(Vec::new())?;
                    if let Some(w) = r.wait_secs {
                        waits.push(w);
                    }
                    if let Some(o) = r.outcome {
                        finished += 1;
                        if o == $crate::visit::VisitState::NoShow {
                            no_shows += 1;
                        }
                    }
                }
                let scores: Vec<(i64,)> = sqlx::query_as(&format!(
                    "SELECT s.score FROM surveys s JOIN visits v ON v.id = s.visit_id \
                     WHERE {VISIT_FILTER}"
                ))
                .bind(f.room.as_ref().map(|r| r.as_str().to_owned()))
                .bind(f.physician.as_ref().map(|p| p.as_str().to_owned()))
                .bind(f.from)
                .bind(f.to)
                .fetch_all(&self.pool)
                .await?;
                let scores: Vec<i64> = scores.into_iter().map(|(s,)| s).collect();
                let counts = stats::NpsCounts::from_scores(&scores);
                Ok(ExperienceStats {
                    nps: counts.nps(),
                    answers: counts.answers(),
                    promoters: counts.promoters,
                    passives: counts.passives,
                    detractors: counts.detractors,
                    median_wait_secs: stats::median(&waits),
                    p90_wait_secs: stats::p90(&waits),
                    no_show_rate: stats::rate(no_shows, finished),
                    visits: visits.len() as u64,
                })
            }

            // --- audit -------------------------------------------------------------------

            async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, DurableError> {
                let mut tx = self.begin_write().await?;
                // Taking the head first locks it (PostgreSQL row lock; SQLite holds the
                // write lock already): appenders queue here, so the chain cannot fork.
                let (seq, prev_hash): (i64, String) = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
                )
                .fetch_one(&mut *tx)
                .await?;
                let entry = AuditEntry::seal(seq, &prev_hash, e);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, patient_ref, visit_id, \
                     sections, outcome, reason, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(entry.seq)
                .bind(entry.at)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(entry.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(entry.visit.as_ref().map(|v| v.as_str().to_owned()))
                .bind(to_json(&entry.sections))
                .bind(entry.outcome.as_str())
                .bind(&entry.reason)
                .bind(&entry.prev_hash)
                .bind(&entry.hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                    .bind(&entry.hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn audit_entries(
                &self,
                after_seq: i64,
                limit: i64,
            ) -> Result<Vec<AuditEntry>, DurableError> {
                sqlx::query_as::<_, AuditRow>(&format!(
                    "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(limit.clamp(0, 1000))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(AuditRow::into_entry)
                .collect()
            }

            async fn verify_audit(&self) -> Result<AuditVerification, DurableError> {
                // Read the head first and only entries up to it, so appends running
                // meanwhile do not look like damage.
                let (head_seq, head_hash): (i64, String) =
                    sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await?;
                // Page through the log so a long one never sits in memory whole.
                let mut verifier = $crate::audit::ChainVerifier::new();
                let mut after = 0i64;
                loop {
                    let page = sqlx::query_as::<_, AuditRow>(&format!(
                        "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 AND seq <= $2 \
                         ORDER BY seq LIMIT 1000"
                    ))
                    .bind(after)
                    .bind(head_seq)
                    .fetch_all(&self.pool)
                    .await?;
                    let Some(last) = page.last().map(|r| r.seq) else {
                        break;
                    };
                    after = last;
                    for row in page {
                        let seq = row.seq;
                        match row.into_entry() {
                            Ok(e) => verifier.push(&e),
                            // A value no entry could hold is tampering too, not a crash.
                            Err(_) => verifier.unreadable(seq),
                        };
                    }
                }
                Ok(verifier.finish(Some((head_seq, head_hash.as_str()))))
            }
        }
    };
}

pub(super) use impl_durable_store;
