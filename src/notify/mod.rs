//! Messages to patients outside a visit (issue 21): the confirmation code that proves a
//! contact is real, the booking confirmation, reminders before an appointment, and notices
//! that an appointment moved or was cancelled.
//!
//! This module is the port: [`Courier`] delivers one [`Notice`] to one [`Recipient`] over
//! one [`Channel`]. Implementations (SMTP e-mail, a text-message provider's HTTP API) are
//! adapters chosen once at start-up from the configuration; with none configured the
//! server runs and says reminders are off.
//!
//! Who sends what and when (the durable outbox, reminder offsets, exactly-once across
//! nodes) is decided by the caller, not here: a courier only renders and delivers.
//!
//! Invariants:
//! - A notice carries no clinical detail: no reason for the visit, no diagnosis, no record
//!   data. It names the clinic, the physician, the time and the links, nothing more.
//! - Links are complete URLs built by the caller; a courier never mints tokens.
//! - Nothing here logs a recipient's address, a code or a link.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// How a notice reaches the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Text,
}

/// Where to send: an e-mail address or a mobile number in E.164 (`+34600111222`),
/// already validated by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    pub channel: Channel,
    pub address: String,
    /// The patient's name as they gave it, for the greeting.
    pub name: String,
}

impl std::fmt::Debug for Recipient {
    // An address is personal data: keep it out of every Debug and log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// The appointment a notice is about, as the patient should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentFacts {
    /// A stable id, also the `.ics` UID (with the clinic's host), so a calendar replaces a
    /// moved appointment rather than adding a second one.
    pub id: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The zone the times are shown in (the physician's or clinic's).
    pub zone: Tz,
    pub physician_name: String,
    pub clinic_name: String,
    /// Bumped each time the appointment moves or is cancelled: the `.ics` SEQUENCE.
    pub sequence: u32,
}

/// Links a notice may carry, each a complete URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeLinks {
    /// View, reschedule or cancel the appointment.
    pub manage: Option<String>,
    /// Open the waiting room (valid near the start time).
    pub join: Option<String>,
    /// Stop reminders for this appointment (one click, no sign-in).
    pub opt_out: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    /// A short code the patient types back to prove the contact is theirs.
    ContactCode {
        code: String,
    },
    /// The appointment is booked (with an `.ics` by e-mail).
    Booked,
    /// The appointment is soon; `lead` is how long before the start this reminder is due.
    Reminder {
        lead: chrono::Duration,
    },
    /// The appointment moved (the facts are the new time).
    Moved,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The patient's preferred language tag (`en`, `es`); a courier falls back to English.
    pub lang: String,
    /// None only for [`NoticeKind::ContactCode`].
    pub appointment: Option<AppointmentFacts>,
    pub links: NoticeLinks,
}

/// Why a delivery failed, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CourierError {
    /// Worth trying again later (server away, timeout, 4xx temporary SMTP reply, HTTP 429/5xx).
    #[error("temporary failure: {0}")]
    Retry(String),
    /// Will never work as asked (address refused, provider says the number is invalid,
    /// authentication refused). Shown to admins; not retried.
    #[error("refused: {0}")]
    Refused(String),
    /// No courier is configured for this channel.
    #[error("no {0:?} courier is configured")]
    NotConfigured(Channel),
}

/// Delivers notices. One value may serve several channels; [`Courier::channels`] says which.
#[async_trait]
pub trait Courier: Send + Sync {
    /// The channels this courier can deliver on; empty means reminders are off.
    fn channels(&self) -> Vec<Channel>;

    /// Render `notice` in the recipient's language and deliver it. Returns once the
    /// server (SMTP relay, provider API) has accepted it. Must time out on its own.
    async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError>;
}
