//! In-process live state: one task per active room owns its [`Room`] state machine;
//! a map from participant to outbox delivers what it says.

use super::counters::LocalCounters;
use super::mailbox;
use super::runtime::{Mail, ROOM_INBOX, RoomCmd, RoomHost, RoomInboxes, Stop, hand_over, run_room};
use super::{Counters, Effects, Live, LiveError, LiveStats, Outbox, Outgoing, RoomLoader};
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::ServerMsg;
use crate::visit::RoomConfig;
use crate::visit::room::{Input, Output, Room, Timing};
use async_trait::async_trait;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// The memory store has no mail of its own for its room tasks.
type RoomMail = Mail<Infallible>;

struct Inner {
    // std Mutex: held only for map look-ups, never across an await.
    outboxes: Mutex<HashMap<ParticipantId, Outbox>>,
    rooms: RoomInboxes<RoomMail>,
    visit_counts: super::VisitCounts,
    loader: Arc<dyn RoomLoader>,
    effects: Arc<dyn Effects>,
    timing: Timing,
}

pub struct MemoryLive {
    inner: Arc<Inner>,
    counters: Arc<LocalCounters>,
}

impl Inner {
    async fn room_sender(
        self: &Arc<Self>,
        room: &RoomId,
    ) -> Result<mailbox::Sender<RoomMail>, LiveError> {
        // Called when `hand_over` found no running task: load the room, then look again.
        let config = self
            .loader
            .load(room)
            .await?
            .ok_or(LiveError::RoomNotFound)?;
        let mut rooms = self.rooms.lock().expect("poisoned");
        // Another submitter may have started it while we loaded the config.
        if let Some(tx) = rooms.get(room).filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mailbox::channel(ROOM_INBOX);
        rooms.insert(room.clone(), tx.clone());
        let machine = Room::new(config, self.timing.clone());
        let host = MemoryRoom {
            inner: self.clone(),
            ways: Ways::default(),
        };
        tokio::spawn(run_room(machine, rx, host, Vec::new()));
        Ok(tx)
    }

    async fn submit(self: &Arc<Self>, room: &RoomId, mut mail: RoomMail) -> Result<(), LiveError> {
        for _ in 0..3 {
            let tx = match hand_over(&self.rooms, room, mail) {
                Ok(()) => return Ok(()),
                Err((m, Some(full))) => {
                    mail = m;
                    full
                }
                Err((m, None)) => {
                    mail = m;
                    self.room_sender(room).await?
                }
            };
            match tx.send(mail).await {
                Ok(()) => return Ok(()),
                // The room task just exited (idle): start a new one.
                Err(m) => mail = m,
            }
        }
        Err(LiveError::Unavailable(
            "room task could not be started".into(),
        ))
    }
}

impl MemoryLive {
    pub fn new(loader: Arc<dyn RoomLoader>, effects: Arc<dyn Effects>, timing: Timing) -> Self {
        Self {
            inner: Arc::new(Inner {
                outboxes: Mutex::new(HashMap::new()),
                rooms: Mutex::new(HashMap::new()),
                visit_counts: Mutex::new(HashMap::new()),
                loader,
                effects,
                timing,
            }),
            counters: Arc::default(),
        }
    }
}

/// Around each of this node's room tasks: outputs go to this node's outboxes.
struct MemoryRoom {
    inner: Arc<Inner>,
    ways: Ways,
}

/// The direct ways a room has open between its participants' connections
/// (`live::outbox`, "Direct ways"): what [`Room::direct_ways`] wants, on this node's
/// outboxes. Changed only when the room's state may have changed; closed before the room's
/// outputs go out, opened after.
#[derive(Default)]
struct Ways(Vec<OpenWay>);

/// One open way: relays from `from`'s connection go straight into `target`. (Who `target`
/// is, the sender's own table says; kept here only as the outbox, to stay small.)
struct OpenWay {
    from: Outbox,
    target: Outbox,
}

impl OpenWay {
    fn same(&self, other: &OpenWay) -> bool {
        self.from.same(&other.from) && self.target.same(&other.target)
    }

    fn close(&self, room: &RoomId) {
        self.target.close_ways_in();
        self.from.forget_way(room, &self.target);
    }
}

/// What the room wants open after its outputs (each with whom it reaches), and the
/// connections every way into which was closed before them.
struct Wanted {
    ways: Vec<(OpenWay, ParticipantId)>,
    closed_into: Vec<Outbox>,
}

impl Ways {
    /// Close every open way the room no longer wants; says what it wants now.
    fn close_unwanted(&mut self, inner: &Inner, room: &Room) -> Wanted {
        let pairs = room.direct_ways();
        let ways: Vec<(OpenWay, ParticipantId)> = if pairs.is_empty() {
            Vec::new()
        } else {
            let outboxes = inner.outboxes.lock().expect("poisoned");
            pairs
                .into_iter()
                .filter_map(|(from, to)| {
                    let way = OpenWay {
                        from: outboxes.get(from)?.clone(),
                        target: outboxes.get(to)?.clone(),
                    };
                    Some((way, to.clone()))
                })
                .collect()
        };
        let mut closed_into = Vec::new();
        for old in std::mem::take(&mut self.0) {
            if ways.iter().any(|(w, _)| w.same(&old)) {
                self.0.push(old);
            } else {
                old.close(room.id());
                closed_into.push(old.target);
            }
        }
        Wanted { ways, closed_into }
    }

    /// Open what the room wants that is not open: new ways, and ways into a connection
    /// whose ways were all closed just now.
    fn open(&mut self, room: &RoomId, wanted: Wanted) {
        let kept = std::mem::take(&mut self.0);
        let mut open = Vec::with_capacity(wanted.ways.len());
        for (w, to) in wanted.ways {
            let still_open = kept.iter().any(|k| k.same(&w))
                && !wanted.closed_into.iter().any(|c| c.same(&w.target));
            if !still_open {
                w.from.open_way(room, &to, &w.target);
            }
            open.push(w);
        }
        self.0 = open;
    }

    fn close_all(&mut self, room: &RoomId) {
        for old in self.0.drain(..) {
            old.close(room);
        }
    }
}

#[async_trait]
impl RoomHost for MemoryRoom {
    type Mail = Infallible;

    async fn commit(&mut self, room: &Room, outputs: Vec<Output>, changed: bool) {
        let wanted = changed.then(|| self.ways.close_unwanted(&self.inner, room));
        dispatch(&self.inner, outputs).await;
        if let Some(wanted) = wanted {
            self.ways.open(room.id(), wanted);
        }
    }

    fn changed(&mut self, room: &Room) {
        self.inner
            .visit_counts
            .lock()
            .expect("poisoned")
            .insert(room.id().clone(), room.state_counts());
    }

    fn mail(&mut self, never: Infallible) -> bool {
        match never {}
    }

    async fn stopped(self, room: Room, _why: Stop, leftovers: Vec<RoomCmd>) {
        // Forget the room. Anything that slipped in between the idle check and the
        // close goes to a fresh task, so no input is ever lost.
        let mut ways = self.ways;
        ways.close_all(room.id());
        let inner = self.inner;
        let id = room.id().clone();
        {
            let mut rooms = inner.rooms.lock().expect("poisoned");
            if rooms.get(&id).is_some_and(|tx| tx.is_closed()) {
                rooms.remove(&id);
            }
        }
        inner.visit_counts.lock().expect("poisoned").remove(&id);
        for cmd in leftovers {
            if let Err(e) = inner.submit(&id, Mail::cmd(cmd)).await {
                tracing::warn!(room = %id, error = %e, "input lost while restarting an idle room");
            }
        }
    }
}

async fn dispatch(inner: &Inner, outputs: Vec<Output>) {
    let outputs = super::record_first(inner.effects.as_ref(), outputs).await;
    for out in outputs {
        match out {
            Output::Send { to, msg } => {
                let outbox = inner.outboxes.lock().expect("poisoned").get(&to).cloned();
                if let Some(o) = outbox {
                    inner.effects.delivered(&msg);
                    o.push(Outgoing::Msg(Box::new(msg)));
                }
            }
            Output::Close { who, msg } => {
                let outbox = inner.outboxes.lock().expect("poisoned").get(&who).cloned();
                if let Some(o) = outbox {
                    o.push(Outgoing::Close(Box::new(msg)));
                }
            }
            Output::Record(_) => unreachable!("recorded first"),
            Output::Prefetch { visit, patient } => inner.effects.prefetch(visit, patient),
        }
    }
}

#[async_trait]
impl Live for MemoryLive {
    fn attach(&self, who: &ParticipantId, outbox: Outbox) -> Option<Outbox> {
        let old = self
            .inner
            .outboxes
            .lock()
            .expect("poisoned")
            .insert(who.clone(), outbox);
        // Relays for `who` go to its new connection from now on: through the room (which
        // sends to whoever is attached) until the room opens ways into the new one.
        if let Some(old) = &old {
            old.close_ways_in();
        }
        old
    }

    fn close_all(&self, msg: ServerMsg) {
        super::close_all(&self.inner.outboxes, &msg);
    }

    fn detach(&self, who: &ParticipantId, conn: u64) {
        let mut map = self.inner.outboxes.lock().expect("poisoned");
        if map.get(who).is_some_and(|o| o.conn == conn) {
            map.remove(who);
        }
    }

    async fn revoke(&self, who: &ParticipantId, msg: ServerMsg) -> Result<(), LiveError> {
        let outbox = self
            .inner
            .outboxes
            .lock()
            .expect("poisoned")
            .get(who)
            .cloned();
        if let Some(o) = outbox {
            o.push(Outgoing::Close(Box::new(msg)));
        }
        Ok(())
    }

    async fn is_connected(&self, who: &ParticipantId) -> bool {
        self.inner
            .outboxes
            .lock()
            .expect("poisoned")
            .contains_key(who)
    }

    async fn submit(&self, room: &RoomId, input: Input) -> Result<(), LiveError> {
        self.inner
            .submit(room, Mail::cmd(RoomCmd::Input(input)))
            .await
    }

    async fn submit_from(
        &self,
        from: &Outbox,
        room: &RoomId,
        input: Input,
    ) -> Result<(), LiveError> {
        from.hold();
        let mail = Mail::From(Box::new((input, from.clone())));
        let sent = self.inner.submit(room, mail).await;
        if sent.is_err() {
            from.handled();
        }
        sent
    }

    fn relay(
        &self,
        from: &Outbox,
        room: &RoomId,
        to: &ParticipantId,
        msg: Box<ServerMsg>,
    ) -> Result<(), Box<ServerMsg>> {
        from.relay(room, to, msg)
    }

    async fn reconfigure(&self, config: RoomConfig) -> Result<(), LiveError> {
        let tx = self
            .inner
            .rooms
            .lock()
            .expect("poisoned")
            .get(&config.id)
            .cloned();
        if let Some(tx) = tx {
            let _ = tx.send(Mail::cmd(RoomCmd::Reconfigure(config))).await;
        }
        Ok(())
    }

    async fn ready(&self) -> Result<(), LiveError> {
        Ok(())
    }

    fn counters(&self) -> Arc<dyn Counters> {
        self.counters.clone()
    }

    fn stats(&self) -> LiveStats {
        LiveStats::of_node(
            self.inner.rooms.lock().expect("poisoned").len(),
            self.inner.outboxes.lock().expect("poisoned").len(),
            &self.inner.visit_counts,
        )
    }
}
