//! Several real `examroom serve` processes against one Redis and one fresh PostgreSQL
//! database; staff, rooms and tokens are made through the library on the same database.
#![allow(dead_code)]

use super::seed;
use super::services::free_port;
use super::services::{TestDatabase, redis_prefix};
use examroom::config::{Secret, Settings};
use examroom::durable::{DurableStore, NewStaff};
use examroom::identity::{Role, TokenKeys};
use examroom::ids::{ParticipantId, RoomId, StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use crate::kit::Client;

const SECRET: &str = "cluster-secret-cluster-secret-cluster!";

/// A private Redis for tests that stop and start it. `stop` is SIGKILL: a Redis that
/// crashed, or was restarted by its operator without a goodbye.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    /// Where a persistent Redis keeps its append-only file; `None`: it comes back empty.
    data: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// A Redis that keeps nothing: it comes back empty after `stop`.
    pub fn start() -> PrivateRedis {
        Self::start_in(None)
    }

    /// A Redis that writes every change to its append-only file before answering, so it
    /// comes back with its data (keys whose expiry passed while it was down are gone).
    pub fn start_persistent() -> PrivateRedis {
        Self::start_in(Some(tempfile::tempdir().unwrap()))
    }

    fn start_in(data: Option<tempfile::TempDir>) -> PrivateRedis {
        let port = free_port();
        let mut r = PrivateRedis {
            port,
            child: None,
            data,
        };
        r.restart();
        r
    }
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--save", ""]);
        match &self.data {
            Some(dir) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir.path()),
            None => cmd.args(["--appendonly", "no"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server installed");
        self.child = Some(child);
        for _ in 0..250 {
            let pong = std::net::TcpStream::connect(("127.0.0.1", self.port)).and_then(|mut s| {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                s.write_all(b"PING\r\n")?;
                let mut buf = [0u8; 7];
                s.read_exact(&mut buf)?;
                Ok(buf == *b"+PONG\r\n")
            });
            // Loading its file, Redis answers -LOADING: not back yet.
            if pong.unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("private redis did not start");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP gate between the nodes and PostgreSQL. `cut` resets every connection through
/// it and refuses new ones, which is what the nodes see when the database process dies
/// (or its host drops off the network); `open` lets them through again, like the
/// database coming back. The shared PostgreSQL itself keeps serving the other tests.
pub struct DbGate {
    pub port: u16,
    target: String,
    /// Cancelling it closes the listener and every connection through the gate.
    open: Option<tokio_util::sync::CancellationToken>,
}

impl DbGate {
    /// A gate on a free port in front of `target` (`host:port`), open.
    pub async fn start(target: &str) -> DbGate {
        let mut g = DbGate {
            port: free_port(),
            target: target.to_owned(),
            open: None,
        };
        g.open().await;
        g
    }

    pub async fn open(&mut self) {
        if self.open.is_some() {
            return;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the gate's port is free again");
        let stop = tokio_util::sync::CancellationToken::new();
        self.open = Some(stop.clone());
        let target = self.target.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let (target, stop) = (target.clone(), stop.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {
                            // Reset, not a polite close: the database died. (A zero linger
                            // resets at once on drop; it never blocks the thread.)
                            #[allow(deprecated)]
                            let _ = client.set_linger(Some(Duration::ZERO));
                        }
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }

    /// The database is gone: every connection reset, new ones refused.
    pub fn cut(&mut self) {
        if let Some(stop) = self.open.take() {
            stop.cancel();
        }
    }

    /// `url` (a postgres URL) with its host and port replaced by the gate's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        format!(
            "{scheme}://{}127.0.0.1:{}/{path}",
            user.unwrap_or_default(),
            self.port
        )
    }
}

impl Drop for DbGate {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `host:port` of a postgres URL.
fn db_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

pub struct Cluster {
    pub db: TestDatabase,
    /// The database URL the nodes use (the test's own `store` uses `db.url`).
    node_db_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub store: Arc<dyn DurableStore>,
    pub keys: TokenKeys,
    pub nodes: Vec<Node>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

pub struct Node {
    pub port: u16,
    child: Child,
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
    pub async fn ready_status(&self) -> u16 {
        match reqwest::get(self.url("/readyz")).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
    /// Whether `/readyz` answers `status` within `tries` × 100 ms.
    pub async fn ready_status_within(&self, status: u16, tries: usize) -> bool {
        for _ in 0..tries {
            if self.ready_status().await == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
    /// SIGTERM, and wait (at most `within`) for the process to exit; whether it did.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        self.signal("TERM");
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGSTOP: the process stalls (a long GC-like pause, a frozen VM) and keeps its
    /// sockets open; `resume` sends SIGCONT.
    pub fn stall(&self) {
        self.signal("STOP");
    }
    pub fn resume(&self) {
        self.signal("CONT");
    }
    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "SIG{name} not delivered");
    }
    /// POST a JSON body; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("node answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
    pub async fn join(&self, token: &str) -> Client {
        Client::join(&format!("ws://127.0.0.1:{}/ws", self.port), token, None).await
    }
    pub async fn rejoin(&self, token: &str, resume: &str) -> Client {
        Client::join(
            &format!("ws://127.0.0.1:{}/ws", self.port),
            token,
            Some(resume),
        )
        .await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    pub async fn start(nodes: usize, redis_url: &str) -> Cluster {
        Self::start_with(nodes, redis_url, &[]).await
    }

    /// With extra `EXAMROOM__…` settings for every node.
    pub async fn start_with(nodes: usize, redis_url: &str, env: &[(&str, &str)]) -> Cluster {
        let db = TestDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.server.data_dir = dir.path().to_path_buf();
        settings.database.url = Secret::new(db.url.clone());
        let store = examroom::durable::open(&settings).await.unwrap();
        let mut c = Cluster {
            node_db_url: db.url.clone(),
            db,
            redis_url: redis_url.to_owned(),
            prefix: redis_prefix(),
            store,
            keys: TokenKeys::new(&Secret::new(SECRET)),
            nodes: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        };
        for _ in 0..nodes {
            c.add_node().await;
        }
        c
    }

    /// Nodes that reach PostgreSQL through a [`DbGate`], so a test can take the database
    /// away from them and give it back.
    pub async fn start_gated(
        nodes: usize,
        redis_url: &str,
        env: &[(&str, &str)],
    ) -> (Cluster, DbGate) {
        let mut c = Self::start_with(0, redis_url, env).await;
        let gate = DbGate::start(&db_address(&c.db.url)).await;
        c.node_db_url = gate.url_for(&c.db.url);
        for _ in 0..nodes {
            c.add_node().await;
        }
        (c, gate)
    }

    pub async fn add_node(&mut self) -> usize {
        let node = self.spawn_node(free_port()).await;
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Node `i` stops gracefully (SIGTERM, its drain) and a new process starts on the same
    /// port, as a rolling restart behind a balancer does; whether the old one exited.
    pub async fn restart_node(&mut self, i: usize, within: Duration) -> bool {
        let exited = self.nodes[i].terminate(within).await;
        self.respawn(i).await;
        exited
    }

    /// Node `i` (killed if it still runs) starts again: a new process on the same port and
    /// data directory.
    pub async fn respawn(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i] = self.spawn_node(self.nodes[i].port).await;
    }

    async fn spawn_node(&self, port: u16) -> Node {
        let data = self.dir.path().join(format!("node-{port}"));
        let child = Command::new(env!("CARGO_BIN_EXE_examroom"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data)
            .env("EXAMROOM__DATABASE__URL", &self.node_db_url)
            .env("EXAMROOM__LIVE__BACKEND", "redis")
            .env("EXAMROOM__LIVE__LEASE_MS", "1500")
            .env("EXAMROOM__REDIS__URL", &self.redis_url)
            .env("EXAMROOM__REDIS__TIMEOUT_MS", "500")
            .env("EXAMROOM__REDIS__KEY_PREFIX", &self.prefix)
            .env("EXAMROOM__IDENTITY__TOKEN_SECRET", SECRET)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("examroom binary");
        let node = Node { port, child };
        for _ in 0..300 {
            if node.ready_status().await == 200 {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node on port {port} never became ready");
    }

    pub async fn physician(&self, name: &str) -> StaffId {
        seed::create_staff(
            self.store.as_ref(),
            seed::new_staff(name, vec![Role::Physician]),
        )
        .await
    }

    pub async fn room(&self, kind: RoomKind, physicians: &[&StaffId]) -> RoomConfig {
        let name = format!("Room {}", &examroom::ids::random_id()[..8]);
        let room = seed::new_room(&name, kind, physicians, "Thanks for waiting.");
        seed::create_room(self.store.as_ref(), room).await
    }

    pub async fn staff_token(&self, staff: &StaffId) -> String {
        seed::staff_token(
            self.store.as_ref(),
            &self.keys,
            staff,
            vec![Role::Physician],
        )
        .await
    }

    /// A staff account that signs in with `password`.
    pub async fn staff_with_password(&self, email: &str, password: &str) -> StaffId {
        let staff = NewStaff {
            email: email.into(),
            password_hash: Some(examroom::identity::password::hash(password)),
            ..seed::new_staff("Front desk", vec![Role::Physician])
        };
        seed::create_staff(self.store.as_ref(), staff).await
    }

    /// A patient join link for `room`: its secret code and visit.
    pub async fn patient_link(&self, room: &RoomId, by: &StaffId) -> (String, VisitId) {
        let code = examroom::identity::links::new_code();
        let now = chrono::Utc::now().timestamp_millis();
        let link = seed::new_patient_link(room, by, &code, "Ana", now);
        let link = self.store.create_link(link).await.unwrap();
        (code, link.new.visit)
    }

    pub fn patient_token(&self, room: &RoomId, name: &str) -> (String, ParticipantId, VisitId) {
        seed::patient_token(&self.keys, room, name, None, None)
    }

    /// The visit's history once it reached `outcome` (history is written asynchronously).
    pub async fn finished_visit(&self, visit: &VisitId) -> examroom::durable::VisitRecord {
        seed::finished_visit(self.store.as_ref(), visit).await
    }

    pub async fn stop(mut self) {
        self.nodes.clear();
        self.db.drop().await;
    }
}
