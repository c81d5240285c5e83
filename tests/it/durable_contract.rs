//! The durable-store contract, run against SQLite and PostgreSQL.
//!
//! Each check is one async fn taking a [`Ctx`]; `contract!` runs it against a fresh SQLite
//! file and a fresh PostgreSQL database. PostgreSQL comes from `EXAMROOM_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own
//! `examroom_test_<random>` database there and drops it afterwards. If PostgreSQL cannot be
//! reached the PostgreSQL tests fail, naming that variable: they never skip.

use crate::kit::services::on_fresh_postgres;
use examroom::audit::AuditOutcome;
use examroom::config::{Secret, Settings};
use examroom::durable::*;
use examroom::identity::Role;
use examroom::ids::{LinkId, PatientRef, RoomId, StaffId, VisitId};
use examroom::visit::{RoomConfig, RoomKind, VisitState};
use sqlx::Connection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One test's store plus what it needs to reach under the store (to tamper, to reopen).
struct Ctx {
    store: Arc<dyn DurableStore>,
    settings: Settings,
    backend: Backend,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Ctx {
    /// Run SQL directly against the database, bypassing the store (to simulate tampering).
    async fn exec_raw(&self, sql: &str) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let path = self.settings.server.data_dir.join("examroom.db");
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let done = sqlx::query(sql).execute(&mut c).await;
                done.unwrap().rows_affected()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(self.settings.database.url.expose())
                    .await
                    .unwrap();
                let done = sqlx::query(sql).execute(&mut c).await;
                done.unwrap().rows_affected()
            }
        }
    }

    /// Drop the store and open the same database again (a restart).
    async fn reopen(&mut self) {
        let old = std::mem::replace(&mut self.store, open(&self.settings).await.unwrap());
        drop(old);
    }
}

type Check = fn(Ctx) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Open the store `settings` name and run `check` on it.
async fn open_and_check(check: Check, settings: Settings, backend: Backend) {
    let store = open(&settings)
        .await
        .unwrap_or_else(|e| panic!("open the {backend:?} store: {e}"));
    check(Ctx {
        store,
        settings,
        backend,
    })
    .await;
}

async fn run_sqlite(check: Check) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.data_dir = dir.path().join("data"); // not yet there: open creates it
    open_and_check(check, settings, Backend::Sqlite).await;
}

async fn run_postgres(check: Check) {
    on_fresh_postgres(|settings| open_and_check(check, settings, Backend::Postgres)).await;
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_sqlite(|ctx| Box::pin(super::$name(ctx))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_postgres(|ctx| Box::pin(super::$name(ctx))).await;
                }
            )*
        }
    };
}

contract!(
    ping_answers,
    staff_accounts_are_created_found_and_updated,
    staff_validation_names_the_field,
    sessions_can_be_revoked,
    setup_tokens_are_single_use,
    setup_token_has_exactly_one_winner_under_concurrency,
    first_admin_is_made_only_while_no_admin_exists_and_a_bad_form_spends_nothing,
    concurrent_first_admin_links_make_exactly_one_admin,
    staff_are_linked_to_one_identity_provider_account,
    rooms_are_validated_and_listed,
    join_link_lifecycle,
    visit_history_summarises_transitions,
    visits_are_filtered,
    surveys_and_experience,
    audit_chain_appends_and_verifies,
    audit_verify_detects_an_edited_row,
    audit_verify_detects_a_deleted_row,
    concurrent_audit_appends_do_not_fork_the_chain,
    data_survives_a_restart,
    concurrent_events_of_one_visit_all_count,
    open_refuses_an_unknown_database_url,
    audit_verify_pages_through_a_long_log,
    identity_attempts_are_limited_under_concurrency,
    emergency_access_is_kept_per_visit_and_physician,
    physician_profiles_are_stored_replaced_and_listed,
);

// ---------------------------------------------------------------------------------------
// Helpers

const T0: i64 = 1_700_000_000_000;

fn new_staff(email: &str, roles: &[Role]) -> NewStaff {
    NewStaff {
        email: email.into(),
        name: format!("Dr {email}"),
        roles: roles.to_vec(),
        password_hash: Some("$argon2id$fake".into()),
        languages: vec!["en".into(), "de".into()],
        gender: Some("f".into()),
    }
}

async fn physician(s: &Arc<dyn DurableStore>, email: &str) -> Staff {
    s.create_staff(new_staff(email, &[Role::Physician]))
        .await
        .unwrap()
}

/// Dr `doc@clinic.example` and the room "GP" where she is the physician.
async fn gp_room(s: &Arc<dyn DurableStore>) -> (Staff, RoomConfig) {
    let doc = physician(s, "doc@clinic.example").await;
    let room = s
        .create_room(new_room("GP", vec![doc.id.clone()]))
        .await
        .unwrap();
    (doc, room)
}

/// A survey answer without a comment, given at `T0`.
fn survey(visit: VisitId, score: i64) -> NewSurvey {
    NewSurvey {
        visit,
        score,
        comment: None,
        at: T0,
    }
}

fn new_room(name: &str, physicians: Vec<StaffId>) -> NewRoom {
    NewRoom {
        name: name.into(),
        kind: RoomKind::Physician,
        physicians,
        waiting_message: "The doctor will be with you shortly.".into(),
        waiting_messages: [("es".into(), "El médico le atenderá en breve.".into())].into(),
        max_wait_secs: 1800,
        max_participants: 3,
        chat_allowed: true,
        invites_allowed: false,
        opening_hours: Some("Mon-Fri 08:00-17:00".into()),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, DurableError>, field: &str) {
    match r {
        Err(DurableError::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid{{field: {field}}}, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, DurableError>, field: &str) {
    match r {
        Err(DurableError::Conflict { field: f, .. }) if f == field => {}
        other => panic!("expected Conflict{{field: {field}}}, got {other:?}"),
    }
}

fn ev(visit: &VisitId, room: &RoomId, state: VisitState, at: i64) -> VisitEvent {
    VisitEvent {
        visit: visit.clone(),
        room: room.clone(),
        state,
        at,
        actor: Some("system".into()),
        physician: None,
        patient_ref: None,
    }
}

/// Record a visit waiting `wait_s`, admitted by `doc`, in a call for `call_s`, then ended.
async fn full_visit(
    s: &Arc<dyn DurableStore>,
    room: &RoomId,
    doc: &StaffId,
    start: i64,
    wait_s: i64,
    call_s: i64,
) -> VisitId {
    let v = VisitId::new();
    let mut w = ev(&v, room, VisitState::Waiting, start);
    w.patient_ref = Some(PatientRef::parse("pat-123").unwrap());
    s.record_visit_event(w).await.unwrap();
    let admitted = start + wait_s * 1000;
    let mut a = ev(&v, room, VisitState::Admitted, admitted);
    a.physician = Some(doc.clone());
    a.actor = Some(doc.to_string());
    s.record_visit_event(a).await.unwrap();
    let mut c = ev(&v, room, VisitState::InCall, admitted + 2000);
    c.physician = Some(doc.clone());
    s.record_visit_event(c).await.unwrap();
    s.record_visit_event(ev(
        &v,
        room,
        VisitState::Ended,
        admitted + 2000 + call_s * 1000,
    ))
    .await
    .unwrap();
    v
}

fn audit_entry(i: i64) -> NewAuditEntry {
    NewAuditEntry {
        at: T0 + i,
        actor: "s_doc".into(),
        action: "records.read".into(),
        patient_ref: Some(PatientRef::parse("pat-9").unwrap()),
        visit: Some(VisitId::new()),
        sections: vec!["allergies".into(), "medications".into()],
        outcome: if i % 3 == 0 {
            AuditOutcome::Refused
        } else {
            AuditOutcome::Allowed
        },
        reason: (i % 3 == 0).then(|| "visit not active".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// The checks

async fn ping_answers(ctx: Ctx) {
    ctx.store.ping().await.unwrap();
}

async fn staff_accounts_are_created_found_and_updated(ctx: Ctx) {
    let s = &ctx.store;
    assert_eq!(s.count_staff().await.unwrap(), 0);
    let a = s
        .create_staff(new_staff(
            "Alice@Clinic.example",
            &[Role::Admin, Role::Physician],
        ))
        .await
        .unwrap();
    assert_eq!(a.email, "Alice@Clinic.example");
    assert_eq!(a.roles, vec![Role::Physician, Role::Admin]);
    assert!(a.active);
    assert_eq!(a.languages, vec!["en", "de"]);
    assert_eq!(a.gender.as_deref(), Some("f"));
    assert_eq!(a.last_sign_in_at, None);

    assert_eq!(s.staff(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.staff_by_email("alice@CLINIC.example").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.staff_by_email("bob@clinic.example").await.unwrap(), None);
    assert_eq!(s.staff(&StaffId::new()).await.unwrap(), None);

    // The same address in another case is the same person.
    assert_conflict(
        s.create_staff(new_staff("ALICE@clinic.example", &[Role::Physician]))
            .await,
        "email",
    );

    let b = physician(s, "bob@clinic.example").await;
    assert_eq!(s.count_staff().await.unwrap(), 2);
    let names = s.list_staff().await.unwrap();
    let names: Vec<_> = names.into_iter().map(|x| x.id).collect();
    assert_eq!(names, vec![a.id.clone(), b.id.clone()]);

    let u = s
        .update_staff(
            &b.id,
            StaffUpdate {
                name: Some("Dr Bob Baker".into()),
                roles: Some(vec![Role::Physician, Role::Admin]),
                active: Some(false),
                password_hash: Some(None),
                languages: Some(vec!["fr".into()]),
                gender: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(u.name, "Dr Bob Baker");
    assert_eq!(u.roles, vec![Role::Physician, Role::Admin]);
    assert!(!u.active);
    assert_eq!(u.password_hash, None);
    assert_eq!(u.languages, vec!["fr"]);
    assert_eq!(u.gender.as_deref(), Some("f"), "untouched field kept");
    assert_eq!(s.staff(&b.id).await.unwrap(), Some(u));
    // An empty update changes nothing.
    let same = s.update_staff(&a.id, StaffUpdate::default()).await.unwrap();
    assert_eq!(same, a);

    s.record_sign_in(&a.id, T0).await.unwrap();
    assert_eq!(
        s.staff(&a.id).await.unwrap().unwrap().last_sign_in_at,
        Some(T0)
    );
    assert!(matches!(
        s.record_sign_in(&StaffId::new(), T0).await,
        Err(DurableError::NotFound { .. })
    ));
    assert!(matches!(
        s.update_staff(&StaffId::new(), StaffUpdate::default())
            .await,
        Err(DurableError::NotFound { what: "staff" })
    ));
}

async fn staff_validation_names_the_field(ctx: Ctx) {
    let s = &ctx.store;
    assert_invalid(
        s.create_staff(new_staff("not-an-email", &[Role::Admin]))
            .await,
        "email",
    );
    let mut n = new_staff("c@clinic.example", &[Role::Admin]);
    n.name = "   ".into();
    assert_invalid(s.create_staff(n).await, "name");
    assert_invalid(
        s.create_staff(new_staff("c@clinic.example", &[])).await,
        "roles",
    );
    assert_invalid(
        s.create_staff(new_staff("c@clinic.example", &[Role::Patient]))
            .await,
        "roles",
    );
    let c = physician(s, "c@clinic.example").await;
    assert_invalid(
        s.update_staff(
            &c.id,
            StaffUpdate {
                roles: Some(vec![]),
                ..Default::default()
            },
        )
        .await,
        "roles",
    );
    assert_eq!(s.count_staff().await.unwrap(), 1);
}

async fn sessions_can_be_revoked(ctx: Ctx) {
    let s = &ctx.store;
    let a = physician(s, "a@clinic.example").await;
    let b = physician(s, "b@clinic.example").await;
    for (id, who) in [("h1", &a), ("h2", &a), ("h3", &b)] {
        s.create_session(NewSession {
            id: id.into(),
            staff: who.id.clone(),
            created_at: T0,
            expires_at: T0 + 3_600_000,
        })
        .await
        .unwrap();
    }
    let h1 = s.session("h1").await.unwrap().unwrap();
    assert_eq!(h1.staff, a.id);
    assert_eq!((h1.created_at, h1.expires_at), (T0, T0 + 3_600_000));
    assert!(!h1.revoked);
    assert_eq!(s.session("nope").await.unwrap(), None);

    s.revoke_session("h1").await.unwrap();
    assert!(s.session("h1").await.unwrap().unwrap().revoked);
    assert!(matches!(
        s.revoke_session("nope").await,
        Err(DurableError::NotFound { what: "session" })
    ));

    // Sign out everywhere: only the still-live session of `a` counts.
    assert_eq!(s.revoke_sessions_of(&a.id).await.unwrap(), 1);
    assert!(s.session("h2").await.unwrap().unwrap().revoked);
    assert!(!s.session("h3").await.unwrap().unwrap().revoked);
    assert_eq!(s.revoke_sessions_of(&a.id).await.unwrap(), 0);

    assert!(matches!(
        s.create_session(NewSession {
            id: "h9".into(),
            staff: StaffId::new(),
            created_at: T0,
            expires_at: T0 + 1,
        })
        .await,
        Err(DurableError::NotFound { what: "staff" })
    ));
}

async fn setup_tokens_are_single_use(ctx: Ctx) {
    let s = &ctx.store;
    s.create_setup_token(first_admin_token("first"))
        .await
        .unwrap();
    let t = s.consume_setup_token("first", T0).await.unwrap();
    assert_eq!(t.purpose, SetupPurpose::FirstAdmin);
    assert_eq!(t.staff, None);
    assert_eq!(t.used_at, Some(T0));
    assert!(matches!(
        s.consume_setup_token("first", T0 + 1).await,
        Err(DurableError::AlreadyUsed)
    ));
    assert!(matches!(
        s.consume_setup_token("missing", T0).await,
        Err(DurableError::NotFound { .. })
    ));

    let staff = physician(s, "inv@clinic.example").await;
    let invite = setup_token("invite", SetupPurpose::Invite, Some(&staff.id), T0 + 1000);
    s.create_setup_token(invite).await.unwrap();
    // At the expiry instant the token is already dead.
    assert!(matches!(
        s.consume_setup_token("invite", T0 + 1000).await,
        Err(DurableError::Expired)
    ));
    // An expired token stays unused (and stays expired).
    assert!(matches!(
        s.consume_setup_token("invite", T0 + 5000).await,
        Err(DurableError::Expired)
    ));

    let reset = setup_token("reset", SetupPurpose::Reset, Some(&staff.id), T0 + 1000);
    s.create_setup_token(reset).await.unwrap();
    let t = s.consume_setup_token("reset", T0 + 999).await.unwrap();
    assert_eq!(
        (t.purpose, t.staff),
        (SetupPurpose::Reset, Some(staff.id.clone()))
    );
    assert_conflict(
        s.create_setup_token(setup_token("reset", SetupPurpose::Reset, None, T0))
            .await,
        "hash",
    );
}

fn setup_token(
    hash: &str,
    purpose: SetupPurpose,
    staff: Option<&StaffId>,
    expires_at: i64,
) -> NewSetupToken {
    NewSetupToken {
        hash: hash.into(),
        purpose,
        staff: staff.cloned(),
        expires_at,
    }
}

fn first_admin_token(hash: &str) -> NewSetupToken {
    setup_token(hash, SetupPurpose::FirstAdmin, None, T0 + 1000)
}

async fn first_admin_is_made_only_while_no_admin_exists_and_a_bad_form_spends_nothing(ctx: Ctx) {
    let s = &ctx.store;
    // A physician is not an admin: the link still works.
    physician(s, "doc@clinic.example").await;
    s.create_setup_token(first_admin_token("printed-first"))
        .await
        .unwrap();
    s.create_setup_token(first_admin_token("printed-second"))
        .await
        .unwrap();
    let admin = || new_staff("ada@clinic.example", &[Role::Admin, Role::Physician]);
    let unspent = |hash: &'static str| async move {
        s.setup_token(hash)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    };

    // A form the store refuses leaves the link as it was.
    let mut no_email = admin();
    no_email.email = String::new();
    assert_invalid(
        s.create_first_admin("printed-first", T0, no_email).await,
        "email",
    );
    assert!(unspent("printed-first").await);
    assert_conflict(
        s.create_first_admin(
            "printed-first",
            T0,
            new_staff("doc@clinic.example", &[Role::Admin]),
        )
        .await,
        "email",
    );
    assert!(unspent("printed-first").await);
    assert!(matches!(
        s.create_first_admin("no-such-link", T0, admin()).await,
        Err(DurableError::NotFound { .. })
    ));

    let ada = s
        .create_first_admin("printed-first", T0, admin())
        .await
        .unwrap();
    assert!(ada.has_role(Role::Admin));
    assert!(!unspent("printed-first").await);
    assert!(matches!(
        s.create_first_admin("printed-first", T0, admin()).await,
        Err(DurableError::AlreadyUsed)
    ));
    // Any other first-admin link is dead now that an admin exists, and spent by trying.
    let mut second = new_staff("mallory@clinic.example", &[Role::Admin]);
    second.name = "Mallory".into();
    assert_conflict(
        s.create_first_admin("printed-second", T0, second).await,
        "admin",
    );
    assert!(!unspent("printed-second").await);
    let admins = s.list_staff().await.unwrap();
    assert_eq!(admins.iter().filter(|a| a.has_role(Role::Admin)).count(), 1);
}

async fn concurrent_first_admin_links_make_exactly_one_admin(ctx: Ctx) {
    let s = &ctx.store;
    // Several links printed (several first starts), used at once, and an admin made on
    // the command line at the same moment: one admin, whoever wins.
    for i in 0..4 {
        s.create_setup_token(first_admin_token(&format!("link-{i}")))
            .await
            .unwrap();
    }
    let mut tasks: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let new = new_staff(&format!("admin{i}@clinic.example"), &[Role::Admin]);
                s.create_first_admin(&format!("link-{i}"), T0, new)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let cli = s.clone();
    tasks.push(tokio::spawn(async move {
        cli.create_staff(new_staff("cli@clinic.example", &[Role::Admin]))
            .await
            .is_ok()
    }));
    let mut made = 0;
    for t in tasks {
        made += t.await.unwrap() as usize;
    }
    let admins = s.list_staff().await.unwrap();
    let admins = admins.iter().filter(|a| a.has_role(Role::Admin)).count();
    assert_eq!(made, admins);
    // The command line always succeeds; a link only when it came before any admin.
    assert!(
        admins == 1
            || (admins == 2
                && s.staff_by_email("cli@clinic.example")
                    .await
                    .unwrap()
                    .is_some()),
        "{admins} admins"
    );
}

async fn staff_are_linked_to_one_identity_provider_account(ctx: Ctx) {
    let s = &ctx.store;
    let idp = |sub: &str| IdpIdentity {
        issuer: "https://idp.clinic.example".into(),
        subject: sub.into(),
    };
    let grey = s
        .create_idp_staff(
            new_staff("grey@clinic.example", &[Role::Physician]),
            &idp("u-1"),
        )
        .await
        .unwrap();
    assert_eq!(grey.idp, Some(idp("u-1")));
    assert_eq!(
        s.staff_by_idp(&idp("u-1")).await.unwrap(),
        Some(grey.clone())
    );
    assert_eq!(s.staff_by_idp(&idp("u-2")).await.unwrap(), None);
    assert_conflict(
        s.create_idp_staff(
            new_staff("other@clinic.example", &[Role::Physician]),
            &idp("u-1"),
        )
        .await,
        "idp",
    );

    let local = physician(s, "local@clinic.example").await;
    assert_eq!(local.idp, None);
    // An account linked once is never relinked, and a provider account links one account.
    assert_conflict(s.link_staff_idp(&grey.id, &idp("u-2")).await, "idp");
    assert_conflict(s.link_staff_idp(&local.id, &idp("u-1")).await, "idp");
    let linked = s.link_staff_idp(&local.id, &idp("u-2")).await.unwrap();
    assert_eq!(linked.idp, Some(idp("u-2")));
    assert_eq!(
        s.staff_by_idp(&idp("u-2")).await.unwrap().unwrap().id,
        local.id
    );
    assert!(matches!(
        s.link_staff_idp(&StaffId::new(), &idp("u-3")).await,
        Err(DurableError::NotFound { .. })
    ));
}

async fn setup_token_has_exactly_one_winner_under_concurrency(ctx: Ctx) {
    let s = &ctx.store;
    for round in 0..5 {
        let hash = format!("race-{round}");
        s.create_setup_token(first_admin_token(&hash))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (s, hash) = (s.clone(), hash.clone());
                tokio::spawn(async move { s.consume_setup_token(&hash, T0).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(DurableError::AlreadyUsed) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one consumer may win");
    }
}

async fn rooms_are_validated_and_listed(ctx: Ctx) {
    let s = &ctx.store;
    let doc = physician(s, "doc@clinic.example").await;
    let doc2 = physician(s, "doc2@clinic.example").await;
    let admin = s
        .create_staff(new_staff("admin@clinic.example", &[Role::Admin]))
        .await
        .unwrap();

    let r = s
        .create_room(new_room(
            "Cardiology",
            vec![doc.id.clone(), doc2.id.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(r.name, "Cardiology");
    assert_eq!(r.kind, RoomKind::Physician);
    assert_eq!(r.physicians, vec![doc.id.clone(), doc2.id.clone()]);
    assert_eq!((r.max_wait_secs, r.max_participants), (1800, 3));
    assert_eq!(r.waiting_messages["es"], "El médico le atenderá en breve.");
    assert!(r.chat_allowed && !r.invites_allowed && !r.archived);
    assert_eq!(s.room(&r.id).await.unwrap(), Some(r.clone()));
    let d = s.room_details(&r.id).await.unwrap().unwrap();
    assert_eq!(d.opening_hours.as_deref(), Some("Mon-Fri 08:00-17:00"));
    assert_eq!(d.config, r);

    // Validation, each naming its field; nothing is written by a refused create.
    assert_conflict(s.create_room(new_room("cardiology ", vec![])).await, "name");
    assert_invalid(s.create_room(new_room("  ", vec![])).await, "name");
    assert_invalid(
        s.create_room(new_room("X", vec![StaffId::new()])).await,
        "physicians",
    );
    assert_invalid(
        s.create_room(new_room("X", vec![admin.id.clone()])).await,
        "physicians",
    );
    for n in [1usize, 9] {
        let mut bad = new_room("X", vec![]);
        bad.max_participants = n;
        assert_invalid(s.create_room(bad).await, "max_participants");
    }
    let mut ok = new_room("Edge", vec![]);
    ok.max_participants = 8;
    ok.max_wait_secs = 60;
    ok.kind = RoomKind::WalkIn;
    let edge = s.create_room(ok).await.unwrap();
    assert_eq!(edge.kind, RoomKind::WalkIn);
    let mut bad = new_room("X", vec![]);
    bad.max_wait_secs = 59;
    assert_invalid(s.create_room(bad).await, "max_wait_secs");
    assert_eq!(s.list_rooms(true).await.unwrap().len(), 2);

    // Update replaces the configuration, physicians included.
    let mut upd = new_room("Cardiology East", vec![doc2.id.clone()]);
    upd.chat_allowed = false;
    upd.opening_hours = None;
    let r2 = s.update_room(&r.id, upd).await.unwrap();
    assert_eq!(r2.name, "Cardiology East");
    assert_eq!(r2.physicians, vec![doc2.id.clone()]);
    assert!(!r2.chat_allowed);
    assert_eq!(
        s.room_details(&r.id).await.unwrap().unwrap().opening_hours,
        None
    );
    assert_conflict(s.update_room(&r.id, new_room("EDGE", vec![])).await, "name");
    assert_invalid(
        s.update_room(&r.id, new_room("Y", vec![admin.id.clone()]))
            .await,
        "physicians",
    );
    assert_eq!(
        s.room(&r.id).await.unwrap().unwrap().physicians,
        vec![doc2.id.clone()],
        "a refused update leaves the room as it was"
    );
    assert!(matches!(
        s.update_room(&RoomId::new(), new_room("Z", vec![])).await,
        Err(DurableError::NotFound { what: "room" })
    ));

    assert!(s.rooms_for_physician(&doc.id).await.unwrap().is_empty());
    assert_eq!(
        s.rooms_for_physician(&doc2.id).await.unwrap(),
        vec![r2.clone()]
    );

    // Archive: gone from the live list and the physician's rooms; its name is free again.
    s.archive_room(&r.id).await.unwrap();
    s.archive_room(&r.id).await.unwrap();
    assert!(s.room(&r.id).await.unwrap().unwrap().archived);
    let live = s.list_rooms(false).await.unwrap();
    let live: Vec<_> = live.into_iter().map(|r| r.id).collect();
    assert_eq!(live, vec![edge.id.clone()]);
    assert_eq!(s.list_rooms(true).await.unwrap().len(), 2);
    assert!(s.rooms_for_physician(&doc2.id).await.unwrap().is_empty());
    s.create_room(new_room("Cardiology East", vec![]))
        .await
        .unwrap();
    assert!(matches!(
        s.archive_room(&RoomId::new()).await,
        Err(DurableError::NotFound { what: "room" })
    ));
    assert_eq!(s.room(&RoomId::new()).await.unwrap(), None);
}

async fn join_link_lifecycle(ctx: Ctx) {
    let s = &ctx.store;
    let (doc, room) = gp_room(s).await;
    let other = s.create_room(new_room("Derm", vec![])).await.unwrap();
    let new_link = |room: &RoomId, code: &str| NewLink {
        id: LinkId::new(),
        code_hash: code.into(),
        kind: LinkKind::Patient,
        room: room.clone(),
        visit: VisitId::new(),
        patient_name: Some("Jane Roe".into()),
        patient_ref: Some(PatientRef::parse("pat-1").unwrap()),
        reason: Some("follow-up".into()),
        lang: Some("de".into()),
        not_before: Some(T0),
        expires_at: T0 + 86_400_000,
        created_by: doc.id.clone(),
        created_at: T0 - 1000,
    };
    let n = new_link(&room.id, "code-a");
    let l = s.create_link(n.clone()).await.unwrap();
    assert_eq!(l.new.id, n.id);
    assert_eq!(l.new.visit, n.visit);
    assert_eq!(l.new.kind, LinkKind::Patient);
    assert_eq!(l.new.patient_name.as_deref(), Some("Jane Roe"));
    assert_eq!(l.new.patient_ref, n.patient_ref);
    assert_eq!(
        (l.new.reason.as_deref(), l.new.lang.as_deref()),
        (Some("follow-up"), Some("de"))
    );
    assert_eq!(
        (l.new.not_before, l.new.expires_at, l.new.created_at),
        (Some(T0), T0 + 86_400_000, T0 - 1000)
    );
    assert!(!l.revoked);
    assert_eq!((l.first_used_at, l.use_count), (None, 0));
    assert_eq!(s.link(&l.new.id).await.unwrap(), Some(l.clone()));
    assert_eq!(
        s.link_by_code_hash("code-a").await.unwrap(),
        Some(l.clone())
    );
    assert_eq!(s.link_by_code_hash("code-x").await.unwrap(), None);

    let mut g = new_link(&other.id, "code-b");
    g.kind = LinkKind::Guest;
    g.created_at = T0;
    let g = s.create_link(g).await.unwrap();
    assert_eq!(g.new.kind, LinkKind::Guest);

    assert_conflict(
        s.create_link(new_link(&room.id, "code-a")).await,
        "code_hash",
    );
    let mut dup = new_link(&room.id, "code-c");
    dup.id = l.new.id.clone();
    assert_conflict(s.create_link(dup).await, "id");
    assert_invalid(
        s.create_link(new_link(&RoomId::new(), "code-d")).await,
        "room",
    );
    let mut bad = new_link(&room.id, "code-e");
    bad.created_by = StaffId::new();
    assert_invalid(s.create_link(bad).await, "created_by");
    let mut bad = new_link(&room.id, "code-f");
    bad.expires_at = bad.created_at;
    assert_invalid(s.create_link(bad).await, "expires_at");

    // Newest first; filtered by room.
    let all = s.list_links(None).await.unwrap();
    let all: Vec<_> = all.into_iter().map(|l| l.new.id).collect();
    assert_eq!(all, vec![g.new.id.clone(), l.new.id.clone()]);
    let in_room = s.list_links(Some(&room.id)).await.unwrap();
    assert_eq!(in_room, vec![l.clone()]);

    s.mark_link_used(&l.new.id, T0 + 10).await.unwrap();
    s.mark_link_used(&l.new.id, T0 + 20).await.unwrap();
    let used = s.link(&l.new.id).await.unwrap().unwrap();
    assert_eq!((used.first_used_at, used.use_count), (Some(T0 + 10), 2));

    s.revoke_link(&l.new.id).await.unwrap();
    s.revoke_link(&l.new.id).await.unwrap();
    assert!(s.link(&l.new.id).await.unwrap().unwrap().revoked);
    assert!(!s.link(&g.new.id).await.unwrap().unwrap().revoked);
    assert!(matches!(
        s.revoke_link(&LinkId::new()).await,
        Err(DurableError::NotFound { what: "link" })
    ));
    assert!(matches!(
        s.mark_link_used(&LinkId::new(), T0).await,
        Err(DurableError::NotFound { what: "link" })
    ));

    // Links of an archived room stay listed, but no new ones are made there.
    s.archive_room(&other.id).await.unwrap();
    assert_eq!(s.list_links(Some(&other.id)).await.unwrap().len(), 1);
    assert_invalid(s.create_link(new_link(&other.id, "code-g")).await, "room");
}

async fn visit_history_summarises_transitions(ctx: Ctx) {
    let s = &ctx.store;
    let (doc, room) = gp_room(s).await;
    let v = full_visit(s, &room.id, &doc.id, T0, 90, 600).await;

    // A retry of an identical event changes nothing.
    s.record_visit_event(ev(&v, &room.id, VisitState::Waiting, T0))
        .await
        .unwrap();
    let r = s.visit(&v).await.unwrap().unwrap();
    assert_eq!(r.id, v);
    assert_eq!(r.room, room.id);
    assert_eq!(r.state, VisitState::Ended);
    assert_eq!(r.created_at, T0);
    assert_eq!(r.admitted_at, Some(T0 + 90_000));
    assert_eq!(r.admitted_by, Some(doc.id.clone()));
    assert_eq!(r.call_started_at, Some(T0 + 92_000));
    assert_eq!(r.ended_at, Some(T0 + 692_000));
    assert_eq!(r.outcome, Some(VisitState::Ended));
    assert_eq!(r.physician, Some(doc.id.clone()));
    assert_eq!(r.patient_ref, Some(PatientRef::parse("pat-123").unwrap()));
    assert_eq!(r.wait_secs, Some(90.0));
    assert_eq!(r.call_secs, Some(600.0));
    let states: Vec<_> = r.transitions.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            VisitState::Waiting,
            VisitState::Admitted,
            VisitState::InCall,
            VisitState::Ended
        ]
    );
    assert_eq!(r.transitions[1].actor.as_deref(), Some(doc.id.as_str()));
    assert_eq!(r.transitions[1].physician, Some(doc.id.clone()));

    // A patient who gave up: the wait runs to the end, there is no call.
    let left = VisitId::new();
    s.record_visit_event(ev(&left, &room.id, VisitState::Waiting, T0))
        .await
        .unwrap();
    let r = s.visit(&left).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.outcome, r.wait_secs),
        (VisitState::Waiting, None, None)
    );
    s.record_visit_event(ev(&left, &room.id, VisitState::Left, T0 + 45_500))
        .await
        .unwrap();
    let r = s.visit(&left).await.unwrap().unwrap();
    assert_eq!(r.outcome, Some(VisitState::Left));
    assert_eq!(r.wait_secs, Some(45.5));
    assert_eq!(r.call_secs, None);
    assert_eq!(r.admitted_at, None);

    assert_eq!(s.visit(&VisitId::new()).await.unwrap(), None);
}

async fn visits_are_filtered(ctx: Ctx) {
    let s = &ctx.store;
    let a = physician(s, "a@clinic.example").await;
    let b = physician(s, "b@clinic.example").await;
    let r1 = s
        .create_room(new_room("One", vec![a.id.clone()]))
        .await
        .unwrap();
    let r2 = s
        .create_room(new_room("Two", vec![b.id.clone()]))
        .await
        .unwrap();
    let v1 = full_visit(s, &r1.id, &a.id, T0, 10, 10).await;
    let v2 = full_visit(s, &r1.id, &a.id, T0 + 1_000_000, 10, 10).await;
    let v3 = full_visit(s, &r2.id, &b.id, T0 + 2_000_000, 10, 10).await;

    let ids = |f: VisitFilter| {
        let s = s.clone();
        async move {
            s.list_visits(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|v| v.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(VisitFilter::default()).await,
        vec![v3.clone(), v2.clone(), v1.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            room: Some(r1.id.clone()),
            ..Default::default()
        })
        .await,
        vec![v2.clone(), v1.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            physician: Some(b.id.clone()),
            ..Default::default()
        })
        .await,
        vec![v3.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            from: Some(T0 + 1_000_000),
            to: Some(T0 + 2_000_000),
            ..Default::default()
        })
        .await,
        vec![v2.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await,
        vec![v3.clone()]
    );
    let full = s.list_visits(&VisitFilter::default()).await.unwrap();
    assert_eq!(full[0].transitions.len(), 4);
}

async fn surveys_and_experience(ctx: Ctx) {
    let s = &ctx.store;
    let (doc, room) = gp_room(s).await;
    let empty = s.experience(&VisitFilter::default()).await.unwrap();
    assert_eq!(empty.visits, 0);
    assert_eq!(empty.answers, 0);
    assert_eq!(
        (
            empty.nps,
            empty.median_wait_secs,
            empty.p90_wait_secs,
            empty.no_show_rate
        ),
        (None, None, None, None)
    );

    // Waits 10, 20, 30, 40 s (ended visits) and one no-show after 100 s.
    let mut visits = Vec::new();
    for (i, wait) in [10, 20, 30, 40].into_iter().enumerate() {
        visits.push(full_visit(s, &room.id, &doc.id, T0 + i as i64 * 1_000_000, wait, 60).await);
    }
    let ns = VisitId::new();
    s.record_visit_event(ev(&ns, &room.id, VisitState::Waiting, T0 + 9_000_000))
        .await
        .unwrap();
    s.record_visit_event(ev(&ns, &room.id, VisitState::NoShow, T0 + 9_100_000))
        .await
        .unwrap();

    assert_invalid(
        s.submit_survey(survey(visits[0].clone(), 11)).await,
        "score",
    );
    assert_invalid(
        s.submit_survey(survey(visits[0].clone(), -1)).await,
        "score",
    );
    assert!(matches!(
        s.submit_survey(survey(VisitId::new(), 5)).await,
        Err(DurableError::NotFound { what: "visit" })
    ));
    // Scores 10, 9 (promoters), 7 (passive), 3 (detractor): NPS = 50 % - 25 % = 25.
    for (v, score) in visits.iter().zip([10, 9, 7, 3]) {
        s.submit_survey(NewSurvey {
            visit: v.clone(),
            score,
            comment: Some("Thanks, very kind doctor".into()),
            at: T0,
        })
        .await
        .unwrap();
    }
    assert_conflict(s.submit_survey(survey(visits[0].clone(), 0)).await, "visit");

    let x = s.experience(&VisitFilter::default()).await.unwrap();
    assert_eq!(x.visits, 5);
    assert_eq!(
        (x.answers, x.promoters, x.passives, x.detractors),
        (4, 2, 1, 1)
    );
    assert_eq!(x.nps, Some(25.0));
    // Waits 10, 20, 30, 40, 100: median 30; p90 at rank 3.6 → 40 + 0.6·60 = 76.
    assert_eq!(x.median_wait_secs, Some(30.0));
    let p90 = x.p90_wait_secs.unwrap();
    assert!((p90 - 76.0).abs() < 1e-9, "{p90}");
    assert_eq!(x.no_show_rate, Some(0.2));

    // A filter narrows both the surveys and the visits.
    let first_two = s
        .experience(&VisitFilter {
            to: Some(T0 + 2_000_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((first_two.visits, first_two.answers), (2, 2));
    assert_eq!(first_two.nps, Some(100.0));
    assert_eq!(first_two.median_wait_secs, Some(15.0));
    assert_eq!(first_two.no_show_rate, Some(0.0));
    let elsewhere = s
        .experience(&VisitFilter {
            room: Some(RoomId::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (elsewhere.visits, elsewhere.answers, elsewhere.nps),
        (0, 0, None)
    );
}

async fn audit_chain_appends_and_verifies(ctx: Ctx) {
    let s = &ctx.store;
    let v = s.verify_audit().await.unwrap();
    assert!(v.ok && v.entries == 0, "{v:?}");
    let mut appended = Vec::new();
    for i in 1..=5 {
        appended.push(s.append_audit(audit_entry(i)).await.unwrap());
    }
    assert_eq!(appended[0].seq, 1);
    assert_eq!(appended[0].prev_hash, examroom::audit::GENESIS);
    for w in appended.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(s.audit_entries(0, 100).await.unwrap(), appended);
    assert_eq!(
        s.audit_entries(2, 2).await.unwrap(),
        appended[2..4].to_vec()
    );
    assert!(s.audit_entries(5, 10).await.unwrap().is_empty());
    let e = &appended[2].entry;
    assert_eq!(e.outcome, AuditOutcome::Refused);
    assert_eq!(e.reason.as_deref(), Some("visit not active"));
    assert_eq!(e.sections, vec!["allergies", "medications"]);
    let v = s.verify_audit().await.unwrap();
    assert_eq!(
        v,
        AuditVerification {
            entries: 5,
            ok: true,
            first_bad_seq: None,
            problem: None
        }
    );
}

async fn audit_verify_detects_an_edited_row(ctx: Ctx) {
    let s = &ctx.store;
    for i in 1..=5 {
        s.append_audit(audit_entry(i)).await.unwrap();
    }
    assert!(s.verify_audit().await.unwrap().ok);
    // Someone with database access hides a refusal.
    let n = ctx
        .exec_raw("UPDATE audit_log SET outcome = 'allowed', reason = NULL WHERE seq = 3")
        .await;
    assert_eq!(n, 1);
    let v = s.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(3));
    assert!(v.problem.unwrap().contains("altered"));
    // A value no entry could hold is reported as damage, not as a store error.
    ctx.exec_raw("UPDATE audit_log SET outcome = 'maybe' WHERE seq = 1")
        .await;
    let v = s.verify_audit().await.unwrap();
    assert_eq!((v.ok, v.first_bad_seq, v.entries), (false, Some(1), 5));
}

async fn audit_verify_detects_a_deleted_row(ctx: Ctx) {
    let s = &ctx.store;
    for i in 1..=5 {
        s.append_audit(audit_entry(i)).await.unwrap();
    }
    // Removing the newest entry leaves no gap; the chain head catches it.
    assert_eq!(ctx.exec_raw("DELETE FROM audit_log WHERE seq = 5").await, 1);
    let v = s.verify_audit().await.unwrap();
    assert!(!v.ok, "{v:?}");
    assert_eq!(v.first_bad_seq, Some(5));
    // Removing one from the middle leaves a gap.
    assert_eq!(ctx.exec_raw("DELETE FROM audit_log WHERE seq = 2").await, 1);
    let v = s.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(2));
    assert_eq!(v.entries, 3);
}

async fn concurrent_audit_appends_do_not_fork_the_chain(ctx: Ctx) {
    let s = &ctx.store;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    s.append_audit(audit_entry(t * 100 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = s.audit_entries(0, 1000).await.unwrap();
    assert_eq!(all.len(), 80);
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
    let v = s.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 80);
}

async fn data_survives_a_restart(mut ctx: Ctx) {
    let (doc, room) = gp_room(&ctx.store).await;
    let v = full_visit(&ctx.store, &room.id, &doc.id, T0, 30, 300).await;
    ctx.store.submit_survey(survey(v.clone(), 9)).await.unwrap();
    ctx.store
        .create_session(NewSession {
            id: "sess".into(),
            staff: doc.id.clone(),
            created_at: T0,
            expires_at: T0 + 1,
        })
        .await
        .unwrap();
    let audit = ctx.store.append_audit(audit_entry(1)).await.unwrap();
    let visit_before = ctx.store.visit(&v).await.unwrap();

    ctx.reopen().await;

    let s = &ctx.store;
    assert_eq!(s.staff(&doc.id).await.unwrap(), Some(doc.clone()));
    assert_eq!(s.room(&room.id).await.unwrap(), Some(room.clone()));
    assert_eq!(s.visit(&v).await.unwrap(), visit_before);
    assert!(s.session("sess").await.unwrap().is_some());
    assert_eq!(
        s.experience(&VisitFilter::default()).await.unwrap().nps,
        Some(100.0)
    );
    // The chain continues where it stopped.
    let next = s.append_audit(audit_entry(2)).await.unwrap();
    assert_eq!((next.seq, next.prev_hash), (2, audit.hash));
    assert!(s.verify_audit().await.unwrap().ok);
    if ctx.backend == Backend::Sqlite {
        assert!(ctx.settings.server.data_dir.join("examroom.db").exists());
    }
}

async fn concurrent_events_of_one_visit_all_count(ctx: Ctx) {
    let s = &ctx.store;
    let doc = physician(s, "doc@clinic.example").await;
    let room = s.create_room(new_room("GP", vec![])).await.unwrap();
    for round in 0..10 {
        let v = VisitId::new();
        let states = [
            (VisitState::Waiting, T0),
            (VisitState::Admitted, T0 + 10_000),
            (VisitState::InCall, T0 + 12_000),
            (VisitState::Ended, T0 + 72_000),
        ];
        let tasks: Vec<_> = states
            .into_iter()
            .map(|(state, at)| {
                let (s, v, room, doc) = (s.clone(), v.clone(), room.id.clone(), doc.id.clone());
                tokio::spawn(async move {
                    let mut e = ev(&v, &room, state, at);
                    e.physician = (state == VisitState::Admitted).then_some(doc);
                    s.record_visit_event(e).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let r = s.visit(&v).await.unwrap().unwrap();
        assert_eq!(r.transitions.len(), 4, "round {round}");
        assert_eq!(
            (r.created_at, r.admitted_at, r.call_started_at, r.ended_at),
            (T0, Some(T0 + 10_000), Some(T0 + 12_000), Some(T0 + 72_000)),
            "round {round}: the summary saw every transition"
        );
        assert_eq!(r.admitted_by, Some(doc.id.clone()));
        assert_eq!(
            (r.state, r.outcome),
            (VisitState::Ended, Some(VisitState::Ended))
        );
        assert_eq!((r.wait_secs, r.call_secs), (Some(10.0), Some(60.0)));
    }
}

async fn open_refuses_an_unknown_database_url(ctx: Ctx) {
    let mut settings = ctx.settings.clone();
    settings.database.url = Secret::new("mysql://user:hunter2@db/examroom");
    match open(&settings).await {
        Err(
            e @ DurableError::Invalid {
                field: "database.url",
                ..
            },
        ) => {
            assert!(
                !e.to_string().contains("hunter2"),
                "never echo the URL: {e}"
            );
        }
        Err(e) => panic!("expected Invalid{{database.url}}, got {e:?}"),
        Ok(_) => panic!("expected Invalid{{database.url}}, got a store"),
    }
}

async fn audit_verify_pages_through_a_long_log(ctx: Ctx) {
    let s = &ctx.store;
    // More than one verification page (1000 rows).
    for i in 1..=1003 {
        s.append_audit(audit_entry(i)).await.unwrap();
    }
    let v = s.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 1003);
    ctx.exec_raw("UPDATE audit_log SET actor = 's_other' WHERE seq = 1002")
        .await;
    let v = s.verify_audit().await.unwrap();
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(1002)));
}

async fn identity_attempts_are_limited_under_concurrency(ctx: Ctx) {
    let s = &ctx.store;
    let visit = VisitId::new();
    assert_eq!(s.identity_check(&visit).await.unwrap(), None);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (s, visit) = (s.clone(), visit.clone());
            tokio::spawn(async move { s.take_identity_attempt(&visit, 5).await.unwrap() })
        })
        .collect();
    let mut slots = Vec::new();
    for t in tasks {
        slots.extend(t.await.unwrap());
    }
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3, 4, 5], "exactly five slots, numbered");
    let check = s.identity_check(&visit).await.unwrap().unwrap();
    assert_eq!((check.attempts, check.confirmed_at), (5, None));

    // Confirmed: the first time is kept and no further slot is given.
    let other = VisitId::new();
    assert_eq!(s.take_identity_attempt(&other, 5).await.unwrap(), Some(1));
    s.confirm_identity(&other, T0).await.unwrap();
    s.confirm_identity(&other, T0 + 5).await.unwrap();
    assert_eq!(s.take_identity_attempt(&other, 5).await.unwrap(), None);
    let check = s.identity_check(&other).await.unwrap().unwrap();
    assert_eq!((check.attempts, check.confirmed_at), (1, Some(T0)));
    assert!(matches!(
        s.confirm_identity(&VisitId::new(), T0).await,
        Err(DurableError::NotFound { .. })
    ));
}

async fn emergency_access_is_kept_per_visit_and_physician(ctx: Ctx) {
    let s = &ctx.store;
    let grey = physician(s, "grey@clinic.test").await;
    let house = physician(s, "house@clinic.test").await;
    let room = s
        .create_room(new_room("ER", vec![grey.id.clone(), house.id.clone()]))
        .await
        .unwrap();
    let visit = VisitId::new();
    let grant = |staff: &Staff, reason: &str, at: i64| NewEmergencyAccess {
        visit: visit.clone(),
        room: room.id.clone(),
        staff: staff.id.clone(),
        patient_ref: Some(PatientRef::parse("pt-1").unwrap()),
        reason: reason.into(),
        at,
    };
    assert_invalid(
        s.record_emergency_access(grant(&grey, "  ", T0)).await,
        "reason",
    );
    assert!(!s.emergency_access_granted(&visit, &grey.id).await.unwrap());
    s.record_emergency_access(grant(&grey, "unresponsive patient", T0))
        .await
        .unwrap();
    assert!(s.emergency_access_granted(&visit, &grey.id).await.unwrap());
    assert!(!s.emergency_access_granted(&visit, &house.id).await.unwrap());
    assert!(
        !s.emergency_access_granted(&VisitId::new(), &grey.id)
            .await
            .unwrap()
    );
    s.record_emergency_access(grant(&house, "second opinion, urgent", T0 + 1))
        .await
        .unwrap();
    let list = s.list_emergency_access(10).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].grant.staff, house.id, "newest first");
    assert_eq!(list[1].grant.reason, "unresponsive patient");
    assert_eq!(list[1].grant.patient_ref.as_ref().unwrap().as_str(), "pt-1");
    assert_eq!(s.list_emergency_access(1).await.unwrap().len(), 1);
}

async fn physician_profiles_are_stored_replaced_and_listed(ctx: Ctx) {
    use examroom::durable::directory::{Profile, Publish, Site};
    let s = &ctx.store;
    let doc = physician(s, "doc@clinic.example").await;
    let other = physician(s, "other@clinic.example").await;
    assert_eq!(s.profile(&doc.id).await.unwrap(), None);
    let mut p = Profile {
        staff: doc.id.clone(),
        display_name: "Dr Doc".into(),
        specialties: vec!["Pediatrics".into()],
        bio: Some("Née à Genève".into()),
        sites: vec![Site {
            name: "Centro".into(),
            address: "Calle Mayor 1, Madrid".into(),
            lat: 40.4168,
            lon: -3.7038,
        }],
        visit_types: vec!["video".into(), "follow-up".into()],
        accepting_new: true,
        listed: true,
        publish: Publish {
            gender: false,
            languages: true,
            sites: true,
            bio: false,
            photo: true,
        },
        updated_at: T0,
    };
    s.put_profile(&p).await.unwrap();
    assert_eq!(s.profile(&doc.id).await.unwrap().as_ref(), Some(&p));
    // Replaced whole, not merged.
    p.specialties = vec![];
    p.sites.clear();
    p.bio = None;
    p.updated_at = T0 + 1;
    s.put_profile(&p).await.unwrap();
    assert_eq!(s.profile(&doc.id).await.unwrap().as_ref(), Some(&p));
    // Only listed profiles are listed.
    let hidden = Profile {
        staff: other.id.clone(),
        display_name: "Dr Other".into(),
        listed: false,
        ..p.clone()
    };
    s.put_profile(&hidden).await.unwrap();
    let listed = s.listed_profiles().await.unwrap();
    assert_eq!(listed, vec![p.clone()]);
    // A profile for nobody is refused and writes nothing.
    let ghost = Profile {
        staff: StaffId::parse("no-such-staff").unwrap(),
        ..p
    };
    assert_invalid(s.put_profile(&ghost).await, "staff");
    assert_eq!(s.profile(&ghost.staff).await.unwrap(), None);

    // Photos: stored byte for byte, replaced, listed by date, removed once.
    use examroom::durable::directory::Photo;
    assert_eq!(s.photo(&doc.id).await.unwrap(), None);
    let mut pic = Photo {
        content_type: "image/png".into(),
        bytes: (0..=255u8).cycle().take(70_000).collect(),
        updated_at: T0,
    };
    s.put_photo(&doc.id, &pic).await.unwrap();
    assert_eq!(s.photo(&doc.id).await.unwrap().as_ref(), Some(&pic));
    pic.content_type = "image/webp".into();
    pic.bytes.truncate(10);
    pic.updated_at = T0 + 5;
    s.put_photo(&doc.id, &pic).await.unwrap();
    assert_eq!(s.photo(&doc.id).await.unwrap().as_ref(), Some(&pic));
    assert_eq!(
        s.photo_dates().await.unwrap(),
        vec![(doc.id.clone(), T0 + 5)]
    );
    assert_invalid(s.put_photo(&ghost.staff, &pic).await, "staff");
    assert!(s.delete_photo(&doc.id).await.unwrap());
    assert!(!s.delete_photo(&doc.id).await.unwrap(), "gone already");
    assert!(s.photo_dates().await.unwrap().is_empty());
}
