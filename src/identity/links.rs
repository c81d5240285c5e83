//! Join links: the secret code a patient or guest opens, and the rules for redeeming it.
//!
//! - The code is 256 random bits, URL-safe base64; only its [`hash_secret`] is stored.
//! - Each link stands for one participant, derived from the link id with the server's
//!   key ([`participant_for`]), so reloading the page or reopening the link is the same
//!   person in the waiting room, not a second patient.
//! - A link is bound to the browser that last redeemed it (a device id the page keeps).
//!   Another browser is refused while the participant is connected; once nobody is
//!   connected it may take the link over.

pub mod mint;

use super::hash_secret;
use super::ratelimit::Limiter;
use super::token::{NewToken, TokenKeys};
use crate::durable::{DurableError, DurableStore, Link, LinkKind};
use crate::ids::{ParticipantId, Role};
use crate::live::Live;
use crate::protocol::ApiErrorCode;
use crate::visit::{Millis, RoomConfig};
use base64::Engine;
use std::net::IpAddr;
use std::time::Duration;

/// Shortest device id a browser may send.
pub const MIN_DEVICE_CHARS: usize = 16;

/// A fresh join code: 256 bits, URL-safe, no padding (43 characters).
pub fn new_code() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The participant a link stands for: stable per link, unguessable without the key.
pub fn participant_for(key_fingerprint: &str, link: &crate::ids::LinkId) -> ParticipantId {
    let h = hash_secret(&format!("participant:{key_fingerprint}:{link}"));
    ParticipantId::parse(&format!("p_{}", &h[..32])).expect("hex is a valid id")
}

/// Why a link cannot be redeemed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("this link was revoked")]
    Revoked,
    #[error("this link has expired")]
    Expired,
    #[error("this link is not valid yet")]
    NotYetValid { at: Millis },
    #[error("this link is open in another browser")]
    InUse,
}

impl LinkRefusal {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            LinkRefusal::Revoked => ApiErrorCode::LinkRevoked,
            LinkRefusal::Expired => ApiErrorCode::LinkExpired,
            LinkRefusal::NotYetValid { .. } => ApiErrorCode::LinkNotYetValid,
            LinkRefusal::InUse => ApiErrorCode::LinkInUse,
        }
    }
}

/// The time rules: revoked, expired, not yet valid.
pub fn check_usable(link: &Link, now: Millis) -> Result<(), LinkRefusal> {
    if link.revoked {
        return Err(LinkRefusal::Revoked);
    }
    if link.new.expires_at <= now {
        return Err(LinkRefusal::Expired);
    }
    match link.new.not_before {
        Some(at) if now < at => Err(LinkRefusal::NotYetValid { at }),
        _ => Ok(()),
    }
}

/// The browser rule: the bound device always gets in; another one only while the
/// link's participant is not connected.
pub fn check_device(
    bound: Option<&str>,
    device_hash: &str,
    connected: bool,
) -> Result<(), LinkRefusal> {
    match bound {
        Some(b) if b != device_hash && connected => Err(LinkRefusal::InUse),
        _ => Ok(()),
    }
}

/// What redeeming a join link uses.
pub struct JoinServices<'a> {
    pub durable: &'a dyn DurableStore,
    pub live: &'a dyn Live,
    pub keys: &'a TokenKeys,
    /// Wrong codes per client address.
    pub guesses: &'a Limiter,
    /// Lifetime of the token a redeemed link gives, seconds.
    pub token_secs: u64,
}

/// One attempt to open a join link.
pub struct Redeem<'a> {
    /// The secret code from the link (never logged).
    pub code: &'a str,
    /// The browser's own random id, which the link is bound to.
    pub device: &'a str,
    pub ip: IpAddr,
    /// Who, when the request shows it comes from staff (a staff token, session cookie or
    /// staff-browser marker): named in the audit entry of a refused patient link.
    pub staff: Option<String>,
}

/// An opened link: the participant's token and what the page shows.
#[derive(Debug)]
pub struct Redeemed {
    pub token: String,
    /// Milliseconds.
    pub expires_at: i64,
    pub participant: ParticipantId,
    pub link: Link,
    pub room: RoomConfig,
    pub name: String,
}

/// Why a link was not opened. The messages are what the person is told.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("a random id of {MIN_DEVICE_CHARS}-200 characters")]
    BadDevice,
    #[error("too many wrong links; try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("this link is not valid; ask the clinic for a new one")]
    UnknownLink,
    #[error(transparent)]
    Refused(#[from] LinkRefusal),
    #[error(
        "this is a patient's link; staff cannot open it from a staff sign-in or a staff browser"
    )]
    StaffCannotJoinAsPatient,
    #[error("room not found")]
    RoomGone,
    #[error(transparent)]
    Store(#[from] DurableError),
}

/// Open a join link: check it is usable now and by this browser, bind it to the
/// browser, and issue the participant's token for the link's room and visit.
///
/// Every lookup counts as a wrong guess until it finds a link: the slot is taken before
/// the lookup, so concurrent guesses cannot all slip through one check. A patient link
/// opened by staff is refused and audited (staff must not join as the patient).
pub async fn redeem(
    with: &JoinServices<'_>,
    r: Redeem<'_>,
    now: Millis,
) -> Result<Redeemed, RedeemError> {
    let device = r.device.trim();
    if device.chars().count() < MIN_DEVICE_CHARS || device.len() > 200 {
        return Err(RedeemError::BadDevice);
    }
    let ip_key = r.ip.to_string();
    if let Err(wait) = with.guesses.take(&ip_key).await {
        tracing::warn!(ip = %r.ip, "join refused: rate limited");
        return Err(RedeemError::RateLimited(wait));
    }
    let link = match with.durable.link_by_code_hash(&hash_secret(r.code)).await {
        Ok(Some(l)) => {
            with.guesses.give_back(&ip_key).await;
            l
        }
        Ok(None) => {
            // The code itself is a secret: never logged.
            tracing::warn!(ip = %r.ip, "join refused: unknown link");
            return Err(RedeemError::UnknownLink);
        }
        Err(e) => {
            // Our failure, not a guess.
            with.guesses.give_back(&ip_key).await;
            return Err(e.into());
        }
    };
    if let Err(e) = check_usable(&link, now) {
        tracing::info!(link = %link.new.id, reason = e.code().as_str(), "join refused");
        return Err(e.into());
    }
    if link.new.kind == LinkKind::Patient
        && let Some(staff) = r.staff
    {
        with.durable
            .append_audit(crate::audit::NewAuditEntry {
                at: now,
                actor: staff.clone(),
                action: "links.redeem".into(),
                patient_ref: link.new.patient_ref.clone(),
                visit: Some(link.new.visit.clone()),
                sections: Vec::new(),
                outcome: crate::audit::AuditOutcome::Refused,
                reason: Some("staff_cannot_join_as_patient".into()),
            })
            .await?;
        tracing::warn!(link = %link.new.id, staff = %staff, "join refused: staff redeeming a patient link");
        return Err(RedeemError::StaffCannotJoinAsPatient);
    }
    let participant = participant_for(with.keys.fingerprint(), &link.new.id);
    let device_hash = hash_secret(&format!("device:{device}"));
    let bound = with.durable.link_device(&link.new.id).await?;
    let connected = with.live.is_connected(&participant).await;
    if let Err(e) = check_device(bound.as_deref(), &device_hash, connected) {
        tracing::info!(link = %link.new.id, reason = e.code().as_str(), "join refused");
        return Err(e.into());
    }
    if bound.as_deref() != Some(device_hash.as_str()) {
        with.durable
            .bind_link_device(&link.new.id, &device_hash, now)
            .await?;
    }
    with.durable.mark_link_used(&link.new.id, now).await?;
    let room = with
        .durable
        .room(&link.new.room)
        .await?
        .ok_or(RedeemError::RoomGone)?;
    let (role, default_name) = match link.new.kind {
        LinkKind::Patient => (Role::Patient, "Patient"),
        LinkKind::Guest => (Role::Guest, "Guest"),
    };
    let name = link
        .new
        .patient_name
        .clone()
        .unwrap_or_else(|| default_name.to_owned());
    let issued = chrono::Utc::now().timestamp();
    let token = with.keys.issue(
        NewToken {
            sub: participant.to_string(),
            name: name.clone(),
            roles: vec![role],
            room: Some(link.new.room.clone()),
            visit: Some(link.new.visit.clone()),
            patient: link.new.patient_ref.clone(),
            sid: Some(link.new.id.to_string()),
            lang: link.new.lang.clone(),
            ttl_secs: with.token_secs,
        },
        issued,
    );
    tracing::info!(link = %link.new.id, participant = %participant, "join link redeemed");
    Ok(Redeemed {
        token,
        expires_at: (issued + with.token_secs as i64) * 1000,
        participant,
        link,
        room,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_url_safe_and_distinct() {
        let a = new_code();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, new_code());
    }

    #[test]
    fn participant_is_stable_per_link_and_key() {
        let l = crate::ids::LinkId::new();
        assert_eq!(participant_for("k", &l), participant_for("k", &l));
        assert_ne!(participant_for("k", &l), participant_for("j", &l));
        assert_ne!(
            participant_for("k", &l),
            participant_for("k", &crate::ids::LinkId::new())
        );
    }

    #[test]
    fn another_browser_only_when_nobody_is_connected() {
        assert!(check_device(None, "a", true).is_ok());
        assert!(check_device(Some("a"), "a", true).is_ok());
        assert_eq!(check_device(Some("a"), "b", true), Err(LinkRefusal::InUse));
        assert!(check_device(Some("a"), "b", false).is_ok());
    }
}
