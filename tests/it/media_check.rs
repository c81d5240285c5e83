//! The connection check: a browser-like client completes a check against `CheckService`,
//! signalled in-process the way the WebSocket messages will carry it.

use examroom::config::MediaSettings;
use examroom::ice::IceConfig;
use examroom::media::check::{CheckError, CheckHandle, CheckService};
use examroom::media::peer::{CandidateKind, Channel, LocalCandidate, Peer, PeerOptions};
use examroom_load::check::{CheckOptions, run_check};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn service(max_concurrent_checks: usize) -> CheckService {
    let settings = MediaSettings {
        max_concurrent_checks,
        ..MediaSettings::default()
    };
    CheckService::new(&settings, IceConfig::host_only())
}

/// What the patient's page does: offer, get the answer, trade candidates with the server.
async fn client_starts_check(
    service: &CheckService,
) -> Result<(Arc<Peer>, Channel, CheckHandle), CheckError> {
    let (client, client_cands) = Peer::new(PeerOptions::default()).await.unwrap();
    let client = Arc::new(client);
    let probe = client.create_lossy_channel("check").await.unwrap();
    let offer = client.create_offer().await.unwrap(); // -> check_offer
    let (mut handle, answer) = service.start("patient-1".into(), offer).await?; // check_answer
    client.set_answer(&answer).await.unwrap();

    // check_candidate, server -> client
    let mut server_cands = handle.take_local_candidates().unwrap();
    let to_client = client.clone();
    tokio::spawn(async move {
        while let Some(LocalCandidate::Candidate(c)) = server_cands.recv().await {
            to_client.add_remote_candidate(c).await.ok();
        }
    });
    // check_candidate, client -> server
    // check_candidate, client -> server (host gathering ends at once on loopback)
    let mut client_cands = client_cands;
    while let Some(LocalCandidate::Candidate(c)) = client_cands.recv().await {
        handle.add_remote_candidate(c).await.unwrap();
    }
    Ok((client, probe, handle))
}

#[tokio::test]
async fn a_client_completes_a_check_and_gets_rtt_and_loss() {
    let service = service(8);
    let (client, probe, handle) = client_starts_check(&service).await.unwrap();
    assert_eq!(service.running(), 1);

    let options = CheckOptions {
        probes: 20,
        interval: Duration::from_millis(10),
        ..CheckOptions::default()
    };
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run_check(&client, &probe, &options),
    )
    .await
    .expect("check finishes")
    .unwrap();
    assert_eq!(report.sent, 20);
    assert_eq!(report.received, 20, "{report:?}");
    assert_eq!(report.loss_pct, 0.0);
    assert!(
        report.rtt_ms_p50 > 0.0 && report.rtt_ms_max >= report.rtt_ms_p50,
        "{report:?}"
    );
    assert!(report.throughput_kbps > 0.0);
    assert_eq!(
        report.path.as_ref().map(|p| p.summary()),
        Some(CandidateKind::Host)
    );
    assert!(handle.selected_path().await.is_some());

    // Text comes back as text: a browser measuring with strings gets strings.
    probe.send_text("ping").await.unwrap();
    let echo = probe.recv_message().await.unwrap();
    assert!(echo.text && echo.data == b"ping");

    handle.close().await;
    assert_eq!(service.running(), 0, "closing a check releases its slot");
    client.close().await;
}

#[tokio::test]
async fn a_second_concurrent_check_is_refused_when_the_limit_is_one() {
    let service = service(1);
    let (client, _probe, handle) = client_starts_check(&service).await.unwrap();

    let refused = client_starts_check(&service).await;
    assert!(
        matches!(refused, Err(CheckError::TooManyChecks)),
        "{:?}",
        refused.err()
    );

    // The slot comes back when the first check ends.
    drop(handle);
    let deadline = tokio::time::Instant::now() + WAIT;
    while service.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (again, _p, h) = client_starts_check(&service).await.expect("slot released");
    h.close().await;
    again.close().await;
    client.close().await;
}

#[tokio::test]
async fn a_check_is_closed_after_its_time_limit() {
    let settings = MediaSettings {
        check_max_secs: 1,
        ..MediaSettings::default()
    };
    let service = CheckService::new(&settings, IceConfig::host_only());
    let (client, _probe, handle) = client_starts_check(&service).await.unwrap();
    tokio::time::timeout(WAIT, handle.finished())
        .await
        .expect("ended by its time limit");
    assert_eq!(service.running(), 0);
    client.close().await;
}

#[tokio::test]
async fn checks_on_a_fixed_port_range_reuse_ports() {
    // udp_port set: each running check owns one port of udp_port .. udp_port + max.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let settings = MediaSettings {
        max_concurrent_checks: 1,
        udp_port: port,
        ..MediaSettings::default()
    };
    let service = CheckService::new(&settings, IceConfig::host_only());
    for _ in 0..2 {
        let (client, probe, handle) = client_starts_check(&service).await.unwrap();
        let report = run_check(
            &client,
            &probe,
            &CheckOptions {
                probes: 5,
                ..CheckOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.received, 5);
        handle.close().await;
        client.close().await;
    }
}

#[tokio::test]
async fn a_malformed_offer_is_refused_and_frees_its_slot() {
    let service = service(1);
    let err = service
        .start("p".into(), "not sdp".into())
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::BadOffer(_)), "{err:?}");
    assert_eq!(service.running(), 0);
}
