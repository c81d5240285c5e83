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

use crate::identity::{Claims, Role, TokenError};
use crate::ids::{ParticipantId, RoomId, VisitId};
use crate::live::{Outbox, Outgoing};
use crate::media::check::{CheckError, CheckHandle};
use crate::media::peer::LocalCandidate;
use crate::protocol::{self, Candidate, ClientMsg, ErrorCode, ServerMsg};
use crate::state::AppState;
use crate::state::admission::{Established, Pending};
use crate::visit::room::{Act, Input, Member};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

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

/// Close codes, by the error that ends the connection. Documented in docs/protocol.md.
pub fn close_code(msg: &ServerMsg) -> u16 {
    match msg {
        ServerMsg::GoingAway { .. } => 1001,
        ServerMsg::Error {
            code: ErrorCode::TooLarge,
            ..
        } => 1009,
        ServerMsg::Error {
            code: ErrorCode::AccessRevoked,
            ..
        } => 4403,
        ServerMsg::Error {
            code: ErrorCode::ServerFull | ErrorCode::Unavailable,
            ..
        } => 1013,
        _ => 1008,
    }
}

/// The close reason: the error code (or `going_away`), so a client that only sees the
/// close frame still knows why.
fn close_reason(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Error { code, .. } => code.as_str(),
        ServerMsg::GoingAway { .. } => "going_away",
        _ => "",
    }
}

/// `cookie`: the staff session token the upgrade request carried (Origin already
/// checked); a `hello` without a token uses it.
pub async fn run(socket: WebSocket, state: AppState, slot: Pending, cookie: Option<String>) {
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
    let (sink, mut stream) = socket.split();
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
            if matches!(m, Message::Close(_)) {
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
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
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
    let id = match hello(&text, state, outbox, slot, cookie).await {
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
                connection_check_offer(&mut check, sdp, &id, state, outbox).await;
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

/// Start this connection's connection check: the server's own peer answers, and its
/// candidates trickle back over the outbox. One check per connection.
async fn connection_check_offer(
    check: &mut Option<CheckHandle>,
    sdp: String,
    id: &Identity,
    state: &AppState,
    outbox: &Outbox,
) {
    if let Some(old) = check.take() {
        old.close().await;
    }
    match state.checks.start(id.participant.to_string(), sdp).await {
        Ok((mut handle, answer)) => {
            push(outbox, ServerMsg::CheckAnswer { sdp: answer });
            if let Some(mut candidates) = handle.take_local_candidates() {
                let out = outbox.clone();
                tokio::spawn(async move {
                    while let Some(c) = candidates.recv().await {
                        let candidate = match c {
                            LocalCandidate::Candidate(c) => c,
                            LocalCandidate::End => Candidate {
                                candidate: String::new(),
                                sdp_mid: None,
                                sdp_m_line_index: None,
                                username_fragment: None,
                            },
                        };
                        if !out.push(Outgoing::Msg(Box::new(ServerMsg::CheckCandidate {
                            candidate,
                        }))) {
                            break;
                        }
                    }
                });
            }
            *check = Some(handle);
        }
        Err(CheckError::TooManyChecks) => push(
            outbox,
            ServerMsg::error_about(
                ErrorCode::TooManyChecks,
                "too many connection checks are running; try again in a moment",
                "check_offer",
            ),
        ),
        Err(e) => push(
            outbox,
            ServerMsg::error_about(ErrorCode::BadMessage, e.to_string(), "check_offer"),
        ),
    }
}

/// The next text message, answering oversized and binary ones with an error.
/// `None` when the connection is closed.
async fn next_text(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbox: &Outbox,
    max: usize,
) -> Option<Utf8Bytes> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(t)) if t.len() >= max => {
                push(
                    outbox,
                    ServerMsg::error(
                        ErrorCode::TooLarge,
                        format!("message of {} bytes refused; the limit is {max}", t.len()),
                    ),
                );
            }
            Ok(Message::Text(t)) => return Some(t),
            Ok(Message::Binary(_)) => {
                push(
                    outbox,
                    ServerMsg::error(
                        ErrorCode::BadMessage,
                        "binary messages are not part of the protocol",
                    ),
                );
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Ok(Message::Close(_)) => return None,
            Err(e) => {
                // Over the hard limit the socket stops reading; say so before closing.
                let inner = e.into_inner();
                if let Some(tungstenite::Error::Capacity(c)) = inner.downcast_ref() {
                    close(outbox, ErrorCode::TooLarge, format!("message refused: {c}"));
                }
                return None;
            }
        }
    }
}

fn fresh_token(state: &AppState, c: &Claims) -> ServerMsg {
    let ttl = state.settings.identity.patient_token_secs;
    let now = chrono::Utc::now().timestamp();
    let token = state.keys.issue(
        crate::identity::token::NewToken {
            sub: c.sub.clone(),
            name: c.name.clone(),
            roles: c.roles.clone(),
            room: c.room.clone(),
            visit: c.visit.clone(),
            patient: c.patient.clone(),
            sid: c.sid.clone(),
            lang: c.lang.clone(),
            ttl_secs: ttl,
        },
        now,
    );
    ServerMsg::Token {
        token,
        expires_at: (now + ttl as i64) * 1000,
    }
}

type Refusal = (ErrorCode, String);

/// What a client whose identity-provider token was refused at `hello` is told.
fn idp_refusal(e: &crate::identity::oidc::IdpSignInError) -> String {
    use crate::identity::oidc::{IdpSignInError, OidcError};
    match e {
        IdpSignInError::Token(OidcError::Unavailable(_)) | IdpSignInError::Store(_) => {
            "a service examroom needs is unavailable; try again shortly (unavailable)".to_owned()
        }
        e => format!("{e} ({})", e.code()),
    }
}

async fn hello(
    text: &str,
    state: &AppState,
    outbox: &Outbox,
    slot: Pending,
    cookie: Option<String>,
) -> Result<Identity, Refusal> {
    let msg = protocol::parse_client(text).map_err(|(code, m, _)| (code, m))?;
    let ClientMsg::Hello { v, token, resume } = msg else {
        return Err((
            ErrorCode::HelloRequired,
            "the first message must be hello".into(),
        ));
    };
    if v != protocol::VERSION {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {v} is not supported; this server speaks {}",
                protocol::VERSION
            ),
        ));
    }
    // A staff page says hello without a token: its session cookie came with the upgrade.
    let token = match (token.is_empty(), cookie) {
        (false, _) => token,
        (true, Some(c)) => c,
        (true, None) => {
            return Err((
                ErrorCode::Unauthenticated,
                "hello has no token and no session cookie came with the connection".into(),
            ));
        }
    };
    // Staff signed in at the clinic's identity provider present its token here too.
    let guards = &state.guards;
    let idp = guards.jwks.is_some() && crate::identity::oidc::Jwks::claims_token(&token);
    let claims = if let (true, Some(jwks)) = (idp, &guards.jwks) {
        crate::identity::oidc::sign_in(
            state.durable.as_ref(),
            jwks,
            &state.settings.identity,
            &token,
        )
        .await
        .map_err(|e| (ErrorCode::Unauthenticated, idp_refusal(&e)))?
        .0
    } else {
        state.keys.verify(&token).map_err(|e| {
            let code = if e == TokenError::Expired {
                ErrorCode::TokenExpired
            } else {
                ErrorCode::Unauthenticated
            };
            (code, format!("{e} ({})", e.code()))
        })?
    };
    let participant = claims.participant().ok_or((
        ErrorCode::Unauthenticated,
        "token subject is not a participant".to_owned(),
    ))?;
    let (member, rooms) = crate::identity::access::member_for(
        state.durable.as_ref(),
        &claims,
        participant.clone(),
        idp,
    )
    .await
    .map_err(|e| (e.code(), e.to_string()))?;
    // Staff and guests (guests join admitted visits only) may use the reserved share.
    let reserved = !matches!(member.role, Role::Patient);
    let slot = state
        .admission
        .establish(slot, reserved)
        .map_err(|e| (ErrorCode::ServerFull, e.to_string()))?;

    let resume_token = crate::ids::random_id();
    if let Some(old) = state.live.attach(&participant, outbox.clone()) {
        // The same participant connected again (reload, new network): the newer wins.
        old.push(Outgoing::Close(Box::new(ServerMsg::error(
            ErrorCode::Superseded,
            "you connected again elsewhere; this connection is closed",
        ))));
    }
    let (ice_servers, _) = state.ice_servers(&participant);
    push(
        outbox,
        ServerMsg::Welcome {
            v: protocol::VERSION,
            participant: participant.clone(),
            role: member.role.as_str().into(),
            name: member.name.clone(),
            resume_token: resume_token.clone(),
            heartbeat_secs: state.settings.signalling.heartbeat_interval_secs,
            ice_servers,
            rooms: rooms.clone(),
        },
    );
    if matches!(member.role, Role::Patient | Role::Guest) {
        push(outbox, fresh_token(state, &claims));
    }
    for room in &rooms {
        let input = Input::Connect {
            member: member.clone(),
            resume: resume.clone(),
            new_resume_token: resume_token.clone(),
        };
        state.live.submit(room, input).await.map_err(|e| match e {
            crate::live::LiveError::RoomNotFound => (
                ErrorCode::RoomNotFound,
                "this room does not exist".to_owned(),
            ),
            crate::live::LiveError::Unavailable(_) => (
                ErrorCode::Unavailable,
                "visits are unavailable right now; try again shortly".to_owned(),
            ),
        })?;
    }
    Ok(Identity {
        participant,
        member,
        rooms,
        claims,
        _slot: slot,
    })
}

enum Flow {
    Continue,
    Left,
}

async fn dispatch(
    msg: ClientMsg,
    id: &Identity,
    state: &AppState,
    outbox: &Outbox,
    view: &Arc<Mutex<View>>,
) -> Flow {
    let me = &id.participant;
    let own_room = || id.rooms.first().cloned();
    let active_room = || {
        view.lock()
            .expect("poisoned")
            .active
            .as_ref()
            .map(|(r, _)| r.clone())
    };
    let about = msg.type_name();
    let (room, act): (Option<RoomId>, Act) = match msg {
        ClientMsg::Ping {} => {
            push(outbox, ServerMsg::Pong {});
            return Flow::Continue;
        }
        ClientMsg::Pong {} => return Flow::Continue,
        ClientMsg::Hello { .. } => {
            push(
                outbox,
                ServerMsg::error_about(ErrorCode::BadMessage, "hello was already received", about),
            );
            return Flow::Continue;
        }
        ClientMsg::Profile { name, reason } => (own_room(), Act::Profile { name, reason }),
        ClientMsg::DeviceCheck { ok, summary } => (own_room(), Act::DeviceCheck { ok, summary }),
        ClientMsg::Availability { available } => {
            for room in &id.rooms {
                let input = Input::Act {
                    who: me.clone(),
                    act: Act::Availability { available },
                };
                let _ = state.live.submit(room, input).await;
            }
            if id.rooms.is_empty() {
                push(
                    outbox,
                    ServerMsg::error_about(ErrorCode::Forbidden, "you have no rooms", about),
                );
            }
            return Flow::Continue;
        }
        ClientMsg::Admit { room, visit } => (Some(room), Act::Admit { visit }),
        ClientMsg::Deny {
            room,
            visit,
            reason,
        } => (Some(room), Act::Deny { visit, reason }),
        ClientMsg::SendBack { room, visit } => (Some(room), Act::SendBack { visit }),
        ClientMsg::MessagePatient { room, visit, text } => {
            (Some(room), Act::MessagePatient { visit, text })
        }
        ClientMsg::WalkInAccept { room, visit } => (Some(room), Act::WalkInAccept { visit }),
        ClientMsg::WalkInPass { room, visit } => (Some(room), Act::WalkInPass { visit }),
        ClientMsg::EndVisit { room, visit } => (Some(room), Act::EndVisit { visit }),
        ClientMsg::Leave {} => {
            let rooms: Vec<RoomId> = if id.member.role == Role::Physician {
                active_room().into_iter().collect()
            } else {
                id.rooms.clone()
            };
            if rooms.is_empty() {
                push(
                    outbox,
                    ServerMsg::error_about(ErrorCode::NotInVisit, "you are not in a visit", about),
                );
                return Flow::Continue;
            }
            for room in rooms {
                let _ = state
                    .live
                    .submit(
                        &room,
                        Input::Act {
                            who: me.clone(),
                            act: Act::Leave,
                        },
                    )
                    .await;
            }
            return if id.member.role == Role::Physician {
                Flow::Continue
            } else {
                Flow::Left
            };
        }
        ClientMsg::Offer { to, sdp } => (
            active_room(),
            Act::Relay {
                to,
                msg: ServerMsg::Offer {
                    from: me.clone(),
                    sdp,
                },
            },
        ),
        ClientMsg::Answer { to, sdp } => (
            active_room(),
            Act::Relay {
                to,
                msg: ServerMsg::Answer {
                    from: me.clone(),
                    sdp,
                },
            },
        ),
        ClientMsg::Candidate { to, candidate } => (
            active_room(),
            Act::Relay {
                to,
                msg: ServerMsg::Candidate {
                    from: me.clone(),
                    candidate,
                },
            },
        ),
        ClientMsg::EndOfCandidates { to } => (
            active_room(),
            Act::Relay {
                to,
                msg: ServerMsg::EndOfCandidates { from: me.clone() },
            },
        ),
        ClientMsg::Chat { text } => (active_room(), Act::Chat { text }),
        ClientMsg::CheckOffer { .. } | ClientMsg::CheckCandidate { .. } => return Flow::Continue,
    };
    let Some(room) = room else {
        push(
            outbox,
            ServerMsg::error_about(
                ErrorCode::NotInVisit,
                "you are not in an admitted visit",
                about,
            ),
        );
        return Flow::Continue;
    };
    if !id.rooms.contains(&room) {
        push(
            outbox,
            ServerMsg::error_about(ErrorCode::NotYourRoom, "you are not in that room", about),
        );
        return Flow::Continue;
    }
    if let Err(e) = state
        .live
        .submit(
            &room,
            Input::Act {
                who: me.clone(),
                act,
            },
        )
        .await
    {
        tracing::warn!(room = %room, error = %e, "could not hand a message to its room");
        push(
            outbox,
            ServerMsg::error_about(
                ErrorCode::Unavailable,
                "the room is unavailable right now",
                about,
            ),
        );
    }
    Flow::Continue
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    kill: CancellationToken,
    view: Arc<Mutex<View>>,
    state: AppState,
    done: CancellationToken,
) {
    let every = Duration::from_secs(state.settings.signalling.heartbeat_interval_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let send = |msg: &ServerMsg| {
        Message::Text(
            serde_json::to_string(msg)
                .expect("server messages serialise")
                .into(),
        )
    };
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => {
                state.metrics.error(ErrorCode::SlowConsumer);
                let msg = ServerMsg::error(ErrorCode::SlowConsumer, "you fell too far behind; reconnect");
                done.cancel();
                send_close(&mut sink, &msg, &send).await;
                break;
            }
            out = rx.recv() => match out {
                Some(Outgoing::Msg(msg)) => {
                    observe(&view, &msg);
                    state.metrics.sent(&msg);
                    if sink.send(send(&msg)).await.is_err() { break; }
                }
                Some(Outgoing::Close(msg)) => {
                    state.metrics.sent(&msg);
                    // The reader stops acting on messages now, not once the close is out.
                    done.cancel();
                    send_close(&mut sink, &msg, &send).await;
                    break;
                }
                None => {
                    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(None))).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if sink.send(send(&ServerMsg::Ping {})).await.is_err() { break; }
            }
        }
    }
    done.cancel();
}

/// Longest the last words to a closing client may take: one that does not read (a flood)
/// must not keep its session, and its slot, alive.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Send `msg`, then the close frame its code calls for, each bounded by [`CLOSE_WAIT`].
async fn send_close(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    msg: &ServerMsg,
    send: &impl Fn(&ServerMsg) -> Message,
) {
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(send(msg))).await;
    let frame = CloseFrame {
        code: close_code(msg),
        reason: close_reason(msg).into(),
    };
    let code = frame.code;
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
    if code == 1009 {
        // The rest of the oversized frame cannot be read, and a socket closed with unread
        // data is reset, which loses this close frame on its way: hold the socket (this
        // half keeps it open) while the client reads it.
        tokio::time::sleep(CLOSE_WAIT).await;
    }
}

fn observe(view: &Arc<Mutex<View>>, msg: &ServerMsg) {
    let mut v = view.lock().expect("poisoned");
    match msg {
        ServerMsg::Admitted { room, visit, .. } => v.active = Some((room.clone(), visit.clone())),
        ServerMsg::VisitEnded { visit, .. }
        | ServerMsg::SentBack { visit, .. }
        | ServerMsg::Denied { visit, .. }
            if v.active.as_ref().is_some_and(|(_, a)| a == visit) =>
        {
            v.active = None;
        }
        _ => {}
    }
}
