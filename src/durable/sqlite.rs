//! SQLite: the embedded default, one file in `server.data_dir`.
//!
//! WAL journal (readers do not block the writer), foreign keys on, a busy timeout so
//! concurrent writers queue instead of failing, and write transactions opened with
//! `BEGIN IMMEDIATE` so they take the write lock up front.

use super::methods::impl_durable_store;
use super::sql::*;
use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub(super) struct SqliteStore {
    pool: SqlitePool,
}

impl StoreDb for SqliteStore {
    type Db = Sqlite;
}

impl SqliteStore {
    pub(super) async fn open_file(path: &Path) -> Result<Self, DurableError> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    pub(super) async fn open_url(url: &str) -> Result<Self, DurableError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| DurableError::invalid("database.url", "not a valid sqlite: URL"))?;
        Self::open_with(opts).await
    }

    async fn open_with(opts: SqliteConnectOptions) -> Result<Self, DurableError> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: each commit is on disk before it returns, so a transition a participant
            // was told about or an audited read survives power loss, not only a killed
            // process (NORMAL + WAL may lose the last commits to an OS crash; docs/deploy.md).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| DurableError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, DurableError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// A write transaction on `staff` that no other writer can interleave with:
    /// `BEGIN IMMEDIATE` already serialises every SQLite writer.
    async fn begin_staff_write(&self) -> Result<Transaction<'static, Sqlite>, DurableError> {
        self.begin_write().await
    }
}

impl_durable_store!(SqliteStore);
