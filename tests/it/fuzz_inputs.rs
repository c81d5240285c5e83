//! Bounded fuzzing (proptest) of what a hostile client controls: WebSocket messages and
//! HTTP JSON bodies. Each property runs a fixed number of generated cases (a few thousand
//! in all, well under a minute), so it runs in every CI build. A failing case proptest
//! finds is shrunk and printed; keep it as a named case in `regressions` below.
//!
//! What must hold:
//! - the message parser never panics, whatever the text; every refusal is a documented
//!   error code; every valid message survives a serialise/parse round trip;
//! - a live socket answers any message (including oversized ones) with an `error` or its
//!   normal reply and stays up;
//! - every JSON-body route answers any body with a success or a 4xx in the documented
//!   `{error, message, field?}` shape, never a 500 and never plain text.

use crate::kit::*;
use examroom::http::routes::{Access, ROUTES};
use examroom::protocol::{ClientMsg, ErrorCode, all_type_names, parse_client};
use examroom::visit::RoomKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// JSON values of any shape, with strings that look like what the protocol carries.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "r_1",
            "v_1",
            "p_1",
            "",
            "hello",
            "x".repeat(300).leak()
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message-shaped value: a known (or unknown) `type` and fields that may or may not fit.
fn message_shaped() -> impl Strategy<Value = Value> {
    let (client, _) = all_type_names();
    let mut types: Vec<String> = client.iter().map(|s| s.to_string()).collect();
    types.push("fly".into());
    let fields = [
        "v",
        "token",
        "resume",
        "room",
        "visit",
        "to",
        "sdp",
        "text",
        "candidate",
        "name",
        "reason",
        "ok",
        "summary",
        "available",
    ];
    (
        prop::sample::select(types),
        prop::collection::btree_map(prop::sample::select(fields.to_vec()), any_json(), 0..5),
    )
        .prop_map(|(ty, fields)| {
            let mut m: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            m.insert("type".into(), Value::String(ty));
            Value::Object(m)
        })
}

fn valid_message() -> impl Strategy<Value = ClientMsg> {
    let s = || "\\PC{0,40}";
    prop_oneof![
        (s(), prop::option::of(s())).prop_map(|(token, resume)| ClientMsg::Hello {
            v: 1,
            token,
            resume
        }),
        Just(ClientMsg::Ping {}),
        (prop::option::of(s()), prop::option::of(s()))
            .prop_map(|(name, reason)| ClientMsg::Profile { name, reason }),
        (any::<bool>(), s()).prop_map(|(ok, summary)| ClientMsg::DeviceCheck { ok, summary }),
        any::<bool>().prop_map(|available| ClientMsg::Availability { available }),
        s().prop_map(|text| ClientMsg::Chat { text }),
        s().prop_map(|sdp| ClientMsg::CheckOffer { sdp }),
    ]
}

fn documented(code: ErrorCode) -> bool {
    ErrorCode::ALL.contains(&code)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn the_message_parser_never_panics_and_names_every_refusal() {
    let mut r = runner(3000);
    r.run(&any::<String>(), |text| {
        if let Err((code, msg, _)) = parse_client(&text) {
            prop_assert!(documented(code));
            prop_assert!(!msg.is_empty());
        }
        Ok(())
    })
    .unwrap();
    let mut r = runner(3000);
    r.run(&prop_oneof![any_json(), message_shaped()], |v| {
        if let Err((code, msg, _)) = parse_client(&v.to_string()) {
            prop_assert!(documented(code));
            prop_assert!(!msg.is_empty());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn valid_messages_round_trip() {
    let mut r = runner(1000);
    r.run(&valid_message(), |m| {
        let text = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(parse_client(&text).unwrap(), m);
        Ok(())
    })
    .unwrap();
}

/// Known crashes and near-misses, kept as plain cases.
#[test]
fn regressions() {
    for text in [
        "",
        "null",
        "[]",
        r#"{"type":null}"#,
        r#"{"type":"hello"}"#,
        r#"{"type":"hello","v":-1,"token":"t"}"#,
        r#"{"type":"hello","v":1}"#,
        r#"{"type":"candidate","to":"p_1","candidate":null}"#,
        "\u{0}",
        &"[".repeat(10_000),
        &"{\"a\":".repeat(10_000),
    ] {
        let _ = parse_client(text);
    }
    // A hello without a token parses: the session cookie may stand in for it.
    assert!(matches!(
        parse_client(r#"{"type":"hello","v":1}"#),
        Ok(ClientMsg::Hello { .. })
    ));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_live_socket_survives_any_message() {
    let rt = rt();
    let max = 1024;
    let (app, c) = rt.block_on(async {
        let app = TestApp::spawn_with(|s| {
            s.signalling.max_message_bytes = max;
            s.signalling.rate_per_sec = 1_000_000;
            s.signalling.rate_burst = 1_000_000;
        })
        .await;
        let doc = app.physician("Dr Fuzz").await;
        let room = app.room("Fuzz", RoomKind::Physician, &[&doc]).await;
        let (t, _, _) = app.patient_token(&room.id, "Pat");
        let mut c = app.join(&t).await;
        c.expect("waiting").await;
        (app, c)
    });
    let texts = prop_oneof![
        4 => message_shaped().prop_filter("stays", |v| v["type"] != "leave").prop_map(|v| v.to_string()),
        2 => any_json().prop_map(|v| v.to_string()),
        1 => "\\PC{0,64}",
        1 => (max..max * 4).prop_map(|n| format!("{{\"type\":\"chat\",\"text\":\"{}\"}}", "a".repeat(n))),
    ];
    // `run` takes a `Fn`: the one socket is borrowed per case.
    let c = std::cell::RefCell::new(c);
    let mut r = runner(400);
    r.run(&texts, |text| {
        let mut c = c.borrow_mut();
        rt.block_on(async {
            c.send_raw(text.clone()).await;
            // The server handles one connection's messages in order: once the pong for
            // this ping arrives, the fuzz message has been dealt with.
            c.send(json!({"type": "ping"})).await;
            // Errors may also answer earlier messages (a connection check fails later):
            // what matters is that each is documented and the oversized one is named.
            let mut codes = Vec::new();
            // A fuzz message that is itself a valid `ping` gets its own pong first.
            let fuzz_ping =
                text.len() < max && matches!(parse_client(&text), Ok(ClientMsg::Ping {}));
            let mut pongs = if fuzz_ping { 2 } else { 1 };
            loop {
                let m = c.next().await;
                let Some(m) = m else {
                    return Err(TestCaseError::fail(format!(
                        "socket closed after {text:.200}"
                    )));
                };
                match m["type"].as_str() {
                    Some("pong") => {
                        pongs -= 1;
                        if pongs == 0 {
                            break;
                        }
                    }
                    Some("error") => {
                        let code: ErrorCode =
                            serde_json::from_value(m["code"].clone()).map_err(|e| {
                                TestCaseError::fail(format!("undocumented code {m}: {e}"))
                            })?;
                        prop_assert!(documented(code));
                        codes.push(code);
                    }
                    _ => {}
                }
            }
            if text.len() >= max {
                prop_assert!(
                    codes.contains(&ErrorCode::TooLarge),
                    "{codes:?} for {text:.80}"
                );
            }
            Ok(())
        })
    })
    .unwrap();
    rt.block_on(app.shutdown());
}

/// A body for a JSON route: raw bytes, any JSON, or a plausible body with one field
/// replaced by something else.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let plausible = json!({
        "email": "a@b.c", "password": "correct horse battery staple", "name": "A",
        "room": "r_1", "visit": "v_1", "device": "d", "score": 9, "roles": ["physician"],
        "kind": "physician", "physicians": [], "patient_name": "P", "active": true,
    });
    let keys: Vec<String> = plausible.as_object().unwrap().keys().cloned().collect();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        2 => any_json().prop_map(|v| v.to_string().into_bytes()),
        3 => (prop::sample::select(keys), any_json()).prop_map(move |(k, v)| {
            let mut b = plausible.clone();
            b[k] = v;
            b.to_string().into_bytes()
        }),
    ]
}

#[test]
fn json_bodies_get_an_answer_or_a_json_error_never_a_500() {
    let rt = rt();
    let (app, admin_t, patient_t, room) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let (admin, admin_t) = app.admin_physician().await;
        let room = app.room("Fuzz", RoomKind::Physician, &[&admin]).await;
        let (patient_t, _, _) = app.patient_token(&room.id, "Pat");
        (app, admin_t, patient_t, room)
    });
    let routes: Vec<_> = ROUTES
        .iter()
        .filter(|r| matches!(r.method, "POST" | "PUT" | "PATCH"))
        // Changing the admin's own account would only test that we locked ourselves out.
        .filter(|r| r.path != "/api/staff/{id}")
        .collect();
    let http = reqwest::Client::new();
    let mut r = runner(1500);
    r.run(
        &(prop::sample::select(routes), any_body(), any::<bool>()),
        |(route, body, json_type)| {
            let path = route
                .path
                .replace("{id}", room.id.as_str())
                .replace("{code}", "fuzzcode")
                .replace("{token}", "fuzztoken");
            let token = match route.access {
                Access::Patient | Access::Participant => &patient_t,
                _ => &admin_t,
            };
            rt.block_on(async {
                let mut req = http
                    .request(route.method.parse().unwrap(), app.url(&path))
                    .bearer_auth(token)
                    .body(body.clone());
                if json_type {
                    req = req.header("content-type", "application/json");
                }
                let res = req.send().await.unwrap();
                let (status, ctype, text) = crate::kit::status_type_text(res).await;
                let what = format!(
                    "{} {} {}",
                    route.method,
                    route.path,
                    String::from_utf8_lossy(&body)
                );
                prop_assert!(status < 500, "{what}: {status} {text}");
                if status >= 400 {
                    prop_assert!(
                        ctype.starts_with("application/json"),
                        "{what}: {ctype} {text}"
                    );
                    let v: Value = serde_json::from_str(&text).unwrap();
                    prop_assert!(
                        v["error"].is_string() && v["message"].is_string(),
                        "{what}: {v}"
                    );
                }
                Ok(())
            })
        },
    )
    .unwrap();
    rt.block_on(app.shutdown());
}
