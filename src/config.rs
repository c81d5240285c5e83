//! The one typed settings struct.
//!
//! Layers, later wins: built-in defaults → `config/examroom.toml` (or `--config FILE`)
//! → environment variables `EXAMROOM__SECTION__KEY` → command-line flags.
//! Unknown keys and invalid values are refused at start with a message naming the key.
//! Secrets are [`Secret`]s: they print as `[redacted]` in every `Debug` and log line.
//!
//! `config/examroom.toml` documents every key, its default and its unit; a test checks
//! that every key of [`Settings`] appears there.

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A value that must never be logged (signing keys, shared secrets, passwords).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[unset]"
        } else {
            "[redacted]"
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub signalling: SignallingSettings,
    pub visit: VisitSettings,
    pub identity: IdentitySettings,
    pub live: LiveSettings,
    pub redis: RedisSettings,
    pub database: DatabaseSettings,
    pub ice: IceSettings,
    pub records: RecordsSettings,
    pub media: MediaSettings,
    pub metrics: MetricsSettings,
    pub links: LinksSettings,
    pub clinic: ClinicSettings,
    pub appointments: AppointmentsSettings,
    pub directory: DirectorySettings,
    pub mail: MailSettings,
    pub text: TextSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// Folder for durable data (SQLite database, generated secrets, record store). Default `./data`.
    pub data_dir: PathBuf,
    /// Public base URL used in join links and sign-in hints, e.g. `https://visits.clinic.example`.
    /// Empty: derived from `addr`.
    pub public_url: String,
    /// Origins (`scheme://host[:port]`) whose pages may open the WebSocket, besides the
    /// page's own host (the request's `Host`) and `public_url`. Default none.
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain; with `tls_key`, serve HTTPS directly (reloaded when the files change).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For`/`-Proto` headers are believed. Default none.
    pub trusted_proxies: Vec<IpAddr>,
    /// Longest a graceful shutdown may take, seconds. Default 10.
    pub shutdown_grace_secs: u64,
    /// Largest HTTP request body, bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's headers (a new connection's first request
    /// or an idle keep-alive connection's next one); then the connection is closed. Default 10.
    pub header_read_timeout_secs: u64,
    /// Seconds a request with a body (POST, PUT, PATCH, DELETE) has to be read and
    /// answered; then it gets `408 request_timeout` and the connection is closed. Default 30.
    pub request_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".parse().expect("valid default"),
            data_dir: PathBuf::from("data"),
            public_url: String::new(),
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            shutdown_grace_secs: 10,
            max_body_bytes: 1 << 20,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `human` or `json`. Default `human`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,examroom=debug`. Default `info`. `RUST_LOG` overrides.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignallingSettings {
    /// Largest WebSocket message accepted, bytes. Default 65536; a message of this size or more is refused.
    pub max_message_bytes: usize,
    /// Sustained messages per second one connection may send. Default 50.
    pub rate_per_sec: u32,
    /// Burst of messages above the sustained rate. Default 200.
    pub rate_burst: u32,
    /// Messages queued to one client before it counts as too slow and is dropped. Default 256.
    pub outbox_capacity: usize,
    /// Server ping interval, seconds. Default 10.
    pub heartbeat_interval_secs: u64,
    /// A peer silent for this long is dead, seconds. Default 30.
    pub heartbeat_timeout_secs: u64,
    /// Seconds a new connection has to send `hello`. Default 5.
    pub hello_timeout_secs: u64,
    /// Most WebSocket connections past `hello` one node holds (then `/readyz` says full).
    /// Default 20000; lowered at start if the process may not open that many files.
    pub max_connections: usize,
    /// Percent of `max_connections` that patients in the waiting room may not take: kept
    /// for staff and guests (admitted visits), so a full waiting room cannot lock the
    /// physicians out. Default 10.
    pub reserved_percent: usize,
    /// Most connections that have not said `hello` yet, per node. They are counted apart
    /// from `max_connections`, so idle sockets never take an authenticated one's place.
    /// Default 1000.
    pub max_unauthenticated: usize,
    /// Most connections that have not said `hello` yet from one client address (the
    /// peer, or the `X-Forwarded-For` entry when the peer is a trusted proxy). Default 10.
    pub max_unauthenticated_per_ip: usize,
    /// Most bytes one read takes from a WebSocket, 1024 to 8192. Default 8192. The read
    /// lands on the stack: a connection keeps no buffer between messages.
    pub read_buffer_bytes: usize,
}

impl SignallingSettings {
    /// The most `read_buffer_bytes` may be: a read lands in a buffer this large on the stack.
    pub const MAX_READ_BUFFER_BYTES: usize = 8 * 1024;
}

impl Default for SignallingSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 200,
            outbox_capacity: 256,
            heartbeat_interval_secs: 10,
            heartbeat_timeout_secs: 30,
            hello_timeout_secs: 5,
            max_connections: 20_000,
            reserved_percent: 10,
            max_unauthenticated: 1000,
            max_unauthenticated_per_ip: 10,
            read_buffer_bytes: 8192,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitSettings {
    /// How long a disconnected participant keeps their place, seconds. Default 120.
    pub reconnect_grace_secs: u64,
    /// How long a walk-in physician has to accept an offered patient, seconds. Default 30.
    pub walk_in_offer_secs: u64,
    /// Default longest wait before a patient is marked `no_show`, seconds (rooms may override). Default 3600.
    pub max_wait_secs: u64,
    /// Messages kept for a disconnected participant and replayed on resume. Default 64.
    pub replay_buffer: usize,
    /// Most participants in one visit (mesh). Default 4.
    pub max_participants: usize,
}

impl Default for VisitSettings {
    fn default() -> Self {
        Self {
            reconnect_grace_secs: 120,
            walk_in_offer_secs: 30,
            max_wait_secs: 3600,
            replay_buffer: 64,
            max_participants: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// HMAC key for the tokens examroom issues (≥ 32 bytes). Empty: generated on first start
    /// and kept in `<data_dir>/secrets.toml`.
    pub token_secret: Secret,
    /// Lifetime of a patient token, seconds (refreshed over the open WebSocket). Default 900.
    pub patient_token_secs: u64,
    /// Lifetime of a staff session, seconds. Default 43200 (12 h).
    pub staff_session_secs: u64,
    /// Lifetime of a join link when the minting call gives none, seconds. Default 604800 (7 days).
    pub join_link_secs: u64,
    /// External identity provider: issuer (`iss`) of its JWTs. Empty: local accounts only.
    pub oidc_issuer: String,
    /// External identity provider: expected audience (`aud`).
    pub oidc_audience: String,
    /// External identity provider: JWKS URL.
    pub oidc_jwks_url: String,
    /// External identity provider: claim that lists the roles (`physician`, `admin`). Default `roles`.
    pub oidc_role_claim: String,
    /// External identity provider: link a provider account to an existing staff account
    /// with the same email, the first time it signs in — only when the token says
    /// `email_verified: true`. Off: provider accounts are only ever matched by their own
    /// (`iss`, `sub`), and a token naming an existing local account's email is refused.
    /// Default `false`.
    pub oidc_link_by_verified_email: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            token_secret: Secret::default(),
            patient_token_secs: 900,
            staff_session_secs: 12 * 3600,
            join_link_secs: 7 * 24 * 3600,
            oidc_issuer: String::new(),
            oidc_audience: String::new(),
            oidc_jwks_url: String::new(),
            oidc_role_claim: "roles".into(),
            oidc_link_by_verified_email: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LiveBackend {
    /// In-process: one node.
    #[default]
    Memory,
    /// Redis: several nodes share presence, queues and the signalling bus.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveSettings {
    /// `memory` (one node) or `redis` (several nodes). Default `memory`.
    pub backend: LiveBackend,
    /// Redis backend: how long a node's claim on a room lasts without renewal,
    /// milliseconds. A crashed node's rooms move to another node after at most this
    /// long. Renewed every third of it. Default 2500 (docs/deploy.md, "What survives
    /// what": a killed owner's rooms served again in ≈ 2.5 s; a node stalled past it
    /// loses its rooms and its participants reconnect). Keep `redis.timeout_ms` under a
    /// third of it, or one slow renewal can let the lease lapse.
    pub lease_ms: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            backend: LiveBackend::Memory,
            lease_ms: 2500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Redis URL, used when `live.backend = "redis"`. Default `redis://127.0.0.1:6379`.
    pub url: Secret,
    /// Timeout of one Redis command, milliseconds. Default 1000: under a third of
    /// `live.lease_ms`, so a lease survives one renewal that timed out.
    pub timeout_ms: u64,
    /// Prefix of every Redis key and channel examroom uses, so several deployments
    /// (or tests) can share one Redis. Default `examroom`.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("redis://127.0.0.1:6379"),
            timeout_ms: 1000,
            key_prefix: "examroom".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Database URL. Empty (default): SQLite at `<data_dir>/examroom.db`.
    /// `postgres://…` for PostgreSQL (several nodes).
    pub url: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IceSettings {
    /// STUN URLs given to every participant, e.g. `stun:stun.clinic.example:3478`. Default none.
    pub stun_urls: Vec<String>,
    /// TURN URLs (`turn:` / `turns:`, `?transport=udp|tcp`). Default none: STUN only.
    pub turn_urls: Vec<String>,
    /// Shared secret with the TURN server (coturn `static-auth-secret`).
    pub turn_secret: Secret,
    /// Lifetime of a minted TURN credential, seconds. Default 3600.
    pub turn_credential_secs: u64,
}

impl Default for IceSettings {
    fn default() -> Self {
        Self {
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: Secret::default(),
            turn_credential_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecordsBackend {
    /// The store in `<data_dir>/records` (`examroom records import`), held in memory.
    #[default]
    Embedded,
    /// The clinic's FHIR R4 server with SMART Backend Services.
    Fhir,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsSettings {
    /// `embedded` or `fhir`. Default `embedded`.
    pub source: RecordsBackend,
    /// Minutes after a visit ends that its physician may still open the record. Default 30.
    pub after_visit_minutes: u64,
    /// FHIR R4 base URL, e.g. `https://ehr.example/fhir`.
    pub fhir_base_url: String,
    /// SMART Backend Services token endpoint.
    pub fhir_token_url: String,
    /// Client id registered with the EHR.
    pub fhir_client_id: String,
    /// `RS384` or `ES384`. Default `ES384`.
    pub fhir_signing_alg: String,
    /// Timeout of one FHIR request, milliseconds. Default 5000.
    pub fhir_timeout_ms: u64,
    /// How often the embedded source looks for a store file replaced by `records import`,
    /// seconds; 0: only at start (restart after an import). Default 5.
    pub reload_secs: u64,
    /// Synthetic demo patients in memory, next to the store. Only `serve --demo` sets it:
    /// not a config key, so a clinic's settings cannot turn it on by accident.
    #[serde(skip)]
    pub demo: bool,
    /// Resources asked for per page of a FHIR search (`_count`). Default 200.
    pub fhir_page_size: u32,
    /// Pages followed per FHIR search at most. Default 10.
    pub fhir_max_pages: u32,
    /// Largest FHIR response body accepted, bytes; larger fails its section. Default 8 MiB.
    pub fhir_max_response_bytes: usize,
    /// Resources read per section at most; beyond it the section says it is partial. Default 2000.
    pub max_resources_per_section: usize,
    /// Seconds a fetched panel is served from the cache. Default 300.
    pub cache_ttl_secs: u64,
    /// Panels kept in the cache at most (the oldest go first). Default 500.
    pub cache_max_panels: usize,
    /// Space-separated SMART scopes of the token that writes visit notes and referrals
    /// (`source = "fhir"`). Default SMART v1 `system/Encounter.write
    /// system/DocumentReference.write system/ServiceRequest.write system/Encounter.read
    /// system/DocumentReference.read system/ServiceRequest.read` (the reads find what an
    /// earlier attempt wrote); SMART v2: `system/Encounter.crs system/DocumentReference.crs
    /// system/ServiceRequest.crus` (an answered referral updates its ServiceRequest).
    pub fhir_write_scopes: String,
    /// Seconds before a failed write of a visit note is tried again, doubling each failure;
    /// also how often each node looks for notes to write. Default 10.
    pub note_retry_secs: u64,
    /// Longest wait between attempts to write a visit note, seconds. Default 900.
    pub note_retry_max_secs: u64,
    /// Seconds a node holds a record write it claimed (a visit note or a referral) before
    /// another node may take it over: longer than the slowest write (a token and a few
    /// requests, each within `fhir_timeout_ms`), short enough that a node that died
    /// mid-write delays it little. At least 10. Default 120.
    pub write_lease_secs: u64,
    /// Attempts after which a record write (a visit note or a referral) that keeps failing
    /// is given up: marked failed, no more attempts, listed for admins. At least 1.
    /// Default 100 (about a day at the longest wait of the defaults).
    pub write_max_attempts: u32,
    /// Hours after which a record write still failing is given up the same way, counted
    /// from when it was saved (a referral: made or answered). At least 1. Default 72.
    pub write_max_age_hours: u64,
}

/// `records.fhir_write_scopes` unless set (SMART v1).
pub const DEFAULT_FHIR_WRITE_SCOPES: &str = "system/Encounter.write system/DocumentReference.write \
system/ServiceRequest.write system/Encounter.read system/DocumentReference.read \
system/ServiceRequest.read";

impl Default for RecordsSettings {
    fn default() -> Self {
        Self {
            source: RecordsBackend::Embedded,
            after_visit_minutes: 30,
            fhir_base_url: String::new(),
            fhir_token_url: String::new(),
            fhir_client_id: String::new(),
            fhir_signing_alg: "ES384".into(),
            fhir_timeout_ms: 5000,
            reload_secs: 5,
            demo: false,
            fhir_page_size: 200,
            fhir_max_pages: 10,
            fhir_max_response_bytes: 8 << 20,
            max_resources_per_section: 2000,
            cache_ttl_secs: 300,
            cache_max_panels: 500,
            fhir_write_scopes: DEFAULT_FHIR_WRITE_SCOPES.into(),
            note_retry_secs: 10,
            note_retry_max_secs: 900,
            write_lease_secs: 120,
            write_max_attempts: 100,
            write_max_age_hours: 72,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Most connection checks running at once. Default 8.
    pub max_concurrent_checks: usize,
    /// Longest a connection check may run, seconds. Default 30.
    pub check_max_secs: u64,
    /// First UDP port for server-side peers: running checks use `udp_port ..
    /// udp_port + max_concurrent_checks - 1` (webrtc 0.21 has no UDP mux yet).
    /// 0 (default): any free port.
    pub udp_port: u16,
    /// Address the server-side peer binds and advertises. Default `127.0.0.1`.
    pub udp_ip: IpAddr,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            max_concurrent_checks: 8,
            check_max_secs: 30,
            udp_port: 0,
            udp_ip: IpAddr::from([127, 0, 0, 1]),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Bearer token Prometheus sends to scrape `GET /metrics` (at least 16 bytes).
    /// Empty (default): `/metrics` answers 401 to everyone.
    pub token: Secret,
}

/// What a joining patient confirms before the physician's record panel opens.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentityFactor {
    /// The patient types their date of birth; it must equal the record's `Patient.birthDate`.
    #[default]
    BirthDate,
    /// UNSAFE: the chart opens for whoever holds the link (any physician can open any
    /// chart by minting a link and opening it themself). Only for closed test setups.
    None,
}

impl IdentityFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityFactor::BirthDate => "birth_date",
            IdentityFactor::None => "none",
        }
    }
}

/// Who may name a patient record on a join link, and how the patient proves it is them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksSettings {
    /// Whether a physician's join link may name a patient record (`patient_ref`). Enable
    /// only when physicians create links from the EHR's launch context (the reference
    /// then comes from the EHR, not typed by hand). Default false: only admins may.
    pub physicians_may_name_patient: bool,
    /// What the patient confirms before the record panel opens: `birth_date` (default)
    /// or `none` (unsafe: see docs/security.md).
    pub identity_factor: IdentityFactor,
    /// Wrong answers per link before it is locked for identity (the chart then opens
    /// only by emergency access). Default 5.
    pub identity_attempts: u32,
}

impl Default for LinksSettings {
    fn default() -> Self {
        Self {
            physicians_may_name_patient: false,
            identity_factor: IdentityFactor::BirthDate,
            identity_attempts: 5,
        }
    }
}

/// Who runs this server: named on the pages that cannot go on (a bad, expired or revoked
/// join link; a set-up link that cannot be used), so a patient knows whom to ask.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClinicSettings {
    /// The clinic's name as patients know it, e.g. "Riverside Family Practice"; at most
    /// 200 characters. Default empty: the pages say "the clinic".
    pub name: String,
    /// How to reach the clinic, e.g. "+1 555 0100, Mon–Fri 8–17"; at most 500 characters,
    /// shown as plain text. Default empty: the pages ask the patient to contact whoever sent
    /// the link.
    pub contact: String,
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS before anything else is sent; refused when
    /// the server does not offer it. The submission port, 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS), port 465.
    Implicit,
    /// No encryption: only for a relay on this machine (loopback), port 25.
    None,
}

/// Appointment e-mails (issue 21) through an SMTP relay. Off while `host` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// SMTP relay host name, e.g. `smtp.clinic.example`. Default empty: no e-mail (the
    /// admin page says reminders by e-mail are off).
    pub host: String,
    /// Relay port. Default 0: 587 for `starttls`, 465 for `implicit`, 25 for `none`.
    pub port: u16,
    /// `starttls`, `implicit` or `none` (loopback relays only). Default `starttls`.
    pub tls: MailTls,
    /// SMTP AUTH user name. Default empty: no AUTH (a relay that trusts this host).
    pub username: String,
    /// SMTP AUTH password (at least 8 bytes), required with `username`.
    pub password: Secret,
    /// The address mails come from, e.g. `appointments@clinic.example`. Required when
    /// `host` is set; also the calendar invitation's organizer.
    pub from_address: String,
    /// The name shown with `from_address`. Default empty: `clinic.name`.
    pub from_name: String,
    /// Longest one delivery may take (connect, TLS, AUTH, send), milliseconds. Default 15000.
    pub timeout_ms: u64,
    /// PEM file of certificates to trust for the relay besides the system's (a private CA).
    /// Default none.
    pub ca_cert: Option<PathBuf>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            tls: MailTls::Starttls,
            username: String::new(),
            password: Secret::default(),
            from_address: String::new(),
            from_name: String::new(),
            timeout_ms: 15_000,
            ca_cert: None,
        }
    }
}

impl MailSettings {
    pub fn enabled(&self) -> bool {
        !self.host.trim().is_empty()
    }

    /// The port to connect to: the configured one, else the usual one for `tls`.
    pub fn port_or_default(&self) -> u16 {
        match (self.port, self.tls) {
            (0, MailTls::Starttls) => 587,
            (0, MailTls::Implicit) => 465,
            (0, MailTls::None) => 25,
            (p, _) => p,
        }
    }
}

/// Which text-message provider's API sends texts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextProvider {
    /// No text messages.
    #[default]
    None,
    /// Twilio's Programmable Messaging API.
    Twilio,
}

/// Appointment text messages (issue 21) through a provider's HTTP API. Off while
/// `provider = "none"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextSettings {
    /// `none` or `twilio`. Default `none` (the admin page says reminders by text are off).
    pub provider: TextProvider,
    /// The provider account: Twilio's Account SID (`AC` and 32 hex digits).
    pub account_id: String,
    /// The account's auth token (at least 32 bytes).
    pub auth_token: Secret,
    /// The sending number in E.164 (`+15550100`). Give this or `messaging_service_id`.
    pub from_number: String,
    /// Twilio Messaging Service SID (`MG` and 32 hex digits), instead of `from_number`.
    pub messaging_service_id: String,
    /// The provider's API base URL. Default `https://api.twilio.com`; plain `http://`
    /// only for a loopback address (tests).
    pub base_url: String,
    /// Longest one API call may take, milliseconds. Default 10000.
    pub timeout_ms: u64,
}

impl Default for TextSettings {
    fn default() -> Self {
        Self {
            provider: TextProvider::None,
            account_id: String::new(),
            auth_token: Secret::default(),
            from_number: String::new(),
            messaging_service_id: String::new(),
            base_url: "https://api.twilio.com".into(),
            timeout_ms: 10_000,
        }
    }
}

impl TextSettings {
    pub fn enabled(&self) -> bool {
        self.provider != TextProvider::None
    }
}

/// Whether `host` (a host name or IP literal, brackets allowed) is this machine.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `true` for `+` and 8 to 15 digits, the first not 0 (E.164).
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// `prefix` then 32 lower-case hex digits: a Twilio SID.
fn is_sid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl Settings {
    /// The `[mail]` and `[text]` rules (issue 21): each checked only when its section is on.
    fn validate_notify(&self) -> Result<(), ConfigError> {
        let m = &self.mail;
        if m.enabled() {
            let host = m.host.trim();
            if host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@')
            {
                return Err(invalid("mail.host", "must be a host name or an IP address"));
            }
            // The mailer's own parser, so that what starts is what it can send from.
            if m.from_address.parse::<lettre::Address>().is_err() {
                return Err(invalid(
                    "mail.from_address",
                    "required when mail.host is set: an address such as appointments@clinic.example",
                ));
            }
            if m.from_name.chars().any(char::is_control) || m.from_name.chars().count() > 200 {
                return Err(invalid(
                    "mail.from_name",
                    "must be at most 200 characters on one line",
                ));
            }
            if m.username.is_empty() != m.password.is_empty() {
                return Err(invalid(
                    "mail.password",
                    "mail.username and mail.password must be given together",
                ));
            }
            if !m.password.is_empty() && m.password.expose().len() < 8 {
                return Err(invalid("mail.password", "must be at least 8 bytes"));
            }
            if m.tls == MailTls::None && !is_loopback_host(host) {
                // Patients' addresses, codes and links (and the password) would cross the
                // network in clear.
                return Err(invalid(
                    "mail.tls",
                    "\"none\" is only allowed for a relay on this machine (localhost); use \"starttls\" or \"implicit\"",
                ));
            }
            if !(1_000..=120_000).contains(&m.timeout_ms) {
                return Err(invalid(
                    "mail.timeout_ms",
                    "must be between 1000 and 120000",
                ));
            }
            if let Some(ca) = &m.ca_cert {
                let pem = std::fs::read_to_string(ca).map_err(|e| {
                    invalid("mail.ca_cert", format!("cannot read {}: {e}", ca.display()))
                })?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(invalid(
                        "mail.ca_cert",
                        format!("{} holds no PEM certificate", ca.display()),
                    ));
                }
            }
        }
        let t = &self.text;
        if t.enabled() {
            if !is_sid(&t.account_id, "AC") {
                return Err(invalid(
                    "text.account_id",
                    "must be the Twilio Account SID: AC and 32 hex digits",
                ));
            }
            if t.auth_token.expose().len() < 32 {
                return Err(invalid("text.auth_token", "must be at least 32 bytes"));
            }
            match (t.from_number.is_empty(), t.messaging_service_id.is_empty()) {
                (false, false) | (true, true) => {
                    return Err(invalid(
                        "text.from_number",
                        "give exactly one of text.from_number and text.messaging_service_id",
                    ));
                }
                (false, true) if !is_e164(&t.from_number) => {
                    return Err(invalid(
                        "text.from_number",
                        "must be a number in E.164 form, such as +15550100",
                    ));
                }
                (true, false) if !is_sid(&t.messaging_service_id, "MG") => {
                    return Err(invalid(
                        "text.messaging_service_id",
                        "must be a Messaging Service SID: MG and 32 hex digits",
                    ));
                }
                _ => {}
            }
            let base = t.base_url.trim_end_matches('/');
            let host_of = |rest: &str| rest.split(['/', '?']).next().unwrap_or_default().to_owned();
            let ok = match base.split_once("://") {
                Some(("https", rest)) => !host_of(rest).is_empty(),
                Some(("http", rest)) => {
                    let authority = host_of(rest);
                    let host = match authority.rsplit_once(':') {
                        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
                        _ => authority,
                    };
                    is_loopback_host(&host)
                }
                _ => false,
            };
            if !ok {
                return Err(invalid(
                    "text.base_url",
                    "must be an https:// URL (http:// only for a loopback address)",
                ));
            }
            if !(1_000..=120_000).contains(&t.timeout_ms) {
                return Err(invalid(
                    "text.timeout_ms",
                    "must be between 1000 and 120000",
                ));
            }
        }
        Ok(())
    }
}

/// The public physician directory (issue 22; docs/api.md "Directory").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorySettings {
    /// GeoNames exports to search places from, besides the ~10,600 bundled world cities:
    /// postal-code files (`export/zip/ES.zip` → `ES.txt`) for postcodes, place dumps
    /// (`export/dump/cities500.zip`) for smaller towns. Read once at start; a file that
    /// cannot be read or parsed stops the start. Default none.
    pub places_files: Vec<std::path::PathBuf>,
}

/// Booking, manage links, join window and reminders for appointments (issue 21;
/// docs/scheduling.md). Links in notices use `server.public_url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppointmentsSettings {
    /// Reminders before an appointment, minutes before its start; at most 5, each 5 to
    /// 20160 (two weeks). Default `[1440, 60]` (a day and an hour before).
    pub reminder_offsets_mins: Vec<u64>,
    /// How early the appointment's join link opens the waiting room, minutes before the
    /// start. Default 15.
    pub join_before_mins: u64,
    /// How long after the start the join link still works, minutes; a patient who has not
    /// opened it by then is a no-show. Default 30.
    pub join_after_mins: u64,
    /// How long a booking holds its slot while the patient types the code sent to their
    /// contact, minutes (1 to 60). Default 15.
    pub hold_mins: u64,
    /// Wrong codes per booking before it can only expire (1 to 10). Default 5.
    pub code_attempts: u32,
    /// Bookings per client address per hour. Default 10.
    pub bookings_per_ip_per_hour: u32,
    /// Bookings per e-mail address or phone number per day. Default 3.
    pub bookings_per_contact_per_day: u32,
    /// Furthest ahead a patient may book, days (1 to 365). Default 90.
    pub book_ahead_days: u64,
    /// How often each node looks for due notices, seconds. Default 5.
    pub outbox_poll_secs: u64,
    /// How long a node holds a notice it is delivering before another node may take it,
    /// seconds (at least 10; longer than a courier's own timeout). Default 120.
    pub outbox_lease_secs: u64,
    /// Deliveries tried per notice before it is marked failed for admins. Default 8.
    pub outbox_max_attempts: u32,
}

impl Default for AppointmentsSettings {
    fn default() -> Self {
        Self {
            reminder_offsets_mins: vec![1440, 60],
            join_before_mins: 15,
            join_after_mins: 30,
            hold_mins: 15,
            code_attempts: 5,
            bookings_per_ip_per_hour: 10,
            bookings_per_contact_per_day: 3,
            book_ahead_days: 90,
            outbox_poll_secs: 5,
            outbox_lease_secs: 120,
            outbox_max_attempts: 8,
        }
    }
}

impl AppointmentsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let key = "appointments.reminder_offsets_mins";
        if self.reminder_offsets_mins.len() > 5
            || self
                .reminder_offsets_mins
                .iter()
                .any(|m| !(5..=20160).contains(m))
        {
            return Err(invalid(key, "at most 5 offsets, each 5 to 20160 minutes"));
        }
        if !(1..=60).contains(&self.hold_mins) {
            return Err(invalid("appointments.hold_mins", "must be 1 to 60"));
        }
        if !(1..=10).contains(&self.code_attempts) {
            return Err(invalid("appointments.code_attempts", "must be 1 to 10"));
        }
        if self.join_before_mins > 120 || !(5..=240).contains(&self.join_after_mins) {
            return Err(invalid(
                "appointments.join_after_mins",
                "join_before_mins must be at most 120, join_after_mins 5 to 240",
            ));
        }
        if self.bookings_per_ip_per_hour == 0 || self.bookings_per_contact_per_day == 0 {
            return Err(invalid(
                "appointments.bookings_per_ip_per_hour",
                "bookings_per_ip_per_hour and bookings_per_contact_per_day must be at least 1",
            ));
        }
        if !(1..=365).contains(&self.book_ahead_days) {
            return Err(invalid("appointments.book_ahead_days", "must be 1 to 365"));
        }
        if self.outbox_poll_secs == 0
            || self.outbox_lease_secs < 10
            || self.outbox_max_attempts == 0
        {
            return Err(invalid(
                "appointments.outbox_lease_secs",
                "outbox_poll_secs and outbox_max_attempts must be at least 1, outbox_lease_secs at least 10",
            ));
        }
        Ok(())
    }
}

/// Where settings come from, before validation.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`; else `config/examroom.toml` when it exists.
    pub file: Option<PathBuf>,
    /// Environment variables to read; `None` reads the process environment.
    pub env: Option<Vec<(String, String)>>,
    /// Flags that override everything (`--addr`, `--data-dir`).
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `serve --demo`: demo patients in memory.
    pub demo: bool,
}

impl Settings {
    /// Load and validate: defaults → file → environment → flags.
    pub fn load(sources: &Sources) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        let file = match &sources.file {
            Some(f) => {
                if !f.exists() {
                    return Err(ConfigError::Load(format!(
                        "config file {} not found",
                        f.display()
                    )));
                }
                Some(f.clone())
            }
            None => Some(PathBuf::from("config/examroom.toml")).filter(|p| p.exists()),
        };
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let env = match &sources.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        let ours: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("EXAMROOM__"))
            .collect();
        for (k, v) in &ours {
            let path = k["EXAMROOM__".len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            // Parse each value as TOML when it parses (numbers, booleans, arrays), else a string.
            let value: figment::value::Value = v
                .parse::<toml_value::Value>()
                .map(|t| t.0)
                .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
            fig = fig.merge(Serialized::default(&path, value));
        }
        let mut settings: Settings = fig.extract().map_err(|e| {
            ConfigError::Load(
                e.into_iter()
                    .map(|e| describe(&e))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if let Some(a) = sources.addr {
            settings.server.addr = a;
        }
        if let Some(d) = &sources.data_dir {
            settings.server.data_dir = d.clone();
        }
        settings.records.demo = sources.demo;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuse values that would make the server misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value, max) in [
            ("clinic.name", &self.clinic.name, 200),
            ("clinic.contact", &self.clinic.contact, 500),
        ] {
            if value.chars().count() > max || value.chars().any(char::is_control) {
                return Err(invalid(
                    key,
                    format!("must be at most {max} characters on one line"),
                ));
            }
        }
        for o in &self.server.allowed_origins {
            if origin_of(o).is_none() {
                return Err(invalid(
                    "server.allowed_origins",
                    "each entry must be an origin such as https://visits.clinic.example",
                ));
            }
        }
        let s = &self.signalling;
        if s.max_message_bytes < 1024 || s.max_message_bytes > 1 << 20 {
            return Err(invalid(
                "signalling.max_message_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if s.rate_per_sec == 0 {
            return Err(invalid("signalling.rate_per_sec", "must be at least 1"));
        }
        if s.outbox_capacity == 0 {
            return Err(invalid("signalling.outbox_capacity", "must be at least 1"));
        }
        if s.heartbeat_interval_secs == 0 || s.heartbeat_interval_secs >= s.heartbeat_timeout_secs {
            return Err(invalid(
                "signalling.heartbeat_interval_secs",
                "must be at least 1 and less than heartbeat_timeout_secs",
            ));
        }
        if s.heartbeat_timeout_secs > 30 {
            return Err(invalid(
                "signalling.heartbeat_timeout_secs",
                "must be at most 30 so a dead peer is noticed within 30 s",
            ));
        }
        if !(1024..=SignallingSettings::MAX_READ_BUFFER_BYTES).contains(&s.read_buffer_bytes) {
            return Err(invalid(
                "signalling.read_buffer_bytes",
                "must be from 1024 to 8192",
            ));
        }
        if s.hello_timeout_secs == 0 {
            return Err(invalid(
                "signalling.hello_timeout_secs",
                "must be at least 1",
            ));
        }
        if s.reserved_percent > 50 {
            return Err(invalid("signalling.reserved_percent", "must be at most 50"));
        }
        if s.max_unauthenticated == 0 || s.max_unauthenticated_per_ip == 0 {
            return Err(invalid(
                "signalling.max_unauthenticated_per_ip",
                "max_unauthenticated and max_unauthenticated_per_ip must be at least 1",
            ));
        }
        if self.server.header_read_timeout_secs == 0 || self.server.request_timeout_secs == 0 {
            return Err(invalid(
                "server.header_read_timeout_secs",
                "header_read_timeout_secs and request_timeout_secs must be at least 1",
            ));
        }
        let metrics = &self.metrics.token;
        if !metrics.is_empty() && metrics.expose().len() < 16 {
            return Err(invalid(
                "metrics.token",
                "must be at least 16 bytes (or empty to refuse every scrape)",
            ));
        }
        if self.visit.max_participants < 2 || self.visit.max_participants > 8 {
            return Err(invalid("visit.max_participants", "must be between 2 and 8"));
        }
        let secret = &self.identity.token_secret;
        if !secret.is_empty() && secret.expose().len() < 32 {
            return Err(invalid(
                "identity.token_secret",
                "must be at least 32 bytes (or empty to generate one)",
            ));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert",
                "tls_cert and tls_key must be given together",
            ));
        }
        if !self.ice.turn_urls.is_empty() && self.ice.turn_secret.is_empty() {
            return Err(invalid(
                "ice.turn_secret",
                "required when ice.turn_urls is set",
            ));
        }
        for u in self.ice.stun_urls.iter() {
            if !u.starts_with("stun:") && !u.starts_with("stuns:") {
                return Err(invalid(
                    "ice.stun_urls",
                    format!("`{u}` is not a stun: or stuns: URL"),
                ));
            }
        }
        for u in self.ice.turn_urls.iter() {
            if !u.starts_with("turn:") && !u.starts_with("turns:") {
                return Err(invalid(
                    "ice.turn_urls",
                    format!("`{u}` is not a turn: or turns: URL"),
                ));
            }
        }
        if self.live.backend == LiveBackend::Redis && self.live.lease_ms < 300 {
            return Err(invalid("live.lease_ms", "must be at least 300"));
        }
        if self.live.backend == LiveBackend::Redis && !self.redis.url.expose().starts_with("redis")
        {
            return Err(invalid("redis.url", "must be a redis:// or rediss:// URL"));
        }
        if self.records.source == RecordsBackend::Fhir && self.records.demo {
            // Demo patients live in the embedded source; next to a clinic's EHR they would
            // be made-up charts among real ones.
            return Err(invalid(
                "records.source",
                "`serve --demo` needs the embedded source, not \"fhir\"",
            ));
        }
        if self.records.source == RecordsBackend::Fhir && self.records.fhir_base_url.is_empty() {
            return Err(invalid(
                "records.fhir_base_url",
                "required when records.source = \"fhir\"",
            ));
        }
        if !matches!(self.records.fhir_signing_alg.as_str(), "RS384" | "ES384") {
            return Err(invalid(
                "records.fhir_signing_alg",
                "must be RS384 or ES384",
            ));
        }
        if self.records.write_max_attempts == 0 || self.records.write_max_age_hours == 0 {
            return Err(invalid(
                "records.write_max_attempts",
                "write_max_attempts and write_max_age_hours must be at least 1",
            ));
        }
        if self.records.write_lease_secs < 10 {
            return Err(invalid("records.write_lease_secs", "must be at least 10"));
        }
        if self.media.max_concurrent_checks == 0 {
            return Err(invalid("media.max_concurrent_checks", "must be at least 1"));
        }
        if !(1..=20).contains(&self.links.identity_attempts) {
            return Err(invalid(
                "links.identity_attempts",
                "must be between 1 and 20",
            ));
        }
        self.appointments.validate()?;
        self.validate_notify()?;
        Ok(())
    }

    /// Base URL for links we hand out.
    pub fn public_url(&self) -> String {
        if !self.server.public_url.is_empty() {
            return self.server.public_url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.server.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.server.addr)
    }

    pub fn data_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.server.data_dir.join(rel)
    }
}

/// The origin (`scheme://host[:port]`, lower case, default port dropped) a URL or origin
/// names; `None` for anything that is not an http(s) or ws(s) origin, or has a path.
pub fn origin_of(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return None,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if rest.is_empty() || !rest.chars().all(ok) {
        return None;
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{host}"))
}

fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let src = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(s) => format!(" (from {s})"),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{src}", e.kind)
    } else {
        format!("key `{key}`: {}{src}", e.kind)
    }
}

/// Environment values are written as TOML scalars/arrays (`30`, `true`, `["a","b"]`);
/// anything that does not parse as TOML is taken as a plain string.
mod toml_value {
    pub struct Value(pub figment::value::Value);

    impl std::str::FromStr for Value {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let doc = format!("v = {s}");
            let fig = {
                use figment::providers::Format;
                figment::Figment::from(figment::providers::Toml::string(&doc))
            };
            let v: figment::value::Value = fig.find_value("v").map_err(|_| ())?;
            Ok(Value(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = file.map(|text| {
            let p = dir.path().join("x.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        Settings::load(&Sources {
            file: path,
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        })
    }

    /// The refusal `load_with` gives, as the operator reads it.
    fn load_error(env: &[(&str, &str)], file: Option<&str>) -> String {
        load_with(env, file).unwrap_err().to_string()
    }

    #[test]
    fn defaults_need_nothing() {
        let s = load_with(&[], None).unwrap();
        assert_eq!(s.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn file_then_env_override() {
        let s = load_with(
            &[
                ("EXAMROOM__SIGNALLING__RATE_PER_SEC", "7"),
                ("EXAMROOM__LOG__FORMAT", "json"),
            ],
            Some("[signalling]\nrate_per_sec = 3\noutbox_capacity = 9\n"),
        )
        .unwrap();
        assert_eq!(s.signalling.rate_per_sec, 7);
        assert_eq!(s.signalling.outbox_capacity, 9);
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_error(&[], Some("[signalling]\nrate_per_secs = 3\n"));
        assert!(e.contains("rate_per_secs"), "{e}");
        let e = load_error(&[("EXAMROOM__SERVER__COLOUR", "red")], None);
        assert!(e.contains("colour"), "{e}");
    }

    /// Demo patients only come from `serve --demo`: not from a file or the environment,
    /// and never next to a clinic's FHIR server.
    #[test]
    fn demo_patients_are_a_flag_for_the_embedded_source_only() {
        let e = load_error(&[], Some("[records]\ndemo = true\n"));
        assert!(e.contains("demo"), "{e}");
        assert!(load_with(&[("EXAMROOM__RECORDS__DEMO", "true")], None).is_err());
        let flag = |source: &str| {
            let file = format!(
                "[records]\nsource = \"{source}\"\nfhir_base_url = \"https://ehr.example/fhir\"\n"
            );
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.toml");
            std::fs::write(&p, file).unwrap();
            Settings::load(&Sources {
                file: Some(p),
                env: Some(Vec::new()),
                demo: true,
                ..Default::default()
            })
        };
        assert!(flag("embedded").unwrap().records.demo);
        let e = flag("fhir").unwrap_err().to_string();
        assert!(e.contains("records.source") && e.contains("--demo"), "{e}");
    }

    #[test]
    fn invalid_value_is_named() {
        let e = load_error(&[("EXAMROOM__SIGNALLING__RATE_PER_SEC", "fast")], None);
        assert!(e.contains("signalling.rate_per_sec"), "{e}");
        let e = load_error(&[("EXAMROOM__IDENTITY__TOKEN_SECRET", "short")], None);
        assert!(e.contains("identity.token_secret"), "{e}");
        assert!(
            !e.contains("short"),
            "the secret itself must not be echoed: {e}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let mut s = Settings::default();
        s.identity.token_secret = Secret::new("x".repeat(40));
        assert!(!format!("{s:?}").contains("xxxx"));
    }

    /// Every key of the settings struct is documented in config/examroom.toml.
    #[test]
    fn example_config_documents_every_key() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examroom.toml"))
                .unwrap();
        let value = serde_json::to_value(Settings::default()).unwrap();
        for (section, fields) in value.as_object().unwrap() {
            assert!(
                doc.contains(&format!("[{section}]")),
                "section [{section}] undocumented"
            );
            for key in fields.as_object().unwrap().keys() {
                let needle = format!("\n# {key} =");
                let needle2 = format!("\n{key} =");
                assert!(
                    doc.contains(&needle) || doc.contains(&needle2),
                    "key {section}.{key} is not documented in config/examroom.toml"
                );
            }
        }
    }

    /// Issue 21: `[mail]` and `[text]` are checked only when turned on, and then refuse
    /// what would leak or fail: a plain connection to another machine, a missing or weak
    /// secret, a sender the provider would not take.
    #[test]
    fn mail_and_text_settings_are_checked_when_on() {
        assert!(load_with(&[("EXAMROOM__MAIL__PORT", "2525")], None).is_ok());
        let mail = "[mail]\nhost = \"smtp.clinic.example\"\nfrom_address = \"a@clinic.example\"\n";
        assert!(load_with(&[], Some(mail)).is_ok());
        let e = load_error(&[], Some("[mail]\nhost = \"smtp.clinic.example\"\n"));
        assert!(e.contains("mail.from_address"), "{e}");
        for bad in [
            "clinic.example",
            "a@",
            "a b@clinic.example",
            "a@b@clinic.example",
        ] {
            let e = load_error(&[("EXAMROOM__MAIL__FROM_ADDRESS", bad)], Some(mail));
            assert!(e.contains("mail.from_address"), "{bad}: {e}");
        }
        let e = load_error(&[("EXAMROOM__MAIL__USERNAME", "relay")], Some(mail));
        assert!(e.contains("mail.password"), "{e}");
        let e = load_error(
            &[
                ("EXAMROOM__MAIL__USERNAME", "relay"),
                ("EXAMROOM__MAIL__PASSWORD", "short"),
            ],
            Some(mail),
        );
        assert!(e.contains("mail.password") && !e.contains("short"), "{e}");
        let e = load_error(&[("EXAMROOM__MAIL__TLS", "none")], Some(mail));
        assert!(e.contains("mail.tls"), "{e}");
        assert!(
            load_with(
                &[
                    ("EXAMROOM__MAIL__TLS", "none"),
                    ("EXAMROOM__MAIL__HOST", "127.0.0.1")
                ],
                Some(mail)
            )
            .is_ok()
        );
        let e = load_error(&[], Some(&format!("{mail}colour = \"red\"\n")));
        assert!(e.contains("colour"), "{e}");

        let sid = format!("AC{}", "0a".repeat(16));
        let token = "t".repeat(32);
        let text = |extra: &str| {
            format!(
                "[text]\nprovider = \"twilio\"\naccount_id = \"{sid}\"\nauth_token = \"{token}\"\n{extra}"
            )
        };
        let ok = load_with(&[], Some(&text("from_number = \"+15550100\"\n"))).unwrap();
        assert!(ok.text.enabled());
        assert_eq!(ok.text.base_url, "https://api.twilio.com");
        for (extra, key) in [
            ("", "text.from_number"),
            ("from_number = \"555-0100\"\n", "text.from_number"),
            (
                "messaging_service_id = \"MGxyz\"\n",
                "text.messaging_service_id",
            ),
            (
                "from_number = \"+15550100\"\nbase_url = \"http://api.example\"\n",
                "text.base_url",
            ),
        ] {
            let e = load_error(&[], Some(&text(extra)));
            assert!(e.contains(key), "{extra}: {e}");
        }
        assert!(
            load_with(
                &[],
                Some(&text(
                    "from_number = \"+15550100\"\nbase_url = \"http://127.0.0.1:4010\"\n"
                ))
            )
            .is_ok()
        );
        let e = load_error(
            &[("EXAMROOM__TEXT__AUTH_TOKEN", "weak")],
            Some(&text("from_number = \"+15550100\"\n")),
        );
        assert!(e.contains("text.auth_token") && !e.contains("weak"), "{e}");
    }
}
