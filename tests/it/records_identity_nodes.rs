//! Issue 17, item 1, on two nodes (Redis live store, one PostgreSQL): the patient's identity
//! check is one count and one confirmation whichever node each answer and each record read
//! reaches. Needs Redis and PostgreSQL (`EXAMROOM_TEST_REDIS_URL`,
//! `EXAMROOM_TEST_DATABASE_URL`), as the cluster tests do.

use crate::kit::services::{TestDatabase, on_redis, redis_prefix};
use crate::kit::*;
use examroom::config::{Secret, Settings};
use examroom::identity::Role;
use serde_json::json;

/// Two in-process nodes sharing a fresh PostgreSQL database and a Redis key prefix, and
/// that database (to drop once the nodes are down).
async fn two_nodes() -> (TestApp, TestApp, TestDatabase) {
    let db = TestDatabase::create().await;
    let prefix = redis_prefix();
    let node = |s: &mut Settings| {
        s.records.demo = true;
        s.database.url = Secret::new(db.url.clone());
        on_redis(s, &prefix);
        s.live.lease_ms = 1500;
    };
    (
        TestApp::spawn_with(node).await,
        TestApp::spawn_with(node).await,
        db,
    )
}

#[tokio::test]
async fn answers_and_reads_on_either_node_share_one_identity_check() {
    let (a, b, db) = two_nodes().await;
    let (_, grey_t, room) = a.physician_with_room("Dr Grey", "Family medicine").await;
    let admin = a.staff("Admin Ada", vec![Role::Admin], vec![], None).await;
    let admin_t = a.staff_token(&admin, vec![Role::Admin]).await;
    let link = a
        .mint_link(
            &admin_t,
            json!({"room": room.id, "patient_ref": "demo-patient-1"}),
        )
        .await;

    // Ana joins on node A; Dr Grey admits her from node B.
    let (s, joined) = a
        .redeem(link["code"].as_str().unwrap(), "patient-browser-0001")
        .await;
    assert_eq!(s, 200, "{joined}");
    let token = joined["token"].as_str().unwrap().to_owned();
    let visit = joined["visit"].as_str().unwrap().to_owned();
    let mut ana = a.join(&token).await;
    ana.expect("waiting").await;
    let mut doc = b.join(&grey_t).await;
    doc.send(json!({"type": "admit", "room": room.id, "visit": visit}))
        .await;
    doc.expect_where("admitted", |m| m["visit"] == json!(visit))
        .await;
    let record = format!("/api/visits/{visit}/record");
    let (s, body) = b.call_json("GET", &record, Some(&grey_t), None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("identity_not_confirmed")),
        "{body}"
    );

    // One wrong answer on each node: one count.
    let (s, body) = a.confirm_identity(&token, "1970-01-01").await;
    assert_eq!((s, body["attempts_left"].as_u64()), (422, Some(4)));
    let (s, body) = b.confirm_identity(&token, "1970-01-02").await;
    assert_eq!((s, body["attempts_left"].as_u64()), (422, Some(3)));

    // Confirmed on node B; the chart opens on both.
    let (s, _) = b.confirm_identity(&token, "1968-04-17").await;
    assert_eq!(s, 200);
    for node in [&a, &b] {
        let (s, panel) = node.call_json("GET", &record, Some(&grey_t), None).await;
        assert_eq!(s, 200, "{panel}");
    }
    drop((ana, doc));
    for n in [a, b] {
        n.shutdown().await;
    }
    db.drop().await;
}
