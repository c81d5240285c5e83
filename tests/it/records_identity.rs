//! Issue 17, item 1: no physician opens a chart by a self-made link. The chart opens only
//! for a patient who joined as that patient: the record reference comes from a trusted
//! source (an admin), staff cannot redeem patient links, the patient confirms their date
//! of birth against the record, and emergency access (reason required, audited, listed
//! for admins) is the only way around it.

use crate::kit::*;
use examroom::audit::AuditOutcome;
use examroom::identity::Role;
use examroom::ids::{StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind};
use serde_json::{Value, json};

/// demo-patient-1 (`serve --demo`): born 1968-04-17, allergic to penicillin.
const PATIENT: &str = "demo-patient-1";
const BORN: &str = "1968-04-17";
const PW: &str = "a long enough password";

struct Clinic {
    app: TestApp,
    room: RoomConfig,
    grey: StaffId,
    grey_t: String,
    admin_t: String,
}

async fn clinic_with(f: impl FnOnce(&mut examroom::config::Settings)) -> Clinic {
    let app = TestApp::spawn_with(|s| {
        s.records.demo = true;
        f(s);
    })
    .await;
    let grey = app
        .staff_with_password("grey@clinic.test", vec![Role::Physician], PW)
        .await;
    let room = app
        .room("Family medicine", RoomKind::Physician, &[&grey])
        .await;
    let grey_t = app.staff_token(&grey, vec![Role::Physician]).await;
    let admin = app
        .staff("Admin Ada", vec![Role::Admin], vec![], None)
        .await;
    let admin_t = app.staff_token(&admin, vec![Role::Admin]).await;
    Clinic {
        app,
        room,
        grey,
        grey_t,
        admin_t,
    }
}

async fn clinic() -> Clinic {
    clinic_with(|_| {}).await
}

impl Clinic {
    /// The admin makes a link for demo-patient-1 (the trusted source of the reference).
    async fn admin_link(&self) -> Value {
        self.app
            .mint_link(
                &self.admin_t,
                json!({"room": self.room.id, "patient_name": "Ana", "patient_ref": PATIENT}),
            )
            .await
    }

    /// The patient opens the link in a clean browser, enters the waiting room, and the
    /// physician admits her. Returns her token, the visit and both sockets.
    async fn admitted_visit(&self, link: &Value) -> (String, VisitId, Client, Client) {
        let (s, joined) = self
            .app
            .redeem(link["code"].as_str().unwrap(), "patient-browser-0001")
            .await;
        assert_eq!(s, 200, "{joined}");
        let token = joined["token"].as_str().unwrap().to_owned();
        let visit = VisitId::parse(joined["visit"].as_str().unwrap()).unwrap();
        let mut ana = self.app.join(&token).await;
        ana.expect("waiting").await;
        let mut doc = self.app.join(&self.grey_t).await;
        doc.send(json!({"type": "admit", "room": self.room.id, "visit": visit}))
            .await;
        doc.expect("admitted").await;
        (token, visit, ana, doc)
    }

    async fn record(&self, visit: &VisitId, bearer: &str) -> (u16, Value) {
        self.app
            .call_json(
                "GET",
                &format!("/api/visits/{visit}/record"),
                Some(bearer),
                None,
            )
            .await
    }

    async fn confirm(&self, patient_token: &str, born: &str) -> (u16, Value) {
        self.app.confirm_identity(patient_token, born).await
    }

    async fn emergency(&self, visit: &VisitId, bearer: &str, body: Value) -> (u16, Value) {
        self.app
            .call_json(
                "POST",
                &format!("/api/visits/{visit}/record/emergency-access"),
                Some(bearer),
                Some(body),
            )
            .await
    }

    async fn audit(&self) -> Vec<examroom::audit::NewAuditEntry> {
        self.app.audited().await
    }
}

/// `POST /api/join/{code}` with extra request headers (cookies, a bearer token).
async fn redeem_with(app: &TestApp, code: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(app.url(&format!("/api/join/{code}")))
        .json(&json!({"device": "staff-browser-00001"}));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `name=value` part of each `Set-Cookie` header.
fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_physician_cannot_put_a_patient_record_on_their_own_link() {
    let c = clinic().await;
    // The attack: a physician names an arbitrary patient on a link they make themself.
    let (s, body) = c
        .app
        .call_json(
            "POST",
            "/api/links",
            Some(&c.grey_t),
            Some(json!({"room": c.room.id, "patient_ref": "demo-patient-2"})),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str(), body["field"].as_str()),
        (403, Some("patient_ref_not_allowed"), Some("patient_ref")),
        "{body}"
    );
    assert!(
        c.app
            .state
            .durable
            .list_links(None)
            .await
            .unwrap()
            .is_empty()
    );
    // Without a record the link still works for video; the panel says there is none.
    let link = c.app.mint_link(&c.grey_t, json!({"room": c.room.id})).await;
    let (s, joined) = c
        .app
        .redeem(link["code"].as_str().unwrap(), "patient-browser-0001")
        .await;
    assert_eq!(s, 200);
    assert_eq!(joined["identity"], json!({"required": false}));
    // An admin may name the patient.
    let link = c.admin_link().await;
    assert!(link["code"].is_string());
}

#[tokio::test]
async fn physicians_name_patients_only_when_the_operator_enabled_the_ehr_context() {
    let c = clinic_with(|s| s.links.physicians_may_name_patient = true).await;
    let link = c
        .app
        .mint_link(
            &c.grey_t,
            json!({"room": c.room.id, "patient_ref": PATIENT}),
        )
        .await;
    // The patient must still confirm who they are before the chart opens.
    let (token, visit, _ana, _doc) = c.admitted_visit(&link).await;
    let (s, body) = c.record(&visit, &c.grey_t).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("identity_not_confirmed"))
    );
    assert_eq!(c.confirm(&token, BORN).await.0, 200);
    assert_eq!(c.record(&visit, &c.grey_t).await.0, 200);
}

#[tokio::test]
async fn staff_cannot_redeem_a_patient_link_from_a_staff_session_or_browser() {
    let c = clinic().await;
    let link = c.admin_link().await;
    let code = link["code"].as_str().unwrap();

    // With the staff bearer token.
    let (s, body) = redeem_with(
        &c.app,
        code,
        &[("authorization", format!("Bearer {}", c.grey_t))],
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("staff_cannot_join_as_patient")),
        "{body}"
    );

    // Signed in in this browser: the session cookie.
    let r = c.app.sign_in_call("grey@clinic.test", PW).await;
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("examroom_session="))
        .unwrap()
        .clone();
    let device = cookies
        .iter()
        .find(|c| c.starts_with("examroom_staff_device="))
        .expect("sign-in marks the browser as a staff one")
        .clone();
    let (s, body) = redeem_with(&c.app, code, &[("cookie", format!("{session}; {device}"))]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("staff_cannot_join_as_patient"))
    );

    // Signed out: the session cookie is gone, the staff-device marker stays.
    let (s, body) = redeem_with(&c.app, code, &[("cookie", device.clone())]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("staff_cannot_join_as_patient"))
    );

    // None of this used or bound the link; the patient's own browser gets in.
    let stored = c
        .app
        .state
        .durable
        .link(&examroom::ids::LinkId::parse(link["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.use_count, 0);
    let (s, joined) = c.app.redeem(code, "patient-browser-0001").await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(
        joined["identity"],
        json!({"required": true, "factor": "birth_date", "confirmed": false, "attempts_left": 5})
    );

    // Each refusal is audited: who, which link's patient, why.
    let refused: Vec<_> = c
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "links.redeem")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().all(|e| e.outcome == AuditOutcome::Refused
        && e.reason.as_deref() == Some("staff_cannot_join_as_patient")
        && e.patient_ref.as_ref().map(|p| p.as_str()) == Some(PATIENT)));
    assert_eq!(refused[0].actor, c.grey.as_str());
    assert_eq!(refused[1].actor, c.grey.as_str());
    assert_eq!(refused[2].actor, "staff-device");
}

#[tokio::test]
async fn the_chart_opens_only_after_the_patient_confirms_their_birth_date() {
    let c = clinic().await;
    let link = c.admin_link().await;
    let (token, visit, _ana, _doc) = c.admitted_visit(&link).await;

    // The physician admitted her, but she has not confirmed who she is.
    let (s, body) = c.record(&visit, &c.grey_t).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("identity_not_confirmed")),
        "{body}"
    );

    // A wrong date, a malformed one, then hers.
    let (s, body) = c.confirm(&token, "1986-04-17").await;
    assert_eq!(
        (
            s,
            body["error"].as_str(),
            body["field"].as_str(),
            body["attempts_left"].as_u64()
        ),
        (422, Some("identity_mismatch"), Some("birth_date"), Some(4)),
        "{body}"
    );
    let (s, body) = c.confirm(&token, "17/04/1968").await;
    assert_eq!((s, body["field"].as_str()), (422, Some("birth_date")));
    let (s, body) = c.confirm(&token, BORN).await;
    assert_eq!(
        (s, body["confirmed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );

    let (s, panel) = c.record(&visit, &c.grey_t).await;
    assert_eq!(s, 200, "{panel}");
    assert_eq!(panel["demographics"]["birth_date"], BORN);

    // Reopening the link (a reload) says she is confirmed.
    let (_, again) = c
        .app
        .redeem(link["code"].as_str().unwrap(), "patient-browser-0001")
        .await;
    assert_eq!(again["identity"]["confirmed"], true);

    let audit = c.audit().await;
    let refused_read = audit
        .iter()
        .find(|e| e.action == "records.read" && e.outcome == AuditOutcome::Refused)
        .expect("the refused read is audited");
    assert_eq!(refused_read.actor, c.grey.as_str());
    assert_eq!(
        refused_read.reason.as_deref(),
        Some("identity_not_confirmed")
    );
    let answers: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "identity.confirm")
        .map(|e| (e.outcome, e.reason.clone()))
        .collect();
    assert_eq!(
        answers,
        vec![
            (AuditOutcome::Refused, Some("identity_mismatch".to_owned())),
            (AuditOutcome::Allowed, None)
        ]
    );
}

#[tokio::test]
async fn wrong_birth_dates_lock_the_chart_and_only_emergency_access_opens_it() {
    let c = clinic().await;
    let house = c.app.physician("Dr House").await;
    let house_t = c.app.staff_token(&house, vec![Role::Physician]).await;
    let link = c.admin_link().await;
    let (token, visit, _ana, _doc) = c.admitted_visit(&link).await;

    // Someone who is not Ana guesses: four tries left, then three…, then locked.
    for left in (1..5).rev() {
        let (s, body) = c.confirm(&token, "1970-01-01").await;
        assert_eq!(
            (s, body["attempts_left"].as_u64()),
            (422, Some(left)),
            "{body}"
        );
    }
    let (s, body) = c.confirm(&token, "1970-01-02").await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("identity_locked")),
        "{body}"
    );
    // Even the right date does not unlock it.
    let (s, body) = c.confirm(&token, BORN).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("identity_locked")));
    let (s, body) = c.record(&visit, &c.grey_t).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("identity_locked")));

    // Emergency access needs a reason…
    let (s, body) = c.emergency(&visit, &c.grey_t, json!({})).await;
    assert_eq!(
        (s, body["error"].as_str(), body["field"].as_str()),
        (422, Some("invalid_field"), Some("reason"))
    );
    let (s, _) = c
        .emergency(&visit, &c.grey_t, json!({"reason": "urgent"}))
        .await;
    assert_eq!(s, 422);
    // …and is only for the physician of this visit.
    let reason = "Patient unresponsive on camera; need allergies before advising";
    let (s, body) = c
        .emergency(&visit, &house_t, json!({ "reason": reason }))
        .await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_your_visit")));
    let (s, body) = c
        .emergency(&visit, &c.admin_t, json!({ "reason": reason }))
        .await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_physician")));

    let (s, body) = c
        .emergency(&visit, &c.grey_t, json!({ "reason": reason }))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, panel) = c.record(&visit, &c.grey_t).await;
    assert_eq!(s, 200, "{panel}");
    // Only for her: Dr House still cannot read it.
    let (s, _) = c.record(&visit, &house_t).await;
    assert_eq!(s, 403);

    // Audited: the grant with its reason, and the read that it opened.
    let audit = c.audit().await;
    let grant: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "records.emergency_access" && e.outcome == AuditOutcome::Allowed)
        .collect();
    assert_eq!(grant.len(), 1, "{audit:?}");
    assert_eq!(grant[0].actor, c.grey.as_str());
    assert_eq!(grant[0].visit.as_ref(), Some(&visit));
    assert!(grant[0].reason.as_deref().unwrap().contains(reason));
    let refused_grants = audit
        .iter()
        .filter(|e| e.action == "records.emergency_access" && e.outcome == AuditOutcome::Refused)
        .count();
    assert_eq!(
        refused_grants, 4,
        "no reason, short reason, Dr House, the admin"
    );
    assert!(audit.iter().any(|e| {
        e.action == "records.read"
            && e.outcome == AuditOutcome::Allowed
            && e.reason
                .as_deref()
                .is_some_and(|r| r.contains("emergency_access"))
    }));
    let locked = audit
        .iter()
        .filter(|e| {
            e.action == "identity.confirm" && e.reason.as_deref() == Some("identity_locked")
        })
        .count();
    assert_eq!(locked, 2);
    assert!(c.app.state.durable.verify_audit().await.unwrap().ok);

    // Admins see it in their list; physicians may not list it.
    let (s, list) = c
        .app
        .call_json("GET", "/api/emergency-access", Some(&c.admin_t), None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list[0]["visit"], json!(visit));
    assert_eq!(list[0]["staff"], json!(c.grey));
    assert_eq!(list[0]["reason"], reason);
    assert_eq!(list[0]["room_name"], "Family medicine");
    let (s, body) = c
        .app
        .call_json("GET", "/api/emergency-access", Some(&c.grey_t), None)
        .await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_admin")));
}

#[tokio::test]
async fn concurrent_guesses_never_exceed_the_attempt_limit() {
    let c = clinic_with(|s| s.links.identity_attempts = 3).await;
    let link = c.admin_link().await;
    let (token, visit, _ana, _doc) = c.admitted_visit(&link).await;
    let guesses = (0..20).map(|i| {
        let (app, token) = (&c.app, token.clone());
        async move {
            let born = format!("1970-01-{:02}", i + 1);
            app.confirm_identity(&token, &born).await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    // Three answers were compared: two told "wrong", the third locked the visit; every
    // other one found no slot left.
    let wrong = answers.iter().filter(|(s, _)| *s == 422).count();
    assert_eq!(wrong, 2, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s == 422 || (*s == 403 && b["error"] == "identity_locked")),
        "{answers:?}"
    );
    let check = c
        .app
        .state
        .durable
        .identity_check(&visit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(check.attempts, 3);
}

#[tokio::test]
async fn with_the_factor_explicitly_off_the_chart_opens_without_confirmation() {
    let c = clinic_with(|s| {
        s.links.identity_factor = examroom::config::IdentityFactor::None;
    })
    .await;
    let link = c.admin_link().await;
    let (_, visit, _ana, _doc) = c.admitted_visit(&link).await;
    assert_eq!(c.record(&visit, &c.grey_t).await.0, 200);
    let audit = c.audit().await;
    assert!(audit.iter().any(|e| e.action == "records.read"
        && e.outcome == AuditOutcome::Allowed
        && e.reason.as_deref() == Some("identity_factor_none")));
}

#[tokio::test]
async fn an_admin_makes_a_patient_link_from_the_command_line() {
    let c = clinic().await;
    let room = c.room.id.to_string();
    let dir = c.app.shutdown().await;
    let cli = |by: &str| {
        let args = ["link", "create", "--room", room.as_str(), "--by", by];
        let more = ["--patient-ref", PATIENT, "--name", "Ana"];
        crate::kit::cli(&[&args[..], &more[..]].concat(), dir.path())
    };
    // A physician is not a trusted source of the record id, here either.
    let refused = cli("grey@clinic.test");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--by"));
    let made = cli("admin.ada@clinic.test");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let url = String::from_utf8(made.stdout).unwrap();
    let code = url.trim().rsplit('/').next().unwrap().to_owned();

    let settings = crate::kit::test_settings(dir.path());
    let app = TestApp::spawn_in(dir, {
        let mut s = settings;
        s.records.demo = true;
        s
    })
    .await;
    let (s, joined) = app.redeem(&code, "patient-browser-0001").await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["name"], "Ana");
    assert_eq!(joined["identity"]["required"], true);
}
