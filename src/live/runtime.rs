//! One room task, shared by both live stores. It feeds the room's state machine its
//! inputs and a tick a second, hands each batch of outputs to the store
//! ([`RoomHost::commit`]: history first, then delivery), and stops when the room is idle,
//! its inbox closes, or the store says so. The stores differ only in their [`RoomHost`]:
//! where outputs go, what a change publishes, and what happens when the room stops.
//!
//! Handling is supervised ([`Supervised`]): a panic while handling one input is caught,
//! logged without patient data (room and input kind only), the room restored from its
//! last good snapshot, and its connected participants told to resume (`going_away`), so
//! a bug cannot take a room's waiting patients down with it.

use super::mailbox;
use super::outbox::Outbox;
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::ServerMsg;
use crate::visit::room::{Act, Input, Output, Room};
use crate::visit::{Millis, RoomConfig};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Inputs queued to one room before submitters wait.
pub(crate) const ROOM_INBOX: usize = 4096;
/// A room with nobody in it and nothing open is given up after this long.
const IDLE_ROOM: Duration = Duration::from_secs(60);
/// How soon a participant told to resume (after a contained panic, or when the room moved
/// to another node) reconnects.
pub(crate) const RESUME_AFTER_MS: u64 = 500;

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What one room task is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum RoomCmd {
    Input(Input),
    Reconfigure(RoomConfig),
}

/// A room task's inbox: commands for the room, and the store's own.
///
/// Boxed: a `RoomCmd` is ≈ 300 bytes (a `Member`, or a relayed `ServerMsg`), and a
/// burst grows the inbox's queue to its largest length.
pub(crate) enum Mail<H> {
    Cmd(Box<RoomCmd>),
    /// An input from one connection on this node, which keeps its direct relays behind
    /// it until the room has handled it and sent what it said ([`Outbox::hold`]).
    From(Box<(Input, Outbox)>),
    Host(H),
}

impl<H> Mail<H> {
    pub(crate) fn cmd(cmd: RoomCmd) -> Self {
        Mail::Cmd(Box::new(cmd))
    }
}

/// Each room task on this node, by room: where its inputs go. std Mutex: held only for
/// a look-up (and a push), never across an await.
pub(crate) type RoomInboxes<M> =
    std::sync::Mutex<std::collections::HashMap<RoomId, mailbox::Sender<M>>>;

/// Hand `mail` to `room`'s task on this node without waiting. Most inputs find the task
/// running with room in its inbox and go over under the map's lock alone, no sender
/// cloned (this is every relayed message's path). Otherwise the mail comes back, with
/// the room's sender when its inbox is only full (wait on that), `None` when no task runs.
pub(crate) fn hand_over<M>(
    rooms: &RoomInboxes<M>,
    room: &RoomId,
    mail: M,
) -> Result<(), (M, Option<mailbox::Sender<M>>)> {
    let rooms = rooms.lock().expect("poisoned");
    let Some(tx) = rooms.get(room) else {
        return Err((mail, None));
    };
    match tx.try_send(mail) {
        Ok(()) => Ok(()),
        Err(mailbox::TrySendError::Full(mail)) => Err((mail, Some(tx.clone()))),
        Err(mailbox::TrySendError::Closed(mail)) => Err((mail, None)),
    }
}

/// Why a room task stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nobody in it and nothing open for [`IDLE_ROOM`].
    Idle,
    /// Every sender is gone.
    Closed,
    /// The store's [`RoomHost::deposed`] token fired (another node owns the room now).
    Deposed,
    /// The store's own mail asked it to stop.
    Asked,
}

/// What a live store does around the shared room task.
#[async_trait]
pub(crate) trait RoomHost: Send + 'static {
    type Mail: Send + 'static;
    /// Send one batch of outputs; its transitions are recorded before anything is sent
    /// ([`super::record_first`]). `changed`: the input may have changed the room's state
    /// (see [`Supervised::changed`]), so what depends on it may have to change first.
    async fn commit(&mut self, room: &Room, outputs: Vec<Output>, changed: bool);
    /// Whether to refuse `input` without handling it: `Some(answer)` is sent instead.
    /// A store refuses what it could not tell everyone concerned (`docs/deploy.md`,
    /// "Redis outage").
    fn refuse(&self, _room: &Room, _input: &Input) -> Option<Vec<Output>> {
        None
    }
    /// A batch changed the room: publish what depends on its state.
    fn changed(&mut self, room: &Room);
    /// The store's own mail, also for mail left in the inbox after the room stopped.
    /// `true` stops the room.
    fn mail(&mut self, mail: Self::Mail) -> bool;
    /// Fires when the room must stop at once; `None` for a store without rivals.
    fn deposed(&self) -> Option<CancellationToken> {
        None
    }
    /// The task stopped taking inputs; `leftovers` slipped in before its inbox closed
    /// and must go to the room's next task.
    async fn stopped(self, room: Room, why: Stop, leftovers: Vec<RoomCmd>);
}

/// The room task: `first` are inputs to handle before any from the inbox.
pub(crate) async fn run_room<H: RoomHost>(
    room: Room,
    mut rx: mailbox::Receiver<Mail<H::Mail>>,
    mut host: H,
    first: Vec<Input>,
) {
    let mut room = Supervised::new(room);
    // Made once and kept: waiting on a fresh `cancelled()` in every turn of the loop
    // registered and dropped a waiter per input.
    let mut deposed = host.deposed().map(|t| Box::pin(t.cancelled_owned()));
    for input in first {
        let out = room.handle(input, now_ms());
        host.commit(room.room(), out, true).await;
    }
    host.changed(room.room());
    // No ticking every second: the room sleeps until time alone would change it (its next
    // deadline), until it has been idle long enough to stop, or for `MAX_SLEEP` at most.
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut wake = next_wake(room.room(), &mut idle_since);
    let sleep = tokio::time::sleep_until(wake);
    tokio::pin!(sleep);
    // The connection whose input is being handled, told once what it said is sent.
    let mut sender: Option<Outbox> = None;
    let why = loop {
        // A tick that says nothing changed nothing worth publishing (and whatever time
        // alone changes, a successor's own ticks redo): serialising every room every
        // second was most of a busy node's CPU.
        let (outputs, quiet, ticked) = tokio::select! {
            biased;
            _ = until_deposed(&mut deposed) => break Stop::Deposed,
            mail = rx.recv() => match mail {
                Some(Mail::Cmd(cmd)) => match *cmd {
                    RoomCmd::Input(input) => handle(&mut room, &host, input),
                    RoomCmd::Reconfigure(cfg) => (room.reconfigure(cfg, now_ms()), false, false),
                },
                Some(Mail::From(from)) => {
                    let (input, outbox) = *from;
                    sender = Some(outbox);
                    handle(&mut room, &host, input)
                }
                Some(Mail::Host(m)) => {
                    if host.mail(m) {
                        break Stop::Asked;
                    }
                    continue;
                }
                None => break Stop::Closed,
            },
            _ = &mut sleep => {
                let out = room.handle(Input::Tick, now_ms());
                let idle_for = idle_since.map(|since| since.elapsed());
                if room.room().is_idle() && idle_for.is_some_and(|d| d >= IDLE_ROOM) && rx.is_empty() {
                    host.commit(room.room(), out, false).await;
                    break Stop::Idle;
                }
                let quiet = out.is_empty();
                (out, quiet, true)
            }
        };
        host.commit(room.room(), outputs, !quiet).await;
        if !quiet {
            host.changed(room.room());
        }
        if let Some(from) = sender.take() {
            from.handled();
        }
        // Re-arm after a tick, or when an input brought a deadline closer. A deadline an
        // input removed is left armed: one tick that finds nothing is cheaper than moving
        // the timer on every relayed message.
        let next = next_wake(room.room(), &mut idle_since);
        if ticked || next < wake {
            wake = next;
            sleep.as_mut().reset(wake);
        }
    };
    // Stop taking inputs first: whatever arrives later goes to the room's next task.
    rx.close();
    let mut leftovers = Vec::new();
    while let Some(mail) = rx.try_recv() {
        match mail {
            Mail::Cmd(c) => leftovers.push(*c),
            // Its next task handles it; relays from other rooms never waited on another
            // room's inputs, and this room has no way open for the connection.
            Mail::From(from) => {
                let (input, outbox) = *from;
                outbox.handled();
                leftovers.push(RoomCmd::Input(input));
            }
            Mail::Host(m) => {
                host.mail(m);
            }
        }
    }
    host.stopped(room.into_room(), why, leftovers).await;
}

/// One input: refused by the host, or handled. Returns the outputs, whether the room is
/// unchanged, and that it was no tick.
fn handle<H: RoomHost>(room: &mut Supervised, host: &H, input: Input) -> (Vec<Output>, bool, bool) {
    match host.refuse(room.room(), &input) {
        Some(answer) => (answer, true, false),
        None => {
            let out = room.handle(input, now_ms());
            (out, !room.changed(), false)
        }
    }
}

async fn until_deposed(deposed: &mut Option<Pin<Box<WaitForCancellationFutureOwned>>>) {
    match deposed {
        Some(fired) => fired.await,
        None => std::future::pending().await,
    }
}

/// Longest a room sleeps without an input: a backstop for a wall clock that jumped.
const MAX_SLEEP: Duration = Duration::from_secs(15);
/// Shortest: deadlines are whole wall-clock milliseconds, so a tick a fraction early finds
/// nothing due, and an idle room with mail waiting is not stopped; neither may spin.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// When the room task must next wake by itself: the room's next deadline (wall-clock ms,
/// turned into a timer), the end of [`IDLE_ROOM`] once it is idle, at most [`MAX_SLEEP`].
/// Keeps `idle_since` up to date.
fn next_wake(room: &Room, idle_since: &mut Option<tokio::time::Instant>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let mut wake = now + MAX_SLEEP;
    if let Some(deadline) = room.next_deadline() {
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms()).max(0) as u64);
        wake = wake.min(now + wait);
    }
    if room.is_idle() {
        wake = wake.min(*idle_since.get_or_insert(now) + IDLE_ROOM);
    } else {
        *idle_since = None;
    }
    wake.max(now + MIN_SLEEP)
}

/// A room whose handling cannot panic out: it keeps the last state known good and goes
/// back to it when handling an input panics.
pub(crate) struct Supervised {
    room: Room,
    /// Taken after every input that may change the room, except relays and chat (the
    /// bulk of the traffic) that changed no visit's state, and ticks that said nothing.
    /// Restoring loses at most such messages held for a reconnecting participant.
    /// Kept as the JSON of its visits and presences ([`Room::state_json`]; configuration
    /// and timing are the room's own and do not change while handling): read only after
    /// a panic, and a fraction of a cloned room's size (issue 20).
    last_good: Box<str>,
    /// Whether the last input handled may have changed the room's state; a relay that
    /// was only passed on did not, and its batch publishes nothing (most of the traffic).
    changed: bool,
}

impl Supervised {
    pub(crate) fn new(room: Room) -> Self {
        let last_good = Self::keep(&room);
        Self {
            room,
            last_good,
            changed: true,
        }
    }

    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    fn keep(room: &Room) -> Box<str> {
        room.state_json().into_boxed_str()
    }

    pub(crate) fn room(&self) -> &Room {
        &self.room
    }

    pub(crate) fn into_room(self) -> Room {
        self.room
    }

    pub(crate) fn reconfigure(&mut self, config: RoomConfig, now: Millis) -> Vec<Output> {
        self.room.reconfigure(config);
        self.handle(Input::Tick, now)
    }

    pub(crate) fn handle(&mut self, input: Input, now: Millis) -> Vec<Output> {
        let kind = input.kind();
        let who = input.participant().cloned();
        let tick = matches!(input, Input::Tick);
        // `relay`: relayed or chat (the bulk of the traffic); `passed_on`: relayed only.
        let (relay, passed_on) = match &input {
            Input::Act {
                act: Act::Relay { .. },
                ..
            } => (true, true),
            Input::Act {
                act: Act::Chat { .. },
                ..
            } => (true, false),
            _ => (false, false),
        };
        match catch_unwind(AssertUnwindSafe(|| self.room.handle(input, now))) {
            Ok(out) => {
                // Sent on, or refused to its sender: nothing held, no visit moved on.
                self.changed = !(passed_on
                    && !out.is_empty()
                    && out.iter().all(|o| matches!(o, Output::Send { .. })));
                let keep = if tick {
                    !out.is_empty()
                } else if relay {
                    out.iter().any(|o| matches!(o, Output::Record(_)))
                } else {
                    true
                };
                if keep {
                    self.last_good = Self::keep(&self.room);
                }
                out
            }
            Err(_) => {
                self.changed = true;
                self.recover(kind, who)
            }
        }
    }

    /// Handling `kind` panicked: the room may be half-changed. Go back to the last good
    /// state and have everyone connected reconnect and resume, so what their pages show
    /// matches the room again. Logs no patient data.
    fn recover(&mut self, kind: &'static str, who: Option<ParticipantId>) -> Vec<Output> {
        let id = self.room.id().clone();
        tracing::error!(room = %id, input = kind, "handling an input panicked; restoring the room from its last good snapshot");
        if let Err(e) = self.room.put_back(&self.last_good) {
            // Cannot happen (our own state, written by this process); serve what is there.
            tracing::error!(room = %id, error = %e, "room not restored");
        }
        let mut told: Vec<ParticipantId> = self.room.connected().cloned().collect();
        if let Some(w) = who
            && !told.contains(&w)
        {
            told.push(w);
        }
        told.sort();
        told.into_iter()
            .map(|who| Output::Close {
                who,
                msg: ServerMsg::GoingAway {
                    reason: "the room restarted after an internal error".into(),
                    reconnect_after_ms: RESUME_AFTER_MS,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Role;
    use crate::ids::{RoomId, StaffId, VisitId};
    use crate::visit::room::{Member, Timing, fault};
    use crate::visit::{RoomKind, VisitState};

    fn room(id: &str) -> Room {
        Room::new(
            RoomConfig {
                id: RoomId::parse(id).unwrap(),
                name: "Room".into(),
                kind: RoomKind::Physician,
                physicians: vec![StaffId::parse("s_doc").unwrap()],
                waiting_message: "Please wait.".into(),
                waiting_messages: Default::default(),
                max_wait_secs: 600,
                max_participants: 4,
                chat_allowed: true,
                invites_allowed: true,
                archived: false,
            },
            Timing {
                grace_ms: 120_000,
                offer_ms: 30_000,
                replay_buffer: 8,
            },
        )
    }

    fn member(id: &str, role: Role) -> Member {
        Member::test(id, role, (role == Role::Patient).then_some("v_1"))
    }

    fn first_connect(member: Member) -> Input {
        Input::Connect {
            member,
            resume: None,
            new_resume_token: "t0".into(),
            resume_only: false,
        }
    }

    fn connect(r: &mut Supervised, m: Member, now: Millis) -> Vec<Output> {
        r.handle(first_connect(m), now)
    }

    fn admit(r: &mut Supervised, now: Millis) -> Vec<Output> {
        r.handle(
            Input::Act {
                who: ParticipantId::parse("s_doc").unwrap(),
                act: Act::Admit {
                    visit: VisitId::parse("v_1").unwrap(),
                },
            },
            now,
        )
    }

    fn told_to_resume(out: &[Output]) -> Vec<&str> {
        out.iter()
            .filter_map(|o| match o {
                Output::Close {
                    who,
                    msg: ServerMsg::GoingAway { .. },
                } => Some(who.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_panic_while_handling_restores_the_room_and_tells_everyone_to_resume() {
        let mut r = Supervised::new(room("r_panics"));
        connect(&mut r, member("s_doc", Role::Physician), 0);
        connect(&mut r, member("p_pat", Role::Patient), 1000);
        let v1 = VisitId::parse("v_1").unwrap();

        // The admit is applied, then handling panics: the half-done admit must not stick.
        fault::panic_next(r.room().id());
        let out = admit(&mut r, 2000);
        assert_eq!(told_to_resume(&out), ["p_pat", "s_doc"]);
        assert!(!out.iter().any(|o| matches!(o, Output::Record(_))));
        assert_eq!(r.room().visit_state(&v1), Some(VisitState::Waiting));

        // The room keeps serving: the same admit works now.
        let out = admit(&mut r, 3000);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Record(t) if t.state == VisitState::Admitted))
        );
        assert_eq!(r.room().visit_state(&v1), Some(VisitState::Admitted));
    }

    #[test]
    fn only_a_relay_passed_on_counts_as_no_change() {
        let mut r = Supervised::new(room("r_relays"));
        connect(&mut r, member("s_doc", Role::Physician), 0);
        connect(&mut r, member("p_pat", Role::Patient), 1000);
        admit(&mut r, 2000);
        assert!(r.changed());
        let (doc, pat) = (
            ParticipantId::parse("s_doc").unwrap(),
            ParticipantId::parse("p_pat").unwrap(),
        );
        let relay = |from: &ParticipantId, to: &ParticipantId, msg: ServerMsg| Input::Act {
            who: from.clone(),
            act: Act::Relay {
                to: to.clone(),
                msg,
            },
        };
        let eoc = |from: &ParticipantId| ServerMsg::EndOfCandidates { from: from.clone() };
        let out = r.handle(relay(&doc, &pat, eoc(&doc)), 3000);
        assert!(matches!(&out[..], [Output::Send { to, .. }] if *to == pat));
        assert!(!r.changed(), "passed on: the room is as it was");
        // Refused to its sender: still nothing changed.
        let out = r.handle(relay(&doc, &doc, eoc(&doc)), 3100);
        assert!(matches!(&out[..], [Output::Send { to, .. }] if *to == doc));
        assert!(!r.changed());
        // The answer moves the visit in call.
        let answer = ServerMsg::Answer {
            from: pat.clone(),
            sdp: "v=0".into(),
        };
        r.handle(relay(&pat, &doc, answer), 3200);
        assert!(r.changed());
        // Held for a participant who dropped: the room holds more than before.
        r.handle(Input::Disconnect { who: doc.clone() }, 4000);
        let out = r.handle(relay(&pat, &doc, eoc(&pat)), 4100);
        assert!(out.is_empty());
        assert!(r.changed(), "a message kept for replay is state");
    }

    #[test]
    fn a_panic_on_a_first_connect_tells_that_participant_too() {
        let mut r = Supervised::new(room("r_panics_connect"));
        connect(&mut r, member("s_doc", Role::Physician), 0);
        fault::panic_next(r.room().id());
        let out = connect(&mut r, member("p_pat", Role::Patient), 1000);
        assert_eq!(told_to_resume(&out), ["p_pat", "s_doc"]);
        assert_eq!(r.room().visit_state(&VisitId::parse("v_1").unwrap()), None);
    }

    use crate::live::memory::MemoryLive;
    use crate::live::{Inbox, Live, LiveError, Outbox, Outgoing, RoomLoader};

    /// The whole memory store, serving the one room `r`.
    fn memory_live(r: &Room) -> MemoryLive {
        use crate::ids::PatientRef;
        use crate::live::Effects;
        use crate::visit::room::Transition;
        use std::sync::Arc;

        struct OneRoom(RoomConfig);
        #[async_trait]
        impl RoomLoader for OneRoom {
            async fn load(&self, room: &RoomId) -> Result<Option<RoomConfig>, LiveError> {
                Ok((*room == self.0.id).then(|| self.0.clone()))
            }
        }
        struct NoEffects;
        #[async_trait]
        impl Effects for NoEffects {
            async fn record(&self, _t: Transition) {}
            fn prefetch(&self, _visit: VisitId, _patient: PatientRef) {}
            fn delivered(&self, _msg: &ServerMsg) {}
        }
        MemoryLive::new(
            Arc::new(OneRoom(r.config().clone())),
            Arc::new(NoEffects),
            Timing {
                grace_ms: 120_000,
                offer_ms: 30_000,
                replay_buffer: 8,
            },
        )
    }

    /// The first message `want` accepts, skipping others; `None` after 5 s.
    async fn next(rx: &mut Inbox, want: impl Fn(&ServerMsg) -> bool) -> Option<ServerMsg> {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            match got.ok()?? {
                Outgoing::Msg(m) | Outgoing::Close(m) if want(&m) => return Some(*m),
                _ => {}
            }
        }
    }

    /// Whatever is queued for `rx` now, without waiting.
    fn queued(rx: &Inbox) -> Vec<ServerMsg> {
        let mut all = Vec::new();
        while let Some(crate::live::Next::Out(Outgoing::Msg(m) | Outgoing::Close(m))) =
            rx.try_next()
        {
            all.push(*m);
        }
        all
    }

    fn admit_input() -> Input {
        Input::Act {
            who: ParticipantId::parse("s_doc").unwrap(),
            act: Act::Admit {
                visit: VisitId::parse("v_1").unwrap(),
            },
        }
    }

    /// The whole memory store: a room task whose handling panics keeps serving.
    #[tokio::test]
    async fn a_room_task_survives_a_panic_and_its_participants_resume() {
        let r = room("r_task_panics");
        let id = r.id().clone();
        let live = memory_live(&r);
        let mut inboxes = Vec::new();
        for (conn, m) in [
            member("s_doc", Role::Physician),
            member("p_pat", Role::Patient),
        ]
        .into_iter()
        .enumerate()
        {
            let (outbox, rx) = Outbox::new(conn as u64, 64);
            live.attach(&m.id, outbox);
            live.submit(&id, first_connect(m)).await.unwrap();
            inboxes.push(rx);
        }
        let going_away = |m: &ServerMsg| matches!(m, ServerMsg::GoingAway { .. });
        let admitted = |m: &ServerMsg| matches!(m, ServerMsg::Admitted { .. });
        // Both are in the room before the fault is armed.
        let waiting = |m: &ServerMsg| matches!(m, ServerMsg::Waiting { .. });
        assert!(next(&mut inboxes[1], waiting).await.is_some());

        fault::panic_next(&id);
        live.submit(&id, admit_input()).await.unwrap();
        for rx in &mut inboxes {
            assert!(next(rx, going_away).await.is_some(), "told to resume");
        }
        // The same task takes the next input and admits.
        live.submit(&id, admit_input()).await.unwrap();
        for rx in &mut inboxes {
            assert!(next(rx, admitted).await.is_some(), "the room kept serving");
        }
        assert_eq!(live.stats().rooms, 1);
    }

    /// A memory store with one room in which the physician `s_doc` (connection 1) has
    /// admitted the patient `p_pat` (connection 2), both having said hello through it.
    struct Visit {
        live: MemoryLive,
        id: RoomId,
        doc: ParticipantId,
        pat: ParticipantId,
        doc_out: Outbox,
        doc_rx: Inbox,
        pat_out: Outbox,
        pat_rx: Inbox,
    }

    async fn admitted_visit(room_id: &str) -> Visit {
        let r = room(room_id);
        let (doc_out, doc_rx) = Outbox::new(1, 64);
        let (pat_out, pat_rx) = Outbox::new(2, 64);
        let mut v = Visit {
            live: memory_live(&r),
            id: r.id().clone(),
            doc: ParticipantId::parse("s_doc").unwrap(),
            pat: ParticipantId::parse("p_pat").unwrap(),
            doc_out,
            doc_rx,
            pat_out,
            pat_rx,
        };
        v.live.attach(&v.doc, v.doc_out.clone());
        v.live.attach(&v.pat, v.pat_out.clone());
        let doc = first_connect(member("s_doc", Role::Physician));
        v.live.submit_from(&v.doc_out, &v.id, doc).await.unwrap();
        let pat = first_connect(member("p_pat", Role::Patient));
        v.live.submit_from(&v.pat_out, &v.id, pat).await.unwrap();
        v.live
            .submit_from(&v.doc_out, &v.id, admit_input())
            .await
            .unwrap();
        next(&mut v.pat_rx, is("admitted")).await.unwrap();
        v
    }

    /// Accepts a server message of the wire type `want`.
    fn is(want: &'static str) -> impl Fn(&ServerMsg) -> bool {
        move |m: &ServerMsg| serde_json::to_value(m).unwrap()["type"] == want
    }

    fn relay(who: &ParticipantId, to: &ParticipantId, msg: ServerMsg) -> Input {
        Input::Act {
            who: who.clone(),
            act: Act::Relay {
                to: to.clone(),
                msg,
            },
        }
    }

    /// The memory store lets a call's relays skip the room's task, only while that changes
    /// nothing anyone sees: not before the call, not past an input the room has yet to
    /// handle, not once the room has ended the call or a side has dropped.
    #[tokio::test]
    async fn a_call_relays_directly_only_while_the_room_would_pass_it_on() {
        let Visit {
            live,
            id,
            doc,
            pat,
            doc_out,
            mut doc_rx,
            pat_out,
            mut pat_rx,
        } = admitted_visit("r_direct").await;
        let cand = |from: &ParticipantId, n: u32| ServerMsg::Candidate {
            from: from.clone(),
            candidate: crate::protocol::Candidate {
                candidate: format!("candidate:{n}"),
                sdp_mid: None,
                sdp_m_line_index: None,
                username_fragment: None,
            },
        };

        // Admitted, not yet in call: the answer that starts the call is the room's.
        assert!(
            live.relay(&doc_out, &id, &pat, Box::new(cand(&doc, 1)))
                .is_err()
        );
        let answer = ServerMsg::Answer {
            from: pat.clone(),
            sdp: "v=0".into(),
        };
        live.submit_from(&pat_out, &id, relay(&pat, &doc, answer))
            .await
            .unwrap();
        next(&mut doc_rx, is("answer")).await.unwrap();

        // In call: straight through, in order, to the addressee only.
        for n in 2..5 {
            assert!(
                live.relay(&doc_out, &id, &pat, Box::new(cand(&doc, n)))
                    .is_ok()
            );
        }
        let got: Vec<String> = queued(&pat_rx)
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::Candidate { candidate, .. } => Some(candidate.candidate),
                _ => None,
            })
            .collect();
        assert_eq!(got, ["candidate:2", "candidate:3", "candidate:4"]);
        assert!(
            live.relay(&pat_out, &id, &pat, Box::new(cand(&pat, 5)))
                .is_err(),
            "not to oneself"
        );
        let other_room = RoomId::parse("r_other").unwrap();
        let elsewhere = live.relay(&doc_out, &other_room, &pat, Box::new(cand(&doc, 5)));
        assert!(elsewhere.is_err(), "a way is for its own room");

        // The physician ends the visit and sends on at once: the candidate waits behind
        // the end, so the room refuses it, and the patient hears only the end.
        let end = Input::Act {
            who: doc.clone(),
            act: Act::EndVisit {
                visit: VisitId::parse("v_1").unwrap(),
            },
        };
        live.submit_from(&doc_out, &id, end).await.unwrap();
        let late = live.relay(&doc_out, &id, &pat, Box::new(cand(&doc, 6)));
        let late = late.expect_err("an input is still with the room");
        live.submit_from(&doc_out, &id, relay(&doc, &pat, *late))
            .await
            .unwrap();
        next(&mut pat_rx, is("visit_ended")).await.unwrap();
        let refused = next(&mut doc_rx, is("error")).await.unwrap();
        assert!(
            matches!(&refused, ServerMsg::Error { about: Some(a), .. } if a == "candidate"),
            "{refused:?}"
        );
        assert!(queued(&pat_rx).is_empty(), "nothing after the end");
        assert!(
            live.relay(&doc_out, &id, &pat, Box::new(cand(&doc, 7)))
                .is_err(),
            "way closed"
        );
    }

    /// A side that drops mid-call: what is sent to it meanwhile is held for replay (the
    /// way into it closed), and once it is back the way opens into its new connection.
    #[tokio::test]
    async fn a_dropped_side_gets_its_relays_replayed_and_direct_again_after() {
        let Visit {
            live,
            id,
            doc,
            pat,
            doc_out,
            mut doc_rx,
            pat_out,
            pat_rx,
        } = admitted_visit("r_direct_drop").await;
        let answer = ServerMsg::Answer {
            from: pat.clone(),
            sdp: "v=0".into(),
        };
        live.submit_from(&pat_out, &id, relay(&pat, &doc, answer))
            .await
            .unwrap();
        next(&mut doc_rx, is("answer")).await.unwrap();
        let offer = |n: u32| ServerMsg::Offer {
            from: doc.clone(),
            sdp: format!("restart {n}"),
        };
        assert!(live.relay(&doc_out, &id, &pat, Box::new(offer(1))).is_ok());

        // The patient's connection drops; the room hears of it.
        drop(pat_rx);
        live.detach(&pat, 2);
        live.submit(&id, Input::Disconnect { who: pat.clone() })
            .await
            .unwrap();
        next(&mut doc_rx, is("peer_reconnecting")).await.unwrap();
        let held = live
            .relay(&doc_out, &id, &pat, Box::new(offer(2)))
            .unwrap_err();
        live.submit_from(&doc_out, &id, relay(&doc, &pat, *held))
            .await
            .unwrap();

        // Back on a new connection with its resume token: the held offer first.
        let (pat_out, mut pat_rx) = Outbox::new(3, 64);
        live.attach(&pat, pat_out.clone());
        let back = Input::Connect {
            member: member("p_pat", Role::Patient),
            resume: Some("t0".into()),
            new_resume_token: "t1".into(),
            resume_only: false,
        };
        live.submit_from(&pat_out, &id, back).await.unwrap();
        let replayed = next(&mut pat_rx, is("offer")).await.unwrap();
        assert_eq!(replayed, offer(2));
        next(&mut doc_rx, is("peer_resumed")).await.unwrap();
        // The room has handled the reconnect: straight through to the new connection.
        assert!(live.relay(&doc_out, &id, &pat, Box::new(offer(3))).is_ok());
        assert_eq!(next(&mut pat_rx, is("offer")).await.unwrap(), offer(3));
    }
}
