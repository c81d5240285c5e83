//! Test helpers: a real examroom server in-process on a random port, and a WebSocket
//! client that speaks the protocol. A test reads like the user story it checks.
#![allow(dead_code)]

pub mod cluster;
pub mod mail;
pub mod records;
pub mod rtc;
pub mod seed;
pub mod services;

use examroom::app::AppState;
use examroom::audit::NewAuditEntry;
use examroom::config::{Secret, Settings};
use examroom::durable::NewStaff;
use examroom::identity::Role;
use examroom::ids::{ParticipantId, PatientRef, RoomId, StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.server.addr = "127.0.0.1:0".parse().unwrap();
    s.server.data_dir = dir.to_path_buf();
    s.server.shutdown_grace_secs = 3;
    s.identity.token_secret = Secret::new(TOKEN_SECRET);
    s.metrics.token = Secret::new(METRICS_TOKEN);
    s
}

/// The secret test servers sign tokens with.
pub const TOKEN_SECRET: &str = "test-secret-test-secret-test-secret!!";

/// `examroom ARGS --data-dir DIR` as an operator runs it next to a test server (stopped, or
/// sharing its data directory), with the test servers' token secret.
pub fn cli(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("EXAMROOM__IDENTITY__TOKEN_SECRET", TOKEN_SECRET)
        .output()
        .unwrap()
}

/// The bearer token test servers want at `GET /metrics`.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        f(&mut settings);
        Self::spawn_in(dir, settings).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir, settings: Settings) -> TestApp {
        let listener = tokio::net::TcpListener::bind(settings.server.addr)
            .await
            .unwrap();
        let state = examroom::app::build(settings).await.expect("server builds");
        Self::serve(dir, listener, state)
    }

    /// Runs the server of `state` on `listener`, bound before the state was built.
    fn serve(
        dir: tempfile::TempDir,
        listener: tokio::net::TcpListener,
        state: examroom::app::AppState,
    ) -> TestApp {
        let addr = listener.local_addr().unwrap();
        let s = state.clone();
        let server = tokio::spawn(async move {
            examroom::app::run(listener, s).await.expect("server runs");
        });
        TestApp {
            addr,
            state,
            dir,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path)).await.unwrap()
    }

    /// Stop the server as SIGTERM would, and wait for it.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        self.state.shutdown.cancel();
        if let Some(h) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("bounded shutdown")
                .unwrap();
        }
        self.dir
    }

    pub async fn physician(&self, name: &str) -> StaffId {
        self.staff(name, vec![Role::Physician], vec!["en".into()], None)
            .await
    }

    /// A physician who speaks `languages` and gives `gender` (what the directory filters on).
    pub async fn physician_speaking(
        &self,
        name: &str,
        languages: &[&str],
        gender: &str,
    ) -> StaffId {
        let languages = languages.iter().map(|l| (*l).to_owned()).collect();
        self.staff(name, vec![Role::Physician], languages, Some(gender.into()))
            .await
    }

    pub async fn staff(
        &self,
        name: &str,
        roles: Vec<Role>,
        languages: Vec<String>,
        gender: Option<String>,
    ) -> StaffId {
        let staff = NewStaff {
            languages,
            gender,
            ..seed::new_staff(name, roles)
        };
        seed::create_staff(self.state.durable.as_ref(), staff).await
    }

    pub async fn room(&self, name: &str, kind: RoomKind, physicians: &[&StaffId]) -> RoomConfig {
        let waiting = "Thanks for waiting; the doctor will be with you shortly.";
        let room = seed::new_room(name, kind, physicians, waiting);
        seed::create_room(self.state.durable.as_ref(), room).await
    }

    /// Ada, an admin who speaks no listed language, and her signed-in token.
    pub async fn admin(&self) -> (StaffId, String) {
        let id = self
            .staff("Ada Admin", vec![Role::Admin], vec![], None)
            .await;
        let token = self.staff_token(&id, vec![Role::Admin]).await;
        (id, token)
    }

    /// Ada, both admin and physician (she may call every staff route), and her token.
    pub async fn admin_physician(&self) -> (StaffId, String) {
        let roles = vec![Role::Admin, Role::Physician];
        let id = self.staff("Ada Admin", roles.clone(), vec![], None).await;
        let token = self.staff_token(&id, roles).await;
        (id, token)
    }

    /// Physician `who` with a physician room `room` of their own.
    pub async fn physician_room(&self, who: &str, room: &str) -> (StaffId, RoomConfig) {
        let doc = self.physician(who).await;
        let room = self.room(room, RoomKind::Physician, &[&doc]).await;
        (doc, room)
    }

    /// Physician `who` with a physician room `room` of their own, and their signed-in token.
    pub async fn physician_with_room(
        &self,
        who: &str,
        room: &str,
    ) -> (StaffId, String, RoomConfig) {
        let (doc, room) = self.physician_room(who, room).await;
        let token = self.staff_token(&doc, vec![Role::Physician]).await;
        (doc, token, room)
    }

    /// A signed-in staff token (with a live server-side session).
    pub async fn staff_token(&self, staff: &StaffId, roles: Vec<Role>) -> String {
        seed::staff_token(self.state.durable.as_ref(), &self.state.keys, staff, roles).await
    }

    /// A patient token bound to a room and a new visit, as a join link would give.
    pub fn patient_token(&self, room: &RoomId, name: &str) -> (String, ParticipantId, VisitId) {
        self.patient_token_with(room, name, None, None)
    }

    pub fn patient_token_with(
        &self,
        room: &RoomId,
        name: &str,
        patient: Option<PatientRef>,
        lang: Option<&str>,
    ) -> (String, ParticipantId, VisitId) {
        seed::patient_token(&self.state.keys, room, name, patient, lang)
    }

    pub async fn ws(&self) -> Client {
        Client::connect(&format!("ws://{}/ws", self.addr)).await
    }

    /// A patient of a new visit in `room`, connected and told `waiting`.
    pub async fn waiting_patient(&self, room: &RoomId, name: &str) -> Client {
        let (t, _, _) = self.patient_token(room, name);
        let mut c = self.join(&t).await;
        c.expect("waiting").await;
        c
    }

    /// Connect and say hello; returns the client after `welcome`.
    pub async fn join(&self, token: &str) -> Client {
        Client::join(&format!("ws://{}/ws", self.addr), token, None).await
    }
}

/// A protocol client over a real WebSocket.
pub struct Client {
    pub ws: Ws,
    pub participant: String,
    pub resume_token: String,
    /// Messages received but not yet asked for.
    pub backlog: Vec<Value>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client::over(ws)
    }

    fn over(ws: Ws) -> Client {
        Client {
            ws,
            participant: String::new(),
            resume_token: String::new(),
            backlog: Vec::new(),
        }
    }

    /// Connect to `url` and say hello (resuming `resume`); returns the client after `welcome`.
    pub async fn join(url: &str, token: &str, resume: Option<&str>) -> Client {
        let mut c = Client::connect(url).await;
        c.hello(token, resume).await;
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn hello(&mut self, token: &str, resume: Option<&str>) -> Value {
        self.send(json!({"type": "hello", "v": 1, "token": token, "resume": resume}))
            .await;
        let w = self.expect("welcome").await;
        self.participant = w["participant"].as_str().unwrap().to_owned();
        self.resume_token = w["resume_token"].as_str().unwrap().to_owned();
        w
    }

    /// The next message of any type (pings answered and skipped). `None` when closed.
    pub async fn next(&mut self) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.next_fresh(WAIT).await
    }

    async fn next_fresh(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match m {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Some(v);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Wait for a message of `ty`, keeping others for later.
    pub async fn expect(&mut self, ty: &str) -> Value {
        self.expect_where(ty, |_| true).await
    }

    pub async fn expect_where(&mut self, ty: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(|v| v["type"] == ty && pred(v)) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_fresh(left).await {
                Some(v) if v["type"] == ty && pred(&v) => return v,
                Some(v) => self.backlog.push(v),
                None => panic!(
                    "connection closed or timed out waiting for `{ty}`; got {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// The next message within `wait`, without panicking: what a page's event loop sees.
    pub async fn poll(&mut self, wait: Duration) -> Polled {
        if !self.backlog.is_empty() {
            return Polled::Msg(self.backlog.remove(0));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Polled::Quiet,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Polled::Closed;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Polled::Msg(v);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Assert nothing of `ty` arrives within `wait`.
    pub async fn expect_none(&mut self, ty: &str, wait: Duration) {
        assert!(
            !self.backlog.iter().any(|v| v["type"] == ty),
            "unexpected {ty}: {:?}",
            self.backlog
        );
        let deadline = tokio::time::Instant::now() + wait;
        while let Some(v) = self
            .next_fresh(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            assert!(v["type"] != ty, "unexpected {ty}: {v}");
            self.backlog.push(v);
        }
    }

    /// Whether the server closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.backlog.push(serde_json::from_str(&t).unwrap())
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// What [`Client::poll`] saw.
#[derive(Debug)]
pub enum Polled {
    Msg(Value),
    /// Nothing within the wait.
    Quiet,
    /// The server closed the connection.
    Closed,
}

/// A response's status, `content-type` (empty when none) and body text.
pub async fn status_type_text(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, res.text().await.unwrap())
}

// ---- identity helpers (sign-in, links, raw HTTP) ----

impl TestApp {
    /// An HTTP call with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new().request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            self.url(path),
        );
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// An admin invites a staff member: the new account as `POST /api/staff` answers
    /// it (with its `invitation_url`).
    pub async fn invite_staff(&self, admin_token: &str, email: &str, name: &str) -> Value {
        let body = serde_json::json!({"email": email, "name": name, "roles": ["physician"]});
        let (s, invited) = self
            .call_json("POST", "/api/staff", Some(admin_token), Some(body))
            .await;
        assert_eq!(s, 201, "{invited}");
        invited
    }

    /// What the audit log records (its first 1000 entries, oldest first), without the
    /// chain's sequence numbers and hashes.
    pub async fn audited(&self) -> Vec<NewAuditEntry> {
        let entries = self.state.durable.audit_entries(0, 1000).await.unwrap();
        entries.into_iter().map(|e| e.entry).collect()
    }

    /// A patient's answer to the identity question (her date of birth), with her token.
    pub async fn confirm_identity(&self, patient_token: &str, born: &str) -> (u16, Value) {
        let answer = serde_json::json!({ "birth_date": born });
        self.call_json("POST", "/api/identity", Some(patient_token), Some(answer))
            .await
    }

    /// Status and JSON body (`Null` when there is none) of a call.
    pub async fn call_json(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self.call(method, path, bearer, body).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A staff account with a password (Argon2id), for signing in over HTTP.
    pub async fn staff_with_password(
        &self,
        email: &str,
        roles: Vec<Role>,
        password: &str,
    ) -> StaffId {
        examroom::identity::setup::create_staff(
            self.state.durable.as_ref(),
            email,
            email.split('@').next().unwrap(),
            roles,
            password,
        )
        .await
        .unwrap()
        .id
    }

    /// `POST /api/session` with an email and a password, whatever the answer.
    pub async fn sign_in_call(&self, email: &str, password: &str) -> reqwest::Response {
        let body = json!({"email": email, "password": password});
        self.call("POST", "/api/session", None, Some(body)).await
    }

    /// `POST /api/session`: status and JSON body, whatever the answer.
    pub async fn sign_in_json(&self, email: &str, password: &str) -> (u16, Value) {
        let body = json!({"email": email, "password": password});
        self.call_json("POST", "/api/session", None, Some(body))
            .await
    }

    /// `POST /api/session`; returns the response body (panics unless 200).
    pub async fn sign_in(&self, email: &str, password: &str) -> Value {
        let (s, body) = self.sign_in_json(email, password).await;
        assert_eq!(s, 200, "sign-in failed: {body}");
        body
    }

    /// `POST /api/links` as `bearer`; returns the body (panics unless 201).
    pub async fn mint_link(&self, bearer: &str, body: Value) -> Value {
        let (s, b) = self
            .call_json("POST", "/api/links", Some(bearer), Some(body))
            .await;
        assert_eq!(s, 201, "minting failed: {b}");
        b
    }

    /// `POST /api/links/guest`: a guest's link into `visit` of `room`, as `bearer`.
    pub async fn mint_guest_link(&self, bearer: &str, room: &RoomId, visit: &str) -> (u16, Value) {
        let body = json!({"room": room, "visit": visit});
        self.call_json("POST", "/api/links/guest", Some(bearer), Some(body))
            .await
    }

    /// `POST /api/join/{code}` from the browser `device`.
    pub async fn redeem(&self, code: &str, device: &str) -> (u16, Value) {
        self.call_json(
            "POST",
            &format!("/api/join/{code}"),
            None,
            Some(json!({ "device": device })),
        )
        .await
    }
}

// --- Added for the admin API tests -------------------------------------------------------

impl TestApp {
    /// A token for a patient (or guest, with `Role::Guest`) bound to an existing visit.
    pub fn participant_token_for(
        &self,
        room: &RoomId,
        visit: &VisitId,
        name: &str,
        role: Role,
    ) -> String {
        let who = ParticipantId::new();
        seed::visit_token(
            &self.state.keys,
            &who,
            name,
            role,
            (room, visit),
            (None, None),
        )
    }

    /// An HTTP request to the API with a bearer token (none if `token` is empty).
    pub fn api(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        let r = reqwest::Client::new().request(method, self.url(path));
        if token.is_empty() {
            r
        } else {
            r.bearer_auth(token)
        }
    }

    /// The body of a GET to the API with a bearer token, as text (CSV exports).
    pub async fn get_text(&self, path: &str, token: &str) -> String {
        let res = self.api(reqwest::Method::GET, path, token).send().await;
        res.unwrap().text().await.unwrap()
    }

    /// Drive one real visit over WebSockets: the patient waits, `doc` admits, offer and
    /// answer put it in a call, `doc` ends it. Returns once the history shows it ended.
    pub async fn visit_to_the_end(
        &self,
        doc: &mut Client,
        room: &RoomId,
        patient: &str,
    ) -> VisitId {
        let (t, _, visit) = self.patient_token(room, patient);
        let mut p = self.join(&t).await;
        p.expect("waiting").await;
        call_and_end(doc, &mut p, room, &visit).await;
        doc.expect_where("visit_ended", |m| m["visit"] == json!(visit))
            .await;
        self.wait_for_outcome(&visit).await;
        visit
    }

    /// History is written behind the live state: wait until the visit's outcome is stored.
    pub async fn wait_for_outcome(&self, visit: &VisitId) {
        seed::finished_visit(self.state.durable.as_ref(), visit).await;
    }
}

// --- Appointments -------------------------------------------------------------------------

/// Every day of the week, as a schedule's `weekly` names them.
pub const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A schedule's `weekly` open around the clock on `days`.
pub fn open_all_day(days: &[&str]) -> Value {
    days.iter()
        .map(|d| ((*d).to_owned(), json!(["00:00-23:59"])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl TestApp {
    /// The physician of `token` takes 30-minute appointments in `room`, every day around
    /// the clock in `zone`.
    pub async fn bookable_all_day(&self, token: &str, room: &RoomId, zone: &str) {
        let schedule = json!({"room": room, "zone": zone, "weekly": open_all_day(&EVERY_DAY),
            "visit_mins": 30});
        let (s, body) = self
            .call_json("PUT", "/api/my/schedule", Some(token), Some(schedule))
            .await;
        assert_eq!(s, 200, "{body}");
    }
}

/// `doc` admits the waiting patient `p` to `visit`: both hear `admitted`. Returns the
/// physician's participant id as the patient sees it.
pub async fn admit(doc: &mut Client, p: &mut Client, room: &RoomId, visit: &VisitId) -> String {
    doc.send(json!({"type": "admit", "room": room, "visit": visit}))
        .await;
    let admitted = p.expect("admitted").await;
    let doc_id = admitted["peers"][0]["participant"]
        .as_str()
        .unwrap()
        .to_owned();
    doc.expect_where("admitted", |m| m["visit"] == json!(visit))
        .await;
    doc_id
}

/// `doc` admits the waiting `p`, an offer and an answer put them in a call, and `doc` ends
/// the visit; returns once the patient is told.
pub async fn call_and_end(doc: &mut Client, p: &mut Client, room: &RoomId, visit: &VisitId) {
    let doc_id = admit(doc, p, room, visit).await;
    doc.send(json!({"type": "offer", "to": p.participant, "sdp": "v=0 offer"}))
        .await;
    p.expect("offer").await;
    p.send(json!({"type": "answer", "to": doc_id, "sdp": "v=0 answer"}))
        .await;
    doc.expect("answer").await;
    doc.send(json!({"type": "end_visit", "room": room, "visit": visit}))
        .await;
    p.expect("visit_ended").await;
}

// --- Socket limits and close codes (issue 17: sockets) -----------------------------------

impl Client {
    /// Open a WebSocket from a chosen local address (127.0.0.2 … on Linux loopback), as a
    /// client at another address would. `Err` carries the refusal's HTTP status and body.
    pub async fn connect_from(
        url: &str,
        from: std::net::IpAddr,
    ) -> Result<Client, (u16, serde_json::Value)> {
        let host = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        let tcp = socket.connect(host.parse().unwrap()).await.unwrap();
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
        match tokio_tungstenite::client_async(url, stream).await {
            Ok((ws, _)) => Ok(Client::over(ws)),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                let status = r.status().as_u16();
                let body = r
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, body))
            }
            Err(e) => panic!("websocket handshake failed: {e}"),
        }
    }

    /// Read until the server's close frame: its code and reason. Messages before it are
    /// kept in the backlog. Panics if the connection ends without one.
    pub async fn close_frame(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("no close frame within {WAIT:?}; got {:?}", self.backlog),
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return (u16::from(f.code), f.reason.to_string());
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.backlog.push(serde_json::from_str(&t).unwrap())
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!(
                    "connection ended without a close frame: {other:?}; got {:?}",
                    self.backlog
                ),
            }
        }
    }
}

impl TestApp {
    /// `GET /metrics` with an optional bearer token: status and body text.
    pub async fn metrics(&self, token: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new().get(self.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// `jwt` with its roles claim widened to admin and physician after signing: the
/// signature no longer matches.
pub fn with_widened_roles(jwt: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["admin", "physician"]);
    let payload = b64.encode(payload.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Every `.rs` file under `dir`, for the tests that read the source (layers, error codes,
/// the authorisation matrix).
pub fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

// --- Appointments (issue 21) --------------------------------------------------------------

impl TestApp {
    /// A test server whose notices to patients go to `courier` (`app::build_with_courier`).
    pub async fn spawn_with_courier(
        courier: std::sync::Arc<dyn examroom::notify::Courier>,
        f: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        f(&mut settings);
        let listener = tokio::net::TcpListener::bind(settings.server.addr)
            .await
            .unwrap();
        let state = examroom::app::build_with_courier(settings, Some(courier))
            .await
            .expect("server builds");
        Self::serve(dir, listener, state)
    }
}
