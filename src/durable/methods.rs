//! The `DurableStore` implementation for a store type: every area's methods, expanded once
//! per store type by [`impl_durable_store!`]. The store type provides `pool` (an `sqlx::Pool`)
//! and `async fn begin_write(&self) -> Result<sqlx::Transaction<'static, DB>, DurableError>`.
//! See `sql.rs` for why one body fits both databases.

macro_rules! impl_durable_store {
    ($store:ty) => {
        $crate::durable::staff::impl_staff_store!($store);
        $crate::durable::rooms::impl_room_store!($store);
        $crate::durable::links::impl_link_store!($store);
        $crate::durable::chart_access::impl_chart_access_store!($store);
        $crate::durable::visits::impl_visit_store!($store);
        $crate::durable::audit_log::impl_audit_store!($store);
        $crate::durable::directory::impl_directory_store!($store);
        $crate::durable::referrals::impl_referral_store!($store);
        $crate::durable::visit_notes::impl_visit_note_store!($store);
        $crate::durable::appointments::impl_appointment_store!($store);

        impl $store {
            /// The row that `sql` selects with `key` as `$1`, turned into its domain value
            /// by `decode`; `None` when there is none.
            async fn find_one<R, T>(
                &self,
                sql: &str,
                key: &str,
                decode: fn(R) -> Result<T, DurableError>,
            ) -> Result<Option<T>, DurableError>
            where
                R: Send
                    + Unpin
                    + for<'r> sqlx::FromRow<'r, <<$store as StoreDb>::Db as sqlx::Database>::Row>,
            {
                let row = sqlx::query_as::<<$store as StoreDb>::Db, R>(sql)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(decode).transpose()
            }

            /// Every row `q` selects, each turned into its domain value by `decode`.
            async fn find_all<'q, R, T>(
                &self,
                q: sqlx::query::QueryAs<
                    'q,
                    <$store as StoreDb>::Db,
                    R,
                    <<$store as StoreDb>::Db as sqlx::Database>::Arguments<'q>,
                >,
                decode: fn(R) -> Result<T, DurableError>,
            ) -> Result<Vec<T>, DurableError>
            where
                R: Send
                    + Unpin
                    + for<'r> sqlx::FromRow<'r, <<$store as StoreDb>::Db as sqlx::Database>::Row>,
            {
                q.fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(decode)
                    .collect()
            }

            /// Takes the lease `claim` asks for on the due rows of a record-write outbox
            /// (`table`, keyed by `key`); the claimed rows' `returning`.
            ///
            /// One statement: PostgreSQL re-checks the WHERE of a row another claim
            /// updated meanwhile (and skips it, its lease now running); SQLite runs one
            /// writer at a time.
            async fn claim_record_writes<R>(
                &self,
                table: &'static str,
                key: &'static str,
                returning: &str,
                claim: $crate::durable::Claim<'_>,
            ) -> Result<Vec<R>, DurableError>
            where
                R: Send
                    + Unpin
                    + for<'r> sqlx::FromRow<'r, <<$store as StoreDb>::Db as sqlx::Database>::Row>,
            {
                let sql = format!(
                    "UPDATE {table} SET lease_owner = $1, lease_until = $2 \
                     WHERE {key} IN (SELECT {key} FROM {table} \
                        WHERE state = $3 AND next_attempt_at <= $4 \
                        AND (lease_until IS NULL OR lease_until < $4) \
                        ORDER BY next_attempt_at, {key} LIMIT $5) \
                     AND state = $3 AND (lease_until IS NULL OR lease_until < $4) \
                     RETURNING {returning}"
                );
                Ok(sqlx::query_as::<<$store as StoreDb>::Db, R>(&sql)
                    .bind(claim.owner)
                    .bind(claim.lease_until)
                    .bind($crate::durable::record_writes::PENDING)
                    .bind(claim.now)
                    .bind(claim.limit.clamp(0, 1000))
                    .fetch_all(&self.pool)
                    .await?)
            }

            /// Marks `attempt` on the row `id` of a record-write outbox (`table`, keyed by
            /// `key`). `false` when `attempt.owner` no longer holds the lease.
            async fn record_write_failed(
                &self,
                table: &'static str,
                key: &'static str,
                id: &str,
                attempt: $crate::durable::FailedAttempt<'_>,
            ) -> Result<bool, DurableError> {
                use $crate::durable::record_writes::{FAILED, MAX_ERROR_CHARS, PENDING};
                let error: String = attempt.error.chars().take(MAX_ERROR_CHARS).collect();
                let sql = format!(
                    "UPDATE {table} SET attempts = attempts + 1, last_error = $3, \
                     last_attempt_at = $4, next_attempt_at = $5, lease_owner = NULL, \
                     lease_until = NULL, state = $7 \
                     WHERE {key} = $1 AND lease_owner = $2 AND state = $6"
                );
                let done = sqlx::query(&sql)
                    .bind(id)
                    .bind(attempt.owner)
                    .bind(error)
                    .bind(attempt.at)
                    .bind(attempt.next_attempt_at)
                    .bind(PENDING)
                    .bind(if attempt.give_up { FAILED } else { PENDING })
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            /// `Invalid{room}` unless `room` exists and is not archived: what a join link or a
            /// schedule may name. `e` is the pool, or the transaction the write is in.
            async fn room_in_use<'e, E>(e: E, room: &'e $crate::ids::RoomId) -> Result<(), DurableError>
            where
                E: sqlx::Executor<'e, Database = <$store as StoreDb>::Db>,
            {
                let row: Option<(bool,)> =
                    sqlx::query_as("SELECT archived FROM rooms WHERE id = $1")
                        .bind(room.as_str())
                        .fetch_optional(e)
                        .await?;
                if !matches!(row, Some((false,))) {
                    return Err(DurableError::invalid("room", "no such room in use"));
                }
                Ok(())
            }

            /// The one statement that writes a join link, unused and not revoked (a link
            /// made by hand, at an appointment's confirmation, at a referral's acceptance).
            fn insert_link(
                link: &$crate::durable::NewLink,
            ) -> sqlx::query::Query<
                '_,
                <$store as StoreDb>::Db,
                <<$store as StoreDb>::Db as sqlx::Database>::Arguments<'_>,
            > {
                sqlx::query(
                    "INSERT INTO links (id, code_hash, kind, room_id, visit_id, patient_name, \
                     patient_ref, reason, lang, not_before, expires_at, created_by, created_at, \
                     revoked, first_used_at, use_count) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     FALSE, NULL, 0)",
                )
                .bind(link.id.as_str())
                .bind(&link.code_hash)
                .bind(link.kind.as_str())
                .bind(link.room.as_str())
                .bind(link.visit.as_str())
                .bind(&link.patient_name)
                .bind(link.patient_ref.as_ref().map(|p| p.as_str().to_owned()))
                .bind(&link.reason)
                .bind(&link.lang)
                .bind(link.not_before)
                .bind(link.expires_at)
                .bind(link.created_by.as_str())
                .bind(link.created_at)
            }

            /// Runs `q`, an UPDATE of one row by its key; `NotFound{what}` when no row
            /// has that key.
            async fn update_one<'q>(
                &self,
                q: sqlx::query::Query<
                    'q,
                    <$store as StoreDb>::Db,
                    <<$store as StoreDb>::Db as sqlx::Database>::Arguments<'q>,
                >,
                what: &'static str,
            ) -> Result<(), DurableError> {
                let done = q.execute(&self.pool).await?;
                one_changed(done.rows_affected(), what)
            }
        }

        #[async_trait::async_trait]
        impl DurableStore for $store {
            async fn ping(&self) -> Result<(), DurableError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_durable_store;
