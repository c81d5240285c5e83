//! What a browser is told, and what a hostile page can do with a staff member's browser:
//! every answer carries a strict Content-Security-Policy that forbids framing (so the
//! admit/deny/admin buttons cannot be clickjacked), camera and microphone only for our own
//! pages, no sniffing, no referrer; no API answer (records, tokens) is stored by a
//! browser or proxy; a page on another origin cannot open the signalling WebSocket with the
//! staff cookie; and a staff page says `hello` with its HttpOnly cookie, not a token its
//! scripts could read.

use crate::kit::*;
use examroom::identity::Role;
use examroom::visit::RoomKind;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name} header", r.url()))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn pages_cannot_be_framed_and_run_only_our_own_scripts() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/dashboard",
        "/admin",
        "/join/somecode",
        "/setup/sometoken",
        "/assets/api.js",
        "/healthz",
        "/api/openapi.json",
        "/no-such-page",
    ] {
        let r = app.get(path).await;
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        let pp = header(&r, "permissions-policy");
        assert!(pp.contains("camera=(self)"), "{path}: {pp}");
        assert!(pp.contains("microphone=(self)"), "{path}: {pp}");
        assert!(pp.contains("geolocation=()"), "{path}: {pp}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&r, "x-xss-protection"), "0", "{path}");
    }
}

#[tokio::test]
async fn the_pages_carry_no_inline_code_the_policy_would_block() {
    // The policy has no 'unsafe-inline': an inline script, style or handler would be
    // dead in the browser. Catch it here rather than in a clinic.
    let app = TestApp::spawn().await;
    for path in ["/", "/dashboard", "/admin", "/join/x", "/setup/x"] {
        let html = app.get(path).await.text().await.unwrap();
        for (i, tag) in html.split("<script").skip(1).enumerate() {
            let open = tag.split('>').next().unwrap();
            assert!(open.contains("src="), "{path}: inline script #{i}");
        }
        assert!(!html.contains("<style"), "{path}: inline <style>");
        assert!(!html.contains(" style="), "{path}: style attribute");
        let lower = html.to_lowercase();
        for handler in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            " onchange=",
            " oninput=",
        ] {
            assert!(!lower.contains(handler), "{path}: inline handler {handler}");
        }
        assert!(!lower.contains("javascript:"), "{path}: javascript: URL");
    }
}

#[tokio::test]
async fn no_api_answer_is_kept_by_a_browser_or_proxy() {
    let app = TestApp::spawn().await;
    app.staff_with_password(
        "ada@clinic.test",
        vec![Role::Admin],
        "correct horse battery staple",
    )
    .await;
    // Sign-in hands out a token: never stored.
    let r = app
        .sign_in_call("ada@clinic.test", "correct horse battery staple")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Answers with staff and patient data, and errors alike.
    for path in [
        "/api/me",
        "/api/staff",
        "/api/visits",
        "/api/rooms",
        "/api/links",
        "/api/nothing",
    ] {
        let r = app.call("GET", path, Some(&token), None).await;
        assert_eq!(header(&r, "cache-control"), "no-store", "{path}");
        assert_eq!(header(&r, "pragma"), "no-cache", "{path}");
    }
    let r = app.call("GET", "/api/me", None, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "cache-control"), "no-store");
}

/// A WebSocket upgrade as a browser on `origin` would send it, with `cookie` if any.
async fn open_ws(
    app: &TestApp,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> Result<Ws, (u16, Value)> {
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("cookie", format!("examroom_session={c}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let status = r.status().as_u16();
            let body = r.body().clone().unwrap_or_default();
            Err((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        }
        Err(e) => panic!("unexpected upgrade failure: {e}"),
    }
}

/// Say hello with no token (the cookie, if any, is the credential); the server's answer.
async fn hello_answer(ws: &mut Ws) -> Value {
    ws.send(Message::Text(
        json!({"type": "hello", "v": 1}).to_string().into(),
    ))
    .await
    .unwrap();
    first_message(ws).await
}

async fn first_message(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.expect("a message").unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "ping" {
                    return v;
                }
            }
            Message::Close(_) => panic!("closed before a message"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_page_elsewhere_cannot_open_the_websocket_with_the_staff_cookie() {
    let app = TestApp::spawn_with(|s| {
        s.server.allowed_origins = vec!["https://portal.clinic.example".into()];
    })
    .await;
    let doc = app.physician("Dr Grey").await;
    app.room("Clinic", RoomKind::Physician, &[&doc]).await;
    let cookie = app.staff_token(&doc, vec![Role::Physician]).await;

    // An attacker's page: refused before the upgrade, with the documented JSON error.
    for evil in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let (status, body) = open_ws(&app, Some(evil), Some(&cookie)).await.unwrap_err();
        assert_eq!(status, 403, "{evil}");
        assert_eq!(body["error"], "origin_not_allowed", "{evil}");
    }

    // Our own page, and an origin the clinic listed: the cookie signs the physician in.
    let own = format!("http://{}", app.addr);
    for origin in [own.as_str(), "https://portal.clinic.example"] {
        let mut ws = open_ws(&app, Some(origin), Some(&cookie)).await.unwrap();
        let welcome = hello_answer(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{origin}: {welcome}");
        assert_eq!(welcome["participant"], doc.as_str());
        assert_eq!(welcome["role"], "physician");
    }

    // A tool (no Origin, no cookie) still says hello with a bearer token.
    let mut c = app.ws().await;
    let w = c.hello(&cookie, None).await;
    assert_eq!(w["participant"], doc.as_str());

    // No token and no cookie: refused in the protocol's own words.
    let mut ws = open_ws(&app, Some(&own), None).await.unwrap();
    let err = hello_answer(&mut ws).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("unauthenticated"))
    );

    // A signed-out session's cookie no longer opens anything.
    app.state.durable.revoke_sessions_of(&doc).await.unwrap();
    let mut ws = open_ws(&app, Some(&own), Some(&cookie)).await.unwrap();
    let err = hello_answer(&mut ws).await;
    assert_eq!(err["code"], "unauthenticated", "{err}");
}
