//! Several real examroom processes behind no balancer at all: clients pick nodes, as a
//! load balancer without sticky sessions would. One Redis, one PostgreSQL database.

use crate::kit::cluster::*;
use examroom::media::peer::{Candidate, LocalCandidate, LocalCandidates, Peer, PeerOptions};
use examroom::visit::{RoomConfig, RoomKind, VisitState};
use serde_json::json;
use std::time::Duration;

use crate::kit::admit;
use crate::kit::services::redis_url as shared_redis;

/// Two nodes on the shared Redis, Dr Grey and his room.
async fn two_nodes_and_grey_s_room() -> (Cluster, examroom::ids::StaffId, RoomConfig) {
    let cluster = Cluster::start(2, &shared_redis()).await;
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    (cluster, grey, room)
}

/// `doc` sees the one patient waiting in the queue and admits her; returns the
/// physician's participant id as she sees it.
async fn admit_the_one_waiting(
    doc: &mut Client,
    ana: &mut Client,
    room: &RoomConfig,
    visit: &examroom::ids::VisitId,
) -> String {
    doc.expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
        .await;
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("admitted").await["peers"][0]["participant"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Ana joins node A first (so A owns the room) and Dr Grey, on node B, admits her.
/// Returns her token, her visit, her client, his and his participant id as she sees it.
async fn ana_on_a_admitted_by_grey_on_b(
    cluster: &Cluster,
    grey: &examroom::ids::StaffId,
    room: &RoomConfig,
) -> (String, examroom::ids::VisitId, Client, Client, String) {
    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let mut ana = cluster.nodes[0].join(&pt).await;
    ana.expect("waiting").await;
    let mut doc = cluster.nodes[1]
        .join(&cluster.staff_token(grey).await)
        .await;
    let doc_id = admit_the_one_waiting(&mut doc, &mut ana, room, &visit).await;
    (pt, visit, ana, doc, doc_id)
}

/// Local candidates of one gathering round, until its end.
async fn gathered(rx: &mut LocalCandidates) -> Vec<Candidate> {
    let mut out = Vec::new();
    while let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        match c {
            LocalCandidate::Candidate(c) => out.push(c),
            LocalCandidate::End => break,
        }
    }
    out
}

async fn send_candidates(c: &mut Client, to: &str, cands: Vec<Candidate>) {
    for cand in cands {
        c.send(json!({"type": "candidate", "to": to, "candidate": cand}))
            .await;
    }
    c.send(json!({"type": "end_of_candidates", "to": to})).await;
}

async fn take_candidates(c: &mut Client, peer: &Peer) {
    let mut other = Vec::new();
    loop {
        let m = c.next().await.expect("signalling message");
        match m["type"].as_str() {
            Some("candidate") => {
                let cand: Candidate = serde_json::from_value(m["candidate"].clone()).unwrap();
                peer.add_remote_candidate(cand).await.unwrap();
            }
            Some("end_of_candidates") => break,
            _ => other.push(m),
        }
    }
    c.backlog.extend(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patient_on_one_node_sees_a_physician_on_another_with_real_webrtc() {
    let (cluster, grey, room) = two_nodes_and_grey_s_room().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);

    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let mut ana = a.join(&pt).await;
    assert_eq!(ana.expect("waiting").await["position"], 1);
    let mut doc = b.join(&cluster.staff_token(&grey).await).await;
    let q = doc
        .expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(q["entries"][0]["name"], "Ana");

    let doc_id = admit(&mut doc, &mut ana, &room.id, &visit).await;

    // Real peers, signalled through two nodes.
    let (pa, mut pa_cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let (pd, mut pd_cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let chat = pa.create_channel("chat").await.unwrap();
    let offer = pa.create_offer().await.unwrap();
    ana.send(json!({"type": "offer", "to": doc_id, "sdp": offer}))
        .await;
    let got = doc.expect("offer").await;
    let answer = pd.accept_offer(got["sdp"].as_str().unwrap()).await.unwrap();
    doc.send(json!({"type": "answer", "to": ana.participant, "sdp": answer}))
        .await;
    let got = ana.expect("answer").await;
    pa.set_answer(got["sdp"].as_str().unwrap()).await.unwrap();
    let ana_id = ana.participant.clone();
    send_candidates(&mut ana, &doc_id, gathered(&mut pa_cands).await).await;
    send_candidates(&mut doc, &ana_id, gathered(&mut pd_cands).await).await;
    take_candidates(&mut doc, &pd).await;
    take_candidates(&mut ana, &pa).await;
    pa.wait_connected(Duration::from_secs(15)).await.unwrap();
    pd.wait_connected(Duration::from_secs(15)).await.unwrap();
    let remote = pd.accept_channel(Duration::from_secs(15)).await.unwrap();
    chat.wait_open(Duration::from_secs(15)).await.unwrap();
    chat.send_text("media path up").await.unwrap();
    assert_eq!(
        remote.recv_timeout(Duration::from_secs(10)).await.unwrap(),
        b"media path up"
    );

    doc.send(json!({"type": "chat", "text": "How is the cough?"}))
        .await;
    assert_eq!(ana.expect("chat").await["text"], "How is the cough?");
    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("visit_ended").await;

    let r = cluster.finished_visit(&visit).await;
    assert_eq!(r.outcome, Some(VisitState::Ended));
    assert_eq!(r.admitted_by, Some(grey));
    assert!(r.admitted_at.is_some() && r.call_started_at.is_some() && r.ended_at.is_some());
    pa.close().await;
    pd.close().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_physicians_on_two_nodes_racing_to_admit_get_exactly_one_admission() {
    let cluster = Cluster::start(2, &shared_redis()).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let grey = cluster.physician("Dr Grey").await;
    let house = cluster.physician("Dr House").await;
    let room = cluster.room(RoomKind::Physician, &[&grey, &house]).await;
    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let mut ana = a.join(&pt).await;
    ana.expect("waiting").await;
    let mut d1 = a.join(&cluster.staff_token(&grey).await).await;
    let mut d2 = b.join(&cluster.staff_token(&house).await).await;
    for d in [&mut d1, &mut d2] {
        d.expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
            .await;
    }
    let admit = json!({"type": "admit", "room": room.id, "visit": visit});
    tokio::join!(d1.send(admit.clone()), d2.send(admit));
    ana.expect("admitted").await;
    ana.expect_none("admitted", Duration::from_millis(500))
        .await;
    let mut admitted = 0;
    let mut refused = 0;
    for d in [&mut d1, &mut d2] {
        let m = loop {
            let m = d.next().await.expect("an answer to the admit");
            if m["type"] == "admitted" || m["type"] == "error" {
                break m;
            }
        };
        if m["type"] == "admitted" {
            admitted += 1;
        } else {
            assert_eq!(m["code"], "illegal_transition", "{m}");
            refused += 1;
        }
    }
    assert_eq!((admitted, refused), (1, 1));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_participants_resume_on_another_node_and_history_is_whole() {
    let (mut cluster, grey, room) = two_nodes_and_grey_s_room().await;
    let (pt, visit, mut ana, mut doc, doc_id) =
        ana_on_a_admitted_by_grey_on_b(&cluster, &grey, &room).await;
    doc.send(json!({"type": "offer", "to": ana.participant, "sdp": "v=0 offer"}))
        .await;
    ana.expect("offer").await;
    ana.send(json!({"type": "answer", "to": doc_id, "sdp": "v=0 answer"}))
        .await;
    doc.expect("answer").await;
    // The physician has just been told the call started: kill the owning node this
    // instant. What anyone was told happened must already be in the history.
    cluster.nodes[0].kill();
    let r = cluster
        .store
        .visit(&visit)
        .await
        .unwrap()
        .expect("visit recorded");
    assert!(
        r.admitted_at.is_some() && r.call_started_at.is_some(),
        "the admission and the call's start survive the node"
    );
    // The patient's page reconnects, through the balancer, to a surviving node.
    let resume = ana.resume_token.clone();
    let mut ana = cluster.nodes[1].rejoin(&pt, &resume).await;
    assert_eq!(ana.expect("admitted").await["visit"], visit.to_string());
    doc.expect("peer_resumed").await;
    ana.send(json!({"type": "offer", "to": doc_id, "sdp": "v=0 ice restart"}))
        .await;
    assert_eq!(doc.expect("offer").await["sdp"], "v=0 ice restart");
    doc.send(json!({"type": "answer", "to": ana.participant, "sdp": "v=0 restarted"}))
        .await;
    ana.expect("answer").await;
    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("visit_ended").await;

    // The new owner carried on from the state the participants knew: one call, whole.
    faults::history_is_exact(&cluster, &visit, &[]).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_links_and_guessing_limits_hold_across_nodes() {
    let (cluster, grey, room) = two_nodes_and_grey_s_room().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (code, visit) = cluster.patient_link(&room.id, &grey).await;
    let join = format!("/api/join/{code}");
    let phone = json!({"device": "phone-browser-0001"});
    let laptop = json!({"device": "laptop-browser-0002"});

    // Ana opens her link on node A and waits there.
    let (status, body) = a.post(&join, phone.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"], visit.to_string());
    let mut ana = a.join(body["token"].as_str().unwrap()).await;
    ana.expect("waiting").await;
    // The same link from another browser, through node B, is refused while she waits…
    let (status, body) = b.post(&join, laptop).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("link_in_use")));
    // …but her own browser gets back in through either node.
    assert_eq!(b.post(&join, phone).await.0, 200);

    // Guessing codes: the per-IP limit counts every node's failures.
    let limit = examroom::identity::JOIN_FAILURES_PER_IP;
    for i in 0..limit {
        let node = &cluster.nodes[i as usize % 2];
        let (status, _) = node
            .post(
                "/api/join/not-a-real-code",
                json!({"device": "guesser-browser-01"}),
            )
            .await;
        assert_eq!(status, 404, "guess {i} is answered, not yet limited");
    }
    for node in [a, b] {
        let (status, body) = node
            .post(
                "/api/join/not-a-real-code",
                json!({"device": "guesser-browser-01"}),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("rate_limited"))
        );
    }

    // Wrong passwords for one account, spread over both nodes, lock it on both.
    cluster
        .staff_with_password("desk@clinic.test", "correct horse battery staple")
        .await;
    let wrong = json!({"email": "desk@clinic.test", "password": "wrong password!"});
    for i in 0..examroom::identity::SIGN_IN_FAILURES_PER_EMAIL {
        let node = &cluster.nodes[i as usize % 2];
        assert_eq!(node.post("/api/session", wrong.clone()).await.0, 401);
    }
    let right = json!({"email": "desk@clinic.test", "password": "correct horse battery staple"});
    for node in [a, b] {
        assert_eq!(node.post("/api/session", right.clone()).await.0, 429);
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_redis_is_down_a_same_node_visit_keeps_relaying_and_readiness_recovers() {
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::start(1, &redis.url()).await;
    let node = &cluster.nodes[0];
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let mut ana = node.join(&pt).await;
    ana.expect("waiting").await;
    let mut doc = node.join(&cluster.staff_token(&grey).await).await;
    let doc_id = admit_the_one_waiting(&mut doc, &mut ana, &room, &visit).await;

    redis.stop();
    let went_down = node.ready_status_within(503, 60).await;
    assert!(went_down, "/readyz stayed 200 with Redis gone");
    for i in 0..5 {
        doc.send(json!({"type": "offer", "to": ana.participant, "sdp": format!("v=0 {i}")}))
            .await;
        assert_eq!(ana.expect("offer").await["sdp"], format!("v=0 {i}"));
    }
    ana.send(json!({"type": "answer", "to": doc_id, "sdp": "v=0 answer"}))
        .await;
    doc.expect("answer").await;

    redis.restart();
    let back = node.ready_status_within(200, 100).await;
    assert!(back, "/readyz did not recover after Redis returned");
    // The room took its lease back and goes on.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    doc.send(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(ana.expect("chat").await["text"], "still here");
    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("visit_ended").await;
    assert_eq!(
        cluster.finished_visit(&visit).await.outcome,
        Some(VisitState::Ended)
    );
    cluster.stop().await;
}

/// Issue 17: an admin deactivates a physician on one node; the physician's dashboard,
/// open on another node, is closed at once with `access_revoked` (4403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_physician_deactivated_on_one_node_is_closed_on_the_other() {
    let (cluster, grey, room) = two_nodes_and_grey_s_room().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let admin = cluster
        .store
        .create_staff(examroom::durable::NewStaff {
            email: "admin@clinic.test".into(),
            languages: vec![],
            ..crate::kit::seed::new_staff("Ad Min", vec![examroom::identity::Role::Admin])
        })
        .await
        .unwrap()
        .id;
    let admin_token = cluster.staff_token(&admin).await;

    let (pt, _, _) = cluster.patient_token(&room.id, "Ana");
    let mut ana = a.join(&pt).await;
    ana.expect("waiting").await;
    let mut doc = b.join(&cluster.staff_token(&grey).await).await;
    doc.expect_where("queue", |q| q["entries"][0]["name"] == "Ana")
        .await;

    let r = reqwest::Client::new()
        .patch(a.url(&format!("/api/staff/{grey}")))
        .bearer_auth(&admin_token)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(doc.close_frame().await, (4403, "access_revoked".into()));
    assert_eq!(
        doc.expect("error").await["code"],
        "access_revoked",
        "the dashboard on the other node is told why"
    );
    cluster.stop().await;
}

/// The visit's chat across a failover (issue 19).
mod chat;

/// One test per variant of a scenario (`name => scenario(args);`), each on the runtime
/// the cluster tests use.
macro_rules! variants {
    ($($name:ident => $run:expr;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $run.await;
            }
        )+
    };
}

/// Redis restarts, node deaths and stalls under visits split across nodes (issue 18).
mod database;
mod faults;
mod under_load;
