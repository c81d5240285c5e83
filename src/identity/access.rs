//! Who may be where: turns verified claims into a room member and the rooms that
//! connection may act in. Patients and guests are bound to one room and visit by their
//! token; physicians reach exactly the rooms an admin assigned them.

use super::{Claims, Role};
use crate::durable::{DurableError, DurableStore};
use crate::ids::{ParticipantId, RoomId, StaffId};
use crate::protocol::ErrorCode;
use crate::visit::room::Member;
use std::time::Duration;

/// How long a resuming connection waits for the database to check its link before it is
/// let through as a resume only (see [`member_for`]).
const RESUME_LINK_WAIT: Duration = Duration::from_millis(500);

/// Why a verified token may not act. The messages are what the client is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("staff token has no session")]
    NoSession,
    #[error("session signed out or revoked (session_revoked)")]
    SessionEnded,
    #[error("bad subject")]
    BadSubject,
    #[error("this account is deactivated")]
    Deactivated,
    #[error("token has no role that may join")]
    NoJoinRole,
    #[error("token is not bound to a visit")]
    NotBoundToVisit,
    #[error("this link was revoked (link_revoked)")]
    LinkRevoked,
    /// The store that answers this question is down; names the service.
    #[error("{0} service unavailable")]
    Unavailable(&'static str),
}

impl AccessError {
    /// The protocol code a WebSocket client receives for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            AccessError::NoSession | AccessError::SessionEnded | AccessError::BadSubject => {
                ErrorCode::Unauthenticated
            }
            AccessError::Deactivated
            | AccessError::NoJoinRole
            | AccessError::NotBoundToVisit
            | AccessError::LinkRevoked => ErrorCode::Forbidden,
            AccessError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

/// What a verified token may do on this connection.
#[derive(Debug)]
pub struct Access {
    pub member: Member,
    /// The rooms the connection may act in.
    pub rooms: Vec<RoomId>,
    /// A check that needs the database could not be made: only a resume is allowed.
    pub resume_only: bool,
}

/// Check a staff token's session is still live (not signed out, not revoked).
pub async fn check_staff_session(
    durable: &dyn DurableStore,
    claims: &Claims,
) -> Result<(), AccessError> {
    let Some(sid) = &claims.sid else {
        return Err(AccessError::NoSession);
    };
    let now = chrono::Utc::now().timestamp_millis();
    match durable.session(&super::hash_secret(sid)).await {
        Ok(Some(s)) if !s.revoked && s.expires_at > now && s.staff.as_str() == claims.sub => Ok(()),
        Ok(_) => Err(AccessError::SessionEnded),
        Err(_) => Err(AccessError::Unavailable("sign-in")),
    }
}

/// The member a verified token stands for, and the rooms its connection may act in.
/// `idp`: the claims come from a verified identity-provider token (no examroom session).
///
/// `resuming`: the connection presents a resume token. When the database cannot say
/// whether a patient's or guest's link was revoked, such a connection is still let
/// through, marked [`Access::resume_only`]: the room takes it only as the resume of the
/// participant it holds with that very resume token, who passed this check when she
/// connected (a link cannot be revoked while the database is away). So a patient
/// resumes during a database outage; nobody new gets in.
pub async fn member_for(
    durable: &dyn DurableStore,
    claims: &Claims,
    participant: ParticipantId,
    idp: bool,
    resuming: bool,
) -> Result<Access, AccessError> {
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
            check_staff_session(durable, claims).await?;
        }
        let staff_id = StaffId::parse(&claims.sub).map_err(|_| AccessError::BadSubject)?;
        let staff = match durable.staff(&staff_id).await {
            Ok(Some(s)) if s.active => s,
            Ok(_) => return Err(AccessError::Deactivated),
            Err(_) => return Err(AccessError::Unavailable("account")),
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
            return Ok(Access {
                member: m,
                rooms: Vec::new(),
                resume_only: false,
            });
        }
        let rooms = durable
            .rooms_for_physician(&staff_id)
            .await
            .map_err(|_| AccessError::Unavailable("room"))?;
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
        return Ok(Access {
            member: m,
            rooms: rooms.into_iter().map(|r| r.id).collect(),
            resume_only: false,
        });
    }
    let role = if claims.has(Role::Guest) {
        Role::Guest
    } else if claims.has(Role::Patient) {
        Role::Patient
    } else {
        return Err(AccessError::NoJoinRole);
    };
    let (Some(room), Some(_)) = (&claims.room, &claims.visit) else {
        return Err(AccessError::NotBoundToVisit);
    };
    // The link may carry the reason for the visit; a revoked link stops working at once.
    let mut reason = None;
    let mut resume_only = false;
    if let Some(link_id) = claims
        .sid
        .as_deref()
        .and_then(|s| crate::ids::LinkId::parse(s).ok())
    {
        // A resuming page does not wait out a database that stopped answering (its pool
        // waits seconds for a connection): the room can tell a true resume without it.
        let looked_up = if resuming {
            tokio::time::timeout(RESUME_LINK_WAIT, durable.link(&link_id))
                .await
                .unwrap_or_else(|_| Err(DurableError::Unavailable("timed out".into())))
        } else {
            durable.link(&link_id).await
        };
        match looked_up {
            Ok(Some(l)) if l.revoked => {
                return Err(AccessError::LinkRevoked);
            }
            Ok(Some(l)) => reason = l.reason,
            Ok(None) => {}
            Err(_) if resuming => resume_only = true,
            Err(_) => return Err(AccessError::Unavailable("link")),
        }
    }
    Ok(Access {
        member: Member {
            role,
            reason,
            ..base
        },
        rooms: vec![room.clone()],
        resume_only,
    })
}
