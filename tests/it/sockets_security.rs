//! Issue 17, as an attacker or a careless admin would find it: access withdrawn from an
//! open socket at once, idle sockets that cannot lock patients out, slow HTTP clients that
//! cannot hold connections, `/metrics` for Prometheus only, and close codes that say why.

use crate::kit::*;
use examroom::identity::Role;
use examroom::ids::StaffId;
use examroom::visit::RoomConfig;
use futures_util::SinkExt;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A room with Dr Grey on the dashboard, a patient waiting in it, and an admin.
struct Clinic {
    room: RoomConfig,
    grey: StaffId,
    grey_token: String,
    dashboard: Client,
    admin_token: String,
}

async fn clinic(app: &TestApp) -> Clinic {
    let (grey, grey_token, room) = app.physician_with_room("Dr Grey", "Family medicine").await;
    let admin = app.staff("Ad Min", vec![Role::Admin], vec![], None).await;
    let admin_token = app.staff_token(&admin, vec![Role::Admin]).await;
    let mut dashboard = app.join(&grey_token).await;
    dashboard.expect("queue").await;
    Clinic {
        room,
        grey,
        grey_token,
        dashboard,
        admin_token,
    }
}

async fn admin_patches(app: &TestApp, c: &Clinic, patch: serde_json::Value) {
    let (status, body) = app
        .call_json(
            "PATCH",
            &format!("/api/staff/{}", c.grey),
            Some(&c.admin_token),
            Some(patch),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// How `GET /api/my/rooms` answers Dr Grey's token now: status and error code.
async fn my_rooms_answer(app: &TestApp, c: &Clinic) -> (u16, String) {
    let (status, body) = app
        .call_json("GET", "/api/my/rooms", Some(&c.grey_token), None)
        .await;
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn a_deactivated_physician_loses_the_live_queue_and_admitting_at_once() {
    let app = TestApp::spawn().await;
    let mut c = clinic(&app).await;
    let (t, _, visit) = app.patient_token(&c.room.id, "Ana");
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    c.dashboard
        .expect_where("queue", |q| q["entries"][0]["name"] == "Ana")
        .await;

    admin_patches(&app, &c, json!({"active": false})).await;

    // The socket is told why and closed: no more names, no admitting.
    let (code, reason) = c.dashboard.close_frame().await;
    assert_eq!((code, reason.as_str()), (4403, "access_revoked"));
    let e = c
        .dashboard
        .expect_where("error", |e| e["code"] == "access_revoked")
        .await;
    assert!(e["message"].as_str().unwrap().contains("admin"));
    let _ = c
        .dashboard
        .ws
        .send(Message::Text(
            json!({"type": "admit", "room": c.room.id, "visit": visit})
                .to_string()
                .into(),
        ))
        .await;
    ana.expect_none("admitted", Duration::from_millis(300))
        .await;

    // HTTP refuses the session too, and so does a new socket.
    assert_eq!(
        my_rooms_answer(&app, &c).await,
        (401, "session_revoked".into())
    );
    let mut again = app.ws().await;
    again
        .send(json!({"type": "hello", "v": 1, "token": c.grey_token}))
        .await;
    assert_eq!(again.expect("error").await["code"], "unauthenticated");
}

#[tokio::test]
async fn a_physician_demoted_to_admin_is_closed_and_comes_back_without_rooms() {
    let app = TestApp::spawn().await;
    let mut c = clinic(&app).await;

    admin_patches(&app, &c, json!({"roles": ["admin"]})).await;

    let (code, reason) = c.dashboard.close_frame().await;
    assert_eq!((code, reason.as_str()), (4403, "access_revoked"));
    assert_eq!(
        my_rooms_answer(&app, &c).await,
        (403, "not_physician".into())
    );
    // The dashboard reconnects: the account as it is now, with no room and no queue.
    let mut back = app.ws().await;
    let w = back.hello(&c.grey_token, None).await;
    assert_eq!(
        (w["role"].as_str(), w["rooms"].clone()),
        (Some("admin"), json!([]))
    );
    back.expect_none("queue", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_physician_taken_off_a_room_no_longer_sees_its_waiting_patients() {
    let app = TestApp::spawn().await;
    let mut c = clinic(&app).await;
    let other = app.physician("Dr Other").await;
    let (status, body) = app
        .call_json(
            "PUT",
            &format!("/api/rooms/{}", c.room.id),
            Some(&c.admin_token),
            Some(json!({"name": "Family medicine", "kind": "physician",
                        "physicians": [other.as_str()]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The socket that was given this room's queue at hello is closed; a new one is not
    // given the room, and a patient arriving there is not shown to Dr Grey.
    let (code, reason) = c.dashboard.close_frame().await;
    assert_eq!((code, reason.as_str()), (4403, "access_revoked"));
    let mut back = app.ws().await;
    let w = back.hello(&c.grey_token, None).await;
    assert_eq!(w["rooms"], json!([]), "{w}");
    let _ana = app.waiting_patient(&c.room.id, "Ana").await;
    back.expect_none("queue", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn editing_a_name_leaves_the_socket_alone() {
    let app = TestApp::spawn().await;
    let mut c = clinic(&app).await;
    admin_patches(&app, &c, json!({"name": "Dr M. Grey"})).await;
    assert!(!c.dashboard.closed_within(Duration::from_millis(300)).await);
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[tokio::test]
async fn idle_sockets_from_one_address_cannot_lock_patients_out() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.max_connections = 40;
        s.signalling.max_unauthenticated_per_ip = 10;
        // This test is about the per-address cap: no socket may time out while it runs.
        s.signalling.hello_timeout_secs = 60;
    })
    .await;
    let (_, room) = app.physician_room("Dr Grey", "Family medicine").await;
    let url = format!("ws://{}/ws", app.addr);

    // Three times the connection cap, from one address, never saying hello.
    let mut idle = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..120 {
        match Client::connect_from(&url, loopback(1)).await {
            Ok(c) => idle.push(c),
            Err(r) => refused.push(r),
        }
    }
    assert_eq!(idle.len(), 10, "one address holds its share and no more");
    assert_eq!(refused.len(), 110);
    assert!(
        refused
            .iter()
            .all(|(s, b)| *s == 429 && b["error"] == "too_many_connections"),
        "{:?}",
        refused[0]
    );
    // Others do the same from four more addresses: as many idle sockets as the cap.
    for n in 2..=5 {
        for _ in 0..10 {
            idle.push(Client::connect_from(&url, loopback(n)).await.unwrap());
        }
    }

    // A real patient still gets in and waits for the doctor.
    let (t, _, _) = app.patient_token(&room.id, "Ana");
    let mut ana = Client::connect_from(&url, loopback(9)).await.unwrap();
    ana.hello(&t, None).await;
    assert_eq!(ana.expect("waiting").await["position"], 1);
    let r: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(r["connections"]["open"], 1, "{r}");
    assert_eq!(r["connections"]["unauthenticated"], 50, "{r}");
}

#[tokio::test]
async fn the_hello_deadline_gives_an_idle_socket_its_place_back() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.hello_timeout_secs = 1;
        s.signalling.max_unauthenticated_per_ip = 2;
    })
    .await;
    let url = format!("ws://{}/ws", app.addr);
    let mut first = Client::connect_from(&url, loopback(1)).await.unwrap();
    let mut second = Client::connect_from(&url, loopback(1)).await.unwrap();
    let (status, _) = Client::connect_from(&url, loopback(1)).await.err().unwrap();
    assert_eq!(status, 429);

    for idle in [&mut first, &mut second] {
        assert_eq!(idle.close_frame().await, (1008, "hello_timeout".into()));
        assert_eq!(idle.expect("error").await["code"], "hello_timeout");
    }
    assert!(
        Client::connect_from(&url, loopback(1)).await.is_ok(),
        "the closed sockets' places are free again"
    );
}

#[tokio::test]
async fn a_full_waiting_room_leaves_the_reserve_to_the_physician() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.max_connections = 10;
        s.signalling.reserved_percent = 20;
    })
    .await;
    let (grey, room) = app.physician_room("Dr Grey", "Family medicine").await;
    let mut waiting = Vec::new();
    for i in 0..8 {
        let (t, _, _) = app.patient_token(&room.id, &format!("Patient {i}"));
        let mut p = app.join(&t).await;
        p.expect("waiting").await;
        waiting.push(p);
    }
    // The ninth patient finds the patients' share full.
    let (t, _, _) = app.patient_token(&room.id, "Patient 9");
    let mut ninth = app.ws().await;
    ninth
        .send(json!({"type": "hello", "v": 1, "token": t}))
        .await;
    assert_eq!(ninth.close_frame().await, (1013, "server_full".into()));
    assert_eq!(ninth.expect("error").await["code"], "server_full");
    // The physician still gets in and sees everyone waiting.
    let token = app.staff_token(&grey, vec![Role::Physician]).await;
    let mut doc = app.join(&token).await;
    doc.expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 8)
        .await;
}

/// Send `head` at once, then `trickle` a byte every 250 ms; asserts that the server closes
/// the connection within 6 s, and returns what it answered.
async fn server_hangs_up_on(app: &TestApp, head: &str, trickle: &str, part: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = trickle.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        for b in trickle {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    writer.abort();
    assert!(
        closed,
        "a client trickling its {part} still holds the connection"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_slow_header_client_is_disconnected() {
    let app = TestApp::spawn_with(|s| s.server.header_read_timeout_secs = 1).await;
    let head = "GET /healthz HTTP/1.1\r\n";
    server_hangs_up_on(&app, head, &"X-Slow: 1\r\n".repeat(10), "headers").await;
}

#[tokio::test]
async fn a_slow_body_gets_408_and_is_disconnected() {
    let app = TestApp::spawn_with(|s| s.server.request_timeout_secs = 1).await;
    let head = "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{";
    let answer = server_hangs_up_on(&app, head, &" ".repeat(100), "body").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn metrics_are_for_the_holder_of_the_metrics_token() {
    let app = TestApp::spawn().await;
    let c = clinic(&app).await;
    for token in [
        None,
        Some("wrong-token-wrong-token"),
        Some(c.admin_token.as_str()),
    ] {
        let (status, body) = app.metrics(token).await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("bad_metrics_token"))
        );
    }
    let (status, body) = app.metrics(Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("examroom_connections 1"), "{body}");

    // With no token configured nobody scrapes, and the answer says what to set.
    let closed = TestApp::spawn_with(|s| s.metrics.token = Default::default()).await;
    let (status, body) = closed.metrics(Some(METRICS_TOKEN)).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("metrics_token_required"))
    );
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_with_1009_and_says_why() {
    let app = TestApp::spawn().await;
    let c = clinic(&app).await;
    let (t, _, _) = app.patient_token(&c.room.id, "Ana");
    let mut ana = app.join(&t).await;
    ana.expect("waiting").await;
    let big = json!({"type": "chat", "text": "x".repeat(2 << 20)}).to_string();
    // As a browser does, the client reads while it sends; the server stops reading
    // mid-frame, so the send may never finish.
    let (mut tx, mut rx) = futures_util::StreamExt::split(ana.ws);
    let sending = tokio::spawn(async move { tx.send(Message::Text(big.into())).await });
    let mut errors = Vec::new();
    let close = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut rx)).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                if m["type"] == "error" {
                    errors.push(m["code"].as_str().unwrap().to_owned());
                }
            }
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                break (u16::from(f.code), f.reason.to_string());
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close, (1009, "too_large".into()));
    assert_eq!(errors, ["too_large"]);
    sending.abort();
}

#[tokio::test]
async fn a_flood_gets_rate_limited_then_is_closed_with_1008() {
    let app = TestApp::spawn_with(|s| {
        s.signalling.rate_per_sec = 5;
        s.signalling.rate_burst = 5;
    })
    .await;
    let c = clinic(&app).await;
    let mut ana = app.waiting_patient(&c.room.id, "Ana").await;
    for _ in 0..200 {
        if ana
            .ws
            .send(Message::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(ana.close_frame().await, (1008, "rate_limited".into()));
    let errors: Vec<_> = ana
        .backlog
        .iter()
        .filter(|m| m["type"] == "error")
        .map(|m| m["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        errors,
        ["rate_limited", "rate_limited"],
        "one warning, then the closing error"
    );
}
