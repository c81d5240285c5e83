//! Issue 21: appointment e-mails reach a real SMTP server (aiosmtpd, `kit::mail`) the way
//! a clinic's relay would take them — STARTTLS or implicit TLS, AUTH — in the patient's
//! language, with the calendar file a calendar program reads, and a failed delivery says
//! whether the outbox should try again.

use crate::kit::mail::{SMTP_USER, SmtpOptions, SmtpServer};
use chrono::{DateTime, TimeZone, Utc};
use examroom::config::MailTls;
use examroom::notify::{
    self, AppointmentFacts, Channel, CourierError, Notice, NoticeKind, NoticeLinks, Recipient,
};
use mail_parser::MimeHeaders;
use std::time::{Duration, Instant};

const JOIN: &str = "https://visits.example/j/Jtok-1";
const MANAGE: &str = "https://visits.example/m/Mtok-2";
const OPT_OUT: &str = "https://visits.example/o/Otok-3";

/// Monday 14 December 2026, 10:30 in Madrid (09:30 UTC), twenty minutes.
fn appointment(sequence: u32) -> AppointmentFacts {
    let starts_at = chrono_tz::Europe::Madrid
        .with_ymd_and_hms(2026, 12, 14, 10, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    AppointmentFacts {
        id: "apt-4f2c9e".into(),
        starts_at,
        ends_at: starts_at + chrono::Duration::minutes(20),
        zone: chrono_tz::Europe::Madrid,
        physician_name: "Dr. Ana Ruiz".into(),
        clinic_name: "Riverside Practice".into(),
        sequence,
    }
}

fn notice(kind: NoticeKind, lang: &str, sequence: u32) -> Notice {
    let appointment = match kind {
        NoticeKind::ContactCode { .. } => None,
        _ => Some(appointment(sequence)),
    };
    Notice {
        kind,
        lang: lang.into(),
        appointment,
        links: NoticeLinks {
            manage: Some(MANAGE.into()),
            join: Some(JOIN.into()),
            opt_out: Some(OPT_OUT.into()),
        },
    }
}

fn patient(address: &str) -> Recipient {
    Recipient {
        channel: Channel::Email,
        address: address.into(),
        name: "Pat Doe".into(),
    }
}

fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// The calendar file, read by a parser that is not ours: METHOD, UID, SEQUENCE, DTSTART.
fn calendar_facts(ics: &str) -> (String, String, String, DateTime<Utc>, String) {
    use icalendar::parser::{read_calendar, unfold};
    let unfolded = unfold(ics);
    let cal = read_calendar(&unfolded).unwrap_or_else(|e| panic!("the .ics parses: {e}\n{ics}"));
    let prop = |props: &[icalendar::parser::Property<'_>], name: &str| {
        props
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.val.as_str().to_owned())
            .unwrap_or_else(|| panic!("{name} missing in\n{ics}"))
    };
    let method = prop(&cal.properties, "METHOD");
    let events: Vec<_> = cal
        .components
        .iter()
        .filter(|c| c.name.as_str() == "VEVENT")
        .collect();
    assert_eq!(events.len(), 1, "one event in\n{ics}");
    let e = events[0];
    let start = prop(&e.properties, "DTSTART");
    let start = match start.parse::<icalendar::CalendarDateTime>().unwrap() {
        icalendar::CalendarDateTime::Utc(t) => t,
        other => panic!("DTSTART in UTC, got {other:?}"),
    };
    (
        method,
        prop(&e.properties, "UID"),
        prop(&e.properties, "SEQUENCE"),
        start,
        prop(&e.properties, "STATUS"),
    )
}

#[tokio::test]
async fn every_notice_kind_arrives_in_english_and_spanish() {
    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let courier = notify::open(&smtp.settings());
    assert_eq!(courier.channels(), vec![Channel::Email]);
    let lead = chrono::Duration::hours(24);
    let code = || NoticeKind::ContactCode {
        code: "482913".into(),
    };
    // kind, language, subject, calendar method, what the text says about the time
    let cases = [
        (
            code(),
            "en",
            "Your confirmation code: 482913",
            None,
            "482913",
        ),
        (
            code(),
            "es",
            "Tu código de confirmación: 482913",
            None,
            "482913",
        ),
        (
            NoticeKind::Booked,
            "en",
            "Appointment booked: Mon 14 Dec 10:30 CET",
            Some("REQUEST"),
            "Monday 14 December 2026, 10:30 (Europe/Madrid time)",
        ),
        (
            NoticeKind::Booked,
            "es",
            "Cita reservada: lun 14 dic 10:30 CET",
            Some("REQUEST"),
            "lunes 14 de diciembre de 2026, 10:30 (hora de Europe/Madrid)",
        ),
        (
            NoticeKind::Reminder { lead },
            "en",
            "Reminder: appointment in 24 hours (Mon 14 Dec 10:30 CET)",
            None,
            "starts in 24 hours, on Monday 14 December 2026",
        ),
        (
            NoticeKind::Reminder { lead },
            "es",
            "Recordatorio: cita en 24 horas (lun 14 dic 10:30 CET)",
            None,
            "empieza en 24 horas, el lunes 14 de diciembre de 2026",
        ),
        (
            NoticeKind::Moved,
            "en",
            "Appointment moved: Mon 14 Dec 10:30 CET",
            Some("REQUEST"),
            "has moved to Monday 14 December 2026, 10:30",
        ),
        (
            NoticeKind::Moved,
            "es",
            "Cita cambiada: lun 14 dic 10:30 CET",
            Some("REQUEST"),
            "ha cambiado al lunes 14 de diciembre de 2026, 10:30",
        ),
        (
            NoticeKind::Cancelled,
            "en",
            "Appointment cancelled: Mon 14 Dec 10:30 CET",
            Some("CANCEL"),
            "on Monday 14 December 2026, 10:30 (Europe/Madrid time) is cancelled",
        ),
        (
            NoticeKind::Cancelled,
            "es",
            "Cita cancelada: lun 14 dic 10:30 CET",
            Some("CANCEL"),
            "del lunes 14 de diciembre de 2026, 10:30 (hora de Europe/Madrid) está cancelada",
        ),
    ];
    for (i, (kind, lang, subject, method, says)) in cases.into_iter().enumerate() {
        let address = format!("pat.{i}@example.org");
        let is_reminder = matches!(kind, NoticeKind::Reminder { .. });
        let sequence = match kind {
            NoticeKind::Moved => 1,
            NoticeKind::Cancelled => 2,
            _ => 0,
        };
        let sent_at = Utc::now();
        courier
            .deliver(&patient(&address), &notice(kind, lang, sequence))
            .await
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
        let mail = smtp.next_for(&address).await;

        // The relay saw an encrypted, authenticated session from the clinic's address.
        assert!(
            mail.session("X-Peer-TLS").unwrap().starts_with("TLSv1."),
            "{subject}: {:?}",
            mail.session("X-Peer-TLS")
        );
        assert_eq!(mail.session("X-Authenticated").as_deref(), Some(SMTP_USER));
        assert_eq!(
            mail.session("X-MailFrom").as_deref(),
            Some("appointments@visits.example")
        );

        let m = mail.parsed();
        let from = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name.as_deref(), Some("Riverside Appointments"));
        assert_eq!(from.address.as_deref(), Some("appointments@visits.example"));
        let to = m.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.name.as_deref(), Some("Pat Doe"));
        assert_eq!(to.address.as_deref(), Some(address.as_str()));
        assert_eq!(m.subject(), Some(subject));
        let date = m.date().expect("a Date header").to_timestamp();
        assert!(
            (date - sent_at.timestamp()).abs() <= 60,
            "{subject}: Date {date} vs sent {}",
            sent_at.timestamp()
        );
        let id = m.message_id().expect("a Message-ID");
        assert!(id.ends_with("@visits.example") && id.len() > 20, "{id}");
        assert_eq!(m.header_raw("Content-Language").map(str::trim), Some(lang));
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        assert_eq!(
            m.header_raw("List-Unsubscribe").map(str::trim),
            is_reminder.then(|| format!("<{OPT_OUT}>")).as_deref(),
            "{subject}: List-Unsubscribe only on reminders"
        );

        // MIME: text and HTML as alternatives, and the calendar file beside them.
        let types: Vec<String> = m
            .parts
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
            })
            .collect();
        let want: Vec<&str> = match method {
            Some(_) => vec![
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "text/html",
                "text/calendar",
            ],
            None => vec!["multipart/alternative", "text/plain", "text/html"],
        };
        assert_eq!(types, want, "{subject}");
        let text = lf(&m.body_text(0).unwrap());
        let html = m.body_html(0).unwrap();
        assert!(text.contains(says), "{subject}: {says:?} not in\n{text}");
        assert!(html.contains(&format!("<html lang=\"{lang}\">")), "{html}");
        if is_reminder {
            assert!(text.contains(OPT_OUT) && html.contains(OPT_OUT));
        } else {
            assert!(!text.contains(OPT_OUT) && !html.contains(OPT_OUT), "{text}");
        }

        match method {
            Some(method) => {
                assert_eq!(m.attachment_count(), 1);
                let ics_part = m.attachment(0).unwrap();
                assert_eq!(ics_part.attachment_name(), Some("invite.ics"));
                let ct = ics_part.content_type().unwrap();
                assert_eq!(ct.attribute("method"), Some(method));
                let ics = ics_part.text_contents().unwrap();
                let (m_method, uid, seq, start, status) = calendar_facts(ics);
                assert_eq!(m_method, method);
                assert_eq!(uid, "apt-4f2c9e@visits.example");
                assert_eq!(seq, sequence.to_string());
                assert_eq!(start, appointment(0).starts_at);
                assert_eq!(
                    status,
                    if method == "CANCEL" {
                        "CANCELLED"
                    } else {
                        "CONFIRMED"
                    }
                );
            }
            None => assert_eq!(m.attachment_count(), 0, "{subject}"),
        }
    }
}

/// No reason for the visit, no diagnosis, nothing from the record can reach a patient's
/// mailbox: a notice has no field to carry it (the exhaustive patterns below stop
/// compiling the day one is added), and the mail says exactly what the notice gave.
#[tokio::test]
async fn a_mail_says_only_what_the_notice_gives() {
    let n = notice(NoticeKind::Booked, "en", 0);
    let Notice {
        kind: _,
        lang: _,
        appointment,
        links:
            NoticeLinks {
                manage: _,
                join: _,
                opt_out: _,
            },
    } = &n;
    let AppointmentFacts {
        id: _,
        starts_at: _,
        ends_at: _,
        zone: _,
        physician_name: _,
        clinic_name: _,
        sequence: _,
    } = appointment.as_ref().unwrap();

    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let courier = notify::open(&smtp.settings());
    courier
        .deliver(&patient("pat@example.org"), &n)
        .await
        .unwrap();
    let mail = smtp.next_for("pat@example.org").await;
    let m = mail.parsed();
    assert_eq!(
        lf(&m.body_text(0).unwrap()),
        "Hello Pat Doe,\n\
         \n\
         Your video appointment with Dr. Ana Ruiz at Riverside Practice is booked for \
         Monday 14 December 2026, 10:30 (Europe/Madrid time).\n\
         \n\
         Join the waiting room (opens shortly before the time):\n\
         https://visits.example/j/Jtok-1\n\
         \n\
         View, reschedule or cancel:\n\
         https://visits.example/m/Mtok-2\n\
         \n\
         The attached invitation (invite.ics) puts it in your calendar.\n\
         \n\
         -- \n\
         Sent automatically by Riverside Practice.\n"
    );
    let spanish = notice(
        NoticeKind::Reminder {
            lead: chrono::Duration::hours(1),
        },
        "es",
        0,
    );
    courier
        .deliver(&patient("pat@example.org"), &spanish)
        .await
        .unwrap();
    let m = smtp.next_for("pat@example.org").await;
    assert_eq!(
        lf(&m.parsed().body_text(0).unwrap()),
        "Hola, Pat Doe:\n\
         \n\
         Te recordamos que tu cita por vídeo con Dr. Ana Ruiz en Riverside Practice empieza \
         en 1 hora, el lunes 14 de diciembre de 2026, 10:30 (hora de Europe/Madrid).\n\
         \n\
         Entrar en la sala de espera (se abre poco antes de la hora):\n\
         https://visits.example/j/Jtok-1\n\
         \n\
         Ver, cambiar o cancelar la cita:\n\
         https://visits.example/m/Mtok-2\n\
         \n\
         Dejar de recibir recordatorios de esta cita:\n\
         https://visits.example/o/Otok-3\n\
         \n\
         -- \n\
         Mensaje automático de Riverside Practice.\n"
    );
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers() {
    let smtp = SmtpServer::start(SmtpOptions::implicit_with_auth()).await;
    let courier = notify::open(&smtp.settings());
    courier
        .deliver(
            &patient("pat@example.org"),
            &notice(NoticeKind::Booked, "en", 0),
        )
        .await
        .unwrap();
    let mail = smtp.next_for("pat@example.org").await;
    assert!(mail.session("X-Peer-TLS").unwrap().starts_with("TLSv1."));
    assert_eq!(mail.session("X-Authenticated").as_deref(), Some(SMTP_USER));
}

#[tokio::test]
async fn a_local_relay_takes_plain_smtp_without_auth() {
    let smtp = SmtpServer::start(SmtpOptions::plain_local()).await;
    let mut settings = smtp.settings();
    settings.mail.username.clear();
    settings.mail.password = Default::default();
    settings.validate().unwrap();
    notify::open(&settings)
        .deliver(
            &patient("pat@example.org"),
            &notice(NoticeKind::Cancelled, "es", 3),
        )
        .await
        .unwrap();
    let mail = smtp.next_for("pat@example.org").await;
    assert_eq!(mail.session("X-Peer-TLS").as_deref(), Some("none"));
    assert_eq!(mail.session("X-Authenticated").as_deref(), Some("no"));
    assert_eq!(
        mail.parsed().subject(),
        Some("Cita cancelada: lun 14 dic 10:30 CET")
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_nothing_is_sent() {
    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let mut settings = smtp.settings();
    settings.mail.password = examroom::config::Secret::new("not-the-password");
    let err = notify::open(&settings)
        .deliver(
            &patient("pat@example.org"),
            &notice(NoticeKind::Booked, "en", 0),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CourierError::Refused(why) if why.contains("535")),
        "{err:?}"
    );
    assert_eq!(smtp.count(), 0);
}

#[tokio::test]
async fn an_unknown_mailbox_is_refused_a_full_one_is_retried() {
    let smtp = SmtpServer::start(
        SmtpOptions::starttls_with_auth()
            .reply(
                "gone@example.org",
                "550 5.1.1 <gone@example.org>: mailbox unavailable",
            )
            .reply(
                "full@example.org",
                "452 4.2.2 <full@example.org>: mailbox full",
            ),
    )
    .await;
    let courier = notify::open(&smtp.settings());
    let n = notice(NoticeKind::Booked, "en", 0);
    let gone = courier
        .deliver(&patient("gone@example.org"), &n)
        .await
        .unwrap_err();
    assert!(
        matches!(&gone, CourierError::Refused(why) if why.contains("550")),
        "{gone:?}"
    );
    let full = courier
        .deliver(&patient("full@example.org"), &n)
        .await
        .unwrap_err();
    assert!(
        matches!(&full, CourierError::Retry(why) if why.contains("452")),
        "{full:?}"
    );
    // The relay quoted each address; the error the outbox keeps and admins see does not.
    for e in [gone, full] {
        assert!(!e.to_string().contains("@example.org"), "{e}");
    }
    assert_eq!(smtp.count(), 0);
}

#[tokio::test]
async fn a_relay_that_is_down_or_silent_is_retried_within_the_timeout() {
    // Down: nothing listens on the port.
    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let mut settings = smtp.settings();
    settings.mail.port = crate::kit::services::free_port();
    let n = notice(NoticeKind::Booked, "en", 0);
    let err = notify::open(&settings)
        .deliver(&patient("pat@example.org"), &n)
        .await
        .unwrap_err();
    assert!(matches!(err, CourierError::Retry(_)), "{err:?}");

    // Silent: it accepts the connection and never greets.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    settings.mail.port = silent.local_addr().unwrap().port();
    settings.mail.timeout_ms = 1_000;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            open.push(sock);
        }
    });
    let started = Instant::now();
    let err = notify::open(&settings)
        .deliver(&patient("pat@example.org"), &n)
        .await
        .unwrap_err();
    let took = started.elapsed();
    held.abort();
    assert!(matches!(err, CourierError::Retry(_)), "{err:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    println!("a silent relay: Retry after {took:?} (timeout_ms = 1000)");
}

#[tokio::test]
async fn a_bad_address_or_notice_is_refused_before_any_connection() {
    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let courier = notify::open(&smtp.settings());
    let err = courier
        .deliver(
            &patient("not an address"),
            &notice(NoticeKind::Booked, "en", 0),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CourierError::Refused("the e-mail address is not valid".into())
    );
    let mut no_facts = notice(NoticeKind::Moved, "en", 1);
    no_facts.appointment = None;
    let err = courier
        .deliver(&patient("pat@example.org"), &no_facts)
        .await
        .unwrap_err();
    assert!(matches!(err, CourierError::Refused(_)), "{err:?}");
    let text = Recipient {
        channel: Channel::Text,
        address: "+34600111222".into(),
        name: "Pat".into(),
    };
    assert_eq!(
        courier
            .deliver(&text, &notice(NoticeKind::Booked, "en", 0))
            .await,
        Err(CourierError::NotConfigured(Channel::Text))
    );
    assert_eq!(smtp.count(), 0);
    assert_eq!(smtp.tls, MailTls::Starttls);
}
