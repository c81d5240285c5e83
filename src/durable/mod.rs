//! What must survive a restart: staff accounts and sessions, one-time setup tokens, rooms,
//! join links, visit history, post-visit surveys and the record-access audit log.
//!
//! One trait, [`DurableStore`], with two implementations chosen once by [`open`]: SQLite
//! (embedded, the default: `<server.data_dir>/examroom.db`) and PostgreSQL (several nodes,
//! `database.url = "postgres://…"`). Both run the same SQL (see `sql.rs`) over their own
//! schema (`migrations/sqlite`, `migrations/postgres`, applied at open), so they behave
//! alike; the contract suite in `tests/durable_contract.rs` runs against both.
//!
//! Invariants:
//! - Every multi-statement write is one transaction; nothing is half-written.
//! - Secrets arrive hashed (session ids, setup tokens, link codes); the store never sees
//!   the plain values.
//! - Nothing here logs patient data (patient refs, names, comments, reasons).
//! - Times are `Millis` (unix ms) given by the caller, except `Staff::created_at`.

mod methods;
mod postgres;
mod sql;
mod sqlite;
pub mod stats;

pub use crate::audit::{AuditEntry, AuditOutcome, AuditVerification, NewAuditEntry};
pub use stats::ExperienceStats;

use crate::config::Settings;
use crate::ids::Role;
use crate::ids::{LinkId, PatientRef, RoomId, StaffId, VisitId};
use crate::visit::{Millis, RoomConfig, RoomKind, VisitState};
use serde::{Deserialize, Serialize};
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

impl From<sqlx::migrate::MigrateError> for DurableError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        DurableError::Internal(format!("migration failed: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Staff, sessions, setup tokens

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

// ---------------------------------------------------------------------------------------
// Rooms and links

/// A room as an admin writes it. Limits: non-empty name (≤ 200 chars) unique among
/// non-archived rooms; `physicians` are active staff with the physician role;
/// `max_participants` 2..=8; `max_wait_secs` ≥ 60.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoom {
    pub name: String,
    pub kind: RoomKind,
    pub physicians: Vec<StaffId>,
    pub waiting_message: String,
    pub max_wait_secs: u64,
    pub max_participants: usize,
    pub chat_allowed: bool,
    pub invites_allowed: bool,
    /// Free text shown to patients, e.g. `Mon-Fri 08:00-17:00`.
    pub opening_hours: Option<String>,
}

/// A room with what `RoomConfig` (the state machine's view) does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomDetails {
    pub config: RoomConfig,
    pub opening_hours: Option<String>,
    pub created_at: Millis,
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: LinkId,
    pub code_hash: String,
    pub kind: LinkKind,
    pub room: RoomId,
    pub visit: VisitId,
    pub patient_name: Option<String>,
    pub patient_ref: Option<PatientRef>,
    pub reason: Option<String>,
    pub lang: Option<String>,
    pub not_before: Option<Millis>,
    pub expires_at: Millis,
    pub created_by: StaffId,
    pub created_at: Millis,
    pub revoked: bool,
    pub first_used_at: Option<Millis>,
    pub use_count: i64,
}

// ---------------------------------------------------------------------------------------
// Identity checks and emergency access (who may open a visit's record)

/// A visit's identity check: answers taken (right or wrong) and when the patient confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCheck {
    pub attempts: u32,
    pub confirmed_at: Option<Millis>,
}

/// A physician opens one visit's record around the identity check, with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmergencyAccess {
    pub visit: VisitId,
    pub room: RoomId,
    pub staff: StaffId,
    pub patient_ref: Option<PatientRef>,
    /// Free text from the physician; kept for the admins' review, never logged.
    pub reason: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmergencyAccess {
    pub id: String,
    pub visit: VisitId,
    pub room: RoomId,
    pub staff: StaffId,
    pub patient_ref: Option<PatientRef>,
    pub reason: String,
    pub at: Millis,
}

// ---------------------------------------------------------------------------------------
// Visit history and surveys

/// One transition, as the live visit state machine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitEvent {
    pub visit: VisitId,
    pub room: RoomId,
    pub state: VisitState,
    pub at: Millis,
    /// Who caused it (staff id, participant id, `system`).
    pub actor: Option<String>,
    /// The physician involved (who admitted, who is in the call).
    pub physician: Option<StaffId>,
    pub patient_ref: Option<PatientRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitTransition {
    pub state: VisitState,
    pub at: Millis,
    pub actor: Option<String>,
    pub physician: Option<StaffId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitRecord {
    pub id: VisitId,
    pub room: RoomId,
    /// The latest state reported.
    pub state: VisitState,
    /// First `Waiting` (or the first event, if `Waiting` never arrived).
    pub created_at: Millis,
    pub admitted_at: Option<Millis>,
    pub admitted_by: Option<StaffId>,
    /// First `InCall`.
    pub call_started_at: Option<Millis>,
    /// First final state.
    pub ended_at: Option<Millis>,
    /// The final state, once there is one.
    pub outcome: Option<VisitState>,
    /// The last physician named by any event.
    pub physician: Option<StaffId>,
    pub patient_ref: Option<PatientRef>,
    /// `(admitted_at, else ended_at) - created_at`, seconds.
    pub wait_secs: Option<f64>,
    /// `ended_at - call_started_at`, seconds.
    pub call_secs: Option<f64>,
    /// In time order.
    pub transitions: Vec<VisitTransition>,
}

/// Which visits: all fields optional and combined with AND. `from`/`to` bound
/// `created_at` (`from` inclusive, `to` exclusive). Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitFilter {
    pub room: Option<RoomId>,
    pub physician: Option<StaffId>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    /// Most visits returned by `list_visits`; ignored by `experience`.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSurvey {
    pub visit: VisitId,
    /// 0..=10, "how likely are you to recommend…".
    pub score: i64,
    pub comment: Option<String>,
    pub at: Millis,
}

// ---------------------------------------------------------------------------------------
// The trait

#[async_trait::async_trait]
pub trait DurableStore: Send + Sync + 'static {
    /// Cheap round trip; `Unavailable` when the database cannot be reached.
    async fn ping(&self) -> Result<(), DurableError>;

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

    /// The visit's identity check, if any answer was ever taken.
    async fn identity_check(&self, visit: &VisitId) -> Result<Option<IdentityCheck>, DurableError>;
    /// Takes one answer slot in a single atomic statement, before the answer is compared:
    /// of concurrent callers at most `max` ever get one. The slot's number (1-based), or
    /// `None` when the visit is already confirmed or all `max` slots are taken.
    async fn take_identity_attempt(
        &self,
        visit: &VisitId,
        max: u32,
    ) -> Result<Option<u32>, DurableError>;
    /// Marks the visit's patient confirmed (keeps the first time); `NotFound{visit}` when
    /// no slot was taken.
    async fn confirm_identity(&self, visit: &VisitId, at: Millis) -> Result<(), DurableError>;
    /// Empty reason → `Invalid{reason}`; unknown staff → `Invalid{staff}`.
    async fn record_emergency_access(
        &self,
        e: NewEmergencyAccess,
    ) -> Result<EmergencyAccess, DurableError>;
    /// Whether `staff` was granted emergency access to this visit's record.
    async fn emergency_access_granted(
        &self,
        visit: &VisitId,
        staff: &StaffId,
    ) -> Result<bool, DurableError>;
    /// Newest first, at most `limit` (capped at 1000).
    async fn list_emergency_access(&self, limit: i64)
    -> Result<Vec<EmergencyAccess>, DurableError>;

    /// Appends a transition and updates the visit's summary in one transaction.
    /// Recording the same `(visit, state, at)` twice changes nothing.
    async fn record_visit_event(&self, ev: VisitEvent) -> Result<(), DurableError>;
    async fn visit(&self, id: &VisitId) -> Result<Option<VisitRecord>, DurableError>;
    async fn list_visits(&self, f: &VisitFilter) -> Result<Vec<VisitRecord>, DurableError>;

    /// Score outside 0..=10 → `Invalid{score}`; unknown visit → `NotFound{visit}`;
    /// a second survey for a visit → `Conflict{visit}`.
    async fn submit_survey(&self, s: NewSurvey) -> Result<(), DurableError>;
    /// NPS over surveys of the matching visits; wait and no-show figures over the visits.
    async fn experience(&self, f: &VisitFilter) -> Result<ExperienceStats, DurableError>;

    /// Assigns `seq`, `prev_hash` and `hash` under a lock on the chain head, so concurrent
    /// appends never fork the chain.
    async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, DurableError>;
    /// Entries with `seq > after_seq`, ascending, at most `limit` (capped at 1000).
    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DurableError>;
    /// Re-hashes the whole chain and compares with the stored chain head.
    async fn verify_audit(&self) -> Result<AuditVerification, DurableError>;
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
