//! examroom: a telehealth consultation server.
//!
//! # Layout
//! - [`config`]: the one typed settings struct (defaults → file → environment → flags).
//! - [`ids`]: typed identifiers (`RoomId`, `VisitId`, …).
//! - [`identity`]: roles and the tokens examroom signs.
//!
//! Data flows one way: the edge (HTTP, signalling) calls the domain (visit, identity,
//! records), which calls the stores (live, durable). Nothing below calls back up.

pub mod audit;
pub mod config;
pub mod durable;
pub mod identity;
pub mod ids;
pub mod protocol;
pub mod visit;
