//! What must survive a restart: staff accounts and sessions, one-time setup tokens, rooms,
//! join links, visit history, post-visit surveys and the record-access audit log.
//!
//! One port per area, each in its own file with its types, its trait and its SQL:
//! `staff` ([`StaffStore`]: accounts, sessions, setup tokens), `rooms` ([`RoomStore`]),
//! `links` ([`LinkStore`]), `chart_access` ([`ChartAccessStore`]: identity checks,
//! emergency access), `visits` ([`VisitStore`]: history, surveys, statistics),
//! `audit_log` ([`AuditStore`]), `directory` ([`DirectoryStore`]: physician profiles),
//! `referrals` ([`ReferralStore`]), `visit_notes` ([`VisitNoteStore`]: visit notes and
//! their write to the record source) and `appointments` ([`AppointmentStore`]: schedules,
//! appointments, the outbox of notices to patients). [`DurableStore`] is all of them at
//! once, the handle the wiring holds; a use case that needs one area can take
//! `&dyn RoomStore`.
//!
//! Two implementations, chosen once by [`open`]: SQLite (embedded, the default:
//! `<server.data_dir>/examroom.db`) and PostgreSQL (several nodes, `database.url =
//! "postgres://…"`). Both run the same SQL (see `sql.rs`; each area's `impl_*_store!` macro
//! is expanded once per database) over their own schema (`migrations/sqlite`,
//! `migrations/postgres`, applied at open), so they behave alike; the contract suite in
//! `tests/it/durable_contract.rs` runs against both.
//!
//! Invariants:
//! - Every multi-statement write is one transaction; nothing is half-written.
//! - Secrets arrive hashed (session ids, setup tokens, link codes); the store never sees
//!   the plain values.
//! - Nothing here logs patient data (patient refs, names, comments, reasons).
//! - Times are `Millis` (unix ms) given by the caller, except `Staff::created_at`.

pub mod appointments;
mod audit_log;
mod chart_access;
pub mod directory;
mod links;
mod methods;
mod postgres;
mod record_writes;
pub mod referrals;
mod rooms;
mod sql;
mod sqlite;
mod staff;
pub mod stats;
mod visit_notes;
mod visits;

pub use crate::audit::{AuditEntry, AuditOutcome, AuditVerification, NewAuditEntry};
pub use appointments::AppointmentStore;
pub use audit_log::AuditStore;
pub use chart_access::*;
pub use directory::DirectoryStore;
pub use links::*;
pub use record_writes::{Claim, FailedAttempt, PendingWrite};
pub use referrals::ReferralStore;
pub use rooms::*;
pub use staff::*;
pub use stats::ExperienceStats;
pub use visit_notes::{NoteDelivery, SavedNote, StoredVisitNote, VisitNoteStore};
pub use visits::*;

use crate::config::Settings;
use crate::visit::Millis;
use std::sync::Arc;

/// What went wrong. `field` names the input at fault so the edge can point at it.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("expired")]
    Expired,
    #[error("already used")]
    AlreadyUsed,
    /// The database cannot be reached (connection refused, pool timed out). Retryable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl DurableError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DurableError::Invalid {
            field,
            message: message.into(),
        }
    }
    pub(crate) fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        DurableError::Conflict {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for DurableError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DurableError::Unavailable(e.to_string()),
            // A full disk is waited out like a database that is away: the write is refused
            // clearly now (503), and queued history is retried until space returns rather
            // than given up after a few attempts.
            sqlx::Error::Database(db) if storage_full(db.as_ref()) => {
                DurableError::Unavailable(format!("storage full: {db}"))
            }
            other => DurableError::Internal(other.to_string()),
        }
    }
}

/// SQLite's `SQLITE_FULL` (13, also its I/O errors on `ENOSPC`), PostgreSQL's `disk_full`
/// (53100).
fn storage_full(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code();
    let sqlite_full = code
        .as_deref()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 13);
    sqlite_full
        || code.as_deref() == Some("53100")
        || db.message().contains("No space left on device")
}

impl From<sqlx::migrate::MigrateError> for DurableError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        DurableError::Internal(format!("migration failed: {e}"))
    }
}

/// Everything durable, as one handle: each area's port plus a health check. Use cases that
/// need one area take that trait (`&dyn RoomStore`); the wiring holds `Arc<dyn DurableStore>`.
#[async_trait::async_trait]
pub trait DurableStore:
    StaffStore
    + RoomStore
    + LinkStore
    + ChartAccessStore
    + VisitStore
    + AuditStore
    + DirectoryStore
    + ReferralStore
    + VisitNoteStore
    + AppointmentStore
    + Send
    + Sync
    + 'static
{
    /// Cheap round trip; `Unavailable` when the database cannot be reached.
    async fn ping(&self) -> Result<(), DurableError>;
}

/// Open the store the settings name and bring its schema up to date.
///
/// `database.url` empty: SQLite at `<server.data_dir>/examroom.db` (the folder and file are
/// created). `sqlite:…`: that SQLite file. `postgres://…` / `postgresql://…`: PostgreSQL.
pub async fn open(settings: &Settings) -> Result<Arc<dyn DurableStore>, DurableError> {
    let url = settings.database.url.expose();
    if url.is_empty() {
        let dir = &settings.server.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            DurableError::Unavailable(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let store = sqlite::SqliteStore::open_file(&dir.join("examroom.db")).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open_url(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        // Never echo the URL: it may hold a password.
        Err(DurableError::invalid(
            "database.url",
            "must be empty (SQLite in data_dir), sqlite:…, or postgres://…",
        ))
    }
}

/// The store's own clock, used only for `created_at` stamps the caller does not give.
pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod storage_full_tests {
    use super::*;
    use sqlx::{Connection, Executor};

    /// A real `SQLITE_FULL`: the database may not grow past its page limit.
    #[tokio::test]
    async fn a_full_database_is_unavailable_not_an_internal_error() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        c.execute("CREATE TABLE t (x BLOB)").await.unwrap();
        c.execute("PRAGMA max_page_count = 4").await.unwrap();
        let mut refused = None;
        for _ in 0..64 {
            if let Err(e) = c.execute("INSERT INTO t VALUES (zeroblob(2000))").await {
                refused = Some(DurableError::from(e));
                break;
            }
        }
        match refused {
            Some(DurableError::Unavailable(m)) => assert!(m.starts_with("storage full"), "{m}"),
            other => panic!("a full database must be retryable: {other:?}"),
        }
    }
}
