//! The admin REST API over real HTTP against the real server: rooms, staff, links,
//! visit history and CSV, surveys and experience, the OpenAPI document — and who may
//! call what.

use crate::kit::*;
use examroom::durable::{NewLink, VisitEvent};
use examroom::identity::Role;
use examroom::ids::{RoomId, StaffId, VisitId};
use examroom::visit::{RoomKind, VisitState};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A clinic: an admin, two physicians with a room each.
struct Clinic {
    app: TestApp,
    admin: String,
    doc_a: StaffId,
    tok_a: String,
    doc_b: StaffId,
    tok_b: String,
    room_a: RoomId,
    room_b: RoomId,
}

async fn clinic() -> Clinic {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let doc_a = app.physician("Dr Grey").await;
    let doc_b = app.physician("Dr Shepherd").await;
    let tok_a = app.staff_token(&doc_a, vec![Role::Physician]).await;
    let tok_b = app.staff_token(&doc_b, vec![Role::Physician]).await;
    let room_a = app
        .room("Family medicine", RoomKind::Physician, &[&doc_a])
        .await
        .id;
    let room_b = app
        .room("Dermatology", RoomKind::Physician, &[&doc_b])
        .await
        .id;
    Clinic {
        app,
        admin,
        doc_a,
        tok_a,
        doc_b,
        tok_b,
        room_a,
        room_b,
    }
}

impl Clinic {
    async fn call(
        &self,
        m: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.app.api(m, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }
    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// A finished visit written straight into the history (for figures, not protocol).
    async fn past_visit(
        &self,
        room: &RoomId,
        doc: &StaffId,
        waited_secs: i64,
        outcome: VisitState,
    ) -> VisitId {
        let visit = VisitId::new();
        let t0 = chrono::Utc::now().timestamp_millis() - 3_600_000;
        let mut steps = vec![(VisitState::Waiting, t0)];
        if outcome == VisitState::Ended {
            let t1 = t0 + waited_secs * 1000;
            steps.extend([
                (VisitState::Admitted, t1),
                (VisitState::InCall, t1 + 1000),
                (VisitState::Ended, t1 + 600_000),
            ]);
        } else {
            steps.push((outcome, t0 + waited_secs * 1000));
        }
        for (state, at) in steps {
            self.app
                .state
                .durable
                .record_visit_event(VisitEvent {
                    visit: visit.clone(),
                    room: room.clone(),
                    state,
                    at,
                    actor: Some(doc.to_string()),
                    physician: (state != VisitState::Waiting).then(|| doc.clone()),
                    patient_ref: None,
                })
                .await
                .unwrap();
        }
        visit
    }

    async fn survey(&self, room: &RoomId, visit: &VisitId, body: Value) -> (StatusCode, Value) {
        let t = self
            .app
            .participant_token_for(room, visit, "Ana", Role::Patient);
        self.post("/api/surveys", &t, body).await
    }
}

fn room_body(name: &str, physicians: &[&StaffId]) -> Value {
    json!({
        "name": name,
        "kind": "physician",
        "physicians": physicians,
        "waiting_message": "The doctor will see you soon.",
        "max_wait_secs": 1800,
        "max_participants": 3,
        "chat_allowed": true,
        "invites_allowed": false,
        "opening_hours": null,
    })
}

/// 422: the input was understood and refused, naming the field.
const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

fn assert_field(r: &(StatusCode, Value), status: StatusCode, field: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["field"], field, "{}", r.1);
}

// --- rooms -------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_creates_edits_and_archives_a_room_and_live_rooms_follow() {
    let c = clinic().await;
    let (s, room) = c
        .post("/api/rooms", &c.admin, room_body("Pediatrics", &[&c.doc_a]))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{room}");
    assert_eq!(room["name"], "Pediatrics");
    assert_eq!(room["physicians"], json!([c.doc_a]));
    assert_eq!(room["max_participants"], 3);
    assert_eq!(room["archived"], false);
    let id = room["id"].as_str().unwrap().to_owned();

    let (s, got) = c.get(&format!("/api/rooms/{id}"), &c.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, room);
    let (_, list) = c.get("/api/rooms", &c.admin).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Dermatology", "Family medicine", "Pediatrics"]);

    // A patient is in a call in the room when the admin turns chat off: it applies at once.
    let mut doc = c.app.join(&c.tok_a).await;
    let rid = RoomId::parse(&id).unwrap();
    let (t, _, visit) = c.app.patient_token(&rid, "Ana");
    let mut ana = c.app.join(&t).await;
    ana.expect("waiting").await;
    doc.send(json!({"type": "admit", "room": id, "visit": visit}))
        .await;
    ana.expect("admitted").await;
    ana.send(json!({"type": "chat", "text": "hello"})).await;
    doc.expect("chat").await;

    let mut edited = room_body("Paediatrics", &[&c.doc_a, &c.doc_b]);
    edited["chat_allowed"] = json!(false);
    edited["opening_hours"] = json!("Mon-Fri 08:00-17:00;Sat 09:00-12:00");
    let (s, room) = c
        .call(
            Method::PUT,
            &format!("/api/rooms/{id}"),
            &c.admin,
            Some(edited),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{room}");
    assert_eq!(room["name"], "Paediatrics");
    assert_eq!(room["chat_allowed"], false);
    assert_eq!(
        room["opening_hours"],
        "Mon-Fri 08:00-17:00; Sat 09:00-12:00"
    );
    assert_eq!(room["physicians"], json!([c.doc_a, c.doc_b]));
    ana.send(json!({"type": "chat", "text": "still there?"}))
        .await;
    assert_eq!(ana.expect("error").await["code"], "chat_disabled");

    // Archived: gone from the list and the public status, kept with ?archived=true.
    let (s, _) = c
        .call(Method::DELETE, &format!("/api/rooms/{id}"), &c.admin, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = c.get("/api/rooms", &c.admin).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, list) = c.get("/api/rooms?archived=true", &c.admin).await;
    let archived: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["archived"] == true)
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(
        c.get(&format!("/api/rooms/{id}/status"), "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get("/api/rooms/r_nope", &c.admin).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.call(
            Method::PUT,
            "/api/rooms/r_nope",
            &c.admin,
            Some(room_body("X", &[]))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_room_settings_are_refused_naming_the_field_and_nothing_is_written() {
    let c = clinic().await;
    let admin_only = c
        .app
        .staff("Ann Office", vec![Role::Admin], vec![], None)
        .await;
    // Each patch names one field: the one the refusal must name.
    let unprocessable = [
        json!({"max_wait_secs": -5}),
        json!({"max_wait_secs": 0}),
        json!({"max_wait_secs": 30}),
        json!({"max_participants": 0}),
        json!({"max_participants": -1}),
        json!({"max_participants": 9}),
        json!({"max_participants": "four"}),
        json!({"physicians": ["s_nobody"]}),
        json!({"physicians": [admin_only]}),
        json!({"physicians": ["../etc"]}),
        json!({"name": ""}),
        json!({"kind": "drive_through"}),
        json!({"opening_hours": "Mon 17:00-08:00"}),
        json!({"opening_hours": "Funday 08:00-17:00"}),
        json!({"waiting_message": "x".repeat(2001)}),
    ];
    let cases = unprocessable
        .into_iter()
        .map(|patch| (patch, INVALID))
        .chain([(json!({"name": "family MEDICINE"}), StatusCode::CONFLICT)]);
    for (patch, status) in cases {
        let field = patch.as_object().unwrap().keys().next().unwrap().as_str();
        let mut body = room_body("Cardiology", &[&c.doc_a]);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = c.post("/api/rooms", &c.admin, body.clone()).await;
        assert_field(&r, status, field);
        // The same rules on edit, and the room is left as it was.
        let r = c
            .call(
                Method::PUT,
                &format!("/api/rooms/{}", c.room_b),
                &c.admin,
                Some(body),
            )
            .await;
        if field != "name" || status != StatusCode::CONFLICT {
            assert_field(&r, status, field);
        }
    }
    let mut missing = room_body("Cardiology", &[]);
    missing.as_object_mut().unwrap().remove("name");
    assert_field(
        &c.post("/api/rooms", &c.admin, missing).await,
        INVALID,
        "name",
    );
    let r = c
        .post(
            "/api/rooms",
            &c.admin,
            json!({"name": "X", "kind": "physician", "colour": "red"}),
        )
        .await;
    assert_eq!(r.0, INVALID, "{}", r.1);
    let r = c
        .app
        .api(Method::POST, "/api/rooms", &c.admin)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let (_, list) = c.get("/api/rooms?archived=true", &c.admin).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was written: {list}"
    );
    let (_, b) = c.get(&format!("/api/rooms/{}", c.room_b), &c.admin).await;
    assert_eq!(b["name"], "Dermatology");
    assert_eq!(b["physicians"], json!([c.doc_b]));
}

#[tokio::test]
async fn a_patient_can_ask_whether_a_room_is_open() {
    let c = clinic().await;
    // No hours: always open, and the message is the waiting message.
    let (s, st) = c.get(&format!("/api/rooms/{}/status", c.room_a), "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["open"], true);
    assert_eq!(st["name"], "Family medicine");
    assert!(st.get("opens_at").is_none());

    let all_week = {
        let mut b = room_body("Always", &[&c.doc_a]);
        b["opening_hours"] = json!("Mon-Sun 00:00-24:00");
        c.post("/api/rooms", &c.admin, b).await.1
    };
    let (_, st) = c
        .get(
            &format!("/api/rooms/{}/status", all_week["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(st["open"], true);
    assert_eq!(st["message"], "The doctor will see you soon.");

    // Open only tomorrow (UTC): closed now, opens at tomorrow 00:00 UTC.
    let now = chrono::Utc::now();
    let tomorrow = now.date_naive() + chrono::Duration::days(1);
    let day = tomorrow.format("%a").to_string();
    let mut b = room_body("Tomorrow", &[&c.doc_a]);
    b["opening_hours"] = json!(format!("{day} 00:00-23:59"));
    let (s, room) = c.post("/api/rooms", &c.admin, b).await;
    assert_eq!(s, StatusCode::CREATED, "{room}");
    let (_, st) = c
        .get(
            &format!("/api/rooms/{}/status", room["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(st["open"], false, "{st}");
    let expected = tomorrow
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(st["opens_at"], expected);
    assert!(
        st["message"].as_str().unwrap().contains("come back"),
        "{st}"
    );
}

#[tokio::test]
async fn physicians_list_their_own_rooms() {
    let c = clinic().await;
    let (s, mine) = c.get("/api/my/rooms", &c.tok_a).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], json!(c.room_a));
    let (s, e) = c.get("/api/my/rooms", &c.admin).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_physician"))
    );
}

// --- who may call what ---------------------------------------------------------------------

#[tokio::test]
async fn admin_routes_refuse_everyone_else() {
    let c = clinic().await;
    let visit = c
        .past_visit(&c.room_a, &c.doc_a, 30, VisitState::Ended)
        .await;
    let patient = c
        .app
        .participant_token_for(&c.room_a, &visit, "Ana", Role::Patient);
    let guest = c
        .app
        .participant_token_for(&c.room_a, &visit, "Interpreter", Role::Guest);
    let room = format!("/api/rooms/{}", c.room_a);
    let staff = format!("/api/staff/{}", c.doc_b);
    let reset = format!("/api/staff/{}/reset", c.doc_b);
    let admin_only: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/rooms", None),
        (Method::POST, "/api/rooms", Some(room_body("Z", &[]))),
        (Method::GET, &room, None),
        (Method::PUT, &room, Some(room_body("Z", &[]))),
        (Method::DELETE, &room, None),
        (Method::GET, "/api/staff", None),
        (
            Method::POST,
            "/api/staff",
            Some(json!({"email": "z@x.test", "name": "Z", "roles": ["admin"]})),
        ),
        (Method::PATCH, &staff, Some(json!({"active": false}))),
        (Method::POST, &reset, None),
    ];
    let staff_routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/links", None),
        (Method::GET, "/api/visits", None),
        (Method::GET, "/api/visits.csv", None),
        (Method::GET, "/api/experience", None),
        (Method::GET, "/api/my/rooms", None),
    ];
    for (m, path, body) in admin_only.iter().chain(staff_routes.iter()) {
        let r = c.call(m.clone(), path, "", body.clone()).await;
        assert_eq!(
            r.0,
            StatusCode::UNAUTHORIZED,
            "{m} {path} without a token: {}",
            r.1
        );
        assert_eq!(r.1["error"], "no_credentials");
        let r = c.call(m.clone(), path, "not.a.token", body.clone()).await;
        assert_eq!(r.0, StatusCode::UNAUTHORIZED, "{m} {path} with junk");
        for t in [&patient, &guest] {
            let r = c.call(m.clone(), path, t, body.clone()).await;
            assert_eq!(
                r.0,
                StatusCode::FORBIDDEN,
                "{m} {path} as patient/guest: {}",
                r.1
            );
            assert_eq!(r.1["error"], "not_staff");
        }
    }
    for (m, path, body) in &admin_only {
        let r = c.call(m.clone(), path, &c.tok_a, body.clone()).await;
        assert_eq!(
            r.0,
            StatusCode::FORBIDDEN,
            "{m} {path} as physician: {}",
            r.1
        );
        assert_eq!(r.1["error"], "not_admin");
    }
    // The room and the staff member are untouched.
    assert_eq!(c.get(&room, &c.admin).await.1["archived"], false);
    let (_, list) = c.get("/api/staff", &c.admin).await;
    assert!(list.as_array().unwrap().iter().all(|s| s["active"] == true));

    // Physicians reading other physicians' figures or history.
    let other = format!("/api/experience?physician={}", c.doc_b);
    let r = c.get(&other, &c.tok_a).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert_eq!(r.1["error"], "not_your_visits");
    let r = c
        .get(&format!("/api/visits?physician={}", c.doc_b), &c.tok_a)
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN);
    assert_eq!(c.get(&other, &c.admin).await.0, StatusCode::OK);
    assert_eq!(
        c.get(&format!("/api/experience?physician={}", c.doc_a), &c.tok_a)
            .await
            .0,
        StatusCode::OK
    );

    // Surveys take patient tokens only.
    let r = c.post("/api/surveys", "", json!({"score": 9})).await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    let r = c.post("/api/surveys", &c.tok_a, json!({"score": 9})).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    let r = c.post("/api/surveys", &guest, json!({"score": 9})).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_patient"))
    );

    // The deactivated-session row: a revoked session is 401 on every staff route.
    c.app
        .state
        .durable
        .revoke_sessions_of(&c.doc_a)
        .await
        .unwrap();
    let r = c.get("/api/visits", &c.tok_a).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_revoked"))
    );
}

// --- staff ---------------------------------------------------------------------------------

fn token_in(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_admin_invites_edits_deactivates_and_resets_staff() {
    let c = clinic().await;
    let (s, inv) = c
        .post(
            "/api/staff",
            &c.admin,
            json!({"email": "Yang@Clinic.test", "name": " Dr Yang ", "roles": ["physician"], "languages": ["en", "ko"], "gender": "female"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["staff"]["name"], "Dr Yang");
    assert_eq!(inv["staff"]["roles"], json!(["physician"]));
    assert_eq!(inv["staff"]["has_password"], false);
    assert_eq!(inv["staff"]["last_sign_in_at"], Value::Null);
    assert!(inv["staff"].get("password_hash").is_none());
    let url = inv["invitation_url"].as_str().unwrap();
    let public = c.app.state.settings.public_url();
    assert!(url.starts_with(&format!("{public}/setup/")), "{url}");
    // The link's token is what the store knows (by hash), for the invited account, 7 days.
    let now = chrono::Utc::now().timestamp_millis();
    let t = c
        .app
        .state
        .durable
        .consume_setup_token(&examroom::identity::hash_secret(&token_in(url)), now)
        .await
        .unwrap();
    assert_eq!(t.purpose, examroom::durable::SetupPurpose::Invite);
    let yang = StaffId::parse(inv["staff"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(t.staff.as_ref(), Some(&yang));
    assert!(t.expires_at > now + 6 * 24 * 3600 * 1000);

    // Listing shows the last sign-in.
    c.app
        .state
        .durable
        .record_sign_in(&yang, now)
        .await
        .unwrap();
    let (_, list) = c.get("/api/staff", &c.admin).await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(yang))
        .unwrap()
        .clone();
    assert_eq!(row["last_sign_in_at"], now);
    assert_eq!(row["languages"], json!(["en", "ko"]));

    // Bad input names the field; duplicates conflict on email.
    for (body, status, field) in [
        (
            json!({"email": "yang@clinic.test", "name": "Y2", "roles": ["physician"]}),
            StatusCode::CONFLICT,
            "email",
        ),
        (
            json!({"email": "z@clinic.test", "name": "Z", "roles": []}),
            INVALID,
            "roles",
        ),
        (
            json!({"email": "z@clinic.test", "name": "Z", "roles": ["patient"]}),
            INVALID,
            "roles",
        ),
        (
            json!({"email": "z@clinic.test", "name": "Z", "roles": ["root"]}),
            INVALID,
            "roles",
        ),
        (
            json!({"email": "not-an-email", "name": "Z", "roles": ["admin"]}),
            INVALID,
            "email",
        ),
        (
            json!({"email": "z@clinic.test", "roles": ["admin"]}),
            INVALID,
            "name",
        ),
        (
            json!({"email": "z@clinic.test", "name": "Z", "roles": ["admin"], "languages": ["en us"]}),
            INVALID,
            "languages",
        ),
    ] {
        assert_field(&c.post("/api/staff", &c.admin, body).await, status, field);
    }
    assert_eq!(
        c.get("/api/staff", &c.admin)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        4,
        "nothing half-written"
    );

    // Edit: only what is sent changes; `gender: null` clears.
    let path = format!("/api/staff/{yang}");
    let (s, e) = c
        .call(
            Method::PATCH,
            &path,
            &c.admin,
            Some(json!({"roles": ["physician", "admin"], "gender": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["roles"], json!(["physician", "admin"]));
    assert_eq!(e["gender"], Value::Null);
    assert_eq!(e["name"], "Dr Yang");
    assert_eq!(e["languages"], json!(["en", "ko"]));
    let r = c
        .call(
            Method::PATCH,
            &path,
            &c.admin,
            Some(json!({"roles": ["guest"]})),
        )
        .await;
    assert_field(&r, INVALID, "roles");
    assert_eq!(
        c.call(
            Method::PATCH,
            "/api/staff/s_nobody",
            &c.admin,
            Some(json!({"name": "X"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Deactivating signs them out at once, on every session.
    let yang_tok = c.app.staff_token(&yang, vec![Role::Physician]).await;
    let yang_tok2 = c.app.staff_token(&yang, vec![Role::Physician]).await;
    assert_eq!(c.get("/api/my/rooms", &yang_tok).await.0, StatusCode::OK);
    let (s, e) = c
        .call(
            Method::PATCH,
            &path,
            &c.admin,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!((s, &e["active"]), (StatusCode::OK, &json!(false)));
    for t in [&yang_tok, &yang_tok2] {
        let r = c.get("/api/my/rooms", t).await;
        assert_eq!(
            (r.0, r.1["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("session_revoked"))
        );
    }
    // No reset for a deactivated account; reactivated, a reset link is issued.
    let r = c.post(&format!("{path}/reset"), &c.admin, json!({})).await;
    assert_field(&r, StatusCode::CONFLICT, "active");
    c.call(
        Method::PATCH,
        &path,
        &c.admin,
        Some(json!({"active": true})),
    )
    .await;
    let (s, r) = c.post(&format!("{path}/reset"), &c.admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let t = c
        .app
        .state
        .durable
        .consume_setup_token(
            &examroom::identity::hash_secret(&token_in(r["reset_url"].as_str().unwrap())),
            now,
        )
        .await
        .unwrap();
    assert_eq!(t.purpose, examroom::durable::SetupPurpose::Reset);
    assert_eq!(
        c.post("/api/staff/s_nobody/reset", &c.admin, json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // An admin cannot lock themselves out.
    let me = c.app.state.keys.verify(&c.admin).unwrap().sub;
    let mine = format!("/api/staff/{me}");
    assert_field(
        &c.call(
            Method::PATCH,
            &mine,
            &c.admin,
            Some(json!({"active": false})),
        )
        .await,
        INVALID,
        "active",
    );
    assert_field(
        &c.call(
            Method::PATCH,
            &mine,
            &c.admin,
            Some(json!({"roles": ["physician"]})),
        )
        .await,
        INVALID,
        "roles",
    );
}

// --- links ---------------------------------------------------------------------------------

#[tokio::test]
async fn links_are_listed_without_their_codes_and_physicians_see_their_rooms_only() {
    let c = clinic().await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::new();
    for (room, by, name) in [
        (&c.room_a, &c.doc_a, "Ana"),
        (&c.room_b, &c.doc_b, "Ben"),
        (&c.room_a, &c.doc_a, "Cy"),
    ] {
        let l = c
            .app
            .state
            .durable
            .create_link(NewLink {
                reason: Some("rash".into()),
                ..seed::new_patient_link(room, by, &examroom::ids::random_id(), name, now)
            })
            .await
            .unwrap();
        ids.push(l);
    }
    c.app
        .state
        .durable
        .mark_link_used(&ids[0].new.id, now)
        .await
        .unwrap();
    c.app
        .state
        .durable
        .mark_link_used(&ids[0].new.id, now + 5)
        .await
        .unwrap();
    c.app
        .state
        .durable
        .revoke_link(&ids[2].new.id)
        .await
        .unwrap();

    let (s, all) = c.get("/api/links", &c.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let text = all.to_string();
    for l in &ids {
        assert!(!text.contains(&l.new.code_hash), "a code hash leaked");
    }
    assert!(!text.contains("rash"), "the reason is not listed");
    let listed = |i: usize| {
        let links = all.as_array().unwrap();
        links
            .iter()
            .find(|l| l["id"] == json!(ids[i].new.id))
            .unwrap()
    };
    let ana = listed(0);
    assert_eq!(
        (
            ana["used"].clone(),
            ana["use_count"].clone(),
            ana["first_used_at"].clone()
        ),
        (json!(true), json!(2), json!(now))
    );
    assert_eq!(ana["revoked"], false);
    assert_eq!(ana["expired"], false);
    assert_eq!(ana["created_by"], json!(c.doc_a));
    let cy = listed(2);
    assert_eq!(
        (cy["revoked"].clone(), cy["used"].clone()),
        (json!(true), json!(false))
    );

    let (_, a) = c
        .get(&format!("/api/links?room={}", c.room_a), &c.admin)
        .await;
    assert_eq!(a.as_array().unwrap().len(), 2);
    // Dr Grey (room A) sees room A's links, with or without asking for the room.
    let (_, mine) = c.get("/api/links", &c.tok_a).await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|l| l["room"] == json!(c.room_a))
    );
    let r = c
        .get(&format!("/api/links?room={}", c.room_b), &c.tok_a)
        .await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_room"))
    );
    let bad_room = c.get("/api/links?room=a%20b", &c.admin).await;
    assert_field(&bad_room, INVALID, "room");
}

// --- visit history -------------------------------------------------------------------------

#[tokio::test]
async fn visit_history_in_json_and_csv_admins_see_all_physicians_their_own() {
    let c = clinic().await;
    let mut grey = c.app.join(&c.tok_a).await;
    let mut shepherd = c.app.join(&c.tok_b).await;
    let va = c.app.visit_to_the_end(&mut grey, &c.room_a, "Ana").await;
    let vb = c
        .app
        .visit_to_the_end(&mut shepherd, &c.room_b, "Ben")
        .await;
    let vn = c
        .past_visit(&c.room_a, &c.doc_a, 1800, VisitState::NoShow)
        .await;

    let (s, all) = c.get("/api/visits", &c.admin).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    let a = all.iter().find(|v| v["id"] == json!(va)).unwrap();
    assert_eq!(a["outcome"], "ended");
    assert_eq!(a["physician"], json!(c.doc_a));
    assert_eq!(a["physician_name"], "Dr Grey");
    assert_eq!(a["room_name"], "Family medicine");
    assert!(a["wait_secs"].as_f64().unwrap() >= 0.0);
    assert!(a["call_secs"].as_f64().unwrap() >= 0.0);
    assert!(a.get("transitions").is_none());

    // Filters.
    let (_, b) = c
        .get(&format!("/api/visits?room={}", c.room_b), &c.admin)
        .await;
    assert_eq!(b.as_array().unwrap().len(), 1);
    assert_eq!(b[0]["id"], json!(vb));
    let (_, one) = c.get("/api/visits?limit=1", &c.admin).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (_, none) = c.get("/api/visits?from=9999999999999", &c.admin).await;
    assert_eq!(none, json!([]));
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("from=yesterday", "from"),
        ("from=10&to=5", "to"),
        ("physician=a%20b", "physician"),
    ] {
        assert_field(
            &c.get(&format!("/api/visits?{q}"), &c.admin).await,
            INVALID,
            field,
        );
    }

    // Dr Grey sees the two visits of his; Dr Shepherd's is not his to read.
    let (_, mine) = c.get("/api/visits", &c.tok_a).await;
    let ids: Vec<&Value> = mine.as_array().unwrap().iter().map(|v| &v["id"]).collect();
    assert_eq!(ids.len(), 2, "{mine}");
    assert!(ids.contains(&&json!(va)) && ids.contains(&&json!(vn)));
    let (s, detail) = c.get(&format!("/api/visits/{va}"), &c.tok_a).await;
    assert_eq!(s, StatusCode::OK);
    let states: Vec<&str> = detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["waiting", "admitted", "in_call", "ended"]);
    let r = c.get(&format!("/api/visits/{vb}"), &c.tok_a).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_visit"))
    );
    assert_eq!(
        c.get(&format!("/api/visits/{vb}"), &c.admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/api/visits/v_nope", &c.admin).await.0,
        StatusCode::NOT_FOUND
    );

    // The CSV is the same list, parseable by a standard reader.
    let resp = c
        .app
        .api(Method::GET, "/api/visits.csv", &c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("\r\n"));
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[0], "id");
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), all.len());
    for (row, v) in rows.iter().zip(&all) {
        for (col, cell) in header.iter().zip(row.iter()) {
            let expected = match &v[col] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if col.ends_with("_secs") && !cell.is_empty() {
                let (a, b) = (
                    cell.parse::<f64>().unwrap(),
                    expected.parse::<f64>().unwrap(),
                );
                assert!((a - b).abs() < 1e-9, "{col}: {cell} vs {expected}");
            } else {
                assert_eq!(cell, expected, "column {col}");
            }
        }
    }
    // Physicians get their own rows only, in CSV too.
    let mine_csv = c.app.get_text("/api/visits.csv", &c.tok_a).await;
    assert_eq!(
        csv::Reader::from_reader(mine_csv.as_bytes())
            .records()
            .count(),
        2
    );
}

#[tokio::test]
async fn csv_quotes_awkward_names() {
    let c = clinic().await;
    let mut b = room_body("Ear, nose & \"throat\"\nclinic", &[&c.doc_a]);
    b["name"] = json!("Ear, nose & \"throat\" clinic");
    let (_, room) = c.post("/api/rooms", &c.admin, b).await;
    let rid = RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    c.past_visit(&rid, &c.doc_a, 10, VisitState::Left).await;
    let body = c.app.get_text("/api/visits.csv", &c.admin).await;
    assert!(
        body.contains("\"Ear, nose & \"\"throat\"\" clinic\""),
        "{body}"
    );
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let row = rd.records().next().unwrap().unwrap();
    assert_eq!(&row[2], "Ear, nose & \"throat\" clinic");
    assert_eq!(&row[4], "left");
}

// --- surveys and experience ------------------------------------------------------------------

#[tokio::test]
async fn a_patient_answers_the_survey_once_after_the_visit() {
    let c = clinic().await;
    let mut grey = c.app.join(&c.tok_a).await;
    let visit = c.app.visit_to_the_end(&mut grey, &c.room_a, "Ana").await;
    let other = c.app.visit_to_the_end(&mut grey, &c.room_a, "Ben").await;

    for (body, status, field) in [
        (json!({"score": 11}), INVALID, "score"),
        (json!({"score": -1}), INVALID, "score"),
        (json!({"score": "ten"}), INVALID, "score"),
        (json!({"score": 7.5}), INVALID, "score"),
        (json!({}), INVALID, "score"),
        (
            json!({"score": 9, "comment": "é".repeat(2001)}),
            INVALID,
            "comment",
        ),
        // Ben's token, answering for Ana's visit.
        (
            json!({"score": 0, "visit": visit}),
            StatusCode::FORBIDDEN,
            "visit",
        ),
    ] {
        let t = c.app.participant_token_for(
            &c.room_a,
            if field == "visit" { &other } else { &visit },
            "P",
            Role::Patient,
        );
        assert_field(&c.post("/api/surveys", &t, body).await, status, field);
    }
    let (s, r) = c
        .survey(
            &c.room_a,
            &visit,
            json!({"score": 9, "comment": "é".repeat(2000)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["visit"], json!(visit));
    let again = c.survey(&c.room_a, &visit, json!({"score": 3})).await;
    assert_field(&again, StatusCode::CONFLICT, "visit");
    assert_eq!(again.1["error"], "conflict");

    // A visit that has not ended (still waiting) has no survey yet.
    let (t, _, waiting) = c.app.patient_token(&c.room_a, "Cy");
    let mut cy = c.app.join(&t).await;
    cy.expect("waiting").await;
    let r = c.post("/api/surveys", &t, json!({"score": 10})).await;
    assert_field(&r, StatusCode::CONFLICT, "visit");
    assert_eq!(r.1["error"], "visit_not_ended");
    assert!(
        c.app
            .state
            .durable
            .visit(&waiting)
            .await
            .unwrap()
            .is_some_and(|v| v.outcome.is_none())
    );

    // Only the one answer counts.
    let (_, e) = c
        .get(&format!("/api/experience?room={}", c.room_a), &c.admin)
        .await;
    assert_eq!(
        (
            e["answers"].clone(),
            e["promoters"].clone(),
            e["nps"].clone()
        ),
        (json!(1), json!(1), json!(100.0))
    );
}

async fn nps_of(c: &Clinic, scores: &[i64]) -> Value {
    let (_, room) = c
        .post(
            "/api/rooms",
            &c.admin,
            room_body(&format!("NPS {scores:?}"), &[&c.doc_a]),
        )
        .await;
    let room = RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    for &s in scores {
        let v = c.past_visit(&room, &c.doc_a, 60, VisitState::Ended).await;
        let (st, r) = c.survey(&room, &v, json!({"score": s})).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
    }
    let (s, e) = c
        .get(&format!("/api/experience?room={room}"), &c.admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    e
}

#[tokio::test]
async fn nps_through_the_api_matches_hand_computed_cases() {
    let c = clinic().await;
    let e = nps_of(&c, &[9, 10, 10]).await;
    assert_eq!(e["nps"], json!(100.0));
    assert_eq!(
        (e["promoters"].clone(), e["answers"].clone()),
        (json!(3), json!(3))
    );
    let e = nps_of(&c, &[0, 3, 6]).await;
    assert_eq!(e["nps"], json!(-100.0));
    assert_eq!(e["detractors"], json!(3));
    let e = nps_of(&c, &[]).await;
    assert_eq!(e["nps"], Value::Null);
    assert_eq!(e["answers"], json!(0));
    // 3 promoters, 2 passives, 3 detractors of 8: 37.5 % − 37.5 % = 0.
    let e = nps_of(&c, &[10, 9, 9, 8, 7, 6, 5, 0]).await;
    assert_eq!(
        (e["nps"].as_f64(), e["passives"].clone()),
        (Some(0.0), json!(2))
    );
    // 3 promoters, 1 passive, 1 detractor of 5: 60 % − 20 % = 40.
    let e = nps_of(&c, &[10, 2, 7, 10, 9]).await;
    assert_eq!(e["nps"].as_f64(), Some(40.0));
    assert_eq!(e["visits"], json!(5));
    assert_eq!(e["median_wait_secs"].as_f64(), Some(60.0));
    assert_eq!(e["no_show_rate"].as_f64(), Some(0.0));
}

#[tokio::test]
async fn experience_is_scoped_physicians_see_their_own() {
    let c = clinic().await;
    for (doc, room, score) in [(&c.doc_a, &c.room_a, 10), (&c.doc_b, &c.room_b, 0)] {
        let v = c.past_visit(room, doc, 60, VisitState::Ended).await;
        c.survey(room, &v, json!({"score": score})).await;
    }
    c.past_visit(&c.room_a, &c.doc_a, 120, VisitState::NoShow)
        .await;
    let (_, all) = c.get("/api/experience", &c.admin).await;
    assert_eq!(
        (all["answers"].clone(), all["nps"].as_f64()),
        (json!(2), Some(0.0))
    );
    assert_eq!(all["visits"], json!(3));
    // Dr Grey, asking for nothing in particular, gets his own figures.
    let (_, mine) = c.get("/api/experience", &c.tok_a).await;
    assert_eq!(
        (mine["nps"].as_f64(), mine["visits"].clone()),
        (Some(100.0), json!(2))
    );
    assert_eq!(mine["no_show_rate"].as_f64(), Some(0.5));
    let (_, b) = c
        .get(&format!("/api/experience?physician={}", c.doc_b), &c.admin)
        .await;
    assert_eq!(b["nps"].as_f64(), Some(-100.0));
    let bad_date = c.get("/api/experience?to=abc", &c.admin).await;
    assert_field(&bad_date, INVALID, "to");
}

// --- the OpenAPI document ------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_is_public_and_covers_every_admin_route() {
    let c = clinic().await;
    let (s, doc) = c.get("/api/openapi.json", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/rooms", &["get", "post"][..]),
        ("/api/rooms/{id}", &["get", "put", "delete"]),
        ("/api/rooms/{id}/status", &["get"]),
        ("/api/my/rooms", &["get"]),
        ("/api/staff", &["get", "post"]),
        ("/api/staff/{id}", &["patch"]),
        ("/api/staff/{id}/reset", &["post"]),
        ("/api/links", &["get", "post"]),
        ("/api/links/guest", &["post"]),
        ("/api/links/{id}", &["delete"]),
        ("/api/join/{code}", &["post"]),
        ("/api/identity", &["post"]),
        ("/api/visits/{visit}/record", &["get"]),
        ("/api/visits/{visit}/record/emergency-access", &["post"]),
        ("/api/directory", &["get"]),
        ("/api/directory/{id}", &["get"]),
        ("/api/places", &["get"]),
        ("/api/directory/{id}/photo", &["get"]),
        ("/api/staff/{id}/profile/photo", &["put", "delete"]),
        ("/api/my/profile/photo", &["put", "delete"]),
        ("/api/staff/{id}/profile", &["get", "put"]),
        ("/api/my/profile", &["get", "put"]),
        ("/api/referrals", &["get", "post"]),
        ("/api/referrals/{id}/accept", &["post"]),
        ("/api/referrals/{id}/decline", &["post"]),
        ("/api/visits/{visit}/referrals", &["get"]),
        ("/api/visits", &["get"]),
        ("/api/visits/{id}", &["get"]),
        ("/api/visits.csv", &["get"]),
        ("/api/surveys", &["post"]),
        ("/api/experience", &["get"]),
        ("/api/openapi.json", &["get"]),
        ("/api/setup/{token}", &["get", "post"]),
        ("/api/session", &["post", "delete"]),
        ("/api/me", &["get"]),
        ("/api/clinic", &["get"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} is not documented"
            );
        }
    }
    assert!(doc["components"]["schemas"]["RoomBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // And every documented path is served (not 404/405 from the router).
    for (path, item) in paths {
        let concrete = path.replace("{id}", "x_1");
        for m in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = c.app.api(method, &concrete, "").send().await.unwrap();
            assert_ne!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            // A path with a parameter may answer 404 for a made-up one (no such room, link).
            if !path.contains('{') {
                assert_ne!(r.status(), StatusCode::NOT_FOUND, "{m} {path}");
            }
        }
    }
}

/// Visit history says whom each visit was for: the name on the visit's patient link, in
/// the JSON and the CSV; a visit from a link without a name has none.
#[tokio::test]
async fn visit_history_names_the_patient_of_each_visit() {
    let c = clinic().await;
    let named = c
        .app
        .mint_link(
            &c.tok_a,
            json!({"room": c.room_a, "patient_name": "Carla Díaz"}),
        )
        .await;
    let unnamed = c.app.mint_link(&c.tok_a, json!({"room": c.room_a})).await;
    let mut patients = Vec::new();
    for m in [&named, &unnamed] {
        let (s, joined) = c
            .app
            .redeem(m["code"].as_str().unwrap(), "device-cccccccccccccccc")
            .await;
        assert_eq!(s, 200, "{joined}");
        let mut p = c.app.join(joined["token"].as_str().unwrap()).await;
        p.expect("waiting").await;
        patients.push(p);
    }
    let visit_of = |m: &Value| m["visit"].clone();
    // The history writer runs beside the room: wait until both visits are recorded.
    let mut all = Value::Null;
    for _ in 0..100 {
        all = c.get("/api/visits", &c.admin).await.1;
        if all.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let row = |v: &Value| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == *v)
            .cloned()
            .unwrap_or_else(|| panic!("visit {v} not in {all}"))
    };
    assert_eq!(row(&visit_of(&named))["patient_name"], "Carla Díaz");
    assert_eq!(row(&visit_of(&unnamed))["patient_name"], Value::Null);
    // The CSV carries it.
    let csv = c.app.get_text("/api/visits.csv", &c.admin).await;
    assert!(csv.lines().next().unwrap().contains("patient_name"));
    assert!(csv.contains("Carla Díaz"), "{csv}");
    drop(patients);
}
