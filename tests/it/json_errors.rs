//! Every error answer is the documented `{error, message, field?}` JSON — including the
//! ones the framework gives by itself: a body that is not JSON, the wrong content type,
//! missing or mistyped fields, a body over the limit, a query that does not parse, an
//! unknown route, a wrong method. A client needs one error parser, and a 500 or a
//! text/plain answer to hostile input is a finding.

use crate::kit::TestApp;
use examroom::http::routes::{Access, ROUTES};
use examroom::identity::Role;
use examroom::visit::RoomKind;
use serde_json::Value;

/// The answer is an error in the documented shape; returns (status, body).
async fn assert_json_error(what: &str, res: reqwest::Response) -> (u16, Value) {
    let (status, ctype, text) = crate::kit::status_type_text(res).await;
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status}: {text}"
    );
    assert!(
        ctype.starts_with("application/json"),
        "{what}: error is {ctype}, not JSON: {status} {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["error"].is_string(), "{what}: no `error` code: {body}");
    assert!(body["message"].is_string(), "{what}: no `message`: {body}");
    if let Some(f) = body.get("field") {
        assert!(f.is_string(), "{what}: `field` is not a string: {body}");
    }
    (status, body)
}

/// Broken bodies a client (or an attacker) can send, with the content type it claims.
fn broken_bodies(limit: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("not JSON", "application/json", b"{nope".to_vec()),
        ("truncated", "application/json", b"{\"email\": \"a".to_vec()),
        ("empty", "application/json", Vec::new()),
        ("empty object", "application/json", b"{}".to_vec()),
        ("array", "application/json", b"[1,2]".to_vec()),
        ("string", "application/json", b"\"x\"".to_vec()),
        ("null", "application/json", b"null".to_vec()),
        (
            "wrong types",
            "application/json",
            br#"{"email":1,"password":[],"name":{},"room":7,"device":false,"score":"x","roles":"admin","visit":1}"#
                .to_vec(),
        ),
        ("form", "application/x-www-form-urlencoded", b"a=1".to_vec()),
        ("no content type", "", b"{}".to_vec()),
        ("not UTF-8", "application/json", vec![b'"', 0xff, 0xfe, b'"']),
        ("over the limit", "application/json", {
            let mut b = b"{\"name\":\"".to_vec();
            b.resize(limit + 10, b'a');
            b.extend_from_slice(b"\"}");
            b
        }),
    ]
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "r_nonexistent")
        .replace("{code}", "nonexistentcode")
        .replace("{token}", "nonexistenttoken")
        .replace("{visit}", "v_nonexistent")
        .replace("{*path}", "nonexistent.js")
}

#[tokio::test]
async fn every_json_body_route_answers_broken_bodies_with_a_json_error() {
    let limit = 64 * 1024;
    let app = TestApp::spawn_with(|s| s.server.max_body_bytes = limit).await;
    let (admin, admin_token) = app.admin_physician().await;
    let room = app.room("Clinic", RoomKind::Physician, &[&admin]).await;
    let (patient_token, _, _) = app.patient_token(&room.id, "Pat");
    let mut walked = 0;
    for route in ROUTES
        .iter()
        .filter(|r| matches!(r.method, "POST" | "PUT" | "PATCH"))
    {
        // Let each caller past authentication, so the body is what is judged.
        let token = match route.access {
            Access::Patient | Access::Participant => patient_token.as_str(),
            _ => admin_token.as_str(),
        };
        let path = concrete(route.path).replace("r_nonexistent", room.id.as_str());
        for (what, ctype, body) in broken_bodies(limit) {
            let mut req = app
                .api(route.method.parse().unwrap(), &path, token)
                .body(body);
            if !ctype.is_empty() {
                req = req.header("content-type", ctype);
            }
            let what = format!("{} {} with {what}", route.method, route.path);
            assert_json_error(&what, req.send().await.unwrap()).await;
            walked += 1;
        }
    }
    assert!(walked >= 10 * 12, "walked only {walked} cases");
}

/// POST a sign-in body as `content_type`.
async fn post_session(app: &TestApp, content_type: &str, body: &'static str) -> reqwest::Response {
    let req = app.api(reqwest::Method::POST, "/api/session", "");
    let req = req.header("content-type", content_type).body(body);
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_broken_sign_in_body_names_the_field() {
    let app = TestApp::spawn().await;
    let res = post_session(&app, "application/json", r#"{"email":"a@b.c"}"#).await;
    let (status, body) = assert_json_error("sign-in without password", res).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "invalid_field");
    assert_eq!(body["field"], "password");

    let res = post_session(&app, "text/plain", r#"{"email":"a@b.c","password":"x"}"#).await;
    let (status, body) = assert_json_error("sign-in as text/plain", res).await;
    assert_eq!(status, 415);
    assert_eq!(body["error"], "unsupported_media_type");
}

#[tokio::test]
async fn framework_refusals_are_json_too() {
    let app = TestApp::spawn().await;
    let doc = app.physician("Dr Query").await;
    let token = app.staff_token(&doc, vec![Role::Physician]).await;
    let cases: Vec<(&str, reqwest::Method, String)> = vec![
        (
            "unknown API route",
            reqwest::Method::GET,
            "/api/nothing-here".into(),
        ),
        ("unknown page", reqwest::Method::GET, "/nothing-here".into()),
        (
            "missing asset",
            reqwest::Method::GET,
            "/assets/nothing.js".into(),
        ),
        ("wrong method", reqwest::Method::PUT, "/api/me".into()),
        (
            "query that does not parse",
            reqwest::Method::GET,
            format!(
                "/api/visits/{}/record?refresh=maybe",
                examroom::ids::VisitId::new()
            ),
        ),
        (
            "time that does not parse",
            reqwest::Method::GET,
            "/api/visits?from=yesterday".into(),
        ),
        (
            "WebSocket without upgrade",
            reqwest::Method::GET,
            "/ws".into(),
        ),
    ];
    for (what, method, path) in cases {
        let res = app.api(method, &path, &token).send().await.unwrap();
        assert_json_error(what, res).await;
    }
}
