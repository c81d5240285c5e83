//! The proof that examroom brokers WebRTC, not just JSON: two real `webrtc`-crate peers
//! go through the waiting room, are admitted, negotiate through `/ws` only, reach
//! `connected`, and a data-channel message crosses. Then the same through a real coturn
//! with relay-only policy and the TURN credentials examroom minted.

use crate::kit::rtc::{chat_both_ways, signal_over_ws};
use crate::kit::*;
use examroom::config::Secret;
use examroom::media::peer::{CandidateKind, IcePolicy, Peer, PeerOptions};
use examroom::protocol::IceServerInfo;
use examroom::visit::RoomKind;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const CONNECT: Duration = Duration::from_secs(20);

async fn visit_with_real_peers(app: &TestApp, policy: IcePolicy) -> (Arc<Peer>, Arc<Peer>) {
    let (_, doc_token, room) = app.physician_with_room("Dr Grey", "Family medicine").await;

    // The patient arrives first and waits.
    let (t, _, visit) = app.patient_token(&room.id, "Ana");
    let mut ana = app.ws().await;
    let ana_welcome = ana.hello(&t, None).await;
    assert_eq!(ana.expect("waiting").await["position"], 1);
    let mut doc = app.ws().await;
    let doc_welcome = doc.hello(&doc_token, None).await;
    doc.expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
        .await;

    // Admitted by the physician: both learn about each other.
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    let a = ana.expect("admitted").await;
    let d = doc.expect("admitted").await;
    let doc_pid = a["peers"][0]["participant"].as_str().unwrap().to_owned();
    let ana_pid = d["peers"][0]["participant"].as_str().unwrap().to_owned();
    assert_ne!(a["peers"][0]["polite"], d["peers"][0]["polite"]);

    let ice = |w: &serde_json::Value| -> Vec<IceServerInfo> {
        serde_json::from_value(w["ice_servers"].clone()).unwrap()
    };
    let opts = |servers| PeerOptions {
        ice_servers: servers,
        policy,
        ..PeerOptions::default()
    };
    let (doc_peer, doc_cands) = Peer::new(opts(ice(&doc_welcome))).await.unwrap();
    let (ana_peer, ana_cands) = Peer::new(opts(ice(&ana_welcome))).await.unwrap();
    let (doc_peer, ana_peer) = (Arc::new(doc_peer), Arc::new(ana_peer));

    // The impolite side makes the offer (perfect negotiation without glare).
    let doc_is_polite = d["peers"][0]["polite"].as_bool().unwrap();
    let (offerer, offerer_client, answerer, answerer_client, offerer_to, answerer_to) =
        if doc_is_polite {
            (
                ana_peer.clone(),
                ana,
                doc_peer.clone(),
                doc,
                doc_pid.clone(),
                ana_pid.clone(),
            )
        } else {
            (
                doc_peer.clone(),
                doc,
                ana_peer.clone(),
                ana,
                ana_pid.clone(),
                doc_pid.clone(),
            )
        };
    let (offerer_cands, answerer_cands) = if doc_is_polite {
        (ana_cands, doc_cands)
    } else {
        (doc_cands, ana_cands)
    };
    let chat = offerer.create_channel("chat").await.unwrap();
    let offer = offerer.create_offer().await.unwrap();
    let mut offerer_client = offerer_client;
    offerer_client
        .send(json!({"type": "offer", "to": offerer_to, "sdp": offer}))
        .await;
    let (t1, _) = signal_over_ws(offerer_client, offerer.clone(), offerer_cands, offerer_to);
    let (t2, _) = signal_over_ws(
        answerer_client,
        answerer.clone(),
        answerer_cands,
        answerer_to,
    );

    let words = ("can you hear me?", "yes, doctor");
    chat_both_ways(&offerer, &answerer, &chat, words, CONNECT).await;

    // The server saw the answer go through: the visit is in a call.
    let (_, metrics) = app.metrics(Some(METRICS_TOKEN)).await;
    assert!(
        metrics.contains("examroom_visits{state=\"in_call\"} 1"),
        "{metrics}"
    );
    t1.abort();
    t2.abort();
    (doc_peer, ana_peer)
}

#[tokio::test]
async fn two_webrtc_peers_connect_through_the_waiting_room_and_exchange_data() {
    let app = TestApp::spawn().await;
    let (doc, ana) = visit_with_real_peers(&app, IcePolicy::All).await;
    doc.close().await;
    ana.close().await;
}

#[tokio::test]
async fn relay_only_peers_connect_through_coturn_with_credentials_examroom_minted() {
    let url = std::env::var("EXAMROOM_TEST_TURN_URL")
        .expect("EXAMROOM_TEST_TURN_URL is not set: run `eval \"$(scripts/coturn --env)\"` (scripts/test does)");
    let secret =
        std::env::var("EXAMROOM_TEST_TURN_SECRET").expect("EXAMROOM_TEST_TURN_SECRET is not set");
    let app = TestApp::spawn_with(|s| {
        s.ice.turn_urls = vec![url.clone()];
        s.ice.turn_secret = Secret::new(secret.clone());
        s.ice.turn_credential_secs = 600;
    })
    .await;
    let (doc, ana) = visit_with_real_peers(&app, IcePolicy::Relay).await;
    let path = ana.selected_path().await.expect("a selected pair");
    assert_eq!(
        path.local,
        CandidateKind::Relay,
        "relay-only policy must use the TURN relay"
    );
    doc.close().await;
    ana.close().await;
}

#[tokio::test]
async fn welcome_carries_turn_credentials_that_expire_and_never_the_secret() {
    let app = TestApp::spawn_with(|s| {
        s.ice.stun_urls = vec!["stun:stun.clinic.test:3478".into()];
        s.ice.turn_urls = vec!["turn:turn.clinic.test:3478?transport=udp".into()];
        s.ice.turn_secret = Secret::new("coturn-shared-secret-for-tests");
        s.ice.turn_credential_secs = 3600;
    })
    .await;
    let doc_id = app.physician("Dr Grey").await;
    let room = app.room("Room", RoomKind::Physician, &[&doc_id]).await;
    let (t, _, _) = app.patient_token(&room.id, "Ana");
    let mut ana = app.ws().await;
    let w = ana.hello(&t, None).await;
    let text = w.to_string();
    assert!(!text.contains("coturn-shared-secret-for-tests"));
    let turn = w["ice_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["urls"][0].as_str().unwrap().starts_with("turn:"))
        .unwrap();
    let username = turn["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, ana.participant);
    let expiry: i64 = expiry.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "expiry {expiry} vs now {now}"
    );
    assert!(!turn["credential"].as_str().unwrap().is_empty());
}
