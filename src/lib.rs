//! examroom: a telehealth consultation server.
//!
//! # Layout
//! - [`cli`] / [`app`]: the command line; building the server from settings and running it.
//! - [`config`]: the one typed settings struct (defaults → file → environment → flags).
//! - [`http`]: thin HTTP handlers (health, pages, the `/ws` upgrade, APIs).
//! - [`signalling`]: one WebSocket session per connection (reader, writer, outbox).
//! - [`protocol`]: the versioned JSON wire messages.
//! - [`visit`]: the visit lifecycle and waiting room as pure state machines.
//! - [`identity`]: roles, tokens, who may be where.
//! - [`live`]: what is happening now — presence, room ownership, delivery (memory | Redis).
//! - [`durable`]: what must survive — accounts, rooms, links, history, surveys, audit (SQLite | PostgreSQL).
//! - [`history`]: writes each visit transition before the room acts on it.
//! - [`records`]: the patient-record side panel (embedded FHIR store or the clinic's FHIR server).
//! - [`directory`]: the public physician directory: what a listed profile shows, and the search over it.
//! - [`gazetteer`]: places by name or postcode, offline (bundled cities, GeoNames files), for distances.
//! - [`referrals`]: who may refer a visit's patient to whom, and who answers.
//! - [`scheduling`]: appointments — free slots from a physician's schedule (time zones, DST).
//! - [`appointments`]: booking, the contact code, manage links, the reminder outbox worker.
//! - [`audit`]: the append-only, hash-chained record-access log.
//! - [`ice`] / [`media`]: STUN/TURN settings with short-lived credentials; server-side WebRTC peer.
//! - [`metrics`]: Prometheus counters.
//! - [`notify`]: messages to patients outside a visit (codes, booking notices, reminders): the courier port.
//! - [`ids`]: typed identifiers.
//!
//! Data flows one way: the edge (http, signalling) calls the domain (visit, identity),
//! which calls the stores (live, durable). Nothing below calls back up.

pub mod app;
pub mod appointments;
pub mod audit;
pub mod cli;
pub mod config;
pub mod directory;
pub mod durable;
pub mod gazetteer;
pub mod history;
pub mod http;
pub mod ice;
pub mod identity;
pub mod ids;
pub mod live;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod protocol;
pub mod records;
pub mod referrals;
pub mod scheduling;
pub mod signalling;
pub mod state;
pub mod visit;
