//! Who may be where: turns verified claims into a room member and the rooms that
//! connection may act in. Patients and guests are bound to one room and visit by their
//! token; physicians reach exactly the rooms an admin assigned them.

use super::{Claims, Role};
use crate::app::AppState;
use crate::ids::{ParticipantId, RoomId, StaffId};
use crate::protocol::ErrorCode;
use crate::visit::room::Member;

pub type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, m: &str) -> Result<T, Refusal> {
    Err((code, m.to_owned()))
}

/// Check a staff token's session is still live (not signed out, not revoked).
pub async fn check_staff_session(state: &AppState, claims: &Claims) -> Result<(), Refusal> {
    let Some(sid) = &claims.sid else {
        return refuse(ErrorCode::Unauthenticated, "staff token has no session");
    };
    let now = chrono::Utc::now().timestamp_millis();
    match state.durable.session(&super::hash_secret(sid)).await {
        Ok(Some(s)) if !s.revoked && s.expires_at > now && s.staff.as_str() == claims.sub => Ok(()),
        Ok(_) => refuse(
            ErrorCode::Unauthenticated,
            "session signed out or revoked (session_revoked)",
        ),
        Err(_) => refuse(ErrorCode::Unavailable, "sign-in service unavailable"),
    }
}

/// The member a verified token stands for, and the rooms its connection may act in.
/// `idp`: the claims come from a verified identity-provider token (no examroom session).
pub async fn member_for(
    state: &AppState,
    claims: &Claims,
    participant: ParticipantId,
    idp: bool,
) -> Result<(Member, Vec<RoomId>), Refusal> {
    let base = Member {
        id: participant,
        role: Role::Patient,
        name: claims.name.clone(),
        staff: None,
        visit: claims.visit.clone(),
        patient_ref: claims.patient.clone(),
        reason: None,
        lang: claims.lang.clone(),
        prefers_gender: None,
        languages: Vec::new(),
        gender: None,
    };
    if claims.is_staff() {
        if !idp {
            check_staff_session(state, claims).await?;
        }
        let staff_id = StaffId::parse(&claims.sub)
            .map_err(|_| (ErrorCode::Unauthenticated, "bad subject".to_owned()))?;
        let staff = match state.durable.staff(&staff_id).await {
            Ok(Some(s)) if s.active => s,
            Ok(_) => return refuse(ErrorCode::Forbidden, "this account is deactivated"),
            Err(_) => return refuse(ErrorCode::Unavailable, "account service unavailable"),
        };
        if !staff.has_role(Role::Physician) {
            // Admin-only accounts have no rooms to be present in.
            let m = Member {
                role: Role::Admin,
                staff: Some(staff_id),
                visit: None,
                patient_ref: None,
                ..base
            };
            return Ok((m, Vec::new()));
        }
        let rooms = state
            .durable
            .rooms_for_physician(&staff_id)
            .await
            .map_err(|_| {
                (
                    ErrorCode::Unavailable,
                    "room service unavailable".to_owned(),
                )
            })?;
        let m = Member {
            role: Role::Physician,
            name: staff.name.clone(),
            staff: Some(staff_id),
            visit: None,
            patient_ref: None,
            languages: staff.languages.clone(),
            gender: staff.gender.clone(),
            ..base
        };
        return Ok((m, rooms.into_iter().map(|r| r.id).collect()));
    }
    let role = if claims.has(Role::Guest) {
        Role::Guest
    } else if claims.has(Role::Patient) {
        Role::Patient
    } else {
        return refuse(ErrorCode::Forbidden, "token has no role that may join");
    };
    let (Some(room), Some(_)) = (&claims.room, &claims.visit) else {
        return refuse(ErrorCode::Forbidden, "token is not bound to a visit");
    };
    // The link may carry the reason for the visit; a revoked link stops working at once.
    let mut reason = None;
    if let Some(link_id) = claims
        .sid
        .as_deref()
        .and_then(|s| crate::ids::LinkId::parse(s).ok())
    {
        match state.durable.link(&link_id).await {
            Ok(Some(l)) if l.revoked => {
                return refuse(ErrorCode::Forbidden, "this link was revoked (link_revoked)");
            }
            Ok(Some(l)) => reason = l.reason,
            Ok(None) => {}
            Err(_) => return refuse(ErrorCode::Unavailable, "link service unavailable"),
        }
    }
    Ok((
        Member {
            role,
            reason,
            ..base
        },
        vec![room.clone()],
    ))
}
