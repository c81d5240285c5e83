//! examroom: a telehealth consultation server.
//!
//! # Layout
//! - [`config`]: the one typed settings struct (defaults → file → environment → flags).
//! - [`ids`]: typed identifiers (`RoomId`, `VisitId`, …).
//! - [`identity`]: roles and the tokens examroom signs.
//! - [`ice`]: STUN/TURN servers for participants, with short-lived TURN REST credentials.
//! - [`media`]: server-side WebRTC — a browser-like peer and the connection check.
//!
//! Data flows one way: the edge (HTTP, signalling) calls the domain (visit, identity,
//! records), which calls the stores (live, durable). Nothing below calls back up.

pub mod config;
pub mod ice;
pub mod identity;
pub mod ids;
pub mod media;
pub mod visit;
