//! Appointments (issue 21): patients book a physician's free slot, prove their contact
//! with a code, then view, move or cancel through a manage link; physicians and admins see,
//! move and cancel; notices go out through the outbox ([`outbox`]).
//!
//! The flow:
//! 1. [`Appointments::book`] checks the input, the rate limits and that the time is a free
//!    slot of the physician's schedule (`scheduling::availability`), then holds it as
//!    *pending* for `appointments.hold_mins` and writes a code notice per channel, in one
//!    transaction. Two bookers of one slot: the store's unique index lets one win; the
//!    other gets [`AppointmentError::SlotTaken`].
//! 2. [`Appointments::confirm`] takes the code (limited attempts, only while held) and
//!    makes the appointment *confirmed*, with its join link (open from `join_before_mins`
//!    before the start to `join_after_mins` after it) and its confirmation and reminder
//!    notices, in one transaction.
//! 3. The manage token (derived, see [`secrets`]) views, moves (atomically) or cancels.
//!
//! Invariants:
//! - Nothing is written before the whole input is valid.
//! - No patient data in a log line: ids and times only.
//! - No notice carries the reason for the visit (the courier port's rule too).

pub mod contact;
pub mod outbox;
pub mod secrets;

use crate::config::AppointmentsSettings;
use crate::durable::appointments::{
    Appointment, AppointmentChange, AppointmentStatus, JoinWindow, NewAppointment, NewNotice,
    NoticeKind, StoredSchedule,
};
use crate::durable::{DurableError, DurableStore, Staff};
use crate::ids::{AppointmentId, NoticeId, Role, StaffId, VisitId};
use crate::live::Counters;
use crate::notify::{Channel, Courier};
use crate::protocol::ApiErrorCode;
use crate::scheduling::{Schedule, ScheduleError, Slot, VisitType, VisitTypeKey};
use crate::visit::Millis;
use chrono::{DateTime, Utc};
use contact::FieldError;
use secrets::{AppointmentKey, stored_hash};
use std::sync::Arc;
use std::time::Duration;

/// The longest window of free slots one listing may ask for, days.
pub const MAX_LISTING_DAYS: i64 = 31;

/// Why an appointment request was refused. The messages are what the person is told.
#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("this time was just taken; please pick another")]
    SlotTaken,
    #[error("{0}")]
    SlotUnavailable(String),
    #[error("no such physician takes appointments")]
    UnknownPhysician,
    #[error("no such appointment")]
    UnknownAppointment,
    #[error("reminders are off: this server cannot send a code to {0}")]
    RemindersOff(&'static str),
    #[error("too many bookings; try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("wrong code; {left} tries left")]
    WrongCode { left: i64 },
    #[error("too many wrong codes; please book again")]
    CodeAttemptsUsed,
    #[error("the time held for you ran out; please book again")]
    HoldExpired,
    #[error("this appointment is {0}")]
    Closed(&'static str),
    #[error("this is not your appointment")]
    NotYours,
    #[error(transparent)]
    Store(#[from] DurableError),
}

impl AppointmentError {
    pub fn code(&self) -> ApiErrorCode {
        use AppointmentError as E;
        match self {
            E::Invalid(_) => ApiErrorCode::InvalidField,
            E::SlotTaken => ApiErrorCode::SlotTaken,
            E::SlotUnavailable(_) => ApiErrorCode::SlotUnavailable,
            E::UnknownPhysician => ApiErrorCode::NotFound,
            E::UnknownAppointment => ApiErrorCode::UnknownAppointment,
            E::RemindersOff(_) => ApiErrorCode::RemindersOff,
            E::RateLimited(_) => ApiErrorCode::RateLimited,
            E::WrongCode { .. } => ApiErrorCode::WrongCode,
            E::CodeAttemptsUsed => ApiErrorCode::CodeAttemptsUsed,
            E::HoldExpired => ApiErrorCode::HoldExpired,
            E::Closed(_) => ApiErrorCode::AppointmentClosed,
            E::NotYours => ApiErrorCode::NotYourVisits,
            E::Store(_) => ApiErrorCode::Internal,
        }
    }

    fn unavailable(why: impl Into<String>) -> Self {
        AppointmentError::SlotUnavailable(why.into())
    }
}

/// The settings booking follows, in milliseconds where they are times.
#[derive(Debug, Clone)]
pub struct Rules {
    pub reminder_offsets_ms: Vec<Millis>,
    pub join: JoinWindow,
    pub hold_ms: Millis,
    pub code_attempts: i64,
    pub per_ip_per_hour: u32,
    pub per_contact_per_day: u32,
    pub book_ahead_ms: Millis,
}

impl Rules {
    pub fn from_settings(s: &AppointmentsSettings) -> Self {
        const MIN: Millis = 60_000;
        Rules {
            reminder_offsets_ms: s
                .reminder_offsets_mins
                .iter()
                .map(|m| *m as Millis * MIN)
                .collect(),
            join: JoinWindow {
                before_ms: s.join_before_mins as Millis * MIN,
                after_ms: s.join_after_mins as Millis * MIN,
            },
            hold_ms: s.hold_mins as Millis * MIN,
            code_attempts: i64::from(s.code_attempts),
            per_ip_per_hour: s.bookings_per_ip_per_hour,
            per_contact_per_day: s.bookings_per_contact_per_day,
            book_ahead_ms: s.book_ahead_days as Millis * 24 * 60 * MIN,
        }
    }
}

/// A physician who takes appointments, as the booking page lists them.
#[derive(Debug, Clone)]
pub struct Bookable {
    pub staff: Staff,
    pub schedule: StoredSchedule,
}

/// What the booking page filters physicians by (what walk-in pairing knows of staff).
#[derive(Debug, Clone, Default)]
pub struct PhysicianFilter {
    pub physician: Option<StaffId>,
    /// A language the physician speaks (`es`).
    pub language: Option<String>,
    pub gender: Option<String>,
}

/// A booking as the patient sent it; checked by [`Appointments::book`].
#[derive(Clone, Default)]
pub struct BookingRequest {
    pub physician: StaffId,
    /// One of the physician's visit types; `None`: the schedule's first.
    pub visit_type: Option<VisitTypeKey>,
    pub starts_at: Millis,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birth_date: String,
    pub reason: String,
    pub lang: String,
    pub consent: bool,
}

/// A held booking: the code went to `channels`.
#[derive(Debug, Clone)]
pub struct Held {
    pub appointment: Appointment,
    pub channels: Vec<Channel>,
}

/// A confirmed booking and its links (the manage token is shown once, here and in the
/// confirmation notice).
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub appointment: Appointment,
    pub manage_url: String,
    pub join_url: String,
}

/// An appointment in a staff list, with the visit its join link opens (once confirmed).
#[derive(Debug, Clone)]
pub struct Listed {
    pub appointment: Appointment,
    pub visit: Option<VisitId>,
}

/// Who acts on an appointment from the staff side.
#[derive(Debug, Clone, Copy)]
pub struct StaffActor<'a> {
    pub staff: &'a StaffId,
    pub admin: bool,
}

/// The appointment service: one per node, shared by the HTTP edge and the outbox.
pub struct Appointments {
    durable: Arc<dyn DurableStore>,
    courier: Option<Arc<dyn Courier>>,
    counters: Arc<dyn Counters>,
    key: AppointmentKey,
    rules: Rules,
    public_url: String,
    /// Pokes the outbox worker when a notice is due now (a code, a confirmation).
    wake: Arc<tokio::sync::Notify>,
}

fn millis(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

fn instant(ms: Millis) -> Result<DateTime<Utc>, AppointmentError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| AppointmentError::unavailable("not a time"))
}

impl Appointments {
    pub fn new(
        durable: Arc<dyn DurableStore>,
        courier: Option<Arc<dyn Courier>>,
        counters: Arc<dyn Counters>,
        key: AppointmentKey,
        rules: Rules,
        public_url: String,
    ) -> Self {
        Appointments {
            durable,
            courier,
            counters,
            key,
            rules,
            public_url,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn key(&self) -> &AppointmentKey {
        &self.key
    }

    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// The channels notices can go out on; empty means reminders are off.
    pub fn channels(&self) -> Vec<Channel> {
        self.courier
            .as_ref()
            .map(|c| c.channels())
            .unwrap_or_default()
    }

    pub fn manage_url(&self, id: &AppointmentId) -> String {
        format!("{}/manage/{}", self.public_url, self.key.manage_token(id))
    }

    pub fn join_url(&self, id: &AppointmentId) -> String {
        format!("{}/join/{}", self.public_url, self.key.join_code(id))
    }

    // --- schedules ---------------------------------------------------------------------

    /// Sets a physician's schedule: an admin for anyone, a physician for themself. The room
    /// must be one of the physician's rooms.
    pub async fn set_schedule(
        &self,
        staff: &StaffId,
        room: crate::ids::RoomId,
        schedule: Schedule,
        now: Millis,
    ) -> Result<StoredSchedule, AppointmentError> {
        schedule.validate().map_err(schedule_field)?;
        let who = self
            .durable
            .staff(staff)
            .await?
            .filter(|s| s.active && s.roles.contains(&Role::Physician))
            .ok_or(AppointmentError::UnknownPhysician)?;
        let rooms = self.durable.rooms_for_physician(&who.id).await?;
        if !rooms.iter().any(|r| r.id == room) {
            return Err(FieldError {
                field: "room",
                message: "must be a room the physician is assigned to".into(),
            }
            .into());
        }
        let stored = StoredSchedule {
            staff: who.id,
            room,
            schedule,
            updated_at: now,
        };
        self.durable.put_schedule(&stored).await?;
        tracing::info!(staff = %stored.staff, "schedule set");
        Ok(stored)
    }

    // --- public listing ----------------------------------------------------------------

    /// Physicians who take appointments, filtered.
    pub async fn bookable(
        &self,
        filter: &PhysicianFilter,
    ) -> Result<Vec<Bookable>, AppointmentError> {
        let staff = self.durable.list_staff().await?;
        let mut out = Vec::new();
        for schedule in self.durable.list_schedules().await? {
            let Some(s) = staff.iter().find(|s| s.id == schedule.staff) else {
                continue;
            };
            // A physician with a directory profile chose what of their gender and languages
            // is public: the booking list neither shows nor filters on what they kept back
            // (a filter would tell by omission). Without a profile, the account's own fields
            // serve, as walk-in pairing uses them.
            let mut s = s.clone();
            if let Some(p) = self.durable.profile(&s.id).await? {
                if !p.publish.gender {
                    s.gender = None;
                }
                if !p.publish.languages {
                    s.languages.clear();
                }
            }
            let wanted = s.active
                && s.roles.contains(&Role::Physician)
                && filter.physician.as_ref().is_none_or(|p| *p == s.id)
                && filter.language.as_ref().is_none_or(|l| {
                    s.languages
                        .iter()
                        .any(|x| crate::visit::same_language(x, l))
                })
                && filter
                    .gender
                    .as_ref()
                    .is_none_or(|g| s.gender.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(g)));
            if wanted {
                out.push(Bookable { staff: s, schedule });
            }
        }
        Ok(out)
    }

    /// The window a listing or booking may look at: from now to `book_ahead_days` ahead.
    fn bookable_window(&self, now: Millis) -> (Millis, Millis) {
        (now, now + self.rules.book_ahead_ms)
    }

    /// Free slots of one physician's default visit type (see [`Self::free_slots_of`]).
    pub async fn free_slots(
        &self,
        b: &Bookable,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<Vec<Slot>, AppointmentError> {
        let kind = visit_type_of(&b.schedule.schedule, None)?;
        self.free_slots_of(b, &kind, from, to, now).await
    }

    /// Free slots of one physician and visit type starting in `[from, to)` (clipped to
    /// what may be booked), at most [`MAX_LISTING_DAYS`] long.
    pub async fn free_slots_of(
        &self,
        b: &Bookable,
        kind: &VisitType,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<Vec<Slot>, AppointmentError> {
        if to <= from || to - from > MAX_LISTING_DAYS * 86_400_000 {
            return Err(FieldError {
                field: "to",
                message: format!("must be after `from`, at most {MAX_LISTING_DAYS} days later"),
            }
            .into());
        }
        let (first, last) = self.bookable_window(now);
        let (from, to) = (from.max(first), to.min(last));
        if to <= from {
            return Ok(Vec::new());
        }
        let taken = self.taken(&b.staff.id, from, to, now, None).await?;
        b.schedule
            .schedule
            .free_slots_for(kind, instant(from)?, instant(to)?, &taken)
            .map_err(schedule_field)
    }

    /// The time the physician's active appointments occupy around `[from, to)`, leaving
    /// out `ignore` (an appointment being moved may overlap its own old time).
    async fn taken(
        &self,
        physician: &StaffId,
        from: Millis,
        to: Millis,
        now: Millis,
        ignore: Option<&Appointment>,
    ) -> Result<Vec<Slot>, AppointmentError> {
        let busy = self.durable.busy(physician, from, to, now).await?;
        Ok(busy
            .into_iter()
            .filter(|b| ignore.is_none_or(|a| *b != (a.starts_at, a.busy_until)))
            .filter_map(|(s, e)| {
                Some(Slot {
                    start: DateTime::from_timestamp_millis(s)?,
                    end: DateTime::from_timestamp_millis(e)?,
                })
            })
            .collect())
    }

    /// The free slot of `physician` and `kind` starting exactly at `starts_at`, leaving
    /// out `ignore` (the appointment being moved). `kind` `None`: the schedule's first
    /// type; a moved appointment whose type the schedule no longer lists keeps its length.
    async fn slot_at(
        &self,
        physician: &StaffId,
        kind: Option<&VisitTypeKey>,
        starts_at: Millis,
        now: Millis,
        ignore: Option<&Appointment>,
    ) -> Result<(StoredSchedule, VisitType, Slot), AppointmentError> {
        let (first, last) = self.bookable_window(now);
        if starts_at <= first {
            return Err(AppointmentError::unavailable("this time has passed"));
        }
        if starts_at > last {
            return Err(AppointmentError::unavailable("this time is too far ahead"));
        }
        let schedule = self
            .durable
            .schedule(physician)
            .await?
            .ok_or(AppointmentError::UnknownPhysician)?;
        let kind = match (ignore, kind) {
            (Some(a), Some(k)) if schedule.schedule.visit_type(k).is_err() => VisitType {
                key: k.clone(),
                name: a.visit_name.clone(),
                length: chrono::Duration::milliseconds(a.ends_at - a.starts_at),
            },
            _ => visit_type_of(&schedule.schedule, kind)?,
        };
        let taken = self
            .taken(physician, starts_at, starts_at + 1, now, ignore)
            .await?;
        let at = instant(starts_at)?;
        let end = at + chrono::Duration::milliseconds(1);
        // Laid out without the taken ones first: a taken slot is `SlotTaken`, a time the
        // schedule never offers is `SlotUnavailable`.
        let offered = schedule
            .schedule
            .free_slots_for(&kind, at, end, &[])
            .map_err(schedule_field)?;
        let Some(slot) = offered.into_iter().find(|s| s.start == at) else {
            return Err(AppointmentError::unavailable(
                "this is not a time the physician takes appointments",
            ));
        };
        let free = schedule
            .schedule
            .free_slots_for(&kind, at, end, &taken)
            .map_err(schedule_field)?;
        if !free.contains(&slot) {
            return Err(AppointmentError::SlotTaken);
        }
        Ok((schedule, kind, slot))
    }

    // --- booking -----------------------------------------------------------------------

    /// Hold a slot for a patient and send them the code (see the module doc).
    pub async fn book(
        &self,
        r: BookingRequest,
        client: &str,
        now: Millis,
    ) -> Result<Held, AppointmentError> {
        let today = instant(now)?.date_naive();
        let name = contact::text("name", &r.name, contact::MAX_NAME)?;
        let email = r
            .email
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .map(contact::email)
            .transpose()?;
        let phone = r
            .phone
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .map(contact::phone)
            .transpose()?;
        if email.is_none() && phone.is_none() {
            return Err(FieldError {
                field: "email",
                message: "give an e-mail address or a mobile number".into(),
            }
            .into());
        }
        let birth_date = contact::birth_date(&r.birth_date, today)?;
        let reason = contact::text("reason", &r.reason, contact::MAX_REASON)?;
        let lang = contact::lang(&r.lang)?;
        if !r.consent {
            return Err(FieldError {
                field: "consent",
                message: "we need your consent to contact you about this appointment".into(),
            }
            .into());
        }
        let can = self.channels();
        let mut channels = Vec::new();
        if email.is_some() && can.contains(&Channel::Email) {
            channels.push(Channel::Email);
        }
        if phone.is_some() && can.contains(&Channel::Text) {
            channels.push(Channel::Text);
        }
        if channels.is_empty() {
            let what = if email.is_some() && phone.is_some() {
                "an e-mail address or a mobile number"
            } else if email.is_some() {
                "an e-mail address"
            } else {
                "a mobile number"
            };
            return Err(AppointmentError::RemindersOff(what));
        }
        // Counted before the slot is looked at, so a flood costs its sender the limit.
        let hour = Duration::from_secs(3600);
        self.counters
            .take(
                &format!("booking-ip:{client}"),
                self.rules.per_ip_per_hour,
                hour,
            )
            .await
            .map_err(AppointmentError::RateLimited)?;
        for c in [&email, &phone].into_iter().flatten() {
            // Hashed: a contact is personal data, and the counters may live in Redis.
            self.counters
                .take(
                    &format!("booking-contact:{}", stored_hash(c)),
                    self.rules.per_contact_per_day,
                    hour * 24,
                )
                .await
                .map_err(AppointmentError::RateLimited)?;
        }
        let (schedule, kind, slot) = self
            .slot_at(&r.physician, r.visit_type.as_ref(), r.starts_at, now, None)
            .await?;
        let id = AppointmentId::new();
        let notices = channels
            .iter()
            .map(|c| notice(NoticeKind::Code, None, *c, now))
            .collect();
        let new = NewAppointment {
            id,
            physician: schedule.staff.clone(),
            room: schedule.room.clone(),
            visit_type: kind.key,
            visit_name: kind.name,
            starts_at: millis(slot.start),
            ends_at: millis(slot.end),
            busy_until: millis(slot.end + schedule.schedule.buffer),
            hold_until: now + self.rules.hold_ms,
            patient_name: name,
            email,
            phone,
            birth_date,
            reason,
            lang,
            consent: true,
            created_at: now,
        };
        let appointment = match self.durable.book(new, notices).await {
            Ok(a) => a,
            Err(DurableError::Conflict {
                field: "starts_at", ..
            }) => return Err(AppointmentError::SlotTaken),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(appointment = %appointment.id, physician = %appointment.physician, "slot held");
        self.wake.notify_one();
        Ok(Held {
            appointment,
            channels,
        })
    }

    /// The notices a confirmed appointment gets at `starts_at`: a reminder per offset that
    /// is still ahead, on each channel its contacts and the courier allow.
    fn reminders(&self, a: &Appointment, starts_at: Millis, now: Millis) -> Vec<NewNotice> {
        let mut out = Vec::new();
        for c in self.channels_of(a) {
            for lead in &self.rules.reminder_offsets_ms {
                let due = starts_at - lead;
                if due > now {
                    out.push(notice(NoticeKind::Reminder, Some(lead / 1000), c, due));
                }
            }
        }
        out
    }

    fn channels_of(&self, a: &Appointment) -> Vec<Channel> {
        let can = self.channels();
        let mut out = Vec::new();
        if a.email.is_some() && can.contains(&Channel::Email) {
            out.push(Channel::Email);
        }
        if a.phone.is_some() && can.contains(&Channel::Text) {
            out.push(Channel::Text);
        }
        out
    }

    fn now_notices(&self, a: &Appointment, kind: NoticeKind, now: Millis) -> Vec<NewNotice> {
        self.channels_of(a)
            .into_iter()
            .map(|c| notice(kind, None, c, now))
            .collect()
    }

    /// Confirm a held booking with the code the patient received.
    pub async fn confirm(
        &self,
        id: &AppointmentId,
        code: &str,
        now: Millis,
    ) -> Result<Confirmed, AppointmentError> {
        let a = self
            .durable
            .appointment(id)
            .await?
            .ok_or(AppointmentError::UnknownAppointment)?;
        if a.status != AppointmentStatus::Pending {
            return Err(AppointmentError::Closed(a.status.as_str()));
        }
        if a.hold_until <= now {
            return Err(AppointmentError::HoldExpired);
        }
        if !self
            .durable
            .count_code_attempt(id, self.rules.code_attempts)
            .await?
        {
            return Err(AppointmentError::CodeAttemptsUsed);
        }
        if !secrets::same_code(code.trim(), &self.key.contact_code(id)) {
            tracing::info!(appointment = %id, "wrong contact code");
            let left = (self.rules.code_attempts - a.code_attempts - 1).max(0);
            return Err(AppointmentError::WrongCode { left });
        }
        let link = a.join_link(stored_hash(&self.key.join_code(id)), self.rules.join, now);
        let mut notices = self.now_notices(&a, NoticeKind::Booked, now);
        notices.extend(self.reminders(&a, a.starts_at, now));
        let change = AppointmentChange {
            id: id.clone(),
            now,
            notices,
        };
        let manage_hash = stored_hash(&self.key.manage_token(id));
        let appointment = match self.durable.confirm(id, &manage_hash, link, change).await {
            Ok(a) => a,
            Err(DurableError::Expired) => return Err(AppointmentError::HoldExpired),
            Err(DurableError::Conflict { .. }) => return Err(AppointmentError::Closed("closed")),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(appointment = %id, "appointment confirmed");
        self.wake.notify_one();
        Ok(Confirmed {
            manage_url: self.manage_url(id),
            join_url: self.join_url(id),
            appointment,
        })
    }

    // --- manage --------------------------------------------------------------------------

    /// The appointment a manage token stands for.
    pub async fn by_manage_token(&self, token: &str) -> Result<Appointment, AppointmentError> {
        if token.len() > 100 {
            return Err(AppointmentError::UnknownAppointment);
        }
        self.durable
            .appointment_by_manage_hash(&stored_hash(token))
            .await?
            .ok_or(AppointmentError::UnknownAppointment)
    }

    /// Cancel (patient through the manage link, or staff after [`Self::for_staff`]).
    pub async fn cancel(
        &self,
        a: &Appointment,
        now: Millis,
    ) -> Result<Appointment, AppointmentError> {
        if !matches!(
            a.status,
            AppointmentStatus::Pending | AppointmentStatus::Confirmed
        ) || a.starts_at <= now
        {
            return Err(AppointmentError::Closed(if a.starts_at <= now {
                "past its start"
            } else {
                a.status.as_str()
            }));
        }
        let notices = if a.status == AppointmentStatus::Confirmed {
            self.now_notices(a, NoticeKind::Cancelled, now)
        } else {
            Vec::new()
        };
        let change = AppointmentChange {
            id: a.id.clone(),
            now,
            notices,
        };
        let done = self.durable.cancel(change).await.map_err(closed)?;
        tracing::info!(appointment = %a.id, "appointment cancelled");
        self.wake.notify_one();
        Ok(done)
    }

    /// Move a confirmed appointment to another free slot of the same physician, in one
    /// transaction: the old time is free when it returns.
    pub async fn reschedule(
        &self,
        a: &Appointment,
        starts_at: Millis,
        now: Millis,
    ) -> Result<Appointment, AppointmentError> {
        if a.status != AppointmentStatus::Confirmed || a.starts_at <= now {
            return Err(AppointmentError::Closed(if a.starts_at <= now {
                "past its start"
            } else {
                a.status.as_str()
            }));
        }
        let (schedule, _, slot) = self
            .slot_at(&a.physician, Some(&a.visit_type), starts_at, now, Some(a))
            .await?;
        let start = millis(slot.start);
        let mut notices = self.now_notices(a, NoticeKind::Moved, now);
        if !a.reminders_off {
            notices.extend(self.reminders(a, start, now));
        }
        let change = AppointmentChange {
            id: a.id.clone(),
            now,
            notices,
        };
        let moved = match self
            .durable
            .reschedule(
                start,
                millis(slot.end),
                millis(slot.end + schedule.schedule.buffer),
                self.rules.join,
                change,
            )
            .await
        {
            Ok(m) => m,
            Err(DurableError::Conflict {
                field: "starts_at", ..
            }) => return Err(AppointmentError::SlotTaken),
            Err(e) => return Err(closed(e)),
        };
        tracing::info!(appointment = %a.id, "appointment moved");
        self.wake.notify_one();
        Ok(moved)
    }

    /// Stop the reminders of an appointment (the opt-out link of a reminder).
    pub async fn reminders_off(
        &self,
        a: &Appointment,
        now: Millis,
    ) -> Result<(), AppointmentError> {
        self.durable.reminders_off(&a.id, now).await?;
        tracing::info!(appointment = %a.id, "reminders turned off");
        Ok(())
    }

    // --- staff ---------------------------------------------------------------------------

    /// An appointment a staff member may act on: a physician their own, an admin any.
    pub async fn for_staff(
        &self,
        who: StaffActor<'_>,
        id: &AppointmentId,
    ) -> Result<Appointment, AppointmentError> {
        let a = self
            .durable
            .appointment(id)
            .await?
            .ok_or(AppointmentError::UnknownAppointment)?;
        if !who.admin && a.physician != *who.staff {
            return Err(AppointmentError::NotYours);
        }
        Ok(a)
    }

    /// Appointments in `[from, to)`: a physician's own (asking for someone else's is
    /// refused), an admin's of anyone or all; each with the visit its join link opens, so
    /// the physician's queue can tell a booked patient from a walk-in.
    pub async fn list_for_staff(
        &self,
        who: StaffActor<'_>,
        physician: Option<&StaffId>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Listed>, AppointmentError> {
        if to <= from || to - from > 366 * 86_400_000 {
            return Err(FieldError {
                field: "to",
                message: "must be after `from`, at most a year later".into(),
            }
            .into());
        }
        let physician = match (who.admin, physician) {
            (true, p) => p,
            (false, Some(p)) if p != who.staff => return Err(AppointmentError::NotYours),
            (false, _) => Some(who.staff),
        };
        let mut out = Vec::new();
        for appointment in self.durable.list_appointments(physician, from, to).await? {
            // One lookup per appointment: a day's or a month's list is tens of rows.
            let visit = match &appointment.link {
                Some(l) => self.durable.link(l).await?.map(|l| l.new.visit),
                None => None,
            };
            out.push(Listed { appointment, visit });
        }
        Ok(out)
    }
}

fn notice(kind: NoticeKind, lead_secs: Option<i64>, channel: Channel, due_at: Millis) -> NewNotice {
    NewNotice {
        id: NoticeId::new(),
        kind,
        lead_secs,
        channel: channel_name(channel).to_owned(),
        due_at,
    }
}

/// The outbox's name for a channel (the store keeps it as text).
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Text => "text",
    }
}

pub fn channel_of(name: &str) -> Option<Channel> {
    match name {
        "email" => Some(Channel::Email),
        "text" => Some(Channel::Text),
        _ => None,
    }
}

/// The visit type `key` names in a schedule (`None`: its first).
fn visit_type_of(
    schedule: &Schedule,
    key: Option<&VisitTypeKey>,
) -> Result<VisitType, AppointmentError> {
    match key {
        Some(k) => schedule.visit_type(k).cloned().map_err(schedule_field),
        None => schedule
            .default_type()
            .cloned()
            .ok_or_else(|| schedule_field(ScheduleError::VisitTypeCount)),
    }
}

fn schedule_field(e: ScheduleError) -> AppointmentError {
    let field = match e {
        ScheduleError::VisitLength
        | ScheduleError::VisitTypeCount
        | ScheduleError::VisitTypeKey
        | ScheduleError::DuplicateVisitType
        | ScheduleError::VisitTypeName => "visit_types",
        ScheduleError::UnknownVisitType => "visit_type",
        ScheduleError::BufferLength => "buffer_mins",
        ScheduleError::EmptySpan | ScheduleError::OffGrid => "weekly",
        ScheduleError::ExceptionOrder => "exceptions",
        ScheduleError::Window => "to",
    };
    FieldError {
        field,
        message: e.to_string(),
    }
    .into()
}

/// A store conflict on the appointment's status means it changed under us.
fn closed(e: DurableError) -> AppointmentError {
    match e {
        DurableError::Conflict {
            field: "status", ..
        } => AppointmentError::Closed("no longer open"),
        other => other.into(),
    }
}
