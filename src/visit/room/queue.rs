//! The waiting queue as physicians and patients see it, and walk-in matching: which
//! free physician each waiting patient is offered to.

use super::{Millis, Room, Visit, VisitState};
use crate::ids::Role;
use crate::ids::{ParticipantId, VisitId};
use crate::protocol::{QueueEntry, ServerMsg};

impl Room {
    pub(super) fn waiting_order(&self) -> Vec<VisitId> {
        let mut w: Vec<&Visit> = self
            .visits
            .values()
            .map(|v| &**v)
            .filter(|v| v.state == VisitState::Waiting)
            .collect();
        w.sort_by_key(|v| (v.queued_at, v.seq));
        w.into_iter().map(|v| v.id.clone()).collect()
    }

    pub(super) fn physicians_here(&self) -> Vec<ParticipantId> {
        self.presence
            .iter()
            .filter(|(_, p)| p.member.role == Role::Physician)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Queue to physicians and positions to waiting patients, once per input.
    pub(super) fn flush_queue(&mut self) {
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
                messages: self.config.waiting_messages.clone(),
            };
            self.send(&patient, msg);
        }
    }

    // ---- walk-in matching -----------------------------------------------------

    pub(super) fn withdraw_offers_of(&mut self, doc: &ParticipantId) {
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

    pub(super) fn pass(&mut self, vid: &VisitId, doc: &ParticipantId) {
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

    pub(super) fn is_free(&self, doc: &ParticipantId) -> bool {
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
    pub(super) fn match_walk_in(&mut self, now: Millis) {
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
            let lang = v.lang.as_deref();
            let gender = v.prefers_gender.clone();
            let presence = &self.presence;
            let score = |d: &ParticipantId| {
                // `free` holds present physicians only (`is_free`); a missing one sorts last.
                let m = presence.get(d);
                let lang_ok = m.is_some_and(|m| {
                    lang.is_none_or(|l| m.member.languages.iter().any(|x| same_language(x, l)))
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

/// Language tags compare on their primary subtag: a patient asking for `es` is served by
/// a physician who speaks `es-MX`. Walk-in pairing, the directory and booking all match
/// languages with this one rule.
pub fn same_language(a: &str, b: &str) -> bool {
    let primary = |t: &str| t.split(['-', '_']).next().unwrap_or(t).to_ascii_lowercase();
    primary(a) == primary(b)
}
