//! PostgreSQL: for clinics running several examroom nodes against one database.
//!
//! Transactions run at READ COMMITTED; where order matters the first statement of a
//! transaction locks the row that serialises writers (the audit chain head, a visit's
//! summary row). Migrations take sqlx's advisory lock, so nodes starting together are safe.

use super::methods::impl_durable_store;
use super::sql::*;
use super::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use std::time::Duration;

pub(super) struct PgStore {
    pool: PgPool,
}

impl StoreDb for PgStore {
    type Db = Postgres;
}

impl PgStore {
    pub(super) async fn open(url: &str) -> Result<Self, DurableError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            // sqlx's connect errors name the host, never the password.
            .map_err(|e| DurableError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, DurableError> {
        Ok(self.pool.begin().await?)
    }

    /// A write transaction on `staff` that no other writer can interleave with: the
    /// table lock lets readers on but holds every other insert or update of `staff`
    /// (and every other such transaction) until this one ends.
    async fn begin_staff_write(&self) -> Result<Transaction<'static, Postgres>, DurableError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE staff IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl_durable_store!(PgStore);
