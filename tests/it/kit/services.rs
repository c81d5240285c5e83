//! The shared Redis and PostgreSQL the tests run against. Many tests share one process and
//! one server of each, so every test takes its own Redis key prefix and its own database.

use examroom::config::{LiveBackend, Secret, Settings};
use sqlx::Connection;

/// The URL of a role that may `CREATE DATABASE` (`EXAMROOM_TEST_DATABASE_URL`).
pub fn postgres_url() -> String {
    std::env::var("EXAMROOM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The shared Redis (`EXAMROOM_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("EXAMROOM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("examroom-test:{}", examroom::ids::random_id())
}

/// Live state in the shared Redis under `prefix`.
pub fn on_redis(s: &mut Settings, prefix: &str) {
    s.live.backend = LiveBackend::Redis;
    s.redis.url = Secret::new(redis_url());
    s.redis.key_prefix = prefix.to_owned();
}

/// A fresh PostgreSQL database of this test's own; [`TestDatabase::drop`] removes it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = postgres_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL is unreachable ({e}). These tests need a server: set \
                 EXAMROOM_TEST_DATABASE_URL to a URL of a role that may CREATE DATABASE \
                 (default {admin_url})."
            ),
        };
        let name = format!("examroom_test_{}", examroom::ids::random_id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE for the test");
        TestDatabase {
            url: url_with_db(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub async fn drop(self) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("PostgreSQL reachable to drop the test database");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    }
}

/// Runs `check` with settings whose durable store is a fresh PostgreSQL database, as its
/// own task so that a failing assertion still lets the database be dropped; then fails as
/// `check` did.
pub async fn on_fresh_postgres<F>(check: impl FnOnce(Settings) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let db = TestDatabase::create().await;
    let mut settings = Settings::default();
    settings.database.url = Secret::new(db.url.clone());
    let outcome = tokio::spawn(check(settings)).await;
    db.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Replace the database name (the path) of a postgres URL.
pub fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..host_end])
}

/// A loopback port free at the time of asking (for processes that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `url` answers a GET with 2xx now (a server that is starting up).
pub async fn answers(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(url).send().await, Ok(r) if r.status().is_success())
}
