//! Several real `examroom serve` processes against one Redis and one fresh PostgreSQL
//! database; staff, rooms and tokens are made through the library on the same database.
#![allow(dead_code)]

use examroom::config::{Secret, Settings};
use examroom::durable::{DurableStore, LinkKind, NewLink, NewRoom, NewSession, NewStaff};
use examroom::identity::token::NewToken;
use examroom::identity::{Role, TokenKeys};
use examroom::ids::{LinkId, ParticipantId, RoomId, StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind};
use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use crate::kit::Client;

const SECRET: &str = "cluster-secret-cluster-secret-cluster!";
const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private Redis for tests that stop and start it.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = free_port();
        let mut r = PrivateRedis { port, child: None };
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
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
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

pub struct Cluster {
    pub db_url: String,
    db_name: String,
    admin_url: String,
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
    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let mut c = Client::connect(&format!("ws://127.0.0.1:{}/ws", self.port)).await;
        c.hello(token, None).await;
        c
    }
    pub async fn rejoin(&self, token: &str, resume: &str) -> Client {
        let mut c = Client::connect(&format!("ws://127.0.0.1:{}/ws", self.port)).await;
        c.hello(token, Some(resume)).await;
        c
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
        let admin_url =
            std::env::var("EXAMROOM_TEST_DATABASE_URL").unwrap_or_else(|_| PG_DEFAULT.into());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL reachable (EXAMROOM_TEST_DATABASE_URL)");
        let db_name = format!("examroom_test_{}", examroom::ids::random_id());
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let db_url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db_name}"),
            None => unreachable!(),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.server.data_dir = dir.path().to_path_buf();
        settings.database.url = Secret::new(db_url.clone());
        let store = examroom::durable::open(&settings).await.unwrap();
        let mut c = Cluster {
            db_url,
            db_name,
            admin_url,
            redis_url: redis_url.to_owned(),
            prefix: format!("examroom-test:{}", examroom::ids::random_id()),
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

    pub async fn add_node(&mut self) -> usize {
        let port = free_port();
        let data = self.dir.path().join(format!("node-{port}"));
        let child = Command::new(env!("CARGO_BIN_EXE_examroom"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data)
            .env("EXAMROOM__DATABASE__URL", &self.db_url)
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
                self.nodes.push(node);
                return self.nodes.len() - 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node on port {port} never became ready");
    }

    pub async fn physician(&self, name: &str) -> StaffId {
        self.store
            .create_staff(NewStaff {
                email: format!("{}@clinic.test", name.to_lowercase().replace(' ', ".")),
                name: name.into(),
                roles: vec![Role::Physician],
                password_hash: None,
                languages: vec!["en".into()],
                gender: None,
            })
            .await
            .unwrap()
            .id
    }

    pub async fn room(&self, kind: RoomKind, physicians: &[&StaffId]) -> RoomConfig {
        self.store
            .create_room(NewRoom {
                name: format!("Room {}", &examroom::ids::random_id()[..8]),
                kind,
                physicians: physicians.iter().map(|s| (*s).clone()).collect(),
                waiting_message: "Thanks for waiting.".into(),
                max_wait_secs: 3600,
                max_participants: 4,
                chat_allowed: true,
                invites_allowed: true,
                opening_hours: None,
            })
            .await
            .unwrap()
    }

    pub async fn staff_token(&self, staff: &StaffId) -> String {
        let sid = examroom::ids::random_id();
        let now = chrono::Utc::now().timestamp();
        self.store
            .create_session(NewSession {
                id: examroom::identity::hash_secret(&sid),
                staff: staff.clone(),
                created_at: now * 1000,
                expires_at: (now + 3600) * 1000,
            })
            .await
            .unwrap();
        self.keys.issue(
            NewToken {
                sub: staff.to_string(),
                name: "staff".into(),
                roles: vec![Role::Physician],
                room: None,
                visit: None,
                patient: None,
                sid: Some(sid),
                lang: None,
                ttl_secs: 3600,
            },
            now,
        )
    }

    /// A staff account that signs in with `password`.
    pub async fn staff_with_password(&self, email: &str, password: &str) -> StaffId {
        self.store
            .create_staff(NewStaff {
                email: email.into(),
                name: "Front desk".into(),
                roles: vec![Role::Physician],
                password_hash: Some(examroom::identity::password::hash(password)),
                languages: vec!["en".into()],
                gender: None,
            })
            .await
            .unwrap()
            .id
    }

    /// A patient join link for `room`: its secret code and visit.
    pub async fn patient_link(&self, room: &RoomId, by: &StaffId) -> (String, VisitId) {
        let code = examroom::identity::links::new_code();
        let now = chrono::Utc::now().timestamp_millis();
        let link = self
            .store
            .create_link(NewLink {
                id: LinkId::new(),
                code_hash: examroom::identity::hash_secret(&code),
                kind: LinkKind::Patient,
                room: room.clone(),
                visit: VisitId::new(),
                patient_name: Some("Ana".into()),
                patient_ref: None,
                reason: None,
                lang: None,
                not_before: None,
                expires_at: now + 3_600_000,
                created_by: by.clone(),
                created_at: now,
            })
            .await
            .unwrap();
        (code, link.visit)
    }

    pub fn patient_token(&self, room: &RoomId, name: &str) -> (String, ParticipantId, VisitId) {
        let who = ParticipantId::new();
        let visit = VisitId::new();
        let t = self.keys.issue(
            NewToken {
                sub: who.to_string(),
                name: name.into(),
                roles: vec![Role::Patient],
                room: Some(room.clone()),
                visit: Some(visit.clone()),
                patient: None,
                sid: None,
                lang: None,
                ttl_secs: 900,
            },
            chrono::Utc::now().timestamp(),
        );
        (t, who, visit)
    }

    /// The visit's history once it reached `outcome` (history is written asynchronously).
    pub async fn finished_visit(&self, visit: &VisitId) -> examroom::durable::VisitRecord {
        for _ in 0..100 {
            if let Some(r) = self.store.visit(visit).await.unwrap()
                && r.outcome.is_some()
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("visit {visit} never finished in the history");
    }

    pub async fn stop(mut self) {
        self.nodes.clear();
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.db_name
        ))
        .execute(&mut admin)
        .await;
    }
}
