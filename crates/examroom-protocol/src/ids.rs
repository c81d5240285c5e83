//! Typed identifiers. Each is a newtype so a `VisitId` can never be passed where a
//! `RoomId` is expected, and none of them is a bare `String` in a signature.
//!
//! Identifiers are opaque, URL-safe strings. New ones are random (128 bits);
//! parsing one from the wire checks its shape so junk never reaches a store key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier we accept from outside (bytes).
pub const MAX_ID_LEN: usize = 64;

/// The identifier had characters or a length we do not accept.
#[derive(Debug, thiserror::Error)]
#[error("invalid identifier: must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_.:-]")]
pub struct InvalidId;

fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// A fresh random identifier body (128 bits, hex).
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Reads an identifier straight from the text: one allocation (none copied when the
/// deserializer already owns the string), and checked before it is kept. Every relayed
/// message carries one.
struct IdVisitor<T>(fn(String) -> T);

impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an identifier")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        self.visit_string(s.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<T, E> {
        if valid(&s) {
            Ok((self.0)(s))
        } else {
            Err(E::custom(InvalidId))
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random identifier.
            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, random_id()))
            }
            /// Parse an identifier that came from outside (wire, URL, store).
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if valid(s) { Ok(Self(s.to_owned())) } else { Err(InvalidId) }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(IdVisitor(Self))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A room: a physician's room or a walk-in pool, configured by an admin.
    RoomId, "r_"
);
id_type!(
    /// One visit: a patient's stay from the waiting room to the end of the call.
    VisitId, "v_"
);
id_type!(
    /// Someone taking part in visits over a WebSocket: a staff member, a patient
    /// (one per visit) or an invited guest. Stable across reconnects.
    ParticipantId, "p_"
);
id_type!(
    /// A staff account (physician and/or admin).
    StaffId, "s_"
);
id_type!(
    /// A referral from one physician to another (issue 22).
    ReferralId, "f_"
);
id_type!(
    /// A patient's record id in the record source (FHIR `Patient.id`).
    PatientRef, ""
);
id_type!(
    /// A join link (the stored row; the secret code is never an id).
    LinkId, "l_"
);
id_type!(
    /// A booked appointment (issue 21); its manage and join secrets are never ids.
    AppointmentId, "a_"
);
id_type!(
    /// One notice in the appointments outbox (a code, a confirmation, a reminder).
    NoticeId, "n_"
);

/// What someone is in a visit or in the clinic. A staff account holds one or more;
/// a patient's or guest's token exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Patient,
    Physician,
    Admin,
    /// Someone a physician invited into one visit (interpreter, family member).
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Physician => "physician",
            Role::Admin => "admin",
            Role::Guest => "guest",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_junk_and_accept_their_own() {
        let v = VisitId::new();
        assert_eq!(VisitId::parse(v.as_str()).unwrap(), v);
        assert!(VisitId::parse("").is_err());
        assert!(VisitId::parse("a b").is_err());
        assert!(VisitId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<VisitId>(&json).unwrap(), v);
        assert!(serde_json::from_str::<RoomId>("\"../etc\"").is_err());
    }
}
