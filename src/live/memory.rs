//! In-process live state: one task per active room owns its [`Room`] state machine;
//! a map from participant to outbox delivers what it says.

use super::counters::LocalCounters;
use super::{Counters, Effects, Live, LiveError, LiveStats, Outbox, Outgoing, RoomLoader};
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::ServerMsg;
use crate::visit::room::{Input, Output, Room, Timing};
use crate::visit::{RoomConfig, VisitState};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Inputs queued to one room before submitters wait.
const ROOM_INBOX: usize = 4096;
/// A room with nobody in it and nothing open is dropped after this long.
const IDLE_ROOM: Duration = Duration::from_secs(60);

enum RoomCmd {
    Input(Input),
    Reconfigure(RoomConfig),
}

struct Inner {
    // std Mutex: held only for map look-ups, never across an await.
    outboxes: Mutex<HashMap<ParticipantId, Outbox>>,
    rooms: Mutex<HashMap<RoomId, mpsc::Sender<RoomCmd>>>,
    visit_counts: Mutex<HashMap<RoomId, HashMap<VisitState, usize>>>,
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
    ) -> Result<mpsc::Sender<RoomCmd>, LiveError> {
        if let Some(tx) = self
            .rooms
            .lock()
            .expect("poisoned")
            .get(room)
            .filter(|tx| !tx.is_closed())
        {
            return Ok(tx.clone());
        }
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
        let (tx, rx) = mpsc::channel(ROOM_INBOX);
        rooms.insert(room.clone(), tx.clone());
        let machine = Room::new(config, self.timing.clone());
        tokio::spawn(run_room(machine, rx, self.clone()));
        Ok(tx)
    }

    async fn submit(self: &Arc<Self>, room: &RoomId, cmd: RoomCmd) -> Result<(), LiveError> {
        let mut cmd = cmd;
        for _ in 0..3 {
            let tx = self.room_sender(room).await?;
            match tx.send(cmd).await {
                Ok(()) => return Ok(()),
                // The room task just exited (idle): start a new one.
                Err(mpsc::error::SendError(c)) => cmd = c,
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

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn run_room(mut room: Room, mut rx: mpsc::Receiver<RoomCmd>, inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        let outputs = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(RoomCmd::Input(input)) => room.handle(input, now_ms()),
                Some(RoomCmd::Reconfigure(cfg)) => { room.reconfigure(cfg); room.handle(Input::Tick, now_ms()) }
                None => break,
            },
            _ = tick.tick() => {
                let out = room.handle(Input::Tick, now_ms());
                if room.is_idle() {
                    let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= IDLE_ROOM && rx.is_empty() {
                        break;
                    }
                } else {
                    idle_since = None;
                }
                out
            }
        };
        dispatch(&inner, outputs).await;
        inner
            .visit_counts
            .lock()
            .expect("poisoned")
            .insert(room.id().clone(), room.state_counts());
    }
    // Stop taking inputs, then forget the room. Anything that slipped in between the
    // idle check and the close goes to a fresh owner, so no input is ever lost.
    rx.close();
    let id = room.id().clone();
    {
        let mut rooms = inner.rooms.lock().expect("poisoned");
        if rooms.get(&id).is_some_and(|tx| tx.is_closed()) {
            rooms.remove(&id);
        }
    }
    inner.visit_counts.lock().expect("poisoned").remove(&id);
    let mut leftovers = Vec::new();
    while let Ok(cmd) = rx.try_recv() {
        leftovers.push(cmd);
    }
    if !leftovers.is_empty() {
        resubmit(inner, id, leftovers).await;
    }
}

// Boxed: a room task may start its successor, and the future type would otherwise recurse.
fn resubmit(
    inner: Arc<Inner>,
    id: RoomId,
    cmds: Vec<RoomCmd>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        for cmd in cmds {
            if let Err(e) = inner.submit(&id, cmd).await {
                tracing::warn!(room = %id, error = %e, "input lost while restarting an idle room");
            }
        }
    })
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
        self.inner
            .outboxes
            .lock()
            .expect("poisoned")
            .insert(who.clone(), outbox)
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
        self.inner.submit(room, RoomCmd::Input(input)).await
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
            let _ = tx.send(RoomCmd::Reconfigure(config)).await;
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
        let mut visits: HashMap<VisitState, usize> = HashMap::new();
        for counts in self.inner.visit_counts.lock().expect("poisoned").values() {
            for (s, n) in counts {
                *visits.entry(*s).or_default() += n;
            }
        }
        LiveStats {
            rooms: self.inner.rooms.lock().expect("poisoned").len(),
            participants: self.inner.outboxes.lock().expect("poisoned").len(),
            visits,
        }
    }
}
