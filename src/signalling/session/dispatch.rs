//! What each message after `hello` does: room inputs, relays, the connection check.

use super::*;
use crate::media::check::CheckError;

pub(super) enum Flow {
    Continue,
    Left,
}

pub(super) async fn dispatch(
    msg: ClientMsg,
    id: &Identity,
    state: &AppState,
    outbox: &Outbox,
    view: &View,
) -> Flow {
    let me = &id.participant;
    let own_room = || id.rooms.first().cloned();
    let active_room = || view.active.as_ref().map(|(r, _)| r.clone());
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
                let _ = state.live.submit_from(outbox, room, input).await;
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
                    .submit_from(
                        outbox,
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
        ClientMsg::MediaState { to, audio, video } => (
            active_room(),
            Act::Relay {
                to,
                msg: ServerMsg::MediaState {
                    from: me.clone(),
                    audio,
                    video,
                },
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
    // A relay in a call goes straight to its peer where the room opened that way.
    let act = match act {
        Act::Relay { to, msg } => match state.live.relay(outbox, &room, &to, Box::new(msg)) {
            Ok(()) => return Flow::Continue,
            Err(msg) => Act::Relay { to, msg: *msg },
        },
        other => other,
    };
    if let Err(e) = state
        .live
        .submit_from(
            outbox,
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

/// Start this connection's connection check: the server's own peer answers, and its
/// candidates trickle back over the outbox. One check per connection.
pub(super) async fn connection_check_offer(
    check: &mut Option<Box<CheckHandle>>,
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
            *check = Some(Box::new(handle));
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
