//! Who may be where: turns verified claims into a room member and the rooms that
//! connection may act in. Patients and guests are bound to one room and visit by their
//! token; physicians reach exactly the rooms an admin assigned them.
//!
//! While the database is away a connection that resumes is still checked, from notes
//! every node reads alike (`live::Memo`): a physician's session as this or another node
//! last checked it (a [`StaffCard`]), and the links revoked lately. Signing out, an
//! admin's change to the account, and revoking a link each update those notes at once,
//! so they win over anything noted before.

use super::{Claims, Role};
use crate::durable::{DurableError, DurableStore};
use crate::ids::{LinkId, ParticipantId, RoomId, StaffId};
use crate::live::Memo;
use crate::protocol::ErrorCode;
use crate::visit::room::Member;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a resuming connection waits for the database to check its link or session
/// before it is let through as a resume only (see [`member_for`]).
const RESUME_LINK_WAIT: Duration = Duration::from_millis(500);

/// How long a physician's checked session is noted for a resume without the database:
/// at most this, never past the session's expiry; each `hello` that reaches the database
/// notes it again.
const CARD_TTL: Duration = Duration::from_secs(12 * 3600);

/// What a node notes of a physician's session it checked against the database: enough to
/// make the same [`Access`] again without it. Keyed by the session's id (a hash of its
/// secret, as the database keys it), never by the token; staff data only, no patient's.
/// Several nodes read it: an explicit format with a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StaffCard {
    v: u32,
    staff: String,
    name: String,
    languages: Vec<String>,
    gender: Option<String>,
    rooms: Vec<RoomId>,
    /// When the session expires and when it was checked (unix ms).
    expires_at: i64,
    checked_at: i64,
}

const CARD_VERSION: u32 = 1;

fn card_key(session_hash: &str) -> String {
    format!("staff-session:{session_hash}")
}

fn staff_changed_key(staff: &str) -> String {
    format!("staff-changed:{staff}")
}

fn link_revoked_key(link: &LinkId) -> String {
    format!("link-revoked:{link}")
}

/// The session `session_hash` ended (signed out): its note goes, so it cannot be used to
/// resume during a later database outage.
pub async fn session_ended(memo: &dyn Memo, session_hash: &str) {
    if let Err(e) = memo.delete(&card_key(session_hash)).await {
        tracing::warn!(error = %e, "a signed-out session's note could not be removed; it lapses with the session");
    }
}

/// An admin changed `staff`'s account (deactivated, roles, rooms, password reset): no
/// session noted before now lets them resume without the database.
pub async fn staff_changed(memo: &dyn Memo, staff: &StaffId) {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    if let Err(e) = memo
        .put(&staff_changed_key(staff.as_str()), &now, CARD_TTL)
        .await
    {
        tracing::warn!(staff = %staff, error = %e, "could not note a staff account change for resumes during a database outage");
    }
}

/// `link` was revoked: a patient resuming with it while the database is away is refused
/// too. Noted for `ttl`, the life of a token the link may have given out.
pub async fn link_revoked(memo: &dyn Memo, link: &LinkId, ttl: Duration) {
    if let Err(e) = memo.put(&link_revoked_key(link), "1", ttl).await {
        tracing::warn!(link = %link, error = %e, "could not note a revoked link for resumes during a database outage");
    }
}

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
    staff_session(durable, claims).await.map(|_| ())
}

/// The live session's expiry (unix ms).
async fn staff_session(durable: &dyn DurableStore, claims: &Claims) -> Result<i64, AccessError> {
    let Some(sid) = &claims.sid else {
        return Err(AccessError::NoSession);
    };
    let now = chrono::Utc::now().timestamp_millis();
    match durable.session(&super::hash_secret(sid)).await {
        Ok(Some(s)) if !s.revoked && s.expires_at > now && s.staff.as_str() == claims.sub => {
            Ok(s.expires_at)
        }
        Ok(_) => Err(AccessError::SessionEnded),
        Err(_) => Err(AccessError::Unavailable("sign-in")),
    }
}

/// A staff member's access, read from the database; for a physician signed in with an
/// examroom session, also the card to note.
async fn staff_access(
    durable: &dyn DurableStore,
    claims: &Claims,
    base: Member,
    idp: bool,
) -> Result<(Access, Option<StaffCard>), AccessError> {
    let expires_at = if idp {
        None
    } else {
        Some(staff_session(durable, claims).await?)
    };
    let staff_id = StaffId::parse(&claims.sub).map_err(|_| AccessError::BadSubject)?;
    let staff = match durable.staff(&staff_id).await {
        Ok(Some(s)) if s.active => s,
        Ok(_) => return Err(AccessError::Deactivated),
        Err(_) => return Err(AccessError::Unavailable("account")),
    };
    if !staff.has_role(Role::Physician) {
        // Admin-only accounts have no rooms to be present in (nor to resume into).
        let m = Member {
            role: Role::Admin,
            staff: Some(staff_id),
            visit: None,
            patient_ref: None,
            ..base
        };
        let access = Access {
            member: m,
            rooms: Vec::new(),
            resume_only: false,
        };
        return Ok((access, None));
    }
    let rooms: Vec<RoomId> = durable
        .rooms_for_physician(&staff_id)
        .await
        .map_err(|_| AccessError::Unavailable("room"))?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let card = expires_at.map(|expires_at| StaffCard {
        v: CARD_VERSION,
        staff: staff_id.to_string(),
        name: staff.name.clone(),
        languages: staff.languages.clone(),
        gender: staff.gender.clone(),
        rooms: rooms.clone(),
        expires_at,
        checked_at: chrono::Utc::now().timestamp_millis(),
    });
    let access = Access {
        member: physician(
            base,
            &staff_id,
            &staff.name,
            &staff.languages,
            &staff.gender,
        ),
        rooms,
        resume_only: false,
    };
    Ok((access, card))
}

fn physician(
    base: Member,
    staff: &StaffId,
    name: &str,
    languages: &[String],
    gender: &Option<String>,
) -> Member {
    Member {
        role: Role::Physician,
        name: name.to_owned(),
        staff: Some(staff.clone()),
        visit: None,
        patient_ref: None,
        languages: languages.to_vec(),
        gender: gender.clone(),
        ..base
    }
}

/// The card noted for this token's session, if it still counts: the same staff member,
/// the session not expired, and no change to the account since it was checked.
async fn noted_card(memo: &dyn Memo, claims: &Claims) -> Option<StaffCard> {
    let sid = claims.sid.as_deref()?;
    let text = memo.get(&card_key(&super::hash_secret(sid))).await.ok()??;
    let card: StaffCard = serde_json::from_str(&text).ok()?;
    let now = chrono::Utc::now().timestamp_millis();
    if card.v != CARD_VERSION || card.staff != claims.sub || card.expires_at <= now {
        return None;
    }
    // A change noted at or after the check wins; so does not being able to tell.
    let changed = memo.get(&staff_changed_key(&card.staff)).await.ok()?;
    match changed.map(|t| t.parse::<i64>()) {
        None => Some(card),
        Some(Ok(at)) if at < card.checked_at => Some(card),
        Some(_) => None,
    }
}

/// The member a verified token stands for, and the rooms its connection may act in.
/// `idp`: the claims come from a verified identity-provider token (no examroom session).
///
/// `resuming`: the connection presents a resume token. When the database cannot say
/// whether a patient's or guest's link was revoked, such a connection is still let
/// through, marked [`Access::resume_only`]: the room takes it only as the resume of the
/// participant it holds with that very resume token, who passed this check when she
/// connected (a link cannot be revoked while the database is away, and one revoked before
/// is noted in `memo`). So a patient resumes during a database outage; nobody new gets in.
/// A physician resumes the same way on the note of his session (see the module's doc).
pub async fn member_for(
    durable: &dyn DurableStore,
    memo: &dyn Memo,
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
        // A resuming page does not wait out a database that stopped answering.
        let read = staff_access(durable, claims, base.clone(), idp);
        let read = if resuming {
            tokio::time::timeout(RESUME_LINK_WAIT, read)
                .await
                .unwrap_or(Err(AccessError::Unavailable("sign-in")))
        } else {
            read.await
        };
        return match read {
            Ok((access, card)) => {
                if let (Some(card), Some(sid)) = (card, &claims.sid) {
                    note_card(memo, &super::hash_secret(sid), &card).await;
                }
                Ok(access)
            }
            // The database cannot say; the note of the session checked lately can, and
            // the room takes it only as the resume of the participant it holds.
            Err(AccessError::Unavailable(what)) if resuming && !idp => {
                let card = noted_card(memo, claims)
                    .await
                    .ok_or(AccessError::Unavailable(what))?;
                let id = StaffId::parse(&card.staff).map_err(|_| AccessError::BadSubject)?;
                Ok(Access {
                    member: physician(base, &id, &card.name, &card.languages, &card.gender),
                    rooms: card.rooms,
                    resume_only: true,
                })
            }
            Err(e) => Err(e),
        };
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
    if let Some(link_id) = claims.sid.as_deref().and_then(|s| LinkId::parse(s).ok()) {
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
            Ok(Some(l)) => reason = l.new.reason,
            Ok(None) => {}
            // Revoked before the outage: the note says so (a link cannot be revoked during
            // it). A note that cannot be read leaves the room's resume check alone.
            Err(_)
                if resuming
                    && matches!(memo.get(&link_revoked_key(&link_id)).await, Ok(Some(_))) =>
            {
                return Err(AccessError::LinkRevoked);
            }
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

/// Note `card` for a resume without the database; the note lapses with the session.
async fn note_card(memo: &dyn Memo, session_hash: &str, card: &StaffCard) {
    let now = chrono::Utc::now().timestamp_millis();
    let left = Duration::from_millis(card.expires_at.saturating_sub(now).max(0) as u64);
    let Ok(text) = serde_json::to_string(card) else {
        return;
    };
    if let Err(e) = memo
        .put(&card_key(session_hash), &text, left.min(CARD_TTL))
        .await
    {
        // Only a resume during a database outage needs it; this hello goes ahead.
        tracing::debug!(error = %e, "a checked staff session could not be noted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The card is read by other nodes, possibly of another build: its format is fixed.
    #[test]
    fn a_staff_card_reads_back_in_its_version_1_format() {
        let text = r#"{"v":1,"staff":"s_1","name":"Dr Grey","languages":["en"],"gender":null,"rooms":["r_1"],"expires_at":2,"checked_at":1}"#;
        let card: StaffCard = serde_json::from_str(text).expect("version 1 loads");
        assert_eq!(card.rooms.len(), 1);
        assert_eq!(serde_json::to_string(&card).unwrap(), text);
    }
}
