//! Booking over HTTP (issue 21), as a patient and a physician would: the physician sets a
//! schedule, a patient lists free slots, books, gets a code, confirms, opens the join link
//! at the appointment time and is admitted; moves and cancels through the manage link;
//! bad input changes nothing.
//!
//! Notices go to a recording courier here: the mail and text couriers are built on branch
//! `notify` (a real SMTP server process in its tests); until they are wired in, this is the
//! edge of what these tests can run. Everything else is the real server on SQLite.

use crate::kit::{Client, EVERY_DAY, TestApp, admit, open_all_day};
use examroom::config::Settings;
use examroom::ids::{Role, RoomId, StaffId, VisitId};
use examroom::notify::{Channel, Courier, CourierError, Notice, NoticeKind, Recipient};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records every notice it is handed (a `std` mutex: held for a push, never across an await).
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<(Recipient, Notice)>>,
    /// Refuse texts as a provider refuses a number it cannot reach.
    refuse_texts: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Courier for Recording {
    fn channels(&self) -> Vec<Channel> {
        vec![Channel::Email, Channel::Text]
    }
    async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError> {
        let refuse = self.refuse_texts.load(std::sync::atomic::Ordering::SeqCst);
        if refuse && to.channel == Channel::Text {
            return Err(CourierError::Refused(
                "21211 invalid 'To' phone number".into(),
            ));
        }
        self.sent.lock().unwrap().push((to.clone(), notice.clone()));
        Ok(())
    }
}

impl Recording {
    /// Waits (up to 10 s) for the `n`-th notice to `address`.
    async fn nth_to(&self, address: &str, n: usize) -> Notice {
        for _ in 0..200 {
            let found = self
                .sent
                .lock()
                .unwrap()
                .iter()
                .filter(|(to, _)| to.address == address)
                .nth(n)
                .map(|(_, notice)| notice.clone());
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no notice #{n} to the patient within 10 s");
    }

    async fn code_for(&self, address: &str) -> String {
        match self.nth_to(address, 0).await.kind {
            NoticeKind::ContactCode { code } => code,
            other => panic!("the first notice should be the code, got {other:?}"),
        }
    }
}

struct Booking {
    app: TestApp,
    courier: Arc<Recording>,
    doc: StaffId,
    doc_token: String,
    room: RoomId,
}

/// Dr Vega (speaks Spanish) takes 30-minute appointments every day, all day, in Madrid.
async fn clinic(f: impl FnOnce(&mut Settings)) -> Booking {
    let courier = Arc::new(Recording::default());
    let app = TestApp::spawn_with_courier(courier.clone(), f).await;
    let doc = app.physician_speaking("Dr Vega", &["es", "en"], "f").await;
    let room = app
        .room("Vega", examroom::visit::RoomKind::Physician, &[&doc])
        .await;
    let doc_token = app.staff_token(&doc, vec![Role::Physician]).await;
    app.bookable_all_day(&doc_token, &room.id, "Europe/Madrid")
        .await;
    Booking {
        app,
        courier,
        doc,
        doc_token,
        room: room.id,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Booking {
    /// The booking page's answer for the slots from `from` to `to` (unix ms), `query`
    /// appended.
    async fn slots_between(&self, from: i64, to: i64, query: &str) -> (u16, Value) {
        self.app
            .call_json(
                "GET",
                &format!("/api/booking/slots?from={from}&to={to}{query}"),
                None,
                None,
            )
            .await
    }

    /// Free slot starts of Dr Vega over the next two days, as the booking page lists them.
    async fn slots(&self, query: &str) -> Vec<i64> {
        let from = now_ms();
        let to = from + 2 * 86_400_000;
        let (s, body) = self.slots_between(from, to, query).await;
        assert_eq!(s, 200, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["slots"].as_array().unwrap().clone())
            .map(|s| s["starts_at"].as_i64().unwrap())
            .collect()
    }

    fn ana(&self, starts_at: i64) -> Value {
        json!({"physician": self.doc, "starts_at": starts_at, "name": "Ana Ruiz",
               "email": "ana@example.org", "phone": "+34 600 11 12 22",
               "birth_date": "1980-04-23", "reason": "Erupción en el brazo", "lang": "es",
               "consent": true})
    }

    async fn book(&self, body: Value) -> (u16, Value) {
        self.app
            .call_json("POST", "/api/booking", None, Some(body))
            .await
    }

    async fn confirm(&self, id: &str, code: &str) -> (u16, Value) {
        self.app
            .call_json(
                "POST",
                &format!("/api/booking/{id}/confirm"),
                None,
                Some(json!({ "code": code })),
            )
            .await
    }

    /// Books `starts_at` for Ana and confirms it with the code she was sent.
    async fn booked(&self, starts_at: i64) -> Value {
        let (s, held) = self.book(self.ana(starts_at)).await;
        assert_eq!(s, 201, "{held}");
        let code = self.courier.code_for("ana@example.org").await;
        let (s, confirmed) = self
            .confirm(held["appointment"].as_str().unwrap(), &code)
            .await;
        assert_eq!(s, 200, "{confirmed}");
        confirmed
    }

    async fn appointments(&self) -> Vec<Value> {
        let (s, body) = self
            .app
            .call_json("GET", "/api/appointments", Some(&self.doc_token), None)
            .await;
        assert_eq!(s, 200, "{body}");
        body.as_array().unwrap().clone()
    }
}

fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('#').next().unwrap()
}

#[tokio::test]
async fn a_patient_books_in_spanish_confirms_with_the_code_joins_and_is_admitted() {
    // The join link opens two hours before, so the first slot of the day can be joined now.
    let b = clinic(|s| s.appointments.join_before_mins = 120).await;
    let slots = b.slots("&language=es&gender=f").await;
    assert!(slots.len() > 40, "a day and more of 30-minute slots");
    assert!(
        b.slots("&language=de").await.is_empty(),
        "nobody speaks German"
    );
    // Languages match as walk-in pairing and the directory match them: on the primary subtag.
    assert!(!b.slots("&language=es-MX&gender=f").await.is_empty());
    let first = slots[0];

    let (s, held) = b.book(b.ana(first)).await;
    assert_eq!(s, 201, "{held}");
    assert_eq!(held["channels"], json!(["email", "text"]));
    let id = held["appointment"].as_str().unwrap().to_owned();
    // The code went to both contacts, in Spanish, without the reason.
    let code = b.courier.code_for("ana@example.org").await;
    let by_text = b.courier.nth_to("+34600111222", 0).await;
    assert_eq!(by_text.kind, NoticeKind::ContactCode { code: code.clone() });
    assert_eq!(by_text.lang, "es");
    assert!(!format!("{by_text:?}").contains("Erupción"));
    // Held: no longer offered.
    assert!(!b.slots("").await.contains(&first));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, refused) = b.confirm(&id, wrong).await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (422, Some("wrong_code")),
        "{refused}"
    );
    let (s, confirmed) = b.confirm(&id, &code).await;
    assert_eq!(s, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    let booked = b.courier.nth_to("ana@example.org", 1).await;
    assert_eq!(booked.kind, NoticeKind::Booked);
    let facts = booked.appointment.unwrap();
    assert_eq!(facts.starts_at.timestamp_millis(), first);
    assert_eq!(facts.physician_name, "Dr Vega");
    assert_eq!(facts.zone, chrono_tz::Europe::Madrid);
    assert_eq!(
        booked.links.join.as_deref(),
        confirmed["join_url"].as_str(),
        "the mail carries the same join link"
    );

    // The physician sees it with its time and reason.
    let list = b.appointments().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["reason"], "Erupción en el brazo");
    assert_eq!(list[0]["starts_at"], json!(first));

    // At the appointment time the join link opens Dr Vega's waiting room.
    let code = last_segment(confirmed["join_url"].as_str().unwrap());
    let (s, joined) = b.app.redeem(code, "ana-phone-device-0001").await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["room"]["id"], json!(b.room));
    assert_eq!(joined["lang"], "es");
    let visit: VisitId = serde_json::from_value(joined["visit"].clone()).unwrap();
    // The physician's list names the visit, so the queue can mark Ana as booked.
    assert_eq!(b.appointments().await[0]["visit"], joined["visit"]);
    let mut doc = b.app.join(&b.doc_token).await;
    let mut ana = Client::join(
        &format!("ws://{}/ws", b.app.addr),
        joined["token"].as_str().unwrap(),
        None,
    )
    .await;
    ana.expect("waiting").await;
    let queued = doc
        .expect_where("queue", |m| {
            m["entries"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await;
    assert_eq!(queued["entries"][0]["name"], "Ana Ruiz");
    admit(&mut doc, &mut ana, &b.room, &visit).await;
}

#[tokio::test]
async fn the_manage_link_moves_atomically_and_cancels_and_the_old_time_is_free_at_once() {
    let b = clinic(|_| {}).await;
    let slots = b.slots("").await;
    let (nine, later) = (slots[4], slots[10]);
    let confirmed = b.booked(nine).await;
    let token = last_segment(confirmed["manage_url"].as_str().unwrap()).to_owned();
    let (s, view) = b
        .app
        .call_json("GET", &format!("/api/manage/{token}"), None, None)
        .await;
    assert_eq!((s, view["starts_at"].as_i64()), (200, Some(nine)));
    assert!(
        view.get("reason").is_none(),
        "the manage view shows no reason"
    );

    let (s, moved) = b
        .app
        .call_json(
            "POST",
            &format!("/api/manage/{token}/move"),
            None,
            Some(json!({ "starts_at": later })),
        )
        .await;
    assert_eq!(
        (s, moved["starts_at"].as_i64()),
        (200, Some(later)),
        "{moved}"
    );
    let free = b.slots("").await;
    assert!(
        free.contains(&nine),
        "the old time is offered again at once"
    );
    assert!(!free.contains(&later));
    let notice = b.courier.nth_to("ana@example.org", 2).await;
    assert_eq!(notice.kind, NoticeKind::Moved);
    assert_eq!(
        notice.appointment.unwrap().starts_at.timestamp_millis(),
        later
    );

    // Moving to a time that is not a slot (a minute past one) is refused and changes nothing.
    let (s, refused) = b
        .app
        .call_json(
            "POST",
            &format!("/api/manage/{token}/move"),
            None,
            Some(json!({ "starts_at": nine + 60_000 })),
        )
        .await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (422, Some("slot_unavailable"))
    );
    assert_eq!(b.appointments().await[0]["starts_at"], json!(later));

    let (s, cancelled) = b
        .app
        .call_json("POST", &format!("/api/manage/{token}/cancel"), None, None)
        .await;
    assert_eq!((s, cancelled["status"].as_str()), (200, Some("cancelled")));
    assert!(b.slots("").await.contains(&later));
    assert_eq!(
        b.courier.nth_to("ana@example.org", 3).await.kind,
        NoticeKind::Cancelled
    );
    let (s, _) = b
        .app
        .call_json("POST", &format!("/api/manage/{token}/cancel"), None, None)
        .await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn bad_bookings_get_clear_errors_and_write_nothing() {
    let b = clinic(|_| {}).await;
    let slot = b.slots("").await[3];
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"starts_at": now_ms() - 3_600_000}),
            422,
            "slot_unavailable",
            "starts_at",
        ),
        (
            json!({"starts_at": slot + 60_000}),
            422,
            "slot_unavailable",
            "starts_at",
        ),
        (
            json!({"name": "x".repeat(201)}),
            422,
            "invalid_field",
            "name",
        ),
        (
            json!({"reason": "y".repeat(501)}),
            422,
            "invalid_field",
            "reason",
        ),
        (
            json!({"phone": "600 11 12 22"}),
            422,
            "invalid_field",
            "phone",
        ),
        (
            json!({"email": "ana@example"}),
            422,
            "invalid_field",
            "email",
        ),
        (
            json!({"email": null, "phone": null}),
            422,
            "invalid_field",
            "email",
        ),
        (
            json!({"birth_date": "2999-01-01"}),
            422,
            "invalid_field",
            "birth_date",
        ),
        (json!({"consent": false}), 422, "invalid_field", "consent"),
        (json!({"lang": "español"}), 422, "invalid_field", "lang"),
        (json!({"physician": StaffId::new()}), 404, "not_found", ""),
    ];
    for (change, status, code, field) in cases {
        let mut body = b.ana(slot);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, refused) = b.book(body).await;
        assert_eq!(
            (s, refused["error"].as_str()),
            (status, Some(code)),
            "{change}: {refused}"
        );
        if !field.is_empty() {
            assert_eq!(refused["field"], field, "{change}");
        }
    }
    assert!(b.appointments().await.is_empty(), "nothing was written");
    assert!(
        b.courier.sent.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn without_a_courier_booking_says_reminders_are_off_and_the_server_runs() {
    let app = TestApp::spawn().await;
    let (doc, token, room) = app.physician_with_room("vega", "Vega").await;
    let (s, _) = app
        .call_json(
            "PUT",
            "/api/my/schedule",
            Some(&token),
            Some(
                json!({"room": room.id, "zone": "UTC", "weekly": {"mon": ["09:00-12:00"]},
                        "visit_mins": 30}),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let (s, info) = app.call_json("GET", "/api/booking", None, None).await;
    assert_eq!((s, info["channels"].clone()), (200, json!([])));
    let (s, refused) = app
        .call_json(
            "POST",
            "/api/booking",
            None,
            Some(
                json!({"physician": doc, "starts_at": now_ms() + 86_400_000, "name": "Ana",
                        "email": "ana@example.org", "birth_date": "1980-04-23",
                        "reason": "check-up", "lang": "en", "consent": true}),
            ),
        )
        .await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (503, Some("reminders_off")),
        "{refused}"
    );
}

#[tokio::test]
async fn a_contact_cannot_flood_the_calendar() {
    let b = clinic(|s| s.appointments.bookings_per_contact_per_day = 2).await;
    let slots = b.slots("").await;
    for slot in &slots[..2] {
        let (s, body) = b.book(b.ana(*slot)).await;
        assert_eq!(s, 201, "{body}");
    }
    let res = reqwest::Client::new()
        .post(b.app.url("/api/booking"))
        .json(&b.ana(slots[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn concurrent_bookers_over_http_one_wins_the_rest_hear_slot_taken() {
    let b = clinic(|s| {
        s.appointments.bookings_per_ip_per_hour = 1000;
    })
    .await;
    let slot = b.slots("").await[2];
    let b = Arc::new(b);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut body = b.ana(slot);
                body["email"] = json!(format!("p{i}@example.org"));
                body["phone"] = Value::Null;
                b.book(body).await
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let (s, body) = t.await.unwrap();
        codes.push((s, body["error"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        codes.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .filter(|(s, _)| *s != 201)
            .all(|(s, e)| *s == 409 && e.as_deref() == Some("slot_taken")),
        "{codes:?}"
    );
}

#[tokio::test]
async fn staff_see_their_own_appointments_and_admins_all_and_no_shows_are_counted() {
    let b = clinic(|_| {}).await;
    let slot = b.slots("").await[1];
    let confirmed = b.booked(slot).await;
    let other = b.app.physician("Dr Roca").await;
    let other_token = b.app.staff_token(&other, vec![Role::Physician]).await;
    let (s, list) = b
        .app
        .call_json("GET", "/api/appointments", Some(&other_token), None)
        .await;
    assert_eq!((s, list), (200, json!([])));
    let id = confirmed["id"].as_str().unwrap();
    let (s, refused) = b
        .app
        .call_json(
            "POST",
            &format!("/api/appointments/{id}/cancel"),
            Some(&other_token),
            None,
        )
        .await;
    assert_eq!(s, 403, "{refused}");
    let (_, admin) = b.app.admin().await;
    let (s, all) = b
        .app
        .call_json("GET", "/api/appointments", Some(&admin), None)
        .await;
    assert_eq!((s, all.as_array().unwrap().len()), (200, 1));
    let (s, stats) = b
        .app
        .call_json("GET", "/api/appointments/stats", Some(&admin), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (stats["confirmed"].as_u64(), stats["no_shows"].as_u64()),
        (Some(1), Some(0))
    );
    // Its join link closes unopened: a no-show, counted.
    let swept = b
        .app
        .state
        .durable
        .mark_appointment_no_shows(slot + 31 * 60_000)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    let (_, stats) = b
        .app
        .call_json("GET", "/api/appointments/stats", Some(&admin), None)
        .await;
    assert_eq!(stats["no_shows"].as_u64(), Some(1));
    assert_eq!(stats["no_show_rate"].as_f64(), Some(1.0));
}

#[tokio::test]
async fn the_openapi_document_covers_every_appointment_route() {
    let app = TestApp::spawn().await;
    let (s, doc) = app.call_json("GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, 200);
    let ours = [
        "/api/booking",
        "/api/manage/",
        "/api/appointments",
        "/schedule",
    ];
    let mut checked = 0;
    for r in examroom::http::routes::ROUTES {
        if !ours.iter().any(|p| r.path.contains(p)) {
            continue;
        }
        let method = r.method.to_lowercase();
        assert!(
            doc["paths"][r.path][&method].is_object(),
            "{} {} is not in the OpenAPI document",
            r.method,
            r.path
        );
        checked += 1;
    }
    assert_eq!(checked, 17);
}

#[tokio::test]
async fn hours_follow_the_physicians_clock_across_the_spring_change() {
    // New York, 2027-03-14: 02:00 EST becomes 03:00 EDT. Dr Vega works 09:00-10:00.
    let b = clinic(|s| s.appointments.book_ahead_days = 365).await;
    let (s, _) = b
        .app
        .call_json(
            "PUT",
            "/api/my/schedule",
            Some(&b.doc_token),
            Some(json!({"room": b.room, "zone": "America/New_York",
                        "weekly": {"sat": ["09:00-10:00"], "sun": ["09:00-10:00"]},
                        "visit_mins": 30})),
        )
        .await;
    assert_eq!(s, 200);
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let (from, to) = (at("2027-03-13T00:00:00Z"), at("2027-03-15T00:00:00Z"));
    let (s, body) = b.slots_between(from, to, "").await;
    assert_eq!(s, 200, "{body}");
    let starts: Vec<i64> = body[0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["starts_at"].as_i64().unwrap())
        .collect();
    // Saturday 09:00 EST is 14:00Z; Sunday 09:00 EDT is 13:00Z.
    assert_eq!(
        starts,
        [
            at("2027-03-13T14:00:00Z"),
            at("2027-03-13T14:30:00Z"),
            at("2027-03-14T13:00:00Z"),
            at("2027-03-14T13:30:00Z")
        ]
    );
}

#[tokio::test]
async fn opting_out_drops_the_reminders_and_refused_notices_are_listed_for_admins() {
    let b = clinic(|_| {}).await;
    b.courier
        .refuse_texts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Five hours ahead: the reminder an hour before is due later; the one a day before
    // would be in the past and is not written.
    let slot = b.slots("").await[10];
    let confirmed = b.booked(slot).await;
    let id: examroom::ids::AppointmentId = serde_json::from_value(confirmed["id"].clone()).unwrap();
    let notices = b.app.state.durable.notices_of(&id).await.unwrap();
    let pending_reminders = |ns: &[examroom::durable::appointments::StoredNotice]| {
        ns.iter()
            .filter(|n| {
                n.kind == examroom::durable::appointments::NoticeKind::Reminder
                    && n.status == examroom::durable::appointments::NoticeStatus::Pending
            })
            .map(|n| n.lead_secs)
            .collect::<Vec<_>>()
    };
    // One per channel (e-mail and text), an hour before.
    assert_eq!(pending_reminders(&notices), [Some(3600), Some(3600)]);
    let token = last_segment(confirmed["manage_url"].as_str().unwrap()).to_owned();
    let (s, view) = b
        .app
        .call_json(
            "POST",
            &format!("/api/manage/{token}/reminders-off"),
            None,
            None,
        )
        .await;
    assert_eq!((s, view["reminders_off"].as_bool()), (200, Some(true)));
    let notices = b.app.state.durable.notices_of(&id).await.unwrap();
    assert!(
        pending_reminders(&notices).is_empty(),
        "no reminder is left to send"
    );

    // The text code and confirmation were refused by the provider: admins see both, with
    // what it said, and never the number.
    let (_, admin) = b.app.admin().await;
    let mut failed = json!([]);
    for _ in 0..100 {
        let (s, report) = b
            .app
            .call_json(
                "GET",
                "/api/appointments/notices/failed",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, 200);
        failed = report["failed"].clone();
        if failed.as_array().unwrap().len() == 2 {
            assert_eq!(report["channels"], json!(["email", "text"]));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<_> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["channel"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.len(), 2, "{failed}");
    assert!(kinds.contains(&("code", "text")) && kinds.contains(&("booked", "text")));
    assert!(failed.to_string().contains("21211"));
    // The number in any form it was given or stored in; not a bare "600", which a
    // millisecond timestamp in the report can hold by chance.
    let report = failed.to_string();
    for number in ["+34600111222", "600111222", "600 11 12 22", "11 12 22"] {
        assert!(
            !report.contains(number),
            "no phone number in the report: {report}"
        );
    }
    let (s, _) = b
        .app
        .call_json(
            "GET",
            "/api/appointments/notices/failed",
            Some(&b.doc_token),
            None,
        )
        .await;
    assert_eq!(s, 403, "physicians do not see the notice report");
}

#[tokio::test]
async fn visit_types_are_set_listed_and_booked_with_their_own_lengths() {
    let b = clinic(|_| {}).await;
    let put = |body: Value| {
        let (app, token) = (&b.app, b.doc_token.clone());
        async move {
            app.call_json("PUT", "/api/my/schedule", Some(&token), Some(body))
                .await
        }
    };
    let weekly = open_all_day(&EVERY_DAY);
    let types = json!([{"key": "first", "name": "Primera visita", "mins": 40},
                       {"key": "follow-up", "name": "Seguimiento", "mins": 20}]);
    // Off the 5-minute grid, duplicate keys, a bad key, a start at 09:07: refused, named,
    // and the schedule stays as it was.
    for (bad, field) in [
        (
            json!({"visit_types": [{"key": "first", "mins": 42}]}),
            "visit_types",
        ),
        (
            json!({"visit_types": [{"key": "a", "mins": 20}, {"key": "a", "mins": 40}]}),
            "visit_types",
        ),
        (
            json!({"visit_types": [{"key": "Follow up", "mins": 20}]}),
            "visit_types",
        ),
        (json!({"visit_mins": 30, "buffer_mins": 7}), "buffer_mins"),
        (
            json!({"visit_mins": 30, "weekly": {"mon": ["09:07-12:00"]}}),
            "weekly",
        ),
        (
            json!({"visit_types": types, "visit_mins": 30}),
            "visit_mins",
        ),
    ] {
        let mut body = json!({"room": b.room, "zone": "Europe/Madrid", "weekly": weekly});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (s, refused) = put(body).await;
        assert_eq!(
            (s, refused["error"].as_str(), refused["field"].as_str()),
            (422, Some("invalid_field"), Some(field)),
            "{bad}: {refused}"
        );
    }
    let (_, info) = b.app.call_json("GET", "/api/booking", None, None).await;
    assert_eq!(
        info["physicians"][0]["visit_types"],
        json!([{"key": "visit", "name": "", "mins": 30}]),
        "the schedule set with visit_mins is unchanged: one type of 30 minutes"
    );

    let (s, set) = put(
        json!({"room": b.room, "zone": "Europe/Madrid", "weekly": weekly,
                              "visit_types": types, "buffer_mins": 5}),
    )
    .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        (set["visit_types"].clone(), set["visit_mins"].clone()),
        (types.clone(), json!(40))
    );
    let (_, info) = b.app.call_json("GET", "/api/booking", None, None).await;
    assert_eq!(info["physicians"][0]["visit_types"], types);

    // Each type's slots last its length; the default is the first.
    let length = |query: &'static str| {
        let b = &b;
        async move {
            let (from, to) = (now_ms(), now_ms() + 86_400_000);
            let (s, body) = b.slots_between(from, to, query).await;
            assert_eq!(s, 200, "{body}");
            let slot = &body[0]["slots"][2];
            (
                body[0]["visit_type"].as_str().unwrap().to_owned(),
                slot["starts_at"].as_i64().unwrap(),
                slot["ends_at"].as_i64().unwrap() - slot["starts_at"].as_i64().unwrap(),
            )
        }
    };
    let (kind, _, mins) = length("").await;
    assert_eq!((kind.as_str(), mins), ("first", 40 * 60_000));
    let (kind, _, mins) = length("&visit_type=follow-up").await;
    assert_eq!((kind.as_str(), mins), ("follow-up", 20 * 60_000));
    let (s, refused) = b
        .slots_between(now_ms(), now_ms() + 86_400_000, "&visit_type=Nope!")
        .await;
    assert_eq!((s, refused["field"].as_str()), (422, Some("visit_type")));

    // A first visit and a follow-up that starts inside it (not at its start).
    let starts = |query: &'static str| {
        let b = &b;
        async move {
            let (from, to) = (now_ms(), now_ms() + 86_400_000);
            let (_, body) = b.slots_between(from, to, query).await;
            body[0]["slots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["starts_at"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let first = starts("").await[2];
    let follow_up = *starts("&visit_type=follow-up")
        .await
        .iter()
        .find(|u| first < **u && **u < first + 40 * 60_000)
        .expect("a follow-up starting inside the first visit");
    // The follow-up is booked: held for 20 minutes, and listed with its type.
    let mut body = b.ana(follow_up);
    body["visit_type"] = json!("follow-up");
    let (s, held) = b.book(body).await;
    assert_eq!(s, 201, "{held}");
    assert_eq!(held["visit_type"], "follow-up");
    assert_eq!(
        held["ends_at"].as_i64().unwrap() - held["starts_at"].as_i64().unwrap(),
        20 * 60_000
    );
    let listed = b.appointments().await;
    assert_eq!(
        (
            listed[0]["visit_type"].as_str(),
            listed[0]["visit_name"].as_str()
        ),
        (Some("follow-up"), Some("Seguimiento"))
    );
    // The first visit it overlaps is no longer offered, and booking it is refused.
    assert!(!starts("").await.contains(&first));
    let mut body = b.ana(first);
    body["visit_type"] = json!("first");
    body["email"] = json!("luis@example.org");
    body["phone"] = Value::Null;
    let (s, refused) = b.book(body.clone()).await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (409, Some("slot_taken")),
        "{refused}"
    );
    body["visit_type"] = json!("nope");
    let (s, refused) = b.book(body).await;
    assert_eq!(
        (s, refused["field"].as_str()),
        (422, Some("visit_type")),
        "{refused}"
    );
    assert_eq!(
        b.appointments().await.len(),
        1,
        "the refused bookings wrote nothing"
    );
}
