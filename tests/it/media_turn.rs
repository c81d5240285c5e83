//! Two peers with ICE policy `relay` connect through a real coturn using credentials minted
//! by `examroom::ice`; expired and forged credentials get no relay.
//!
//! Needs coturn: `eval "$(scripts/coturn)"` exports EXAMROOM_TEST_TURN_URL and
//! EXAMROOM_TEST_TURN_SECRET. Without them these tests fail (they never skip).

use examroom::config::{IceSettings, Secret};
use examroom::ice::{IceConfig, IceServer, turn_credential};
use examroom::media::peer::{
    CandidateKind, IcePolicy, LocalCandidate, LocalCandidates, Peer, PeerOptions, pipe_candidates,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(15);

struct Turn {
    url: String,
    secret: String,
}

fn coturn() -> Turn {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: start coturn with `eval \"$(scripts/coturn)\"` before these tests"
            )
        })
    };
    Turn {
        url: get("EXAMROOM_TEST_TURN_URL"),
        secret: get("EXAMROOM_TEST_TURN_SECRET"),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ice_config(turn: &Turn) -> IceConfig {
    IceConfig::from_settings(&IceSettings {
        stun_urls: vec![],
        turn_urls: vec![turn.url.clone()],
        turn_secret: Secret::new(turn.secret.clone()),
        turn_credential_secs: 600,
    })
}

fn relay_options(servers: Vec<IceServer>) -> PeerOptions {
    PeerOptions {
        ice_servers: servers,
        policy: IcePolicy::Relay,
        ..PeerOptions::default()
    }
}

/// Collect local candidates until the end-of-candidates marker (or `limit`).
async fn gather(peer: &Peer, cands: &mut LocalCandidates, limit: Duration) -> Vec<CandidateKind> {
    let _chan = peer.create_channel("probe").await.unwrap();
    peer.create_offer().await.unwrap();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(c)) = tokio::time::timeout_at(deadline, cands.recv()).await {
        match c {
            LocalCandidate::Candidate(c) => kinds.push(c.kind().unwrap_or(CandidateKind::Unknown)),
            LocalCandidate::End => break,
        }
    }
    kinds
}

#[tokio::test]
async fn relay_only_peers_connect_through_coturn_with_minted_credentials() {
    let turn = coturn();
    let ice = ice_config(&turn);
    let (patient_servers, expiry) = ice.servers_for("patient-7", now());
    assert!(expiry.unwrap() > now());
    let (physician_servers, _) = ice.servers_for("physician-3", now());

    let patient = Peer::new(relay_options(patient_servers)).await.unwrap();
    let physician = Peer::new(relay_options(physician_servers)).await.unwrap();
    let (patient, physician, chat) = crate::kit::rtc::signal_directly(patient, physician).await;

    patient.wait_connected(WAIT).await.unwrap();
    physician.wait_connected(WAIT).await.unwrap();
    let remote = physician.accept_channel(WAIT).await.unwrap();
    chat.wait_open(WAIT).await.unwrap();
    chat.send_text("via relay").await.unwrap();
    assert_eq!(remote.recv_timeout(WAIT).await.unwrap(), b"via relay");
    remote.send_text("and back").await.unwrap();
    assert_eq!(chat.recv_timeout(WAIT).await.unwrap(), b"and back");

    let path = patient.selected_path().await.expect("selected pair");
    assert_eq!(path.local, CandidateKind::Relay);
    assert_eq!(path.summary(), CandidateKind::Relay);
    assert_eq!(path.relay_protocol.as_deref(), Some("udp"));

    patient.close().await;
    physician.close().await;
}

#[tokio::test]
async fn a_valid_credential_gathers_a_relay_candidate() {
    // The control for the two refusals below: same gathering, good credential.
    let turn = coturn();
    let (servers, _) = ice_config(&turn).servers_for("patient-8", now());
    let (peer, mut cands) = Peer::new(relay_options(servers)).await.unwrap();
    let kinds = gather(&peer, &mut cands, WAIT).await;
    assert!(kinds.contains(&CandidateKind::Relay), "gathered {kinds:?}");
    peer.close().await;
}

/// coturn refuses this credential: no relay candidate, and no relay-only call.
async fn assert_refused_with(turn: &Turn, username: String, credential: String) {
    let bad = vec![IceServer {
        urls: vec![turn.url.clone()],
        username: Some(username),
        credential: Some(credential),
    }];
    // Gathering: coturn answers the Allocate with 401, so no relay candidate appears.
    let (peer, mut cands) = Peer::new(relay_options(bad.clone())).await.unwrap();
    let kinds = gather(&peer, &mut cands, Duration::from_secs(10)).await;
    assert!(
        !kinds.contains(&CandidateKind::Relay),
        "coturn gave a relay: {kinds:?}"
    );
    peer.close().await;

    // And against a peer holding a good credential, a relay-only call never connects.
    let (good, _) = ice_config(turn).servers_for("physician-9", now());
    let bad_peer = Peer::new(relay_options(bad)).await.unwrap();
    let good_peer = Peer::new(relay_options(good)).await.unwrap();
    let (bad_peer, good_peer, _chan) = crate::kit::rtc::signal_directly(bad_peer, good_peer).await;
    assert!(
        bad_peer
            .wait_connected(Duration::from_secs(8))
            .await
            .is_err()
    );
    bad_peer.close().await;
    good_peer.close().await;
}

#[tokio::test]
async fn an_expired_credential_gets_no_relay() {
    let turn = coturn();
    let (username, credential) =
        turn_credential(&Secret::new(turn.secret.clone()), "patient-9", now() - 60);
    assert_refused_with(&turn, username, credential).await;
}

#[tokio::test]
async fn a_forged_credential_gets_no_relay() {
    let turn = coturn();
    let (username, credential) = turn_credential(
        &Secret::new("not-the-coturn-secret"),
        "patient-10",
        now() + 600,
    );
    assert_refused_with(&turn, username, credential).await;
}

#[tokio::test]
async fn a_relay_only_client_completes_a_connection_check_and_learns_its_path_is_relay() {
    use examroom::config::MediaSettings;
    use examroom::media::check::CheckService;
    use examroom_load::check::{CheckOptions, run_check};

    let turn = coturn();
    let ice = ice_config(&turn);
    let service = CheckService::new(&MediaSettings::default(), ice.clone());
    let (servers, _) = ice.servers_for("patient-11", now());
    let (client, mut client_cands) = Peer::new(relay_options(servers)).await.unwrap();
    let client = Arc::new(client);
    let probe = client.create_lossy_channel("check").await.unwrap();
    let offer = client.create_offer().await.unwrap();
    let (mut handle, answer) = service.start("patient-11".into(), offer).await.unwrap();
    client.set_answer(&answer).await.unwrap();
    pipe_candidates(handle.take_local_candidates().unwrap(), client.clone());
    while let Ok(Some(LocalCandidate::Candidate(c))) =
        tokio::time::timeout(WAIT, client_cands.recv()).await
    {
        handle.add_remote_candidate(c).await.unwrap();
    }

    let options = CheckOptions {
        probes: 10,
        ..CheckOptions::default()
    };
    let report = run_check(&client, &probe, &options).await.unwrap();
    assert_eq!(report.received, 10, "{report:?}");
    assert_eq!(report.loss_pct, 0.0);
    assert!(report.rtt_ms_p50 > 0.0);
    let path = report.path.expect("path");
    assert_eq!(path.summary(), CandidateKind::Relay);
    assert_eq!(path.relay_protocol.as_deref(), Some("udp"));
    handle.close().await;
    client.close().await;
}
