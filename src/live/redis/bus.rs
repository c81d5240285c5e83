//! The bus between nodes: delivering to participants on other nodes through their node's
//! channel, hearing this node's channel, and keeping this node's presence keys alive.

use super::*;

/// What travels on a node's channel.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Wire {
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

impl Inner {
    pub(super) fn dispatch(&self, outputs: Vec<Output>) {
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

    pub(super) fn deliver(&self, to: ParticipantId, close: bool, msg: ServerMsg, hops: u8) {
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
    pub(super) async fn received(self: &Arc<Self>, payload: &[u8]) {
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
                    && tx.send(Mail::cmd(cmd.clone())).await.is_ok()
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

/// This node's channel: messages for its participants and inputs for its rooms, in order;
/// and the channel every node hears. Reconnects while Redis is away.
pub(super) async fn subscribe(
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
pub(super) async fn publish(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Wire>,
    stop: CancellationToken,
) {
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
        // Who is told something about their visit's state in this batch.
        let mut told = Vec::new();
        for w in batch.drain(..) {
            let Wire::Deliver { to, close, msg, .. } = &w else {
                continue;
            };
            if *close || tells_visit_state(msg) {
                told.push(to.clone());
            }
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
            if !told.is_empty() {
                inner.missed.lock().expect("poisoned").extend(told);
            }
        }
    }
}

/// Whether `msg` tells its receiver where their visit stands: losing one leaves a page
/// showing a state the room left (an admitted patient still in the waiting room).
fn tells_visit_state(msg: &ServerMsg) -> bool {
    matches!(
        msg,
        ServerMsg::Admitted { .. }
            | ServerMsg::SentBack { .. }
            | ServerMsg::Denied { .. }
            | ServerMsg::VisitEnded { .. }
    )
}

/// Keeps this node's participants' presence alive while they are connected.
pub(super) async fn refresh_presence(inner: Arc<Inner>, stop: CancellationToken) {
    // A third of the presence TTL: two refreshes may fail before a key lapses. (Every
    // `lease_ms / 3` was 9 per TTL: 12,000 SETs a second at 20,000 connections.)
    let every = Duration::from_millis((inner.presence_ttl_ms() / 3).max(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = inner.write_presence().await {
            tracing::debug!(error = %e, "presence not refreshed");
        }
    }
}

impl Inner {
    /// Write the presence of everyone connected here, in one pipeline.
    pub(super) async fn write_presence(&self) -> Result<(), LiveError> {
        let who = self.connected_here();
        if who.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for p in &who {
            pipe.cmd("SET")
                .arg(self.keys.presence(p))
                .arg(&self.node)
                .arg("PX")
                .arg(self.presence_ttl_ms())
                .ignore();
        }
        let mut c = self.redis.clone();
        self.call("refresh presence", pipe.query_async::<()>(&mut c))
            .await
    }
}
