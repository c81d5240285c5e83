//! Room ownership: who runs each room (the lease and its fencing epoch), taking a room
//! over from its snapshot, and writing the snapshot after each change.

use super::*;

impl Inner {
    /// The lease script for `room`, never handing out an epoch at or below `floor`.
    /// `retake`: this node runs the room and takes back a lease Redis forgot.
    fn acquire(&self, room: &RoomId, floor: u64, retake: bool) -> ::redis::ScriptInvocation<'_> {
        let mut inv = self.scripts.acquire.prepare_invoke();
        inv.key(self.keys.lease(room))
            .key(self.keys.epoch(room))
            .key(self.keys.snapshot(room))
            .key(self.keys.marker())
            .arg(&self.node)
            .arg(self.lease_ms)
            .arg(floor)
            .arg(if retake { "1" } else { "0" });
        inv
    }

    /// Hand `cmd` to the room's owner: this node's task, another node's channel, or a
    /// task started here after taking the lease. Waits out a dead owner's lease.
    pub(super) async fn route(
        self: &Arc<Self>,
        room: &RoomId,
        cmd: RoomCmd,
        hops: u8,
    ) -> Result<(), LiveError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.lease_ms * 2) + self.timeout;
        let mut cmd = cmd;
        loop {
            let sent = match hand_over(&self.rooms, room, Mail::cmd(cmd)) {
                Ok(()) => return Ok(()),
                Err((mail, Some(full))) => full.send(mail).await,
                Err((mail, None)) => Err(mail),
            };
            match sent {
                Ok(()) => return Ok(()),
                // No task here, or it just stopped (idle, drained or deposed).
                Err(Mail::Cmd(c)) => cmd = *c,
                // Invariant: what we sent comes back; it was a command.
                Err(_) => unreachable!("we sent a command"),
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
                    // Just after an outage the owner may be about to retake its lease:
                    // wait for it rather than take the room from an older snapshot.
                    if !self.recovering() && self.start_room(room).await? {
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
    pub(super) async fn start_room(self: &Arc<Self>, room: &RoomId) -> Result<bool, LiveError> {
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
        let inv = self.acquire(room, 0, false);
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
        let (tx, rx) = mailbox::channel(ROOM_INBOX);
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
    /// One connected to this very node is connected, whatever its presence key says: a
    /// node starved of CPU refreshes presence late, and taking its own participant for
    /// gone told the others `peer_reconnecting` and held back what was sent to him.
    pub(super) async fn stale_connections(
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
            } else if self.outbox(id).is_some() {
                false
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
    /// A chat line counts as such a change: a page that comes back on the successor is
    /// shown the visit's chat from the snapshot, so it must hold every line already read.
    /// Returns the snapshot it wrote, if it wrote one.
    pub(super) async fn commit(
        &self,
        room: &Room,
        lease: &tokio::sync::Mutex<Lease>,
        redis_ok: &AtomicBool,
        outputs: Vec<Output>,
    ) -> Option<Snapshot> {
        let changed = outputs.iter().any(|o| {
            matches!(
                o,
                Output::Record(_)
                    | Output::Send {
                        msg: ServerMsg::Chat { .. },
                        ..
                    }
            )
        });
        let outputs = crate::live::record_first(self.effects.as_ref(), outputs).await;
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
}

/// A room task's inbox here: commands, and [`Drain`].
pub(super) type Local = Mail<Drain>;

/// Snapshot, release the lease and stop; reply when done.
pub(super) struct Drain(pub(super) oneshot::Sender<()>);

/// The lease a room task holds; the writer of snapshots and the renewer share it.
pub(super) struct Lease {
    token: String,
    epoch: u64,
}

/// What the owner writes after each change.
#[derive(Clone, PartialEq, Default)]
pub(super) struct Snapshot {
    state: String,
    local: String,
    /// Who the room believes connected through other nodes (not written): the keeper
    /// checks they still have presence.
    remote: Vec<ParticipantId>,
}

pub(super) enum Kept {
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
    pub(super) async fn keep(&self, room: &RoomId, lease: &mut Lease) -> Kept {
        let mut c = self.redis.clone();
        let mut inv = self.scripts.renew.prepare_invoke();
        inv.key(self.keys.lease(room))
            .arg(&lease.token)
            .arg(self.lease_ms);
        match self.call("renew", inv.invoke_async::<i64>(&mut c)).await {
            Ok(1) => Kept::Held,
            Ok(0) => {
                let inv = self.acquire(room, lease.epoch, true);
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

    pub(super) async fn write_snapshot(
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

    pub(super) async fn release(
        &self,
        room: &RoomId,
        lease: &Lease,
        forget: bool,
    ) -> Result<(), LiveError> {
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
pub(super) async fn keep_lease(
    inner: Arc<Inner>,
    room: RoomId,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    mut snaps: watch::Receiver<Arc<Snapshot>>,
    redis_ok: Arc<AtomicBool>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let every = Duration::from_millis((inner.lease_ms / 3).max(100));
    let mut renew = tokio::time::interval(every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Shares the watch channel's value once it is written: a room keeps one copy of its
    // snapshot, not two.
    let mut written: Arc<Snapshot> = Arc::default();
    let mut wake = inner.wake.subscribe();
    // Participants found without presence at the last check: gone at the second.
    let mut absent: HashSet<ParticipantId> = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            // Redis is back: renew (or retake) now rather than at the next tick.
            r = wake.changed() => {
                if r.is_ok() {
                    renew.reset_immediately();
                }
                continue;
            }
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
                            written = Arc::default();
                        }
                        drop(l);
                        let remote = snaps.borrow().remote.clone();
                        inner.gone_elsewhere(&room, remote, &mut absent).await;
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

impl Inner {
    /// Participants this room believes connected through other nodes but who have had no
    /// presence at two checks in a row (their node died, or stalled past the presence TTL)
    /// are disconnected, as a dropped socket is on one node: the others are told
    /// `peer_reconnecting`, and `peer_left` after the grace unless they come back.
    async fn gone_elsewhere(
        &self,
        room: &RoomId,
        remote: Vec<ParticipantId>,
        absent: &mut HashSet<ParticipantId>,
    ) {
        if remote.is_empty() || self.recovering() {
            absent.clear();
            return;
        }
        let keys: Vec<String> = remote.iter().map(|p| self.keys.presence(p)).collect();
        let Some(at) = self.get_many("get presence", keys).await else {
            return;
        };
        let missing: HashSet<ParticipantId> = remote
            .into_iter()
            .zip(at)
            .filter(|(_, at)| at.is_none())
            .map(|(p, _)| p)
            .collect();
        let gone: Vec<ParticipantId> = missing.intersection(absent).cloned().collect();
        *absent = missing;
        let Some(tx) = self.local_room(room) else {
            return;
        };
        for who in gone {
            absent.remove(&who);
            tracing::info!(room = %room, "a participant connected through another node has no presence left");
            let _ = tx
                .send(Mail::cmd(RoomCmd::Input(Input::Disconnect { who })))
                .await;
        }
    }
}

/// Around each room task this node owns: publishes a snapshot after each change, and
/// stops the room the moment its lease is gone.
pub(super) struct RedisRoom {
    inner: Arc<Inner>,
    id: RoomId,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    redis_ok: Arc<AtomicBool>,
    snaps: watch::Sender<Arc<Snapshot>>,
    /// What the last commit wrote to Redis, to publish without serialising twice.
    written: Option<Snapshot>,
    lost: CancellationToken,
    /// Stops the lease keeper.
    stop: CancellationToken,
    drained: Vec<oneshot::Sender<()>>,
}

impl RedisRoom {
    pub(super) fn start(
        inner: Arc<Inner>,
        id: RoomId,
        lease: Arc<tokio::sync::Mutex<Lease>>,
    ) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let (snaps, snap_rx) = watch::channel(Arc::<Snapshot>::default());
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

    async fn commit(&mut self, room: &Room, outputs: Vec<Output>, _changed: bool) {
        self.written = self
            .inner
            .commit(room, &self.lease, &self.redis_ok, outputs)
            .await;
    }

    /// While Redis is away, a physician's decision about a visit whose patient (or
    /// anyone in its call) is connected through another node is refused: that side could
    /// not be told, and a decision one side heard of and the other did not is what the
    /// pages cannot recover from (an admitted patient left in the waiting room). Nothing
    /// changes; the physician is told `unavailable` and tries again, as when the room
    /// runs on the other node. Decisions among participants all on this node go ahead.
    fn refuse(&self, room: &Room, input: &Input) -> Option<Vec<Output>> {
        let visit = input.decides()?;
        let away =
            self.inner.outage.load(Ordering::Acquire) || !self.redis_ok.load(Ordering::Acquire);
        if !away {
            return None;
        }
        let told = room.told_about(visit);
        let outboxes = self.inner.outboxes.lock().expect("poisoned");
        if told.iter().all(|p| outboxes.contains_key(p)) {
            return None;
        }
        let who = input.participant()?.clone();
        Some(vec![Output::Send {
            to: who,
            msg: ServerMsg::error_about(
                ErrorCode::Unavailable,
                "the other side of this visit cannot be reached right now; try again shortly",
                input.kind(),
            ),
        }])
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
        let _ = self.snaps.send(Arc::new(snap));
    }

    fn mail(&mut self, Drain(done): Drain) -> bool {
        self.drained.push(done);
        true
    }

    fn deposed(&self) -> Option<CancellationToken> {
        Some(self.lost.clone())
    }

    async fn stopped(self, room: Room, why: Stop, leftovers: Vec<RoomCmd>) {
        let (inner, id) = (self.inner, self.id);
        self.stop.cancel();
        if why == Stop::Deposed {
            tracing::warn!(room = %id, "lost the room's lease; another node owns it now");
            // What this task knew of the room is stale: whoever of it is connected here
            // reconnects and resumes into the room where it runs now.
            let snap = room.snapshot();
            for who in snap.participants() {
                if let Some(o) = inner.outbox(who) {
                    o.push(Outgoing::Close(Box::new(ServerMsg::GoingAway {
                        reason: "the room moved to another server".into(),
                        reconnect_after_ms: RESUME_AFTER_MS,
                    })));
                }
            }
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

pub(super) fn snapshot(room: &Room, inner: &Inner) -> Snapshot {
    let snap = room.snapshot();
    // Who of the room is connected to this node: a successor after a crash knows
    // they dropped with it.
    let (local, remote): (Vec<&str>, Vec<ParticipantId>) = {
        let outboxes = inner.outboxes.lock().expect("poisoned");
        (
            snap.participants()
                .filter(|id| outboxes.contains_key(*id))
                .map(|id| id.as_str())
                .collect(),
            snap.connected()
                .filter(|id| !outboxes.contains_key(*id))
                .cloned()
                .collect(),
        )
    };
    Snapshot {
        local: serde_json::to_string(&local).expect("strings serialise"),
        state: snap.to_json(),
        remote,
    }
}
