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
