//! Typed identifiers (`RoomId`, `VisitId`, `ParticipantId`, …): newtypes that cannot be
//! confused with each other or with strings, checked when parsed from outside.
//!
//! Defined in the `examroom-protocol` crate because the wire messages carry them;
//! re-exported here so the server names them `crate::ids`.

pub use examroom_protocol::ids::*;
