//! The visit lifecycle and the waiting room, as pure state machines (no I/O).
//!
//! A [`room::Room`] owns everything happening now in one room: who is connected, who
//! waits in which order, which visits are admitted or in a call, and which walk-in offer
//! is outstanding. It takes [`room::Input`]s stamped with the current time and returns
//! [`room::Output`]s (messages to send, history to record). Sockets, timers and stores sit
//! around it (see `live`), so every rule here is tested with explicit time.
//!
//! The states and who may cause each transition are written up in `docs/visits.md`.

pub mod hours;
pub mod room;

pub use room::queue::same_language;
pub use room::snapshot::{RoomSnapshot, SnapshotError};

use crate::ids::{RoomId, StaffId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch. The state machine never reads a clock itself.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Named physicians; a waiting patient is admitted by one of them.
    Physician,
    /// A pool of physicians; each waiting patient is offered to the next free one.
    WalkIn,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Physician => "physician",
            RoomKind::WalkIn => "walk_in",
        }
    }
}

/// A room as an admin configured it (durable), as the state machine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    pub id: RoomId,
    pub name: String,
    pub kind: RoomKind,
    /// Physicians who may admit (physician room) or who form the pool (walk-in).
    pub physicians: Vec<StaffId>,
    /// Shown to waiting patients whose language has no message of its own.
    pub waiting_message: String,
    /// The waiting message in other languages, by language tag (`es`).
    #[serde(default)]
    pub waiting_messages: BTreeMap<String, String>,
    /// Longest wait before `no_show`, seconds.
    pub max_wait_secs: u64,
    /// Most participants in one visit, including the physician.
    pub max_participants: usize,
    pub chat_allowed: bool,
    pub invites_allowed: bool,
    pub archived: bool,
}

/// The states of a visit. `docs/visits.md` has the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    Waiting,
    Admitted,
    InCall,
    Ended,
    Denied,
    Left,
    NoShow,
}

impl VisitState {
    pub const ALL: [VisitState; 7] = [
        VisitState::Waiting,
        VisitState::Admitted,
        VisitState::InCall,
        VisitState::Ended,
        VisitState::Denied,
        VisitState::Left,
        VisitState::NoShow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VisitState::Waiting => "waiting",
            VisitState::Admitted => "admitted",
            VisitState::InCall => "in_call",
            VisitState::Ended => "ended",
            VisitState::Denied => "denied",
            VisitState::Left => "left",
            VisitState::NoShow => "no_show",
        }
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VisitState::Ended | VisitState::Denied | VisitState::Left | VisitState::NoShow
        )
    }
}
