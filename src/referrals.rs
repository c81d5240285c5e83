//! Referrals (issue 22): who may refer whom, and who may answer.
//!
//! - Only a physician of the visit (the one who admitted or was in it) refers its patient,
//!   during or after the visit, to another active physician: never to themselves.
//! - Only the physician referred to accepts or declines, once; the first answer stands.
//! - The patient of the visit sees the visit's referrals through their link.
//! - Every referral and answer goes into the record-access audit log with the patient's
//!   record id: a referral carries clinical text about them.

use crate::audit::{AuditOutcome, NewAuditEntry};
use crate::durable::referrals::{NewReferral, Referral, ReferralStatus, Urgency};
use crate::durable::{AuditStore, DurableError, ReferralStore, StaffStore, VisitStore};
use crate::ids::{ReferralId, Role, StaffId, VisitId};
use crate::visit::Millis;

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
    let to = store.staff(&req.to).await?;
    if !to.is_some_and(|s| s.active && s.has_role(Role::Physician)) {
        return Err(ReferralError::UnknownPhysician);
    }
    let referral = store
        .create_referral(NewReferral {
            visit: visit.id,
            patient_ref: visit.patient_ref,
            patient_name: visit.patient_name,
            from: me.clone(),
            to: req.to,
            reason,
            urgency: req.urgency,
            at: now,
        })
        .await?;
    store
        .append_audit(audit(&referral, me, "referral.create", now))
        .await?;
    Ok(referral)
}

/// The physician referred to accepts or declines, with an optional note.
pub async fn answer<S>(
    store: &S,
    me: &StaffId,
    id: &ReferralId,
    accept: bool,
    note: &str,
    now: Millis,
) -> Result<Referral, ReferralError>
where
    S: ReferralStore + AuditStore + ?Sized,
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
    let answered = match store.answer_referral(id, status, note, now).await {
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
    Ok(answered)
}
