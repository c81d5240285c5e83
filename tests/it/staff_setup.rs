//! Staff accounts come to life through one-time links: an admin invites a physician,
//! who sets a password and signs in; an admin resets a password, which ends the old
//! sessions. Each link works once.

use crate::kit::*;
use examroom::identity::Role;
use serde_json::{Value, json};

fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    app.sign_in_json(email, password).await
}

/// Redeem a setup link (invitation, reset, first admin) with `body`.
async fn set_password(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/setup/{token}");
    app.call_json("POST", &path, None, Some(body)).await
}

#[tokio::test]
async fn an_invited_physician_sets_a_password_and_a_reset_ends_old_sessions() {
    let app = TestApp::spawn().await;
    let (_, admin_t) = app.admin().await;

    let invited = app
        .invite_staff(&admin_t, "grey@clinic.test", "Dr Grey")
        .await;
    let invite = token_of(invited["invitation_url"].as_str().unwrap());

    let (s, body) = set_password(&app, &invite, json!({"password": "short"})).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (422, Some("password")),
        "a weak password does not spend the link"
    );
    let (s, body) = set_password(&app, &invite, json!({"password": "correct horse battery"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["staff"]["email"], "grey@clinic.test");
    let (s, _) = set_password(&app, &invite, json!({"password": "another long password"})).await;
    assert_eq!(s, 410, "an invitation works once");

    let (s, session) = sign_in(&app, "grey@clinic.test", "correct horse battery").await;
    assert_eq!(s, 200, "{session}");
    let old = session["token"].as_str().unwrap().to_owned();
    let (s, _) = app.call_json("GET", "/api/me", Some(&old), None).await;
    assert_eq!(s, 200);

    // The admin resets the password: the new one works, the old sessions end.
    let id = invited["staff"]["id"].as_str().unwrap();
    let (s, reset) = app
        .call_json(
            "POST",
            &format!("/api/staff/{id}/reset"),
            Some(&admin_t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{reset}");
    let reset = token_of(reset["reset_url"].as_str().unwrap());
    let (s, _) = set_password(&app, &reset, json!({"password": "a brand new passphrase"})).await;
    assert_eq!(s, 200);
    let (s, _) = app.call_json("GET", "/api/me", Some(&old), None).await;
    assert_eq!(s, 401, "sessions from before the reset are over");
    assert_eq!(
        sign_in(&app, "grey@clinic.test", "correct horse battery")
            .await
            .0,
        401
    );
    assert_eq!(
        sign_in(&app, "grey@clinic.test", "a brand new passphrase")
            .await
            .0,
        200
    );
}

/// A patient who never connects within the appointment window is a no-show in the
/// history (and the no-show rate), not silently forgotten.
#[tokio::test]
async fn a_patient_who_never_comes_within_the_window_is_a_no_show() {
    let app = TestApp::spawn().await;
    let (_, doc_t, room) = app.physician_with_room("Dr Grey", "Room").await;
    let now = chrono::Utc::now().timestamp_millis();
    let missed = app
        .mint_link(&doc_t, json!({"room": room.id, "expires_at": now + 1000}))
        .await;
    let came = app
        .mint_link(&doc_t, json!({"room": room.id, "expires_at": now + 1000}))
        .await;
    let (s, joined) = app
        .redeem(
            came["code"].as_str().unwrap(),
            "device-of-the-patient-who-came",
        )
        .await;
    assert_eq!(s, 200, "{joined}");
    let mut c = app.join(joined["token"].as_str().unwrap()).await;
    c.expect("waiting").await;

    // Before the window closes nothing is marked.
    assert_eq!(
        examroom::history::sweep_no_shows(app.state.durable.as_ref(), now)
            .await
            .unwrap(),
        0
    );
    let after = now + 2000;
    assert_eq!(
        examroom::history::sweep_no_shows(app.state.durable.as_ref(), after)
            .await
            .unwrap(),
        1
    );
    let visit = examroom::ids::VisitId::parse(missed["visit"].as_str().unwrap()).unwrap();
    let r = app
        .state
        .durable
        .visit(&visit)
        .await
        .unwrap()
        .expect("a history entry");
    assert_eq!(r.outcome, Some(examroom::visit::VisitState::NoShow));
    // Idempotent: a second sweep marks nothing new.
    assert_eq!(
        examroom::history::sweep_no_shows(app.state.durable.as_ref(), after)
            .await
            .unwrap(),
        0
    );
}

/// The link printed at the first start, as `examroom serve` prints it.
async fn first_admin_link(app: &TestApp) -> String {
    let url = examroom::identity::setup::first_admin_link(
        app.state.durable.as_ref(),
        "https://clinic.test",
    )
    .await
    .unwrap()
    .expect("no staff yet, so a link");
    token_of(&url)
}

#[tokio::test]
async fn a_first_admin_form_the_server_refuses_does_not_spend_the_link() {
    let app = TestApp::spawn().await;
    let path = format!("/api/setup/{}", first_admin_link(&app).await);
    let setup = |body: Value| app.call_json("POST", &path, None, Some(body));

    let (s, body) = setup(json!({"name": "Ada", "password": "correct horse battery"})).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("email")), "{body}");
    let (s, body) =
        setup(json!({"email": "ada@clinic.test", "password": "correct horse battery"})).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("name")), "{body}");

    // The corrected form goes through, and then the link is spent.
    let (s, body) = setup(json!({"email": "ada@clinic.test", "name": "Ada",
                                 "password": "correct horse battery"}))
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["staff"]["roles"], json!(["physician", "admin"]));
    let (s, _) = setup(json!({"email": "eve@clinic.test", "name": "Eve",
                              "password": "correct horse battery"}))
    .await;
    assert_eq!(s, 410);
}

#[tokio::test]
async fn a_first_admin_link_is_dead_once_an_admin_was_made_on_the_command_line() {
    let app = TestApp::spawn().await;
    let link = first_admin_link(&app).await;
    // The operator runs `examroom admin create` before anyone opens the printed link.
    examroom::identity::setup::create_staff(
        app.state.durable.as_ref(),
        "ada@clinic.test",
        "Ada",
        vec![Role::Admin],
        "correct horse battery",
    )
    .await
    .unwrap();

    let body = json!({"email": "mallory@evil.test", "name": "Mallory",
                      "password": "correct horse battery"});
    let (s, body) = set_password(&app, &link, body).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (410, Some("admin_exists")),
        "{body}"
    );
    let staff = app.state.durable.list_staff().await.unwrap();
    assert_eq!(
        staff.iter().map(|s| s.email.as_str()).collect::<Vec<_>>(),
        ["ada@clinic.test"],
        "no second admin"
    );
    assert!(
        examroom::identity::setup::first_admin_link(
            app.state.durable.as_ref(),
            "https://clinic.test"
        )
        .await
        .unwrap()
        .is_none(),
        "no new link either"
    );
}

/// First start of the real binary: the first-admin link stands alone on a plain line (easy
/// to find and copy), and no log line carries its token (logs travel further).
#[test]
fn first_start_prints_the_setup_link_plainly_and_keeps_it_out_of_the_log() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--log-json", "serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut plain = Vec::new();
    let mut logged = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Value>(&line) {
            Ok(v) => {
                let serving = v["fields"]["message"] == "serving HTTP";
                logged.push(line);
                if serving {
                    break;
                }
            }
            Err(_) => plain.push(line),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let link = plain
        .iter()
        .map(|l| l.trim())
        .find(|l| l.contains("/setup/"))
        .unwrap_or_else(|| panic!("no plain setup link line: {plain:?}"));
    assert!(
        link.starts_with("http://127.0.0.1:") && !link.contains(' '),
        "the link line holds only the link: {link:?}"
    );
    let token = link.rsplit('/').next().unwrap();
    assert!(token.len() >= 16, "{link}");
    assert!(
        logged.iter().all(|l| !l.contains(token)),
        "a log line carries the setup token"
    );
}
