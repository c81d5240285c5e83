//! Added latency of a cross-node relay versus a same-node one (docs/benchmarks.md,
//! "Cross-node relay"). Ignored by default: `cargo test --release --test cluster_bench
//! -- --ignored --nocapture`.
//! Its own test binary: an ignored benchmark that times relays, so it wants a quiet process.

#[path = "it/kit/mod.rs"]
mod kit;

use crate::kit::cluster::*;
use examroom::visit::RoomKind;
use serde_json::json;
use std::time::{Duration, Instant};

const MESSAGES: usize = 2000;

/// One admitted visit: patient on `pn`, physician on `dn`; returns (patient, physician).
async fn visit(c: &Cluster, pn: usize, dn: usize, name: &str) -> (Client, Client) {
    let doc = c.physician(name).await;
    let room = c.room(RoomKind::Physician, &[&doc]).await;
    let (pt, _, visit) = c.patient_token(&room.id, "Ana");
    let mut ana = c.nodes[pn].join(&pt).await;
    ana.expect("waiting").await;
    let mut d = c.nodes[dn].join(&c.staff_token(&doc).await).await;
    d.expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
        .await;
    d.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    ana.expect("admitted").await;
    d.expect("admitted").await;
    (ana, d)
}

/// Physician → patient, one at a time: time from send to receipt, in microseconds.
async fn relay(ana: &mut Client, doc: &mut Client) -> Vec<u128> {
    let mut lat = Vec::with_capacity(MESSAGES);
    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    for _ in 0..MESSAGES {
        let t = Instant::now();
        doc.send(json!({"type": "candidate", "to": ana.participant, "candidate": cand}))
            .await;
        ana.expect("candidate").await;
        lat.push(t.elapsed().as_micros());
    }
    lat.sort_unstable();
    lat
}

fn pct(v: &[u128], p: f64) -> f64 {
    v[((v.len() as f64 * p).ceil() as usize).min(v.len()) - 1] as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn cross_node_relay_latency() {
    let redis = crate::kit::services::redis_url();
    let cluster = Cluster::start_with(
        2,
        &redis,
        &[
            ("EXAMROOM__SIGNALLING__RATE_PER_SEC", "100000"),
            ("EXAMROOM__SIGNALLING__RATE_BURST", "100000"),
        ],
    )
    .await;
    let (mut a1, mut d1) = visit(&cluster, 0, 0, "Dr Same").await;
    let (mut a2, mut d2) = visit(&cluster, 0, 1, "Dr Cross").await;
    // Warm up both paths.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let same = relay(&mut a1, &mut d1).await;
    let cross = relay(&mut a2, &mut d2).await;
    println!(
        "same-node  p50 {:.3} ms  p99 {:.3} ms  ({} messages)",
        pct(&same, 0.5),
        pct(&same, 0.99),
        same.len()
    );
    println!(
        "cross-node p50 {:.3} ms  p99 {:.3} ms  ({} messages)",
        pct(&cross, 0.5),
        pct(&cross, 0.99),
        cross.len()
    );
    cluster.stop().await;
}
