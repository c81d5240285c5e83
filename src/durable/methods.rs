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
