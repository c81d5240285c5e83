//! Everything the admin API wrote survives a restart on the same data directory.

use crate::kit::*;
use examroom::identity::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    let r = app.api(Method::GET, path, token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn rooms_staff_links_visits_and_surveys_survive_a_restart() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let doc = app.physician("Dr Grey").await;

    // Through the API: a room, an invited physician, an edit.
    let r = app
        .api(Method::POST, "/api/rooms", &admin)
        .json(
            &json!({"name": "Family medicine", "kind": "physician", "physicians": [doc],
            "max_wait_secs": 900, "max_participants": 3, "opening_hours": "Mon-Sun 00:00-24:00"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let room: Value = r.json().await.unwrap();
    let room_id = examroom::ids::RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    let r = app
        .api(Method::POST, "/api/staff", &admin)
        .json(&json!({"email": "yang@clinic.test", "name": "Dr Yang", "roles": ["physician"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let yang: Value = r.json().await.unwrap();
    let r = app
        .api(
            Method::PATCH,
            &format!("/api/staff/{}", yang["staff"]["id"].as_str().unwrap()),
            &admin,
        )
        .json(&json!({"languages": ["en", "zh"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A link (minted as identity will: straight into the store), and two real visits.
    let now = chrono::Utc::now().timestamp_millis();
    app.state
        .durable
        .create_link(crate::kit::seed::new_patient_link(
            &room_id, &doc, "code", "Ana", now,
        ))
        .await
        .unwrap();
    let doc_token = app.staff_token(&doc, vec![Role::Physician]).await;
    let mut grey = app.join(&doc_token).await;
    let v1 = app.visit_to_the_end(&mut grey, &room_id, "Ana").await;
    let v2 = app.visit_to_the_end(&mut grey, &room_id, "Ben").await;
    for (v, score) in [(&v1, 10), (&v2, 6)] {
        let t = app.participant_token_for(&room_id, v, "P", Role::Patient);
        let r = app
            .api(Method::POST, "/api/surveys", &t)
            .json(&json!({"score": score}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    drop(grey);

    let paths = [
        "/api/rooms",
        "/api/staff",
        "/api/links",
        "/api/visits",
        "/api/experience",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(get(&app, p, &admin).await);
    }
    let csv_before = app.get_text("/api/visits.csv", &admin).await;
    let detail_before = get(&app, &format!("/api/visits/{v1}"), &admin).await;
    assert_eq!(before[3].as_array().unwrap().len(), 2);
    assert_eq!(before[4]["nps"].as_f64(), Some(0.0));

    let settings = app.state.settings.as_ref().clone();
    let dir = app.shutdown().await;
    let app = TestApp::spawn_in(dir, settings).await;

    // Sessions are durable too: the admin's token still works after the restart.
    for (p, b) in paths.iter().zip(&before) {
        assert_eq!(
            &get(&app, p, &admin).await,
            b,
            "{p} changed across the restart"
        );
    }
    assert_eq!(app.get_text("/api/visits.csv", &admin).await, csv_before);
    assert_eq!(
        get(&app, &format!("/api/visits/{v1}"), &admin).await,
        detail_before
    );
    // And the surveys are still answered: a second answer is still refused.
    let t = app.participant_token_for(&room_id, &v1, "P", Role::Patient);
    let r = app
        .api(Method::POST, "/api/surveys", &t)
        .json(&json!({"score": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let status = get(&app, &format!("/api/rooms/{room_id}/status"), "").await;
    assert_eq!(status["open"], true);
}
