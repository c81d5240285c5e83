//! Making and revoking join links: who may, and what a link may carry.
//!
//! - A patient link is made by a physician of the room or an admin; a guest link
//!   (interpreter, family) by a physician of the room, for a visit of that room, when the
//!   room allows guests.
//! - A patient link may name a record (`patient_ref`) only from a trusted source: an admin,
//!   or a physician when the operator lets physicians name records (links made from the
//!   EHR's launch context). A hand-typed record id is how any physician could open any chart.
//! - Only the code's hash is stored; the code itself is returned once, to the maker.

use super::new_code;
use crate::durable::{DurableError, DurableStore, Link, LinkKind, NewLink};
use crate::identity::{Claims, Role, hash_secret};
use crate::ids::{LinkId, PatientRef, RoomId, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::visit::{Millis, RoomConfig};

/// Longest a guest link lives, seconds: guests join one visit, today.
pub const GUEST_LINK_SECS: i64 = 24 * 3600;

/// The operator's settings that minting follows.
#[derive(Debug, Clone, Copy)]
pub struct MintRules {
    /// Lifetime of a link when the maker gives none, seconds (`identity.join_link_secs`).
    pub link_secs: u64,
    /// `links.physicians_may_name_patient`.
    pub physicians_may_name_patient: bool,
}

/// The signed-in staff member making or revoking a link.
#[derive(Debug, Clone, Copy)]
pub struct Maker<'a> {
    pub staff: &'a StaffId,
    pub claims: &'a Claims,
}

impl Maker<'_> {
    fn is_admin(&self) -> bool {
        self.claims.has(Role::Admin)
    }
    fn is_physician_of(&self, room: &RoomConfig) -> bool {
        self.claims.has(Role::Physician) && room.physicians.contains(self.staff)
    }
}

/// A patient link as asked for; free text is trimmed, empty text is none.
#[derive(Debug, Clone, Default)]
pub struct PatientLinkRequest {
    pub room: RoomId,
    pub patient_name: Option<String>,
    pub patient_ref: Option<PatientRef>,
    pub reason: Option<String>,
    pub lang: Option<String>,
    pub not_before: Option<Millis>,
    pub expires_at: Option<Millis>,
}

/// A link just made, with its code (shown once, never stored).
#[derive(Debug)]
pub struct Minted {
    pub link: Link,
    pub code: String,
}

/// Why a link was not made or revoked. The messages are what the maker is told.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no such room")]
    UnknownRoom,
    #[error("no such visit in this room")]
    UnknownVisit,
    #[error("no such link")]
    UnknownLink,
    #[error("you are not a physician of this room")]
    NotYourRoom,
    #[error("this room does not allow guests")]
    InvitesDisabled,
    #[error(
        "only an admin (or the EHR's scheduling context, when enabled) may put a patient record on a link"
    )]
    PatientRefNotAllowed,
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] DurableError),
}

impl MintError {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            MintError::UnknownRoom => ApiErrorCode::UnknownRoom,
            MintError::UnknownVisit => ApiErrorCode::UnknownVisit,
            MintError::UnknownLink => ApiErrorCode::UnknownLink,
            MintError::NotYourRoom => ApiErrorCode::NotYourRoom,
            MintError::InvitesDisabled => ApiErrorCode::InvitesDisabled,
            MintError::PatientRefNotAllowed => ApiErrorCode::PatientRefNotAllowed,
            MintError::Invalid { .. } => ApiErrorCode::InvalidField,
            MintError::Store(_) => ApiErrorCode::Internal,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        MintError::Invalid {
            field,
            message: message.into(),
        }
    }
}

async fn live_room(durable: &dyn DurableStore, id: &RoomId) -> Result<RoomConfig, MintError> {
    match durable.room(id).await? {
        Some(r) if !r.archived => Ok(r),
        _ => Err(MintError::UnknownRoom),
    }
}

fn optional_text(
    v: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, MintError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max => Err(MintError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        other => Ok(other),
    }
}

/// A link for `code` with no patient details; patient links fill those in on top.
fn bare_link(
    code: &str,
    kind: LinkKind,
    room: &RoomConfig,
    visit: VisitId,
    maker: &Maker<'_>,
    now: Millis,
    expires_at: Millis,
) -> NewLink {
    NewLink {
        id: LinkId::new(),
        code_hash: hash_secret(code),
        kind,
        room: room.id.clone(),
        visit,
        patient_name: None,
        patient_ref: None,
        reason: None,
        lang: None,
        not_before: None,
        expires_at,
        created_by: maker.staff.clone(),
        created_at: now,
    }
}

/// A patient's join link, for a new visit of the room.
pub async fn mint_patient_link(
    durable: &dyn DurableStore,
    rules: MintRules,
    maker: Maker<'_>,
    m: PatientLinkRequest,
    now: Millis,
) -> Result<Minted, MintError> {
    let room = live_room(durable, &m.room).await?;
    if !(maker.is_admin() || maker.is_physician_of(&room)) {
        return Err(MintError::NotYourRoom);
    }
    if m.patient_ref.is_some() && !maker.is_admin() && !rules.physicians_may_name_patient {
        tracing::warn!(room = %room.id, staff = %maker.staff, "join link refused: physician named a patient record");
        return Err(MintError::PatientRefNotAllowed);
    }
    let expires_at = m.expires_at.unwrap_or(now + rules.link_secs as i64 * 1000);
    if expires_at <= now {
        return Err(MintError::invalid("expires_at", "must be in the future"));
    }
    if m.not_before.is_some_and(|nb| nb >= expires_at) {
        return Err(MintError::invalid(
            "not_before",
            "must be before expires_at",
        ));
    }
    let lang = optional_text(m.lang, "lang", 35)?;
    if lang
        .as_deref()
        .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(MintError::invalid(
            "lang",
            "a BCP 47 tag such as `en` or `pt-BR`",
        ));
    }
    let code = new_code();
    let new = NewLink {
        patient_name: optional_text(m.patient_name, "patient_name", 200)?,
        patient_ref: m.patient_ref,
        reason: optional_text(m.reason, "reason", 500)?,
        lang,
        not_before: m.not_before,
        ..bare_link(
            &code,
            LinkKind::Patient,
            &room,
            VisitId::new(),
            &maker,
            now,
            expires_at,
        )
    };
    store(durable, new, code, &maker, "join").await
}

/// Stores a new link and logs who made it (ids only: never a name or a record).
async fn store(
    durable: &dyn DurableStore,
    new: NewLink,
    code: String,
    maker: &Maker<'_>,
    kind: &str,
) -> Result<Minted, MintError> {
    let link = durable.create_link(new).await?;
    tracing::info!(link = %link.new.id, room = %link.new.room, staff = %maker.staff, "{kind} link minted");
    Ok(Minted { link, code })
}

/// A guest's link (interpreter, family) into one visit of the room.
pub async fn mint_guest_link(
    durable: &dyn DurableStore,
    rules: MintRules,
    maker: Maker<'_>,
    room: &RoomId,
    visit: VisitId,
    now: Millis,
) -> Result<Minted, MintError> {
    let room = live_room(durable, room).await?;
    if !maker.is_physician_of(&room) {
        return Err(MintError::NotYourRoom);
    }
    if !room.invites_allowed {
        return Err(MintError::InvitesDisabled);
    }
    // The visit must belong to this room: a patient link made it, or history has it.
    let links = durable.list_links(Some(&room.id)).await?;
    let known = links
        .iter()
        .any(|l| l.new.visit == visit && l.new.kind == LinkKind::Patient)
        || durable
            .visit(&visit)
            .await?
            .is_some_and(|v| v.room == room.id);
    if !known {
        return Err(MintError::UnknownVisit);
    }
    let code = new_code();
    let expires_at = now + GUEST_LINK_SECS.min(rules.link_secs as i64) * 1000;
    let new = bare_link(
        &code,
        LinkKind::Guest,
        &room,
        visit,
        &maker,
        now,
        expires_at,
    );
    store(durable, new, code, &maker, "guest").await
}

/// Revoke a link (the room's physician or an admin); its tokens stop at the next hello,
/// a resume during a database outage included (noted in `memo` for `token_ttl`, the life
/// of the last token the link gave out).
pub async fn revoke_link(
    durable: &dyn DurableStore,
    memo: &dyn crate::live::Memo,
    token_ttl: std::time::Duration,
    maker: Maker<'_>,
    id: &LinkId,
) -> Result<(), MintError> {
    let link = durable.link(id).await?.ok_or(MintError::UnknownLink)?;
    if !maker.is_admin() {
        let room = durable.room(&link.new.room).await?;
        if !room.is_some_and(|r| maker.is_physician_of(&r)) {
            return Err(MintError::NotYourRoom);
        }
    }
    durable.revoke_link(id).await?;
    crate::identity::access::link_revoked(memo, id, token_ttl).await;
    tracing::info!(link = %id, staff = %maker.staff, "join link revoked");
    Ok(())
}
