//! The signalling wire protocol: JSON messages tagged by `type`, version [`VERSION`].
//!
//! Defined in the `examroom-protocol` crate (`crates/examroom-protocol`), which the load
//! generator and benches share; re-exported here so the server names it `crate::protocol`.
//! Every message and error code is written up in `docs/protocol.md`.

pub use examroom_protocol::*;
