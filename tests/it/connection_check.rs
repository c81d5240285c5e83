//! The pre-call connection check through the normal signalling: a `webrtc`-crate client
//! offers to examroom's own peer over `/ws`, gets RTT/loss figures, and the concurrency
//! limit refuses the next check with a clear error.

use crate::kit::*;
use examroom::media::peer::{Candidate, LocalCandidate, Peer, PeerOptions};
use examroom::visit::RoomKind;
use examroom_load::check::{CheckOptions, run_check};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn waiting_patient(app: &TestApp, name: &str) -> Client {
    let doc = app.physician(&format!("Dr {name}")).await;
    let room = app
        .room(&format!("Room {name}"), RoomKind::Physician, &[&doc])
        .await;
    let (t, _, _) = app.patient_token(&room.id, name);
    let mut c = app.join(&t).await;
    c.expect("waiting").await;
    c
}

#[tokio::test]
async fn a_patient_runs_a_connection_check_and_the_limit_refuses_the_next() {
    let app = TestApp::spawn_with(|s| s.media.max_concurrent_checks = 1).await;
    let mut ana = waiting_patient(&app, "Ana").await;

    let (peer, mut cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let peer = Arc::new(peer);
    let channel = peer.create_lossy_channel("check").await.unwrap();
    let offer = peer.create_offer().await.unwrap();
    ana.send(json!({"type": "check_offer", "sdp": offer})).await;
    let answer = ana.expect("check_answer").await;
    peer.set_answer(answer["sdp"].as_str().unwrap())
        .await
        .unwrap();

    // Trickle both ways over the WebSocket while the check runs.
    let p = peer.clone();
    let signalling = tokio::spawn(async move {
        let mut done = false;
        loop {
            tokio::select! {
                c = cands.recv(), if !done => match c {
                    Some(LocalCandidate::Candidate(c)) => {
                        ana.ws.send(Message::Text(json!({"type": "check_candidate", "candidate": c}).to_string().into())).await.unwrap();
                    }
                    _ => done = true,
                },
                m = ana.ws.next() => {
                    let Some(Ok(Message::Text(t))) = m else { break };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "check_candidate" && !v["candidate"]["candidate"].as_str().unwrap().is_empty() {
                        let c: Candidate = serde_json::from_value(v["candidate"].clone()).unwrap();
                        p.add_remote_candidate(c).await.unwrap();
                    }
                }
            }
        }
    });
    peer.wait_connected(Duration::from_secs(20)).await.unwrap();

    // While Ana's check runs, Ben's is refused: the limit is 1.
    let mut ben = waiting_patient(&app, "Ben").await;
    let (ben_peer, _) = Peer::new(PeerOptions::default()).await.unwrap();
    let _ch = ben_peer.create_channel("check").await.unwrap();
    let ben_offer = ben_peer.create_offer().await.unwrap();
    ben.send(json!({"type": "check_offer", "sdp": ben_offer}))
        .await;
    let e = ben.expect("error").await;
    assert_eq!(e["code"], "too_many_checks");
    assert!(e["message"].as_str().unwrap().contains("try again"));

    let options = CheckOptions {
        probes: 20,
        settle: Duration::from_millis(500),
        ..CheckOptions::default()
    };
    let report = run_check(&peer, &channel, &options).await.unwrap();
    assert_eq!(report.sent, 20);
    assert_eq!(report.received, 20, "loopback loses nothing: {report:?}");
    assert!(report.rtt_ms_p50 > 0.0);
    assert_eq!(report.loss_pct, 0.0);
    assert!(report.path.is_some());
    signalling.abort();
    peer.close().await;
    ben_peer.close().await;
}
