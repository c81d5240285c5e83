//! What a test puts straight into the stores, as an admin, a sign-in or a join link would
//! leave it: staff, rooms, sessions, links and tokens. One copy for the in-process
//! [`TestApp`](super::TestApp) and the process [`Cluster`](super::cluster::Cluster).

use examroom::durable::{
    DurableStore, LinkKind, NewLink, NewRoom, NewSession, NewStaff, VisitRecord,
};
use examroom::identity::token::NewToken;
use examroom::identity::{Role, TokenKeys};
use examroom::ids::{LinkId, ParticipantId, PatientRef, RoomId, StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind};
use std::time::Duration;

/// `Dr Grey` → `dr.grey@clinic.test`.
pub fn email_of(name: &str) -> String {
    format!("{}@clinic.test", name.to_lowercase().replace(' ', "."))
}

/// An English-speaking account named `name` with no password (tokens are minted for it).
pub fn new_staff(name: &str, roles: Vec<Role>) -> NewStaff {
    NewStaff {
        email: email_of(name),
        name: name.into(),
        roles,
        password_hash: None,
        languages: vec!["en".into()],
        gender: None,
    }
}

/// A physician account as the store tests make it: `name` at `email`, no languages.
pub async fn physician_in(store: &dyn DurableStore, email: &str, name: &str) -> StaffId {
    let staff = NewStaff {
        email: email.into(),
        languages: vec![],
        ..new_staff(name, vec![Role::Physician])
    };
    create_staff(store, staff).await
}

pub async fn create_staff(store: &dyn DurableStore, staff: NewStaff) -> StaffId {
    store.create_staff(staff).await.unwrap().id
}

/// A room of `kind` for `physicians`: four participants, an hour's wait, chat and invites on.
pub fn new_room(name: &str, kind: RoomKind, physicians: &[&StaffId], waiting: &str) -> NewRoom {
    let physicians = physicians.iter().map(|s| (*s).clone()).collect();
    NewRoom {
        waiting_message: waiting.into(),
        max_wait_secs: 3600,
        ..NewRoom::with_defaults(name, kind, physicians)
    }
}

pub async fn create_room(store: &dyn DurableStore, room: NewRoom) -> RoomConfig {
    store.create_room(room).await.unwrap()
}

/// A signed-in staff token with a live server-side session, valid for an hour.
pub async fn staff_token(
    store: &dyn DurableStore,
    keys: &TokenKeys,
    staff: &StaffId,
    roles: Vec<Role>,
) -> String {
    let sid = examroom::ids::random_id();
    let now = chrono::Utc::now().timestamp();
    store
        .create_session(NewSession {
            id: examroom::identity::hash_secret(&sid),
            staff: staff.clone(),
            created_at: now * 1000,
            expires_at: (now + 3600) * 1000,
        })
        .await
        .unwrap();
    keys.issue(
        NewToken {
            sub: staff.to_string(),
            name: "staff".into(),
            roles,
            room: None,
            visit: None,
            patient: None,
            sid: Some(sid),
            lang: None,
            ttl_secs: 3600,
        },
        now,
    )
}

/// A token for `who` (a patient, or a guest with `Role::Guest`) in `visit` of `room`, as a
/// join link would give, valid for 15 minutes.
pub fn visit_token(
    keys: &TokenKeys,
    who: &ParticipantId,
    name: &str,
    role: Role,
    (room, visit): (&RoomId, &VisitId),
    (patient, lang): (Option<PatientRef>, Option<&str>),
) -> String {
    keys.issue(
        NewToken {
            sub: who.to_string(),
            name: name.into(),
            roles: vec![role],
            room: Some(room.clone()),
            visit: Some(visit.clone()),
            patient,
            sid: None,
            lang: lang.map(str::to_owned),
            ttl_secs: 900,
        },
        chrono::Utc::now().timestamp(),
    )
}

/// A patient token bound to `room` and a new visit.
pub fn patient_token(
    keys: &TokenKeys,
    room: &RoomId,
    name: &str,
    patient: Option<PatientRef>,
    lang: Option<&str>,
) -> (String, ParticipantId, VisitId) {
    let who = ParticipantId::new();
    let visit = VisitId::new();
    let t = visit_token(
        keys,
        &who,
        name,
        Role::Patient,
        (room, &visit),
        (patient, lang),
    );
    (t, who, visit)
}

/// An unused patient join link for `room` made by `by` at `now` (ms), for a new visit, valid
/// for an hour.
pub fn new_patient_link(room: &RoomId, by: &StaffId, code: &str, name: &str, now: i64) -> NewLink {
    NewLink {
        id: LinkId::new(),
        code_hash: examroom::identity::hash_secret(code),
        kind: LinkKind::Patient,
        room: room.clone(),
        visit: VisitId::new(),
        patient_name: Some(name.into()),
        patient_ref: None,
        reason: None,
        lang: None,
        not_before: None,
        expires_at: now + 3_600_000,
        created_by: by.clone(),
        created_at: now,
    }
}

/// The visit's history once it has an outcome (history is written behind the live state).
pub async fn finished_visit(store: &dyn DurableStore, visit: &VisitId) -> VisitRecord {
    for _ in 0..100 {
        if let Ok(Some(v)) = store.visit(visit).await
            && v.outcome.is_some()
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("visit {visit} never reached a final state in the history");
}
