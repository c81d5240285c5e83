//! The SQL both stores run, written once.
//!
//! The statements are portable between SQLite (≥ 3.35) and PostgreSQL: `$n` parameters,
//! `ON CONFLICT`, `RETURNING`, `TRUE`/`FALSE`. [`impl_durable_store!`] expands the same
//! method bodies for each store type, which only has to provide `pool` and
//! `begin_write()` (SQLite: `BEGIN IMMEDIATE`, so a transaction that reads before it
//! writes cannot fail to upgrade its lock; PostgreSQL: a plain `BEGIN`, with row locks
//! taken by the first statement where order matters).
//!
//! Rows are read into the `*Row` structs below (derived `FromRow`, generic over the
//! database) and turned into domain types by plain functions, so decoding is shared too.

use super::{
    DurableError, IdpIdentity, Link, LinkKind, NewLink, NewRoom, NewStaff, Session, SetupPurpose,
    SetupToken, Staff, VisitRecord, VisitTransition,
};
use crate::audit::{AuditEntry, AuditOutcome, NewAuditEntry};
use crate::ids::Role;
use crate::ids::{PatientRef, StaffId};
use crate::visit::{Millis, RoomConfig, RoomKind, VisitState};
use std::str::FromStr;

pub(super) fn parse_id<T: FromStr>(s: &str, column: &'static str) -> Result<T, DurableError> {
    s.parse()
        .map_err(|_| DurableError::Internal(format!("malformed identifier in column {column}")))
}

fn parse_opt_id<T: FromStr>(
    s: Option<&str>,
    column: &'static str,
) -> Result<Option<T>, DurableError> {
    s.map(|s| parse_id(s, column)).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    s: &str,
    column: &'static str,
) -> Result<T, DurableError> {
    serde_json::from_str(s)
        .map_err(|_| DurableError::Internal(format!("malformed JSON in column {column}")))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("lists of strings always serialise")
}

pub(super) fn state_from_str(s: &str) -> Result<VisitState, DurableError> {
    VisitState::ALL
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| DurableError::Internal("unknown visit state in store".into()))
}

fn kind_from_str(s: &str) -> Result<RoomKind, DurableError> {
    match s {
        "physician" => Ok(RoomKind::Physician),
        "walk_in" => Ok(RoomKind::WalkIn),
        _ => Err(DurableError::Internal("unknown room kind in store".into())),
    }
}

/// The database refused a duplicate; `hint` is matched against the constraint name
/// (PostgreSQL) or message (SQLite names the column) to tell unique keys apart.
pub(super) fn is_unique(e: &sqlx::Error, hint: &str) -> bool {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            hint.is_empty()
                || d.constraint().is_some_and(|c| c.contains(hint))
                || d.message().contains(hint)
        }
        _ => false,
    }
}

/// A staff account with this email (any case) exists.
pub(super) fn email_taken() -> DurableError {
    DurableError::conflict("email", "a staff account with this email exists")
}

/// A room with this name (any case) exists.
pub(super) fn room_name_taken() -> DurableError {
    DurableError::conflict("name", "a room with this name exists")
}

/// What an UPDATE or DELETE on one key means: it changed a row, or there is no such `what`.
pub(super) fn one_changed(rows_affected: u64, what: &'static str) -> Result<(), DurableError> {
    match rows_affected {
        0 => Err(DurableError::NotFound { what }),
        _ => Ok(()),
    }
}

pub(super) fn is_foreign_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// A write that names a staff member the store does not know: `Invalid{staff}`; any
/// other failure as it is.
pub(super) fn unknown_staff(err: sqlx::Error) -> DurableError {
    if is_foreign_key(&err) {
        DurableError::invalid("staff", "unknown staff member")
    } else {
        err.into()
    }
}

/// Names the sqlx database behind a store type (used by the shared method bodies).
pub(super) trait StoreDb {
    type Db: sqlx::Database;
}

// ---------------------------------------------------------------------------------------
// Validation shared by both stores

pub(super) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(super) fn check_email(email: &str) -> Result<(), DurableError> {
    let e = email.trim();
    let ok = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if ok {
        Ok(())
    } else {
        Err(DurableError::invalid("email", "not an email address"))
    }
}

pub(super) fn check_name(name: &str) -> Result<(), DurableError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(DurableError::invalid("name", "must not be empty"));
    }
    if n.chars().count() > 200 {
        return Err(DurableError::invalid("name", "at most 200 characters"));
    }
    Ok(())
}

/// Staff roles: physician and/or admin, at least one; returned sorted without duplicates.
pub(super) fn check_roles(roles: &[Role]) -> Result<Vec<Role>, DurableError> {
    let mut r = roles.to_vec();
    r.sort();
    r.dedup();
    if r.is_empty() {
        return Err(DurableError::invalid("roles", "at least one role"));
    }
    if r.iter()
        .any(|r| !matches!(r, Role::Physician | Role::Admin))
    {
        return Err(DurableError::invalid(
            "roles",
            "staff roles are physician and admin",
        ));
    }
    Ok(r)
}

pub(super) fn check_new_staff(new: &NewStaff) -> Result<Vec<Role>, DurableError> {
    check_email(&new.email)?;
    check_name(&new.name)?;
    check_roles(&new.roles)
}

/// Everything about a room that needs no database; returns the physicians deduplicated
/// in their given order.
pub(super) fn check_new_room(new: &NewRoom) -> Result<Vec<StaffId>, DurableError> {
    check_name(&new.name)?;
    if !(2..=8).contains(&new.max_participants) {
        return Err(DurableError::invalid(
            "max_participants",
            "must be between 2 and 8",
        ));
    }
    if new.max_wait_secs < 60 {
        return Err(DurableError::invalid(
            "max_wait_secs",
            "must be at least 60",
        ));
    }
    if new.max_wait_secs > i64::MAX as u64 {
        return Err(DurableError::invalid("max_wait_secs", "too large"));
    }
    let mut seen = Vec::new();
    for p in &new.physicians {
        if !seen.contains(p) {
            seen.push(p.clone());
        }
    }
    Ok(seen)
}

/// Whether a stored staff row may be listed as a room's physician.
pub(super) fn is_active_physician(roles_json: &str, active: bool) -> Result<bool, DurableError> {
    let roles: Vec<Role> = parse_json(roles_json, "staff.roles")?;
    Ok(active && roles.contains(&Role::Physician))
}

// ---------------------------------------------------------------------------------------
// Rows

pub(super) const STAFF_COLS: &str = "id, email, name, roles, active, password_hash, languages, \
     gender, created_at, last_sign_in_at, idp_issuer, idp_subject";

#[derive(sqlx::FromRow)]
pub(super) struct StaffRow {
    id: String,
    email: String,
    name: String,
    roles: String,
    active: bool,
    password_hash: Option<String>,
    languages: String,
    gender: Option<String>,
    created_at: i64,
    last_sign_in_at: Option<i64>,
    idp_issuer: Option<String>,
    idp_subject: Option<String>,
}

impl StaffRow {
    pub(super) fn into_staff(self) -> Result<Staff, DurableError> {
        Ok(Staff {
            id: parse_id(&self.id, "staff.id")?,
            email: self.email,
            name: self.name,
            roles: parse_json(&self.roles, "staff.roles")?,
            active: self.active,
            password_hash: self.password_hash,
            languages: parse_json(&self.languages, "staff.languages")?,
            gender: self.gender,
            created_at: self.created_at,
            last_sign_in_at: self.last_sign_in_at,
            idp: match (self.idp_issuer, self.idp_subject) {
                (Some(issuer), Some(subject)) => Some(IdpIdentity { issuer, subject }),
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    staff_id: String,
    created_at: i64,
    expires_at: i64,
    revoked: bool,
}

impl SessionRow {
    pub(super) fn into_session(self) -> Result<Session, DurableError> {
        Ok(Session {
            id: self.id,
            staff: parse_id(&self.staff_id, "staff_sessions.staff_id")?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked: self.revoked,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SetupTokenRow {
    hash: String,
    purpose: String,
    staff_id: Option<String>,
    pub(super) expires_at: i64,
    pub(super) used_at: Option<i64>,
}

impl SetupTokenRow {
    pub(super) fn into_token(self) -> Result<SetupToken, DurableError> {
        Ok(SetupToken {
            hash: self.hash,
            purpose: SetupPurpose::parse(&self.purpose)
                .ok_or_else(|| DurableError::Internal("unknown token purpose in store".into()))?,
            staff: parse_opt_id(self.staff_id.as_deref(), "setup_tokens.staff_id")?,
            expires_at: self.expires_at,
            used_at: self.used_at,
        })
    }
}

pub(super) const ROOM_COLS: &str = "id, name, kind, waiting_message, max_wait_secs, \
     max_participants, chat_allowed, invites_allowed, opening_hours, archived, created_at, \
     waiting_messages";

#[derive(sqlx::FromRow)]
pub(super) struct RoomRow {
    pub(super) id: String,
    name: String,
    kind: String,
    waiting_message: String,
    max_wait_secs: i64,
    max_participants: i64,
    chat_allowed: bool,
    invites_allowed: bool,
    pub(super) opening_hours: Option<String>,
    archived: bool,
    pub(super) created_at: i64,
    /// JSON: language tag → message.
    waiting_messages: String,
}

impl RoomRow {
    pub(super) fn to_config(&self, physicians: Vec<StaffId>) -> Result<RoomConfig, DurableError> {
        Ok(RoomConfig {
            id: parse_id(&self.id, "rooms.id")?,
            name: self.name.clone(),
            kind: kind_from_str(&self.kind)?,
            physicians,
            waiting_message: self.waiting_message.clone(),
            waiting_messages: serde_json::from_str(&self.waiting_messages).map_err(|e| {
                DurableError::Internal(format!("rooms.waiting_messages is not a JSON object: {e}"))
            })?,
            max_wait_secs: self.max_wait_secs.max(0) as u64,
            max_participants: self.max_participants.max(0) as usize,
            chat_allowed: self.chat_allowed,
            invites_allowed: self.invites_allowed,
            archived: self.archived,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RoomPhysicianRow {
    pub(super) room_id: String,
    pub(super) staff_id: String,
}

pub(super) const LINK_COLS: &str = "id, code_hash, kind, room_id, visit_id, patient_name, \
     patient_ref, reason, lang, not_before, expires_at, created_by, created_at, revoked, \
     first_used_at, use_count";

#[derive(sqlx::FromRow)]
pub(super) struct LinkRow {
    id: String,
    code_hash: String,
    kind: String,
    room_id: String,
    visit_id: String,
    patient_name: Option<String>,
    patient_ref: Option<String>,
    reason: Option<String>,
    lang: Option<String>,
    not_before: Option<i64>,
    expires_at: i64,
    created_by: String,
    created_at: i64,
    revoked: bool,
    first_used_at: Option<i64>,
    use_count: i64,
}

impl LinkRow {
    pub(super) fn into_link(self) -> Result<Link, DurableError> {
        Ok(Link {
            new: NewLink {
                id: parse_id(&self.id, "links.id")?,
                code_hash: self.code_hash,
                kind: LinkKind::parse(&self.kind)
                    .ok_or_else(|| DurableError::Internal("unknown link kind in store".into()))?,
                room: parse_id(&self.room_id, "links.room_id")?,
                visit: parse_id(&self.visit_id, "links.visit_id")?,
                patient_name: self.patient_name,
                patient_ref: parse_opt_id(self.patient_ref.as_deref(), "links.patient_ref")?,
                reason: self.reason,
                lang: self.lang,
                not_before: self.not_before,
                expires_at: self.expires_at,
                created_by: parse_id(&self.created_by, "links.created_by")?,
                created_at: self.created_at,
            },
            revoked: self.revoked,
            first_used_at: self.first_used_at,
            use_count: self.use_count,
        })
    }
}

pub(super) const VISIT_COLS: &str = "id, room_id, state, created_at, admitted_at, admitted_by, \
     call_started_at, ended_at, outcome, physician_id, patient_ref";

/// The visit's patient link's name (`links_visit` index); guest links of the visit do not count.
pub(super) const VISIT_PATIENT_NAME: &str = "(SELECT l.patient_name FROM links l \
     WHERE l.visit_id = v.id AND l.kind = 'patient' ORDER BY l.created_at LIMIT 1) AS patient_name";

#[derive(sqlx::FromRow, Clone)]
pub(super) struct VisitRow {
    pub(super) id: String,
    room_id: String,
    state: String,
    created_at: i64,
    admitted_at: Option<i64>,
    admitted_by: Option<String>,
    call_started_at: Option<i64>,
    ended_at: Option<i64>,
    outcome: Option<String>,
    physician_id: Option<String>,
    patient_ref: Option<String>,
    patient_name: Option<String>,
}

impl VisitRow {
    pub(super) fn into_record(
        self,
        transitions: Vec<VisitTransition>,
    ) -> Result<VisitRecord, DurableError> {
        let secs = |from: Millis, to: Millis| (to - from) as f64 / 1000.0;
        let wait_secs = self
            .admitted_at
            .or(self.ended_at)
            .map(|t| secs(self.created_at, t));
        let call_secs = match (self.call_started_at, self.ended_at) {
            (Some(s), Some(e)) => Some(secs(s, e)),
            _ => None,
        };
        Ok(VisitRecord {
            id: parse_id(&self.id, "visits.id")?,
            room: parse_id(&self.room_id, "visits.room_id")?,
            state: state_from_str(&self.state)?,
            created_at: self.created_at,
            admitted_at: self.admitted_at,
            admitted_by: parse_opt_id(self.admitted_by.as_deref(), "visits.admitted_by")?,
            call_started_at: self.call_started_at,
            ended_at: self.ended_at,
            outcome: self.outcome.as_deref().map(state_from_str).transpose()?,
            physician: parse_opt_id(self.physician_id.as_deref(), "visits.physician_id")?,
            patient_ref: parse_opt_id(self.patient_ref.as_deref(), "visits.patient_ref")?,
            patient_name: self.patient_name,
            wait_secs,
            call_secs,
            transitions,
        })
    }
}

#[derive(sqlx::FromRow, Clone)]
pub(super) struct EventRow {
    state: String,
    at: i64,
    actor: Option<String>,
    physician_id: Option<String>,
    patient_ref: Option<String>,
}

impl EventRow {
    pub(super) fn to_transition(&self) -> Result<VisitTransition, DurableError> {
        Ok(VisitTransition {
            state: state_from_str(&self.state)?,
            at: self.at,
            actor: self.actor.clone(),
            physician: parse_opt_id(self.physician_id.as_deref(), "visit_events.physician_id")?,
        })
    }
}

/// The per-visit summary, recomputed from all transitions so events that arrive late or
/// out of order still give the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    pub state: String,
    pub created_at: i64,
    pub admitted_at: Option<i64>,
    pub admitted_by: Option<String>,
    pub call_started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub physician_id: Option<String>,
    pub patient_ref: Option<String>,
}

/// `events` in time order (ties in arrival order); at least one.
pub(super) fn summarise(events: &[EventRow]) -> Result<Summary, DurableError> {
    let first = events
        .first()
        .ok_or_else(|| DurableError::Internal("visit without transitions".into()))?;
    let mut s = Summary {
        state: first.state.clone(),
        created_at: first.at,
        admitted_at: None,
        admitted_by: None,
        call_started_at: None,
        ended_at: None,
        outcome: None,
        physician_id: None,
        patient_ref: None,
    };
    let mut waiting_at = None;
    for e in events {
        let state = state_from_str(&e.state)?;
        s.state = e.state.clone();
        match state {
            VisitState::Waiting => {
                waiting_at.get_or_insert(e.at);
            }
            VisitState::Admitted if s.admitted_at.is_none() => {
                s.admitted_at = Some(e.at);
                s.admitted_by = e.physician_id.clone();
            }
            VisitState::InCall if s.call_started_at.is_none() => {
                s.call_started_at = Some(e.at);
            }
            st if st.is_final() && s.ended_at.is_none() => {
                s.ended_at = Some(e.at);
                s.outcome = Some(e.state.clone());
            }
            _ => {}
        }
        if e.physician_id.is_some() {
            s.physician_id = e.physician_id.clone();
        }
        if e.patient_ref.is_some() {
            s.patient_ref = e.patient_ref.clone();
        }
    }
    if let Some(w) = waiting_at {
        s.created_at = w;
    }
    Ok(s)
}

pub(super) const EVENT_COLS: &str = "state, at, actor, physician_id, patient_ref";

/// The `WHERE` clause of a `VisitFilter` over `visits v`: binds `$1` room, `$2`
/// physician, `$3` from, `$4` to.
pub(super) const VISIT_FILTER: &str = "($1 IS NULL OR v.room_id = $1) \
     AND ($2 IS NULL OR v.physician_id = $2 OR v.admitted_by = $2) \
     AND ($3 IS NULL OR v.created_at >= $3) AND ($4 IS NULL OR v.created_at < $4)";

pub(super) const AUDIT_COLS: &str =
    "seq, at, actor, action, patient_ref, visit_id, sections, outcome, reason, prev_hash, hash";

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub(super) seq: i64,
    at: i64,
    actor: String,
    action: String,
    patient_ref: Option<String>,
    visit_id: Option<String>,
    sections: String,
    outcome: String,
    reason: Option<String>,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    pub(super) fn into_entry(self) -> Result<AuditEntry, DurableError> {
        let entry = NewAuditEntry {
            at: self.at,
            actor: self.actor,
            action: self.action,
            patient_ref: parse_opt_id::<PatientRef>(
                self.patient_ref.as_deref(),
                "audit_log.patient_ref",
            )?,
            visit: parse_opt_id(self.visit_id.as_deref(), "audit_log.visit_id")?,
            sections: parse_json(&self.sections, "audit_log.sections")?,
            outcome: AuditOutcome::parse(&self.outcome)
                .ok_or_else(|| DurableError::Internal("unknown audit outcome in store".into()))?,
            reason: self.reason,
        };
        Ok(AuditEntry {
            seq: self.seq,
            entry,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// A row of either record-write outbox for the admins' list, its columns under these names.
#[derive(sqlx::FromRow)]
pub(super) struct PendingRow {
    referral_id: Option<String>,
    visit_id: String,
    staff_id: String,
    saved_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_attempt_at: Option<i64>,
    last_error: Option<String>,
    lease_until: Option<i64>,
    state: String,
}

impl PendingRow {
    pub(super) fn decode(self) -> Result<super::PendingWrite, DurableError> {
        Ok(super::PendingWrite {
            referral: match self.referral_id {
                Some(r) => Some(parse_id(&r, "referrals.id")?),
                None => None,
            },
            visit: parse_id(&self.visit_id, "visit_id")?,
            staff: parse_id(&self.staff_id, "staff_id")?,
            saved_at: self.saved_at,
            attempts: self.attempts.clamp(0, u32::MAX as i64) as u32,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_error: self.last_error,
            leased_until: self.lease_until,
            failed: self.state == super::record_writes::FAILED,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(state: VisitState, at: i64, physician: Option<&str>) -> EventRow {
        EventRow {
            state: state.as_str().into(),
            at,
            actor: None,
            physician_id: physician.map(Into::into),
            patient_ref: None,
        }
    }

    #[test]
    fn summary_of_a_full_visit() {
        let s = summarise(&[
            ev(VisitState::Waiting, 1_000, None),
            ev(VisitState::Admitted, 61_000, Some("s_a")),
            ev(VisitState::InCall, 65_000, Some("s_a")),
            ev(VisitState::Ended, 665_000, None),
        ])
        .unwrap();
        assert_eq!(s.created_at, 1_000);
        assert_eq!(s.admitted_at, Some(61_000));
        assert_eq!(s.admitted_by.as_deref(), Some("s_a"));
        assert_eq!(s.call_started_at, Some(65_000));
        assert_eq!(
            (s.ended_at, s.outcome.as_deref()),
            (Some(665_000), Some("ended"))
        );
        assert_eq!(s.state, "ended");
        assert_eq!(s.physician_id.as_deref(), Some("s_a"));
    }

    #[test]
    fn a_visit_seen_first_after_waiting_is_dated_by_its_first_event() {
        let s = summarise(&[ev(VisitState::Admitted, 5, Some("s_a"))]).unwrap();
        assert_eq!(s.created_at, 5);
        assert_eq!(s.outcome, None);
    }

    #[test]
    fn email_and_roles_checks() {
        assert!(check_email("a@b").is_ok());
        assert!(check_email("ab").is_err());
        assert!(check_email("a b@c").is_err());
        assert!(check_roles(&[]).is_err());
        assert!(check_roles(&[Role::Patient]).is_err());
        assert_eq!(
            check_roles(&[Role::Admin, Role::Physician, Role::Admin]).unwrap(),
            vec![Role::Physician, Role::Admin]
        );
    }
}
