//! Referrals (issue 22): who may refer whom, and who may answer.
//!
//! - Only a physician of the visit (the one who admitted or was in it) refers its patient,
//!   during or after the visit, to another active physician: never to themselves.
//! - Only the physician referred to accepts or declines, once; the first answer stands.
//! - The patient of the visit sees the visit's referrals through their link.
//! - Every referral and answer goes into the record-access audit log with the patient's
//!   record id: a referral carries clinical text about them.
//! - A referral about a patient with a record is also written to the record source as a
//!   FHIR `ServiceRequest` (`records::service_request`, through the outbox of
//!   `records::write_back`): kept with the referral in one transaction, made due again by
//!   the answer, and audited as a record write (`records.write`, section `referral`).
//! - The physician referred to may accept to see the patient in their own waiting room:
//!   the patient's referral view then carries a join link into it, single-patient and
//!   expiring after [`JOIN_LINK_DAYS`] days. Its code is derived from the referral id with
//!   the server's key ([`ReferralKey`]), so it can be shown again without being stored;
//!   the link keeps only its hash, like every join link.

use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::durable::referrals::{NewReferral, RecordCopy, Referral, ReferralStatus, Urgency};
use crate::durable::{
    AppointmentStore, AuditStore, DurableError, LinkKind, NewLink, ReferralStore, RoomStore,
    StaffStore, VisitStore,
};
use crate::ids::{LinkId, ReferralId, Role, RoomId, StaffId, VisitId};
use crate::visit::{Millis, RoomKind};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long the join link of a referral accepted into a waiting room lasts, days: long
/// enough for a patient told "come to my waiting room this week or next", short enough
/// that a forgotten link does not open a room months later.
pub const JOIN_LINK_DAYS: i64 = 14;

/// The key referral join codes are derived from (built from the server's token secret,
/// so every node derives the same code).
#[derive(Clone)]
pub struct ReferralKey(Vec<u8>);

impl std::fmt::Debug for ReferralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReferralKey([redacted])")
    }
}

impl ReferralKey {
    /// A key of its own for referrals, so a code derived here never equals another use of
    /// the same server secret.
    pub fn from_server_secret(secret: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"examroom referrals v1");
        ReferralKey(mac.finalize().into_bytes().to_vec())
    }

    /// The join-link code of a referral: 256 bits, URL-safe, like a code a physician mints.
    pub fn join_code(&self, id: &ReferralId) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"join:");
        mac.update(id.as_str().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// The stored form of a join code (hex SHA-256, as `identity::hash_secret` keeps codes).
fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// The accepting physician's choice to see the patient in a waiting room.
#[derive(Debug, Clone)]
pub struct SeeInWaitingRoom<'a> {
    /// Which of their rooms; none: the room they take bookings in, else their only room.
    pub room: Option<RoomId>,
    pub key: &'a ReferralKey,
}

/// The longest reason or answer note.
pub const MAX_TEXT: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ReferralError {
    #[error("no such visit")]
    UnknownVisit,
    #[error("only a physician of this visit may refer its patient")]
    NotYourVisit,
    #[error("no active physician with that id")]
    UnknownPhysician,
    #[error("a physician cannot refer a patient to themselves")]
    SelfReferral,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no such referral")]
    UnknownReferral,
    #[error("only the physician referred to may answer")]
    NotYours,
    #[error("this referral was answered already")]
    Answered,
    #[error("you are not a physician of this room")]
    NotYourRoom,
    #[error("you have no waiting room to see the patient in")]
    NoWaitingRoom,
    #[error("you have several waiting rooms: say which (`room`)")]
    ChooseRoom,
    #[error(transparent)]
    Store(#[from] DurableError),
}

/// What the referring physician asks.
#[derive(Debug, Clone)]
pub struct ReferralRequest {
    pub visit: VisitId,
    pub to: StaffId,
    pub reason: String,
    pub urgency: Urgency,
}

fn text(field: &'static str, s: &str, required: bool) -> Result<Option<String>, ReferralError> {
    let s = s.trim();
    if s.is_empty() {
        return if required {
            Err(ReferralError::Invalid {
                field,
                message: "must not be empty".into(),
            })
        } else {
            Ok(None)
        };
    }
    if s.chars().count() > MAX_TEXT {
        return Err(ReferralError::Invalid {
            field,
            message: format!("at most {MAX_TEXT} characters"),
        });
    }
    Ok(Some(s.to_owned()))
}

fn audit(r: &Referral, actor: &StaffId, action: &str, at: Millis) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.to_string(),
        action: action.into(),
        patient_ref: r.new.patient_ref.clone(),
        visit: Some(r.new.visit.clone()),
        sections: vec!["referral".into()],
        outcome: AuditOutcome::Allowed,
        reason: None,
    }
}

/// The record write of a referral, audited like the visit note's (`records.write`).
async fn audit_record_write<S>(
    store: &S,
    r: &Referral,
    actor: &StaffId,
    at: Millis,
) -> Result<(), ReferralError>
where
    S: AuditStore + ?Sized,
{
    if r.new.patient_ref.is_some() {
        store
            .append_audit(audit(r, actor, "records.write", at))
            .await?;
    }
    Ok(())
}

/// `me` refers the patient of `req.visit` to `req.to`.
pub async fn refer<S>(
    store: &S,
    me: &StaffId,
    req: ReferralRequest,
    now: Millis,
) -> Result<Referral, ReferralError>
where
    S: VisitStore + StaffStore + ReferralStore + AuditStore + ?Sized,
{
    let reason = text("reason", &req.reason, true)?.unwrap_or_default();
    let visit = store
        .visit(&req.visit)
        .await?
        .ok_or(ReferralError::UnknownVisit)?;
    let mine = visit.physician.as_ref() == Some(me) || visit.admitted_by.as_ref() == Some(me);
    if !mine {
        return Err(ReferralError::NotYourVisit);
    }
    if &req.to == me {
        return Err(ReferralError::SelfReferral);
    }
    let Some(to) = store
        .staff(&req.to)
        .await?
        .filter(|s| s.active && s.has_role(Role::Physician))
    else {
        return Err(ReferralError::UnknownPhysician);
    };
    let from_name = store
        .staff(me)
        .await?
        .map(|s| s.name)
        .unwrap_or_else(|| me.to_string());
    let record = RecordCopy {
        requester_name: from_name,
        performer_name: to.name,
    };
    let referral = store
        .create_referral(
            NewReferral {
                visit: visit.id,
                patient_ref: visit.patient_ref,
                patient_name: visit.patient_name,
                from: me.clone(),
                to: req.to,
                reason,
                urgency: req.urgency,
                at: now,
            },
            Some(record),
        )
        .await?;
    store
        .append_audit(audit(&referral, me, "referral.create", now))
        .await?;
    audit_record_write(store, &referral, me, now).await?;
    Ok(referral)
}

/// The room `me` sees a referred patient in: the one named (theirs, in use), else the
/// room they take bookings in, else their only physician room.
async fn waiting_room<S>(
    store: &S,
    me: &StaffId,
    named: Option<RoomId>,
) -> Result<RoomId, ReferralError>
where
    S: RoomStore + AppointmentStore + ?Sized,
{
    if let Some(id) = named {
        let room = store.room(&id).await?;
        return match room {
            Some(r) if !r.archived && r.physicians.contains(me) => Ok(r.id),
            _ => Err(ReferralError::NotYourRoom),
        };
    }
    let mine: Vec<_> = store
        .rooms_for_physician(me)
        .await?
        .into_iter()
        .filter(|r| !r.archived && r.kind == RoomKind::Physician)
        .collect();
    if let Some(s) = store.schedule(me).await?
        && mine.iter().any(|r| r.id == s.room)
    {
        return Ok(s.room);
    }
    match mine.as_slice() {
        [] => Err(ReferralError::NoWaitingRoom),
        [only] => Ok(only.id.clone()),
        _ => Err(ReferralError::ChooseRoom),
    }
}

/// The physician referred to accepts or declines, with an optional note; accepting with
/// `see` also gives the patient a join link into that physician's waiting room.
pub async fn answer<S>(
    store: &S,
    me: &StaffId,
    id: &ReferralId,
    accept: bool,
    note: &str,
    see: Option<SeeInWaitingRoom<'_>>,
    now: Millis,
) -> Result<Referral, ReferralError>
where
    S: ReferralStore + AuditStore + RoomStore + AppointmentStore + ?Sized,
{
    let note = text("note", note, false)?;
    let r = store
        .referral(id)
        .await?
        .ok_or(ReferralError::UnknownReferral)?;
    if &r.new.to != me {
        return Err(ReferralError::NotYours);
    }
    let status = if accept {
        ReferralStatus::Accepted
    } else {
        ReferralStatus::Declined
    };
    let join = match see.filter(|_| accept) {
        None => None,
        Some(see) => {
            let room = waiting_room(store, me, see.room).await?;
            let reason: String = r.new.reason.chars().take(500).collect();
            Some(NewLink {
                id: LinkId::new(),
                code_hash: code_hash(&see.key.join_code(id)),
                kind: LinkKind::Patient,
                room,
                visit: VisitId::new(),
                patient_name: r.new.patient_name.clone(),
                // The record the referring visit was about: carried, not typed by anyone.
                patient_ref: r.new.patient_ref.clone(),
                reason: Some(reason),
                lang: None,
                not_before: None,
                expires_at: now + JOIN_LINK_DAYS * 24 * 3600 * 1000,
                created_by: me.clone(),
                created_at: now,
            })
        }
    };
    let answered = match store.answer_referral(id, status, note, now, join).await {
        Err(DurableError::Conflict { .. }) => return Err(ReferralError::Answered),
        other => other?,
    };
    let action = if accept {
        "referral.accept"
    } else {
        "referral.decline"
    };
    store
        .append_audit(audit(&answered, me, action, now))
        .await?;
    audit_record_write(store, &answered, me, now).await?;
    Ok(answered)
}
