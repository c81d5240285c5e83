//! What is happening now: where each participant is connected, and which task owns
//! each room's state machine. One trait, two implementations chosen once at start-up:
//! [`memory::MemoryLive`] (one node, the default) and [`redis::RedisLive`] for several
//! nodes (`docs/deploy.md`, "Several nodes").
//! The signalling code only sees [`Live`].

pub mod counters;
mod mailbox;
pub mod memo;
pub mod memory;
mod outbox;
pub mod redis;
mod runtime;

pub use outbox::{Inbox, Next, Outbox, Outgoing};

use crate::ids::{ParticipantId, PatientRef, RoomId, VisitId};
use crate::protocol::ServerMsg;
use crate::visit::room::{Input, Output, Transition};
use crate::visit::{RoomConfig, VisitState};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("room not found")]
    RoomNotFound,
    #[error("live store unavailable: {0}")]
    Unavailable(String),
}

/// Push `msg` and a close to each of `outboxes` (both stores' [`Live::close_all`]).
fn close_all(outboxes: &std::sync::Mutex<HashMap<ParticipantId, Outbox>>, msg: &ServerMsg) {
    let all: Vec<Outbox> = outboxes
        .lock()
        .expect("poisoned")
        .values()
        .cloned()
        .collect();
    for outbox in all {
        outbox.push(Outgoing::Close(Box::new(msg.clone())));
    }
}

/// Side effects of room outputs that are not deliveries: history and prefetch.
#[async_trait]
pub trait Effects: Send + Sync + 'static {
    /// Returns once the transition is in the history (or queued there for retry): the
    /// room waits for it before sending anything, see [`record_first`].
    async fn record(&self, t: Transition);
    /// A patient entered the waiting room of `visit`: read their panel ahead.
    fn prefetch(&self, visit: VisitId, patient: PatientRef);
    /// A relayed or sent message, for metrics.
    fn delivered(&self, msg: &ServerMsg);
}

/// Where rooms' configuration comes from (the durable store).
#[async_trait]
pub trait RoomLoader: Send + Sync + 'static {
    async fn load(&self, room: &RoomId) -> Result<Option<RoomConfig>, LiveError>;
}

#[derive(Debug, Default, Clone)]
pub struct LiveStats {
    pub rooms: usize,
    pub participants: usize,
    pub visits: HashMap<VisitState, usize>,
}

/// Visits per state in each room this node runs, as both stores keep them.
pub(crate) type VisitCounts = std::sync::Mutex<HashMap<RoomId, HashMap<VisitState, usize>>>;

impl LiveStats {
    /// This node's figures: its rooms, the participants connected to it, and its rooms'
    /// visits summed per state.
    pub(crate) fn of_node(rooms: usize, participants: usize, counts: &VisitCounts) -> Self {
        let mut visits: HashMap<VisitState, usize> = HashMap::new();
        for per_room in counts.lock().expect("poisoned").values() {
            for (s, n) in per_room {
                *visits.entry(*s).or_default() += n;
            }
        }
        LiveStats {
            rooms,
            participants,
            visits,
        }
    }
}

#[async_trait]
pub trait Live: Send + Sync + 'static {
    /// `who` is now reached through `outbox` on this node. Returns the outbox it
    /// replaces (a second connection of the same participant supersedes the first).
    fn attach(&self, who: &ParticipantId, outbox: Outbox) -> Option<Outbox>;
    /// Forget `who`'s outbox if it is still connection `conn`.
    fn detach(&self, who: &ParticipantId, conn: u64);
    /// The server is stopping: close every connection attached to this node, sending
    /// `msg` first. (Sessions do not each wait on the shutdown token: that is a waiter
    /// registered and dropped on every message they handle.)
    fn close_all(&self, msg: ServerMsg);
    /// Close `who`'s connection on whichever node holds it, sending `msg` first: an admin
    /// changed their account (deactivated, roles changed, signed out everywhere), so what
    /// their socket was allowed at `hello` no longer holds. Every node is told, not only
    /// the one presence names, so a stale presence key cannot keep a socket open.
    async fn revoke(&self, who: &ParticipantId, msg: ServerMsg) -> Result<(), LiveError>;
    /// Whether `who` has a live connection anywhere.
    async fn is_connected(&self, who: &ParticipantId) -> bool;
    /// Hand an input to the task that owns the room, starting it if needed.
    async fn submit(&self, room: &RoomId, input: Input) -> Result<(), LiveError>;
    /// [`Live::submit`] an input from the connection `from`: a store that lets that
    /// connection relay without the room ([`Live::relay`]) keeps its relays behind it.
    async fn submit_from(
        &self,
        from: &Outbox,
        room: &RoomId,
        input: Input,
    ) -> Result<(), LiveError> {
        let _ = from;
        self.submit(room, input).await
    }
    /// Pass a relayed message from the connection `from` (in `room`) straight to `to`'s,
    /// where the room opened that way (one node: `live::outbox`, "Direct ways"). Gives
    /// the message back otherwise, and the caller submits it to the room.
    fn relay(
        &self,
        from: &Outbox,
        room: &RoomId,
        to: &ParticipantId,
        msg: Box<ServerMsg>,
    ) -> Result<(), Box<ServerMsg>> {
        let _ = (from, room, to);
        Err(msg)
    }
    /// An admin changed the room: the owner applies it.
    async fn reconfigure(&self, config: RoomConfig) -> Result<(), LiveError>;
    /// Ready to take visits (its backing store reachable).
    async fn ready(&self) -> Result<(), LiveError>;
    fn stats(&self) -> LiveStats;
    /// Failure counters as wide as this store: this node's, or the cluster's.
    fn counters(&self) -> Arc<dyn Counters>;
    /// The server is stopping and its connections are closed: hand what this node
    /// owns to the others (the Redis store snapshots and releases its rooms).
    async fn drain(&self) {}
}

/// A list the whole cluster shares, kept outside any one node: where a node parks the
/// visit-history transitions the database has not taken yet (`history::HistoryWriter`),
/// so that they outlive the node (SIGTERM, SIGKILL) and any node can write them once the
/// database is back. Items are opaque text, written once and removed by value.
#[async_trait]
pub trait Parking: Send + Sync + 'static {
    /// Append `item`; `Ok` once it is held outside this process.
    async fn park(&self, item: &str) -> Result<(), LiveError>;
    /// Remove one copy of `item` (its write is done); no error if it is gone already.
    async fn unpark(&self, item: &str) -> Result<(), LiveError>;
    /// Up to `max` parked items, oldest first.
    async fn parked(&self, max: usize) -> Result<Vec<String>, LiveError>;
}

/// Short notes with an expiry that every node reads alike: what a node must be able to
/// check while the database is away (issue 18) — the staff sessions it checked lately and
/// the join links revoked lately (`identity::access` gives them meaning). In Redis with
/// several nodes, in this process with one. Keys and values are opaque here; callers key
/// them by a hash or an id, never by a token.
#[async_trait]
pub trait Memo: Send + Sync + 'static {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), LiveError>;
    async fn get(&self, key: &str) -> Result<Option<String>, LiveError>;
    async fn delete(&self, key: &str) -> Result<(), LiveError>;
}

/// Records a batch's transitions before anything of the batch is sent, so nothing a
/// participant is told happened can be missing from the history if the node dies the
/// next instant. Returns the rest, in order. Transitions are rare (a few per visit);
/// relays carry none and pay nothing.
pub(crate) async fn record_first(effects: &dyn Effects, outputs: Vec<Output>) -> Vec<Output> {
    if !outputs.iter().any(|o| matches!(o, Output::Record(_))) {
        return outputs;
    }
    let mut rest = Vec::with_capacity(outputs.len());
    for out in outputs {
        match out {
            Output::Record(t) => effects.record(t).await,
            other => rest.push(other),
        }
    }
    rest
}

/// Failure counters in fixed windows, shared by every node that shares the live store:
/// sign-in and join-code guessing are limited per cluster, not per node
/// (`identity::ratelimit` gives them meaning).
#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Count one failure of `key`; its window opens at its first failure.
    async fn fail(&self, key: &str, window: Duration);
    /// Failures of `key` in its open window and the time left in it.
    async fn current(&self, key: &str) -> Option<(u32, Duration)>;
    async fn clear(&self, key: &str);
    /// Take one of `max` slots of `key` in its window (which opens at the first slot),
    /// counting the attempt as a failure *before* the caller does its costly check. One
    /// atomic step, so concurrent callers cannot all slip through a check-then-count
    /// gap. `Err(time left)` when every slot is taken; nothing is counted then.
    async fn take(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration>;
    /// Hand a slot back: the attempt it was taken for turned out not to be a failure.
    async fn give_back(&self, key: &str);
}
