//! Booking with real mail (issue 21): the server as built from its settings (`[mail]`
//! pointing at a real SMTP server process, `kit::mail`), a patient who books in Spanish,
//! reads the code from the delivered message, confirms, and receives the confirmation with
//! its calendar file and links; a move and a cancel arrive too, and no message carries the
//! reason for the visit.

use crate::kit::TestApp;
use crate::kit::mail::{SmtpOptions, SmtpServer};
use examroom::ids::Role;
use serde_json::json;

/// The six-digit code in a message's text.
fn code_in(text: &str) -> String {
    text.as_bytes()
        .windows(6)
        .enumerate()
        .find(|(i, w)| {
            w.iter().all(u8::is_ascii_digit)
                && !text.as_bytes().get(i + 6).is_some_and(u8::is_ascii_digit)
                && (*i == 0 || !text.as_bytes()[i - 1].is_ascii_digit())
        })
        .map(|(_, w)| String::from_utf8(w.to_vec()).unwrap())
        .unwrap_or_else(|| panic!("no code in\n{text}"))
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest[rest.find('/').unwrap()..].to_owned()
}

#[tokio::test]
async fn a_patient_books_in_spanish_and_the_code_and_confirmation_arrive_by_mail() {
    let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
    let app = TestApp::spawn_with(|s| {
        s.mail = smtp.mail_settings();
        s.clinic.name = "Clínica Sol".into();
    })
    .await;
    let doc = app.physician_speaking("Dra. Vega", &["es"], "f").await;
    let room = app
        .room("Vega", examroom::visit::RoomKind::Physician, &[&doc])
        .await;
    let token = app.staff_token(&doc, vec![Role::Physician]).await;
    app.bookable_all_day(&token, &room.id, "Europe/Madrid")
        .await;
    let (_, info) = app.call_json("GET", "/api/booking", None, None).await;
    assert_eq!(
        info["channels"],
        json!(["email"]),
        "[mail] makes booking possible"
    );

    let now = chrono::Utc::now().timestamp_millis();
    let (_, slots) = app
        .call_json(
            "GET",
            &format!("/api/booking/slots?from={now}&to={}", now + 86_400_000),
            None,
            None,
        )
        .await;
    let starts: Vec<i64> = slots[0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["starts_at"].as_i64().unwrap())
        .collect();
    let reason = "Erupción en el brazo";
    let (s, held) = app
        .call_json(
            "POST",
            "/api/booking",
            None,
            Some(
                json!({"physician": doc, "starts_at": starts[6], "name": "Ana Ruiz",
                        "email": "ana@example.org", "birth_date": "1980-04-23",
                        "reason": reason, "lang": "es", "consent": true}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{held}");

    // The code, in Spanish, through an encrypted and authenticated session.
    let mail = smtp.next_for("ana@example.org").await;
    assert!(mail.session("X-Peer-TLS").unwrap().starts_with("TLSv1."));
    let m = mail.parsed();
    assert_eq!(m.header_raw("Content-Language").map(str::trim), Some("es"));
    let subject = m.subject().unwrap().to_owned();
    assert!(
        subject.starts_with("Tu código de confirmación"),
        "{subject}"
    );
    let text = m.body_text(0).unwrap().to_string();
    let code = code_in(&text);
    assert!(subject.ends_with(&code));
    assert!(!text.contains(reason) && !subject.contains(reason));

    let id = held["appointment"].as_str().unwrap();
    let (s, confirmed) = app
        .call_json(
            "POST",
            &format!("/api/booking/{id}/confirm"),
            None,
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(s, 200, "{confirmed}");

    // The confirmation: Spanish, the calendar invitation, the join and manage links.
    let mail = smtp.next_for("ana@example.org").await;
    let m = mail.parsed();
    assert!(
        m.subject().unwrap().starts_with("Cita reservada"),
        "{:?}",
        m.subject()
    );
    assert_eq!(m.header_raw("Content-Language").map(str::trim), Some("es"));
    let text = m.body_text(0).unwrap().to_string();
    let html = m.body_html(0).unwrap().to_string();
    let join = path_of(confirmed["join_url"].as_str().unwrap());
    let manage = path_of(confirmed["manage_url"].as_str().unwrap());
    assert!(
        text.contains(&join),
        "the join link is in the mail:\n{text}"
    );
    assert!(
        text.contains(&manage),
        "the manage link is in the mail:\n{text}"
    );
    assert!(text.contains("Dra. Vega"));
    assert_eq!(m.attachment_count(), 1);
    let ics = m.attachment(0).unwrap().text_contents().unwrap().to_owned();
    assert!(ics.contains("METHOD:REQUEST"), "{ics}");
    assert!(ics.contains(&format!("UID:{id}@")), "{ics}");
    for part in [&text, &html, &ics] {
        assert!(!part.contains(reason), "no reason in any part of the mail");
    }

    // Moved, then cancelled: each arrives, with the calendar's sequence going up.
    let token = manage.rsplit('/').next().unwrap().to_owned();
    let (s, _) = app
        .call_json(
            "POST",
            &format!("/api/manage/{token}/move"),
            None,
            Some(json!({ "starts_at": starts[8] })),
        )
        .await;
    assert_eq!(s, 200);
    let moved = smtp.next_for("ana@example.org").await;
    let m = moved.parsed();
    assert!(
        m.subject().unwrap().starts_with("Cita cambiada"),
        "{:?}",
        m.subject()
    );
    let ics = m.attachment(0).unwrap().text_contents().unwrap().to_owned();
    assert!(ics.contains("SEQUENCE:1"), "{ics}");
    let (s, _) = app
        .call_json("POST", &format!("/api/manage/{token}/cancel"), None, None)
        .await;
    assert_eq!(s, 200);
    let cancelled = smtp.next_for("ana@example.org").await;
    let m = cancelled.parsed();
    assert!(
        m.subject().unwrap().starts_with("Cita cancelada"),
        "{:?}",
        m.subject()
    );
    let ics = m.attachment(0).unwrap().text_contents().unwrap().to_owned();
    assert!(
        ics.contains("METHOD:CANCEL") && ics.contains("SEQUENCE:2"),
        "{ics}"
    );
    // Four messages in all: no reminder was due, none was sent twice.
    assert_eq!(smtp.count(), 4);
}

/// Two real server processes on one PostgreSQL and one Redis, each running its outbox
/// worker every second and delivering to the real SMTP server `smtp`; Dr Vega takes
/// 30-minute appointments all day (UTC) in her room.
async fn two_nodes_with_mail(
    smtp: &SmtpServer,
) -> (
    crate::kit::cluster::Cluster,
    examroom::ids::StaffId,
    examroom::visit::RoomConfig,
) {
    use crate::kit::cluster::Cluster;
    use examroom::durable::appointments::StoredSchedule;
    let port = smtp.port.to_string();
    let env = [
        ("EXAMROOM__MAIL__HOST", "127.0.0.1"),
        ("EXAMROOM__MAIL__PORT", port.as_str()),
        ("EXAMROOM__MAIL__TLS", "none"),
        ("EXAMROOM__MAIL__USERNAME", ""),
        ("EXAMROOM__MAIL__FROM_ADDRESS", "citas@clinic.test"),
        ("EXAMROOM__APPOINTMENTS__OUTBOX_POLL_SECS", "1"),
    ];
    let c = Cluster::start_with(2, &crate::kit::services::redis_url(), &env).await;
    let doc = c.physician("Dra. Vega").await;
    let room = c.room(examroom::visit::RoomKind::Physician, &[&doc]).await;
    let all_day = examroom::scheduling::Span {
        start: chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
    };
    let schedule = examroom::scheduling::Schedule {
        zone: chrono_tz::UTC,
        weekly: std::array::from_fn(|_| vec![all_day]),
        exceptions: vec![],
        visit_types: vec![examroom::scheduling::VisitType::single(
            chrono::Duration::minutes(30),
        )],
        buffer: chrono::Duration::zero(),
    };
    c.store
        .put_schedule(&StoredSchedule {
            staff: doc.clone(),
            room: room.id.clone(),
            schedule,
            updated_at: 0,
        })
        .await
        .unwrap();
    (c, doc, room)
}

/// A booking made through one node and confirmed through the other sends its code and its
/// confirmation once each.
#[tokio::test]
async fn two_nodes_send_each_notice_once() {
    let smtp = SmtpServer::start(SmtpOptions::plain_local()).await;
    let (c, doc, _) = two_nodes_with_mail(&smtp).await;
    let now = chrono::Utc::now().timestamp_millis();
    let start = (now / 1_800_000 + 4) * 1_800_000;
    let (s, held) = c.nodes[0]
        .post(
            "/api/booking",
            json!({"physician": doc, "starts_at": start, "name": "Ana Ruiz",
                   "email": "ana@example.org", "birth_date": "1980-04-23",
                   "reason": "control", "lang": "es", "consent": true}),
        )
        .await;
    assert_eq!(s, 201, "{held}");
    let code_mail = smtp.next_for("ana@example.org").await;
    let code = code_in(&code_mail.parsed().body_text(0).unwrap());
    let id = held["appointment"].as_str().unwrap();
    let (s, confirmed) = c.nodes[1]
        .post(
            &format!("/api/booking/{id}/confirm"),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(s, 200, "{confirmed}");
    let booked = smtp.next_for("ana@example.org").await;
    assert!(
        booked
            .parsed()
            .subject()
            .unwrap()
            .starts_with("Cita reservada")
    );
    // Both workers pass several times more: nothing else goes out.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(smtp.count(), 2, "the code and the confirmation, once each");
}

/// A confirmed appointment's reminder falls due while both nodes' workers run: it reaches
/// the patient once, and not before its time.
///
/// The appointment is written through the store API, as `Appointments::confirm` writes it
/// (the appointment, its join link, its reminder notice, in one transaction): booking over
/// HTTP places reminders at `reminder_offsets_mins` before the start, at least minutes
/// away, and this test wants one due seconds from now.
#[tokio::test]
async fn two_nodes_send_a_due_reminder_once_at_its_time() {
    use examroom::durable::appointments::{
        AppointmentChange, NewAppointment, NewNotice, NoticeKind, NoticeStatus,
    };
    use examroom::durable::{LinkKind, NewLink};
    use examroom::ids::{AppointmentId, LinkId, NoticeId, VisitId};
    const HOUR: i64 = 3_600_000;
    let smtp = SmtpServer::start(SmtpOptions::plain_local()).await;
    let (c, doc, room) = two_nodes_with_mail(&smtp).await;
    let now = chrono::Utc::now().timestamp_millis();
    // Due five seconds from now, an hour before a start on the half hour.
    let starts_at = (now / 1_800_000 + 3) * 1_800_000;
    let due = now + 5_000;
    let id = AppointmentId::new();
    c.store
        .book(
            NewAppointment {
                id: id.clone(),
                physician: doc.clone(),
                room: room.id.clone(),
                visit_type: examroom::scheduling::VisitTypeKey::default_key(),
                visit_name: String::new(),
                starts_at,
                ends_at: starts_at + HOUR / 2,
                busy_until: starts_at + HOUR / 2,
                hold_until: now + HOUR / 4,
                patient_name: "Ana Ruiz".into(),
                email: Some("ana@example.org".into()),
                phone: None,
                birth_date: "1980-04-23".into(),
                reason: "Erupción en el brazo".into(),
                lang: "es".into(),
                consent: true,
                created_at: now,
            },
            vec![],
        )
        .await
        .unwrap();
    let link = NewLink {
        id: LinkId::new(),
        code_hash: examroom::ids::random_id() + &examroom::ids::random_id(),
        kind: LinkKind::Patient,
        room: room.id.clone(),
        visit: VisitId::new(),
        patient_name: Some("Ana Ruiz".into()),
        patient_ref: None,
        reason: Some("Erupción en el brazo".into()),
        lang: Some("es".into()),
        not_before: Some(starts_at - HOUR / 4),
        expires_at: starts_at + HOUR / 2,
        created_by: doc.clone(),
        created_at: now,
    };
    let reminder = NewNotice {
        id: NoticeId::new(),
        kind: NoticeKind::Reminder,
        lead_secs: Some((starts_at - due) / 1000),
        channel: "email".into(),
        due_at: due,
    };
    let change = AppointmentChange {
        id: id.clone(),
        now,
        notices: vec![reminder],
    };
    let manage_hash = examroom::ids::random_id();
    c.store
        .confirm(&id, &manage_hash, link, change)
        .await
        .unwrap();

    // Watch the inbox every 50 ms: the first look that finds the message is at most 50 ms
    // after it arrived, so a look before `due` that finds it means it went out early.
    let seen_at = loop {
        if smtp.count() > 0 {
            break chrono::Utc::now().timestamp_millis();
        }
        assert!(
            chrono::Utc::now().timestamp_millis() < due + 60_000,
            "no reminder a minute after it fell due"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        seen_at >= due,
        "the reminder arrived {} ms before its time",
        due - seen_at
    );
    let mail = smtp.next_for("ana@example.org").await;
    let m = mail.parsed();
    assert!(
        m.subject().unwrap().starts_with("Recordatorio"),
        "{:?}",
        m.subject()
    );
    assert!(
        !m.body_text(0).unwrap().contains("Erupci"),
        "no reason in a notice"
    );
    // Both workers pass several times more: it is not sent again.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(smtp.count(), 1, "the reminder, once");
    let notices = c.store.notices_of(&id).await.unwrap();
    assert_eq!(notices.len(), 1);
    let n = &notices[0];
    assert_eq!((n.status, n.attempts), (NoticeStatus::Sent, 1), "{n:?}");
    assert!(n.done_at.is_some_and(|t| t >= due), "{n:?}");
}
