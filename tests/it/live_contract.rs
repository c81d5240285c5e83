//! The live-store contract, run against `MemoryLive` and `RedisLive` (real Redis at
//! `EXAMROOM_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`; each test uses its own key
//! prefix, so tests never see each other's keys and nothing is flushed).

use async_trait::async_trait;
use examroom::config::{LiveBackend, Settings};
use examroom::identity::Role;
use examroom::ids::{ParticipantId, PatientRef, RoomId, StaffId, VisitId};
use examroom::live::memory::MemoryLive;
use examroom::live::redis::{RedisConnection, RedisLive};
use examroom::live::{Effects, Inbox, Live, LiveError, Outbox, Outgoing, RoomLoader};
use examroom::protocol::ServerMsg;
use examroom::visit::room::{Input, Member, Timing, Transition};
use examroom::visit::{RoomConfig, RoomKind, VisitState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Rooms(Mutex<HashMap<RoomId, RoomConfig>>);

#[async_trait]
impl RoomLoader for Rooms {
    async fn load(&self, room: &RoomId) -> Result<Option<RoomConfig>, LiveError> {
        Ok(self.0.lock().unwrap().get(room).cloned())
    }
}

#[derive(Default)]
struct Recorded(Mutex<Vec<Transition>>);

/// A history that takes its time, as a database does: a room that sent before the write
/// finished would be caught by the admit test.
#[async_trait]
impl Effects for Recorded {
    async fn record(&self, t: Transition) {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.lock().unwrap().push(t);
    }
    fn prefetch(&self, _visit: examroom::ids::VisitId, _patient: PatientRef) {}
    fn delivered(&self, _msg: &ServerMsg) {}
}

struct Ctx {
    live: Arc<dyn Live>,
    rooms: Arc<Rooms>,
    history: Arc<Recorded>,
}

fn timing() -> Timing {
    Timing {
        grace_ms: 10_000,
        offer_ms: 30_000,
        replay_buffer: 16,
    }
}

async fn memory() -> Ctx {
    let rooms = Arc::new(Rooms::default());
    let history = Arc::new(Recorded::default());
    let live = Arc::new(MemoryLive::new(rooms.clone(), history.clone(), timing()));
    Ctx {
        live,
        rooms,
        history,
    }
}

async fn redis() -> Ctx {
    let rooms = Arc::new(Rooms::default());
    let history = Arc::new(Recorded::default());
    let mut s = Settings::default();
    s.live.backend = LiveBackend::Redis;
    s.live.lease_ms = 1000;
    s.redis.url = examroom::config::Secret::new(crate::kit::services::redis_url());
    s.redis.key_prefix = crate::kit::services::redis_prefix();
    let conn = RedisConnection::open(&s)
        .await
        .expect("Redis reachable (EXAMROOM_TEST_REDIS_URL)");
    let live = RedisLive::connect(conn, &s, rooms.clone(), history.clone(), timing())
        .await
        .expect("live store on Redis");
    Ctx {
        live: Arc::new(live),
        rooms,
        history,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory_live { $( #[tokio::test] async fn $name() { super::$name(super::memory().await).await } )* }
        mod redis_live { $( #[tokio::test] async fn $name() { super::$name(super::redis().await).await } )* }
    };
}

contract!(
    attach_detach_and_presence,
    submit_starts_the_room_and_delivers_what_it_says,
    a_physician_admits_and_the_visit_is_recorded_before_anyone_is_told,
    reconfigure_reaches_the_running_room,
    unknown_rooms_are_refused_and_the_store_is_ready,
);

struct Conn {
    outbox: Outbox,
    rx: Inbox,
}

fn conn(n: u64) -> Conn {
    let (outbox, rx) = Outbox::new(n, 64);
    Conn { outbox, rx }
}

impl Conn {
    async fn expect(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(Outgoing::Msg(m))) | Ok(Some(Outgoing::Close(m))) if pred(&m) => {
                    return *m;
                }
                Ok(Some(_)) => continue,
                _ => panic!("expected message did not arrive"),
            }
        }
    }
}

fn room(ctx: &Ctx, doc: &StaffId) -> RoomConfig {
    let cfg = RoomConfig {
        id: RoomId::new(),
        name: "Family medicine".into(),
        kind: RoomKind::Physician,
        physicians: vec![doc.clone()],
        waiting_message: "Please wait".into(),
        waiting_messages: Default::default(),
        max_wait_secs: 3600,
        max_participants: 4,
        chat_allowed: true,
        invites_allowed: true,
        archived: false,
    };
    ctx.rooms
        .0
        .lock()
        .unwrap()
        .insert(cfg.id.clone(), cfg.clone());
    cfg
}

fn patient(visit: &VisitId) -> Member {
    Member {
        id: ParticipantId::new(),
        role: Role::Patient,
        name: "Ana".into(),
        staff: None,
        visit: Some(visit.clone()),
        patient_ref: None,
        reason: Some("cough".into()),
        lang: None,
        prefers_gender: None,
        languages: vec![],
        gender: None,
    }
}

fn physician(staff: &StaffId) -> Member {
    Member {
        id: ParticipantId::new(),
        role: Role::Physician,
        name: "Dr Grey".into(),
        staff: Some(staff.clone()),
        visit: None,
        patient_ref: None,
        reason: None,
        lang: None,
        prefers_gender: None,
        languages: vec!["en".into()],
        gender: None,
    }
}

fn connect(m: &Member) -> Input {
    Input::Connect {
        member: m.clone(),
        resume: None,
        new_resume_token: examroom::ids::random_id(),
        resume_only: false,
    }
}

async fn attach_detach_and_presence(ctx: Ctx) {
    let who = ParticipantId::new();
    assert!(!ctx.live.is_connected(&who).await);
    let first = conn(1);
    assert!(ctx.live.attach(&who, first.outbox.clone()).is_none());
    assert!(ctx.live.is_connected(&who).await);
    // A second connection supersedes the first; detaching the old one changes nothing.
    let second = conn(2);
    let old = ctx
        .live
        .attach(&who, second.outbox.clone())
        .expect("replaced");
    assert_eq!(old.conn, 1);
    ctx.live.detach(&who, 1);
    assert!(ctx.live.is_connected(&who).await);
    ctx.live.detach(&who, 2);
    assert!(!ctx.live.is_connected(&who).await);
    assert_eq!(ctx.live.stats().participants, 0);
}

async fn submit_starts_the_room_and_delivers_what_it_says(ctx: Ctx) {
    let doc = StaffId::new();
    let cfg = room(&ctx, &doc);
    let visit = VisitId::new();
    let ana = patient(&visit);
    let mut c = conn(1);
    ctx.live.attach(&ana.id, c.outbox.clone());
    ctx.live.submit(&cfg.id, connect(&ana)).await.unwrap();
    let w = c.expect(|m| matches!(m, ServerMsg::Waiting { .. })).await;
    let ServerMsg::Waiting { position, .. } = w else {
        unreachable!()
    };
    assert_eq!(position, 1);
    assert_eq!(ctx.live.stats().rooms, 1);
}

async fn a_physician_admits_and_the_visit_is_recorded_before_anyone_is_told(ctx: Ctx) {
    let staff = StaffId::new();
    let cfg = room(&ctx, &staff);
    let visit = VisitId::new();
    let ana = patient(&visit);
    let grey = physician(&staff);
    let (mut pc, mut dc) = (conn(1), conn(2));
    ctx.live.attach(&ana.id, pc.outbox.clone());
    ctx.live.attach(&grey.id, dc.outbox.clone());
    ctx.live.submit(&cfg.id, connect(&grey)).await.unwrap();
    ctx.live.submit(&cfg.id, connect(&ana)).await.unwrap();
    dc.expect(|m| matches!(m, ServerMsg::Queue { entries, .. } if entries.len() == 1))
        .await;
    let admit = Input::Act {
        who: grey.id.clone(),
        act: examroom::visit::room::Act::Admit {
            visit: visit.clone(),
        },
    };
    ctx.live.submit(&cfg.id, admit).await.unwrap();
    pc.expect(|m| matches!(m, ServerMsg::Admitted { .. })).await;
    // Whatever a participant is told happened is already in the history.
    let states: Vec<VisitState> = ctx
        .history
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, vec![VisitState::Waiting, VisitState::Admitted]);
    dc.expect(|m| matches!(m, ServerMsg::Admitted { .. })).await;
}

async fn reconfigure_reaches_the_running_room(ctx: Ctx) {
    let doc = StaffId::new();
    let mut cfg = room(&ctx, &doc);
    let ana = patient(&VisitId::new());
    let mut c = conn(1);
    ctx.live.attach(&ana.id, c.outbox.clone());
    ctx.live.submit(&cfg.id, connect(&ana)).await.unwrap();
    c.expect(|m| matches!(m, ServerMsg::Waiting { .. })).await;
    cfg.waiting_message = "Running 10 minutes late".into();
    ctx.rooms
        .0
        .lock()
        .unwrap()
        .insert(cfg.id.clone(), cfg.clone());
    ctx.live.reconfigure(cfg).await.unwrap();
    c.expect(
        |m| matches!(m, ServerMsg::Waiting { message, .. } if message == "Running 10 minutes late"),
    )
    .await;
}

async fn unknown_rooms_are_refused_and_the_store_is_ready(ctx: Ctx) {
    ctx.live.ready().await.unwrap();
    let ana = patient(&VisitId::new());
    let e = ctx.live.submit(&RoomId::new(), connect(&ana)).await;
    assert!(matches!(e, Err(LiveError::RoomNotFound)), "{e:?}");
    assert_eq!(ctx.live.stats().rooms, 0);
}
