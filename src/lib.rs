//! examroom: a telehealth consultation server.
//!
//! # Layout
//! - [`config`]: the one typed settings struct (defaults → file → environment → flags).
//! - [`ids`]: typed identifiers (`RoomId`, `VisitId`, …).
//! - [`identity`]: roles and the tokens examroom signs.
//! - [`records`]: the patient-record side panel (embedded store or FHIR server).
//!
//! Data flows one way: the edge (HTTP, signalling) calls the domain (visit, identity,
//! records), which calls the stores (live, durable). Nothing below calls back up.

pub mod config;
pub mod identity;
pub mod ids;
pub mod records;
pub mod visit;
