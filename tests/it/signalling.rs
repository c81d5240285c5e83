//! The signalling edge over real WebSockets against the real server on a random port.

use crate::kit::*;
use examroom::identity::Role;
use examroom::visit::RoomKind;
use serde_json::json;
use std::time::Duration;

/// A physician room with one physician signed in on the dashboard.
async fn clinic(app: &TestApp) -> (examroom::visit::RoomConfig, Client) {
    let (_, token, room) = app.physician_with_room("Dr Grey", "Family medicine").await;
    let mut c = app.join(&token).await;
    c.expect("queue").await;
    (room, c)
}

/// Ana joins `room`, waits, and `doc` admits her; returns her client and visit.
async fn ana_admitted(
    app: &TestApp,
    room: &examroom::visit::RoomConfig,
    doc: &mut Client,
) -> (Client, examroom::ids::VisitId) {
    let (t, _, visit) = app.patient_token(&room.id, "Ana");
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("admitted").await;
    (ana, visit)
}

#[tokio::test]
async fn a_visit_exchanges_offer_answer_and_candidates_and_no_one_else_hears() {
    let app = TestApp::spawn().await;
    let (room, mut doc) = clinic(&app).await;
    let (t1, _, visit) = app.patient_token(&room.id, "Ana");
    let mut ana = app.join(&t1).await;
    let w = ana.expect("waiting").await;
    assert_eq!(w["position"], 1);
    // Another patient waits in the same room: they must hear nothing of Ana's visit.
    let mut ben = app.waiting_patient(&room.id, "Ben").await;

    let q = doc
        .expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 2)
        .await;
    assert_eq!(q["entries"][0]["name"], "Ana");
    let doc_id = admit(&mut doc, &mut ana, &room.id, &visit).await;

    doc.send(json!({"type": "offer", "to": ana.participant, "sdp": "v=0 offer"}))
        .await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["from"], doc_id);
    assert_eq!(offer["sdp"], "v=0 offer");
    ana.send(json!({"type": "answer", "to": doc_id, "sdp": "v=0 answer"}))
        .await;
    assert_eq!(doc.expect("answer").await["sdp"], "v=0 answer");
    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    ana.send(json!({"type": "candidate", "to": doc_id, "candidate": cand}))
        .await;
    assert_eq!(doc.expect("candidate").await["candidate"], cand);
    ana.send(json!({"type": "end_of_candidates", "to": doc_id}))
        .await;
    doc.expect("end_of_candidates").await;
    // Renegotiation is just another offer.
    ana.send(json!({"type": "offer", "to": doc_id, "sdp": "v=0 renegotiate"}))
        .await;
    assert_eq!(doc.expect("offer").await["sdp"], "v=0 renegotiate");

    // Ben tries to reach the physician and Ana directly: refused, nothing delivered.
    ben.send(json!({"type": "offer", "to": doc_id, "sdp": "intrude"}))
        .await;
    assert_eq!(ben.expect("error").await["code"], "not_in_visit");
    doc.expect_none("offer", Duration::from_millis(300)).await;
    ben.expect_none("offer", Duration::from_millis(100)).await;
    ben.expect_none("candidate", Duration::from_millis(100))
        .await;
    ben.expect_none("answer", Duration::from_millis(100)).await;

    // The visit is recorded as in a call once the answer went through.
    let (_, metrics) = app.metrics(Some(METRICS_TOKEN)).await;
    assert!(
        metrics.contains("examroom_visits{state=\"in_call\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("examroom_messages_relayed_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn camera_and_microphone_state_reach_the_peer_and_no_one_else() {
    let app = TestApp::spawn().await;
    let (room, mut doc) = clinic(&app).await;
    let (t1, _, visit) = app.patient_token(&room.id, "Ana");
    let mut ana = app.join(&t1).await;
    ana.expect("waiting").await;
    let mut ben = app.waiting_patient(&room.id, "Ben").await;
    let doc_id = admit(&mut doc, &mut ana, &room.id, &visit).await;

    doc.send(json!({"type": "media_state", "to": ana.participant, "audio": true, "video": false}))
        .await;
    let m = ana.expect("media_state").await;
    assert_eq!(
        (&m["from"], &m["audio"], &m["video"]),
        (&json!(doc_id), &json!(true), &json!(false))
    );
    ana.send(json!({"type": "media_state", "to": doc_id, "audio": false, "video": true}))
        .await;
    assert_eq!(doc.expect("media_state").await["audio"], false);
    // A waiting patient can neither send it into the call nor hear it.
    ben.send(json!({"type": "media_state", "to": doc_id, "audio": false, "video": false}))
        .await;
    assert_eq!(ben.expect("error").await["code"], "not_in_visit");
    doc.expect_none("media_state", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn bad_input_gets_a_named_error_and_the_connection_survives() {
    let app = TestApp::spawn().await;
    let (room, _doc) = clinic(&app).await;
    let mut ana = app.waiting_patient(&room.id, "Ana").await;

    ana.send_raw("{not json".into()).await;
    assert_eq!(ana.expect("error").await["code"], "bad_json");
    ana.send(json!({"type": "teleport"})).await;
    let e = ana.expect("error").await;
    assert_eq!(e["code"], "unknown_type");
    assert!(e["message"].as_str().unwrap().contains("teleport"));
    ana.send(json!({"type": "offer", "sdp": "missing to"}))
        .await;
    assert_eq!(ana.expect("error").await["code"], "bad_message");
    // 64 KiB and more is refused; the connection stays up.
    ana.send(json!({"type": "chat", "text": "x".repeat(64 * 1024)}))
        .await;
    let e = ana.expect("error").await;
    assert_eq!(e["code"], "too_large");
    // A realistic SDP (~10 KB) is fine, and the connection still works.
    ana.send(json!({"type": "ping"})).await;
    ana.expect("pong").await;
    assert!(!ana.closed_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let app = TestApp::spawn().await;
    let mut c = app.ws().await;
    c.send(json!({"type": "hello", "v": 1, "token": "not-a-token"}))
        .await;
    assert_eq!(c.expect("error").await["code"], "unauthenticated");
    assert!(c.closed_within(WAIT).await);

    let mut c = app.ws().await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.expect("error").await["code"], "hello_required");
    assert!(c.closed_within(WAIT).await);

    let doc = app.physician("Dr Grey").await;
    let room = app.room("Room", RoomKind::Physician, &[&doc]).await;
    let (t, _, _) = app.patient_token(&room.id, "Ana");
    let mut c = app.ws().await;
    c.send(json!({"type": "hello", "v": 99, "token": t})).await;
    assert_eq!(c.expect("error").await["code"], "unsupported_version");
}

#[tokio::test]
async fn a_silent_client_is_dropped_and_its_peer_told() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.heartbeat_interval_secs = 1;
        s.signalling.heartbeat_timeout_secs = 2;
    })
    .await;
    let (room, mut doc) = clinic(&app).await;
    let (ana, _) = ana_admitted(&app, &room, &mut doc).await;
    // Ana's network dies: she stops reading and answering pings.
    let started = std::time::Instant::now();
    let reconnecting = doc.expect("peer_reconnecting").await;
    assert_eq!(reconnecting["participant"], ana.participant.as_str());
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(ana);
}

#[tokio::test]
async fn hello_must_come_in_time() {
    let app = TestApp::spawn_with(|s| s.signalling.hello_timeout_secs = 1).await;
    let mut c = app.ws().await;
    assert_eq!(c.expect("error").await["code"], "hello_timeout");
    assert!(c.closed_within(WAIT).await);
}

#[tokio::test]
async fn flooding_is_rate_limited_without_closing() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.rate_per_sec = 5;
        s.signalling.rate_burst = 5;
    })
    .await;
    let (room, _doc) = clinic(&app).await;
    let (t, _, _) = app.patient_token(&room.id, "Ana");
    let mut ana = app.join(&t).await;
    // A burst over the rate, but less than a second burst's worth dropped: not a flood.
    for _ in 0..8 {
        ana.send(json!({"type": "ping"})).await;
    }
    assert_eq!(ana.expect("error").await["code"], "rate_limited");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ana.backlog.clear();
    ana.send(json!({"type": "ping"})).await;
    ana.expect("pong").await;
}

#[tokio::test]
async fn a_physician_drop_mid_call_resumes_without_readmission() {
    let app = TestApp::spawn().await;
    let (doc_id, doc_token, room) = app.physician_with_room("Dr Grey", "Room").await;
    let mut doc = app.join(&doc_token).await;
    let (mut ana, _) = ana_admitted(&app, &room, &mut doc).await;
    doc.expect("admitted").await;

    // The physician's connection drops.
    let resume = doc.resume_token.clone();
    drop(doc);
    ana.expect("peer_reconnecting").await;
    // Ana sends an ICE-restart offer while the physician is away: it is held.
    ana.send(json!({"type": "offer", "to": doc_id, "sdp": "restart-offer"}))
        .await;

    let mut doc = app.ws().await;
    doc.hello(&doc_token, Some(&resume)).await;
    // The held offer is replayed; Ana is told to restart ICE, not to rebuild.
    assert_eq!(doc.expect("offer").await["sdp"], "restart-offer");
    ana.expect("peer_resumed").await;
    // Still the same visit, no re-admission: the call goes on.
    doc.send(json!({"type": "answer", "to": ana.participant, "sdp": "restart-answer"}))
        .await;
    assert_eq!(ana.expect("answer").await["sdp"], "restart-answer");
    ana.expect_none("sent_back", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn a_patient_reload_keeps_queue_position() {
    let app = TestApp::spawn().await;
    let (room, mut doc) = clinic(&app).await;
    let (ta, _, _) = app.patient_token(&room.id, "Ana");
    let (tb, _, _) = app.patient_token(&room.id, "Ben");
    let mut ana = app.join(&ta).await;
    ana.expect("waiting").await;
    let mut ben = app.join(&tb).await;
    assert_eq!(ben.expect("waiting").await["position"], 2);
    // Ana reloads the page: a new connection with the same token.
    drop(ana);
    let mut ana = app.join(&ta).await;
    assert_eq!(ana.expect("waiting").await["position"], 1);
    let q = doc
        .expect_where("queue", |q| {
            q["entries"][0]["connected"] == true && q["entries"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(q["entries"][0]["name"], "Ana");
}

#[tokio::test]
async fn an_early_patient_waits_for_the_physician() {
    let app = TestApp::spawn().await;
    let doc_id = app.physician("Dr Grey").await;
    let room = app.room("Room", RoomKind::Physician, &[&doc_id]).await;
    let (t, _, visit) = app.patient_token(&room.id, "Ana");
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    let token = app.staff_token(&doc_id, vec![Role::Physician]).await;
    let mut doc = app.join(&token).await;
    let q = doc.expect("queue").await;
    assert_eq!(q["entries"][0]["visit"], visit.as_str());
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("admitted").await;
}

#[tokio::test]
async fn walk_in_two_physicians_five_patients_each_admitted_once() {
    let app = TestApp::spawn().await;
    let d1 = app.physician("Dr One").await;
    let d2 = app.physician("Dr Two").await;
    let room = app.room("Walk-in", RoomKind::WalkIn, &[&d1, &d2]).await;
    let mut docs = Vec::new();
    for d in [&d1, &d2] {
        let t = app.staff_token(d, vec![Role::Physician]).await;
        docs.push(app.join(&t).await);
    }
    let mut patients = Vec::new();
    for i in 0..5 {
        let (t, _, v) = app.patient_token(&room.id, &format!("Patient {i}"));
        let mut p = app.join(&t).await;
        p.expect("waiting").await;
        patients.push((p, v));
    }
    let mut admitted = std::collections::BTreeSet::new();
    while admitted.len() < 5 {
        for doc in docs.iter_mut() {
            let offer = doc.expect("walk_in_offer").await;
            let visit = offer["visit"].as_str().unwrap().to_owned();
            doc.send(json!({"type": "walk_in_accept", "room": room.id, "visit": visit}))
                .await;
            doc.expect("admitted").await;
            assert!(
                admitted.insert(visit.clone()),
                "visit {visit} admitted twice"
            );
            doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
                .await;
            doc.expect("visit_ended").await;
            if admitted.len() == 5 {
                break;
            }
        }
    }
    for (p, v) in patients.iter_mut() {
        let a = p.expect("admitted").await;
        assert_eq!(a["visit"], v.as_str());
        p.expect_none("admitted", Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_finishes_in_bounded_time() {
    let app = TestApp::spawn().await;
    let (room, mut doc) = clinic(&app).await;
    let mut ana = app.waiting_patient(&room.id, "Ana").await;
    // Connected, not yet said hello: told too, not left to its hello deadline.
    let mut early = app.ws().await;
    let started = std::time::Instant::now();
    let state = app.state.clone();
    let stop = tokio::spawn(app.shutdown());
    assert_eq!(ana.expect("going_away").await["type"], "going_away");
    doc.expect("going_away").await;
    early.expect("going_away").await;
    assert!(ana.closed_within(WAIT).await);
    assert!(early.closed_within(WAIT).await);
    stop.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(state.settings.server.shutdown_grace_secs + 2));
}

#[tokio::test]
async fn health_and_readiness_answer_json() {
    let app = TestApp::spawn().await;
    let h: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
    assert_eq!(h["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["checks"]["durable"], "ok");
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("examroom"));
}

#[tokio::test]
async fn a_node_at_its_connection_limit_reports_itself_full_until_a_slot_frees() {
    let app = TestApp::spawn_with(|s| s.signalling.max_connections = 2).await;
    let (_, room) = app.physician_room("Dr Grey", "Family medicine").await;
    let (t1, _, _) = app.patient_token(&room.id, "Ana");
    let (t2, _, _) = app.patient_token(&room.id, "Ben");
    let mut ana = app.join(&t1).await;
    ana.expect("waiting").await;
    let r: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        (r["status"].as_str(), r["connections"]["open"].as_u64()),
        (Some("ready"), Some(1))
    );
    let mut ben = app.join(&t2).await;
    ben.expect("waiting").await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (r["status"].as_str(), r["checks"]["full"].as_bool()),
        (Some("not_ready"), Some(true))
    );
    assert_eq!(
        r["connections"],
        json!({"open": 2, "max": 2, "unauthenticated": 0})
    );
    drop(ben);
    let mut ready = false;
    for _ in 0..100 {
        if app.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "a closed connection gives its slot back");
}

#[tokio::test]
async fn a_second_connection_of_the_same_participant_supersedes_the_first() {
    let app = TestApp::spawn().await;
    let (room, _doc) = clinic(&app).await;
    let (t, _, _) = app.patient_token(&room.id, "Ana");
    let mut first = app.join(&t).await;
    first.expect("waiting").await;
    let mut second = app.join(&t).await;
    second.expect("waiting").await;
    assert_eq!(first.expect("error").await["code"], "superseded");
    assert!(first.closed_within(WAIT).await);
}

/// Room tasks sleep until their next deadline rather than ticking every second: a
/// dropped patient must still be reported gone exactly when the grace period ends, with
/// no other traffic in the room to wake it.
#[tokio::test]
async fn a_dropped_patient_is_reported_gone_when_the_grace_period_ends() {
    let app = TestApp::spawn_with(|s| s.visit.reconnect_grace_secs = 2).await;
    let (room, mut doc) = clinic(&app).await;
    let (ana, _) = ana_admitted(&app, &room, &mut doc).await;
    drop(ana);
    doc.expect("peer_reconnecting").await;
    let dropped = std::time::Instant::now();
    doc.expect_none("peer_left", Duration::from_millis(1500))
        .await;
    doc.expect("peer_left").await;
    let after = dropped.elapsed();
    assert!(
        after < Duration::from_secs(4),
        "peer_left {after:?} after the drop, for a 2 s grace"
    );
}
