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
//! The record read and the audit are the caller's (the HTTP edge); this module decides.

use crate::config::IdentityFactor;
use crate::durable::{DurableError, DurableStore, IdentityCheck};
use crate::ids::VisitId;
use crate::visit::Millis;
use chrono::NaiveDate;

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
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::BadAnswer => "invalid_field",
            IdentityError::Mismatch { .. } => "identity_mismatch",
            IdentityError::Locked => "identity_locked",
            IdentityError::Unverifiable => "identity_unverifiable",
            IdentityError::Store(_) => "unavailable",
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
    pub fn code(&self) -> &'static str {
        match self {
            ChartRefusal::IdentityNotConfirmed => "identity_not_confirmed",
            ChartRefusal::IdentityLocked => "identity_locked",
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
        assert_eq!(
            chart_gate(f, None, 5, false),
            Err(ChartRefusal::IdentityNotConfirmed)
        );
        assert_eq!(
            chart_gate(f, Some(&tried), 5, false),
            Err(ChartRefusal::IdentityNotConfirmed)
        );
        assert_eq!(
            chart_gate(f, Some(&spent), 5, false),
            Err(ChartRefusal::IdentityLocked)
        );
        assert_eq!(
            chart_gate(f, Some(&confirmed), 5, false),
            Ok(ChartGate::Confirmed)
        );
        assert_eq!(
            chart_gate(f, Some(&spent), 5, true),
            Ok(ChartGate::Emergency)
        );
        assert_eq!(
            chart_gate(IdentityFactor::None, None, 5, false),
            Ok(ChartGate::FactorOff)
        );
    }
}
