//! The record side panel: only the visit's physician, while the visit is open (plus a
//! short window), and once the patient confirmed their date of birth, may read it; every
//! read, allowed or refused, is audited; and `examroom audit verify` detects an edited or
//! deleted audit entry. (The identity check itself: `records_identity.rs`.)

use crate::kit::*;
use examroom::audit::AuditOutcome;
use examroom::identity::Role;
use examroom::ids::PatientRef;
use examroom::visit::RoomKind;
use serde_json::{Value, json};

async fn get_record(app: &TestApp, visit: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.url(&format!("/api/visits/{visit}/record")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn only_the_visits_physician_reads_the_chart_and_every_read_is_audited() {
    let app = TestApp::spawn_with(|s| {
        s.records.after_visit_minutes = 0;
        s.records.demo = true; // `serve --demo`: demo-patient-1 has a penicillin allergy
    })
    .await;
    let grey = app.physician("Dr Grey").await;
    let house = app.physician("Dr House").await;
    let admin = app
        .staff("Admin Ada", vec![Role::Admin], vec![], None)
        .await;
    let room = app
        .room("Family medicine", RoomKind::Physician, &[&grey, &house])
        .await;
    let grey_t = app.staff_token(&grey, vec![Role::Physician]).await;
    let house_t = app.staff_token(&house, vec![Role::Physician]).await;
    let admin_t = app.staff_token(&admin, vec![Role::Admin]).await;

    let patient = PatientRef::parse("demo-patient-1").unwrap();
    let (t, _, visit) = app.patient_token_with(&room.id, "Ana", Some(patient.clone()), None);
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    // Ana confirms who she is (demo-patient-1 was born 1968-04-17).
    let (s, body) = app.confirm_identity(&t, "1968-04-17").await;
    assert_eq!(s, 200, "{body}");

    // Before anyone admitted her, not even her room's physician may look.
    let (s, body) = get_record(&app, visit.as_str(), Some(&grey_t)).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_your_visit")));

    let mut doc = app.join(&grey_t).await;
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    doc.expect("admitted").await;

    let (s, panel) = get_record(&app, visit.as_str(), Some(&grey_t)).await;
    assert_eq!(s, 200, "{panel}");
    // The prefetch when Ana started waiting already read it for this visit.
    assert_eq!(panel["cached"], true, "{panel}");
    // "Refresh" reads the record anew; the answer is never stored by a browser or proxy.
    let fresh = reqwest::Client::new()
        .get(app.url(&format!("/api/visits/{visit}/record?refresh=true")))
        .bearer_auth(&grey_t)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.headers()["cache-control"], "no-store");
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(fresh["cached"], false);
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["fetched_at"].as_str().unwrap()).unwrap()
    };
    assert!(at(&fresh) > at(&panel));
    let allergies = &panel["allergies"];
    assert_eq!(allergies["status"], "recorded");
    let first = &allergies["items"][0];
    assert!(
        first["substance"]["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("penicillin"),
        "{first}"
    );
    assert_eq!(first["criticality"], "high");

    // Everyone else is refused: another physician of the same room, an admin, the patient.
    let (s, body) = get_record(&app, visit.as_str(), Some(&house_t)).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_your_visit")));
    let (s, body) = get_record(&app, visit.as_str(), Some(&admin_t)).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_physician")));
    let (s, body) = get_record(&app, visit.as_str(), Some(&t)).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("not_physician")));
    let (s, _) = get_record(&app, visit.as_str(), None).await;
    assert_eq!(s, 401);

    // After the visit (window 0 minutes), the physician is refused too.
    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    doc.expect("visit_ended").await;
    let mut ended = false;
    for _ in 0..50 {
        let (s, body) = get_record(&app, visit.as_str(), Some(&grey_t)).await;
        if s == 403 && body["error"] == "visit_closed" {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ended, "reading after the window must be refused");

    let entries = app.audited().await;
    // The prefetch when the patient started waiting is a read too, audited as such.
    let prefetch: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "records.prefetch")
        .collect();
    assert_eq!(prefetch.len(), 1, "{entries:?}");
    assert_eq!(prefetch[0].actor, "system:prefetch");
    assert_eq!(prefetch[0].patient_ref.as_ref(), Some(&patient));
    assert_eq!(prefetch[0].visit.as_ref(), Some(&visit));
    let allowed: Vec<_> = entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Allowed && e.action == "records.read")
        .collect();
    // Reads between `end_visit` and its history landing are still within the visit.
    assert!(!allowed.is_empty());
    assert!(
        allowed.iter().all(|e| e.actor == grey.as_str()),
        "{allowed:?}"
    );
    assert_eq!(allowed[0].patient_ref.as_ref(), Some(&patient));
    assert_eq!(allowed[0].visit.as_ref(), Some(&visit));
    assert!(allowed[0].sections.contains(&"allergies".to_string()));
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Refused)
        .collect();
    assert!(refused.len() >= 5, "{refused:?}");
    for actor in [grey.as_str(), house.as_str(), admin.as_str()] {
        assert!(
            refused.iter().any(|e| e.actor == actor),
            "no refusal audited for {actor}"
        );
    }
    assert!(app.state.durable.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn audit_verify_detects_an_edited_entry() {
    let app = TestApp::spawn_with(|s| s.records.demo = true).await;
    let (_, grey_t, room) = app.physician_with_room("Dr Grey", "Room").await;
    let (t, _, visit) = app.patient_token_with(
        &room.id,
        "Ana",
        Some(PatientRef::parse("demo-patient-1").unwrap()),
        None,
    );
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    for _ in 0..3 {
        get_record(&app, visit.as_str(), Some(&grey_t)).await;
    }
    let dir = app.shutdown().await;
    let verify = || crate::kit::cli(&["audit", "verify"], dir.path());
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Three reads and the prefetch when Ana started waiting.
    assert!(String::from_utf8_lossy(&ok.stdout).contains("4 entries"));

    // Someone edits an entry in the database to hide who read the chart.
    let db = dir.path().join("examroom.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'nobody' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = verify();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("TAMPERED") && err.contains("seq 2"), "{err}");
}
