//! What participants ask for (`Act`): each request checked against who asks and the
//! visit's state, then applied or refused with an error code.

use super::{
    Act, MAX_NAME, MAX_REASON, MAX_TEXT, Millis, Refusal, Room, RoomKind, Visit, VisitState, clip,
    no_such_visit, refuse,
};
use crate::ids::Role;
use crate::ids::{ParticipantId, VisitId};
use crate::protocol::{ChatLine, ErrorCode, ServerMsg};

impl Room {
    // ---- actions --------------------------------------------------------------

    pub(super) fn act(
        &mut self,
        who: &ParticipantId,
        act: Act,
        now: Millis,
    ) -> Result<(), Refusal> {
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
                let line = ChatLine {
                    from: who.clone(),
                    name: self
                        .presence
                        .get(who)
                        .map(|p| p.member.name.clone())
                        .unwrap_or_default(),
                    text: clip(&text, MAX_TEXT),
                    at: now,
                };
                for o in self.others_in(&vid, who) {
                    let msg = ServerMsg::Chat {
                        from: line.from.clone(),
                        name: line.name.clone(),
                        text: line.text.clone(),
                        at: line.at,
                    };
                    self.send(&o, msg);
                }
                if let Some(v) = self.visits.get_mut(&vid) {
                    v.keep_chat(line);
                }
            }
        }
        Ok(())
    }

    pub(super) fn own_waiting_visit(&self, who: &ParticipantId) -> Result<VisitId, Refusal> {
        self.visits
            .values()
            .find(|v| v.patient == *who && v.state == VisitState::Waiting)
            .map(|v| v.id.clone())
            .ok_or((
                ErrorCode::NotInVisit,
                "you are not waiting in this room".to_owned(),
            ))
    }

    pub(super) fn waiting_visit(&self, visit: &VisitId) -> Result<&Visit, Refusal> {
        match self.visits.get(visit) {
            None => Err(no_such_visit()),
            Some(v) if v.state != VisitState::Waiting => refuse(
                ErrorCode::IllegalTransition,
                format!("the visit is {}, not waiting", v.state.as_str()),
            ),
            Some(v) => Ok(v),
        }
    }

    pub(super) fn in_visit(&self, who: &ParticipantId, visit: &VisitId) -> Result<(), Refusal> {
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
    pub(super) fn may_manage(&self, who: &ParticipantId) -> Result<(), Refusal> {
        let staff = self.presence.get(who).and_then(|p| p.member.staff.as_ref());
        match staff {
            Some(s) if self.config.physicians.contains(s) => Ok(()),
            _ => refuse(
                ErrorCode::NotYourRoom,
                "you are not a physician of this room",
            ),
        }
    }

    pub(super) fn admit(
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
            // Admitted again after being sent back: the chat of the earlier admission.
            self.send_chat_history(visit, p);
        }
        // A physician with an outstanding offer elsewhere in the room gives it up.
        self.withdraw_offers_of(who);
        self.queue_dirty = true;
        Ok(())
    }
}
