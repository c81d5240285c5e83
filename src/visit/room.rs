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

use super::{Millis, RoomConfig, RoomKind, VisitState};
use crate::identity::Role;
use crate::ids::{ParticipantId, PatientRef, RoomId, StaffId, VisitId};
use crate::protocol::{ErrorCode, PeerInfo, QueueEntry, ServerMsg};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Longest text a physician may send to a waiting patient, or a chat line (characters).
pub const MAX_TEXT: usize = 2000;
const MAX_NAME: usize = 100;
const MAX_REASON: usize = 500;

/// Who is connecting, as their token and account say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: ParticipantId,
    pub role: Role,
    pub name: String,
    /// Staff account (physicians).
    pub staff: Option<StaffId>,
    /// The visit a patient or guest token is bound to.
    pub visit: Option<VisitId>,
    pub patient_ref: Option<PatientRef>,
    pub reason: Option<String>,
    /// Patient's preferred language (BCP 47), from the link, page or record.
    pub lang: Option<String>,
    /// Patient's stated preference for the physician's gender.
    pub prefers_gender: Option<String>,
    /// Physician: languages spoken.
    pub languages: Vec<String>,
    /// Physician: gender, for patients who state a preference.
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
    lang: Option<String>,
    prefers_gender: Option<String>,
    patient_ref: Option<PatientRef>,
    /// Queue order: earliest first; sent-back patients keep their original place.
    queued_at: Millis,
    seq: u64,
    /// Physician in charge.
    admitted_by: Option<ParticipantId>,
    /// Everyone in the call (admitted/in_call only).
    participants: Vec<ParticipantId>,
    device_ok: Option<bool>,
    device_summary: String,
    offer: Option<(ParticipantId, Millis)>,
    passed: BTreeSet<ParticipantId>,
    preference_told: bool,
}

impl Visit {
    fn active(&self) -> bool {
        matches!(self.state, VisitState::Admitted | VisitState::InCall)
    }
}

/// One room's live state. It leaves and enters only as a [`snapshot::RoomSnapshot`].
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    timing: Timing,
    visits: BTreeMap<VisitId, Visit>,
    presence: HashMap<ParticipantId, Presence>,
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
            } => self.connect(member, resume, new_resume_token, now),
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

    fn waiting_order(&self) -> Vec<VisitId> {
        let mut w: Vec<&Visit> = self
            .visits
            .values()
            .filter(|v| v.state == VisitState::Waiting)
            .collect();
        w.sort_by_key(|v| (v.queued_at, v.seq));
        w.into_iter().map(|v| v.id.clone()).collect()
    }

    fn physicians_here(&self) -> Vec<ParticipantId> {
        self.presence
            .iter()
            .filter(|(_, p)| p.member.role == Role::Physician)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Queue to physicians and positions to waiting patients, once per input.
    fn flush_queue(&mut self) {
        if !std::mem::take(&mut self.queue_dirty) {
            return;
        }
        let order = self.waiting_order();
        let entries: Vec<QueueEntry> = order
            .iter()
            .enumerate()
            .filter_map(|(i, id)| self.visits.get(id).map(|v| (i, v)))
            .map(|(i, v)| QueueEntry {
                visit: v.id.clone(),
                name: v.name.clone(),
                reason: v.reason.clone(),
                waiting_since: v.queued_at,
                position: i + 1,
                device_ok: v.device_ok,
                device_summary: v.device_summary.clone(),
                connected: self.presence.get(&v.patient).is_some_and(|p| p.connected),
                lang: v.lang.clone(),
                offered_to: v
                    .offer
                    .as_ref()
                    .and_then(|(p, _)| self.presence.get(p))
                    .map(|p| p.member.name.clone()),
            })
            .collect();
        for doc in self.physicians_here() {
            let msg = ServerMsg::Queue {
                room: self.config.id.clone(),
                room_name: self.config.name.clone(),
                entries: entries.clone(),
            };
            self.send(&doc, msg);
        }
        for (i, id) in order.iter().enumerate() {
            let Some(patient) = self.visits.get(id).map(|v| v.patient.clone()) else {
                continue;
            };
            let msg = ServerMsg::Waiting {
                room: self.config.id.clone(),
                visit: id.clone(),
                position: i + 1,
                message: self.config.waiting_message.clone(),
            };
            self.send(&patient, msg);
        }
    }

    // ---- connections ----------------------------------------------------------

    fn connect(&mut self, member: Member, resume: Option<String>, token: String, now: Millis) {
        let id = member.id.clone();
        // Resuming (same page, kept its peer connections) replays what it missed.
        let (resumed, replay) = match self.presence.get_mut(&id) {
            Some(p) => {
                let resumed = resume.is_some_and(|r| r == p.resume_token) && !p.connected;
                let replay = std::mem::take(&mut p.replay);
                p.connected = true;
                p.dropped_at = None;
                p.resume_token = token;
                p.member = Member {
                    languages: member.languages.clone(),
                    ..member.clone()
                };
                (resumed, if resumed { replay } else { VecDeque::new() })
            }
            None => {
                if let Some(refusal) = self.check_admission(&member) {
                    self.out.push(Output::Close {
                        who: id,
                        msg: refusal,
                    });
                    return;
                }
                self.presence.insert(
                    id.clone(),
                    Presence {
                        member: member.clone(),
                        connected: true,
                        dropped_at: None,
                        resume_token: token,
                        replay: VecDeque::new(),
                        available: true,
                        free_since: now,
                    },
                );
                (false, VecDeque::new())
            }
        };
        match member.role {
            Role::Physician => {
                self.queue_dirty = true;
                if let Some(vid) = self.active_visit_of(&id) {
                    self.rejoin_call(&vid, &id, resumed);
                }
            }
            Role::Patient => self.patient_connected(&member, resumed, now),
            Role::Guest => self.guest_connected(&member, resumed),
            Role::Admin => {}
        }
        // After the visit's state, so the client knows its visit before replayed signalling.
        for msg in replay {
            self.out.push(Output::Send {
                to: id.clone(),
                msg,
            });
        }
    }

    /// Whether a first-time member may enter at all; `Some(error)` refuses.
    fn check_admission(&self, m: &Member) -> Option<ServerMsg> {
        match m.role {
            Role::Physician => {
                let ok = m
                    .staff
                    .as_ref()
                    .is_some_and(|s| self.config.physicians.contains(s));
                (!ok).then(|| {
                    ServerMsg::error(
                        ErrorCode::NotYourRoom,
                        "you are not a physician of this room",
                    )
                })
            }
            Role::Patient | Role::Guest => {
                let Some(vid) = &m.visit else {
                    return Some(ServerMsg::error(
                        ErrorCode::Forbidden,
                        "token is not bound to a visit",
                    ));
                };
                match self.visits.get(vid) {
                    Some(v) if v.state.is_final() => Some(ServerMsg::error(
                        ErrorCode::VisitClosed,
                        format!("this visit has {}", v.state.as_str().replace('_', " ")),
                    )),
                    Some(v) if m.role == Role::Patient && v.patient != m.id => {
                        Some(ServerMsg::error(
                            ErrorCode::Forbidden,
                            "this visit belongs to someone else",
                        ))
                    }
                    None if m.role == Role::Guest => Some(ServerMsg::error(
                        ErrorCode::VisitClosed,
                        "this visit has not started yet",
                    )),
                    Some(v) if m.role == Role::Guest && !v.active() => Some(ServerMsg::error(
                        ErrorCode::VisitClosed,
                        "this visit is not in progress",
                    )),
                    Some(v)
                        if m.role == Role::Guest
                            && v.participants.len() >= self.config.max_participants =>
                    {
                        Some(ServerMsg::error(ErrorCode::RoomFull, "this visit is full"))
                    }
                    _ if self.config.archived => Some(ServerMsg::error(
                        ErrorCode::RoomNotFound,
                        "this room is closed",
                    )),
                    _ => None,
                }
            }
            Role::Admin => Some(ServerMsg::error(
                ErrorCode::Forbidden,
                "admins do not join rooms",
            )),
        }
    }

    fn patient_connected(&mut self, m: &Member, resumed: bool, now: Millis) {
        // A first connection was checked at admission; a returning one may not be bound.
        let Some(vid) = m.visit.clone() else {
            return self.unbound(m);
        };
        if !self.visits.contains_key(&vid) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.visits.insert(
                vid.clone(),
                Visit {
                    id: vid.clone(),
                    state: VisitState::Waiting,
                    patient: m.id.clone(),
                    name: clip(&m.name, MAX_NAME),
                    reason: clip(m.reason.as_deref().unwrap_or(""), MAX_REASON),
                    lang: m.lang.clone(),
                    prefers_gender: m.prefers_gender.clone(),
                    patient_ref: m.patient_ref.clone(),
                    queued_at: now,
                    seq,
                    admitted_by: None,
                    participants: Vec::new(),
                    device_ok: None,
                    device_summary: String::new(),
                    offer: None,
                    passed: BTreeSet::new(),
                    preference_told: false,
                },
            );
            self.record(&vid, m.id.as_str(), now);
            if let Some(p) = &m.patient_ref {
                self.out.push(Output::Prefetch {
                    visit: vid.clone(),
                    patient: p.clone(),
                });
            }
        }
        if self.visits.get(&vid).is_some_and(Visit::active) {
            self.rejoin_call(&vid, &m.id, resumed);
        }
        // Waiting: position is sent by flush_queue.
        self.queue_dirty = true;
    }

    fn guest_connected(&mut self, m: &Member, resumed: bool) {
        let Some(vid) = m.visit.clone() else {
            return self.unbound(m);
        };
        let Some(v) = self.visits.get_mut(&vid) else {
            // Checked at a first admission; a returning guest's visit may be gone.
            self.out.push(Output::Close {
                who: m.id.clone(),
                msg: ServerMsg::error(ErrorCode::VisitClosed, "this visit is not in progress"),
            });
            return;
        };
        if v.participants.contains(&m.id) {
            self.rejoin_call(&vid, &m.id, resumed);
            return;
        }
        v.participants.push(m.id.clone());
        if let Some(msg) = self.visits.get(&vid).map(|v| self.admitted_msg(v, &m.id)) {
            self.send(&m.id, msg);
        }
        self.announce_joined(&vid, &m.id);
    }

    /// A patient or guest whose token names no visit: refused, as at admission.
    fn unbound(&mut self, m: &Member) {
        self.out.push(Output::Close {
            who: m.id.clone(),
            msg: ServerMsg::error(ErrorCode::Forbidden, "token is not bound to a visit"),
        });
    }

    /// Everyone in visit `vid` but `who`.
    fn others_in(&self, vid: &VisitId, who: &ParticipantId) -> Vec<ParticipantId> {
        self.visits
            .get(vid)
            .map(|v| {
                v.participants
                    .iter()
                    .filter(|p| *p != who)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn announce_joined(&mut self, vid: &VisitId, who: &ParticipantId) {
        for o in self.others_in(vid, who) {
            if let Some(peer) = self.peer_info(&o, who) {
                self.send(&o, ServerMsg::PeerJoined { peer });
            }
        }
    }

    /// A participant of an active visit is back: they get the visit as it is, the others
    /// learn whether to restart ICE (resumed) or build a new peer connection (fresh page).
    fn rejoin_call(&mut self, vid: &VisitId, who: &ParticipantId, resumed: bool) {
        // The returning side always learns the visit as it is now; a page that kept its
        // peer connections keeps those and only builds the ones it lacks.
        if let Some(msg) = self.visits.get(vid).map(|v| self.admitted_msg(v, who)) {
            self.send(who, msg);
        }
        if !resumed {
            self.announce_joined(vid, who);
        } else {
            for o in self.others_in(vid, who) {
                self.send(
                    &o,
                    ServerMsg::PeerResumed {
                        participant: who.clone(),
                    },
                );
            }
        }
    }

    fn disconnect(&mut self, who: &ParticipantId, now: Millis) {
        let Some(p) = self.presence.get_mut(who) else {
            return;
        };
        if !p.connected {
            return;
        }
        p.connected = false;
        p.dropped_at = Some(now);
        let role = p.member.role;
        if let Some(vid) = self.active_visit_of(who) {
            for o in self.others_in(&vid, who) {
                self.send(
                    &o,
                    ServerMsg::PeerReconnecting {
                        participant: who.clone(),
                    },
                );
            }
        }
        if role == Role::Physician {
            self.withdraw_offers_of(who);
        }
        self.queue_dirty = true;
    }

    // ---- time -----------------------------------------------------------------

    fn tick(&mut self, now: Millis) {
        // Participants gone past their grace period leave for good.
        let expired: Vec<ParticipantId> = self
            .presence
            .iter()
            .filter(|(_, p)| {
                p.dropped_at
                    .is_some_and(|t| now - t >= self.timing.grace_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for who in expired {
            self.depart(&who, "connection lost", now);
        }
        // Patients who waited past the room's limit are no-shows.
        let max_wait = self.config.max_wait_secs as Millis * 1000;
        let late: Vec<VisitId> = self
            .visits
            .values()
            .filter(|v| v.state == VisitState::Waiting && now - v.queued_at >= max_wait)
            .map(|v| v.id.clone())
            .collect();
        for vid in late {
            self.finish_waiting(&vid, VisitState::NoShow, "system", now);
        }
        // Walk-in offers nobody answered count as a pass.
        let timed_out: Vec<(VisitId, ParticipantId)> = self
            .visits
            .values()
            .filter_map(|v| match &v.offer {
                Some((doc, deadline)) if now >= *deadline => Some((v.id.clone(), doc.clone())),
                _ => None,
            })
            .collect();
        for (vid, doc) in timed_out {
            self.pass(&vid, &doc);
        }
    }

    /// A waiting visit ends without a call (left, denied, no-show).
    fn finish_waiting(&mut self, vid: &VisitId, state: VisitState, actor: &str, now: Millis) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.state = state;
        let offer = v.offer.take();
        let patient = v.patient.clone();
        self.record(vid, actor, now);
        if let Some((doc, _)) = offer {
            self.send(
                &doc,
                ServerMsg::WalkInWithdrawn {
                    room: self.config.id.clone(),
                    visit: vid.clone(),
                },
            );
        }
        if state == VisitState::NoShow {
            let msg = ServerMsg::VisitEnded {
                room: self.config.id.clone(),
                visit: vid.clone(),
                by: "waited past the room's limit".into(),
                survey: false,
            };
            self.send(&patient, msg);
        }
        self.queue_dirty = true;
    }

    /// Someone leaves for good (explicit leave, or grace expired).
    fn depart(&mut self, who: &ParticipantId, reason: &str, now: Millis) {
        let Some(p) = self.presence.get(who) else {
            return;
        };
        let role = p.member.role;
        if let Some(vid) = self.active_visit_of(who) {
            self.leave_call(&vid, who, reason, now);
        }
        if role == Role::Patient {
            let waiting: Vec<VisitId> = self
                .visits
                .values()
                .filter(|v| v.patient == *who && v.state == VisitState::Waiting)
                .map(|v| v.id.clone())
                .collect();
            for vid in waiting {
                self.finish_waiting(&vid, VisitState::Left, who.as_str(), now);
            }
        }
        if role == Role::Physician {
            self.withdraw_offers_of(who);
        }
        self.presence.remove(who);
        self.queue_dirty = true;
    }

    /// `who` leaves an active visit. The last one out ends it; when no physician is left
    /// the patient goes back to the waiting room (never locked out).
    fn leave_call(&mut self, vid: &VisitId, who: &ParticipantId, reason: &str, now: Millis) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.participants.retain(|p| p != who);
        let remaining = v.participants.clone();
        let patient = v.patient.clone();
        let in_charge = v.admitted_by.as_ref() == Some(who);
        for o in &remaining {
            self.send(
                o,
                ServerMsg::PeerLeft {
                    participant: who.clone(),
                    reason: reason.into(),
                },
            );
        }
        let physician_left = remaining.iter().any(|p| self.is_physician(p));
        if remaining.is_empty()
            || (remaining.len() == 1 && !remaining.contains(&patient) && !physician_left)
        {
            // Nobody (or only a guest) is left.
            self.end_visit(vid, who.as_str(), now);
        } else if !physician_left {
            if remaining.contains(&patient) {
                self.back_to_waiting(vid, who.as_str(), now);
            } else {
                self.end_visit(vid, who.as_str(), now);
            }
        } else if in_charge {
            let next = remaining.iter().find(|p| self.is_physician(p)).cloned();
            if let Some(v) = self.visits.get_mut(vid) {
                v.admitted_by = next;
            }
        }
    }

    fn is_physician(&self, p: &ParticipantId) -> bool {
        self.presence
            .get(p)
            .is_some_and(|p| p.member.role == Role::Physician)
    }

    fn active_visit_of(&self, who: &ParticipantId) -> Option<VisitId> {
        self.visits
            .values()
            .find(|v| v.active() && v.participants.contains(who))
            .map(|v| v.id.clone())
    }

    fn back_to_waiting(&mut self, vid: &VisitId, actor: &str, now: Millis) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        let patient = v.patient.clone();
        let others: Vec<ParticipantId> =
            v.participants.drain(..).filter(|p| *p != patient).collect();
        v.state = VisitState::Waiting;
        v.admitted_by = None;
        v.passed.clear();
        self.record(vid, actor, now);
        let room = self.config.id.clone();
        self.send(
            &patient,
            ServerMsg::SentBack {
                room: room.clone(),
                visit: vid.clone(),
            },
        );
        for o in others {
            self.send(
                &o,
                ServerMsg::PeerLeft {
                    participant: patient.clone(),
                    reason: "sent back to waiting".into(),
                },
            );
            if self
                .presence
                .get(&o)
                .is_some_and(|p| p.member.role == Role::Guest)
            {
                self.send(
                    &o,
                    ServerMsg::SentBack {
                        room: room.clone(),
                        visit: vid.clone(),
                    },
                );
            } else {
                self.mark_free(&o, now);
            }
        }
        self.queue_dirty = true;
    }

    fn end_visit(&mut self, vid: &VisitId, by: &str, now: Millis) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.state = VisitState::Ended;
        let patient = v.patient.clone();
        let participants = std::mem::take(&mut v.participants);
        self.record(vid, by, now);
        let by_name = self
            .presence
            .get(&ParticipantId::parse(by).unwrap_or_default())
            .map(|p| p.member.name.clone())
            .unwrap_or_else(|| by.to_owned());
        for p in participants
            .iter()
            .chain(std::iter::once(&patient))
            .collect::<BTreeSet<_>>()
        {
            let msg = ServerMsg::VisitEnded {
                room: self.config.id.clone(),
                visit: vid.clone(),
                by: by_name.clone(),
                survey: *p == patient,
            };
            self.send(p, msg);
            self.mark_free(p, now);
        }
    }

    fn mark_free(&mut self, who: &ParticipantId, now: Millis) {
        if let Some(p) = self.presence.get_mut(who) {
            p.free_since = now;
        }
    }

    // ---- actions --------------------------------------------------------------

    fn act(&mut self, who: &ParticipantId, act: Act, now: Millis) -> Result<(), Refusal> {
        let Some(p) = self.presence.get(who) else {
            return refuse(ErrorCode::NotYourRoom, "you are not in this room");
        };
        let role = p.member.role;
        let need_physician = || -> Result<(), Refusal> {
            if role == Role::Physician {
                Ok(())
            } else {
                refuse(ErrorCode::Forbidden, "only a physician may do this")
            }
        };
        match act {
            Act::Profile { name, reason } => {
                let vid = self.own_waiting_visit(who)?;
                let v = self.visits.get_mut(&vid).ok_or_else(no_such_visit)?;
                if let Some(n) = name.filter(|n| !n.trim().is_empty()) {
                    v.name = clip(n.trim(), MAX_NAME);
                }
                if let Some(r) = reason {
                    v.reason = clip(r.trim(), MAX_REASON);
                }
                self.queue_dirty = true;
            }
            Act::DeviceCheck { ok, summary } => {
                if role != Role::Patient {
                    return refuse(
                        ErrorCode::Forbidden,
                        "only the patient reports a device check",
                    );
                }
                let vid = self
                    .visits
                    .values()
                    .find(|v| v.patient == *who && !v.state.is_final())
                    .map(|v| v.id.clone())
                    .ok_or((ErrorCode::NotInVisit, "you have no open visit".to_owned()))?;
                let v = self.visits.get_mut(&vid).ok_or_else(no_such_visit)?;
                v.device_ok = Some(ok);
                v.device_summary = clip(&summary, MAX_REASON);
                self.queue_dirty = true;
            }
            Act::Availability { available } => {
                need_physician()?;
                if let Some(p) = self.presence.get_mut(who) {
                    p.available = available;
                }
                if !available {
                    self.withdraw_offers_of(who);
                }
                self.queue_dirty = true;
            }
            Act::Admit { visit } => {
                need_physician()?;
                self.admit(who, &visit, false, now)?;
            }
            Act::WalkInAccept { visit } => {
                need_physician()?;
                self.admit(who, &visit, true, now)?;
            }
            Act::WalkInPass { visit } => {
                need_physician()?;
                let offered = self
                    .visits
                    .get(&visit)
                    .and_then(|v| v.offer.as_ref())
                    .is_some_and(|(d, _)| d == who);
                if !offered {
                    return refuse(
                        ErrorCode::NotOfferedToYou,
                        "this patient is not offered to you",
                    );
                }
                self.pass(&visit, who);
            }
            Act::Deny { visit, reason } => {
                need_physician()?;
                self.may_manage(who)?;
                let patient = self.waiting_visit(&visit)?.patient.clone();
                self.finish_waiting(&visit, VisitState::Denied, who.as_str(), now);
                let reason = clip(
                    reason
                        .as_deref()
                        .unwrap_or("The clinic could not see you in this room."),
                    MAX_REASON,
                );
                self.send(
                    &patient,
                    ServerMsg::Denied {
                        room: self.config.id.clone(),
                        visit,
                        reason,
                    },
                );
            }
            Act::MessagePatient { visit, text } => {
                need_physician()?;
                self.may_manage(who)?;
                let patient = self.waiting_visit(&visit)?.patient.clone();
                if text.trim().is_empty() {
                    return refuse(ErrorCode::BadMessage, "message text is empty");
                }
                self.send(
                    &patient,
                    ServerMsg::PhysicianMessage {
                        text: clip(&text, MAX_TEXT),
                        at: now,
                    },
                );
            }
            Act::SendBack { visit } => {
                need_physician()?;
                self.in_visit(who, &visit)?;
                self.back_to_waiting(&visit, who.as_str(), now);
            }
            Act::EndVisit { visit } => {
                need_physician()?;
                self.in_visit(who, &visit)?;
                self.end_visit(&visit, who.as_str(), now);
            }
            Act::Leave => {
                self.depart(who, "left", now);
            }
            Act::Relay { to, msg } => {
                let vid = self.active_visit_of(who).ok_or((
                    ErrorCode::NotInVisit,
                    "you are not in an admitted visit".to_owned(),
                ))?;
                let v = self.visits.get(&vid).ok_or_else(no_such_visit)?;
                if to == *who || !v.participants.contains(&to) {
                    return refuse(
                        ErrorCode::UnknownPeer,
                        "that participant is not in your visit",
                    );
                }
                let is_answer = matches!(msg, ServerMsg::Answer { .. });
                self.send(&to, msg);
                if let Some(v) = self.visits.get_mut(&vid)
                    && is_answer
                    && v.state == VisitState::Admitted
                {
                    v.state = VisitState::InCall;
                    self.record(&vid, who.as_str(), now);
                }
            }
            Act::Chat { text } => {
                let vid = self.active_visit_of(who).ok_or((
                    ErrorCode::NotInVisit,
                    "you are not in an admitted visit".to_owned(),
                ))?;
                if !self.config.chat_allowed {
                    return refuse(ErrorCode::ChatDisabled, "chat is turned off in this room");
                }
                if text.trim().is_empty() {
                    return refuse(ErrorCode::BadMessage, "chat text is empty");
                }
                let name = self
                    .presence
                    .get(who)
                    .map(|p| p.member.name.clone())
                    .unwrap_or_default();
                for o in self.others_in(&vid, who) {
                    let msg = ServerMsg::Chat {
                        from: who.clone(),
                        name: name.clone(),
                        text: clip(&text, MAX_TEXT),
                        at: now,
                    };
                    self.send(&o, msg);
                }
            }
        }
        Ok(())
    }

    fn own_waiting_visit(&self, who: &ParticipantId) -> Result<VisitId, Refusal> {
        self.visits
            .values()
            .find(|v| v.patient == *who && v.state == VisitState::Waiting)
            .map(|v| v.id.clone())
            .ok_or((
                ErrorCode::NotInVisit,
                "you are not waiting in this room".to_owned(),
            ))
    }

    fn waiting_visit(&self, visit: &VisitId) -> Result<&Visit, Refusal> {
        match self.visits.get(visit) {
            None => Err(no_such_visit()),
            Some(v) if v.state != VisitState::Waiting => refuse(
                ErrorCode::IllegalTransition,
                format!("the visit is {}, not waiting", v.state.as_str()),
            ),
            Some(v) => Ok(v),
        }
    }

    fn in_visit(&self, who: &ParticipantId, visit: &VisitId) -> Result<(), Refusal> {
        match self.visits.get(visit) {
            None => refuse(ErrorCode::UnknownVisit, "no such visit in this room"),
            Some(v) if !v.active() => refuse(
                ErrorCode::IllegalTransition,
                format!("the visit is {}", v.state.as_str()),
            ),
            Some(v) if !v.participants.contains(who) => {
                refuse(ErrorCode::NotInVisit, "you are not in this visit")
            }
            Some(_) => Ok(()),
        }
    }

    /// A physician of this room (configured), whatever arrived first.
    fn may_manage(&self, who: &ParticipantId) -> Result<(), Refusal> {
        let staff = self.presence.get(who).and_then(|p| p.member.staff.as_ref());
        match staff {
            Some(s) if self.config.physicians.contains(s) => Ok(()),
            _ => refuse(
                ErrorCode::NotYourRoom,
                "you are not a physician of this room",
            ),
        }
    }

    fn admit(
        &mut self,
        who: &ParticipantId,
        visit: &VisitId,
        accept: bool,
        now: Millis,
    ) -> Result<(), Refusal> {
        self.may_manage(who)?;
        let offered_to_me = self
            .waiting_visit(visit)?
            .offer
            .as_ref()
            .is_some_and(|(d, _)| d == who);
        if (self.config.kind == RoomKind::WalkIn || accept) && !offered_to_me {
            return refuse(
                ErrorCode::NotOfferedToYou,
                "in a walk-in room you admit the patient offered to you",
            );
        }
        if let Some(busy) = self.active_visit_of(who) {
            return refuse(
                ErrorCode::Busy,
                format!("you are already in visit {busy}; end it or send the patient back first"),
            );
        }
        let v = self.visits.get_mut(visit).ok_or_else(no_such_visit)?;
        v.state = VisitState::Admitted;
        v.offer = None;
        v.admitted_by = Some(who.clone());
        v.participants = vec![who.clone(), v.patient.clone()];
        let participants = v.participants.clone();
        self.record(visit, who.as_str(), now);
        for p in &participants {
            if let Some(msg) = self.visits.get(visit).map(|v| self.admitted_msg(v, p)) {
                self.send(p, msg);
            }
        }
        // A physician with an outstanding offer elsewhere in the room gives it up.
        self.withdraw_offers_of(who);
        self.queue_dirty = true;
        Ok(())
    }

    // ---- walk-in matching -----------------------------------------------------

    fn withdraw_offers_of(&mut self, doc: &ParticipantId) {
        let mine: Vec<VisitId> = self
            .visits
            .values()
            .filter(|v| v.offer.as_ref().is_some_and(|(d, _)| d == doc))
            .map(|v| v.id.clone())
            .collect();
        for vid in mine {
            if let Some(v) = self.visits.get_mut(&vid) {
                v.offer = None;
            }
            self.send(
                doc,
                ServerMsg::WalkInWithdrawn {
                    room: self.config.id.clone(),
                    visit: vid,
                },
            );
            self.queue_dirty = true;
        }
    }

    fn pass(&mut self, vid: &VisitId, doc: &ParticipantId) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.offer = None;
        v.passed.insert(doc.clone());
        self.send(
            doc,
            ServerMsg::WalkInWithdrawn {
                room: self.config.id.clone(),
                visit: vid.clone(),
            },
        );
        self.queue_dirty = true;
    }

    fn is_free(&self, doc: &ParticipantId) -> bool {
        let Some(p) = self.presence.get(doc) else {
            return false;
        };
        p.member.role == Role::Physician
            && p.connected
            && p.available
            && p.member
                .staff
                .as_ref()
                .is_some_and(|s| self.config.physicians.contains(s))
            && self.active_visit_of(doc).is_none()
            && !self
                .visits
                .values()
                .any(|v| v.offer.as_ref().is_some_and(|(d, _)| d == doc))
    }

    /// Offer each waiting patient, in queue order, to the best free physician:
    /// preferred language first, then a stated gender preference, then who has been
    /// free longest. A patient everyone has passed starts a new round.
    fn match_walk_in(&mut self, now: Millis) {
        for vid in self.waiting_order() {
            if self.visits.get(&vid).is_none_or(|v| v.offer.is_some()) {
                continue;
            }
            let mut free: Vec<ParticipantId> = self
                .physicians_here()
                .into_iter()
                .filter(|d| self.is_free(d))
                .collect();
            if free.is_empty() {
                break;
            }
            let Some(v) = self.visits.get_mut(&vid) else {
                continue;
            };
            if free.iter().all(|d| v.passed.contains(d)) {
                v.passed.clear();
            }
            let v = &*v;
            free.retain(|d| !v.passed.contains(d));
            let lang = v.lang.as_deref().map(primary_language);
            let gender = v.prefers_gender.clone();
            let presence = &self.presence;
            let score = |d: &ParticipantId| {
                // `free` holds present physicians only (`is_free`); a missing one sorts last.
                let m = presence.get(d);
                let lang_ok = m.is_some_and(|m| {
                    lang.as_deref()
                        .is_none_or(|l| m.member.languages.iter().any(|x| primary_language(x) == l))
                });
                let gender_ok = m.is_some_and(|m| {
                    gender
                        .as_deref()
                        .is_none_or(|g| m.member.gender.as_deref() == Some(g))
                });
                let free_since = m.map_or(Millis::MAX, |m| m.free_since);
                (!lang_ok, !gender_ok, free_since, d.clone())
            };
            free.sort_by_key(score);
            let Some(chosen) = free.first().cloned() else {
                continue;
            };
            let (lang_miss, gender_miss, _, _) = score(&chosen);
            let told = v.preference_told;
            let patient = v.patient.clone();
            let name = v.name.clone();
            let reason = v.reason.clone();
            if (lang_miss || gender_miss) && !told {
                let what = if lang_miss {
                    "language"
                } else {
                    "physician gender"
                };
                self.send(
                    &patient,
                    ServerMsg::PreferenceUnavailable { what: what.into() },
                );
            }
            let expires_at = now + self.timing.offer_ms;
            if let Some(v) = self.visits.get_mut(&vid) {
                v.preference_told |= lang_miss || gender_miss;
                v.offer = Some((chosen.clone(), expires_at));
            }
            let msg = ServerMsg::WalkInOffer {
                room: self.config.id.clone(),
                visit: vid.clone(),
                name,
                reason,
                expires_at,
            };
            self.send(&chosen, msg);
            self.queue_dirty = true;
        }
    }
}

fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

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
