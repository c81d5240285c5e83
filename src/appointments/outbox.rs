//! The outbox worker: delivers the notices the booking, move and cancel transactions
//! wrote, on every node, each notice once.
//!
//! Each pass claims the due notices with a lease (one UPDATE: two nodes never hold one
//! notice), re-reads each one's appointment and drops a notice that is stale (the
//! appointment moved, was cancelled or opted out of reminders since it was written), hands
//! the rest to the [`Courier`], and records the outcome: sent; a temporary failure is
//! retried with a growing wait until `outbox_max_attempts`; a refusal is recorded as failed
//! for admins. A node that dies mid-delivery leaves its lease to run out; another node
//! takes the notice then (so a notice may, rarely, be delivered twice, never lost).
//!
//! The same pass marks confirmed appointments whose join link closed unopened as no-shows.

use super::secrets::AppointmentKey;
use super::{Appointments, channel_of};
use crate::durable::DurableStore;
use crate::durable::appointments::{
    Appointment, AppointmentStatus, NoticeKind, NoticeOutcome, StoredNotice,
};
use crate::notify::{
    self, AppointmentFacts, Courier, CourierError, Notice, NoticeLinks, Recipient,
};
use crate::visit::Millis;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct OutboxRules {
    pub poll: Duration,
    pub lease_ms: Millis,
    pub max_attempts: i64,
    /// Notices claimed per pass.
    pub batch: i64,
    pub clinic_name: String,
    pub public_url: String,
}

/// The wait before the next try after `attempts` failed ones: 30 s, doubling, at most an
/// hour.
pub fn backoff_ms(attempts: i64) -> Millis {
    let doublings = (attempts - 1).clamp(0, 7) as u32;
    (30_000i64 << doublings).min(3_600_000)
}

/// Why a notice must not be sent any more, if it must not. Pure.
pub fn stale(a: &Appointment, n: &StoredNotice, now: Millis) -> Option<&'static str> {
    use AppointmentStatus as S;
    let current = a.sequence == n.sequence;
    match n.kind {
        NoticeKind::Code if a.status != S::Pending || a.hold_until <= now => Some("no longer held"),
        NoticeKind::Code => None,
        _ if !current => Some("superseded"),
        NoticeKind::Booked | NoticeKind::Moved if a.status != S::Confirmed => {
            Some("no longer confirmed")
        }
        NoticeKind::Reminder if a.status != S::Confirmed => Some("no longer confirmed"),
        NoticeKind::Reminder if a.reminders_off => Some("opted out"),
        NoticeKind::Reminder if a.starts_at <= now => Some("already started"),
        NoticeKind::Cancelled if a.status != S::Cancelled => Some("not cancelled"),
        _ => None,
    }
}

/// One node's outbox worker.
pub struct Outbox {
    durable: Arc<dyn DurableStore>,
    courier: Arc<dyn Courier>,
    key: AppointmentKey,
    rules: OutboxRules,
    /// This node's name on the leases it takes.
    owner: String,
}

/// What one pass did (for tests and the log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub dropped: usize,
    /// Finished by another holder meanwhile (our lease had run out).
    pub lost: usize,
}

impl Outbox {
    pub fn new(
        durable: Arc<dyn DurableStore>,
        courier: Arc<dyn Courier>,
        key: AppointmentKey,
        rules: OutboxRules,
    ) -> Self {
        Outbox {
            durable,
            courier,
            key,
            rules,
            owner: format!("node-{}", crate::ids::random_id()),
        }
    }

    /// Claim what is due at `now` and deliver it.
    pub async fn pass(&self, now: Millis) -> Result<Pass, crate::durable::DurableError> {
        let claimed = self
            .durable
            .claim_notices(&self.owner, now, self.rules.lease_ms, self.rules.batch)
            .await?;
        let mut pass = Pass::default();
        for n in claimed {
            let outcome = self.deliver(&n, now).await;
            match &outcome {
                NoticeOutcome::Sent => pass.sent += 1,
                NoticeOutcome::Retry { .. } => pass.retried += 1,
                NoticeOutcome::Failed { .. } => pass.failed += 1,
                NoticeOutcome::Dropped { .. } => pass.dropped += 1,
            }
            if let NoticeOutcome::Failed { error } = &outcome {
                tracing::warn!(notice = %n.id, appointment = %n.appointment, kind = n.kind.as_str(), error = %error, "notice failed");
            }
            if !self
                .durable
                .finish_notice(&n.id, &self.owner, outcome, now)
                .await?
            {
                pass.lost += 1;
            }
        }
        Ok(pass)
    }

    async fn deliver(&self, n: &StoredNotice, now: Millis) -> NoticeOutcome {
        let a = match self.durable.appointment(&n.appointment).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return NoticeOutcome::Dropped {
                    why: "appointment gone".into(),
                };
            }
            Err(e) => return self.retry(n, now, format!("store: {e}")),
        };
        if let Some(why) = stale(&a, n, now) {
            return NoticeOutcome::Dropped { why: why.into() };
        }
        let (to, notice) = match self.compose(&a, n).await {
            Ok(x) => x,
            Err(Composed::Retry(e)) => return self.retry(n, now, e),
            Err(Composed::Fail(e)) => return NoticeOutcome::Failed { error: e },
        };
        match tokio::time::timeout(
            Duration::from_millis((self.rules.lease_ms / 2).max(1000) as u64),
            self.courier.deliver(&to, &notice),
        )
        .await
        {
            Ok(Ok(())) => NoticeOutcome::Sent,
            Ok(Err(CourierError::Retry(e))) => self.retry(n, now, e),
            Ok(Err(e @ (CourierError::Refused(_) | CourierError::NotConfigured(_)))) => {
                NoticeOutcome::Failed {
                    error: e.to_string(),
                }
            }
            Err(_) => self.retry(n, now, "the courier did not answer in time".into()),
        }
    }

    fn retry(&self, n: &StoredNotice, now: Millis, error: String) -> NoticeOutcome {
        if n.attempts >= self.rules.max_attempts {
            NoticeOutcome::Failed {
                error: format!("gave up after {} attempts: {error}", n.attempts),
            }
        } else {
            NoticeOutcome::Retry {
                at: now + backoff_ms(n.attempts),
                error,
            }
        }
    }

    /// The recipient and the notice, as the courier port wants them.
    async fn compose(
        &self,
        a: &Appointment,
        n: &StoredNotice,
    ) -> Result<(Recipient, Notice), Composed> {
        let channel =
            channel_of(&n.channel).ok_or_else(|| Composed::Fail("unknown channel".into()))?;
        let address = match channel {
            notify::Channel::Email => a.email.clone(),
            notify::Channel::Text => a.phone.clone(),
        }
        .ok_or_else(|| Composed::Fail("no address for this channel".into()))?;
        let to = Recipient {
            channel,
            address,
            name: a.patient_name.clone(),
        };
        let kind = match n.kind {
            NoticeKind::Code => notify::NoticeKind::ContactCode {
                code: self.key.contact_code(&a.id),
            },
            NoticeKind::Booked => notify::NoticeKind::Booked,
            NoticeKind::Reminder => notify::NoticeKind::Reminder {
                lead: chrono::Duration::seconds(n.lead_secs.unwrap_or(0)),
            },
            NoticeKind::Moved => notify::NoticeKind::Moved,
            NoticeKind::Cancelled => notify::NoticeKind::Cancelled,
        };
        if n.kind == NoticeKind::Code {
            let notice = Notice {
                kind,
                lang: a.lang.clone(),
                appointment: None,
                links: NoticeLinks::default(),
            };
            return Ok((to, notice));
        }
        let physician = self
            .durable
            .staff(&a.physician)
            .await
            .map_err(|e| Composed::Retry(format!("store: {e}")))?
            .map(|s| s.name)
            .unwrap_or_default();
        let zone = self
            .durable
            .schedule(&a.physician)
            .await
            .map_err(|e| Composed::Retry(format!("store: {e}")))?
            .map_or(chrono_tz::UTC, |s| s.schedule.zone);
        let time = |ms: Millis| {
            chrono::DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| Composed::Fail("appointment time out of range".into()))
        };
        let facts = AppointmentFacts {
            id: a.id.to_string(),
            starts_at: time(a.starts_at)?,
            ends_at: time(a.ends_at)?,
            zone,
            physician_name: physician,
            clinic_name: self.rules.clinic_name.clone(),
            sequence: u32::try_from(a.sequence).unwrap_or(u32::MAX),
        };
        let base = &self.rules.public_url;
        let manage = format!("{base}/manage/{}", self.key.manage_token(&a.id));
        let links = if n.kind == NoticeKind::Cancelled {
            NoticeLinks::default()
        } else {
            NoticeLinks {
                manage: Some(manage.clone()),
                join: Some(format!("{base}/join/{}", self.key.join_code(&a.id))),
                opt_out: Some(format!("{manage}#reminders-off")),
            }
        };
        Ok((
            to,
            Notice {
                kind,
                lang: a.lang.clone(),
                appointment: Some(facts),
                links,
            },
        ))
    }
}

enum Composed {
    Retry(String),
    Fail(String),
}

/// The worker loop of one node: a pass each `poll`, or at once when a booking wakes it;
/// no-shows are marked on each pass too. Ends with `shutdown`.
pub async fn run(
    service: Arc<Appointments>,
    outbox: Option<Arc<Outbox>>,
    durable: Arc<dyn DurableStore>,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let wake = service.wake();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        match durable.mark_appointment_no_shows(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "appointments recorded as no-shows"),
            Err(e) => tracing::warn!(error = %e, "no-show sweep of appointments failed"),
        }
        if let Some(outbox) = &outbox {
            match outbox.pass(now).await {
                Ok(p) if p == Pass::default() => {}
                Ok(p) => tracing::info!(
                    sent = p.sent,
                    retried = p.retried,
                    failed = p.failed,
                    dropped = p.dropped,
                    lost = p.lost,
                    "outbox pass"
                ),
                Err(e) => tracing::warn!(error = %e, "outbox pass failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::durable::appointments::{
        AppointmentChange, NewAppointment, NewNotice, NoticeStatus,
    };
    use crate::durable::{NewRoom, NewStaff};
    use crate::ids::{AppointmentId, NoticeId, Role};
    use crate::notify::Channel;
    use crate::visit::RoomKind;
    use std::sync::Mutex;

    /// A courier that records what it is given and answers as told: the edge of what a
    /// unit test can run (the real SMTP and text couriers are the `notify` module's, and
    /// the integration tests drive them). A `std` mutex: held for a push, never across an
    /// await.
    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<(Recipient, Notice)>>,
        answers: Mutex<Vec<Result<(), CourierError>>>,
    }

    #[async_trait::async_trait]
    impl Courier for Recording {
        fn channels(&self) -> Vec<Channel> {
            vec![Channel::Email, Channel::Text]
        }
        async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError> {
            let answer = self.answers.lock().unwrap().pop().unwrap_or(Ok(()));
            if answer.is_ok() {
                self.sent.lock().unwrap().push((to.clone(), notice.clone()));
            }
            answer
        }
    }

    const T0: Millis = 1_800_000_000_000;
    const HOUR: Millis = 3_600_000;

    struct World {
        _dir: tempfile::TempDir,
        store: Arc<dyn DurableStore>,
        courier: Arc<Recording>,
        outbox: Outbox,
        appointment: AppointmentId,
    }

    /// A SQLite store with one physician, her room and one pending appointment at T0 + 48 h
    /// with an e-mail contact.
    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.server.data_dir = dir.path().to_path_buf();
        let store = crate::durable::open(&settings).await.unwrap();
        let doc = store
            .create_staff(NewStaff {
                email: "doc@clinic.example".into(),
                name: "Dr Vega".into(),
                roles: vec![Role::Physician],
                password_hash: None,
                languages: vec!["es".into()],
                gender: None,
            })
            .await
            .unwrap();
        let room = store
            .create_room(NewRoom::with_defaults(
                "Vega",
                RoomKind::Physician,
                vec![doc.id.clone()],
            ))
            .await
            .unwrap();
        let id = AppointmentId::new();
        store
            .book(
                NewAppointment {
                    id: id.clone(),
                    physician: doc.id,
                    room: room.id,
                    visit_type: crate::scheduling::VisitTypeKey::default_key(),
                    visit_name: String::new(),
                    starts_at: T0 + 48 * HOUR,
                    ends_at: T0 + 48 * HOUR + HOUR / 2,
                    busy_until: T0 + 48 * HOUR + HOUR / 2,
                    hold_until: T0 + HOUR / 4,
                    patient_name: "Ana Ruiz".into(),
                    email: Some("ana@example.org".into()),
                    phone: None,
                    birth_date: "1980-04-23".into(),
                    reason: "a rash".into(),
                    lang: "es".into(),
                    consent: true,
                    created_at: T0,
                },
                vec![NewNotice {
                    id: NoticeId::new(),
                    kind: NoticeKind::Code,
                    lead_secs: None,
                    channel: "email".into(),
                    due_at: T0,
                }],
            )
            .await
            .unwrap();
        let courier = Arc::new(Recording::default());
        let key = AppointmentKey::from_server_secret("unit-test-secret-unit-test-secret!!");
        let rules = OutboxRules {
            poll: Duration::from_secs(1),
            lease_ms: 60_000,
            max_attempts: 3,
            batch: 10,
            clinic_name: "Clínica Sol".into(),
            public_url: "https://visits.example".into(),
        };
        let outbox = Outbox::new(store.clone(), courier.clone(), key, rules);
        World {
            _dir: dir,
            store,
            courier,
            outbox,
            appointment: id,
        }
    }

    async fn status_of(w: &World) -> Vec<(NoticeKind, NoticeStatus)> {
        w.store
            .notices_of(&w.appointment)
            .await
            .unwrap()
            .into_iter()
            .map(|n| (n.kind, n.status))
            .collect()
    }

    #[tokio::test]
    async fn a_due_code_is_sent_once_with_the_derived_code_and_no_reason() {
        let w = world().await;
        assert_eq!(w.outbox.pass(T0).await.unwrap().sent, 1);
        assert_eq!(w.outbox.pass(T0 + 1000).await.unwrap(), Pass::default());
        let sent = w.courier.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        let (to, notice) = &sent[0];
        assert_eq!(to.address, "ana@example.org");
        assert_eq!(notice.lang, "es");
        let key = AppointmentKey::from_server_secret("unit-test-secret-unit-test-secret!!");
        assert_eq!(
            notice.kind,
            notify::NoticeKind::ContactCode {
                code: key.contact_code(&w.appointment)
            }
        );
        assert!(!format!("{notice:?}").contains("rash"));
        assert_eq!(
            status_of(&w).await,
            [(NoticeKind::Code, NoticeStatus::Sent)]
        );
    }

    #[tokio::test]
    async fn a_claimed_notice_is_not_claimed_again_while_its_lease_runs() {
        let w = world().await;
        let first = w.store.claim_notices("a", T0, 60_000, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            w.store
                .claim_notices("b", T0 + 1, 60_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The holder died: after the lease another node takes it, and the first may no
        // longer finish it.
        let again = w
            .store
            .claim_notices("b", T0 + 60_001, 60_000, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        let ok = w
            .store
            .finish_notice(&first[0].id, "a", NoticeOutcome::Sent, T0 + 60_002)
            .await
            .unwrap();
        assert!(!ok, "a lapsed lease cannot finish the notice");
    }

    #[tokio::test]
    async fn a_temporary_failure_is_retried_with_backoff_then_given_up_for_admins() {
        let w = world().await;
        w.courier
            .answers
            .lock()
            .unwrap()
            .extend([0, 1, 2].map(|_| Err(CourierError::Retry("451 try later".into()))));
        assert_eq!(w.outbox.pass(T0).await.unwrap().retried, 1);
        // Not due again until the backoff is over.
        assert_eq!(w.outbox.pass(T0 + 29_000).await.unwrap(), Pass::default());
        assert_eq!(w.outbox.pass(T0 + 30_000).await.unwrap().retried, 1);
        let p = w.outbox.pass(T0 + 30_000 + 60_000).await.unwrap();
        assert_eq!(p.failed, 1, "the third failure is the last attempt");
        let failed = w.store.failed_notices(10).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].last_error.as_deref().unwrap().contains("451"));
        assert!(w.courier.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let w = world().await;
        w.courier
            .answers
            .lock()
            .unwrap()
            .push(Err(CourierError::Refused("550 no such user".into())));
        assert_eq!(w.outbox.pass(T0).await.unwrap().failed, 1);
        assert_eq!(w.outbox.pass(T0 + HOUR).await.unwrap(), Pass::default());
        assert_eq!(
            status_of(&w).await,
            [(NoticeKind::Code, NoticeStatus::Failed)]
        );
    }

    #[tokio::test]
    async fn a_reminder_of_a_moved_or_cancelled_appointment_is_dropped_not_sent() {
        let w = world().await;
        w.outbox.pass(T0).await.unwrap();
        let a = w.store.appointment(&w.appointment).await.unwrap().unwrap();
        // Confirm it with a reminder a day before.
        let reminder = NewNotice {
            id: NoticeId::new(),
            kind: NoticeKind::Reminder,
            lead_secs: Some(86_400),
            channel: "email".into(),
            due_at: a.starts_at - 24 * HOUR,
        };
        let link = crate::durable::NewLink {
            id: crate::ids::LinkId::new(),
            code_hash: "h".repeat(64),
            kind: crate::durable::LinkKind::Patient,
            room: a.room.clone(),
            visit: crate::ids::VisitId::new(),
            patient_name: None,
            patient_ref: None,
            reason: None,
            lang: None,
            not_before: Some(a.starts_at - HOUR / 4),
            expires_at: a.starts_at + HOUR / 2,
            created_by: a.physician.clone(),
            created_at: T0 + 1000,
        };
        let change = AppointmentChange {
            id: a.id.clone(),
            now: T0 + 1000,
            notices: vec![reminder.clone()],
        };
        w.store
            .confirm(&a.id, &"m".repeat(64), link, change)
            .await
            .unwrap();
        // The stale check at send time: a notice of an older sequence is dropped even if
        // the move's own transaction had not dropped it (a row a worker held meanwhile).
        let n = w.store.notices_of(&a.id).await.unwrap().pop().unwrap();
        let mut moved = w.store.appointment(&a.id).await.unwrap().unwrap();
        assert_eq!(stale(&moved, &n, T0), None);
        moved.sequence += 1;
        assert_eq!(stale(&moved, &n, T0), Some("superseded"));
        moved.sequence -= 1;
        moved.reminders_off = true;
        assert_eq!(stale(&moved, &n, T0), Some("opted out"));
        // And through the store: a cancel drops the pending reminder in its transaction,
        // and the cancellation notice goes out instead.
        let cancel = AppointmentChange {
            id: a.id.clone(),
            now: T0 + 2000,
            notices: vec![NewNotice {
                id: NoticeId::new(),
                kind: NoticeKind::Cancelled,
                lead_secs: None,
                channel: "email".into(),
                due_at: T0 + 2000,
            }],
        };
        w.store.cancel(cancel).await.unwrap();
        let p = w.outbox.pass(a.starts_at - 24 * HOUR).await.unwrap();
        assert_eq!((p.sent, p.dropped), (1, 0));
        let kinds: Vec<_> = w
            .courier
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.kind.clone())
            .collect();
        assert_eq!(kinds.len(), 2);
        assert_eq!(kinds[1], notify::NoticeKind::Cancelled);
        assert_eq!(
            status_of(&w).await,
            [
                (NoticeKind::Code, NoticeStatus::Sent),
                (NoticeKind::Reminder, NoticeStatus::Dropped),
                (NoticeKind::Cancelled, NoticeStatus::Sent)
            ]
        );
    }

    #[test]
    fn backoff_doubles_from_30_seconds_up_to_an_hour() {
        assert_eq!(backoff_ms(1), 30_000);
        assert_eq!(backoff_ms(2), 60_000);
        assert_eq!(backoff_ms(3), 120_000);
        assert_eq!(backoff_ms(20), 3_600_000);
    }
}
