//! Two browser-like peers in one process, signalled directly (the lead routes this through
//! the examroom WebSocket later): host candidates, data-channel messages, ICE restart.

use crate::kit::rtc::chat_both_ways;
use examroom::media::peer::{CandidateKind, Peer, PeerOptions, pipe_candidates};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn two_peers_connect_directly_and_exchange_messages_and_survive_an_ice_restart() {
    let (patient, patient_cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let (physician, physician_cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let (patient, physician) = (Arc::new(patient), Arc::new(physician));

    let chat = patient.create_channel("chat").await.unwrap();
    let offer = patient.create_offer().await.unwrap();
    let answer = physician.accept_offer(&offer).await.unwrap();
    patient.set_answer(&answer).await.unwrap();
    pipe_candidates(patient_cands, physician.clone());
    pipe_candidates(physician_cands, patient.clone());

    let words = ("hello doctor", "hello patient");
    let remote_chat = chat_both_ways(&patient, &physician, &chat, words, WAIT).await;

    let path = patient
        .selected_path()
        .await
        .expect("a selected pair once connected");
    assert_eq!(path.local, CandidateKind::Host);
    assert_eq!(path.summary(), CandidateKind::Host);
    assert_eq!(path.relay_protocol, None);

    // ICE restart: new offer with fresh credentials, answered the usual way; candidates of
    // the new gathering round flow through the same pipes.
    let restart_offer = patient.restart_ice().await.unwrap();
    assert_ne!(
        ice_ufrag(&restart_offer),
        ice_ufrag(&offer),
        "restart must change ufrag"
    );
    let restart_answer = physician.accept_offer(&restart_offer).await.unwrap();
    patient.set_answer(&restart_answer).await.unwrap();

    // Connectivity is kept or restored: messages flow both ways after the restart.
    patient.wait_connected(WAIT).await.unwrap();
    let mut delivered = false;
    for i in 0..30 {
        chat.send_text(&format!("after restart {i}")).await.unwrap();
        if let Ok(m) = remote_chat.recv_timeout(Duration::from_millis(500)).await {
            assert!(m.starts_with(b"after restart"));
            delivered = true;
            break;
        }
    }
    assert!(delivered, "no message crossed after the ICE restart");
    remote_chat.send(b"still here").await.unwrap();
    let mut got = chat.recv_timeout(WAIT).await.unwrap();
    while got != b"still here" {
        got = chat.recv_timeout(WAIT).await.unwrap();
    }

    patient.close().await;
    physician.close().await;
}

fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
