//! Staff passwords: Argon2id (PHC strings, the crate's default parameters), the policy
//! every new password meets, and a dummy hash so an unknown email costs the same time
//! as a wrong password.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters (hashing cost is bounded).
pub const MAX_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the password must be at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must be at most {MAX_CHARS} characters")]
    TooLong,
}

pub fn check_policy(password: &str) -> Result<(), PolicyError> {
    match password.chars().count() {
        n if n < MIN_CHARS => Err(PolicyError::TooShort),
        n if n > MAX_CHARS => Err(PolicyError::TooLong),
        _ => Ok(()),
    }
}

/// An Argon2id PHC string for `password`. CPU-heavy: call from `spawn_blocking`.
pub fn hash(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&crate::ids::random_id()))
}

/// Whether `password` matches `stored`. With no stored hash (unknown email, no
/// password set) a dummy hash is checked anyway, so both cases take as long.
/// CPU-heavy: call from `spawn_blocking`.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(h) => (h, true),
        None => (dummy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
        assert!(!verify("correct horse battery", None));
    }

    #[test]
    fn policy_counts_characters() {
        assert_eq!(check_policy("short"), Err(PolicyError::TooShort));
        assert!(check_policy("ééééééééééé").is_err());
        assert!(check_policy("twelve chars").is_ok());
    }
}
