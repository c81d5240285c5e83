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
//!   stopped. A node that learns it lost the lease stops acting on the room at once, and
//!   tells the participants it holds in that room to resume (`going_away`): they reconnect
//!   into the room where it runs now.
//! - **Recovery**: `<prefix>:live` marks a Redis that holds the cluster's state. A Redis
//!   that restarted empty lost it; until the nodes have put back what they hold in memory
//!   (their participants' presence, the leases and snapshots of the rooms they run), no room
//!   is started afresh, so a room whose owner is alive continues with its visits
//!   (`recovery`).
//!
//! Invariants: only the lease holder mutates a room; the room task never waits on Redis
//! (renewals and snapshot writes run beside it), so a Redis outage does not stall rooms
//! whose participants are all on this node; every Redis call has `redis.timeout_ms`.
//!
//! Here: the store, its keys and connections, and the [`Live`] calls. Beside it:
//! `ownership` (leases, take-over from a snapshot, snapshot writes), `bus` (node channels,
//! cross-node delivery, presence refresh), `recovery` (noticing Redis came back, or
//! restarted, and restoring), `counters`, `scripts`, `parking` (visit history the
//! database has not taken yet, `live::Parking`).

mod bus;
mod counters;
mod memo;
mod ownership;
mod parking;
mod recovery;
mod scripts;

use bus::{Wire, publish, refresh_presence, subscribe};
pub use memo::RedisMemo;
use ownership::{Drain, Local};
pub use parking::RedisParking;

use super::mailbox;
use super::runtime::{
    Mail, RESUME_AFTER_MS, ROOM_INBOX, RoomCmd, RoomHost, RoomInboxes, Stop, hand_over, run_room,
};
use super::{Counters, Effects, Live, LiveError, LiveStats, Outbox, Outgoing, RoomLoader};
use crate::config::Settings;
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::{ErrorCode, ServerMsg};
use crate::visit::RoomConfig;
use crate::visit::room::snapshot::RoomSnapshot;
use crate::visit::room::{Input, Output, Room, Timing};
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
    /// Present while this Redis holds the cluster's live state (see `recovery`).
    fn marker(&self) -> String {
        format!("{}:live", self.0)
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
    rooms: RoomInboxes<Local>,
    visit_counts: crate::live::VisitCounts,
    /// tokio Mutex, held across the lease acquisition so this node starts a room once.
    starting: tokio::sync::Mutex<()>,
    remote: mpsc::Sender<Wire>,
    subscribed: AtomicBool,
    draining: AtomicBool,
    /// Redis came back at this instant (after an outage or a restart); `None` before.
    restored: Mutex<Option<std::time::Instant>>,
    /// The watcher's last probe of Redis failed.
    outage: AtomicBool,
    /// Bumped when Redis is back: every room's lease keeper renews at once.
    wake: watch::Sender<u64>,
    /// Participants on other nodes a message about their visit's state (or a close) did
    /// not reach because Redis was away: told to resume once it is back (`recovery`), so
    /// their pages learn the state the room is in (an admit or end is never half-told).
    missed: Mutex<HashSet<ParticipantId>>,
    /// The rooms each participant connected here entered (their `Connect`s): a room of
    /// theirs whose owner died is taken over here for them (`recovery::adopt_orphans`).
    rooms_of: Mutex<HashMap<ParticipantId, HashSet<RoomId>>>,
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

/// The node's one connection to `redis.url`: a client (for the bus's subscriber) and a
/// multiplexed, self-reconnecting connection shared by the live store, history parking and
/// the memo, with `redis.timeout_ms` on connecting and on every reply. Made once at
/// start-up; clones share the same socket, so a node holds one command connection (plus
/// the bus's subscription) however many Redis-backed ports it runs.
#[derive(Clone)]
pub struct RedisConnection {
    client: ::redis::Client,
    redis: ConnectionManager,
    timeout: Duration,
}

impl RedisConnection {
    /// Fails when Redis cannot be reached now.
    pub async fn open(settings: &Settings) -> Result<Self, LiveError> {
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
        Ok(RedisConnection {
            client,
            redis,
            timeout,
        })
    }
}

fn unavailable(e: impl std::fmt::Display) -> LiveError {
    LiveError::Unavailable(e.to_string())
}

/// One Redis reply within `timeout`; a failure or a timeout is `Unavailable`, naming `what`.
async fn timed<T>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, LiveError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(format!("redis {what}: {e}"))),
        Err(_) => Err(unavailable(format!("redis {what}: timed out"))),
    }
}

impl RedisLive {
    /// Start this node's subscriber, presence refresher and publisher on `conn`.
    pub async fn connect(
        conn: RedisConnection,
        settings: &Settings,
        loader: Arc<dyn RoomLoader>,
        effects: Arc<dyn Effects>,
        timing: Timing,
    ) -> Result<Self, LiveError> {
        let RedisConnection {
            client,
            redis,
            timeout,
        } = conn;
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
            restored: Mutex::new(None),
            outage: AtomicBool::new(false),
            wake: watch::Sender::new(0),
            rooms_of: Mutex::new(HashMap::new()),
            missed: Mutex::new(HashSet::new()),
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
        inner.mark().await;
        tokio::spawn(recovery::watch_redis(inner.clone(), stop.clone()));
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

    /// Several keys in one call; `None` when Redis does not answer.
    async fn get_many(&self, what: &str, keys: Vec<String>) -> Option<Vec<Option<String>>> {
        let mut c = self.redis.clone();
        self.call(what, c.mget(keys)).await.ok()
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

    fn local_room(&self, room: &RoomId) -> Option<mailbox::Sender<Local>> {
        self.rooms
            .lock()
            .expect("poisoned")
            .get(room)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Everyone connected to this node.
    fn connected_here(&self) -> Vec<ParticipantId> {
        self.outboxes
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect()
    }

    fn outbox(&self, who: &ParticipantId) -> Option<Outbox> {
        self.outboxes.lock().expect("poisoned").get(who).cloned()
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

    fn close_all(&self, msg: ServerMsg) {
        super::close_all(&self.inner.outboxes, &msg);
    }

    fn detach(&self, who: &ParticipantId, conn: u64) {
        let removed = {
            let mut map = self.inner.outboxes.lock().expect("poisoned");
            if map.get(who).is_some_and(|o| o.conn == conn) {
                map.remove(who);
                self.inner.rooms_of.lock().expect("poisoned").remove(who);
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
        if let Input::Connect { member, .. } = &input {
            if self.inner.outbox(&member.id).is_some() {
                let mut rooms_of = self.inner.rooms_of.lock().expect("poisoned");
                rooms_of
                    .entry(member.id.clone())
                    .or_default()
                    .insert(room.clone());
            }
            if let Err(e) = self.inner.set_presence(&member.id).await {
                // The refresher writes it once Redis is back; same-node delivery needs none.
                tracing::debug!(error = %e, "presence not written");
            }
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
        LiveStats::of_node(
            self.inner.rooms.lock().expect("poisoned").len(),
            self.inner.outboxes.lock().expect("poisoned").len(),
            &self.inner.visit_counts,
        )
    }

    fn counters(&self) -> Arc<dyn Counters> {
        self.counters.clone()
    }

    async fn drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        let rooms: Vec<mailbox::Sender<Local>> = self
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
        for p in self.inner.connected_here() {
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
