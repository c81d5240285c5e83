//! The appointment store's contract (issue 21), on SQLite and on PostgreSQL: double
//! booking is impossible under concurrency, a move frees the old slot at once, the outbox
//! is claimed by one worker at a time, stale notices are dropped in the transaction that
//! makes them stale. Same shape as `durable_contract`: each check runs on a fresh SQLite
//! file and a fresh PostgreSQL database.

use crate::kit::services::on_fresh_postgres;
use examroom::config::Settings;
use examroom::durable::appointments::*;
use examroom::durable::{DurableStore, NewLink, NewRoom, NewStaff, open};
use examroom::ids::{AppointmentId, NoticeId, Role, StaffId};
use examroom::scheduling::{Schedule, Span, VisitType, VisitTypeKey};
use examroom::visit::{RoomConfig, RoomKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Check = fn(Arc<dyn DurableStore>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

async fn run_sqlite(check: Check) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.data_dir = dir.path().join("data");
    check(open(&settings).await.unwrap()).await;
}

async fn run_postgres(check: Check) {
    on_fresh_postgres(|settings| async move {
        check(open(&settings).await.unwrap()).await;
    })
    .await;
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_sqlite(|s| Box::pin(super::$name(s))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_postgres(|s| Box::pin(super::$name(s))).await;
                }
            )*
        }
    };
}

contract!(
    many_concurrent_bookers_of_one_slot_make_exactly_one_appointment,
    bookers_of_different_visit_types_racing_for_overlapping_times_make_exactly_one,
    an_expired_hold_frees_its_slot_for_the_next_booker,
    a_move_frees_the_old_slot_and_drops_the_old_notices_in_one_transaction,
    a_cancel_frees_the_slot_and_revokes_the_join_link,
    concurrent_workers_never_claim_one_notice_twice,
    schedules_are_stored_and_replaced,
    code_attempts_are_limited_under_concurrency,
    two_nodes_deliver_each_notice_exactly_once,
);

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

/// Dr Vega, her room, and a pending booking maker.
async fn physician(s: &Arc<dyn DurableStore>) -> (StaffId, RoomConfig) {
    let doc = s
        .create_staff(NewStaff {
            email: "vega@clinic.example".into(),
            name: "Dr Vega".into(),
            roles: vec![Role::Physician],
            password_hash: None,
            languages: vec!["es".into()],
            gender: Some("f".into()),
        })
        .await
        .unwrap();
    let room = s
        .create_room(NewRoom::with_defaults(
            "Vega",
            RoomKind::Physician,
            vec![doc.id.clone()],
        ))
        .await
        .unwrap();
    (doc.id, room)
}

fn booking(doc: &StaffId, room: &RoomConfig, starts_at: i64, now: i64) -> NewAppointment {
    booking_of("visit", 30, doc, room, starts_at, now)
}

/// A booking of a visit type `key` lasting `mins` (no buffer).
fn booking_of(
    key: &str,
    mins: i64,
    doc: &StaffId,
    room: &RoomConfig,
    starts_at: i64,
    now: i64,
) -> NewAppointment {
    NewAppointment {
        id: AppointmentId::new(),
        physician: doc.clone(),
        room: room.id.clone(),
        visit_type: VisitTypeKey::parse(key).unwrap(),
        visit_name: key.into(),
        starts_at,
        ends_at: starts_at + mins * MIN,
        busy_until: starts_at + mins * MIN,
        hold_until: now + 15 * MIN,
        patient_name: "Ana Ruiz".into(),
        email: Some("ana@example.org".into()),
        phone: None,
        birth_date: "1980-04-23".into(),
        reason: "a rash".into(),
        lang: "es".into(),
        consent: true,
        created_at: now,
    }
}

fn notice(kind: NoticeKind, due_at: i64) -> NewNotice {
    NewNotice {
        id: NoticeId::new(),
        kind,
        lead_secs: None,
        channel: "email".into(),
        due_at,
    }
}

fn join_link(a: &Appointment, now: i64) -> NewLink {
    let code_hash = examroom::ids::random_id() + &examroom::ids::random_id();
    let window = JoinWindow {
        before_ms: 15 * MIN,
        after_ms: 30 * MIN,
    };
    a.join_link(code_hash, window, now)
}

/// Books and confirms an appointment at `starts_at` with a reminder notice.
async fn confirmed(
    s: &Arc<dyn DurableStore>,
    doc: &StaffId,
    room: &RoomConfig,
    starts_at: i64,
) -> Appointment {
    let a = s
        .book(booking(doc, room, starts_at, T0), vec![])
        .await
        .unwrap();
    let change = AppointmentChange {
        id: a.id.clone(),
        now: T0 + 1,
        notices: vec![notice(NoticeKind::Reminder, starts_at - 60 * MIN)],
    };
    let manage = examroom::ids::random_id();
    s.confirm(&a.id, &manage, join_link(&a, T0 + 1), change)
        .await
        .unwrap()
}

async fn many_concurrent_bookers_of_one_slot_make_exactly_one_appointment(
    s: Arc<dyn DurableStore>,
) {
    let (doc, room) = physician(&s).await;
    let slot = T0 + 24 * 60 * MIN;
    const BOOKERS: usize = 24;
    let barrier = Arc::new(tokio::sync::Barrier::new(BOOKERS));
    let tasks: Vec<_> = (0..BOOKERS)
        .map(|_| {
            let (s, doc, room, barrier) = (s.clone(), doc.clone(), room.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                s.book(
                    booking(&doc, &room, slot, T0),
                    vec![notice(NoticeKind::Code, T0)],
                )
                .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(examroom::durable::DurableError::Conflict { field, .. }) => {
                assert_eq!(field, "starts_at")
            }
            Err(other) => panic!("a loser must be told the slot is taken: {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one booker wins the slot");
    let all = s
        .list_appointments(Some(&doc), T0, T0 + 48 * 60 * MIN)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    // The losers wrote nothing: one code notice, the winner's.
    assert_eq!(s.notices_of(&all[0].id).await.unwrap().len(), 1);
    assert_eq!(
        s.claim_notices("w", T0, MIN, 100).await.unwrap().len(),
        1,
        "no notice of a losing booker exists"
    );
}

/// 24 bookers of 30- and 40-minute visits starting 09:00, 09:05 … 09:25: every two of
/// them overlap (all cover 09:25–09:30) though most start at different times. Exactly one
/// wins; once it is cancelled, a visit overlapping it can be booked.
async fn bookers_of_different_visit_types_racing_for_overlapping_times_make_exactly_one(
    s: Arc<dyn DurableStore>,
) {
    let (doc, room) = physician(&s).await;
    let nine = T0 + 24 * 60 * MIN;
    const BOOKERS: usize = 24;
    let barrier = Arc::new(tokio::sync::Barrier::new(BOOKERS));
    let tasks: Vec<_> = (0..BOOKERS)
        .map(|i| {
            let (s, doc, room, barrier) = (s.clone(), doc.clone(), room.clone(), barrier.clone());
            let start = nine + (i as i64 % 6) * 5 * MIN;
            let (key, mins) = if i % 2 == 0 {
                ("follow-up", 30)
            } else {
                ("first", 40)
            };
            tokio::spawn(async move {
                barrier.wait().await;
                s.book(
                    booking_of(key, mins, &doc, &room, start, T0),
                    vec![notice(NoticeKind::Code, T0)],
                )
                .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => won.push(a),
            Err(examroom::durable::DurableError::Conflict { field, .. }) => {
                assert_eq!(field, "starts_at")
            }
            Err(other) => panic!("a loser must be told the time is taken: {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one booker wins");
    let all = s
        .list_appointments(Some(&doc), T0, T0 + 48 * 60 * MIN)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the losers wrote no appointment");
    assert_eq!(
        s.claim_notices("w", T0, MIN, 100).await.unwrap().len(),
        1,
        "no notice of a losing booker exists"
    );
    // Non-overlapping neighbours of the winner are bookable: its units end where it does.
    let winner = &won[0];
    let after = s
        .book(
            booking_of("follow-up", 30, &doc, &room, winner.busy_until, T0),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(after.starts_at, winner.ends_at);
    let overlapping = booking_of("first", 40, &doc, &room, winner.ends_at - 5 * MIN, T0);
    assert!(s.book(overlapping.clone(), vec![]).await.is_err());
    // Cancelled: its time is free at once, for a visit of another length.
    s.cancel(AppointmentChange {
        id: winner.id.clone(),
        now: T0 + 1,
        notices: vec![],
    })
    .await
    .unwrap();
    let overlapping = NewAppointment {
        ends_at: winner.starts_at + 25 * MIN,
        busy_until: winner.starts_at + 25 * MIN,
        starts_at: winner.starts_at - 15 * MIN,
        ..overlapping
    };
    s.book(overlapping, vec![]).await.unwrap();
}

async fn an_expired_hold_frees_its_slot_for_the_next_booker(s: Arc<dyn DurableStore>) {
    let (doc, room) = physician(&s).await;
    let slot = T0 + 24 * 60 * MIN;
    let first = s
        .book(booking(&doc, &room, slot, T0), vec![])
        .await
        .unwrap();
    // Held: busy, and a second booker is refused.
    assert_eq!(
        s.busy(&doc, slot, slot + 1, T0 + MIN).await.unwrap().len(),
        1
    );
    assert!(
        s.book(booking(&doc, &room, slot, T0 + MIN), vec![])
            .await
            .is_err()
    );
    // 15 minutes later the hold is over: free, and booking it marks the old one expired.
    let later = T0 + 16 * MIN;
    assert!(
        s.busy(&doc, slot, slot + 1, later)
            .await
            .unwrap()
            .is_empty()
    );
    let second = s
        .book(booking(&doc, &room, slot, later), vec![])
        .await
        .unwrap();
    assert_eq!(second.status, AppointmentStatus::Pending);
    let old = s.appointment(&first.id).await.unwrap().unwrap();
    assert_eq!(old.status, AppointmentStatus::Expired);
    // The expired one cannot be confirmed any more.
    let change = AppointmentChange {
        id: first.id.clone(),
        now: later,
        notices: vec![],
    };
    assert!(
        s.confirm(&first.id, "x", join_link(&old, later), change)
            .await
            .is_err()
    );
}

async fn a_move_frees_the_old_slot_and_drops_the_old_notices_in_one_transaction(
    s: Arc<dyn DurableStore>,
) {
    let (doc, room) = physician(&s).await;
    let (nine, ten) = (T0 + 24 * 60 * MIN, T0 + 25 * 60 * MIN);
    let a = confirmed(&s, &doc, &room, nine).await;
    let other = confirmed(&s, &doc, &room, T0 + 26 * 60 * MIN).await;
    let window = JoinWindow {
        before_ms: 15 * MIN,
        after_ms: 30 * MIN,
    };
    // Moving onto a taken slot is refused and changes nothing.
    let change = |now| AppointmentChange {
        id: a.id.clone(),
        now,
        notices: vec![notice(NoticeKind::Moved, now)],
    };
    let taken = s
        .reschedule(
            other.starts_at,
            other.ends_at,
            other.busy_until,
            window,
            change(T0 + 2),
        )
        .await;
    assert!(matches!(
        taken,
        Err(examroom::durable::DurableError::Conflict {
            field: "starts_at",
            ..
        })
    ));
    let unchanged = s.appointment(&a.id).await.unwrap().unwrap();
    assert_eq!((unchanged.starts_at, unchanged.sequence), (nine, 0));
    assert_eq!(s.notices_of(&a.id).await.unwrap().len(), 1);
    // A free slot: moved, the old time is free at once, the old reminder dropped, the link
    // follows.
    let moved = s
        .reschedule(ten, ten + 30 * MIN, ten + 30 * MIN, window, change(T0 + 3))
        .await
        .unwrap();
    assert_eq!((moved.starts_at, moved.sequence), (ten, 1));
    assert!(
        s.busy(&doc, nine, nine + 1, T0 + 3)
            .await
            .unwrap()
            .iter()
            .all(|(st, _)| *st != nine)
    );
    let notices = s.notices_of(&a.id).await.unwrap();
    let kinds: Vec<_> = notices
        .iter()
        .map(|n| (n.kind, n.status, n.sequence))
        .collect();
    assert_eq!(
        kinds,
        [
            (NoticeKind::Reminder, NoticeStatus::Dropped, 0),
            (NoticeKind::Moved, NoticeStatus::Pending, 1)
        ]
    );
    let link = s.link(moved.link.as_ref().unwrap()).await.unwrap().unwrap();
    assert_eq!(link.new.not_before, Some(ten - 15 * MIN));
    assert_eq!(link.new.expires_at, ten + 30 * MIN);
    // And someone else may book the old time now.
    s.book(booking(&doc, &room, nine, T0 + 4), vec![])
        .await
        .unwrap();
}

async fn a_cancel_frees_the_slot_and_revokes_the_join_link(s: Arc<dyn DurableStore>) {
    let (doc, room) = physician(&s).await;
    let nine = T0 + 24 * 60 * MIN;
    let a = confirmed(&s, &doc, &room, nine).await;
    let cancelled = s
        .cancel(AppointmentChange {
            id: a.id.clone(),
            now: T0 + 5,
            notices: vec![notice(NoticeKind::Cancelled, T0 + 5)],
        })
        .await
        .unwrap();
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert!(
        s.link(a.link.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    // Twice is refused.
    assert!(
        s.cancel(AppointmentChange {
            id: a.id.clone(),
            now: T0 + 6,
            notices: vec![],
        })
        .await
        .is_err()
    );
    s.book(booking(&doc, &room, nine, T0 + 7), vec![])
        .await
        .unwrap();
    let counts = s.appointment_counts(Some(&doc), None, None).await.unwrap();
    assert_eq!(counts.cancelled, 1);
}

async fn concurrent_workers_never_claim_one_notice_twice(s: Arc<dyn DurableStore>) {
    let (doc, room) = physician(&s).await;
    // 40 due notices over 8 appointments.
    for i in 0..8 {
        let notices = (0..5).map(|_| notice(NoticeKind::Code, T0)).collect();
        s.book(booking(&doc, &room, T0 + (24 + i) * 60 * MIN, T0), notices)
            .await
            .unwrap();
    }
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s
                        .claim_notices(&format!("worker-{w}"), T0 + 1, MIN, 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    for n in got {
                        assert!(
                            s.finish_notice(
                                &n.id,
                                &format!("worker-{w}"),
                                NoticeOutcome::Sent,
                                T0 + 2
                            )
                            .await
                            .unwrap()
                        );
                        mine.push(n.id);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: std::collections::BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 40, "every notice sent");
    assert_eq!(unique.len(), 40, "no notice sent twice");
}

async fn schedules_are_stored_and_replaced(s: Arc<dyn DurableStore>) {
    let (doc, room) = physician(&s).await;
    let nine_to_one = Span {
        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(13, 0, 0).unwrap(),
    };
    let mut schedule = Schedule {
        zone: chrono_tz::Europe::Madrid,
        weekly: Default::default(),
        exceptions: vec![],
        visit_types: vec![
            VisitType {
                key: VisitTypeKey::parse("first").unwrap(),
                name: "Primera visita".into(),
                length: chrono::Duration::minutes(40),
            },
            VisitType::single(chrono::Duration::minutes(20)),
        ],
        buffer: chrono::Duration::minutes(10),
    };
    schedule.weekly[0] = vec![nine_to_one];
    let stored = StoredSchedule {
        staff: doc.clone(),
        room: room.id.clone(),
        schedule: schedule.clone(),
        updated_at: T0,
    };
    s.put_schedule(&stored).await.unwrap();
    assert_eq!(s.schedule(&doc).await.unwrap(), Some(stored.clone()));
    schedule.weekly[4] = vec![nine_to_one];
    let replaced = StoredSchedule {
        schedule,
        updated_at: T0 + 1,
        ..stored
    };
    s.put_schedule(&replaced).await.unwrap();
    assert_eq!(s.list_schedules().await.unwrap(), vec![replaced.clone()]);
    let stranger = StoredSchedule {
        staff: StaffId::new(),
        ..replaced
    };
    assert!(matches!(
        s.put_schedule(&stranger).await,
        Err(examroom::durable::DurableError::Invalid { field: "staff", .. })
    ));
}

async fn code_attempts_are_limited_under_concurrency(s: Arc<dyn DurableStore>) {
    let (doc, room) = physician(&s).await;
    let a = s
        .book(booking(&doc, &room, T0 + 24 * 60 * MIN, T0), vec![])
        .await
        .unwrap();
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let (s, id) = (s.clone(), a.id.clone());
            tokio::spawn(async move { s.count_code_attempt(&id, 5).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tries {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 5);
}

/// Counts deliveries (a `std` mutex: held for a push, never across an await). The edge of
/// what this test runs: the real couriers are tested on branch `notify`.
#[derive(Default)]
struct Counting {
    delivered: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl examroom::notify::Courier for Counting {
    fn channels(&self) -> Vec<examroom::notify::Channel> {
        vec![examroom::notify::Channel::Email]
    }
    async fn deliver(
        &self,
        to: &examroom::notify::Recipient,
        _: &examroom::notify::Notice,
    ) -> Result<(), examroom::notify::CourierError> {
        // A little time in flight, so the two nodes' passes overlap.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.delivered.lock().unwrap().push(to.address.clone());
        Ok(())
    }
}

async fn two_nodes_deliver_each_notice_exactly_once(s: Arc<dyn DurableStore>) {
    use examroom::appointments::outbox::{Outbox, OutboxRules};
    use examroom::appointments::secrets::AppointmentKey;
    let (doc, room) = physician(&s).await;
    for i in 0..30 {
        let mut b = booking(&doc, &room, T0 + (24 + i) * 60 * MIN, T0);
        b.email = Some(format!("p{i}@example.org"));
        s.book(b, vec![notice(NoticeKind::Code, T0)]).await.unwrap();
    }
    let courier = Arc::new(Counting::default());
    let node = || {
        let rules = OutboxRules {
            poll: std::time::Duration::from_secs(1),
            lease_ms: MIN,
            max_attempts: 3,
            batch: 4,
            clinic_name: "Clínica Sol".into(),
            public_url: "https://visits.example".into(),
        };
        let key = AppointmentKey::from_server_secret("a-test-secret-a-test-secret-a-test!");
        Arc::new(Outbox::new(s.clone(), courier.clone(), key, rules))
    };
    // Each node passes until every notice is out: a pass that lost the race for its batch
    // comes back empty while others are still due, and the next poll takes them.
    let nodes: Vec<_> = [node(), node()]
        .into_iter()
        .map(|outbox| {
            let courier = courier.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                for _ in 0..1000 {
                    if courier.delivered.lock().unwrap().len() >= 30 {
                        break;
                    }
                    let pass = outbox.pass(T0 + 1).await.unwrap();
                    assert_eq!(pass.lost, 0);
                    if pass.sent == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                    sent += pass.sent;
                }
                sent
            })
        })
        .collect();
    let mut per_node = Vec::new();
    for n in nodes {
        per_node.push(n.await.unwrap());
    }
    let delivered = courier.delivered.lock().unwrap().clone();
    let unique: std::collections::BTreeSet<_> = delivered.iter().collect();
    assert_eq!(
        delivered.len(),
        30,
        "every notice delivered ({per_node:?} per node)"
    );
    assert_eq!(unique.len(), 30, "none delivered twice");
    assert_eq!(per_node.iter().sum::<usize>(), 30, "{per_node:?}");
}
