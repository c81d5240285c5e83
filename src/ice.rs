//! STUN/TURN servers handed to participants, with short-lived TURN credentials.
//!
//! TURN credentials follow the "TURN REST API" convention coturn implements with
//! `use-auth-secret` (draft-uberti-behave-turn-rest): the username is `"{expiry}:{participant}"`
//! and the password is `base64(HMAC-SHA1(shared_secret, username))`. coturn recomputes the
//! password from the username and refuses it once `expiry` (Unix seconds) has passed, so
//! examroom never stores credentials and a leaked one dies on its own.
//!
//! Invariant: the shared secret never leaves this module — not in `Debug`, not in a log line,
//! not in anything sent to a client. Only the derived per-participant password is.

use crate::config::{IceSettings, Secret};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// One entry of a browser's `RTCConfiguration.iceServers` (the `RTCIceServer` dictionary):
/// the wire type.
pub use crate::protocol::IceServerInfo as IceServer;

/// The ICE servers of this deployment, ready to mint per-participant credentials.
#[derive(Clone)]
pub struct IceConfig {
    stun_urls: Vec<String>,
    turn_urls: Vec<String>,
    turn_secret: Secret,
    credential_secs: i64,
}

impl std::fmt::Debug for IceConfig {
    // Written out so the secret's presence shows but never its value, even if `Secret`'s own
    // `Debug` were ever changed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &"[redacted]")
            .field("credential_secs", &self.credential_secs)
            .finish()
    }
}

impl IceConfig {
    pub fn from_settings(settings: &IceSettings) -> Self {
        Self {
            stun_urls: settings.stun_urls.clone(),
            turn_urls: settings.turn_urls.clone(),
            turn_secret: settings.turn_secret.clone(),
            credential_secs: i64::try_from(settings.turn_credential_secs).unwrap_or(i64::MAX),
        }
    }

    /// No STUN, no TURN: host candidates only (tests, or a server peer on a public address).
    pub fn host_only() -> Self {
        Self::from_settings(&IceSettings {
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: Secret::default(),
            turn_credential_secs: 0,
        })
    }

    /// The STUN servers alone (no TURN, so no credential minted): for examroom's own peer,
    /// which sits at a reachable address and must not spend TURN allocations on itself.
    pub fn stun_servers(&self) -> Vec<IceServer> {
        if self.stun_urls.is_empty() {
            return Vec::new();
        }
        vec![IceServer {
            urls: self.stun_urls.clone(),
            username: None,
            credential: None,
        }]
    }

    /// Whether any TURN server is configured.
    pub fn has_turn(&self) -> bool {
        !self.turn_urls.is_empty()
    }

    /// The ICE servers for `participant` (an opaque id; it appears in coturn's logs, so pass a
    /// pseudonymous id, never a name), and the Unix time their TURN credentials expire
    /// (`None` when no TURN server is configured).
    ///
    /// STUN URLs come as one entry without credentials; all TURN URLs share one entry with
    /// one freshly minted credential, as browsers expect.
    pub fn servers_for(&self, participant: &str, now_unix: i64) -> (Vec<IceServer>, Option<i64>) {
        let mut servers = self.stun_servers();
        if self.turn_urls.is_empty() {
            return (servers, None);
        }
        let expiry = now_unix.saturating_add(self.credential_secs);
        let (username, credential) = turn_credential(&self.turn_secret, participant, expiry);
        servers.push(IceServer {
            urls: self.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
        (servers, Some(expiry))
    }
}

/// A TURN REST credential: `("{expiry}:{participant}", base64(HMAC-SHA1(secret, username)))`.
///
/// Public so tests can mint credentials that are expired or signed with the wrong secret.
pub fn turn_credential(secret: &Secret, participant: &str, expiry_unix: i64) -> (String, String) {
    let username = format!("{expiry_unix}:{participant}");
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> IceSettings {
        IceSettings {
            stun_urls: vec!["stun:stun.clinic.example:3478".into()],
            turn_urls: vec![
                "turn:turn.clinic.example:3478?transport=udp".into(),
                "turn:turn.clinic.example:3478?transport=tcp".into(),
            ],
            turn_secret: Secret::new("north-wind-secret"),
            turn_credential_secs: 3600,
        }
    }

    #[test]
    fn turn_password_matches_an_independently_computed_hmac() {
        // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(
        //   b"north-wind-secret",b"1700003600:patient-42",hashlib.sha1).digest()).decode())'
        let (user, pass) = turn_credential(
            &Secret::new("north-wind-secret"),
            "patient-42",
            1_700_003_600,
        );
        assert_eq!(user, "1700003600:patient-42");
        assert_eq!(pass, "rjw2nkkCMRzMiJ6ljLu+LF1/jOY=");
    }

    #[test]
    fn servers_carry_stun_as_is_and_turn_with_a_credential_expiring_after_the_lifetime() {
        let ice = IceConfig::from_settings(&settings());
        let (servers, expiry) = ice.servers_for("patient-42", 1_700_000_000);
        assert_eq!(expiry, Some(1_700_003_600));
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:stun.clinic.example:3478"]);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[0].credential, None);
        assert_eq!(servers[1].urls.len(), 2);
        assert_eq!(
            servers[1].username.as_deref(),
            Some("1700003600:patient-42")
        );
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("rjw2nkkCMRzMiJ6ljLu+LF1/jOY=")
        );
    }

    #[test]
    fn stun_only_has_no_expiry_and_serializes_like_rtc_ice_server() {
        let mut s = settings();
        s.turn_urls.clear();
        let (servers, expiry) = IceConfig::from_settings(&s).servers_for("p", 10);
        assert_eq!(expiry, None);
        assert_eq!(
            serde_json::to_string(&servers).unwrap(),
            r#"[{"urls":["stun:stun.clinic.example:3478"]}]"#
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_or_in_what_clients_get() {
        let ice = IceConfig::from_settings(&settings());
        assert!(!format!("{ice:?}").contains("north-wind-secret"));
        let (servers, _) = ice.servers_for("p", 0);
        assert!(
            !serde_json::to_string(&servers)
                .unwrap()
                .contains("north-wind-secret")
        );
    }
}
