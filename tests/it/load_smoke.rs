//! The load generator works: a short run against a real server completes its visits and
//! relays messages both ways. No timing is asserted — that is what `scripts/bench` is for.

use crate::kit::*;
use examroom_load::{LoadConfig, Server, Target, fixture, run};
use std::time::Duration;

async fn target(app: &TestApp, visits: usize, idle: usize) -> Target {
    let fixtures = fixture::prepare(
        &app.state.durable,
        &app.state.keys,
        "smoke",
        visits,
        idle,
        2,
    )
    .await
    .expect("fixtures");
    Target {
        server: Server::Examroom,
        url: format!("ws://{}/ws", app.addr),
        nodes: Vec::new(),
        fixtures,
        peerjs_key: String::new(),
    }
}

fn brief(visits: usize, rate: Option<f64>, idle: usize) -> LoadConfig {
    LoadConfig {
        visits,
        rate,
        idle,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
        setup_timeout: Duration::from_secs(20),
        // In-process: the "server" is this test process.
        server_pid: Some(std::process::id()),
        ..LoadConfig::default()
    }
}

#[tokio::test]
async fn an_open_loop_run_admits_every_visit_and_relays_candidates_both_ways() {
    let app = TestApp::spawn().await;
    let t = target(&app, 3, 4).await;
    let r = run(&brief(3, Some(60.0), 4), &t).await;

    assert_eq!(r.error_samples, Vec::<String>::new());
    assert_eq!(
        (r.visits_ready, r.visits_failed, r.visits_broken),
        (3, 0, 0)
    );
    assert_eq!(r.join.count, 3, "every patient reached the waiting room");
    assert_eq!(r.admit.count, 3, "every visit was admitted");
    assert_eq!(r.sdp.count, 6, "an offer and an answer per visit");
    assert!(r.relayed > 0, "candidates were relayed: {r:?}");
    assert!(r.relay.count > 0, "{r:?}");
    assert_eq!((r.idle_connected, r.idle_failed, r.idle_dropped), (4, 0, 0));
    assert!(r.rss_idle_kib > 0, "memory was read from /proc");
    assert_eq!(r.server_errors, 0);
}

#[tokio::test]
async fn a_closed_loop_run_keeps_candidates_bouncing() {
    let app = TestApp::spawn_with(|s| s.signalling.rate_per_sec = 10_000).await;
    let t = target(&app, 2, 0).await;
    let r = run(&brief(2, None, 0), &t).await;

    assert_eq!(r.error_samples, Vec::<String>::new());
    assert_eq!((r.visits_ready, r.visits_broken), (2, 0));
    assert!(r.relayed > 10, "a closed loop relays continuously: {r:?}");
    assert_eq!(r.server_errors, 0);
}
