//! Live state shared by several nodes through Redis (`live.backend = "redis"`).
//!
//! What each node keeps, and what Redis holds (`docs/deploy.md`, "Several nodes"):
//! - **Presence**: `<prefix>:presence:<participant>` = the node the participant is
//!   connected to, with a TTL the node refreshes while the connection lasts.
//! - **Delivery**: each node subscribes to its own channel `<prefix>:node:<node>`. A
//!   message for a participant on another node is published there (presence look-up and
//!   publish in one script). One channel per node keeps a room's messages in order.
//! - **Ownership**: a room's [`Room`] state machine runs on exactly one node, the holder of
//!   `<prefix>:lease:<room>` (`SET NX PX`, renewed). The lease carries a fencing epoch that
//!   only grows. Inputs from other nodes are published to the owner's channel.
//! - **Snapshots**: after each change the owner writes the room to `<prefix>:room:<room>`,
//!   only while its lease token still matches, so a new owner continues where the old one
//!   stopped. A node that learns it lost the lease stops acting on the room at once.
//!
//! Invariants: only the lease holder mutates a room; the room task never waits on Redis
//! (renewals and snapshot writes run beside it), so a Redis outage does not stall rooms
//! whose participants are all on this node; every Redis call has `redis.timeout_ms`.

mod counters;
mod scripts;

use super::runtime::{Mail, ROOM_INBOX, RoomCmd, RoomHost, Stop, run_room};
use super::{Counters, Effects, Live, LiveError, LiveStats, Outbox, Outgoing, RoomLoader};
use crate::config::Settings;
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::{ErrorCode, ServerMsg};
use crate::visit::room::snapshot::RoomSnapshot;
use crate::visit::room::{Input, Output, Room, Timing};
use crate::visit::{RoomConfig, VisitState};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Script};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Messages waiting to be published to other nodes before new ones are dropped.
const REMOTE_QUEUE: usize = 65_536;
/// Publishes sent to Redis in one pipeline.
const REMOTE_BATCH: usize = 128;
/// Times a message may be passed on between nodes while ownership or presence moves.
const MAX_HOPS: u8 = 3;
/// Snapshots of rooms nobody touches are forgotten after a day.
const SNAPSHOT_TTL_MS: u64 = 24 * 3600 * 1000;

/// What travels on a node's channel.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// For a participant connected to the receiving node.
    Deliver {
        to: ParticipantId,
        close: bool,
        msg: ServerMsg,
        hops: u8,
    },
    /// Broadcast on `<prefix>:all`: close `to`'s connection if it is on the receiving node.
    Revoke { to: ParticipantId, msg: ServerMsg },
    /// For a room the receiving node owns.
    Room {
        room: RoomId,
        cmd: RoomCmd,
        hops: u8,
    },
}

/// A room task's inbox here: commands, and [`Drain`].
type Local = Mail<Drain>;

/// Snapshot, release the lease and stop; reply when done.
struct Drain(oneshot::Sender<()>);

struct Keys(String);

impl Keys {
    fn presence(&self, p: &ParticipantId) -> String {
        format!("{}:presence:{p}", self.0)
    }
    fn lease(&self, r: &RoomId) -> String {
        format!("{}:lease:{r}", self.0)
    }
    fn epoch(&self, r: &RoomId) -> String {
        format!("{}:epoch:{r}", self.0)
    }
    fn snapshot(&self, r: &RoomId) -> String {
        format!("{}:room:{r}", self.0)
    }
    fn channel_prefix(&self) -> String {
        format!("{}:node:", self.0)
    }
    fn channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.0)
    }
    /// Every node listens here too: for what every node must hear (revoked access).
    fn broadcast(&self) -> String {
        format!("{}:all", self.0)
    }
}

struct Scripts {
    acquire: Script,
    renew: Script,
    snapshot: Script,
    release: Script,
    forget_presence: Script,
}

struct Inner {
    node: String,
    keys: Keys,
    redis: ConnectionManager,
    client: ::redis::Client,
    timeout: Duration,
    lease_ms: u64,
    scripts: Scripts,
    // std Mutexes: held only for map look-ups, never across an await.
    outboxes: Mutex<HashMap<ParticipantId, Outbox>>,
    rooms: Mutex<HashMap<RoomId, mpsc::Sender<Local>>>,
    visit_counts: Mutex<HashMap<RoomId, HashMap<VisitState, usize>>>,
    /// tokio Mutex, held across the lease acquisition so this node starts a room once.
    starting: tokio::sync::Mutex<()>,
    remote: mpsc::Sender<Wire>,
    subscribed: AtomicBool,
    draining: AtomicBool,
    loader: Arc<dyn RoomLoader>,
    effects: Arc<dyn Effects>,
    timing: Timing,
}

/// Live state in Redis, for several nodes behind one load balancer.
pub struct RedisLive {
    inner: Arc<Inner>,
    counters: Arc<counters::RedisCounters>,
    stop: CancellationToken,
}

impl Drop for RedisLive {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn unavailable(e: impl std::fmt::Display) -> LiveError {
    LiveError::Unavailable(e.to_string())
}

impl RedisLive {
    /// Connect to Redis (`redis.url`) and start this node's subscriber, presence
    /// refresher and publisher. Fails when Redis cannot be reached at start.
    pub async fn connect(
        settings: &Settings,
        loader: Arc<dyn RoomLoader>,
        effects: Arc<dyn Effects>,
        timing: Timing,
    ) -> Result<Self, LiveError> {
        let timeout = Duration::from_millis(settings.redis.timeout_ms);
        let client = ::redis::Client::open(settings.redis.url.expose()).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let redis = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| unavailable("timed out connecting to Redis"))?
        .map_err(unavailable)?;
        let (remote, remote_rx) = mpsc::channel(REMOTE_QUEUE);
        let inner = Arc::new(Inner {
            node: crate::ids::random_id()[..16].to_owned(),
            keys: Keys(settings.redis.key_prefix.clone()),
            redis,
            client,
            timeout,
            lease_ms: settings.live.lease_ms,
            scripts: Scripts {
                acquire: Script::new(scripts::ACQUIRE),
                renew: Script::new(scripts::RENEW),
                snapshot: Script::new(scripts::SNAPSHOT),
                release: Script::new(scripts::RELEASE),
                forget_presence: Script::new(scripts::FORGET_PRESENCE),
            },
            outboxes: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            visit_counts: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
            remote,
            subscribed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            loader,
            effects,
            timing,
        });
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(subscribe(inner.clone(), stop.clone(), Some(ready_tx)));
        tokio::spawn(publish(inner.clone(), remote_rx, stop.clone()));
        tokio::spawn(refresh_presence(inner.clone(), stop.clone()));
        // Listen before taking any room, or the first forwarded inputs would be lost.
        let _ = tokio::time::timeout(timeout, ready_rx).await;
        tracing::info!(node = %inner.node, "live state in Redis");
        let counters = Arc::new(counters::RedisCounters::new(inner.clone()));
        Ok(Self {
            inner,
            counters,
            stop,
        })
    }

    /// This node's id in Redis keys and channels (random per process).
    pub fn node(&self) -> &str {
        &self.inner.node
    }
}

impl Inner {
    /// One Redis call, bounded by `redis.timeout_ms`.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, LiveError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(LiveError::Unavailable(format!("redis {what}: {e}"))),
            Err(_) => Err(LiveError::Unavailable(format!("redis {what}: timed out"))),
        }
    }

    fn presence_ttl_ms(&self) -> u64 {
        self.lease_ms * 3
    }

    async fn set_presence(&self, who: &ParticipantId) -> Result<Option<String>, LiveError> {
        let mut c = self.redis.clone();
        let key = self.keys.presence(who);
        let opts = ::redis::SetOptions::default()
            .get(true)
            .with_expiration(::redis::SetExpiry::PX(self.presence_ttl_ms()));
        self.call("set presence", c.set_options(key, &self.node, opts))
            .await
    }

    fn local_room(&self, room: &RoomId) -> Option<mpsc::Sender<Local>> {
        self.rooms
            .lock()
            .expect("poisoned")
            .get(room)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    fn outbox(&self, who: &ParticipantId) -> Option<Outbox> {
        self.outboxes.lock().expect("poisoned").get(who).cloned()
    }

    /// Hand `cmd` to the room's owner: this node's task, another node's channel, or a
    /// task started here after taking the lease. Waits out a dead owner's lease.
    async fn route(
        self: &Arc<Self>,
        room: &RoomId,
        cmd: RoomCmd,
        hops: u8,
    ) -> Result<(), LiveError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.lease_ms * 2) + self.timeout;
        let mut cmd = cmd;
        loop {
            if let Some(tx) = self.local_room(room) {
                match tx.send(Mail::Cmd(cmd)).await {
                    Ok(()) => return Ok(()),
                    // The room task just stopped (idle, drained or deposed).
                    Err(mpsc::error::SendError(Mail::Cmd(c))) => cmd = c,
                    // Invariant: what we sent comes back; it was a command.
                    Err(_) => unreachable!("we sent a command"),
                }
            }
            let mut c = self.redis.clone();
            let holder: Option<String> =
                self.call("get lease", c.get(self.keys.lease(room))).await?;
            match holder.as_deref().and_then(|h| h.split_once('/')) {
                Some((node, _)) if node == self.node => {
                    // Ours, with the task starting or stopping: look again shortly.
                }
                Some((node, _)) => {
                    if hops >= MAX_HOPS {
                        return Err(unavailable("the room's owner keeps changing"));
                    }
                    let payload = serde_json::to_string(&Wire::Room {
                        room: room.clone(),
                        cmd: cmd.clone(),
                        hops: hops + 1,
                    })
                    .expect("wire messages serialise");
                    let receivers: i64 = self
                        .call("publish", c.publish(self.keys.channel(node), payload))
                        .await?;
                    if receivers > 0 {
                        return Ok(());
                    }
                    // Nobody listens there: the owner died. Its lease runs out soon.
                }
                None => {
                    if matches!(cmd, RoomCmd::Reconfigure(_)) {
                        // Nobody runs the room: its next owner loads the new config.
                        return Ok(());
                    }
                    if self.draining.load(Ordering::Relaxed) {
                        return Err(unavailable("this node is shutting down"));
                    }
                    if self.start_room(room).await? {
                        continue;
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable("the room's owner cannot be reached"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Take the room's lease and start its task here, from its snapshot if one exists.
    /// `Ok(false)` when another node took it first.
    async fn start_room(self: &Arc<Self>, room: &RoomId) -> Result<bool, LiveError> {
        let _starting = self.starting.lock().await;
        if self.local_room(room).is_some() {
            return Ok(true);
        }
        let config = self
            .loader
            .load(room)
            .await?
            .ok_or(LiveError::RoomNotFound)?;
        let mut c = self.redis.clone();
        let mut inv = self.scripts.acquire.prepare_invoke();
        inv.key(self.keys.lease(room))
            .key(self.keys.epoch(room))
            .key(self.keys.snapshot(room))
            .arg(&self.node)
            .arg(self.lease_ms)
            .arg(0);
        let reply: Vec<String> = self.call("acquire", inv.invoke_async(&mut c)).await?;
        if reply.first().map(String::as_str) != Some("1") {
            return Ok(false);
        }
        let epoch: u64 = reply[1].parse().map_err(unavailable)?;
        let (state, previous, local) = (&reply[2], &reply[3], &reply[4]);
        let mut first = Vec::new();
        let machine = if state.is_empty() {
            Room::new(config, self.timing.clone())
        } else {
            match RoomSnapshot::from_json(state).and_then(|snap| {
                let stale = snap.clone();
                Room::restore(snap, config.clone()).map(|m| (m, stale))
            }) {
                Ok((m, snap)) => {
                    first = self.stale_connections(&snap, previous, local).await;
                    tracing::info!(room = %room, epoch, from = %previous, "took over a room");
                    m
                }
                Err(e) => {
                    tracing::error!(room = %room, error = %e, "room snapshot unreadable; starting afresh");
                    Room::new(config, self.timing.clone())
                }
            }
        };
        let lease = Arc::new(tokio::sync::Mutex::new(Lease {
            token: format!("{}/{epoch}", self.node),
            epoch,
        }));
        let (tx, rx) = mpsc::channel(ROOM_INBOX);
        self.rooms
            .lock()
            .expect("poisoned")
            .insert(room.clone(), tx);
        let host = RedisRoom::start(self.clone(), machine.id().clone(), lease);
        tokio::spawn(run_room(machine, rx, host, first));
        Ok(true)
    }

    /// Participants a taken-over snapshot shows connected who are not: those that were on
    /// the previous owner's node (it is gone or drained) and those with no presence left.
    /// They get a `Disconnect` first, so their reconnection resumes (`peer_resumed`).
    async fn stale_connections(
        &self,
        snap: &RoomSnapshot,
        previous: &str,
        local: &str,
    ) -> Vec<Input> {
        let were_local: HashSet<String> = serde_json::from_str(local).unwrap_or_default();
        let mut stale = Vec::new();
        for id in snap.connected() {
            let gone = if previous != self.node && were_local.contains(id.as_str()) {
                true
            } else {
                let mut c = self.redis.clone();
                let at: Option<String> = self
                    .call("get presence", c.get(self.keys.presence(id)))
                    .await
                    .unwrap_or(None);
                at.is_none()
            };
            if gone {
                stale.push(Input::Disconnect { who: id.clone() });
            }
        }
        stale
    }

    /// Send room outputs: to local outboxes directly, to other nodes through the publisher.
    /// A batch that changes a visit's state is made durable before anyone hears of it:
    /// its transitions go to the history, then the room's snapshot to Redis (skipped
    /// while Redis is away, so an outage costs no waiting), then the batch is sent. A node
    /// killed the next instant leaves a successor that knows what the participants know.
    /// Returns the snapshot it wrote, if it wrote one.
    async fn commit(
        &self,
        room: &Room,
        lease: &tokio::sync::Mutex<Lease>,
        redis_ok: &AtomicBool,
        outputs: Vec<Output>,
    ) -> Option<Snapshot> {
        let changed = outputs.iter().any(|o| matches!(o, Output::Record(_)));
        let outputs = super::record_first(self.effects.as_ref(), outputs).await;
        let mut written = None;
        if changed && redis_ok.load(Ordering::Acquire) {
            let snap = snapshot(room, self);
            let l = lease.lock().await;
            if let Err(e) = self.write_snapshot(room.id(), &l, &snap).await {
                tracing::warn!(room = %room.id(), error = %e, "room snapshot not written before sending; the keeper retries");
            }
            written = Some(snap);
        }
        self.dispatch(outputs);
        written
    }

    fn dispatch(&self, outputs: Vec<Output>) {
        for out in outputs {
            let (to, close, msg) = match out {
                Output::Send { to, msg } => (to, false, msg),
                Output::Close { who, msg } => (who, true, msg),
                Output::Record(_) => unreachable!("recorded first"),
                Output::Prefetch { visit, patient } => {
                    self.effects.prefetch(visit, patient);
                    continue;
                }
            };
            self.deliver(to, close, msg, 0);
        }
    }

    fn deliver(&self, to: ParticipantId, close: bool, msg: ServerMsg, hops: u8) {
        if let Some(o) = self.outbox(&to) {
            if close {
                o.push(Outgoing::Close(Box::new(msg)));
            } else {
                self.effects.delivered(&msg);
                o.push(Outgoing::Msg(Box::new(msg)));
            }
            return;
        }
        if hops >= MAX_HOPS {
            return;
        }
        let wire = Wire::Deliver {
            to,
            close,
            msg,
            hops: hops + 1,
        };
        if self.remote.try_send(wire).is_err() {
            tracing::error!("cross-node queue is full; a message was dropped");
        }
    }

    /// A message from another node, in the order it was published.
    async fn received(self: &Arc<Self>, payload: &[u8]) {
        let wire: Wire = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable message on the node channel");
                return;
            }
        };
        match wire {
            Wire::Deliver {
                to,
                close,
                msg,
                hops,
            } => self.deliver(to, close, msg, hops),
            Wire::Revoke { to, msg } => {
                if let Some(o) = self.outbox(&to) {
                    o.push(Outgoing::Close(Box::new(msg)));
                }
            }
            Wire::Room { room, cmd, hops } => {
                if let Some(tx) = self.local_room(&room)
                    && tx.send(Mail::Cmd(cmd.clone())).await.is_ok()
                {
                    return;
                }
                // Not ours (any more): pass it on to whoever owns the room now.
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.route(&room, cmd, hops).await {
                        tracing::warn!(room = %room, error = %e, "forwarded input lost");
                    }
                });
            }
        }
    }
}

/// The lease a room task holds; the writer of snapshots and the renewer share it.
struct Lease {
    token: String,
    epoch: u64,
}

/// What the owner writes after each change.
#[derive(Clone, PartialEq, Default)]
struct Snapshot {
    state: String,
    local: String,
}

enum Kept {
    Held,
    /// Redis had lost the lease (it restarted empty) and we took it back: its snapshot
    /// may be gone too.
    Retaken,
    Lost,
    /// Redis unreachable: keep serving what is here; try again later.
    Unknown,
}

impl Inner {
    /// Renew, or take back a lease Redis forgot (it restarted empty) with a higher epoch.
    async fn keep(&self, room: &RoomId, lease: &mut Lease) -> Kept {
        let mut c = self.redis.clone();
        let mut inv = self.scripts.renew.prepare_invoke();
        inv.key(self.keys.lease(room))
            .arg(&lease.token)
            .arg(self.lease_ms);
        match self.call("renew", inv.invoke_async::<i64>(&mut c)).await {
            Ok(1) => Kept::Held,
            Ok(0) => {
                let mut inv = self.scripts.acquire.prepare_invoke();
                inv.key(self.keys.lease(room))
                    .key(self.keys.epoch(room))
                    .key(self.keys.snapshot(room))
                    .arg(&self.node)
                    .arg(self.lease_ms)
                    .arg(lease.epoch);
                match self
                    .call("reacquire", inv.invoke_async::<Vec<String>>(&mut c))
                    .await
                {
                    Ok(r) if r.first().map(String::as_str) == Some("1") => {
                        let epoch = r[1].parse().unwrap_or(lease.epoch + 1);
                        tracing::info!(room = %room, epoch, "took the room's lease back after Redis lost it");
                        lease.epoch = epoch;
                        lease.token = format!("{}/{epoch}", self.node);
                        Kept::Retaken
                    }
                    Ok(_) => Kept::Lost,
                    Err(_) => Kept::Unknown,
                }
            }
            Ok(_) => Kept::Lost,
            Err(_) => Kept::Unknown,
        }
    }

    async fn write_snapshot(
        &self,
        room: &RoomId,
        lease: &Lease,
        snap: &Snapshot,
    ) -> Result<i64, LiveError> {
        let mut c = self.redis.clone();
        let mut inv = self.scripts.snapshot.prepare_invoke();
        inv.key(self.keys.lease(room))
            .key(self.keys.snapshot(room))
            .arg(&lease.token)
            .arg(lease.epoch)
            .arg(&self.node)
            .arg(&snap.state)
            .arg(&snap.local)
            .arg(SNAPSHOT_TTL_MS);
        self.call("snapshot", inv.invoke_async(&mut c)).await
    }

    async fn release(&self, room: &RoomId, lease: &Lease, forget: bool) -> Result<(), LiveError> {
        let mut c = self.redis.clone();
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(self.keys.lease(room))
            .key(self.keys.snapshot(room))
            .arg(&lease.token)
            .arg(if forget { "1" } else { "0" });
        self.call("release", inv.invoke_async::<i64>(&mut c))
            .await?;
        Ok(())
    }
}

/// Beside each room task: renews the lease and writes the latest snapshot, retrying while
/// Redis is away. Cancels `lost` the moment Redis says the lease is someone else's.
async fn keep_lease(
    inner: Arc<Inner>,
    room: RoomId,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    mut snaps: watch::Receiver<Snapshot>,
    redis_ok: Arc<AtomicBool>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let every = Duration::from_millis((inner.lease_ms / 3).max(100));
    let mut renew = tokio::time::interval(every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written = Snapshot::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = renew.tick() => {
                // tokio Mutex: serialises this room's Redis writes with the final one.
                let mut l = lease.lock().await;
                if stop.is_cancelled() { return; }
                match inner.keep(&room, &mut l).await {
                    kept @ (Kept::Held | Kept::Retaken) => {
                        if !redis_ok.swap(true, Ordering::AcqRel) {
                            tracing::info!(room = %room, "Redis is back; room lease renewed");
                        }
                        // A Redis that restarted empty lost the snapshot too: write it again.
                        // (A plain renewal rewrites nothing: at thousands of rooms per node,
                        // rewriting every snapshot each renewal cost more than the visits.)
                        if matches!(kept, Kept::Retaken) {
                            written = Snapshot::default();
                        }
                    }
                    Kept::Lost => { lost.cancel(); return; }
                    Kept::Unknown => {
                        if redis_ok.swap(false, Ordering::AcqRel) {
                            tracing::warn!(room = %room, "Redis unreachable; serving this room from memory");
                        }
                        continue;
                    }
                }
            }
            r = snaps.changed() => if r.is_err() { return },
        }
        if !redis_ok.load(Ordering::Acquire) {
            continue;
        }
        let latest = snaps.borrow_and_update().clone();
        if latest == written || latest.state.is_empty() {
            continue;
        }
        let l = lease.lock().await;
        if stop.is_cancelled() {
            return;
        }
        match inner.write_snapshot(&room, &l, &latest).await {
            Ok(1) => written = latest,
            Ok(0) => renew.reset_immediately(), // no lease: Redis restarted; take it back
            Ok(_) => {
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "room snapshot not written; will retry");
                redis_ok.store(false, Ordering::Release);
            }
        }
    }
}

/// Around each room task this node owns: publishes a snapshot after each change, and
/// stops the room the moment its lease is gone.
struct RedisRoom {
    inner: Arc<Inner>,
    id: RoomId,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    redis_ok: Arc<AtomicBool>,
    snaps: watch::Sender<Snapshot>,
    /// What the last commit wrote to Redis, to publish without serialising twice.
    written: Option<Snapshot>,
    lost: CancellationToken,
    /// Stops the lease keeper.
    stop: CancellationToken,
    drained: Vec<oneshot::Sender<()>>,
}

impl RedisRoom {
    fn start(inner: Arc<Inner>, id: RoomId, lease: Arc<tokio::sync::Mutex<Lease>>) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let (snaps, snap_rx) = watch::channel(Snapshot::default());
        let redis_ok = Arc::new(AtomicBool::new(true));
        tokio::spawn(keep_lease(
            inner.clone(),
            id.clone(),
            lease.clone(),
            snap_rx,
            redis_ok.clone(),
            lost.clone(),
            stop.clone(),
        ));
        Self {
            inner,
            id,
            lease,
            redis_ok,
            snaps,
            written: None,
            lost,
            stop,
            drained: Vec::new(),
        }
    }
}

#[async_trait]
impl RoomHost for RedisRoom {
    type Mail = Drain;

    async fn commit(&mut self, room: &Room, outputs: Vec<Output>) {
        self.written = self
            .inner
            .commit(room, &self.lease, &self.redis_ok, outputs)
            .await;
    }

    fn changed(&mut self, room: &Room) {
        self.inner
            .visit_counts
            .lock()
            .expect("poisoned")
            .insert(self.id.clone(), room.state_counts());
        let snap = self
            .written
            .take()
            .unwrap_or_else(|| snapshot(room, &self.inner));
        let _ = self.snaps.send(snap);
    }

    fn mail(&mut self, Drain(done): Drain) -> bool {
        self.drained.push(done);
        true
    }

    fn deposed(&self) -> CancellationToken {
        self.lost.clone()
    }

    async fn stopped(self, room: Room, why: Stop, leftovers: Vec<RoomCmd>) {
        let (inner, id) = (self.inner, self.id);
        self.stop.cancel();
        if why == Stop::Deposed {
            tracing::warn!(room = %id, "lost the room's lease; another node owns it now");
        } else {
            // Hand over: the last state, then the lease (an idle room's state is dropped).
            let idle = why == Stop::Idle;
            let l = self.lease.lock().await;
            let last = snapshot(&room, &inner);
            if !idle && let Err(e) = inner.write_snapshot(&id, &l, &last).await {
                tracing::warn!(room = %id, error = %e, "final room snapshot not written");
            }
            if let Err(e) = inner.release(&id, &l, idle).await {
                tracing::warn!(room = %id, error = %e, "room lease not released; it expires");
            }
        }
        {
            let mut rooms = inner.rooms.lock().expect("poisoned");
            if rooms.get(&id).is_some_and(|tx| tx.is_closed()) {
                rooms.remove(&id);
            }
        }
        inner.visit_counts.lock().expect("poisoned").remove(&id);
        for done in self.drained {
            let _ = done.send(());
        }
        if !leftovers.is_empty() {
            tokio::spawn(async move {
                for cmd in leftovers {
                    if let Err(e) = inner.route(&id, cmd, 0).await {
                        tracing::warn!(room = %id, error = %e, "input lost while the room moved");
                    }
                }
            });
        }
    }
}

fn snapshot(room: &Room, inner: &Inner) -> Snapshot {
    let snap = room.snapshot();
    // Who of the room is connected to this node: a successor after a crash knows
    // they dropped with it.
    let local: Vec<&str> = {
        let outboxes = inner.outboxes.lock().expect("poisoned");
        snap.participants()
            .filter(|id| outboxes.contains_key(*id))
            .map(|id| id.as_str())
            .collect()
    };
    Snapshot {
        local: serde_json::to_string(&local).expect("strings serialise"),
        state: snap.to_json(),
    }
}

/// This node's channel: messages for its participants and inputs for its rooms, in order;
/// and the channel every node hears. Reconnects while Redis is away.
async fn subscribe(
    inner: Arc<Inner>,
    stop: CancellationToken,
    mut ready: Option<oneshot::Sender<()>>,
) {
    let channel = inner.keys.channel(&inner.node);
    let broadcast = inner.keys.broadcast();
    loop {
        let connected = async {
            let mut ps = inner.client.get_async_pubsub().await?;
            ps.subscribe(&[&channel, &broadcast]).await?;
            Ok::<_, ::redis::RedisError>(ps)
        };
        match tokio::time::timeout(inner.timeout, connected).await {
            Ok(Ok(ps)) => {
                inner.subscribed.store(true, Ordering::Relaxed);
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                let mut messages = ps.into_on_message();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        m = messages.next() => match m {
                            Some(m) => inner.received(m.get_payload_bytes()).await,
                            None => break,
                        },
                    }
                }
                inner.subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("lost the Redis subscription; reconnecting");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "Redis subscription failed"),
            Err(_) => tracing::debug!("Redis subscription timed out"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Publishes messages for participants on other nodes, in order, a pipeline at a time.
async fn publish(inner: Arc<Inner>, mut rx: mpsc::Receiver<Wire>, stop: CancellationToken) {
    let prefix = inner.keys.channel_prefix();
    let mut batch = Vec::with_capacity(REMOTE_BATCH);
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            n = rx.recv_many(&mut batch, REMOTE_BATCH) => n,
        };
        if n == 0 {
            return;
        }
        let mut pipe = ::redis::pipe();
        for w in batch.drain(..) {
            let Wire::Deliver { to, .. } = &w else {
                continue;
            };
            let key = inner.keys.presence(to);
            let payload = serde_json::to_string(&w).expect("wire messages serialise");
            pipe.cmd("EVAL")
                .arg(scripts::DELIVER)
                .arg(1)
                .arg(key)
                .arg(&prefix)
                .arg(payload)
                .ignore();
        }
        let mut c = inner.redis.clone();
        if let Err(e) = inner.call("deliver", pipe.query_async::<()>(&mut c)).await {
            tracing::warn!(error = %e, count = n, "messages for other nodes dropped");
        }
    }
}

/// Keeps this node's participants' presence alive while they are connected.
async fn refresh_presence(inner: Arc<Inner>, stop: CancellationToken) {
    // A third of the presence TTL: two refreshes may fail before a key lapses. (Every
    // `lease_ms / 3` was 9 per TTL: 12,000 SETs a second at 20,000 connections.)
    let every = Duration::from_millis((inner.presence_ttl_ms() / 3).max(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let who: Vec<ParticipantId> = inner
            .outboxes
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect();
        if who.is_empty() {
            continue;
        }
        let mut pipe = ::redis::pipe();
        for p in &who {
            pipe.cmd("SET")
                .arg(inner.keys.presence(p))
                .arg(&inner.node)
                .arg("PX")
                .arg(inner.presence_ttl_ms())
                .ignore();
        }
        let mut c = inner.redis.clone();
        if let Err(e) = inner
            .call("refresh presence", pipe.query_async::<()>(&mut c))
            .await
        {
            tracing::debug!(error = %e, "presence not refreshed");
        }
    }
}

#[async_trait]
impl Live for RedisLive {
    fn attach(&self, who: &ParticipantId, outbox: Outbox) -> Option<Outbox> {
        let old = self
            .inner
            .outboxes
            .lock()
            .expect("poisoned")
            .insert(who.clone(), outbox);
        let inner = self.inner.clone();
        let who = who.clone();
        tokio::spawn(async move {
            // Connected elsewhere before: that connection is superseded, as on one node.
            if let Ok(Some(node)) = inner.set_presence(&who).await
                && node != inner.node
            {
                let wire = Wire::Deliver {
                    to: who,
                    close: true,
                    msg: ServerMsg::error(
                        ErrorCode::Superseded,
                        "you connected again elsewhere; this connection is closed",
                    ),
                    hops: MAX_HOPS,
                };
                let payload = serde_json::to_string(&wire).expect("wire messages serialise");
                let mut c = inner.redis.clone();
                let _ = inner
                    .call(
                        "publish",
                        c.publish::<_, _, i64>(inner.keys.channel(&node), payload),
                    )
                    .await;
            }
        });
        old
    }

    fn detach(&self, who: &ParticipantId, conn: u64) {
        let removed = {
            let mut map = self.inner.outboxes.lock().expect("poisoned");
            if map.get(who).is_some_and(|o| o.conn == conn) {
                map.remove(who);
                true
            } else {
                false
            }
        };
        if removed {
            let inner = self.inner.clone();
            let who = who.clone();
            tokio::spawn(async move {
                let mut c = inner.redis.clone();
                let mut inv = inner.scripts.forget_presence.prepare_invoke();
                inv.key(inner.keys.presence(&who)).arg(&inner.node);
                let _ = inner
                    .call("forget presence", inv.invoke_async::<i64>(&mut c))
                    .await;
            });
        }
    }

    async fn revoke(&self, who: &ParticipantId, msg: ServerMsg) -> Result<(), LiveError> {
        // Here at once, even while Redis is away; the broadcast reaches the other nodes
        // (and this one again, harmlessly: the socket is closing).
        if let Some(o) = self.inner.outbox(who) {
            o.push(Outgoing::Close(Box::new(msg.clone())));
        }
        let wire = Wire::Revoke {
            to: who.clone(),
            msg,
        };
        let payload = serde_json::to_string(&wire).expect("wire messages serialise");
        let mut c = self.inner.redis.clone();
        self.inner
            .call(
                "publish",
                c.publish::<_, _, i64>(self.inner.keys.broadcast(), payload),
            )
            .await?;
        Ok(())
    }

    async fn is_connected(&self, who: &ParticipantId) -> bool {
        if self.inner.outbox(who).is_some() {
            return true;
        }
        // Presence naming this node is stale (the detach is still on its way).
        let mut c = self.inner.redis.clone();
        let key = self.inner.keys.presence(who);
        match self
            .inner
            .call("get presence", c.get::<_, Option<String>>(key))
            .await
        {
            Ok(Some(node)) => node != self.inner.node,
            _ => false,
        }
    }

    async fn submit(&self, room: &RoomId, input: Input) -> Result<(), LiveError> {
        if let Input::Connect { member, .. } = &input
            && let Err(e) = self.inner.set_presence(&member.id).await
        {
            // The refresher writes it once Redis is back; same-node delivery needs none.
            tracing::debug!(error = %e, "presence not written");
        }
        self.inner.route(room, RoomCmd::Input(input), 0).await
    }

    async fn reconfigure(&self, config: RoomConfig) -> Result<(), LiveError> {
        let id = config.id.clone();
        self.inner.route(&id, RoomCmd::Reconfigure(config), 0).await
    }

    async fn ready(&self) -> Result<(), LiveError> {
        let mut c = self.inner.redis.clone();
        let pong: String = self
            .inner
            .call("ping", ::redis::cmd("PING").query_async(&mut c))
            .await?;
        if pong != "PONG" {
            return Err(unavailable(format!("unexpected PING reply {pong}")));
        }
        if !self.inner.subscribed.load(Ordering::Relaxed) {
            return Err(unavailable("not subscribed to this node's channel"));
        }
        Ok(())
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

    fn counters(&self) -> Arc<dyn Counters> {
        self.counters.clone()
    }

    async fn drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        let rooms: Vec<mpsc::Sender<Local>> = self
            .inner
            .rooms
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect();
        for tx in rooms {
            let (done, wait) = oneshot::channel();
            if tx.send(Mail::Host(Drain(done))).await.is_ok() {
                let _ = tokio::time::timeout(self.inner.timeout * 2, wait).await;
            }
        }
        let who: Vec<ParticipantId> = self
            .inner
            .outboxes
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect();
        for p in who {
            let mut c = self.inner.redis.clone();
            let mut inv = self.inner.scripts.forget_presence.prepare_invoke();
            inv.key(self.inner.keys.presence(&p)).arg(&self.inner.node);
            let _ = self
                .inner
                .call("forget presence", inv.invoke_async::<i64>(&mut c))
                .await;
        }
        tracing::info!(node = %self.inner.node, "handed rooms over to the other nodes");
    }
}
