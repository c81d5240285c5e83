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
//!
//! # Layout
//! - [`render`]: a notice in words (subject, text, HTML, text-message body), EN and ES. Pure.
//! - [`calendar`]: the `.ics` for booked, moved and cancelled appointments. Pure.
//! - [`gsm`]: the GSM-7 alphabet and segment count of text messages. Pure.
//! - [`mail`]: the SMTP adapter (`lettre`).
//! - [`text`]: the text-message adapter (Twilio's Messages API).
//! - [`open`] picks the adapters the configuration turns on; [`Status`] says which.

pub mod calendar;
pub mod gsm;
pub mod mail;
pub mod render;
pub mod text;

use crate::config::Settings;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::sync::Arc;

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

/// The couriers the configuration turns on, behind one [`Courier`]: each delivery goes to
/// the one for the recipient's channel.
struct Couriers {
    email: Option<Arc<dyn Courier>>,
    text: Option<Arc<dyn Courier>>,
}

#[async_trait]
impl Courier for Couriers {
    fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.email.is_some() {
            out.push(Channel::Email);
        }
        if self.text.is_some() {
            out.push(Channel::Text);
        }
        out
    }

    async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError> {
        let courier = match to.channel {
            Channel::Email => &self.email,
            Channel::Text => &self.text,
        };
        match courier {
            Some(c) => c.deliver(to, notice).await,
            None => Err(CourierError::NotConfigured(to.channel)),
        }
    }
}

/// One courier serving every channel `settings` configures (`[mail]`, `[text]`);
/// `channels()` is empty when neither is, and every delivery is then
/// [`CourierError::NotConfigured`]. The settings are validated already (`config`), so this
/// cannot fail: a relay that cannot be used (an unreadable CA file) shows in each
/// delivery's error instead.
pub fn open(settings: &Settings) -> Arc<dyn Courier> {
    let clinic = settings.clinic.name.clone();
    let uid_host = public_host(&settings.public_url());
    let email = settings.mail.enabled().then(|| {
        Arc::new(mail::MailCourier::new(&settings.mail, &clinic, &uid_host)) as Arc<dyn Courier>
    });
    let text = settings
        .text
        .enabled()
        .then(|| Arc::new(text::TextCourier::new(&settings.text, &clinic)) as Arc<dyn Courier>);
    Arc::new(Couriers { email, text })
}

/// The host name of a public URL (`https://visits.clinic.example:8443/x` →
/// `visits.clinic.example`), for calendar UIDs.
fn public_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.to_ascii_lowercase()
}

/// Whether patients get reminders by e-mail and by text, for the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub email: bool,
    pub text: bool,
}

impl Status {
    pub fn of(courier: &dyn Courier) -> Status {
        let channels = courier.channels();
        Status {
            email: channels.contains(&Channel::Email),
            text: channels.contains(&Channel::Text),
        }
    }

    /// "reminders by e-mail: on, by text: off", as the admin page may say it.
    pub fn describe(self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "reminders by e-mail: {}, by text: {}",
            on(self.email),
            on(self.text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_settings_no_channels() {
        let courier = open(&Settings::default());
        assert!(courier.channels().is_empty());
        assert_eq!(
            Status::of(courier.as_ref()).describe(),
            "reminders by e-mail: off, by text: off"
        );
    }

    #[tokio::test]
    async fn a_channel_that_is_not_configured_says_so() {
        let courier = open(&Settings::default());
        let to = Recipient {
            channel: Channel::Text,
            address: "+34600111222".into(),
            name: "Pat".into(),
        };
        let notice = Notice {
            kind: NoticeKind::ContactCode {
                code: "1234".into(),
            },
            lang: "en".into(),
            appointment: None,
            links: NoticeLinks::default(),
        };
        assert_eq!(
            courier.deliver(&to, &notice).await,
            Err(CourierError::NotConfigured(Channel::Text))
        );
    }

    #[test]
    fn the_uid_host_is_the_public_urls_host() {
        assert_eq!(
            public_host("https://Visits.Clinic.example:8443/x"),
            "visits.clinic.example"
        );
        assert_eq!(public_host("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(public_host("http://[::1]:8080/"), "::1");
    }
}
