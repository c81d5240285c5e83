//! Join links: the secret code a patient or guest opens, and the rules for redeeming it.
//!
//! - The code is 256 random bits, URL-safe base64; only its [`hash_secret`] is stored.
//! - Each link stands for one participant, derived from the link id with the server's
//!   key ([`participant_for`]), so reloading the page or reopening the link is the same
//!   person in the waiting room, not a second patient.
//! - A link is bound to the browser that last redeemed it (a device id the page keeps).
//!   Another browser is refused while the participant is connected; once nobody is
//!   connected it may take the link over.

use super::hash_secret;
use crate::durable::Link;
use crate::ids::ParticipantId;
use crate::visit::Millis;
use base64::Engine;

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
    pub fn code(&self) -> &'static str {
        match self {
            LinkRefusal::Revoked => "link_revoked",
            LinkRefusal::Expired => "link_expired",
            LinkRefusal::NotYetValid { .. } => "link_not_yet_valid",
            LinkRefusal::InUse => "link_in_use",
        }
    }
}

/// The time rules: revoked, expired, not yet valid.
pub fn check_usable(link: &Link, now: Millis) -> Result<(), LinkRefusal> {
    if link.revoked {
        return Err(LinkRefusal::Revoked);
    }
    if link.expires_at <= now {
        return Err(LinkRefusal::Expired);
    }
    match link.not_before {
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
