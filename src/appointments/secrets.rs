//! The secrets of an appointment, derived with an HMAC of the server's appointment key
//! rather than stored: the contact code, the manage token and the join-link code.
//!
//! Deriving them lets the outbox worker put the same code or link in a notice it sends
//! hours later, on any node, without the store ever holding a usable secret: the store
//! keeps only the SHA-256 of the manage token and of the join code (as join links do), and
//! nothing of the six-digit code (a hash of one of a million codes would protect nothing).
//! Whoever lacks the key cannot compute any of them from an appointment id.

use crate::ids::AppointmentId;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The key every appointment secret is derived from. Built from the server's token secret
/// (`app::build`), so every node of a cluster derives the same secrets.
#[derive(Clone)]
pub struct AppointmentKey(Vec<u8>);

impl std::fmt::Debug for AppointmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppointmentKey([redacted])")
    }
}

impl AppointmentKey {
    /// A key of its own for appointments, so a secret derived here never equals a token
    /// signature made with the same server secret.
    pub fn from_server_secret(secret: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"examroom appointments v1");
        AppointmentKey(mac.finalize().into_bytes().to_vec())
    }

    fn mac(&self, purpose: &str, id: &AppointmentId) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The six-digit code sent to the patient's contact.
    pub fn contact_code(&self, id: &AppointmentId) -> String {
        let m = self.mac("code", id);
        let n = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) % 1_000_000;
        format!("{n:06}")
    }

    /// The manage token: 256 bits, URL-safe.
    pub fn manage_token(&self, id: &AppointmentId) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac("manage", id))
    }

    /// The join-link code: 256 bits, URL-safe, like a code a physician mints.
    pub fn join_code(&self, id: &AppointmentId) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac("join", id))
    }
}

/// The stored form of a manage token or join code: hex SHA-256, the same form join links
/// keep (`identity::hash_secret`; a test holds the two equal), so `/join/{code}` finds an
/// appointment's link like any other.
pub fn stored_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a typed code with the right one in time that does not depend on where they
/// differ.
pub fn same_code(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_per_key_and_appointment_and_differ_otherwise() {
        let k = AppointmentKey::from_server_secret("a-server-secret-of-32-bytes-at-least");
        let other = AppointmentKey::from_server_secret("another-server-secret-of-32-bytes!!");
        let a = AppointmentId::new();
        let b = AppointmentId::new();
        assert_eq!(k.contact_code(&a), k.contact_code(&a));
        assert_eq!(k.contact_code(&a).len(), 6);
        assert!(k.contact_code(&a).bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(k.manage_token(&a), k.manage_token(&b));
        assert_ne!(k.manage_token(&a), other.manage_token(&a));
        assert_ne!(k.manage_token(&a), k.join_code(&a));
        assert_eq!(k.join_code(&a).len(), 43);
        assert!(!format!("{k:?}").contains(&hex::encode(&k.0)));
    }

    #[test]
    fn codes_compare_whole() {
        assert!(same_code("012345", "012345"));
        assert!(!same_code("012344", "012345"));
        assert!(!same_code("01234", "012345"));
        assert!(!same_code("", "012345"));
    }
}
