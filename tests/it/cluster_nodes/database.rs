//! Faults of the database under visits on two nodes (issue 18): PostgreSQL goes away (the
//! nodes reach it through a `DbGate`, which resets every connection and refuses new ones,
//! as a killed database looks from the nodes) and comes back. The call must not notice,
//! a patient must be able to resume, and every transition the pages were told about must
//! land in the history exactly once, in order, even if its node stops or dies first.
//!
//! Each test prints what it measured (`--nocapture`) for docs/deploy.md.

use super::faults::{
    Owner, Side, a_split_visit_in_call_as, admitted_into_call, history_is_exact, relayed,
};
use crate::kit::cluster::*;
use examroom::ids::VisitId;
use examroom::visit::{RoomKind, VisitState};
use serde_json::json;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(20);
/// The longest pause between two relays that still reads as "the call did not stop": a
/// probe goes every 100 ms, and before this work a room waited up to 2 s for the database
/// (the issue saw ≈ 1.4 s pauses, up to 2.4 s). Well above what we measure (see the
/// printout), well below a pause a person notices in a call's signalling.
const NO_PAUSE: Duration = Duration::from_millis(1500);

/// What `relay_for` saw.
struct Relays {
    sent: u32,
    got: u32,
    /// The longest time without a relay arriving (from the start, between two, to the end).
    max_gap: Duration,
}

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} probes arrived, longest gap {:?}",
            self.got, self.sent, self.max_gap
        )
    }
}

/// `from` sends a probe to `to_id` every 100 ms for `how_long`; when each arrives at `to`.
async fn relay_for(from: &mut Side, to: &mut Side, to_id: &str, how_long: Duration) -> Relays {
    let start = Instant::now();
    let mut last = start;
    let (mut sent, mut got, mut max_gap) = (0u32, 0u32, Duration::ZERO);
    while start.elapsed() < how_long {
        sent += 1;
        from.send(json!({"type": "offer", "to": to_id, "sdp": format!("probe {sent}")}))
            .await;
        from.pump(Duration::from_millis(5)).await;
        for _ in 0..9 {
            for m in to.pump(Duration::from_millis(10)).await {
                if m["type"] == "offer" && m["sdp"].as_str().is_some_and(|s| s.starts_with("probe"))
                {
                    got += 1;
                    max_gap = max_gap.max(last.elapsed());
                    last = Instant::now();
                }
            }
        }
    }
    Relays {
        sent,
        got,
        max_gap: max_gap.max(last.elapsed()),
    }
}

/// The visit's history once it holds `n` transitions (the last ones may still be queued).
async fn history_of(cluster: &Cluster, visit: &VisitId, n: usize) -> Vec<VisitState> {
    let start = Instant::now();
    loop {
        let states: Vec<VisitState> = match cluster.store.visit(visit).await {
            Ok(Some(v)) => v.transitions.iter().map(|t| t.state).collect(),
            _ => Vec::new(),
        };
        if states.len() >= n || start.elapsed() > 2 * WITHIN {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ana's join link, opened on node `node` from her phone: her token.
async fn ana_opens_her_link(
    cluster: &Cluster,
    node: usize,
    room: &examroom::ids::RoomId,
    by: &examroom::ids::StaffId,
) -> (String, VisitId) {
    let (code, visit) = cluster.patient_link(room, by).await;
    let (status, body) = cluster.nodes[node]
        .post(
            &format!("/api/join/{code}"),
            json!({"device": "ana-phone-browser-01"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (body["token"].as_str().unwrap().to_owned(), visit)
}

/// Issue 18, "a database outage never pauses the relay path, and a patient can resume
/// during it": Ana (node A, joined through her link) and Dr Grey (node B, where the room
/// runs) are in a call when PostgreSQL goes away. Bea arriving in the same room makes a
/// transition the room must record; the call's relays do not wait for it. Ana's
/// connection drops and she resumes with her resume token while the database is still
/// away (her link cannot be checked). Bea leaves. The database comes back: the history
/// has every transition once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_neither_pauses_the_call_nor_keeps_a_resuming_patient_out() {
    let (cluster, mut gate) =
        Cluster::start_gated(2, &crate::kit::services::redis_url(), &[]).await;
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    let (pt, visit) = ana_opens_her_link(&cluster, 0, &room.id, &grey).await;
    let (mut ana, mut doc, doc_id, visit) =
        a_split_visit_in_call_as(&cluster, &grey, &room, Owner::PhysiciansNode, &pt, visit).await;
    let ana_id = ana.client.participant.clone();

    let before = relay_for(&mut doc, &mut ana, &ana_id, Duration::from_secs(2)).await;

    gate.cut();
    let (bea_token, _, bea_visit) = cluster.patient_token(&room.id, "Bea");
    let bea_url = format!("ws://127.0.0.1:{}/ws", cluster.nodes[0].port);
    let bea = tokio::spawn(async move {
        let mut bea = Client::join(&bea_url, &bea_token, None).await;
        bea.expect("waiting").await;
        bea
    });
    let during = relay_for(&mut doc, &mut ana, &ana_id, Duration::from_secs(3)).await;
    let mut bea = bea.await.expect("Bea is told she is waiting");

    // Ana's phone changes network: her page resumes, the database still away.
    let resumed = Instant::now();
    ana.reconnect().await;
    let to_ana = relayed(&mut doc, &mut ana, &ana_id, "offer", WITHIN).await;
    let to_doc = relayed(&mut ana, &mut doc, &doc_id, "answer", WITHIN).await;
    let resumed_in = resumed.elapsed();
    assert!(
        ana.errors.is_empty(),
        "Ana's resume was refused: {:?}",
        ana.errors
    );
    assert!(
        to_ana.is_some() && to_doc.is_some(),
        "after resuming during the outage the call relays both ways"
    );
    bea.send(json!({"type": "leave"})).await;

    gate.open().await;
    let after = relay_for(&mut doc, &mut ana, &ana_id, Duration::from_secs(3)).await;
    println!(
        "database away (room on the physician's node): relays before {before:?}, during \
         {during:?}, after it returned {after:?}; Ana resumed during the outage, relaying both \
         ways within {resumed_in:?} ({to_ana:?} / {to_doc:?})"
    );
    for (phase, r) in [("before", &before), ("during", &during), ("after", &after)] {
        assert!(r.got > 0, "relays arrive {phase} the outage");
        assert!(
            r.max_gap < NO_PAUSE,
            "the call paused {:?} {phase} the outage",
            r.max_gap
        );
    }

    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    assert!(doc.until("visit_ended", WITHIN, |_| true).await.is_some());
    assert!(ana.until("visit_ended", WITHIN, |_| true).await.is_some());
    ana.told.push("visit_ended".into());
    history_of(&cluster, &visit, 4).await;
    history_is_exact(&cluster, &visit, &[&ana, &doc]).await;
    assert_eq!(
        history_of(&cluster, &bea_visit, 2).await,
        [VisitState::Waiting, VisitState::Left],
        "Bea's visit, made while the database was away: each transition once, in order"
    );
    cluster.stop().await;
}

/// How the node holding queued history goes.
#[derive(Clone, Copy, Debug)]
enum Goes {
    /// SIGTERM: it drains what it can, and leaves the rest for another node.
    Stopped,
    /// SIGKILL: no goodbye.
    Killed,
}

/// Ana and Dr Grey on node A, Ana waiting (her arrival in the history already); then
/// `outage` takes the database (or more) away and a whole visit happens: admitted, in call,
/// ended, each side told so.
async fn a_whole_visit_on_node_a_during(
    cluster: &Cluster,
    grey: &examroom::ids::StaffId,
    room: &examroom::visit::RoomConfig,
    outage: impl AsyncFnOnce(),
) -> (Side, Side, VisitId) {
    let a = &cluster.nodes[0];
    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let mut ana = Side::join("ana", a, &pt).await;
    ana.client.expect("waiting").await;
    ana.told.push("waiting".into());
    let mut doc = Side::join("doc", a, &cluster.staff_token(grey).await).await;
    doc.client
        .expect_where("queue", |q| q["entries"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(history_of(cluster, &visit, 1).await, [VisitState::Waiting]);

    outage().await;
    admitted_into_call(&mut ana, &mut doc, room, &visit).await;
    doc.send(json!({"type": "end_visit", "room": room.id, "visit": visit}))
        .await;
    assert!(doc.until("visit_ended", WITHIN, |_| true).await.is_some());
    assert!(ana.until("visit_ended", WITHIN, |_| true).await.is_some());
    ana.told.push("visit_ended".into());
    (ana, doc, visit)
}

/// Issue 18, "the queue survives a graceful restart": a whole visit happens on node A
/// while the database is away (admitted, in call, ended: the pages were told each), then
/// node A stops (or dies) before the database returns. Once it does, the history has the
/// whole visit, once, in order, written by the node that is left.
async fn queued_history_outlives_its_node(goes: Goes) {
    let (mut cluster, mut gate) =
        Cluster::start_gated(2, &crate::kit::services::redis_url(), &[]).await;
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    let (ana, doc, visit) =
        a_whole_visit_on_node_a_during(&cluster, &grey, &room, async || gate.cut()).await;

    let gone = Instant::now();
    match goes {
        Goes::Stopped => assert!(
            cluster.nodes[0].terminate(WITHIN).await,
            "node A exits on SIGTERM though the database is away"
        ),
        Goes::Killed => cluster.nodes[0].kill(),
    }
    let exited = gone.elapsed();
    gate.open().await;
    let back = Instant::now();
    let states = history_of(&cluster, &visit, 4).await;
    println!(
        "database away, node holding the queue {goes:?} (exited in {exited:?}): history \
         complete {:?} after the database returned: {states:?}",
        back.elapsed()
    );
    history_is_exact(&cluster, &visit, &[&ana, &doc]).await;
    cluster.stop().await;
}

variants! {
    history_queued_while_the_database_is_away_outlives_a_stopped_node => queued_history_outlives_its_node(Goes::Stopped);
    history_queued_while_the_database_is_away_outlives_a_killed_node => queued_history_outlives_its_node(Goes::Killed);
}

/// DELETE `path` on `node` as the holder of `bearer`; the status.
async fn delete_as(node: &Node, path: &str, bearer: &str) -> u16 {
    reqwest::Client::new()
        .delete(node.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("node answers")
        .status()
        .as_u16()
}

/// A hello that resumes with `resume` on `node`: the `welcome`, or the error it got.
async fn resume_hello(node: &Node, token: &str, resume: &str) -> serde_json::Value {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{}/ws", node.port)).await;
    c.send(json!({"type": "hello", "v": 1, "token": token, "resume": resume}))
        .await;
    loop {
        match c.poll(WITHIN).await {
            crate::kit::Polled::Msg(m) if m["type"] == "welcome" || m["type"] == "error" => {
                return m;
            }
            crate::kit::Polled::Msg(_) => continue,
            _ => panic!("no answer to hello"),
        }
    }
}

/// Issue 18, "a physician can reconnect during a database outage": Dr Grey (node B) and
/// Ana (node A, the room on his node) are in call when PostgreSQL goes away. His
/// connection drops and his page resumes: his session is checked from the note a node made
/// when it last checked it against the database, and the call relays both ways again. Dr
/// Blue, of the same room, signed out before the outage while his page stayed open: his
/// page's resume during it is refused, though the room still holds him.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_physician_resumes_during_a_database_outage_but_not_with_a_signed_out_session() {
    let (cluster, mut gate) =
        Cluster::start_gated(2, &crate::kit::services::redis_url(), &[]).await;
    let grey = cluster.physician("Dr Grey").await;
    let blue = cluster.physician("Dr Blue").await;
    let room = cluster.room(RoomKind::Physician, &[&grey, &blue]).await;
    let blue_token = cluster.staff_token(&blue).await;
    let mut blue_page = cluster.nodes[1].join(&blue_token).await;
    blue_page.expect("queue").await;
    let blue_resume = blue_page.resume_token.clone();
    assert_eq!(
        delete_as(&cluster.nodes[1], "/api/session", &blue_token).await,
        204
    );
    let (pt, _, visit) = cluster.patient_token(&room.id, "Ana");
    let (mut ana, mut doc, doc_id, _) =
        a_split_visit_in_call_as(&cluster, &grey, &room, Owner::PhysiciansNode, &pt, visit).await;
    let ana_id = ana.client.participant.clone();

    gate.cut();
    let resumed = Instant::now();
    doc.reconnect().await;
    let to_ana = relayed(&mut doc, &mut ana, &ana_id, "offer", WITHIN).await;
    let to_doc = relayed(&mut ana, &mut doc, &doc_id, "answer", WITHIN).await;
    println!(
        "database away: the physician resumed, relaying both ways within {:?} ({to_ana:?} / \
         {to_doc:?})",
        resumed.elapsed()
    );
    // A refused resume is `unavailable` (from the room) or a failed hello (the join panics).
    // A probe sent the instant he is back was seen answered `not_in_visit` once (his old
    // connection's disconnect reaching the room late?); the next one relayed.
    assert!(
        !doc.errors.iter().any(|e| e["code"] == "unavailable"),
        "his resume was refused: {:?}",
        doc.errors
    );
    assert!(
        to_ana.is_some() && to_doc.is_some(),
        "the call relays both ways"
    );

    let refused = resume_hello(&cluster.nodes[0], &blue_token, &blue_resume).await;
    assert_eq!(
        refused["type"], "error",
        "a signed-out session resumes during the outage: {refused}"
    );
    gate.open().await;
    cluster.stop().await;
}

/// Issue 18, "a link revoked before an outage must not let its patient resume during it":
/// Ana joined through her link; Dr Grey revokes it while her page is still connected.
/// PostgreSQL goes away and her page resumes: she is refused (`forbidden`, the link was
/// revoked), whichever node she resumes through, though the database cannot be asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_revoked_before_a_database_outage_does_not_let_its_patient_resume_during_it() {
    let (cluster, mut gate) =
        Cluster::start_gated(2, &crate::kit::services::redis_url(), &[]).await;
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    let (pt, visit) = ana_opens_her_link(&cluster, 0, &room.id, &grey).await;
    let (ana, _doc, _, visit) =
        a_split_visit_in_call_as(&cluster, &grey, &room, Owner::PhysiciansNode, &pt, visit).await;
    let links = cluster.store.list_links(Some(&room.id)).await.unwrap();
    let link = links
        .iter()
        .find(|l| l.new.visit == visit)
        .expect("her link");
    let staff = cluster.staff_token(&grey).await;
    let path = format!("/api/links/{}", link.new.id);
    assert_eq!(delete_as(&cluster.nodes[1], &path, &staff).await, 204);

    gate.cut();
    for node in &cluster.nodes {
        let answer = resume_hello(node, &pt, &ana.client.resume_token).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "a revoked link resumes during the outage: {answer}"
        );
    }
    gate.open().await;
    cluster.stop().await;
}

/// Issue 18, "the queue survives a graceful restart", with the database and Redis both
/// away: nothing can park the queue, so node A holds a whole visit's history in memory.
/// A is SIGTERMed: it writes what it holds to the spool in its data directory. Redis and
/// the database come back and A starts again on that directory: the history is whole,
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_held_when_the_database_and_redis_are_away_is_spooled_and_replayed_at_the_next_start()
 {
    let mut redis = PrivateRedis::start();
    let (mut cluster, mut gate) = Cluster::start_gated(1, &redis.url(), &[]).await;
    let grey = cluster.physician("Dr Grey").await;
    let room = cluster.room(RoomKind::Physician, &[&grey]).await;
    // Both sides on the one node: the visit goes on from memory.
    let both_away = async || {
        gate.cut();
        redis.stop();
        assert!(
            cluster.nodes[0].ready_status_within(503, 100).await,
            "the node notices"
        );
    };
    let (ana, doc, visit) = a_whole_visit_on_node_a_during(&cluster, &grey, &room, both_away).await;

    assert!(
        cluster.nodes[0].terminate(WITHIN).await,
        "node A exits on SIGTERM with the database and Redis away"
    );
    redis.restart();
    gate.open().await;
    cluster.respawn(0).await;
    let states = history_of(&cluster, &visit, 4).await;
    println!("database and Redis away, node SIGTERMed and started again: {states:?}");
    history_is_exact(&cluster, &visit, &[&ana, &doc]).await;
    cluster.stop().await;
}
