//! [`RoomSnapshot`]: the one way a room's state leaves or enters a [`Room`] — to Redis
//! for failover, and in memory as the last good state a panicking room is restored from.
//!
//! The JSON is a cross-process format: a node upgraded mid-visit takes over rooms that
//! older nodes wrote, so a change to a field's name or meaning needs a new [`VERSION`]
//! and a reader for the old one. `legacy_snapshot.json` is what nodes wrote before the
//! format had a version; the tests keep it loading.

use super::{Presence, Room, Timing, Visit};
use crate::ids::{ParticipantId, RoomId, VisitId};
use crate::visit::RoomConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The snapshot version this node writes, and the newest it reads.
pub const VERSION: u32 = 1;

fn unversioned() -> u32 {
    // Written before snapshots had a version: the same fields as version 1.
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSnapshot {
    #[serde(default = "unversioned")]
    version: u32,
    config: RoomConfig,
    timing: Timing,
    visits: BTreeMap<VisitId, Box<Visit>>,
    presence: HashMap<ParticipantId, Box<Presence>>,
    next_seq: u64,
    /// Nodes from before the versioned format read a snapshot as the `Room` itself and
    /// require these two; they are written (always empty / false) so a rolling upgrade
    /// can still hand rooms to a node that is not upgraded yet.
    #[serde(rename = "out", default, skip_deserializing)]
    legacy_out: [(); 0],
    #[serde(rename = "queue_dirty", default, skip_deserializing)]
    legacy_queue_dirty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "room snapshot version {found} is not one this node reads (it reads up to {VERSION}); \
         upgrade this node or let a newer one own the room"
    )]
    UnknownVersion { found: u32 },
    #[error("room snapshot unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("room snapshot is of room {found}, not {expected}")]
    OtherRoom { expected: RoomId, found: RoomId },
}

/// Only the version, read first: a newer format may not parse as this one at all.
#[derive(Deserialize)]
struct Probe {
    #[serde(default = "unversioned")]
    version: u32,
}

impl RoomSnapshot {
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn room(&self) -> &RoomId {
        &self.config.id
    }

    /// Everyone the room knows, connected or within their grace period.
    pub fn participants(&self) -> impl Iterator<Item = &ParticipantId> {
        self.presence.keys()
    }

    /// Participants the room believes connected.
    pub fn connected(&self) -> impl Iterator<Item = &ParticipantId> {
        self.presence
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, _)| id)
    }

    pub fn to_json(&self) -> String {
        // Invariant: only strings, numbers and maps keyed by id strings, which always serialise.
        serde_json::to_string(self).expect("room snapshots serialise")
    }

    pub fn from_json(json: &str) -> Result<Self, SnapshotError> {
        let Probe { version } = serde_json::from_str(json)?;
        check_version(version)?;
        Ok(serde_json::from_str(json)?)
    }
}

fn check_version(found: u32) -> Result<(), SnapshotError> {
    if (1..=VERSION).contains(&found) {
        Ok(())
    } else {
        Err(SnapshotError::UnknownVersion { found })
    }
}

impl Room {
    /// The room's state as it is now.
    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            version: VERSION,
            config: self.config.clone(),
            timing: self.timing.clone(),
            visits: self.visits.clone(),
            presence: self.presence.clone(),
            next_seq: self.next_seq,
            legacy_out: [],
            legacy_queue_dirty: false,
        }
    }

    /// The room a snapshot describes, under `config`: the admin's latest settings win
    /// over the snapshot's (its timing stays the snapshot's).
    pub fn restore(snapshot: RoomSnapshot, config: RoomConfig) -> Result<Room, SnapshotError> {
        check_version(snapshot.version)?;
        if snapshot.config.id != config.id {
            return Err(SnapshotError::OtherRoom {
                expected: config.id,
                found: snapshot.config.id,
            });
        }
        Ok(Room {
            config,
            timing: snapshot.timing,
            visits: snapshot.visits,
            presence: snapshot.presence,
            next_seq: snapshot.next_seq,
            out: Vec::new(),
            // Queue and positions go out again with the next input, as after a reconfigure.
            queue_dirty: true,
        })
    }
}

/// A room's own state without its configuration and timing, which the room keeps: the
/// form of the last good copy a room task holds in memory ([`Room::state_json`]). Never
/// leaves the process, so it has no version.
#[derive(Serialize)]
struct StateRef<'a> {
    visits: &'a BTreeMap<VisitId, Box<Visit>>,
    presence: &'a HashMap<ParticipantId, Box<Presence>>,
    next_seq: u64,
}

#[derive(Deserialize)]
struct State {
    visits: BTreeMap<VisitId, Box<Visit>>,
    presence: HashMap<ParticipantId, Box<Presence>>,
    next_seq: u64,
}

impl Room {
    /// Visits, presences and the queue counter as JSON, for [`Room::put_back`].
    pub fn state_json(&self) -> String {
        let state = StateRef {
            visits: &self.visits,
            presence: &self.presence,
            next_seq: self.next_seq,
        };
        // Invariant: as `RoomSnapshot::to_json`.
        serde_json::to_string(&state).expect("room state serialises")
    }

    /// Go back to a state [`Room::state_json`] wrote, keeping configuration and timing.
    pub fn put_back(&mut self, json: &str) -> Result<(), SnapshotError> {
        let state: State = serde_json::from_str(json)?;
        self.visits = state.visits;
        self.presence = state.presence;
        self.next_seq = state.next_seq;
        self.out.clear();
        self.queue_dirty = true;
        Ok(())
    }

    /// Participants the room believes connected.
    pub fn connected(&self) -> impl Iterator<Item = &ParticipantId> {
        self.presence
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMsg;
    use crate::visit::VisitState;
    use crate::visit::room::{Input, Member, Output};

    const LEGACY: &str = include_str!("legacy_snapshot.json");

    fn config_of(json: &str) -> RoomConfig {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        serde_json::from_value(v["config"].clone()).unwrap()
    }

    #[test]
    fn a_snapshot_written_before_versions_still_loads() {
        let snap = RoomSnapshot::from_json(LEGACY).unwrap();
        assert_eq!(snap.version(), 1);
        let mut room = Room::restore(snap, config_of(LEGACY)).unwrap();
        let v1 = VisitId::parse("v_1").unwrap();
        assert_eq!(room.visit_state(&v1), Some(VisitState::Admitted));
        assert_eq!(
            room.visit_state(&VisitId::parse("v_2").unwrap()),
            Some(VisitState::Waiting)
        );
        // The dropped patient resumes with its token and gets the held offer replayed.
        let pat = ParticipantId::parse("p_pat").unwrap();
        let out = room.handle(
            Input::Connect {
                member: Member::test("p_pat", crate::ids::Role::Patient, Some("v_1")),
                resume: Some("t0".into()),
                new_resume_token: "t1".into(),
                resume_only: false,
            },
            5000,
        );
        assert!(out.iter().any(|o| matches!(o,
            Output::Send { to, msg: ServerMsg::Offer { sdp, .. } } if *to == pat && sdp == "restart")));
        assert!(out.iter().any(|o| matches!(o,
            Output::Send { msg: ServerMsg::PeerResumed { participant }, .. } if *participant == pat)));
    }

    #[test]
    fn a_snapshot_round_trips_and_old_readers_find_their_fields() {
        let room =
            Room::restore(RoomSnapshot::from_json(LEGACY).unwrap(), config_of(LEGACY)).unwrap();
        let json = room.snapshot().to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["out"], serde_json::json!([]));
        assert_eq!(v["queue_dirty"], false);
        let again = RoomSnapshot::from_json(&json).unwrap();
        let mut connected: Vec<&str> = again.connected().map(|p| p.as_str()).collect();
        connected.sort();
        assert_eq!(connected, ["p_two", "s_doc"]);
        assert_eq!(again.participants().count(), 3);
    }

    #[test]
    fn a_snapshot_from_a_newer_version_is_refused_clearly() {
        let future = r#"{"version": 2, "rooms_v2": {"anything": "else"}}"#;
        let err = RoomSnapshot::from_json(future).unwrap_err();
        assert!(matches!(err, SnapshotError::UnknownVersion { found: 2 }));
        assert!(err.to_string().contains("version 2"), "{err}");
        let mut v: serde_json::Value = serde_json::from_str(LEGACY).unwrap();
        v["version"] = 7.into();
        assert!(matches!(
            RoomSnapshot::from_json(&v.to_string()),
            Err(SnapshotError::UnknownVersion { found: 7 })
        ));
    }

    #[test]
    fn a_snapshot_restores_only_its_own_room() {
        let snap = RoomSnapshot::from_json(LEGACY).unwrap();
        let mut other = config_of(LEGACY);
        other.id = RoomId::parse("r_b").unwrap();
        assert!(matches!(
            Room::restore(snap, other),
            Err(SnapshotError::OtherRoom { .. })
        ));
    }
}
