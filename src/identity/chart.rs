//! Who may open a visit's chart beyond "the physician of the visit": the patient's
//! identity check and the emergency-access way around it (issue 17, item 1).
//!
//! Invariants:
//! - A chart opens only for a patient who confirmed the clinic's identity factor
//!   (`links.identity_factor`, date of birth by default) against the record source itself,
//!   never against a value the link's creator gave.
//! - Answers are limited per visit (`links.identity_attempts`); the slot is taken before
//!   the answer is compared, so concurrent guesses cannot exceed the limit on any node.
//! - The only way around it is emergency access: one physician, one visit, a reason of at
//!   least [`MIN_EMERGENCY_REASON_CHARS`], audited, admins alerted.
//!
//! - Only the physician who admitted (or is in) the visit reads its chart, while the visit
//!   is open or for `records.after_visit_minutes` after it ended, and only the patient the
//!   join link named ([`may_open`]).
//!
//! The record read and the audit are the caller's (the HTTP edge); this module decides.

use crate::config::{IdentityFactor, Settings};
use crate::durable::{DurableError, DurableStore, IdentityCheck, VisitRecord};
use crate::ids::{PatientRef, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::visit::Millis;
use chrono::NaiveDate;
use std::time::Duration;
use tokio::sync::watch;

/// Shortest reason accepted for emergency access, characters.
pub const MIN_EMERGENCY_REASON_CHARS: usize = 10;
/// Longest reason kept, characters.
pub const MAX_EMERGENCY_REASON_CHARS: usize = 500;

/// Why a patient's answer did not confirm them.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("a date of birth as YYYY-MM-DD")]
    BadAnswer,
    #[error("that date of birth does not match the clinic's record")]
    Mismatch { attempts_left: u32 },
    #[error("too many wrong answers; the clinic will check who you are in the call")]
    Locked,
    #[error("the clinic's record has no full date of birth to compare with")]
    Unverifiable,
    #[error(transparent)]
    Store(#[from] DurableError),
}

impl IdentityError {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            IdentityError::BadAnswer => ApiErrorCode::InvalidField,
            IdentityError::Mismatch { .. } => ApiErrorCode::IdentityMismatch,
            IdentityError::Locked => ApiErrorCode::IdentityLocked,
            IdentityError::Unverifiable => ApiErrorCode::IdentityUnverifiable,
            IdentityError::Store(_) => ApiErrorCode::Unavailable,
        }
    }
}

/// A date typed by the patient: exactly `YYYY-MM-DD`.
pub fn parse_birth_date(answer: &str) -> Result<NaiveDate, IdentityError> {
    let a = answer.trim();
    if a.len() != 10 {
        return Err(IdentityError::BadAnswer);
    }
    NaiveDate::parse_from_str(a, "%Y-%m-%d").map_err(|_| IdentityError::BadAnswer)
}

/// The record's `Patient.birthDate` as a full date, if it is one. A partial date (`1968`,
/// `1968-04`) cannot confirm anyone: a year alone is too easy to guess.
pub fn recorded_birth_date(recorded: Option<&str>) -> Option<NaiveDate> {
    let r = recorded?.trim();
    NaiveDate::parse_from_str(r.get(..10)?, "%Y-%m-%d").ok()
}

/// The patient of `visit` answers: take a slot, compare, confirm or count it as wrong.
/// `Ok(())` once confirmed (again `Ok` when it already was).
pub async fn confirm_birth_date(
    durable: &dyn DurableStore,
    visit: &VisitId,
    answer: NaiveDate,
    recorded: Option<NaiveDate>,
    max_attempts: u32,
    now: Millis,
) -> Result<(), IdentityError> {
    if let Some(c) = durable.identity_check(visit).await?
        && c.confirmed_at.is_some()
    {
        return Ok(());
    }
    let Some(recorded) = recorded else {
        return Err(IdentityError::Unverifiable);
    };
    let Some(slot) = durable.take_identity_attempt(visit, max_attempts).await? else {
        // Confirmed by a concurrent answer, or no slot left.
        return match durable.identity_check(visit).await? {
            Some(c) if c.confirmed_at.is_some() => Ok(()),
            _ => Err(IdentityError::Locked),
        };
    };
    if answer == recorded {
        durable.confirm_identity(visit, now).await?;
        return Ok(());
    }
    match max_attempts.saturating_sub(slot) {
        0 => Err(IdentityError::Locked),
        left => Err(IdentityError::Mismatch {
            attempts_left: left,
        }),
    }
}

/// Why the visit's physician may not open the chart yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChartRefusal {
    #[error(
        "identity not confirmed: the chart opens when the patient confirms their date of birth"
    )]
    IdentityNotConfirmed,
    #[error(
        "the patient could not confirm their identity (too many wrong answers); only emergency access opens the chart"
    )]
    IdentityLocked,
}

impl ChartRefusal {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            ChartRefusal::IdentityNotConfirmed => ApiErrorCode::IdentityNotConfirmed,
            ChartRefusal::IdentityLocked => ApiErrorCode::IdentityLocked,
        }
    }
}

/// Why the chart may open (kept in the audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartGate {
    /// The patient confirmed the identity factor.
    Confirmed,
    /// The physician took emergency access to this visit.
    Emergency,
    /// `links.identity_factor = "none"` (unsafe, explicit).
    FactorOff,
}

/// The identity part of "may the visit's physician open the chart now".
pub fn chart_gate(
    factor: IdentityFactor,
    check: Option<&IdentityCheck>,
    max_attempts: u32,
    emergency: bool,
) -> Result<ChartGate, ChartRefusal> {
    if emergency {
        return Ok(ChartGate::Emergency);
    }
    if factor == IdentityFactor::None {
        return Ok(ChartGate::FactorOff);
    }
    match check {
        Some(c) if c.confirmed_at.is_some() => Ok(ChartGate::Confirmed),
        Some(c) if c.attempts >= max_attempts => Err(ChartRefusal::IdentityLocked),
        _ => Err(ChartRefusal::IdentityNotConfirmed),
    }
}

/// Why a staff member may not open a visit's chart. The messages are what they are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChartAccessError {
    #[error("only the visit's physician may read the record")]
    NotPhysician,
    #[error("you are not the physician of this visit")]
    NotYourVisit,
    #[error("the visit is over and its record window has closed")]
    VisitClosed,
    #[error("this visit's link named no patient record")]
    NoPatientRecord,
    #[error(transparent)]
    Identity(#[from] ChartRefusal),
}

impl ChartAccessError {
    /// The stable reason code (HTTP `error`, and the audit entry's reason).
    pub fn code(&self) -> ApiErrorCode {
        match self {
            ChartAccessError::NotPhysician => ApiErrorCode::NotPhysician,
            ChartAccessError::NotYourVisit => ApiErrorCode::NotYourVisit,
            ChartAccessError::VisitClosed => ApiErrorCode::VisitClosed,
            ChartAccessError::NoPatientRecord => ApiErrorCode::NoPatientRecord,
            ChartAccessError::Identity(r) => r.code(),
        }
    }
}

/// A refused chart request, with the patient that was asked for (for the audit entry).
#[derive(Debug)]
pub struct ChartDenied {
    pub patient: Option<PatientRef>,
    pub why: ChartAccessError,
}

/// The rules [`may_open`] applies, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ChartRules {
    /// How long after the visit ended its physician may still read the chart.
    pub after_visit_ms: i64,
    pub factor: IdentityFactor,
    pub max_attempts: u32,
}

impl ChartRules {
    pub fn from_settings(settings: &Settings) -> Self {
        ChartRules {
            after_visit_ms: settings.records.after_visit_minutes as i64 * 60_000,
            factor: settings.links.identity_factor,
            max_attempts: settings.links.identity_attempts,
        }
    }
}

/// How long a chart request waits for the visit's admit to reach the history. The room
/// records the admit before telling anyone (history before effects), so this only
/// matters while the write is queued behind a slow database.
const ADMIT_LANDS: Duration = Duration::from_millis(500);

/// The visit's record, once it shows an admit or [`ADMIT_LANDS`] passed. `written` ticks
/// whenever this node's history writer stored a transition.
async fn visit_after_admit(
    durable: &dyn DurableStore,
    visit: &VisitId,
    mut written: watch::Receiver<u64>,
) -> Result<Option<VisitRecord>, DurableError> {
    // Marked seen before reading, so a write after the read wakes the wait below.
    written.borrow_and_update();
    let mut record = durable.visit(visit).await?;
    let deadline = tokio::time::Instant::now() + ADMIT_LANDS;
    while record.as_ref().is_none_or(|r| r.admitted_by.is_none()) {
        match tokio::time::timeout_at(deadline, written.changed()).await {
            Ok(Ok(())) => record = durable.visit(visit).await?,
            _ => break,
        }
    }
    Ok(record)
}

/// One request to read a visit's chart.
#[derive(Clone, Copy)]
pub struct ChartRequest<'a> {
    pub durable: &'a dyn DurableStore,
    /// The asker's staff account when they hold the physician role, else `None`.
    pub physician: Option<&'a StaffId>,
    pub visit: &'a VisitId,
    pub now: Millis,
    pub rules: &'a ChartRules,
    /// Ticks when this node stored a visit transition (the admit may be landing).
    pub written: &'a watch::Receiver<u64>,
}

/// Whether `physician` (the asker's staff account when they hold the physician role,
/// else `None`) is this visit's physician, within its record window, and the visit names
/// a patient: the visit and its patient, or why not.
pub async fn physician_of_visit(
    q: ChartRequest<'_>,
) -> Result<Result<(VisitRecord, PatientRef), ChartDenied>, DurableError> {
    let ChartRequest {
        durable,
        physician,
        visit,
        now,
        rules,
        written,
    } = q;
    let denied = |patient, why| Ok(Err(ChartDenied { patient, why }));
    let Some(physician) = physician else {
        let patient = durable.visit(visit).await?.and_then(|r| r.patient_ref);
        return denied(patient, ChartAccessError::NotPhysician);
    };
    let Some(record) = visit_after_admit(durable, visit, written.clone()).await? else {
        return denied(None, ChartAccessError::NotYourVisit);
    };
    let patient = record.patient_ref.clone();
    let mine = record.admitted_by.as_ref() == Some(physician)
        || record.physician.as_ref() == Some(physician);
    if !mine {
        return denied(patient, ChartAccessError::NotYourVisit);
    }
    if record
        .ended_at
        .is_some_and(|end| now > end + rules.after_visit_ms)
    {
        return denied(patient, ChartAccessError::VisitClosed);
    }
    match patient {
        Some(p) => Ok(Ok((record, p))),
        None => denied(None, ChartAccessError::NoPatientRecord),
    }
}

/// Whether `physician` may open this visit's chart now: the patient and why it opens,
/// or why not ([`physician_of_visit`], then the identity gate [`chart_gate`]).
pub async fn may_open(
    q: ChartRequest<'_>,
) -> Result<Result<(PatientRef, ChartGate), ChartDenied>, DurableError> {
    let (durable, physician, visit, rules) = (q.durable, q.physician, q.visit, q.rules);
    let (_, patient) = match physician_of_visit(q).await? {
        Ok(v) => v,
        Err(d) => return Ok(Err(d)),
    };
    // (Without a physician the request was refused above.)
    let emergency = match physician {
        Some(p) => durable.emergency_access_granted(visit, p).await?,
        None => false,
    };
    let check = durable.identity_check(visit).await?;
    match chart_gate(rules.factor, check.as_ref(), rules.max_attempts, emergency) {
        Ok(gate) => Ok(Ok((patient, gate))),
        Err(r) => Ok(Err(ChartDenied {
            patient: Some(patient),
            why: r.into(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_date_is_an_answer_or_a_record() {
        assert!(parse_birth_date("1968-04-17").is_ok());
        for bad in ["1968", "17/04/1968", "1968-4-17", "1968-02-30", ""] {
            assert!(parse_birth_date(bad).is_err(), "{bad}");
        }
        assert_eq!(
            recorded_birth_date(Some("1968-04-17")),
            NaiveDate::from_ymd_opt(1968, 4, 17)
        );
        assert_eq!(recorded_birth_date(Some("1968-04")), None);
        assert_eq!(recorded_birth_date(Some("1968")), None);
        assert_eq!(recorded_birth_date(None), None);
    }

    #[test]
    fn the_chart_opens_only_when_confirmed_or_by_emergency() {
        use ChartRefusal::{IdentityLocked, IdentityNotConfirmed};
        let f = IdentityFactor::BirthDate;
        let confirmed = IdentityCheck {
            attempts: 2,
            confirmed_at: Some(1),
        };
        let tried = IdentityCheck {
            attempts: 2,
            confirmed_at: None,
        };
        let spent = IdentityCheck {
            attempts: 5,
            confirmed_at: None,
        };
        let cases = [
            (f, None, false, Err(IdentityNotConfirmed)),
            (f, Some(&tried), false, Err(IdentityNotConfirmed)),
            (f, Some(&spent), false, Err(IdentityLocked)),
            (f, Some(&confirmed), false, Ok(ChartGate::Confirmed)),
            (f, Some(&spent), true, Ok(ChartGate::Emergency)),
            (IdentityFactor::None, None, false, Ok(ChartGate::FactorOff)),
        ];
        for (factor, check, emergency, want) in cases {
            let got = chart_gate(factor, check, 5, emergency);
            assert_eq!(got, want, "{factor:?} {check:?} emergency={emergency}");
        }
    }
}
