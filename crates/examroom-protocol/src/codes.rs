//! The stable reason codes clients switch on: [`ErrorCode`] for the WebSocket protocol
//! (`{"type":"error","code":…}`, docs/protocol.md) and [`ApiErrorCode`] for the HTTP API
//! (`{"error":…}`, docs/api.md). Each is one list below; the wire name, `ALL` and `as_str`
//! come from that list, so a code cannot be sent that the enum (and so the docs tests)
//! does not know.

/// One enum, its wire names and the list of all of them, from a single table.
macro_rules! codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every code, in the order of the table.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code as it travels on the wire (also a metrics label).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

codes! {
    /// Every error code the signalling server sends. Stable: clients switch on them.
    ErrorCode {
        BadJson = "bad_json",
        UnknownType = "unknown_type",
        BadMessage = "bad_message",
        TooLarge = "too_large",
        RateLimited = "rate_limited",
        HelloRequired = "hello_required",
        HelloTimeout = "hello_timeout",
        UnsupportedVersion = "unsupported_version",
        Unauthenticated = "unauthenticated",
        TokenExpired = "token_expired",
        Forbidden = "forbidden",
        NotYourRoom = "not_your_room",
        NotInVisit = "not_in_visit",
        UnknownPeer = "unknown_peer",
        UnknownVisit = "unknown_visit",
        VisitClosed = "visit_closed",
        IllegalTransition = "illegal_transition",
        Busy = "busy",
        NotOfferedToYou = "not_offered_to_you",
        RoomFull = "room_full",
        RoomNotFound = "room_not_found",
        ChatDisabled = "chat_disabled",
        Superseded = "superseded",
        SlowConsumer = "slow_consumer",
        HeartbeatTimeout = "heartbeat_timeout",
        AccessRevoked = "access_revoked",
        ServerFull = "server_full",
        Unavailable = "unavailable",
        TooManyChecks = "too_many_checks",
        Internal = "internal",
    }
}

codes! {
    /// Every reason code an HTTP error answer carries (`{"error": code, "message", "field"?}`).
    /// Stable: clients switch on them. docs/api.md lists each, and only these.
    ApiErrorCode {
        // 400
        BadJson = "bad_json",
        BadBody = "bad_body",
        BadRequest = "bad_request",
        // 401: no or bad credentials
        NoCredentials = "no_credentials",
        TokenMalformed = "token_malformed",
        TokenBadSignature = "token_bad_signature",
        TokenExpired = "token_expired",
        TokenNotYetValid = "token_not_yet_valid",
        TokenWrongAudience = "token_wrong_audience",
        TokenUnknownKey = "token_unknown_key",
        SessionRevoked = "session_revoked",
        BadCredentials = "bad_credentials",
        MetricsTokenRequired = "metrics_token_required",
        BadMetricsToken = "bad_metrics_token",
        // 403: signed in, not allowed
        AccountDeactivated = "account_deactivated",
        InvitesDisabled = "invites_disabled",
        NotStaff = "not_staff",
        NotAdmin = "not_admin",
        NotPhysician = "not_physician",
        NotPatient = "not_patient",
        NotParticipant = "not_participant",
        NotYourRoom = "not_your_room",
        NotYourVisit = "not_your_visit",
        NotYourVisits = "not_your_visits",
        Csrf = "csrf",
        IdpNotLinked = "idp_not_linked",
        OriginNotAllowed = "origin_not_allowed",
        PatientRefNotAllowed = "patient_ref_not_allowed",
        StaffCannotJoinAsPatient = "staff_cannot_join_as_patient",
        IdentityNotConfirmed = "identity_not_confirmed",
        IdentityLocked = "identity_locked",
        IdentityMismatch = "identity_mismatch",
        IdentityUnverifiable = "identity_unverifiable",
        NoPatientRecord = "no_patient_record",
        VisitClosed = "visit_closed",
        LinkNotYetValid = "link_not_yet_valid",
        // Referrals (issue 22): 403, 404, 409, 422
        NotYourReferral = "not_your_referral",
        UnknownReferral = "unknown_referral",
        UnknownPhysician = "unknown_physician",
        ReferralAnswered = "referral_answered",
        SelfReferral = "self_referral",
        // 404
        NotFound = "not_found",
        UnknownRoom = "unknown_room",
        UnknownVisit = "unknown_visit",
        UnknownLink = "unknown_link",
        UnknownSetupToken = "unknown_setup_token",
        NoRecord = "no_record",
        // Directory (issue 22): 422, a place to search from that is not known
        UnknownPlace = "unknown_place",
        // 405, 408
        MethodNotAllowed = "method_not_allowed",
        RequestTimeout = "request_timeout",
        // 409
        Conflict = "conflict",
        VisitNotEnded = "visit_not_ended",
        LinkInUse = "link_in_use",
        // 410
        LinkRevoked = "link_revoked",
        LinkExpired = "link_expired",
        AdminExists = "admin_exists",
        AlreadyUsed = "already_used",
        Expired = "expired",
        // 413, 415, 422
        TooLarge = "too_large",
        UnsupportedMediaType = "unsupported_media_type",
        InvalidField = "invalid_field",
        InvalidBody = "invalid_body",
        // 429
        RateLimited = "rate_limited",
        TooManyConnections = "too_many_connections",
        // 5xx
        Internal = "internal",
        RecordsUnavailable = "records_unavailable",
        Unavailable = "unavailable",
        RecordsTimeout = "records_timeout",
        ServerFull = "server_full",
        // Appointments (issue 21): 404, 409, 410, 422, 503
        UnknownAppointment = "unknown_appointment",
        SlotTaken = "slot_taken",
        AppointmentClosed = "appointment_closed",
        HoldExpired = "hold_expired",
        CodeAttemptsUsed = "code_attempts_used",
        SlotUnavailable = "slot_unavailable",
        WrongCode = "wrong_code",
        RemindersOff = "reminders_off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_what_serde_writes_and_reads() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *c);
        }
        for c in ApiErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ApiErrorCode>(&json).unwrap(), *c);
        }
    }

    #[test]
    fn no_code_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        assert!(ErrorCode::ALL.iter().all(|c| seen.insert(c.as_str())));
        let mut seen = std::collections::BTreeSet::new();
        assert!(ApiErrorCode::ALL.iter().all(|c| seen.insert(c.as_str())));
    }
}
