//! The e-mail courier: each notice as one MIME message (plain text and HTML, plus the
//! `.ics` for booked, moved and cancelled appointments) handed to the clinic's SMTP relay
//! with `lettre`, over STARTTLS, implicit TLS or (loopback only) plain, with AUTH when
//! configured.
//!
//! A delivery opens a connection, sends and quits, all within `mail.timeout_ms`. What the
//! relay says decides what the outbox does next: a 5xx reply (550 mailbox unavailable,
//! 535 authentication failed) is [`CourierError::Refused`]; a 4xx reply, a refused or
//! lost connection, a TLS failure or the timeout is [`CourierError::Retry`]. Error texts
//! never carry the recipient's address (a relay's reply often quotes it).

use super::calendar::{self, Parties};
use super::render::{self, Lang, RenderError, Sender};
use super::{Channel, Courier, CourierError, Notice, NoticeKind, Recipient};
use crate::config::{MailSettings, MailTls};
use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct MailCourier {
    /// The transport, or why it could not be made (an unreadable `mail.ca_cert`): then
    /// every delivery says so, for the admins to see, rather than the server refusing to
    /// start over reminders.
    transport: Result<Transport, String>,
    from: Mailbox,
    sender: Sender,
    uid_host: String,
    timeout: Duration,
}

impl MailCourier {
    /// A courier for the relay in `settings` (already validated by `config`), signing
    /// calendar UIDs with `uid_host` (the clinic's public host name) and naming `clinic`
    /// where a notice has no appointment.
    pub fn new(settings: &MailSettings, clinic: &str, uid_host: &str) -> MailCourier {
        let from_name = [settings.from_name.as_str(), clinic]
            .into_iter()
            .map(render::one_line)
            .find(|n| !n.is_empty());
        let from = match settings.from_address.trim().parse::<Address>() {
            Ok(a) => Mailbox::new(from_name, a),
            // config refuses a malformed from_address; this only keeps `new` total.
            Err(_) => Mailbox::new(None, Address::new("invalid", "invalid").expect("static")),
        };
        MailCourier {
            transport: transport(settings),
            from,
            sender: Sender {
                clinic_name: clinic.to_owned(),
            },
            uid_host: uid_host.to_owned(),
            timeout: Duration::from_millis(settings.timeout_ms),
        }
    }

    /// The whole message for `notice` to `to`, as it goes on the wire (for the courier and
    /// for tests that want to look at it without a server).
    pub fn compose(&self, to: &Recipient, notice: &Notice) -> Result<Message, CourierError> {
        let address: Address = to
            .address
            .trim()
            .parse()
            .map_err(|_| CourierError::Refused("the e-mail address is not valid".into()))?;
        let words = render::email(notice, &to.name, &self.sender).map_err(refused)?;
        let name = render::one_line(&to.name);
        let invitation = calendar::invitation(
            notice,
            &Parties {
                uid_host: &self.uid_host,
                organizer: self.from.email.as_ref(),
                attendee: address.as_ref(),
                attendee_name: &name,
            },
            chrono::Utc::now(),
        )
        .map_err(refused)?;
        let to_box = Mailbox::new(Some(name).filter(|n| !n.is_empty()), address);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(words.subject)
            .date_now()
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::new_v4().simple(),
                self.from.email.domain()
            )))
            .raw_header(header("Content-Language", Lang::of(&notice.lang).tag()))
            // RFC 3834: an automatic message; auto-responders should not answer it.
            .raw_header(header("Auto-Submitted", "auto-generated"));
        if let (NoticeKind::Reminder { .. }, Some(url)) = (&notice.kind, &words.unsubscribe) {
            builder = builder.raw_header(header("List-Unsubscribe", &format!("<{url}>")));
        }
        let alternative = MultiPart::alternative_plain_html(words.text, words.html);
        let body = match invitation {
            None => alternative,
            Some(inv) => {
                let content_type = ContentType::parse(&format!(
                    "text/calendar; charset=utf-8; method={}",
                    inv.method.as_str()
                ))
                .map_err(|e| CourierError::Refused(format!("calendar content type: {e}")))?;
                let ics: SinglePart =
                    Attachment::new("invite.ics".to_owned()).body(inv.body, content_type);
                MultiPart::mixed().multipart(alternative).singlepart(ics)
            }
        };
        builder
            .multipart(body)
            .map_err(|e| CourierError::Refused(format!("the message could not be built: {e}")))
    }
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
}

fn refused(e: RenderError) -> CourierError {
    CourierError::Refused(e.to_string())
}

fn transport(s: &MailSettings) -> Result<Transport, String> {
    let host = s.host.trim().to_owned();
    let tls_parameters = || {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(path) = &s.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| format!("mail.ca_cert {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("mail.ca_cert {}: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| format!("TLS set-up for the relay: {e}"))
    };
    let tls = match s.tls {
        MailTls::Starttls => Tls::Required(tls_parameters()?),
        MailTls::Implicit => Tls::Wrapper(tls_parameters()?),
        MailTls::None => Tls::None,
    };
    let mut b = Transport::builder_dangerous(host)
        .port(s.port_or_default())
        .tls(tls)
        .timeout(Some(Duration::from_millis(s.timeout_ms)));
    if !s.username.is_empty() {
        b = b.credentials(Credentials::new(
            s.username.clone(),
            s.password.expose().to_owned(),
        ));
    }
    Ok(b.build())
}

/// What the outbox should do about an SMTP failure.
fn classify(e: &lettre::transport::smtp::Error) -> CourierError {
    let code = e
        .status()
        .map(|c| format!("SMTP {c}: "))
        .unwrap_or_default();
    let what = scrub(&e.to_string());
    if e.is_permanent() {
        CourierError::Refused(format!("{code}{what}"))
    } else {
        CourierError::Retry(format!("{code}{what}"))
    }
}

/// `text` with anything that looks like an e-mail address replaced, and cut to one short
/// line: relays quote the recipient in their replies.
fn scrub(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            if w.contains('@') {
                "[address]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let line = words.join(" ");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[async_trait]
impl Courier for MailCourier {
    fn channels(&self) -> Vec<Channel> {
        vec![Channel::Email]
    }

    async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError> {
        if to.channel != Channel::Email {
            return Err(CourierError::NotConfigured(to.channel));
        }
        let transport = self
            .transport
            .as_ref()
            .map_err(|why| CourierError::Retry(format!("the mail relay is not usable: {why}")))?;
        let message = self.compose(to, notice)?;
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let err = classify(&e);
                tracing::warn!(kind = render::kind_name(&notice.kind), error = %err, "mail delivery failed");
                Err(err)
            }
            Err(_) => {
                tracing::warn!(
                    kind = render::kind_name(&notice.kind),
                    "mail delivery timed out"
                );
                Err(CourierError::Retry(format!(
                    "the mail relay did not finish within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_replies_lose_the_addresses_they_quote() {
        assert_eq!(
            scrub("permanent error (550): 5.1.1 <pat@example.org>: mailbox unavailable"),
            "permanent error (550): 5.1.1 [address] mailbox unavailable"
        );
        assert!(scrub(&"x".repeat(1000)).chars().count() <= 301);
    }
}
