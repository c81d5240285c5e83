//! The authorization matrix: every HTTP route and every WebSocket action, called as
//! nobody, a patient, a guest, a physician and an admin.
//!
//! The HTTP half is driven by `examroom::http::routes::ROUTES`; the first test fails
//! when a `.route(…)` under `src/` is missing from that table, so a new route cannot
//! skip the matrix. See `src/http/routes.rs` for how to register one.

use crate::kit::TestApp;
use crate::kit::rust_files;
use examroom::http::routes::{Access, ROUTES};
use examroom::identity::Role;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` call in `text`.
fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Comments (such as the how-to in routes.rs) are not routes.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let Some(q) = rest.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some(end) = q.find('"') else { continue };
        let path = &q[..end];
        // The arguments run to the parenthesis closing `.route(`.
        let args = &q[end + 1..];
        let (mut depth, mut stop) = (1i32, args.len());
        for (j, ch) in args.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        stop = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &args[..stop];
        for m in METHODS {
            let needle = format!("{m}(");
            let mut from = 0;
            while let Some(k) = args[from..].find(&needle) {
                let at = from + k;
                let before = args[..at].chars().last().unwrap_or(' ');
                if !(before.is_alphanumeric() || before == '_') {
                    out.push((m.to_uppercase(), path.to_owned()));
                }
                from = at + needle.len();
            }
        }
    }
    // Handlers registered through utoipa-axum carry their method and path in
    // `#[utoipa::path(get, path = "...")]`.
    let mut rest = code.as_str();
    while let Some(i) = rest.find("#[utoipa::path(") {
        rest = &rest[i + "#[utoipa::path(".len()..];
        let method = rest.split(',').next().unwrap_or("").trim().to_uppercase();
        let Some(p) = rest.find("path = \"") else {
            continue;
        };
        let tail = &rest[p + "path = \"".len()..];
        let Some(end) = tail.find('"') else { continue };
        out.push((method, tail[..end].to_owned()));
    }
    out
}

#[test]
fn every_route_in_the_source_is_in_the_route_table() {
    let mut files = Vec::new();
    rust_files(std::path::Path::new("src"), &mut files);
    let mut routed = BTreeSet::new();
    for f in files {
        for r in routes_in(&std::fs::read_to_string(&f).unwrap()) {
            routed.insert(r);
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = routed.difference(&table).collect();
    let stale: Vec<_> = table.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes served but not in src/http/routes.rs ROUTES (add them with their Access): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "ROUTES lists routes nobody serves: {stale:?}"
    );
}

#[test]
fn the_route_scanner_reads_chained_methods() {
    let src = r#".route("/a/{id}", get(show).put(update))
        .route("/b", post(|x: Json<V>| async { forget(x) }))"#;
    assert_eq!(
        routes_in(src),
        vec![
            ("GET".into(), "/a/{id}".into()),
            ("PUT".into(), "/a/{id}".into()),
            ("POST".into(), "/b".into())
        ]
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Patient,
    Guest,
    Physician,
    Admin,
}

/// What a caller should get: let past authorization, or refused with this status/code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Pass,
    Refused(u16, &'static str),
}

fn expected(access: Access, who: Who) -> Expect {
    use Expect::*;
    use Who::*;
    let staff_only = |who| match who {
        Nobody => Refused(401, "no_credentials"),
        Patient | Guest => Refused(403, "not_staff"),
        _ => Pass,
    };
    match access {
        Access::Public | Access::Secret | Access::WebSocket => Pass,
        // Only Prometheus holds the metrics token; no role's sign-in opens /metrics.
        Access::MetricsToken => Refused(401, "bad_metrics_token"),
        Access::Staff | Access::RoomPhysicianOrAdmin => staff_only(who),
        Access::Physician => match who {
            Admin => Refused(403, "not_physician"),
            w => staff_only(w),
        },
        Access::Admin => match who {
            Physician => Refused(403, "not_admin"),
            w => staff_only(w),
        },
        Access::RoomPhysician => match who {
            Admin => Refused(403, "not_your_room"),
            w => staff_only(w),
        },
        Access::Participant => match who {
            Nobody => Refused(401, "no_credentials"),
            Physician | Admin => Refused(403, "not_participant"),
            _ => Pass,
        },
        Access::Patient => match who {
            Nobody => Refused(401, "no_credentials"),
            Physician | Admin => Refused(403, "not_participant"),
            Guest => Refused(403, "not_patient"),
            Patient => Pass,
        },
        // In this world the physician has not admitted the visit (its patient never
        // connected), so nobody may read its record; the allowed case is in records_access.
        Access::VisitPhysician => match who {
            Nobody => Refused(401, "no_credentials"),
            Patient | Guest | Admin => Refused(403, "not_physician"),
            Physician => Refused(403, "not_your_visit"),
        },
    }
}

struct World {
    app: TestApp,
    tokens: Vec<(Who, Option<String>)>,
    room: examroom::visit::RoomConfig,
    link: Value,
}

/// A room with its physician, an admin-only account, and a patient and a guest who
/// came in by real links.
async fn world() -> World {
    let app = TestApp::spawn().await;
    let (_, physician, room) = app.physician_with_room("Dr Matrix", "Matrix").await;
    let admin_id = app.staff("Ad Min", vec![Role::Admin], vec![], None).await;
    let admin = app.staff_token(&admin_id, vec![Role::Admin]).await;
    let link = app.mint_link(&physician, json!({"room": room.id})).await;
    let (_, p) = app
        .redeem(link["code"].as_str().unwrap(), "matrix-device-patient")
        .await;
    let visit = link["visit"].as_str().unwrap();
    let (_, g) = app.mint_guest_link(&physician, &room.id, visit).await;
    let (_, g) = app
        .redeem(g["code"].as_str().unwrap(), "matrix-device-guest!")
        .await;
    let tok = |v: &Value| Some(v["token"].as_str().unwrap().to_owned());
    World {
        tokens: vec![
            (Who::Nobody, None),
            (Who::Patient, tok(&p)),
            (Who::Guest, tok(&g)),
            (Who::Physician, Some(physician)),
            (Who::Admin, Some(admin)),
        ],
        app,
        room,
        link,
    }
}

/// A request that gets past validation where it can, so "passed" means what it says.
fn sample(w: &World, method: &str, path: &str) -> (String, Option<Value>) {
    let path = path
        .replace("{id}", w.link["id"].as_str().unwrap())
        .replace("{visit}", w.link["visit"].as_str().unwrap())
        .replace("{code}", "matrix-unknown-code")
        .replace("{token}", "matrix-unknown-token")
        .replace("{*path}", "none.css");
    let body = match (method, path.as_str()) {
        ("POST", "/api/links") => Some(json!({"room": w.room.id})),
        ("POST", "/api/links/guest") => Some(json!({"room": w.room.id, "visit": w.link["visit"]})),
        ("POST", "/api/surveys") => Some(json!({"score": 9})),
        ("POST", "/api/session") => {
            Some(json!({"email": "x@clinic.test", "password": "wrong wrong wrong"}))
        }
        ("POST", p) if p.starts_with("/api/join/") => {
            Some(json!({"device": "matrix-device-other"}))
        }
        ("POST", p) if p.starts_with("/api/setup/") => {
            Some(json!({"email": "x@clinic.test", "name": "X", "password": "long enough password"}))
        }
        ("GET" | "DELETE", _) => None,
        _ => Some(json!({})),
    };
    (path, body)
}

#[tokio::test]
async fn every_http_route_for_every_caller() {
    let w = world().await;
    let mut table = String::new();
    let mut failures = Vec::new();
    // Revoking the link would end the story for later rows: revoke last; and signing out
    // (DELETE /api/session) ends each caller's session, so it goes after every other row.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|r| (r.method == "DELETE", r.path == "/api/session"));
    for r in routes {
        for (who, token) in &w.tokens {
            let (path, body) = sample(&w, r.method, r.path);
            let (status, b) = w
                .app
                .call_json(r.method, &path, token.as_deref(), body)
                .await;
            let code = b["error"].as_str().unwrap_or("");
            let want = expected(r.access, *who);
            let ok = match &want {
                Expect::Pass => !((status == 401 || status == 403) && is_auth_code(code)),
                Expect::Refused(s, c) => status == *s && code == *c,
            };
            table.push_str(&format!(
                "{:6} {:24} {:9?} → {status} {code}\n",
                r.method, r.path, who
            ));
            if !ok {
                failures.push(format!(
                    "{} {} as {who:?}: want {want:?}, got {status} {code}",
                    r.method, r.path
                ));
            }
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

fn is_auth_code(code: &str) -> bool {
    code.starts_with("token_")
        || matches!(
            code,
            "no_credentials"
                | "session_revoked"
                | "not_staff"
                | "not_admin"
                | "not_physician"
                | "not_participant"
                | "not_patient"
                | "not_your_room"
                | "csrf"
                | "account_deactivated"
        )
}

/// WebSocket actions a caller may try after hello, with the error code expected per
/// caller (`None`: accepted, or refused for a reason that is not authorization).
#[tokio::test]
async fn every_websocket_action_for_every_caller() {
    let w = world().await;
    let room = w.room.id.to_string();
    let visit = w.link["visit"].as_str().unwrap().to_owned();
    let v = |t: &str| json!({"type": t, "room": room, "visit": visit});
    // Staff-only actions on the link's visit in the matrix room.
    let staff_actions = [
        v("admit"),
        v("deny"),
        v("send_back"),
        json!({"type": "message_patient", "room": room, "visit": visit, "text": "hi"}),
        v("walk_in_accept"),
        v("walk_in_pass"),
        v("end_visit"),
    ];
    let mut failures = Vec::new();
    let mut table = String::new();
    for (who, token) in &w.tokens {
        let mut c = w.app.ws().await;
        match token {
            None => {
                // No hello: every action is refused until one arrives.
                c.send(v("admit")).await;
                let e = c.expect("error").await;
                table.push_str(&format!("{who:?} admit → {}\n", e["code"]));
                if e["code"] != "hello_required" {
                    failures.push(format!("{who:?}: {e}"));
                }
                continue;
            }
            Some(t) => {
                c.hello(t, None).await;
                // Drop what hello brought (a fresh token, the visit's state).
                c.expect_none("nothing", std::time::Duration::from_millis(200))
                    .await;
                c.backlog.clear();
            }
        }
        for a in &staff_actions {
            let code = act(&mut c, a.clone()).await;
            table.push_str(&format!("{who:?} {} → {code}\n", a["type"]));
            let want: &[&str] = match who {
                // A guest whose visit has not started is closed at hello (visit_closed).
                Who::Patient | Who::Guest => &["forbidden", "closed"],
                // Admin-only accounts have no rooms.
                Who::Admin => &["not_your_room"],
                // The physician is let through; the visit's state decides.
                _ => &[
                    "none",
                    "illegal_transition",
                    "unknown_visit",
                    "not_offered_to_you",
                    "not_in_visit",
                    "busy",
                    "visit_closed",
                ],
            };
            if !want.contains(&code.as_str()) {
                failures.push(format!(
                    "{who:?} {}: want one of {want:?}, got {code}",
                    a["type"]
                ));
            }
        }
        // Nobody may act in a room they are not bound to or assigned.
        let code = act(
            &mut c,
            json!({"type": "admit", "room": "r_elsewhere", "visit": visit}),
        )
        .await;
        table.push_str(&format!("{who:?} admit(other room) → {code}\n"));
        if !(code == "not_your_room" || (*who == Who::Guest && code == "closed")) {
            failures.push(format!("{who:?} admit in another room: {code}"));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn hello_for_every_caller() {
    let w = world().await;
    for (who, token) in &w.tokens {
        let mut c = w.app.ws().await;
        let t = token.clone().unwrap_or_else(|| "not-a-token".into());
        c.send(json!({"type": "hello", "v": 1, "token": t})).await;
        let m = c.next().await.unwrap();
        match who {
            Who::Nobody => assert_eq!(m["code"], "unauthenticated", "{m}"),
            _ => {
                assert_eq!(m["type"], "welcome", "{who:?}: {m}");
                let role = match who {
                    Who::Patient => "patient",
                    Who::Guest => "guest",
                    Who::Physician => "physician",
                    _ => "admin",
                };
                assert_eq!(m["role"], role);
            }
        }
    }
}

/// Send one action; the code of the error it brings, or `closed`.
async fn act(c: &mut crate::kit::Client, msg: Value) -> String {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    if c.ws
        .send(Message::Text(msg.to_string().into()))
        .await
        .is_err()
    {
        return "closed".into();
    }
    let wait = async {
        loop {
            match c.next().await {
                Some(m) if m["type"] == "error" => {
                    return m["code"].as_str().unwrap_or("").to_owned();
                }
                Some(_) => continue,
                None => return "closed".to_owned(),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), wait)
        .await
        .unwrap_or_else(|_| "none".into())
}
