//! Join links from minting to the waiting room: the patient story end to end, and every
//! way a code can be refused.

use crate::kit::TestApp;
use examroom::identity::Role;
use examroom::visit::RoomKind;
use serde_json::{Value, json};

const DEVICE_A: &str = "device-aaaaaaaaaaaaaaaa";
const DEVICE_B: &str = "device-bbbbbbbbbbbbbbbb";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `DELETE /api/links/{id}` of the minted link `m`, as `bearer`.
async fn revoke(app: &TestApp, bearer: &str, m: &Value) -> (u16, Value) {
    let path = format!("/api/links/{}", m["id"].as_str().unwrap());
    app.call_json("DELETE", &path, Some(bearer), None).await
}

#[tokio::test]
async fn admin_from_setup_link_to_patient_in_the_waiting_room() {
    let app = TestApp::spawn().await;
    // First start: no staff, so a setup link is made.
    let url = app.state.settings.public_url();
    let link = examroom::identity::setup::first_admin_link(app.state.durable.as_ref(), &url)
        .await
        .unwrap()
        .expect("a setup link on first start");
    let token = link.rsplit('/').next().unwrap();
    let body =
        json!({"email": "ada@clinic.test", "name": "Ada", "password": "a long enough password"});
    let (s, admin) = app
        .call_json(
            "POST",
            &format!("/api/setup/{token}"),
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 200, "{admin}");
    assert_eq!(admin["staff"]["roles"], json!(["physician", "admin"]));
    let (s, again) = app
        .call_json("POST", &format!("/api/setup/{token}"), None, Some(body))
        .await;
    assert_eq!((s, again["error"].as_str()), (410, Some("already_used")));
    assert!(
        examroom::identity::setup::first_admin_link(app.state.durable.as_ref(), &url)
            .await
            .unwrap()
            .is_none()
    );

    // The admin signs in; a room is made for them (rooms are the admin API's).
    let signed = app
        .sign_in("ADA@clinic.test", "a long enough password")
        .await;
    let staff = examroom::ids::StaffId::parse(signed["staff"]["id"].as_str().unwrap()).unwrap();
    let room = app.room("Dr Ada", RoomKind::Physician, &[&staff]).await;
    let bearer = signed["token"].as_str().unwrap();

    // Physician mints a link; the patient redeems it and waits.
    let minted = app
        .mint_link(
            bearer,
            json!({"room": room.id, "patient_name": "Ana", "lang": "pt-BR"}),
        )
        .await;
    let code = minted["code"].as_str().unwrap();
    assert!(code.len() >= 22);
    assert_eq!(minted["url"], format!("{url}/join/{code}"));
    let (s, joined) = app.redeem(code, DEVICE_A).await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["kind"], "patient");
    assert_eq!(joined["visit"], minted["visit"]);
    assert_eq!(joined["room"]["id"], json!(room.id));
    assert_eq!(joined["lang"], "pt-BR");
    assert_eq!(
        joined["linked_name"], "Ana",
        "the page prefills the name it asks for"
    );
    assert_eq!(
        joined["physician_name"], signed["staff"]["name"],
        "the welcome page names the physician of a one-physician room"
    );
    let patient = app.join(joined["token"].as_str().unwrap()).await;
    assert_eq!(patient.participant, joined["participant"].as_str().unwrap());
    let mut doctor = app.join(bearer).await;
    doctor
        .expect_where("queue", |q| {
            q.to_string().contains(minted["visit"].as_str().unwrap())
        })
        .await;

    // A second browser is refused while the first is connected…
    let (s, busy) = app.redeem(code, DEVICE_B).await;
    assert_eq!((s, busy["error"].as_str()), (409, Some("link_in_use")));
    // …the same browser after a reload gets in, as the same participant.
    let (s, again) = app.redeem(code, DEVICE_A).await;
    assert_eq!(s, 200);
    assert_eq!(again["participant"], joined["participant"]);
    // Once nobody is connected, another browser may take the link over.
    drop(patient);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (s, _) = app.redeem(code, DEVICE_B).await;
        if s == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link stayed in use"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, _) = app.redeem(code, DEVICE_A).await;
    assert_eq!(
        s, 200,
        "nobody connected: the first browser may come back too"
    );
    let stored = app
        .state
        .durable
        .link(&examroom::ids::LinkId::parse(minted["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.use_count >= 3 && stored.first_used_at.is_some());
    assert_ne!(stored.new.code_hash, code, "only the hash is stored");
}

async fn physician_and_room(app: &TestApp) -> (String, examroom::visit::RoomConfig) {
    let (_, token, room) = app.physician_with_room("Dr Bo", "Bo").await;
    (token, room)
}

/// A room several physicians share names nobody on the welcome page (whoever is free admits),
/// and a deactivated physician is not named.
#[tokio::test]
async fn the_join_answer_names_a_physician_only_where_one_will_see_the_patient() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.physician("Dr A").await, app.physician("Dr B").await);
    let shared = app.room("Shared", RoomKind::Physician, &[&a, &b]).await;
    let own = app.room("Dr A alone", RoomKind::Physician, &[&a]).await;
    let (_, admin) = app.admin().await;
    let name_on_join = |room: examroom::ids::RoomId| {
        let (app, admin) = (&app, &admin);
        async move {
            let m = app.mint_link(admin, json!({ "room": room })).await;
            let (s, joined) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
            assert_eq!(s, 200, "{joined}");
            joined["physician_name"].clone()
        }
    };
    assert_eq!(name_on_join(own.id.clone()).await, "Dr A");
    assert_eq!(name_on_join(shared.id.clone()).await, Value::Null);
    app.state
        .durable
        .update_staff(
            &a,
            examroom::durable::StaffUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(name_on_join(own.id).await, Value::Null);
}

#[tokio::test]
async fn unknown_code_is_404() {
    let app = TestApp::spawn().await;
    let (s, b) = app.redeem("not-a-real-code-at-all", DEVICE_A).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("unknown_link")));
}

#[tokio::test]
async fn revoked_code_is_410_and_its_token_is_refused_at_hello() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let m = app.mint_link(&doc, json!({"room": room.id})).await;
    let (_, joined) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    // No name on the link: the page asks the patient's, with nothing to prefill.
    assert_eq!(joined["linked_name"], serde_json::Value::Null);
    let (s, _) = revoke(&app, &doc, &m).await;
    assert_eq!(s, 204);
    let (s, b) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    assert_eq!((s, b["error"].as_str()), (410, Some("link_revoked")));
    let mut c = app.ws().await;
    c.send(json!({"type": "hello", "v": 1, "token": joined["token"]}))
        .await;
    let e = c.expect("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
}

#[tokio::test]
async fn expired_code_is_410() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let m = app
        .mint_link(&doc, json!({"room": room.id, "expires_at": now_ms() + 300}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (s, b) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    assert_eq!((s, b["error"].as_str()), (410, Some("link_expired")));
}

#[tokio::test]
async fn not_yet_valid_code_is_403_with_when() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let at = now_ms() + 3_600_000;
    let m = app
        .mint_link(&doc, json!({"room": room.id, "not_before": at}))
        .await;
    let (s, b) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("link_not_yet_valid")));
    assert_eq!(b["not_before"], at);
}

#[tokio::test]
async fn guessing_join_codes_is_rate_limited_and_never_logged() {
    let app = TestApp::spawn().await;
    let mut last = 0;
    for i in 0..examroom::identity::JOIN_FAILURES_PER_IP + 1 {
        let (s, _) = app.redeem(&format!("guess-{i:020}"), DEVICE_A).await;
        last = s;
    }
    assert_eq!(last, 429);
    let r = app
        .call(
            "POST",
            "/api/join/guess-x",
            None,
            Some(json!({"device": DEVICE_A})),
        )
        .await;
    assert!(r.headers().get("retry-after").is_some());
    // The code is a secret: the handler logs the IP and the link id, never the code.
    let src = std::fs::read_to_string("src/http/links.rs").unwrap();
    assert!(!src.contains("code = %") && !src.contains("%code"));
}

#[tokio::test]
async fn concurrent_join_code_guesses_check_only_the_limit() {
    let app = TestApp::spawn().await;
    let guesses = (0..40).map(|i| {
        let app = &app;
        async move { app.redeem(&format!("guess-{i:020}"), DEVICE_A).await.0 }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 404).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        checked,
        examroom::identity::JOIN_FAILURES_PER_IP as usize,
        "codes actually looked up: {statuses:?}"
    );
    assert_eq!(checked + refused, 40, "{statuses:?}");
    // A real link from the same address is then refused too (the window is spent)…
    let (doc, room) = physician_and_room(&app).await;
    let m = app.mint_link(&doc, json!({"room": room.id})).await;
    let (s, _) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    assert_eq!(s, 429);
}

#[tokio::test]
async fn physician_of_another_room_cannot_mint_or_revoke() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let other = app.physician("Dr Cy").await;
    let other_token = app.staff_token(&other, vec![Role::Physician]).await;
    let (s, b) = app
        .call_json(
            "POST",
            "/api/links",
            Some(&other_token),
            Some(json!({"room": room.id})),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_your_room")));
    let m = app.mint_link(&doc, json!({"room": room.id})).await;
    let (s, b) = revoke(&app, &other_token, &m).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_your_room")));
}

#[tokio::test]
async fn guest_link_joins_the_patients_visit() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let m = app.mint_link(&doc, json!({"room": room.id})).await;
    let visit = m["visit"].as_str().unwrap();
    let (s, g) = app.mint_guest_link(&doc, &room.id, visit).await;
    assert_eq!(s, 201, "{g}");
    let (s, joined) = app.redeem(g["code"].as_str().unwrap(), DEVICE_B).await;
    assert_eq!(s, 200);
    assert_eq!(joined["kind"], "guest");
    assert_eq!(joined["visit"], m["visit"]);
    let (s, b) = app.mint_guest_link(&doc, &room.id, "v_nope").await;
    assert_eq!((s, b["error"].as_str()), (404, Some("unknown_visit")));
}

#[tokio::test]
async fn a_patient_token_cannot_act_in_another_room() {
    let app = TestApp::spawn().await;
    let (doc, room) = physician_and_room(&app).await;
    let (_, other) = physician_and_room_named(&app, "Dr Di", "Di").await;
    let m = app.mint_link(&doc, json!({"room": room.id})).await;
    let (_, joined) = app.redeem(m["code"].as_str().unwrap(), DEVICE_A).await;
    let mut p = app.join(joined["token"].as_str().unwrap()).await;
    p.send(json!({"type": "admit", "room": other.id, "visit": m["visit"]}))
        .await;
    let e = p.expect("error").await;
    assert_eq!(e["code"], "not_your_room", "{e}");
}

async fn physician_and_room_named(
    app: &TestApp,
    who: &str,
    name: &str,
) -> (String, examroom::visit::RoomConfig) {
    let (_, token, room) = app.physician_with_room(who, name).await;
    (token, room)
}

/// The set-up page asks `GET /api/setup/{token}` whom an invitation is for (to show the
/// e-mail read-only and prefill the name) without spending it; accepting with another
/// e-mail is refused, naming the field, and leaves the link usable; a used link says so.
#[tokio::test]
async fn an_invitation_says_whom_it_is_for_and_refuses_another_email() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let inv = app.invite_staff(&admin, "Kim@Clinic.test", "Dr Kim").await;
    let token = inv["invitation_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let setup = format!("/api/setup/{token}");

    for _ in 0..2 {
        let (s, info) = app.call_json("GET", &setup, None, None).await;
        assert_eq!(s, 200, "{info}");
        assert_eq!(info["purpose"], "invite");
        assert_eq!(info["email"], "Kim@Clinic.test");
        assert_eq!(info["name"], "Dr Kim");
        assert_eq!(info["expires_at"], inv["expires_at"]);
    }

    let password = "a long enough password";
    let (s, e) = app
        .call_json(
            "POST",
            &setup,
            None,
            Some(json!({"email": "someone.else@clinic.test", "name": "Dr Kim", "password": password})),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str(), e["field"].as_str()),
        (422, Some("invalid_field"), Some("email")),
        "{e}"
    );
    assert_eq!(
        app.call_json("GET", &setup, None, None).await.0,
        200,
        "the link still works"
    );

    // The same address in other letter case is the same address.
    let (s, ok) = app
        .call_json(
            "POST",
            &setup,
            None,
            Some(
                json!({"email": "kim@clinic.test", "name": "Dr Min-ji Kim", "password": password}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(ok["staff"]["name"], "Dr Min-ji Kim");
    assert_eq!(ok["staff"]["email"], "Kim@Clinic.test");

    let (s, used) = app.call_json("GET", &setup, None, None).await;
    assert_eq!((s, used["error"].as_str()), (410, Some("already_used")));
    let (s, unknown) = app
        .call_json("GET", "/api/setup/no-such-token", None, None)
        .await;
    assert_eq!(
        (s, unknown["error"].as_str()),
        (404, Some("unknown_setup_token"))
    );
}
