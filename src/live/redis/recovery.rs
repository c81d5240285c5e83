//! Noticing that Redis came back, after an outage or a restart (empty or with its data),
//! and putting back what this node is the source of truth for: its participants'
//! presence and the leases and snapshots of the rooms it runs. Its subscription comes
//! back by itself (`bus::subscribe` reconnects).
//!
//! A Redis that restarted empty forgot every lease and snapshot. The owner of a room
//! still runs it, with its visits, in memory; another node must not start the same room
//! afresh in the moment before the owner takes its lease back (that is what put admitted
//! patients back in the waiting room). So the marker `<prefix>:live`, which the acquire
//! script requires before it starts a room, is set again only after [`Inner::recovery`]:
//! long enough for every owner to have renewed. A node that comes back after it lost a
//! room tells the participants it holds there to resume (`ownership`).

use super::*;

impl Inner {
    /// How long after Redis came back a room is only retaken by its owner, not started
    /// afresh elsewhere: the owners renew at once on noticing, this leaves them two leases.
    pub(super) fn recovery(&self) -> Duration {
        Duration::from_millis(self.lease_ms * 2)
    }

    /// Redis came back a moment ago (or is away right now): a room without a lease may
    /// still have an owner about to retake it.
    pub(super) fn recovering(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
            || self
                .restored
                .lock()
                .expect("poisoned")
                .is_some_and(|at| at.elapsed() < self.recovery())
    }

    /// Say this Redis holds the cluster's live state (once it does).
    pub(super) async fn mark(&self) {
        let mut c = self.redis.clone();
        let opts = ::redis::SetOptions::default().conditional_set(::redis::ExistenceCheck::NX);
        if let Err(e) = self
            .call(
                "mark",
                c.set_options::<_, _, Option<String>>(self.keys.marker(), 1, opts),
            )
            .await
        {
            tracing::debug!(error = %e, "live-state marker not written");
        }
    }

    /// Redis answers again: put back what it may have lost.
    async fn restore(self: &Arc<Self>, restarted: bool) {
        *self.restored.lock().expect("poisoned") = Some(std::time::Instant::now());
        tracing::info!(
            node = %self.node,
            restarted,
            "Redis is back; restoring presence, leases and room snapshots"
        );
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        if let Err(e) = self.write_presence().await {
            tracing::debug!(error = %e, "presence not restored yet");
        }
        self.clone().tell_who_missed();
    }

    /// Participants on other nodes whose visit-state messages were dropped while Redis
    /// was away reconnect and resume: the room tells a resuming page where its visit
    /// stands. After the recovery window, when their nodes have put their presence back.
    fn tell_who_missed(self: Arc<Self>) {
        if self.missed.lock().expect("poisoned").is_empty() {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(self.recovery()).await;
            let missed: Vec<ParticipantId> =
                self.missed.lock().expect("poisoned").drain().collect();
            tracing::info!(
                participants = missed.len(),
                "telling participants who missed a change to their visit to resume"
            );
            for who in missed {
                let msg = ServerMsg::GoingAway {
                    reason: "a change to your visit did not reach you; reconnect".into(),
                    reconnect_after_ms: RESUME_AFTER_MS,
                };
                self.deliver(who, true, msg, 0);
            }
        });
    }
}

impl Inner {
    /// This process stood still for `for_how_long`, past its participants' presence: other
    /// nodes may have taken its rooms over and reported its participants gone. Everyone
    /// connected here reconnects and resumes, into wherever their rooms run now (their
    /// pages would otherwise show a call nobody relays to any more).
    fn woke_up(&self, for_how_long: Duration) {
        let outboxes: Vec<Outbox> = self
            .outboxes
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect();
        tracing::warn!(
            node = %self.node,
            stalled_ms = for_how_long.as_millis() as u64,
            connections = outboxes.len(),
            "this node stood still past its presence; its participants resume"
        );
        for o in outboxes {
            o.push(Outgoing::Close(Box::new(ServerMsg::GoingAway {
                reason: "this server stalled; reconnect".into(),
                reconnect_after_ms: RESUME_AFTER_MS,
            })));
        }
    }

    /// Rooms this node's participants are in, run by no node (their owner died and its
    /// lease ran out) and not here: take them over, so the participants that were on the
    /// dead node are reported (`peer_reconnecting`, then `peer_left`) even if nobody here
    /// says anything.
    async fn adopt_orphans(self: &Arc<Self>) {
        let rooms: Vec<RoomId> = {
            let rooms_of = self.rooms_of.lock().expect("poisoned");
            let mut all: Vec<RoomId> = rooms_of.values().flatten().cloned().collect();
            all.sort();
            all.dedup();
            all
        };
        let rooms: Vec<RoomId> = rooms
            .into_iter()
            .filter(|r| self.local_room(r).is_none())
            .collect();
        if rooms.is_empty() {
            return;
        }
        let keys: Vec<String> = rooms.iter().map(|r| self.keys.lease(r)).collect();
        let Some(holders) = self.get_many("get leases", keys).await else {
            return;
        };
        for (room, holder) in rooms.into_iter().zip(holders) {
            if holder.is_some() {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.route(&room, RoomCmd::Input(Input::Tick), 0).await {
                    tracing::debug!(room = %room, error = %e, "orphaned room not taken over yet");
                }
            });
        }
    }
}

/// Probes Redis a few times a lease: an error is an outage; an answer after one, or from a
/// new Redis process (its `run_id` changed: it restarted, perhaps between two probes), is
/// a recovery.
///
/// Also: a probe that comes much later than it was due means this process stood still
/// (SIGSTOP, a frozen VM, starvation) past its participants' presence, and every few
/// probes, rooms this node's participants are in that nobody runs any more are taken over.
pub(super) async fn watch_redis(inner: Arc<Inner>, stop: CancellationToken) {
    let every = Duration::from_millis((inner.lease_ms / 5).clamp(100, 1000));
    let mut known: Option<String> = None;
    let mut last = tokio::time::Instant::now();
    let mut probes: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let stood_still = last.elapsed();
        last = tokio::time::Instant::now();
        if stood_still > Duration::from_millis(inner.presence_ttl_ms()) {
            inner.woke_up(stood_still);
        }
        probes += 1;
        let mut c = inner.redis.clone();
        let info = inner
            .call(
                "info",
                ::redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut c),
            )
            .await;
        match info {
            Ok(info) => {
                let run_id = info
                    .lines()
                    .find_map(|l| l.strip_prefix("run_id:"))
                    .map(|id| id.trim().to_owned());
                let restarted = known.is_some() && run_id != known;
                known = run_id;
                if inner.outage.load(Ordering::Relaxed) || restarted {
                    // Recovering from now on, before the outage is over for anyone.
                    inner.restore(restarted).await;
                    inner.outage.store(false, Ordering::Relaxed);
                } else if !inner.recovering() {
                    inner.mark().await;
                    // About once a lease.
                    if probes.is_multiple_of(5) {
                        inner.adopt_orphans().await;
                    }
                }
            }
            Err(e) => {
                if !inner.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!(node = %inner.node, error = %e, "Redis unreachable; serving from memory");
                }
            }
        }
    }
}
