//! The first message: `hello` proves who the connection is, or the connection closes.

use super::*;

pub(super) fn fresh_token(state: &AppState, c: &Claims) -> ServerMsg {
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

pub(super) async fn hello(
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
    let crate::identity::access::Access {
        member,
        rooms,
        resume_only,
    } = crate::identity::access::member_for(
        state.durable.as_ref(),
        state.memo.as_ref(),
        &claims,
        participant.clone(),
        idp,
        resume.is_some(),
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
            resume_only,
        };
        state
            .live
            .submit_from(outbox, room, input)
            .await
            .map_err(|e| match e {
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
