//! One WebSocket connection: a reader and a writer task around a bounded outbox.
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
//! - When either half ends, both end, and cleanup runs in one place.
//!
//! Tokens are never logged.
//!
//! The parts: [`hello`] (who the connection is), [`dispatch`] (what each message does),
//! [`writer`] (the writer half and close codes); the reader half is here.

use super::socket::{self, Incoming, ReadError};
use crate::identity::{Claims, Role, TokenError};
use crate::ids::{ParticipantId, RoomId, VisitId};
use crate::live::{Outbox, Outgoing};
use crate::media::check::CheckHandle;
use crate::media::peer::LocalCandidate;
use crate::protocol::{self, Candidate, ClientMsg, ErrorCode, ServerMsg};
use crate::state::AppState;
use crate::state::admission::{Established, Pending};
use crate::visit::room::{Act, Input, Member};
use hyper::upgrade::Upgraded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod dispatch;
mod hello;
mod writer;

use dispatch::{Flow, connection_check_offer, dispatch};
use hello::{fresh_token, hello};
pub use writer::close_code;
use writer::{CLOSE_WAIT, write_loop};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

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

/// Serve one WebSocket until either half ends.
/// `cookie`: the staff session token the upgrade request carried (Origin already
/// checked); a `hello` without a token uses it.
pub async fn run(io: Upgraded, state: AppState, slot: Pending, cookie: Option<String>) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    state.metrics.connections.inc();
    let cfg = &state.settings.signalling;
    let (tx, rx) = mpsc::channel(cfg.outbox_capacity);
    let outbox = Outbox {
        conn,
        tx,
        kill: CancellationToken::new(),
    };
    let view = Arc::new(Mutex::new(View::default()));
    let (mut stream, sink) = socket::split(io, cfg.read_buffer_bytes, socket::HARD_MESSAGE_LIMIT);
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        outbox.kill.clone(),
        view.clone(),
        state.clone(),
        writer_done.clone(),
    ));

    let identity = read_loop(
        &mut stream,
        &state,
        &outbox,
        &view,
        &writer_done,
        slot,
        cookie,
    )
    .await;

    // Cleanup, in one place: forget the outbox, tell the rooms, stop the writer.
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
    drop(outbox);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    // The closing handshake: read (and drop) what the client still sends until it answers
    // our close. Closing the socket with unread data in it would reset the connection,
    // and the client would lose the close frame that says why.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Incoming::Close(_)) {
                break;
            }
        }
    })
    .await;
    state.metrics.connections.dec();
}

fn push(outbox: &Outbox, msg: ServerMsg) {
    outbox.push(Outgoing::Msg(Box::new(msg)));
}

fn close(outbox: &Outbox, code: ErrorCode, message: impl Into<String>) {
    outbox.push(Outgoing::Close(Box::new(ServerMsg::error(code, message))));
}

/// Reads until the connection ends. Returns who it was (if the hello succeeded) and
/// whether they left on purpose.
async fn read_loop(
    stream: &mut Stream,
    state: &AppState,
    outbox: &Outbox,
    view: &Arc<Mutex<View>>,
    writer_done: &CancellationToken,
    slot: Pending,
    cookie: Option<String>,
) -> Option<(Identity, bool)> {
    let cfg = &state.settings.signalling;
    let max = cfg.max_message_bytes;
    let hello_timeout = Duration::from_secs(cfg.hello_timeout_secs);
    let silence = Duration::from_secs(cfg.heartbeat_timeout_secs);

    // ---- hello ----
    let first = tokio::select! {
        r = tokio::time::timeout(hello_timeout, next_text(stream, outbox, max)) => r,
        _ = writer_done.cancelled() => return None,
    };
    let text = match first {
        Err(_) => {
            close(
                outbox,
                ErrorCode::HelloTimeout,
                "no hello within the time allowed",
            );
            return None;
        }
        Ok(None) => return None,
        Ok(Some(t)) => t,
    };
    // Boxed, like the connection check below: a future is as large as its largest await,
    // and every connection would otherwise carry these once-only ones for its lifetime.
    let id = match Box::pin(hello(&text, state, outbox, slot, cookie)).await {
        Ok(id) => id,
        Err((code, message)) => {
            close(outbox, code, message);
            return None;
        }
    };
    tracing::debug!(participant = %id.participant, role = id.member.role.as_str(), "connected");

    // ---- messages ----
    let mut throttle = super::throttle::Throttle::new(cfg.rate_per_sec, cfg.rate_burst);
    let refresh_every =
        Duration::from_secs((state.settings.identity.patient_token_secs / 2).max(30));
    let mut refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + refresh_every, refresh_every);
    let needs_refresh = matches!(id.member.role, Role::Patient | Role::Guest);
    // TURN credentials are re-minted well before they expire.
    let ice_every = Duration::from_secs((state.settings.ice.turn_credential_secs * 4 / 5).max(30));
    let mut ice_refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + ice_every, ice_every);
    let has_turn = state.ice.has_turn();
    let mut check: Option<CheckHandle> = None;
    let mut left = false;
    // Messages dropped in a row for the rate: the first gets `rate_limited`, and a client
    // that goes on past a whole burst is flooding and is closed.
    let mut dropped: u32 = 0;
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(silence, next_text(stream, outbox, max)) => r,
            _ = refresh.tick(), if needs_refresh => {
                push(outbox, fresh_token(state, &id.claims));
                continue;
            }
            _ = ice_refresh.tick(), if has_turn => {
                let (ice_servers, _) = state.ice_servers(&id.participant);
                push(outbox, ServerMsg::IceServers { ice_servers });
                continue;
            }
            _ = state.shutdown.cancelled() => {
                outbox.push(Outgoing::Close(Box::new(ServerMsg::GoingAway {
                    reason: "server restarting".into(),
                    reconnect_after_ms: 1000,
                })));
                break;
            }
            _ = writer_done.cancelled() => break,
        };
        let text = match next {
            Err(_) => {
                close(
                    outbox,
                    ErrorCode::HeartbeatTimeout,
                    "no message within the heartbeat timeout",
                );
                break;
            }
            Ok(None) => break,
            Ok(Some(t)) => t,
        };
        // A close is on its way (access revoked, superseded): nothing more is acted on.
        if writer_done.is_cancelled() {
            break;
        }
        if !throttle.allow(Instant::now()) {
            dropped += 1;
            if dropped == 1 {
                push(
                    outbox,
                    ServerMsg::error(
                        ErrorCode::RateLimited,
                        "too many messages; this one was dropped",
                    ),
                );
            } else if dropped > cfg.rate_burst.max(1) {
                close(
                    outbox,
                    ErrorCode::RateLimited,
                    "too many messages; the connection is closed",
                );
                break;
            }
            continue;
        }
        dropped = 0;
        let msg = match protocol::parse_client(&text) {
            Ok(m) => m,
            Err((code, message, about)) => {
                push(
                    outbox,
                    ServerMsg::Error {
                        code,
                        message,
                        about,
                    },
                );
                continue;
            }
        };
        let msg = match msg {
            ClientMsg::CheckOffer { sdp } => {
                Box::pin(connection_check_offer(&mut check, sdp, &id, state, outbox)).await;
                continue;
            }
            ClientMsg::CheckCandidate { candidate } => {
                match &check {
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
                }
                continue;
            }
            other => other,
        };
        match dispatch(msg, &id, state, outbox, view).await {
            Flow::Continue => {}
            Flow::Left => {
                left = true;
                break;
            }
        }
    }
    if let Some(h) = check {
        h.close().await;
    }
    Some((id, left))
}

type Stream = socket::Reader<tokio::io::ReadHalf<socket::Io>>;

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
