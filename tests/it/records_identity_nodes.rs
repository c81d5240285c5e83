//! Issue 17, item 1, on two nodes (Redis live store, one PostgreSQL): the patient's identity
//! check is one count and one confirmation whichever node each answer and each record read
//! reaches. Needs Redis and PostgreSQL (`EXAMROOM_TEST_REDIS_URL`,
//! `EXAMROOM_TEST_DATABASE_URL`), as the cluster tests do.

use crate::kit::*;
use examroom::config::{LiveBackend, Secret, Settings};
use examroom::identity::Role;
use examroom::visit::RoomKind;
use serde_json::json;
use sqlx::Connection;

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_DEFAULT: &str = "redis://127.0.0.1:6379";

/// Two in-process nodes sharing a fresh PostgreSQL database and a Redis key prefix, and
/// what drops that database afterwards.
async fn two_nodes() -> (TestApp, TestApp, DropDb) {
    let admin_url =
        std::env::var("EXAMROOM_TEST_DATABASE_URL").unwrap_or_else(|_| PG_DEFAULT.into());
    let redis = std::env::var("EXAMROOM_TEST_REDIS_URL").unwrap_or_else(|_| REDIS_DEFAULT.into());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL reachable (EXAMROOM_TEST_DATABASE_URL)");
    let db = format!("examroom_test_{}", examroom::ids::random_id());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{db}");
    let prefix = format!("examroom-test:{}", examroom::ids::random_id());
    let node = |s: &mut Settings| {
        s.records.demo = true;
        s.database.url = Secret::new(db_url.clone());
        s.live.backend = LiveBackend::Redis;
        s.live.lease_ms = 1500;
        s.redis.url = Secret::new(redis.clone());
        s.redis.key_prefix = prefix.clone();
    };
    (
        TestApp::spawn_with(node).await,
        TestApp::spawn_with(node).await,
        DropDb { admin_url, db },
    )
}

struct DropDb {
    admin_url: String,
    db: String,
}

impl DropDb {
    async fn drop_after(self, nodes: [TestApp; 2]) {
        for n in nodes {
            n.shutdown().await;
        }
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
                .execute(&mut c)
                .await;
        }
    }
}

#[tokio::test]
async fn answers_and_reads_on_either_node_share_one_identity_check() {
    let (a, b, db) = two_nodes().await;
    let grey = a.physician("Dr Grey").await;
    let room = a
        .room("Family medicine", RoomKind::Physician, &[&grey])
        .await;
    let grey_t = a.staff_token(&grey, vec![Role::Physician]).await;
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
    let answer = |born: &str| json!({ "birth_date": born });
    let (s, body) = a
        .call_json(
            "POST",
            "/api/identity",
            Some(&token),
            Some(answer("1970-01-01")),
        )
        .await;
    assert_eq!((s, body["attempts_left"].as_u64()), (422, Some(4)));
    let (s, body) = b
        .call_json(
            "POST",
            "/api/identity",
            Some(&token),
            Some(answer("1970-01-02")),
        )
        .await;
    assert_eq!((s, body["attempts_left"].as_u64()), (422, Some(3)));

    // Confirmed on node B; the chart opens on both.
    let (s, _) = b
        .call_json(
            "POST",
            "/api/identity",
            Some(&token),
            Some(answer("1968-04-17")),
        )
        .await;
    assert_eq!(s, 200);
    for node in [&a, &b] {
        let (s, panel) = node.call_json("GET", &record, Some(&grey_t), None).await;
        assert_eq!(s, 200, "{panel}");
    }
    drop((ana, doc));
    db.drop_after([a, b]).await;
}
