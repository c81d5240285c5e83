//! One WebSocket connection: one task that reads the client's messages, writes its
//! bounded outbox, and keeps one timer for the hello deadline, heartbeats and refreshes.
//!
//! - The first message must be `hello` with a valid token, within `hello_timeout_secs`.
//! - Until then it holds an unauthenticated place ([`super::admission`]); the hello
//!   trades it for an established one, or the connection is closed (`server_full`).
//! - Every later message is size-checked, rate-limited and parsed; a bad one gets an
//!   `error` naming the problem and the connection stays up. A message over the hard
//!   limit closes it (1009), and so does a client that keeps flooding (1008).
//! - Every close after an `error` carries a close code and the error code as its reason
//!   ([`close_code`]).
//! - The server pings every `heartbeat_interval_secs`; a client silent for
//!   `heartbeat_timeout_secs` is dropped.
//! - A client that cannot keep up with its outbox is dropped (`slow_consumer`); it never
//!   stalls a visit.
//! - When the connection ends, for any reason, cleanup runs in one place.
//!
//! One task, not a reader and a writer: every connection pays for its task and futures for
//! its whole life, and two tasks with their channels, tokens and shared view cost ≈ 6 KiB
//! more per connection than this one (issue 20, docs/benchmarks.md). What is written
//! still never waits on what is read: others only push to the outbox, which never blocks.
//!
//! Tokens are never logged.
//!
//! The parts: [`hello`] (who the connection is), [`dispatch`] (what each message does),
//! [`writer`] (framing what is sent, and close codes); the loop is here.

use super::socket::{self, Incoming, ReadError};
use crate::identity::{Claims, Role, TokenError};
use crate::ids::{ParticipantId, RoomId, VisitId};
use crate::live::{Inbox, Next, Outbox, Outgoing};
use crate::media::check::CheckHandle;
use crate::media::peer::LocalCandidate;
use crate::protocol::{self, Candidate, ClientMsg, ErrorCode, ServerMsg};
use crate::state::AppState;
use crate::state::admission::{Established, Pending};
use crate::visit::room::{Act, Input, Member};
use hyper::upgrade::Upgraded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod dispatch;
mod hello;
mod writer;

use dispatch::{Flow, connection_check_offer, dispatch};
use hello::{fresh_token, hello};
pub use writer::close_code;
use writer::{CLOSE_WAIT, Sink, frame, observe, send_close};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

type Stream = socket::Reader<tokio::io::ReadHalf<socket::Io>>;

/// Which visit this connection is in, learned from what the rooms send it; used only
/// to route relays to the right room (the room itself checks membership).
#[derive(Default)]
struct View {
    active: Option<(RoomId, VisitId)>,
}

/// Who the hello proved this connection to be.
struct Identity {
    participant: ParticipantId,
    member: Member,
    rooms: Vec<RoomId>,
    claims: Claims,
    /// This connection's established place; given back when the session ends.
    _slot: Established,
}

/// Serve one WebSocket until it ends.
/// `cookie`: the staff session token the upgrade request carried (Origin already
/// checked); a `hello` without a token uses it.
pub async fn run(io: Upgraded, state: AppState, slot: Pending, cookie: Option<String>) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    state.metrics.connections.inc();
    let cfg = &state.settings.signalling;
    let (outbox, inbox) = Outbox::new(conn, cfg.outbox_capacity);
    let (stream, sink) = socket::split(io, cfg.read_buffer_bytes, socket::HARD_MESSAGE_LIMIT);
    let mut s = Session {
        stream,
        sink,
        inbox,
        outbox,
        view: View::default(),
        closing: false,
    };
    let identity = s.serve(&state, slot, cookie).await;

    // Cleanup, in one place: forget the outbox, tell the rooms, say goodbye.
    if let Some((id, left)) = identity {
        state.live.detach(&id.participant, conn);
        if !left && !state.live.is_connected(&id.participant).await {
            for room in &id.rooms {
                let _ = state
                    .live
                    .submit(
                        room,
                        Input::Disconnect {
                            who: id.participant.clone(),
                        },
                    )
                    .await;
            }
        }
    }
    // Boxed: it runs once, at the end; inline, every connection would carry its size.
    Box::pin(s.finish(&state)).await;
    state.metrics.connections.dec();
}

/// What every connection is told when this server stops.
pub fn server_restarting() -> ServerMsg {
    ServerMsg::GoingAway {
        reason: "server restarting".into(),
        reconnect_after_ms: 1000,
    }
}

/// One connection's parts. `closing`: a close is queued; nothing more read is acted on.
struct Session {
    stream: Stream,
    sink: Sink,
    inbox: Inbox,
    outbox: Outbox,
    view: View,
    closing: bool,
}

/// What woke the session.
enum Event {
    Out(Next),
    In(Option<String>),
    Timer,
    Shutdown,
}

/// When the timer is due next, for what.
struct Clock {
    /// The hello deadline, then the heartbeat timeout counted from the last message.
    silence: Duration,
    last_heard: tokio::time::Instant,
    ping_at: tokio::time::Instant,
    ping_every: Duration,
    /// A patient's or guest's fresh token (their tokens are short-lived).
    refresh_at: Option<tokio::time::Instant>,
    refresh_every: Duration,
    /// Fresh TURN credentials, well before they expire.
    ice_at: Option<tokio::time::Instant>,
    ice_every: Duration,
}

impl Clock {
    fn next(&self) -> tokio::time::Instant {
        let mut at = (self.last_heard + self.silence).min(self.ping_at);
        for t in [self.refresh_at, self.ice_at].into_iter().flatten() {
            at = at.min(t);
        }
        at
    }
}

impl Session {
    /// Until the connection is done: returns who it was (if the hello succeeded) and
    /// whether they left on purpose.
    async fn serve(
        &mut self,
        state: &AppState,
        slot: Pending,
        cookie: Option<String>,
    ) -> Option<(Box<Identity>, bool)> {
        let cfg = &state.settings.signalling;
        let max = cfg.max_message_bytes;
        let now = tokio::time::Instant::now();
        let ping_every = Duration::from_secs(cfg.heartbeat_interval_secs);
        let mut clock = Clock {
            silence: Duration::from_secs(cfg.hello_timeout_secs),
            last_heard: now,
            ping_at: now + ping_every,
            ping_every,
            refresh_at: None,
            refresh_every: Duration::from_secs(
                (state.settings.identity.patient_token_secs / 2).max(30),
            ),
            ice_at: None,
            ice_every: Duration::from_secs(
                (state.settings.ice.turn_credential_secs * 4 / 5).max(30),
            ),
        };
        let timer = tokio::time::sleep_until(clock.next());
        tokio::pin!(timer);
        let mut slot = Some(slot);
        let mut cookie = cookie;
        // Boxed, like `check`: held for the connection's life, used per message by
        // reference, so the future keeps a pointer instead of ≈ 600 bytes.
        let mut id: Option<Box<Identity>> = None;
        let mut throttle = super::throttle::Throttle::new(cfg.rate_per_sec, cfg.rate_burst);
        let mut check: Option<Box<CheckHandle>> = None;
        let mut left = false;
        // Messages dropped in a row for the rate: the first gets `rate_limited`, and a client
        // that goes on past a whole burst is flooding and is closed.
        let mut dropped: u32 = 0;
        let mut shutting_down = false;
        loop {
            let event = tokio::select! {
                biased;
                next = self.inbox.next() => Event::Out(next),
                text = next_text(&mut self.stream, &self.outbox, max), if !self.closing => Event::In(text),
                _ = &mut timer, if !self.closing => Event::Timer,
                // Once the hello is through, the live store tells this connection of a
                // shutdown (`Live::close_all`): waiting on the token here too would
                // register and unregister a waiter on every message.
                _ = state.shutdown.cancelled(), if !shutting_down && id.is_none() => Event::Shutdown,
            };
            match event {
                Event::Out(next) => {
                    if !self.deliver(next, state).await {
                        break;
                    }
                }
                Event::Shutdown => {
                    shutting_down = true;
                    self.close_with(server_restarting());
                }
                Event::Timer => {
                    let now = tokio::time::Instant::now();
                    if now >= clock.last_heard + clock.silence {
                        match id {
                            None => self
                                .close(ErrorCode::HelloTimeout, "no hello within the time allowed"),
                            Some(_) => self.close(
                                ErrorCode::HeartbeatTimeout,
                                "no message within the heartbeat timeout",
                            ),
                        }
                        continue;
                    }
                    if now >= clock.ping_at {
                        clock.ping_at = now + clock.ping_every;
                        push(&self.outbox, ServerMsg::Ping {});
                    }
                    if let (Some(at), Some(who)) = (clock.refresh_at, &id)
                        && now >= at
                    {
                        clock.refresh_at = Some(now + clock.refresh_every);
                        push(&self.outbox, fresh_token(state, &who.claims));
                    }
                    if let (Some(at), Some(who)) = (clock.ice_at, &id)
                        && now >= at
                    {
                        clock.ice_at = Some(now + clock.ice_every);
                        let (ice_servers, _) = state.ice_servers(&who.participant);
                        push(&self.outbox, ServerMsg::IceServers { ice_servers });
                    }
                    timer.as_mut().reset(clock.next());
                }
                Event::In(None) => break,
                Event::In(Some(text)) => {
                    let now = tokio::time::Instant::now();
                    clock.last_heard = now;
                    let Some(who) = &id else {
                        // ---- hello ----
                        let Some(slot) = slot.take() else { break };
                        // Boxed, like the connection check below: a future is as large as its
                        // largest await, and every connection would otherwise carry these
                        // once-only ones for its lifetime.
                        match Box::pin(hello(&text, state, &self.outbox, slot, cookie.take())).await
                        {
                            Ok(who) => {
                                tracing::debug!(participant = %who.participant, role = who.member.role.as_str(), "connected");
                                clock.silence = Duration::from_secs(cfg.heartbeat_timeout_secs);
                                if matches!(who.member.role, Role::Patient | Role::Guest) {
                                    clock.refresh_at = Some(now + clock.refresh_every);
                                }
                                if state.ice.has_turn() {
                                    clock.ice_at = Some(now + clock.ice_every);
                                }
                                id = Some(Box::new(who));
                                // Attached after the live store closed everyone.
                                if state.shutdown.is_cancelled() {
                                    shutting_down = true;
                                    self.close_with(server_restarting());
                                }
                            }
                            Err((code, message)) => self.close(code, message),
                        }
                        timer.as_mut().reset(clock.next());
                        continue;
                    };
                    // ---- messages ----
                    if !throttle.allow(now.into_std()) {
                        dropped += 1;
                        if dropped == 1 {
                            push(
                                &self.outbox,
                                ServerMsg::error(
                                    ErrorCode::RateLimited,
                                    "too many messages; this one was dropped",
                                ),
                            );
                        } else if dropped > cfg.rate_burst.max(1) {
                            self.close(
                                ErrorCode::RateLimited,
                                "too many messages; the connection is closed",
                            );
                        }
                        continue;
                    }
                    dropped = 0;
                    let msg = match protocol::parse_client(&text) {
                        Ok(m) => m,
                        Err((code, message, about)) => {
                            push(
                                &self.outbox,
                                ServerMsg::Error {
                                    code,
                                    message,
                                    about,
                                },
                            );
                            continue;
                        }
                    };
                    let outbox = &self.outbox;
                    match msg {
                        ClientMsg::CheckOffer { sdp } => {
                            Box::pin(connection_check_offer(&mut check, sdp, who, state, outbox))
                                .await;
                        }
                        ClientMsg::CheckCandidate { candidate } => match &check {
                            Some(h) => {
                                // Refused or unparsable candidates are dropped; the check goes on.
                                let _ = h.add_remote_candidate(candidate).await;
                            }
                            None => push(
                                outbox,
                                ServerMsg::error_about(
                                    ErrorCode::BadMessage,
                                    "no connection check is running",
                                    "check_candidate",
                                ),
                            ),
                        },
                        other => {
                            if let Flow::Left =
                                dispatch(other, who, state, outbox, &self.view).await
                            {
                                left = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
        if let Some(h) = check {
            h.close().await;
        }
        id.map(|id| (id, left))
    }

    /// Queue `msg` as the last words: what is queued before it is still sent, nothing
    /// read after it is acted on.
    fn close_with(&mut self, msg: ServerMsg) {
        self.closing = true;
        self.outbox.push(Outgoing::Close(Box::new(msg)));
    }

    fn close(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.close_with(ServerMsg::error(code, message));
    }

    /// The end of the connection: send what is still queued and a close frame (each step
    /// bounded, a client that does not read cannot hold its place), then read (and drop)
    /// what the client still sends until it answers our close. Closing the socket with
    /// unread data in it would reset the connection, and the client would lose the close
    /// frame that says why.
    async fn finish(mut self, state: &AppState) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(next) = self.inbox.try_next() {
                if !self.deliver(next, state).await {
                    return;
                }
            }
            let _ = self.sink.close(None).await;
        })
        .await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(m)) = self.stream.next().await {
                if matches!(m, Incoming::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Write what the outbox gave. False once the connection is done: a close was sent
    /// (queued, or the client fell too far behind) or the socket failed.
    async fn deliver(&mut self, next: Next, state: &AppState) -> bool {
        match next {
            Next::Killed => {
                state.metrics.error(ErrorCode::SlowConsumer);
                let msg = ServerMsg::error(
                    ErrorCode::SlowConsumer,
                    "you fell too far behind; reconnect",
                );
                Box::pin(send_close(&mut self.sink, &msg)).await;
                false
            }
            Next::Out(Outgoing::Msg(msg)) => {
                observe(&mut self.view, &msg);
                state.metrics.sent(&msg);
                self.sink.send(frame(&msg)).await.is_ok()
            }
            Next::Out(Outgoing::Close(msg)) => {
                state.metrics.sent(&msg);
                Box::pin(send_close(&mut self.sink, &msg)).await;
                false
            }
            Next::Out(Outgoing::Pong(bytes)) => self.sink.pong(&bytes).await.is_ok(),
        }
    }
}

fn push(outbox: &Outbox, msg: ServerMsg) {
    outbox.push(Outgoing::Msg(Box::new(msg)));
}

fn close(outbox: &Outbox, code: ErrorCode, message: impl Into<String>) {
    outbox.push(Outgoing::Close(Box::new(ServerMsg::error(code, message))));
}

/// The next text message, answering oversized and binary ones with an error and pings
/// with a pong. `None` when the connection is closed.
async fn next_text(stream: &mut Stream, outbox: &Outbox, max: usize) -> Option<String> {
    loop {
        match stream.next().await? {
            Ok(Incoming::Text(t)) if t.len() >= max => {
                push(
                    outbox,
                    ServerMsg::error(
                        ErrorCode::TooLarge,
                        format!("message of {} bytes refused; the limit is {max}", t.len()),
                    ),
                );
            }
            Ok(Incoming::Text(t)) => return Some(t),
            Ok(Incoming::Binary(_)) => {
                push(
                    outbox,
                    ServerMsg::error(
                        ErrorCode::BadMessage,
                        "binary messages are not part of the protocol",
                    ),
                );
            }
            Ok(Incoming::Ping(bytes)) => {
                outbox.push(Outgoing::Pong(bytes.into()));
            }
            Ok(Incoming::Pong) => {}
            Ok(Incoming::Close(_)) => return None,
            // Over the hard limit the socket stops reading; say so before closing.
            Err(e @ ReadError::TooLarge { .. }) => {
                close(outbox, ErrorCode::TooLarge, format!("message refused: {e}"));
                return None;
            }
            Err(e @ (ReadError::Protocol(_) | ReadError::NotUtf8)) => {
                close(outbox, ErrorCode::BadMessage, e.to_string());
                return None;
            }
            Err(ReadError::Io(_)) => return None,
        }
    }
}
