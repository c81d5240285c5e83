//! Appointments (issue 21): physicians' schedules, booked appointments, and the outbox of
//! notices to patients.
//!
//! Invariants the SQL keeps, whatever the callers do:
//! - No two active (pending or confirmed) appointments of one physician occupy the same
//!   time, whatever their lengths: each claims one `appointment_units` row per grid unit of
//!   its visit and buffer (`scheduling::units`) under a unique (physician, unit), in the
//!   transaction that books or moves it; a cancel or a move releases them in its own. So two
//!   concurrent bookers of overlapping times cannot both win, on SQLite and PostgreSQL
//!   alike. A pending hold whose time ran out is marked `expired`, and its units released,
//!   in the next transaction that books or moves an appointment of that physician.
//! - Every change a patient must hear about (booked, moved, cancelled, reminders) writes its
//!   notices in the same transaction as the change; a move or a cancel drops the pending
//!   notices of the old time in that transaction too.
//! - A notice is claimed with one UPDATE that re-checks its lease, so two workers (two
//!   nodes) never hold the same notice; only the holder of the lease may finish it.
//! - Secrets arrive hashed (the manage token); the store never sees the plain values.

use super::{DurableError, LinkKind, NewLink};
use crate::ids::{AppointmentId, LinkId, NoticeId, RoomId, StaffId, VisitId};
use crate::scheduling::{Exception, Schedule, Span, VisitType, VisitTypeKey};
use crate::visit::Millis;

/// A physician's schedule as stored: where booked patients wait, and the hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    pub staff: StaffId,
    /// The physician room booked patients wait in.
    pub room: RoomId,
    pub schedule: Schedule,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentStatus {
    /// Held for the patient until `hold_until`, waiting for the contact code.
    Pending,
    Confirmed,
    Cancelled,
    /// The hold ran out before the code was given.
    Expired,
    /// Confirmed, and the patient never opened the join link before it closed.
    NoShow,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Pending => "pending",
            AppointmentStatus::Confirmed => "confirmed",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Expired => "expired",
            AppointmentStatus::NoShow => "no_show",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            AppointmentStatus::Pending,
            AppointmentStatus::Confirmed,
            AppointmentStatus::Cancelled,
            AppointmentStatus::Expired,
            AppointmentStatus::NoShow,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// An appointment as booked; validated by the caller (`appointments::booking`).
#[derive(Clone, PartialEq, Eq)]
pub struct NewAppointment {
    pub id: AppointmentId,
    pub physician: StaffId,
    pub room: RoomId,
    pub visit_type: VisitTypeKey,
    /// The visit type's name when booked (what the patient was shown).
    pub visit_name: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    /// The end of the time it occupies: `ends_at` and the schedule's buffer.
    pub busy_until: Millis,
    pub hold_until: Millis,
    pub patient_name: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub reason: String,
    pub lang: String,
    pub consent: bool,
    pub created_at: Millis,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: AppointmentId,
    pub physician: StaffId,
    pub room: RoomId,
    pub visit_type: VisitTypeKey,
    pub visit_name: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    /// The end of the time it occupies (its visit and buffer, on the grid).
    pub busy_until: Millis,
    pub status: AppointmentStatus,
    pub hold_until: Millis,
    pub patient_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birth_date: String,
    pub reason: String,
    pub lang: String,
    pub consent: bool,
    pub code_attempts: i64,
    /// The join link made at confirmation.
    pub link: Option<LinkId>,
    pub reminders_off: bool,
    /// Bumped by every move and cancel: notices written for an older one are stale.
    pub sequence: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Appointment {
    /// The patient's join link into the physician's room, open `window` around the start;
    /// made at confirmation, moved with the appointment by the store.
    pub fn join_link(&self, code_hash: String, window: JoinWindow, now: Millis) -> NewLink {
        NewLink {
            id: LinkId::new(),
            code_hash,
            kind: LinkKind::Patient,
            room: self.room.clone(),
            visit: VisitId::new(),
            patient_name: Some(self.patient_name.clone()),
            patient_ref: None,
            reason: Some(self.reason.clone()),
            lang: Some(self.lang.clone()),
            not_before: Some(self.starts_at - window.before_ms),
            expires_at: self.starts_at + window.after_ms,
            created_by: self.physician.clone(),
            created_at: now,
        }
    }
}

// Patient data (name, contacts, birth date, reason) stays out of every Debug line.
impl std::fmt::Debug for Appointment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appointment")
            .field("id", &self.id)
            .field("physician", &self.physician)
            .field("starts_at", &self.starts_at)
            .field("status", &self.status)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewAppointment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAppointment")
            .field("id", &self.id)
            .field("physician", &self.physician)
            .field("starts_at", &self.starts_at)
            .finish_non_exhaustive()
    }
}

/// What a notice says (the outbox row's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The contact code of a pending booking.
    Code,
    Booked,
    Reminder,
    Moved,
    Cancelled,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Code => "code",
            NoticeKind::Booked => "booked",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Moved => "moved",
            NoticeKind::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            NoticeKind::Code,
            NoticeKind::Booked,
            NoticeKind::Reminder,
            NoticeKind::Moved,
            NoticeKind::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub id: NoticeId,
    pub kind: NoticeKind,
    /// Reminders: seconds before the start.
    pub lead_secs: Option<i64>,
    /// `email` or `text` (`notify::Channel`'s wire name).
    pub channel: String,
    pub due_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStatus {
    Pending,
    Sent,
    /// Refused by the courier, or out of attempts: shown to admins.
    Failed,
    /// Stale (the appointment moved, was cancelled, or reminders were turned off).
    Dropped,
}

impl NoticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Pending => "pending",
            NoticeStatus::Sent => "sent",
            NoticeStatus::Failed => "failed",
            NoticeStatus::Dropped => "dropped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            NoticeStatus::Pending,
            NoticeStatus::Sent,
            NoticeStatus::Failed,
            NoticeStatus::Dropped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotice {
    pub id: NoticeId,
    pub appointment: AppointmentId,
    pub kind: NoticeKind,
    pub lead_secs: Option<i64>,
    pub channel: String,
    pub sequence: i64,
    pub due_at: Millis,
    pub status: NoticeStatus,
    /// Deliveries tried so far (each claim counts one).
    pub attempts: i64,
    /// The courier's last error (never an address or a code).
    pub last_error: Option<String>,
    pub done_at: Option<Millis>,
}

/// How a claimed notice ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeOutcome {
    Sent,
    /// Try again at `at`.
    Retry {
        at: Millis,
        error: String,
    },
    Failed {
        error: String,
    },
    Dropped {
        why: String,
    },
}

/// The join window around an appointment's start, for the join link the store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    pub before_ms: Millis,
    pub after_ms: Millis,
}

/// A move or a cancel, with the notices that announce it.
#[derive(Debug, Clone)]
pub struct AppointmentChange {
    pub id: AppointmentId,
    pub now: Millis,
    pub notices: Vec<NewNotice>,
}

/// Appointment counts over a period, for the admin statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppointmentCounts {
    pub confirmed: u64,
    pub cancelled: u64,
    pub no_shows: u64,
}

#[async_trait::async_trait]
pub trait AppointmentStore: Send + Sync {
    /// Replaces the physician's schedule. Unknown staff → `Invalid{staff}`, unknown room →
    /// `Invalid{room}`.
    async fn put_schedule(&self, s: &StoredSchedule) -> Result<(), DurableError>;

    async fn schedule(&self, staff: &StaffId) -> Result<Option<StoredSchedule>, DurableError>;

    async fn list_schedules(&self) -> Result<Vec<StoredSchedule>, DurableError>;

    /// The time occupied (`starts_at`, `busy_until`) by the physician's active appointments
    /// (confirmed, or held past `now`) that start in `[from - 1 day, to + 1 day)`: what
    /// free slots must leave out.
    async fn busy(
        &self,
        physician: &StaffId,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<Vec<(Millis, Millis)>, DurableError>;

    /// Holds the slot as pending and writes its code notices, in one transaction. Any part
    /// of `[starts_at, busy_until)` occupied by an active appointment →
    /// `Conflict{starts_at}` (the unique units decide, not a read).
    async fn book(
        &self,
        new: NewAppointment,
        notices: Vec<NewNotice>,
    ) -> Result<Appointment, DurableError>;

    async fn appointment(&self, id: &AppointmentId) -> Result<Option<Appointment>, DurableError>;

    async fn appointment_by_manage_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Appointment>, DurableError>;

    /// Counts one code attempt of a pending appointment; `Ok(false)` when `max` were used.
    async fn count_code_attempt(&self, id: &AppointmentId, max: i64) -> Result<bool, DurableError>;

    /// Pending → confirmed, with its manage-token hash, its join link and its notices, in
    /// one transaction. Not pending → `Conflict{status}`; hold over → `Expired`.
    async fn confirm(
        &self,
        id: &AppointmentId,
        manage_hash: &str,
        link: NewLink,
        change: AppointmentChange,
    ) -> Result<Appointment, DurableError>;

    /// Moves a confirmed appointment to `[starts_at, ends_at)` occupying until
    /// `busy_until`, in one transaction: the old time is free when it commits, the join
    /// link follows, old pending notices are dropped and `change.notices` written. The new
    /// time overlaps another active appointment → `Conflict{starts_at}`; not confirmed →
    /// `Conflict{status}`.
    async fn reschedule(
        &self,
        starts_at: Millis,
        ends_at: Millis,
        busy_until: Millis,
        window: JoinWindow,
        change: AppointmentChange,
    ) -> Result<Appointment, DurableError>;

    /// Cancels a pending or confirmed appointment (its slot is free at once, its join link
    /// revoked, its pending notices dropped, `change.notices` written). Otherwise
    /// `Conflict{status}`.
    async fn cancel(&self, change: AppointmentChange) -> Result<Appointment, DurableError>;

    /// Stops the appointment's reminders (pending ones are dropped).
    async fn reminders_off(&self, id: &AppointmentId, now: Millis) -> Result<(), DurableError>;

    /// Appointments starting in `[from, to)`, of one physician or all, in time order.
    async fn list_appointments(
        &self,
        physician: Option<&StaffId>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Appointment>, DurableError>;

    /// Claims up to `limit` due notices for `owner` until `now + lease_ms`; each claim
    /// counts an attempt. Two callers never claim one notice while its lease runs.
    async fn claim_notices(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> Result<Vec<StoredNotice>, DurableError>;

    /// Ends a claimed notice; `Ok(false)` when `owner` no longer holds it (its lease ran
    /// out and another worker took it, or a move dropped it).
    async fn finish_notice(
        &self,
        id: &NoticeId,
        owner: &str,
        outcome: NoticeOutcome,
        now: Millis,
    ) -> Result<bool, DurableError>;

    async fn notices_of(&self, id: &AppointmentId) -> Result<Vec<StoredNotice>, DurableError>;

    /// Failed notices, newest first.
    async fn failed_notices(&self, limit: i64) -> Result<Vec<StoredNotice>, DurableError>;

    /// Confirmed appointments whose join link closed by `now` unopened become no-shows;
    /// returns how many.
    async fn mark_appointment_no_shows(&self, now: Millis) -> Result<u64, DurableError>;

    /// Counts of appointments starting in `[from, to)` (any bound absent: open).
    async fn appointment_counts(
        &self,
        physician: Option<&StaffId>,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<AppointmentCounts, DurableError>;
}

// ---------------------------------------------------------------------------------------
// Rows and decoding, shared by both stores.

fn parse_id<T: std::str::FromStr>(s: &str, column: &'static str) -> Result<T, DurableError> {
    s.parse()
        .map_err(|_| DurableError::Internal(format!("malformed identifier in column {column}")))
}

pub(super) const APPOINTMENT_COLS: &str = "id, physician_id, room_id, visit_type, \
     visit_name, starts_at, ends_at, busy_until, status, hold_until, patient_name, email, phone, birth_date, reason, lang, consent, \
     code_attempts, link_id, reminders_off, sequence, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct AppointmentRow {
    id: String,
    physician_id: String,
    room_id: String,
    visit_type: String,
    visit_name: String,
    starts_at: i64,
    ends_at: i64,
    busy_until: i64,
    status: String,
    hold_until: i64,
    patient_name: String,
    email: Option<String>,
    phone: Option<String>,
    birth_date: String,
    reason: String,
    lang: String,
    consent: bool,
    code_attempts: i64,
    link_id: Option<String>,
    reminders_off: bool,
    sequence: i64,
    created_at: i64,
    updated_at: i64,
}

impl AppointmentRow {
    pub(super) fn decode(self) -> Result<Appointment, DurableError> {
        Ok(Appointment {
            id: parse_id(&self.id, "appointments.id")?,
            physician: parse_id(&self.physician_id, "appointments.physician_id")?,
            room: parse_id(&self.room_id, "appointments.room_id")?,
            visit_type: VisitTypeKey::parse(&self.visit_type)
                .map_err(|_| DurableError::Internal("malformed appointments.visit_type".into()))?,
            visit_name: self.visit_name,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            busy_until: self.busy_until,
            status: AppointmentStatus::parse(&self.status)
                .ok_or_else(|| DurableError::Internal("unknown appointment status".into()))?,
            hold_until: self.hold_until,
            patient_name: self.patient_name,
            email: self.email,
            phone: self.phone,
            birth_date: self.birth_date,
            reason: self.reason,
            lang: self.lang,
            consent: self.consent,
            code_attempts: self.code_attempts,
            link: self
                .link_id
                .map(|l| parse_id(&l, "appointments.link_id"))
                .transpose()?,
            reminders_off: self.reminders_off,
            sequence: self.sequence,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(super) const NOTICE_COLS: &str = "id, appointment_id, kind, lead_secs, channel, sequence, \
     due_at, status, attempts, last_error, done_at";

#[derive(sqlx::FromRow)]
pub(super) struct NoticeRow {
    id: String,
    appointment_id: String,
    kind: String,
    lead_secs: Option<i64>,
    channel: String,
    sequence: i64,
    due_at: i64,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    done_at: Option<i64>,
}

impl NoticeRow {
    pub(super) fn decode(self) -> Result<StoredNotice, DurableError> {
        Ok(StoredNotice {
            id: parse_id(&self.id, "appointment_notices.id")?,
            appointment: parse_id(&self.appointment_id, "appointment_notices.appointment_id")?,
            kind: NoticeKind::parse(&self.kind)
                .ok_or_else(|| DurableError::Internal("unknown notice kind".into()))?,
            lead_secs: self.lead_secs,
            channel: self.channel,
            sequence: self.sequence,
            due_at: self.due_at,
            status: NoticeStatus::parse(&self.status)
                .ok_or_else(|| DurableError::Internal("unknown notice status".into()))?,
            attempts: self.attempts,
            last_error: self.last_error,
            done_at: self.done_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ScheduleRow {
    staff_id: String,
    room_id: String,
    zone: String,
    weekly: String,
    exceptions: String,
    visit_mins: i64,
    visit_types: String,
    buffer_mins: i64,
    updated_at: i64,
}

pub(super) const SCHEDULE_COLS: &str = "staff_id, room_id, zone, weekly, exceptions, \
     visit_mins, visit_types, buffer_mins, updated_at";

impl ScheduleRow {
    pub(super) fn decode(self) -> Result<StoredSchedule, DurableError> {
        let bad = |c: &str| DurableError::Internal(format!("malformed schedules.{c}"));
        let weekly: [Vec<Span>; 7] =
            serde_json::from_str(&self.weekly).map_err(|_| bad("weekly"))?;
        let exceptions: Vec<Exception> =
            serde_json::from_str(&self.exceptions).map_err(|_| bad("exceptions"))?;
        let mut visit_types: Vec<VisitType> =
            serde_json::from_str(&self.visit_types).map_err(|_| bad("visit_types"))?;
        if visit_types.is_empty() {
            // Stored before visit types: one, of the schedule's visit length.
            visit_types.push(VisitType::single(chrono::Duration::minutes(
                self.visit_mins,
            )));
        }
        Ok(StoredSchedule {
            staff: parse_id(&self.staff_id, "schedules.staff_id")?,
            room: parse_id(&self.room_id, "schedules.room_id")?,
            schedule: Schedule {
                zone: self.zone.parse().map_err(|_| bad("zone"))?,
                weekly,
                exceptions,
                visit_types,
                buffer: chrono::Duration::minutes(self.buffer_mins),
            },
            updated_at: self.updated_at,
        })
    }
}

/// The sequence a notice belongs to is the appointment's at the time it is written.
pub(super) const INSERT_NOTICE: &str = "INSERT INTO appointment_notices (id, appointment_id, \
     kind, lead_secs, channel, sequence, due_at, status, attempts, created_at) \
     SELECT $1, id, $3, $4, $5, sequence, $6, 'pending', 0, $7 FROM appointments WHERE id = $2";

/// Claims the grid units `[$2, $3)` (steps of `$5`) of physician `$1` for appointment `$4`.
/// The primary key (physician, unit) refuses a unit another active appointment holds: that
/// is the double-booking guard. Units are inserted in ascending order, so two bookers that
/// overlap wait on each other in one order (PostgreSQL) and never deadlock.
pub(super) const CLAIM_UNITS: &str = "WITH RECURSIVE u(t) AS (SELECT $2 UNION ALL \
     SELECT t + $5 FROM u WHERE t + $5 < $3) \
     INSERT INTO appointment_units (physician_id, unit_start, appointment_id) \
     SELECT $1, t, $4 FROM u";

/// Releases every unit an appointment holds.
pub(super) const RELEASE_UNITS: &str = "DELETE FROM appointment_units WHERE appointment_id = $1";

/// Drops the pending notices of an appointment (it moved or was cancelled).
pub(super) const DROP_PENDING_NOTICES: &str = "UPDATE appointment_notices SET status = 'dropped', \
     done_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL \
     WHERE appointment_id = $1 AND status = 'pending'";

macro_rules! impl_appointment_store {
    ($store:ty) => {
        impl $store {
            async fn write_notices(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                id: &$crate::ids::AppointmentId,
                notices: &[$crate::durable::appointments::NewNotice],
                now: Millis,
            ) -> Result<(), DurableError> {
                for n in notices {
                    sqlx::query($crate::durable::appointments::INSERT_NOTICE)
                        .bind(n.id.as_str())
                        .bind(id.as_str())
                        .bind(n.kind.as_str())
                        .bind(n.lead_secs)
                        .bind(&n.channel)
                        .bind(n.due_at)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            async fn appointment_in(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                id: &$crate::ids::AppointmentId,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointments WHERE id = $1",
                    $crate::durable::appointments::APPOINTMENT_COLS
                );
                let row = sqlx::query_as::<_, $crate::durable::appointments::AppointmentRow>(&sql)
                    .bind(id.as_str())
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or(DurableError::NotFound {
                        what: "appointment",
                    })?;
                row.decode()
            }

            /// Locks the appointment's row (PostgreSQL: a confirm, a move and a cancel of one
            /// appointment are applied one after the other) and reads it; not in `status`
            /// → `Conflict{status}`.
            async fn locked_in(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                id: &$crate::ids::AppointmentId,
                status: $crate::durable::appointments::AppointmentStatus,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                sqlx::query("UPDATE appointments SET updated_at = updated_at WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut **tx)
                    .await?;
                let a = Self::appointment_in(tx, id).await?;
                if a.status != status {
                    return Err(DurableError::conflict(
                        "status",
                        format!("the appointment is {}", a.status.as_str()),
                    ));
                }
                Ok(a)
            }

            /// Ends a change: drops the appointment's pending notices (why: `dropped`) when
            /// asked, writes the new ones, commits, and returns the appointment as it is now.
            async fn finish_change(
                mut tx: sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                id: &$crate::ids::AppointmentId,
                dropped: Option<&str>,
                notices: &[$crate::durable::appointments::NewNotice],
                now: Millis,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                if let Some(why) = dropped {
                    sqlx::query($crate::durable::appointments::DROP_PENDING_NOTICES)
                        .bind(id.as_str())
                        .bind(now)
                        .bind(why)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::write_notices(&mut tx, id, notices, now).await?;
                let a = Self::appointment_in(&mut tx, id).await?;
                tx.commit().await?;
                Ok(a)
            }

            /// Marks the physician's holds whose time ran out as expired and releases the
            /// units of every appointment of theirs no longer active, so those times can be
            /// booked again.
            async fn free_lapsed(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                physician: &$crate::ids::StaffId,
                now: Millis,
            ) -> Result<(), DurableError> {
                sqlx::query(
                    "UPDATE appointments SET status = 'expired', updated_at = $2 \
                     WHERE physician_id = $1 AND status = 'pending' AND hold_until <= $2",
                )
                .bind(physician.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM appointment_units WHERE physician_id = $1 AND appointment_id \
                     IN (SELECT id FROM appointments WHERE physician_id = $1 \
                     AND status NOT IN ('pending', 'confirmed'))",
                )
                .bind(physician.as_str())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Claims the units `[starts_at, busy_until)` covers for the appointment; one
            /// held by another active appointment → `Conflict{starts_at}`.
            async fn claim_units(
                tx: &mut sqlx::Transaction<'static, <$store as StoreDb>::Db>,
                physician: &$crate::ids::StaffId,
                id: &$crate::ids::AppointmentId,
                starts_at: Millis,
                busy_until: Millis,
            ) -> Result<(), DurableError> {
                let (first, end) = $crate::scheduling::units(starts_at, busy_until);
                let claimed = sqlx::query($crate::durable::appointments::CLAIM_UNITS)
                    .bind(physician.as_str())
                    .bind(first)
                    .bind(end)
                    .bind(id.as_str())
                    .bind($crate::scheduling::GRID_MS)
                    .execute(&mut **tx)
                    .await;
                match claimed {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique(&e, "") => Err(DurableError::conflict(
                        "starts_at",
                        "this time was just taken",
                    )),
                    Err(e) => Err(e.into()),
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::durable::appointments::AppointmentStore for $store {
            async fn put_schedule(
                &self,
                s: &$crate::durable::appointments::StoredSchedule,
            ) -> Result<(), DurableError> {
                let mut tx = self.begin_write().await?;
                let staff: Option<(String,)> = sqlx::query_as("SELECT id FROM staff WHERE id = $1")
                    .bind(s.staff.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if staff.is_none() {
                    return Err(DurableError::invalid("staff", "no such staff account"));
                }
                Self::room_in_use(&mut *tx, &s.room).await?;
                sqlx::query(
                    "INSERT INTO schedules (staff_id, room_id, zone, weekly, exceptions, \
                     visit_mins, buffer_mins, updated_at, visit_types) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (staff_id) DO UPDATE SET room_id = excluded.room_id, \
                     zone = excluded.zone, weekly = excluded.weekly, \
                     exceptions = excluded.exceptions, visit_mins = excluded.visit_mins, \
                     buffer_mins = excluded.buffer_mins, updated_at = excluded.updated_at, \
                     visit_types = excluded.visit_types",
                )
                .bind(s.staff.as_str())
                .bind(s.room.as_str())
                .bind(s.schedule.zone.name())
                .bind(to_json(&s.schedule.weekly))
                .bind(to_json(&s.schedule.exceptions))
                .bind(
                    s.schedule
                        .default_type()
                        .map_or(0, |t| t.length.num_minutes()),
                )
                .bind(s.schedule.buffer.num_minutes())
                .bind(s.updated_at)
                .bind(to_json(&s.schedule.visit_types))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn schedule(
                &self,
                staff: &$crate::ids::StaffId,
            ) -> Result<Option<$crate::durable::appointments::StoredSchedule>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM schedules WHERE staff_id = $1",
                    $crate::durable::appointments::SCHEDULE_COLS
                );
                self.find_one(
                    &sql,
                    staff.as_str(),
                    $crate::durable::appointments::ScheduleRow::decode,
                )
                .await
            }

            async fn list_schedules(
                &self,
            ) -> Result<Vec<$crate::durable::appointments::StoredSchedule>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM schedules ORDER BY staff_id",
                    $crate::durable::appointments::SCHEDULE_COLS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::appointments::ScheduleRow>(&sql),
                    $crate::durable::appointments::ScheduleRow::decode,
                )
                .await
            }

            async fn busy(
                &self,
                physician: &$crate::ids::StaffId,
                from: Millis,
                to: Millis,
                now: Millis,
            ) -> Result<Vec<(Millis, Millis)>, DurableError> {
                const DAY: i64 = 86_400_000;
                Ok(sqlx::query_as::<_, (i64, i64)>(
                    "SELECT starts_at, busy_until FROM appointments WHERE physician_id = $1 \
                     AND starts_at >= $2 AND starts_at < $3 \
                     AND (status = 'confirmed' OR (status = 'pending' AND hold_until > $4)) \
                     ORDER BY starts_at",
                )
                .bind(physician.as_str())
                .bind(from - DAY)
                .bind(to + DAY)
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn book(
                &self,
                new: $crate::durable::appointments::NewAppointment,
                notices: Vec<$crate::durable::appointments::NewNotice>,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                let mut tx = self.begin_write().await?;
                Self::free_lapsed(&mut tx, &new.physician, new.created_at).await?;
                let r = sqlx::query(
                    "INSERT INTO appointments (id, physician_id, room_id, starts_at, ends_at, \
                     status, hold_until, patient_name, email, phone, birth_date, reason, lang, \
                     consent, code_attempts, link_id, reminders_off, sequence, created_at, \
                     updated_at, visit_type, visit_name, busy_until) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, \
                     $11, $12, $13, 0, NULL, FALSE, 0, $14, $14, $15, $16, $17)",
                )
                .bind(new.id.as_str())
                .bind(new.physician.as_str())
                .bind(new.room.as_str())
                .bind(new.starts_at)
                .bind(new.ends_at)
                .bind(new.hold_until)
                .bind(&new.patient_name)
                .bind(&new.email)
                .bind(&new.phone)
                .bind(&new.birth_date)
                .bind(&new.reason)
                .bind(&new.lang)
                .bind(new.consent)
                .bind(new.created_at)
                .bind(new.visit_type.as_str())
                .bind(&new.visit_name)
                .bind(new.busy_until)
                .execute(&mut *tx)
                .await;
                match r {
                    Ok(_) => {}
                    Err(e) if is_foreign_key(&e) => {
                        return Err(DurableError::invalid(
                            "physician",
                            "no such physician or room",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
                Self::claim_units(
                    &mut tx,
                    &new.physician,
                    &new.id,
                    new.starts_at,
                    new.busy_until,
                )
                .await?;
                Self::finish_change(tx, &new.id, None, &notices, new.created_at).await
            }

            async fn appointment(
                &self,
                id: &$crate::ids::AppointmentId,
            ) -> Result<Option<$crate::durable::appointments::Appointment>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointments WHERE id = $1",
                    $crate::durable::appointments::APPOINTMENT_COLS
                );
                self.find_one(
                    &sql,
                    id.as_str(),
                    $crate::durable::appointments::AppointmentRow::decode,
                )
                .await
            }

            async fn appointment_by_manage_hash(
                &self,
                hash: &str,
            ) -> Result<Option<$crate::durable::appointments::Appointment>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointments WHERE manage_hash = $1",
                    $crate::durable::appointments::APPOINTMENT_COLS
                );
                self.find_one(
                    &sql,
                    hash,
                    $crate::durable::appointments::AppointmentRow::decode,
                )
                .await
            }

            async fn count_code_attempt(
                &self,
                id: &$crate::ids::AppointmentId,
                max: i64,
            ) -> Result<bool, DurableError> {
                // One statement: concurrent guesses each take their own attempt.
                let done = sqlx::query(
                    "UPDATE appointments SET code_attempts = code_attempts + 1 \
                     WHERE id = $1 AND status = 'pending' AND code_attempts < $2",
                )
                .bind(id.as_str())
                .bind(max)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn confirm(
                &self,
                id: &$crate::ids::AppointmentId,
                manage_hash: &str,
                link: NewLink,
                change: $crate::durable::appointments::AppointmentChange,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                let mut tx = self.begin_write().await?;
                let a = Self::locked_in(
                    &mut tx,
                    id,
                    $crate::durable::appointments::AppointmentStatus::Pending,
                )
                .await?;
                if a.hold_until <= change.now {
                    return Err(DurableError::Expired);
                }
                // An appointment's link names no patient record (the booking has none).
                let link = NewLink {
                    patient_ref: None,
                    ..link
                };
                Self::insert_link(&link).execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE appointments SET status = 'confirmed', manage_hash = $2, \
                     link_id = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(manage_hash)
                .bind(link.id.as_str())
                .bind(change.now)
                .execute(&mut *tx)
                .await?;
                Self::finish_change(tx, id, None, &change.notices, change.now).await
            }

            async fn reschedule(
                &self,
                starts_at: Millis,
                ends_at: Millis,
                busy_until: Millis,
                window: $crate::durable::appointments::JoinWindow,
                change: $crate::durable::appointments::AppointmentChange,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                let id = &change.id;
                let mut tx = self.begin_write().await?;
                let a = Self::locked_in(
                    &mut tx,
                    id,
                    $crate::durable::appointments::AppointmentStatus::Confirmed,
                )
                .await?;
                Self::free_lapsed(&mut tx, &a.physician, change.now).await?;
                sqlx::query($crate::durable::appointments::RELEASE_UNITS)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                Self::claim_units(&mut tx, &a.physician, id, starts_at, busy_until).await?;
                sqlx::query(
                    "UPDATE appointments SET starts_at = $2, ends_at = $3, busy_until = $4, \
                     sequence = sequence + 1, updated_at = $5 WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(starts_at)
                .bind(ends_at)
                .bind(busy_until)
                .bind(change.now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE links SET not_before = $2, expires_at = $3 \
                     WHERE id = (SELECT link_id FROM appointments WHERE id = $1)",
                )
                .bind(id.as_str())
                .bind(starts_at - window.before_ms)
                .bind(starts_at + window.after_ms)
                .execute(&mut *tx)
                .await?;
                Self::finish_change(tx, id, Some("moved"), &change.notices, change.now).await
            }

            async fn cancel(
                &self,
                change: $crate::durable::appointments::AppointmentChange,
            ) -> Result<$crate::durable::appointments::Appointment, DurableError> {
                let id = &change.id;
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE appointments SET status = 'cancelled', sequence = sequence + 1, \
                     updated_at = $2 WHERE id = $1 AND status IN ('pending', 'confirmed')",
                )
                .bind(id.as_str())
                .bind(change.now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    let a = Self::appointment_in(&mut tx, id).await?;
                    return Err(DurableError::conflict(
                        "status",
                        format!("the appointment is {}", a.status.as_str()),
                    ));
                }
                sqlx::query(
                    "UPDATE links SET revoked = TRUE \
                     WHERE id = (SELECT link_id FROM appointments WHERE id = $1)",
                )
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query($crate::durable::appointments::RELEASE_UNITS)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                Self::finish_change(tx, id, Some("cancelled"), &change.notices, change.now)
                    .await
            }

            async fn reminders_off(
                &self,
                id: &$crate::ids::AppointmentId,
                now: Millis,
            ) -> Result<(), DurableError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE appointments SET reminders_off = TRUE, updated_at = $2 WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                one_changed(done.rows_affected(), "appointment")?;
                sqlx::query(
                    "UPDATE appointment_notices SET status = 'dropped', done_at = $2, \
                     last_error = 'opted out', lease_owner = NULL, lease_until = NULL \
                     WHERE appointment_id = $1 AND status = 'pending' AND kind = 'reminder'",
                )
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_appointments(
                &self,
                physician: Option<&$crate::ids::StaffId>,
                from: Millis,
                to: Millis,
            ) -> Result<Vec<$crate::durable::appointments::Appointment>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointments WHERE ($1 IS NULL OR physician_id = $1) \
                     AND starts_at >= $2 AND starts_at < $3 ORDER BY starts_at, id",
                    $crate::durable::appointments::APPOINTMENT_COLS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::appointments::AppointmentRow>(&sql)
                        .bind(physician.map(|p| p.as_str().to_owned()))
                        .bind(from)
                        .bind(to),
                    $crate::durable::appointments::AppointmentRow::decode,
                )
                .await
            }

            async fn claim_notices(
                &self,
                owner: &str,
                now: Millis,
                lease_ms: Millis,
                limit: i64,
            ) -> Result<Vec<$crate::durable::appointments::StoredNotice>, DurableError> {
                // The outer WHERE repeats the inner one: PostgreSQL re-checks it against
                // the row as another worker left it (READ COMMITTED), so a notice claimed
                // meanwhile is skipped; SQLite runs one writer at a time anyway.
                let sql = format!(
                    "UPDATE appointment_notices SET lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM appointment_notices WHERE status = 'pending' \
                       AND due_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                       ORDER BY due_at, id LIMIT $4) \
                     AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                     RETURNING {}",
                    $crate::durable::appointments::NOTICE_COLS
                );
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query_as::<_, $crate::durable::appointments::NoticeRow>(&sql)
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows.into_iter()
                    .map($crate::durable::appointments::NoticeRow::decode)
                    .collect()
            }

            async fn finish_notice(
                &self,
                id: &$crate::ids::NoticeId,
                owner: &str,
                outcome: $crate::durable::appointments::NoticeOutcome,
                now: Millis,
            ) -> Result<bool, DurableError> {
                use $crate::durable::appointments::NoticeOutcome as O;
                let (status, due, error): (&str, Option<Millis>, Option<String>) = match outcome {
                    O::Sent => ("sent", None, None),
                    O::Retry { at, error } => ("pending", Some(at), Some(error)),
                    O::Failed { error } => ("failed", None, Some(error)),
                    O::Dropped { why } => ("dropped", None, Some(why)),
                };
                let done = sqlx::query(
                    "UPDATE appointment_notices SET status = $3, \
                     due_at = COALESCE($4, due_at), last_error = COALESCE($5, last_error), \
                     done_at = CASE WHEN $3 = 'pending' THEN NULL ELSE $6 END, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                )
                .bind(id.as_str())
                .bind(owner)
                .bind(status)
                .bind(due)
                .bind(error)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn notices_of(
                &self,
                id: &$crate::ids::AppointmentId,
            ) -> Result<Vec<$crate::durable::appointments::StoredNotice>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointment_notices WHERE appointment_id = $1 \
                     ORDER BY created_at, due_at, id",
                    $crate::durable::appointments::NOTICE_COLS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::appointments::NoticeRow>(&sql)
                        .bind(id.as_str()),
                    $crate::durable::appointments::NoticeRow::decode,
                )
                .await
            }

            async fn failed_notices(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::durable::appointments::StoredNotice>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM appointment_notices WHERE status = 'failed' \
                     ORDER BY done_at DESC, id LIMIT $1",
                    $crate::durable::appointments::NOTICE_COLS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::appointments::NoticeRow>(&sql)
                        .bind(limit),
                    $crate::durable::appointments::NoticeRow::decode,
                )
                .await
            }

            async fn mark_appointment_no_shows(&self, now: Millis) -> Result<u64, DurableError> {
                let done = sqlx::query(
                    "UPDATE appointments SET status = 'no_show', updated_at = $1 \
                     WHERE status = 'confirmed' AND link_id IN \
                     (SELECT id FROM links WHERE first_used_at IS NULL AND expires_at <= $1)",
                )
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn appointment_counts(
                &self,
                physician: Option<&$crate::ids::StaffId>,
                from: Option<Millis>,
                to: Option<Millis>,
            ) -> Result<$crate::durable::appointments::AppointmentCounts, DurableError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM appointments \
                     WHERE ($1 IS NULL OR physician_id = $1) \
                     AND ($2 IS NULL OR starts_at >= $2) AND ($3 IS NULL OR starts_at < $3) \
                     GROUP BY status",
                )
                .bind(physician.map(|p| p.as_str().to_owned()))
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let mut c = $crate::durable::appointments::AppointmentCounts::default();
                for (status, n) in rows {
                    let n = n.max(0) as u64;
                    match status.as_str() {
                        // A no-show was confirmed too.
                        "confirmed" => c.confirmed += n,
                        "no_show" => {
                            c.no_shows += n;
                            c.confirmed += n;
                        }
                        "cancelled" => c.cancelled += n,
                        _ => {}
                    }
                }
                Ok(c)
            }
        }
    };
}

pub(super) use impl_appointment_store;
