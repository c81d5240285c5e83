//! A chart read refused at authentication is audited like every other refusal: who (as
//! far as known), which visit and patient was asked for, and why. Someone probing the
//! records API without a valid sign-in leaves a trail in the hash-chained audit log.

use crate::kit::*;
use examroom::audit::{AuditOutcome, NewAuditEntry};
use examroom::identity::Role;
use examroom::ids::PatientRef;
use examroom::visit::RoomKind;
use serde_json::Value;

async fn read_chart(app: &TestApp, visit: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.url(&format!("/api/visits/{visit}/record")));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn refusals(app: &TestApp) -> Vec<NewAuditEntry> {
    let entries = app.audited().await.into_iter();
    entries
        .filter(|e| e.outcome == AuditOutcome::Refused && e.action == "records.read")
        .collect()
}

#[tokio::test]
async fn chart_reads_refused_at_authentication_are_audited() {
    let app = TestApp::spawn_with(|s| s.records.demo = true).await;
    let doc = app.physician("Dr Grey").await;
    let room = app.room("Clinic", RoomKind::Physician, &[&doc]).await;
    let patient = PatientRef::parse("demo-patient-1").unwrap();
    let (t, _, visit) = app.patient_token_with(&room.id, "Ana", Some(patient.clone()), None);
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;

    // Nobody signed in.
    let (s, body) = read_chart(&app, visit.as_str(), None).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("no_credentials")));
    // A forged token.
    let (s, body) = read_chart(&app, visit.as_str(), Some("Bearer not.a.token")).await;
    assert_eq!(s, 401, "{body}");
    let forged_code = body["error"].as_str().unwrap().to_owned();
    // A real physician whose session was signed out: the token names who it was.
    let gone = app.physician("Dr Gone").await;
    let gone_t = app.staff_token(&gone, vec![Role::Physician]).await;
    app.state.durable.revoke_sessions_of(&gone).await.unwrap();
    let (s, body) = read_chart(&app, visit.as_str(), Some(&format!("Bearer {gone_t}"))).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("session_revoked")));

    let refused = refusals(&app).await;
    let find = |reason: &str| {
        refused
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .unwrap_or_else(|| panic!("no refusal audited for {reason}: {refused:?}"))
            .clone()
    };
    let anonymous = find("no_credentials");
    assert_eq!(anonymous.actor, "ip:127.0.0.1");
    assert_eq!(anonymous.visit.as_ref(), Some(&visit));
    assert_eq!(anonymous.patient_ref.as_ref(), Some(&patient));
    assert!(anonymous.sections.is_empty());
    let forged = find(&forged_code);
    assert_eq!(forged.actor, "ip:127.0.0.1");
    assert_eq!(forged.visit.as_ref(), Some(&visit));
    let revoked = find("session_revoked");
    assert_eq!(revoked.actor, gone.as_str());
    assert_eq!(revoked.patient_ref.as_ref(), Some(&patient));
    assert!(app.state.durable.verify_audit().await.unwrap().ok);
}
