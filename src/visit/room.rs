//! One room's live state as a pure state machine: `handle(input, now) -> outputs`.
//!
//! Invariants the code keeps:
//! - A visit is in exactly one [`VisitState`]; final states never change.
//! - Only the participants of an admitted (or in-call) visit can reach each other;
//!   the recipient of every relayed message is checked against the sender's visit.
//! - Who may admit is decided from the physician's identity and the room's config,
//!   never from who arrived first.
//! - A walk-in patient is offered to at most one physician at a time, and a physician
//!   holds at most one offer at a time.
//! - A patient is never locked out when the physician drops: after the grace period the
//!   visit goes back to waiting, and while within it the patient keeps the call.
//!
//! This file holds the types, `handle` and delivery; the rules sit beside it, one file per
//! reason to change: `lifecycle` (connections, grace, leaving, ending), `actions` (what a
//! participant asks for), `queue` (the waiting queue and walk-in matching) and `snapshot`
//! (the versioned state that leaves and enters a room).

use super::{Millis, RoomConfig, RoomKind, VisitState};
use crate::ids::Role;
use crate::ids::{ParticipantId, PatientRef, RoomId, StaffId, VisitId};
use crate::protocol::{ChatLine, ErrorCode, PeerInfo, ServerMsg};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Longest text a physician may send to a waiting patient, or a chat line (characters).
pub const MAX_TEXT: usize = 2000;
const MAX_NAME: usize = 100;
const MAX_REASON: usize = 500;
/// A visit keeps at most this many chat lines for pages that (re)join it…
pub const CHAT_KEEP_LINES: usize = 200;
/// …and at most this many bytes of their names and texts; the oldest go first.
pub const CHAT_KEEP_BYTES: usize = 64 * 1024;

/// Who is connecting, as their token and account say.
/// Absent optional fields are left out of snapshots and Redis messages (a reader of any
/// version takes a missing `Option` as `None`): a room's snapshot is held in memory as its
/// last good state, and nulls were a third of it (issue 20).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: ParticipantId,
    pub role: Role,
    pub name: String,
    /// Staff account (physicians).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<StaffId>,
    /// The visit a patient or guest token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<VisitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<PatientRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Patient's preferred language (BCP 47), from the link, page or record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Patient's stated preference for the physician's gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefers_gender: Option<String>,
    /// Physician: languages spoken.
    pub languages: Vec<String>,
    /// Physician: gender, for patients who state a preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

/// Something that happened, for the room to react to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Input {
    /// A participant's connection attached (first time or again). `resume` is the resume
    /// token the client presented; `new_resume_token` the one this connection got.
    Connect {
        member: Member,
        resume: Option<String>,
        new_resume_token: String,
        /// Only a resume is allowed: a check that needs the database (a revoked link)
        /// could not be made, so the room lets the participant in only if it holds her
        /// with `resume` as her current resume token (she passed it when she connected).
        #[serde(default)]
        resume_only: bool,
    },
    /// The connection dropped without a `leave`.
    Disconnect { who: ParticipantId },
    /// A participant asked for something.
    Act { who: ParticipantId, act: Act },
    /// Time passed; expire what is due.
    Tick,
}

impl Input {
    /// What kind of input this is, for logs: never any of its content.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Connect { .. } => "connect",
            Input::Disconnect { .. } => "disconnect",
            Input::Act { act, .. } => act.name(),
            Input::Tick => "tick",
        }
    }

    /// The visit whose state this input asks to change, for what a physician decides
    /// (admit, deny, send back, accept a walk-in, end).
    pub fn decides(&self) -> Option<&VisitId> {
        match self {
            Input::Act {
                act:
                    Act::Admit { visit }
                    | Act::Deny { visit, .. }
                    | Act::SendBack { visit }
                    | Act::WalkInAccept { visit }
                    | Act::EndVisit { visit },
                ..
            } => Some(visit),
            _ => None,
        }
    }

    /// Whose input this is (none for a tick).
    pub fn participant(&self) -> Option<&ParticipantId> {
        match self {
            Input::Connect { member, .. } => Some(&member.id),
            Input::Disconnect { who } | Input::Act { who, .. } => Some(who),
            Input::Tick => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Act {
    Profile {
        name: Option<String>,
        reason: Option<String>,
    },
    DeviceCheck {
        ok: bool,
        summary: String,
    },
    Availability {
        available: bool,
    },
    Admit {
        visit: VisitId,
    },
    Deny {
        visit: VisitId,
        reason: Option<String>,
    },
    SendBack {
        visit: VisitId,
    },
    MessagePatient {
        visit: VisitId,
        text: String,
    },
    WalkInAccept {
        visit: VisitId,
    },
    WalkInPass {
        visit: VisitId,
    },
    EndVisit {
        visit: VisitId,
    },
    Leave,
    /// A signalling message for `to`; `msg` already carries `from`.
    Relay {
        to: ParticipantId,
        msg: ServerMsg,
    },
    Chat {
        text: String,
    },
}

impl Act {
    fn name(&self) -> &'static str {
        match self {
            Act::Profile { .. } => "profile",
            Act::DeviceCheck { .. } => "device_check",
            Act::Availability { .. } => "availability",
            Act::Admit { .. } => "admit",
            Act::Deny { .. } => "deny",
            Act::SendBack { .. } => "send_back",
            Act::MessagePatient { .. } => "message_patient",
            Act::WalkInAccept { .. } => "walk_in_accept",
            Act::WalkInPass { .. } => "walk_in_pass",
            Act::EndVisit { .. } => "end_visit",
            Act::Leave => "leave",
            Act::Relay { msg, .. } => match msg {
                ServerMsg::Offer { .. } => "offer",
                ServerMsg::Answer { .. } => "answer",
                ServerMsg::Candidate { .. } => "candidate",
                ServerMsg::MediaState { .. } => "media_state",
                _ => "end_of_candidates",
            },
            Act::Chat { .. } => "chat",
        }
    }
}

/// A visit changed state: recorded in the durable visit history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub visit: VisitId,
    pub room: RoomId,
    pub state: VisitState,
    pub at: Millis,
    /// Who caused it: a participant id, or `system` for timeouts.
    pub actor: String,
    /// The physician in charge, when there is one.
    pub physician: Option<StaffId>,
    pub patient_ref: Option<PatientRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    Send {
        to: ParticipantId,
        msg: ServerMsg,
    },
    /// End this participant's connection after sending it `msg`.
    Close {
        who: ParticipantId,
        msg: ServerMsg,
    },
    Record(Transition),
    /// A patient entered the waiting room: start fetching their record summary.
    Prefetch {
        visit: VisitId,
        patient: PatientRef,
    },
}

/// Room-wide timing settings (from `[visit]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub grace_ms: Millis,
    pub offer_ms: Millis,
    pub replay_buffer: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Presence {
    member: Member,
    connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped_at: Option<Millis>,
    resume_token: String,
    replay: VecDeque<ServerMsg>,
    available: bool,
    free_since: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Visit {
    id: VisitId,
    state: VisitState,
    patient: ParticipantId,
    name: String,
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefers_gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient_ref: Option<PatientRef>,
    /// Queue order: earliest first; sent-back patients keep their original place.
    queued_at: Millis,
    seq: u64,
    /// Physician in charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admitted_by: Option<ParticipantId>,
    /// Everyone in the call (admitted/in_call only).
    participants: Vec<ParticipantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_ok: Option<bool>,
    device_summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offer: Option<(ParticipantId, Millis)>,
    passed: BTreeSet<ParticipantId>,
    preference_told: bool,
    /// The chat so far (patient data: it leaves the room only to the visit's own pages
    /// and in snapshots, never to a log). Bounded by [`CHAT_KEEP_LINES`] and
    /// [`CHAT_KEEP_BYTES`]; emptied when the visit reaches a final state. Snapshots from
    /// before it have none.
    #[serde(default)]
    chat: VecDeque<ChatLine>,
}

impl Visit {
    fn active(&self) -> bool {
        matches!(self.state, VisitState::Admitted | VisitState::InCall)
    }

    /// Keep `line`, dropping the oldest lines past the bounds.
    fn keep_chat(&mut self, line: ChatLine) {
        let size = |l: &ChatLine| l.name.len() + l.text.len();
        self.chat.push_back(line);
        let mut bytes: usize = self.chat.iter().map(size).sum();
        while self.chat.len() > CHAT_KEEP_LINES || bytes > CHAT_KEEP_BYTES {
            match self.chat.pop_front() {
                Some(old) => bytes -= size(&old),
                None => break,
            }
        }
    }
}

/// One room's live state. It leaves and enters only as a [`snapshot::RoomSnapshot`].
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    timing: Timing,
    visits: BTreeMap<VisitId, Box<Visit>>,
    presence: HashMap<ParticipantId, Box<Presence>>,
    next_seq: u64,
    out: Vec<Output>,
    queue_dirty: bool,
}

type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, Refusal> {
    Err((code, msg.into()))
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn no_such_visit() -> Refusal {
    (
        ErrorCode::UnknownVisit,
        "no such visit in this room".to_owned(),
    )
}

impl Room {
    pub fn new(config: RoomConfig, timing: Timing) -> Self {
        Self {
            config,
            timing,
            visits: BTreeMap::new(),
            presence: HashMap::new(),
            next_seq: 0,
            out: Vec::new(),
            queue_dirty: false,
        }
    }

    pub fn id(&self) -> &RoomId {
        &self.config.id
    }

    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// New settings from an admin; takes effect for what happens next.
    pub fn reconfigure(&mut self, config: RoomConfig) {
        self.config = config;
        self.queue_dirty = true;
    }

    /// Visits per state, for metrics.
    pub fn state_counts(&self) -> HashMap<VisitState, usize> {
        let mut m = HashMap::new();
        for v in self.visits.values() {
            *m.entry(v.state).or_default() += 1;
        }
        m
    }

    pub fn visit_state(&self, visit: &VisitId) -> Option<VisitState> {
        self.visits.get(visit).map(|v| v.state)
    }

    /// Who hears of a change to `visit`: its patient and everyone in its call, connected.
    pub fn told_about(&self, visit: &VisitId) -> Vec<ParticipantId> {
        let Some(v) = self.visits.get(visit) else {
            return Vec::new();
        };
        std::iter::once(&v.patient)
            .chain(v.participants.iter())
            .filter(|p| self.presence.get(*p).is_some_and(|p| p.connected))
            .cloned()
            .collect()
    }

    /// Who may pass relayed messages straight to whom, `(from, to)`: what a relay from
    /// `from` to `to` would do here now is exactly "send it to `to`". That holds when both
    /// are connected (nothing is held for replay) and in a visit already in call (the
    /// answer that starts the call is the room's to see), and that visit is the one the
    /// room would relay `from`'s messages in (its first active visit).
    pub fn direct_ways(&self) -> Vec<(&ParticipantId, &ParticipantId)> {
        if !self.visits.values().any(|v| v.state == VisitState::InCall) {
            return Vec::new();
        }
        let connected = |p: &ParticipantId| self.presence.get(p).is_some_and(|p| p.connected);
        let mut first_active: HashMap<&ParticipantId, &VisitId> = HashMap::new();
        for v in self.visits.values().filter(|v| v.active()) {
            for p in &v.participants {
                first_active.entry(p).or_insert(&v.id);
            }
        }
        let mut ways = Vec::new();
        for v in self.visits.values() {
            if v.state != VisitState::InCall {
                continue;
            }
            for from in v.participants.iter().filter(|p| connected(p)) {
                if first_active.get(from) != Some(&&v.id) {
                    continue;
                }
                for to in v.participants.iter().filter(|p| *p != from && connected(p)) {
                    ways.push((from, to));
                }
            }
        }
        ways
    }

    /// Nobody connected, nothing waiting or in a call: the host may drop this room.
    pub fn is_idle(&self) -> bool {
        self.presence.is_empty() && self.visits.values().all(|v| v.state.is_final())
    }

    /// Feed one input; returns what to send and record.
    pub fn handle(&mut self, input: Input, now: Millis) -> Vec<Output> {
        match input {
            Input::Connect {
                member,
                resume,
                new_resume_token,
                resume_only,
            } => {
                if resume_only && !self.holds(&member.id, resume.as_deref()) {
                    self.out.push(Output::Close {
                        who: member.id,
                        msg: ServerMsg::error(
                            ErrorCode::Unavailable,
                            "visits are unavailable right now; try again shortly",
                        ),
                    });
                } else {
                    self.connect(member, resume, new_resume_token, resume_only, now)
                }
            }
            Input::Disconnect { who } => self.disconnect(&who, now),
            Input::Act { who, act } => {
                let about = act.name();
                if let Err((code, message)) = self.act(&who, act, now) {
                    self.send(&who, ServerMsg::error_about(code, message, about));
                }
            }
            Input::Tick => self.tick(now),
        }
        if self.config.kind == RoomKind::WalkIn {
            self.match_walk_in(now);
        }
        self.flush_queue();
        #[cfg(test)]
        fault::maybe_panic(&self.config.id);
        std::mem::take(&mut self.out)
    }

    // ---- delivery -------------------------------------------------------------

    /// Send to a participant; held for replay while they are reconnecting.
    fn send(&mut self, to: &ParticipantId, msg: ServerMsg) {
        let Some(p) = self.presence.get_mut(to) else {
            return;
        };
        if p.connected {
            self.out.push(Output::Send {
                to: to.clone(),
                msg,
            });
        } else if self.timing.replay_buffer > 0 {
            if p.replay.len() == self.timing.replay_buffer {
                p.replay.pop_front();
            }
            p.replay.push_back(msg);
        }
    }

    fn record(&mut self, visit: &VisitId, actor: &str, now: Millis) {
        let Some(v) = self.visits.get(visit) else {
            return;
        };
        let physician = v
            .admitted_by
            .as_ref()
            .and_then(|p| self.presence.get(p))
            .and_then(|p| p.member.staff.clone());
        self.out.push(Output::Record(Transition {
            visit: v.id.clone(),
            room: self.config.id.clone(),
            state: v.state,
            at: now,
            actor: actor.to_owned(),
            physician,
            patient_ref: v.patient_ref.clone(),
        }));
    }

    fn peer_info(&self, viewer: &ParticipantId, peer: &ParticipantId) -> Option<PeerInfo> {
        let p = self.presence.get(peer)?;
        Some(PeerInfo {
            participant: peer.clone(),
            role: p.member.role.as_str().to_owned(),
            name: p.member.name.clone(),
            // Perfect negotiation needs exactly one polite side per pair.
            polite: viewer.as_str() < peer.as_str(),
        })
    }

    fn admitted_msg(&self, visit: &Visit, viewer: &ParticipantId) -> ServerMsg {
        let by = visit
            .admitted_by
            .as_ref()
            .and_then(|p| self.presence.get(p))
            .map(|p| p.member.name.clone())
            .unwrap_or_default();
        ServerMsg::Admitted {
            room: self.config.id.clone(),
            visit: visit.id.clone(),
            by,
            peers: visit
                .participants
                .iter()
                .filter(|p| *p != viewer)
                .filter_map(|p| self.peer_info(viewer, p))
                .collect(),
        }
    }

    /// The visit's chat so far, to a patient or physician whose page (re)joins it. Guests
    /// see only what is said after they join: an interpreter or relative invited later does
    /// not read what the patient wrote before.
    fn send_chat_history(&mut self, vid: &VisitId, to: &ParticipantId) {
        let guest = self
            .presence
            .get(to)
            .is_none_or(|p| p.member.role == Role::Guest);
        let Some(v) = self.visits.get(vid) else {
            return;
        };
        if guest || v.chat.is_empty() {
            return;
        }
        let msg = ServerMsg::ChatHistory {
            visit: vid.clone(),
            lines: v.chat.iter().cloned().collect(),
        };
        self.send(to, msg);
    }
}

mod actions;
mod lifecycle;
pub(crate) mod queue;
pub mod snapshot;
#[cfg(test)]
mod tests;

#[cfg(test)]
impl Member {
    /// A member as tests outside this module need one: a physician is staff under their
    /// own id, a patient waits for `visit`.
    pub(crate) fn test(id: &str, role: Role, visit: Option<&str>) -> Member {
        let parse = |s: &str| ParticipantId::parse(s).expect("test ids are valid");
        Member {
            id: parse(id),
            role,
            name: id.into(),
            staff: (role == Role::Physician).then(|| StaffId::parse(id).expect("valid")),
            visit: visit.map(|v| VisitId::parse(v).expect("valid")),
            patient_ref: None,
            reason: None,
            lang: None,
            prefers_gender: None,
            languages: vec![],
            gender: None,
        }
    }
}

/// Tests make handling panic to check that the room task contains it.
#[cfg(test)]
pub(crate) mod fault {
    use crate::ids::RoomId;
    use std::sync::Mutex;

    // Per room, so tests running in parallel do not trip each other.
    static ARMED: Mutex<Vec<RoomId>> = Mutex::new(Vec::new());

    /// The next input `room` handles panics after it is applied.
    pub(crate) fn panic_next(room: &RoomId) {
        ARMED.lock().unwrap().push(room.clone());
    }

    pub(super) fn maybe_panic(room: &RoomId) {
        let fire = {
            let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
            let at = armed.iter().position(|r| r == room);
            at.map(|i| armed.remove(i)).is_some()
        };
        if fire {
            panic!("room handling panicked (test fault)");
        }
    }
}
