//! Referrals (issue 22): a physician refers the patient of their visit to another
//! physician, who accepts or declines; the patient sees it through their link.

use crate::kit::TestApp;
use examroom::identity::Role;
use examroom::visit::RoomKind;
use serde_json::{Value, json};

struct Clinic {
    app: TestApp,
    grey: examroom::ids::StaffId,
    grey_token: String,
    shepherd: examroom::ids::StaffId,
    shepherd_token: String,
    room: examroom::ids::RoomId,
}

async fn clinic() -> Clinic {
    let app = TestApp::spawn().await;
    let (grey, grey_token, room) = app.physician_with_room("Dr Grey", "Family medicine").await;
    let shepherd = app.physician("Dr Shepherd").await;
    let shepherd_token = app.staff_token(&shepherd, vec![Role::Physician]).await;
    Clinic {
        app,
        grey,
        grey_token,
        shepherd,
        shepherd_token,
        room: room.id,
    }
}

impl Clinic {
    /// Dr Grey sees `patient` through a whole visit.
    async fn visit(&self, patient: &str) -> examroom::ids::VisitId {
        let mut doc = self.app.join(&self.grey_token).await;
        self.app
            .visit_to_the_end(&mut doc, &self.room, patient)
            .await
    }

    /// A POST of `body` to `path` with `token`.
    async fn post(&self, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app.call_json("POST", path, Some(token), body).await
    }

    /// A GET of `path` with `token`.
    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.app.call_json("GET", path, Some(token), None).await
    }

    async fn refer(&self, token: &str, body: Value) -> (u16, Value) {
        self.post(token, "/api/referrals", Some(body)).await
    }
}

#[tokio::test]
async fn a_physician_refers_the_receiver_accepts_once_and_the_patient_sees_it() {
    let c = clinic().await;
    let visit = c.visit("Ana").await;
    let (s, made) = c
        .refer(&c.grey_token, json!({"visit": visit, "to": c.shepherd, "reason": "Murmur on auscultation; echo please.", "urgency": "urgent"}))
        .await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(
        (made["status"].as_str(), made["to_name"].as_str()),
        (Some("pending"), Some("Dr Shepherd"))
    );
    let id = made["id"].as_str().unwrap().to_owned();

    // The receiver's inbox and the sender's sent list.
    let (_, inbox) = c.get(&c.shepherd_token, "/api/referrals?box=inbox").await;
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    assert_eq!(inbox[0]["reason"], "Murmur on auscultation; echo please.");
    assert_eq!(inbox[0]["from_name"], "Dr Grey");
    let (_, sent) = c.get(&c.grey_token, "/api/referrals?box=sent").await;
    assert_eq!(sent[0]["id"], json!(id));
    let (_, none) = c.get(&c.grey_token, "/api/referrals").await;
    assert_eq!(none, json!([]), "nothing was referred to Dr Grey");

    // Accepted once; a second answer is refused and changes nothing.
    let path = format!("/api/referrals/{id}/accept");
    let (s, done) = c
        .post(
            &c.shepherd_token,
            &path,
            Some(json!({"note": "Booked for Tuesday."})),
        )
        .await;
    assert_eq!(
        (s, done["status"].as_str()),
        (200, Some("accepted")),
        "{done}"
    );
    let (s, again) = c
        .post(
            &c.shepherd_token,
            &format!("/api/referrals/{id}/decline"),
            None,
        )
        .await;
    assert_eq!(
        (s, again["error"].as_str()),
        (409, Some("referral_answered"))
    );

    // The patient, through her link's token, sees to whom and where it stands; not the
    // physicians' note.
    let patient = c
        .app
        .participant_token_for(&c.room, &visit, "Ana", Role::Patient);
    let (s, hers) = c
        .get(&patient, &format!("/api/visits/{visit}/referrals"))
        .await;
    assert_eq!(s, 200, "{hers}");
    assert_eq!(
        (hers[0]["to_name"].as_str(), hers[0]["status"].as_str()),
        (Some("Dr Shepherd"), Some("accepted"))
    );
    assert!(!hers.to_string().contains("Booked for Tuesday"), "{hers}");
    assert!(
        hers[0].get("book_url").is_none(),
        "Dr Shepherd takes no appointments online"
    );
    // Once Dr Shepherd takes appointments, the accepted referral says where to book.
    let room = c
        .app
        .room("Cardiology", RoomKind::Physician, &[&c.shepherd])
        .await;
    let weekly = json!({"mon": ["09:00-17:00"], "wed": ["09:00-17:00"]});
    let (s, body) = c
        .app
        .call_json(
            "PUT",
            "/api/my/schedule",
            Some(&c.shepherd_token),
            Some(json!({"room": room.id, "zone": "Europe/Madrid", "weekly": weekly, "visit_mins": 20})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, hers) = c
        .get(&patient, &format!("/api/visits/{visit}/referrals"))
        .await;
    let url = hers[0]["book_url"].as_str().unwrap_or_default();
    assert!(
        url.ends_with(&format!("/book?physician={}", c.shepherd)),
        "{hers}"
    );

    // Both steps are in the audit log, against the visit.
    let actions: Vec<String> = c
        .app
        .audited()
        .await
        .into_iter()
        .filter(|e| e.visit.as_ref() == Some(&visit))
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"referral.create".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"referral.accept".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn bad_referrals_get_a_clear_error_and_write_nothing() {
    let c = clinic().await;
    let visit = c.visit("Ana").await;
    let (_, admin) = c.app.admin().await;
    let admin_only = c
        .app
        .staff("Ada Only", vec![Role::Admin], vec![], None)
        .await;
    let ok = json!({"visit": visit, "to": c.shepherd, "reason": "Second opinion.", "urgency": "routine"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (token, body, status, code) in [
        (
            &c.grey_token,
            with("to", json!(c.grey)),
            422,
            "self_referral",
        ),
        (
            &c.grey_token,
            with("to", json!("s_nobody")),
            404,
            "unknown_physician",
        ),
        (
            &c.grey_token,
            with("to", json!(admin_only)),
            404,
            "unknown_physician",
        ),
        (
            &c.grey_token,
            with("visit", json!("v_nosuchvisit")),
            404,
            "unknown_visit",
        ),
        (
            &c.shepherd_token,
            with("to", json!(c.grey)),
            403,
            "not_your_visit",
        ),
        (
            &c.grey_token,
            with("reason", json!("   ")),
            422,
            "invalid_field",
        ),
        (
            &c.grey_token,
            with("reason", json!("x".repeat(2001))),
            422,
            "invalid_field",
        ),
        (
            &c.grey_token,
            with("urgency", json!("yesterday")),
            422,
            "invalid_field",
        ),
        (&admin, ok.clone(), 403, "not_physician"),
    ] {
        let (s, e) = c.refer(token, body.clone()).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (status, Some(code)),
            "{body}: {e}"
        );
    }
    let (_, sent) = c.get(&c.grey_token, "/api/referrals?box=sent").await;
    assert_eq!(sent, json!([]), "nothing was written");

    // One good referral; only its receiver may answer it.
    let (_, made) = c.refer(&c.grey_token, ok).await;
    let id = made["id"].as_str().unwrap();
    let (s, e) = c
        .post(&c.grey_token, &format!("/api/referrals/{id}/accept"), None)
        .await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_your_referral")));
    let (s, _) = c
        .post(&c.shepherd_token, "/api/referrals/f_nosuch/accept", None)
        .await;
    assert_eq!(s, 404);
    // Another visit's patient, and a guest of this one, see nothing of it.
    let other_room = c
        .app
        .room("Elsewhere", RoomKind::Physician, &[&c.shepherd])
        .await;
    let (other, _, _) = c.app.patient_token(&other_room.id, "Ben");
    let guest = c
        .app
        .participant_token_for(&c.room, &visit, "Interpreter", Role::Guest);
    for (token, code) in [(&other, "not_your_visit"), (&guest, "not_patient")] {
        let (s, e) = c
            .get(token, &format!("/api/visits/{visit}/referrals"))
            .await;
        assert_eq!((s, e["error"].as_str()), (403, Some(code)), "{e}");
    }
    let (s, _) = c
        .app
        .call_json("GET", &format!("/api/visits/{visit}/referrals"), None, None)
        .await;
    assert_eq!(s, 401);
}

/// The store file's ServiceRequests of `referral`, once `done` holds for them (the outbox
/// writes behind the answer; it is woken by it, so this is quick).
async fn service_requests(
    app: &TestApp,
    referral: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    use examroom::records::service_request::REFERRAL_SYSTEM;
    let file = app.dir.path().join("records/store.ndjson");
    let mut found = vec![];
    for _ in 0..100 {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        found = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["resourceType"] == "ServiceRequest")
            .filter(|r| examroom::records::visit_note::has_identifier(r, REFERRAL_SYSTEM, referral))
            .collect();
        if done(&found) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the referral never reached the record as expected: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_goes_into_the_patients_record_once_and_the_answer_updates_it() {
    let app = TestApp::spawn_with(|s| s.records.demo = true).await;
    let grey = app.physician("Dr Grey").await;
    let room = app.room("GP", RoomKind::Physician, &[&grey]).await;
    let grey_t = app.staff_token(&grey, vec![Role::Physician]).await;
    let shepherd = app.physician("Dr Shepherd").await;
    let shepherd_t = app.staff_token(&shepherd, vec![Role::Physician]).await;
    let mut doc = app.join(&grey_t).await;
    let visit =
        crate::records_writeback::confirmed_visit(&app, &mut doc, &room.id, "demo-patient-1").await;
    // The visit's note is in the record: the referral will point at its Encounter.
    let path = format!("/api/visits/{visit}/note");
    let note = crate::records_writeback::note("Palpitations");
    let (s, body) = app
        .call_json("POST", &path, Some(&grey_t), Some(note))
        .await;
    assert_eq!(s, 201, "{body}");
    let encounter = crate::records_writeback::in_record(&app, &visit, &grey_t).await["encounter"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, made) = app
        .call_json(
            "POST",
            "/api/referrals",
            Some(&grey_t),
            Some(json!({"visit": visit, "to": shepherd,
            "reason": "Palpitations with a murmur; echo please.", "urgency": "urgent"})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let held = service_requests(&app, &id, |f| !f.is_empty()).await;
    assert_eq!(held.len(), 1, "{held:?}");
    let sr = &held[0];
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["priority"], "urgent");
    assert_eq!(sr["subject"]["reference"], "Patient/demo-patient-1");
    assert_eq!(sr["requester"]["display"], "Dr Grey");
    assert_eq!(sr["performer"][0]["display"], "Dr Shepherd");
    assert_eq!(
        sr["reasonCode"][0]["text"],
        "Palpitations with a murmur; echo please."
    );
    assert_eq!(sr["encounter"]["reference"], encounter.as_str());

    // Declined: the same ServiceRequest, revoked, with the answer in its notes.
    let (s, body) = app
        .call_json(
            "POST",
            &format!("/api/referrals/{id}/decline"),
            Some(&shepherd_t),
            Some(json!({"note": "Cardiology at the hospital sees this faster."})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let held = service_requests(&app, &id, |f| f.iter().any(|r| r["status"] == "revoked")).await;
    assert_eq!(held.len(), 1, "one ServiceRequest per referral: {held:?}");
    assert_eq!(
        held[0]["note"][1]["text"],
        "Declined: Cardiology at the hospital sees this faster."
    );
    assert_eq!(held[0]["note"][1]["authorString"], "Dr Shepherd");

    // Nothing is left pending for admins, and both record writes are audited. The record
    // holds the answer a moment before the outbox marks it written: wait for that.
    let (_, admin) = app.admin().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending = loop {
        let (s, pending) = app
            .call_json("GET", "/api/record-writes", Some(&admin), None)
            .await;
        assert_eq!(s, 200);
        if pending == json!([]) || std::time::Instant::now() > deadline {
            break pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(pending, json!([]));
    let writes = app
        .audited()
        .await
        .into_iter()
        .filter(|e| e.action == "records.write" && e.sections == ["referral"])
        .count();
    assert_eq!(
        writes, 2,
        "the referral and its answer, each a record write"
    );
}

#[tokio::test]
async fn accepted_into_the_waiting_room_the_patient_follows_the_link_into_that_queue() {
    let c = clinic().await;
    let visit = c.visit("Ana").await;
    let (_, made) = c
        .refer(&c.grey_token, json!({"visit": visit, "to": c.shepherd, "reason": "Second opinion.", "urgency": "routine"}))
        .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let accept = format!("/api/referrals/{id}/accept");

    // Dr Shepherd has no waiting room yet: refused, and nothing is answered.
    let (s, e) = c
        .post(
            &c.shepherd_token,
            &accept,
            Some(json!({"waiting_room": true})),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str(), e["field"].as_str()),
        (404, Some("unknown_room"), Some("room")),
        "{e}"
    );
    // Declining into a waiting room makes no sense.
    let (s, e) = c
        .post(
            &c.shepherd_token,
            &format!("/api/referrals/{id}/decline"),
            Some(json!({"waiting_room": true})),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("waiting_room")), "{e}");
    // Dr Grey's room is not Dr Shepherd's to open.
    let (s, e) = c
        .post(
            &c.shepherd_token,
            &accept,
            Some(json!({"waiting_room": true, "room": c.room})),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("not_your_room")),
        "{e}"
    );
    let patient = c
        .app
        .participant_token_for(&c.room, &visit, "Ana", Role::Patient);
    let hers = format!("/api/visits/{visit}/referrals");
    let (_, before) = c.get(&patient, &hers).await;
    assert_eq!(before[0]["status"], "pending", "{before}");

    let cardio = c
        .app
        .room("Cardiology", RoomKind::Physician, &[&c.shepherd])
        .await;
    let (s, done) = c
        .post(
            &c.shepherd_token,
            &accept,
            Some(json!({"waiting_room": true})),
        )
        .await;
    assert_eq!(
        (s, done["status"].as_str()),
        (200, Some("accepted")),
        "{done}"
    );
    assert_eq!(done["join_room"], json!(cardio.id));

    // Ana's view carries the link; she follows it and waits in Dr Shepherd's room.
    let (_, view) = c.get(&patient, &hers).await;
    let url = view[0]["join_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{view}"));
    let expires = view[0]["join_expires_at"].as_i64().unwrap();
    let days = (expires - done["responded_at"].as_i64().unwrap()) / (24 * 3600 * 1000);
    assert_eq!(days, examroom::referrals::JOIN_LINK_DAYS);
    let code = url.rsplit('/').next().unwrap();
    let (s, joined) = c.app.redeem(code, "ana-phone-device-0001").await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["room"]["id"], json!(cardio.id));
    let mut shepherd = c.app.join(&c.shepherd_token).await;
    let mut ana = crate::kit::Client::join(
        &format!("ws://{}/ws", c.app.addr),
        joined["token"].as_str().unwrap(),
        None,
    )
    .await;
    ana.expect("waiting").await;
    let queued = shepherd
        .expect_where("queue", |m| {
            m["entries"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await;
    assert_eq!(queued["room"], json!(cardio.id), "{queued}");
    // The entry carries what the link carried over from the referral.
    assert_eq!(
        queued["entries"][0]["reason"], "Second opinion.",
        "{queued}"
    );
    let name = made["patient_name"].as_str().unwrap_or("Patient");
    assert_eq!(queued["entries"][0]["name"], name, "{queued}");
    // The same link again, from the same phone (a reload): the same place, not a new patient.
    let (s, again) = c.app.redeem(code, "ana-phone-device-0001").await;
    assert_eq!((s, &again["visit"]), (200, &joined["visit"]));
}
