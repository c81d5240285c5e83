//! Fixtures for a load run against examroom, made without an HTTP API: physicians, rooms and
//! staff sessions written straight into the durable store the server uses (SQLite is in WAL
//! mode, so this works while the server runs), and tokens minted with the server's secret —
//! exactly what `tests/it/kit/seed.rs` does for the integration tests.

use examroom::durable::{DurableError, DurableStore, NewRoom, NewSession, NewStaff};
use examroom::identity::token::NewToken;
use examroom::identity::{Role, TokenKeys};
use examroom::ids::{ParticipantId, RoomId, StaffId, VisitId};
use examroom::visit::RoomKind;
use std::sync::Arc;

/// One visit: a physician with a room of their own and one patient bound to it.
#[derive(Debug, Clone)]
pub struct VisitFixture {
    pub room: RoomId,
    pub visit: VisitId,
    /// The physician's participant id (their staff id).
    pub physician: String,
    pub physician_token: String,
    pub patient: String,
    pub patient_token: String,
}

/// Everything a run needs: active visits and patients who will only wait.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    pub visits: Vec<VisitFixture>,
    /// Patient tokens for idle connections, spread over rooms nobody admits from.
    pub idle: Vec<String>,
}

/// Token lifetime for the run, seconds; longer than any bounded run.
const TTL: u64 = 4 * 3600;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn new_room(name: String, physicians: Vec<examroom::ids::StaffId>) -> NewRoom {
    NewRoom {
        waiting_message: "Thanks for waiting; the doctor will be with you shortly.".into(),
        max_wait_secs: 4 * 3600,
        max_participants: 2,
        chat_allowed: false,
        invites_allowed: false,
        ..NewRoom::with_defaults(&name, RoomKind::Physician, physicians)
    }
}

fn patient_token(keys: &TokenKeys, room: &RoomId, name: String) -> (String, String, VisitId) {
    let who = ParticipantId::new();
    let visit = VisitId::new();
    let token = keys.issue(
        NewToken {
            sub: who.to_string(),
            name,
            roles: vec![Role::Patient],
            room: Some(room.clone()),
            visit: Some(visit.clone()),
            patient: None,
            sid: None,
            lang: None,
            ttl_secs: TTL,
        },
        now(),
    );
    (token, who.to_string(), visit)
}

/// A dashboard token for the physician `staff` (`name` on the token), signed in: a staff
/// session in the store and a token bound to it, both good for `ttl_secs`.
pub async fn signed_in_physician(
    store: &dyn DurableStore,
    keys: &TokenKeys,
    staff: &StaffId,
    name: &str,
    ttl_secs: u64,
) -> Result<String, DurableError> {
    let sid = examroom::ids::random_id();
    let now = now();
    store
        .create_session(NewSession {
            id: examroom::identity::hash_secret(&sid),
            staff: staff.clone(),
            created_at: now * 1000,
            expires_at: (now + ttl_secs as i64) * 1000,
        })
        .await?;
    let token = NewToken {
        sub: staff.to_string(),
        name: name.to_owned(),
        roles: vec![Role::Physician],
        room: None,
        visit: None,
        patient: None,
        sid: Some(sid),
        lang: None,
        ttl_secs,
    };
    Ok(keys.issue(token, now))
}

/// Create `visits` physicians (each with their own room and a signed-in session) and
/// `idle` waiting patients, `idle_per_room` to a room. `tag` keeps names unique per run.
pub async fn prepare(
    store: &Arc<dyn DurableStore>,
    keys: &TokenKeys,
    tag: &str,
    visits: usize,
    idle: usize,
    idle_per_room: usize,
) -> Result<Fixtures, DurableError> {
    let mut out = Fixtures::default();
    for i in 0..visits {
        let staff = store
            .create_staff(NewStaff {
                email: format!("load-{tag}-{i}@bench.test"),
                name: format!("Dr Load {i}"),
                roles: vec![Role::Physician],
                password_hash: None,
                languages: vec!["en".into()],
                gender: None,
            })
            .await?;
        let room = store
            .create_room(new_room(format!("load {tag} {i}"), vec![staff.id.clone()]))
            .await?;
        let physician_token =
            signed_in_physician(store.as_ref(), keys, &staff.id, &staff.name, TTL).await?;
        let (patient_token, patient, visit) = patient_token(keys, &room.id, format!("Patient {i}"));
        out.visits.push(VisitFixture {
            room: room.id,
            visit,
            physician: staff.id.to_string(),
            physician_token,
            patient,
            patient_token,
        });
    }
    if idle > 0 {
        // Idle rooms need a physician on paper; nobody signs in as them, so no queue
        // updates are sent and the waiting patients only hold their connections.
        let staff = store
            .create_staff(NewStaff {
                email: format!("load-{tag}-idle@bench.test"),
                name: "Dr Away".into(),
                roles: vec![Role::Physician],
                password_hash: None,
                languages: vec!["en".into()],
                gender: None,
            })
            .await?;
        let per_room = idle_per_room.max(1);
        let mut room = None;
        for i in 0..idle {
            if i % per_room == 0 {
                let r = store
                    .create_room(new_room(
                        format!("load {tag} idle {}", i / per_room),
                        vec![staff.id.clone()],
                    ))
                    .await?;
                room = Some(r.id);
            }
            let room = room.as_ref().expect("created above");
            out.idle
                .push(patient_token(keys, room, format!("Idle {i}")).0);
        }
    }
    Ok(out)
}
