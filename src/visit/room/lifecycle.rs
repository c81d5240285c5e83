//! Connections and time: who enters (admission), who drops and comes back (grace,
//! resume), who leaves, and how a visit goes back to waiting or ends.

use super::{
    MAX_NAME, MAX_REASON, Member, Millis, Output, Presence, Room, Visit, VisitState, clip,
};
use crate::ids::Role;
use crate::ids::{ParticipantId, VisitId};
use crate::protocol::{ErrorCode, ServerMsg};
use std::collections::{BTreeSet, VecDeque};

impl Room {
    // ---- connections ----------------------------------------------------------

    pub(super) fn connect(
        &mut self,
        member: Member,
        resume: Option<String>,
        token: String,
        resume_only: bool,
        now: Millis,
    ) {
        let id = member.id.clone();
        // Resuming (same page, kept its peer connections) replays what it missed.
        let (resumed, replay) = match self.presence.get_mut(&id) {
            Some(p) => {
                let resumed = resume.is_some_and(|r| r == p.resume_token) && !p.connected;
                let replay = std::mem::take(&mut p.replay);
                p.connected = true;
                p.dropped_at = None;
                p.resume_token = token;
                // A resume without the database has no link to read the reason from.
                let reason = if resume_only {
                    p.member.reason.clone()
                } else {
                    member.reason.clone()
                };
                p.member = Member {
                    languages: member.languages.clone(),
                    reason,
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
                    Box::new(Presence {
                        member: member.clone(),
                        connected: true,
                        dropped_at: None,
                        resume_token: token,
                        replay: VecDeque::new(),
                        available: true,
                        free_since: now,
                    }),
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

    /// Whether the room holds `who` with `resume` as her current resume token.
    pub(super) fn holds(&self, who: &ParticipantId, resume: Option<&str>) -> bool {
        self.presence
            .get(who)
            .is_some_and(|p| resume.is_some_and(|r| r == p.resume_token))
    }

    /// Whether a first-time member may enter at all; `Some(error)` refuses.
    pub(super) fn check_admission(&self, m: &Member) -> Option<ServerMsg> {
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

    pub(super) fn patient_connected(&mut self, m: &Member, resumed: bool, now: Millis) {
        // A first connection was checked at admission; a returning one may not be bound.
        let Some(vid) = m.visit.clone() else {
            return self.unbound(m);
        };
        if !self.visits.contains_key(&vid) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.visits.insert(
                vid.clone(),
                Box::new(Visit {
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
                    chat: VecDeque::new(),
                }),
            );
            self.record(&vid, m.id.as_str(), now);
            if let Some(p) = &m.patient_ref {
                self.out.push(Output::Prefetch {
                    visit: vid.clone(),
                    patient: p.clone(),
                });
            }
        }
        // Her visit is over (she was away, or the message saying so was lost with its
        // node or with Redis): say so, as to anyone who comes back to a closed visit.
        if let Some(v) = self.visits.get(&vid)
            && v.state.is_final()
        {
            let msg = ServerMsg::error(
                ErrorCode::VisitClosed,
                format!("this visit has {}", v.state.as_str().replace('_', " ")),
            );
            self.out.push(Output::Close {
                who: m.id.clone(),
                msg,
            });
            return;
        }
        if self.visits.get(&vid).is_some_and(|v| v.active()) {
            self.rejoin_call(&vid, &m.id, resumed);
        }
        // Waiting: position is sent by flush_queue.
        self.queue_dirty = true;
    }

    pub(super) fn guest_connected(&mut self, m: &Member, resumed: bool) {
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
    pub(super) fn unbound(&mut self, m: &Member) {
        self.out.push(Output::Close {
            who: m.id.clone(),
            msg: ServerMsg::error(ErrorCode::Forbidden, "token is not bound to a visit"),
        });
    }

    /// Everyone in visit `vid` but `who`.
    pub(super) fn others_in(&self, vid: &VisitId, who: &ParticipantId) -> Vec<ParticipantId> {
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

    pub(super) fn announce_joined(&mut self, vid: &VisitId, who: &ParticipantId) {
        for o in self.others_in(vid, who) {
            if let Some(peer) = self.peer_info(&o, who) {
                self.send(&o, ServerMsg::PeerJoined { peer });
            }
        }
    }

    /// A participant of an active visit is back: they get the visit as it is, the others
    /// learn whether to restart ICE (resumed) or build a new peer connection (fresh page).
    pub(super) fn rejoin_call(&mut self, vid: &VisitId, who: &ParticipantId, resumed: bool) {
        // The returning side always learns the visit as it is now; a page that kept its
        // peer connections keeps those and only builds the ones it lacks.
        if let Some(msg) = self.visits.get(vid).map(|v| self.admitted_msg(v, who)) {
            self.send(who, msg);
        }
        if !resumed {
            // A fresh page has lost its chat; a resumed one keeps it and gets the replay.
            self.send_chat_history(vid, who);
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

    pub(super) fn disconnect(&mut self, who: &ParticipantId, now: Millis) {
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

    pub(super) fn tick(&mut self, now: Millis) {
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

    /// When time alone next changes this room: a dropped participant's grace period, a
    /// waiting patient's wait limit or a walk-in offer running out — exactly the checks of
    /// `tick`, so `Tick` before it changes nothing and a runtime may sleep until then.
    /// `None`: nothing is timed.
    pub fn next_deadline(&self) -> Option<Millis> {
        let grace = self
            .presence
            .values()
            .filter_map(|p| p.dropped_at.map(|t| t + self.timing.grace_ms));
        let max_wait = self.config.max_wait_secs as Millis * 1000;
        let waits = self.visits.values().flat_map(|v| {
            let no_show = (v.state == VisitState::Waiting).then_some(v.queued_at + max_wait);
            let offer = v.offer.as_ref().map(|(_, deadline)| *deadline);
            no_show.into_iter().chain(offer)
        });
        grace.chain(waits).min()
    }

    /// A waiting visit ends without a call (left, denied, no-show).
    pub(super) fn finish_waiting(
        &mut self,
        vid: &VisitId,
        state: VisitState,
        actor: &str,
        now: Millis,
    ) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.state = state;
        v.chat.clear();
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
    pub(super) fn depart(&mut self, who: &ParticipantId, reason: &str, now: Millis) {
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
    pub(super) fn leave_call(
        &mut self,
        vid: &VisitId,
        who: &ParticipantId,
        reason: &str,
        now: Millis,
    ) {
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

    pub(super) fn is_physician(&self, p: &ParticipantId) -> bool {
        self.presence
            .get(p)
            .is_some_and(|p| p.member.role == Role::Physician)
    }

    pub(super) fn active_visit_of(&self, who: &ParticipantId) -> Option<VisitId> {
        self.visits
            .values()
            .find(|v| v.active() && v.participants.contains(who))
            .map(|v| v.id.clone())
    }

    pub(super) fn back_to_waiting(&mut self, vid: &VisitId, actor: &str, now: Millis) {
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

    pub(super) fn end_visit(&mut self, vid: &VisitId, by: &str, now: Millis) {
        let Some(v) = self.visits.get_mut(vid) else {
            return;
        };
        v.state = VisitState::Ended;
        v.chat.clear();
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

    pub(super) fn mark_free(&mut self, who: &ParticipantId, now: Millis) {
        if let Some(p) = self.presence.get_mut(who) {
            p.free_since = now;
        }
    }
}
