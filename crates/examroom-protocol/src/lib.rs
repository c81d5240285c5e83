//! The signalling wire protocol: JSON messages tagged by `type`, version [`VERSION`], and the
//! typed identifiers they carry ([`ids`]).
//!
//! This is the shared vocabulary of the WebSocket edge and the visit state machine, and of
//! every client that speaks to them — the load generator and benches in `examroom-load`
//! included. It is a crate of its own so that those clients can use the server's exact types
//! without the server depending on them; the server re-exports it as `examroom::protocol`
//! (and the identifiers as `examroom::ids`). It holds data and parsing only: no I/O, no clock.
//!
//! Every message in both directions and every error code is written up in
//! `docs/protocol.md`; a test checks that the document names each of them.

pub mod codes;
pub mod ids;

pub use codes::{ApiErrorCode, ErrorCode};

use ids::{ParticipantId, RoomId, VisitId};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as timestamps travel on the wire (the same type as
/// the server's `visit::Millis`).
pub type Millis = i64;

/// Protocol version spoken by this server. A client sends it in `hello`.
pub const VERSION: u32 = 1;

/// An ICE candidate as browsers give it (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

impl Candidate {
    /// The candidate type named in the attribute line (`typ host|srflx|prflx|relay`).
    pub fn kind(&self) -> Option<CandidateKind> {
        let mut words = self.candidate.split_whitespace();
        while let Some(w) = words.next() {
            if w == "typ" {
                return words.next().map(CandidateKind::from_sdp);
            }
        }
        None
    }
}

/// Kind of an ICE candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateKind {
    Host,
    Srflx,
    Prflx,
    Relay,
    Unknown,
}

impl CandidateKind {
    /// The kind as SDP names it after `typ`.
    pub fn from_sdp(s: &str) -> Self {
        match s {
            "host" => Self::Host,
            "srflx" => Self::Srflx,
            "prflx" => Self::Prflx,
            "relay" => Self::Relay,
            _ => Self::Unknown,
        }
    }
}

/// An ICE server as browsers take it (`RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerInfo {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on a connection: protocol version, token, and the resume token of
    /// the previous connection when the page still holds its peer connections. No token
    /// (or an empty one): the staff session cookie that came with the upgrade.
    Hello {
        v: u32,
        #[serde(default)]
        token: String,
        #[serde(default)]
        resume: Option<String>,
    },
    Ping {},
    Pong {},
    /// Patient: name and reason, when the link did not carry them.
    Profile {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Patient: result of the device and connection check, shown to the physician.
    DeviceCheck {
        ok: bool,
        summary: String,
    },
    /// Physician: available for walk-in offers, or away.
    Availability {
        available: bool,
    },
    Admit {
        room: RoomId,
        visit: VisitId,
    },
    Deny {
        room: RoomId,
        visit: VisitId,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Physician: send an admitted patient back to the waiting room.
    SendBack {
        room: RoomId,
        visit: VisitId,
    },
    /// Physician: short text to a waiting patient.
    MessagePatient {
        room: RoomId,
        visit: VisitId,
        text: String,
    },
    WalkInAccept {
        room: RoomId,
        visit: VisitId,
    },
    WalkInPass {
        room: RoomId,
        visit: VisitId,
    },
    EndVisit {
        room: RoomId,
        visit: VisitId,
    },
    /// Leave the current visit (or the waiting room) for good.
    Leave {},
    /// Relay to another participant of the same visit.
    Offer {
        to: ParticipantId,
        sdp: String,
    },
    Answer {
        to: ParticipantId,
        sdp: String,
    },
    Candidate {
        to: ParticipantId,
        candidate: Candidate,
    },
    EndOfCandidates {
        to: ParticipantId,
    },
    /// Relay: whether your microphone and camera are on, for the badges on the peer's
    /// view of your tile (a disabled track arrives as silence or black, not as "off").
    MediaState {
        to: ParticipantId,
        audio: bool,
        video: bool,
    },
    /// Text chat to everyone in the current visit.
    Chat {
        text: String,
    },
    /// Connection check: an SDP offer (with a data channel) to the server's own peer.
    CheckOffer {
        sdp: String,
    },
    /// Connection check: a trickled candidate for the server's peer (empty = end).
    CheckCandidate {
        candidate: Candidate,
    },
}

impl ClientMsg {
    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::Ping {} => "ping",
            ClientMsg::Pong {} => "pong",
            ClientMsg::Profile { .. } => "profile",
            ClientMsg::DeviceCheck { .. } => "device_check",
            ClientMsg::Availability { .. } => "availability",
            ClientMsg::Admit { .. } => "admit",
            ClientMsg::Deny { .. } => "deny",
            ClientMsg::SendBack { .. } => "send_back",
            ClientMsg::MessagePatient { .. } => "message_patient",
            ClientMsg::WalkInAccept { .. } => "walk_in_accept",
            ClientMsg::WalkInPass { .. } => "walk_in_pass",
            ClientMsg::EndVisit { .. } => "end_visit",
            ClientMsg::Leave {} => "leave",
            ClientMsg::Offer { .. } => "offer",
            ClientMsg::Answer { .. } => "answer",
            ClientMsg::Candidate { .. } => "candidate",
            ClientMsg::EndOfCandidates { .. } => "end_of_candidates",
            ClientMsg::MediaState { .. } => "media_state",
            ClientMsg::Chat { .. } => "chat",
            ClientMsg::CheckOffer { .. } => "check_offer",
            ClientMsg::CheckCandidate { .. } => "check_candidate",
        }
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        v: u32,
        participant: ParticipantId,
        role: String,
        name: String,
        resume_token: String,
        heartbeat_secs: u64,
        ice_servers: Vec<IceServerInfo>,
        rooms: Vec<RoomId>,
    },
    Ping {},
    Pong {},
    Error {
        code: ErrorCode,
        message: String,
        /// The `type` of the client message this answers, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<String>,
    },
    /// The server is shutting down: reconnect after the delay (to any node).
    GoingAway {
        reason: String,
        reconnect_after_ms: u64,
    },
    /// Physician: the whole waiting queue of one room, sent on every change.
    Queue {
        room: RoomId,
        room_name: String,
        entries: Vec<QueueEntry>,
    },
    /// Patient: you are waiting, at this position. `message` is the room's waiting
    /// message; `messages` the same in other languages, by language tag: a page shows the
    /// one of its language, else `message`.
    Waiting {
        room: RoomId,
        visit: VisitId,
        position: usize,
        message: String,
        #[serde(default)]
        messages: std::collections::BTreeMap<String, String>,
    },
    /// Patient: a text from the physician.
    PhysicianMessage {
        text: String,
        at: Millis,
    },
    /// Patient: the preferred physician (language, gender) is not available; offered to the next free one.
    PreferenceUnavailable {
        what: String,
    },
    /// Physician (walk-in): this patient is offered to you; accept or pass before it expires.
    WalkInOffer {
        room: RoomId,
        visit: VisitId,
        name: String,
        reason: String,
        expires_at: Millis,
    },
    /// Physician (walk-in): the offer is gone (accepted, passed, expired or the patient left).
    WalkInWithdrawn {
        room: RoomId,
        visit: VisitId,
    },
    /// Everyone in the visit: the visit is admitted; these are the other participants.
    Admitted {
        room: RoomId,
        visit: VisitId,
        by: String,
        peers: Vec<PeerInfo>,
    },
    SentBack {
        room: RoomId,
        visit: VisitId,
    },
    Denied {
        room: RoomId,
        visit: VisitId,
        reason: String,
    },
    VisitEnded {
        room: RoomId,
        visit: VisitId,
        by: String,
        survey: bool,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerLeft {
        participant: ParticipantId,
        reason: String,
    },
    PeerReconnecting {
        participant: ParticipantId,
    },
    /// The peer came back on a new connection but kept its peer connections: restart ICE.
    PeerResumed {
        participant: ParticipantId,
    },
    Offer {
        from: ParticipantId,
        sdp: String,
    },
    Answer {
        from: ParticipantId,
        sdp: String,
    },
    Candidate {
        from: ParticipantId,
        candidate: Candidate,
    },
    EndOfCandidates {
        from: ParticipantId,
    },
    /// A peer's microphone (`audio`) and camera (`video`) are on or off.
    MediaState {
        from: ParticipantId,
        audio: bool,
        video: bool,
    },
    Chat {
        from: ParticipantId,
        name: String,
        text: String,
        at: Millis,
    },
    /// The visit's chat so far, oldest first: sent to the patient and physicians when a
    /// page (re)joins the visit without its previous state (a reload, another device) or is
    /// admitted again after being sent back. The page shows exactly these lines.
    ChatHistory {
        visit: VisitId,
        lines: Vec<ChatLine>,
    },
    /// A fresh token to use on the next reconnect (patients and guests).
    Token {
        token: String,
        expires_at: Millis,
    },
    /// Fresh ICE servers (TURN credentials are short-lived).
    IceServers {
        ice_servers: Vec<IceServerInfo>,
    },
    /// Connection check: the server peer's answer.
    CheckAnswer {
        sdp: String,
    },
    /// Connection check: a candidate of the server's peer (empty `candidate` = end).
    CheckCandidate {
        candidate: Candidate,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub participant: ParticipantId,
    pub role: String,
    pub name: String,
    /// Perfect negotiation: whether *you* are the polite side towards this peer.
    pub polite: bool,
}

/// One line of a visit's chat, as `chat` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub from: ParticipantId,
    pub name: String,
    pub text: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub visit: VisitId,
    pub name: String,
    pub reason: String,
    pub waiting_since: Millis,
    pub position: usize,
    /// `None`: not checked yet.
    pub device_ok: Option<bool>,
    pub device_summary: String,
    pub connected: bool,
    pub lang: Option<String>,
    /// Walk-in: the physician this patient is currently offered to.
    pub offered_to: Option<String>,
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            about: None,
        }
    }
    pub fn error_about(code: ErrorCode, message: impl Into<String>, about: &str) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            about: Some(about.to_owned()),
        }
    }
    /// Whether this is a relayed signalling message (counted in metrics).
    pub fn is_relay(&self) -> bool {
        matches!(
            self,
            ServerMsg::Offer { .. }
                | ServerMsg::Answer { .. }
                | ServerMsg::Candidate { .. }
                | ServerMsg::EndOfCandidates { .. }
                | ServerMsg::MediaState { .. }
                | ServerMsg::Chat { .. }
        )
    }
}

/// Names of every client and server message `type`, for the documentation check.
pub fn all_type_names() -> (Vec<&'static str>, Vec<&'static str>) {
    let client = vec![
        "hello",
        "ping",
        "pong",
        "profile",
        "device_check",
        "availability",
        "admit",
        "deny",
        "send_back",
        "message_patient",
        "walk_in_accept",
        "walk_in_pass",
        "end_visit",
        "leave",
        "offer",
        "answer",
        "candidate",
        "end_of_candidates",
        "media_state",
        "chat",
        "check_offer",
        "check_candidate",
    ];
    let server = vec![
        "welcome",
        "ping",
        "pong",
        "error",
        "going_away",
        "queue",
        "waiting",
        "physician_message",
        "preference_unavailable",
        "walk_in_offer",
        "walk_in_withdrawn",
        "admitted",
        "sent_back",
        "denied",
        "visit_ended",
        "peer_joined",
        "peer_left",
        "peer_reconnecting",
        "peer_resumed",
        "offer",
        "answer",
        "candidate",
        "end_of_candidates",
        "media_state",
        "chat",
        "chat_history",
        "token",
        "ice_servers",
        "check_answer",
        "check_candidate",
    ];
    (client, server)
}

/// The relayed messages, most of the traffic, when `type` comes first (as browsers and
/// our clients send it): parsed as a plain struct, without the tagged enum's buffering of
/// every field before it knows the variant. The same fields, the same refusal of unknown
/// ones; anything else, or anything this does not take, goes the general way, so what is
/// accepted and every error stay the enum's (a test holds the two equal).
fn parse_relayed(text: &str) -> Option<ClientMsg> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let ty = &rest[..rest.find('"')?];
    macro_rules! body {
        ($variant:ident { $($field:ident: $t:ty),* }) => {{
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Body {
                #[serde(rename = "type")]
                _type: serde::de::IgnoredAny,
                $($field: $t),*
            }
            let b: Body = serde_json::from_str(text).ok()?;
            ClientMsg::$variant { $($field: b.$field),* }
        }};
    }
    Some(match ty {
        "candidate" => body!(Candidate {
            to: ParticipantId,
            candidate: Candidate
        }),
        "offer" => body!(Offer {
            to: ParticipantId,
            sdp: String
        }),
        "answer" => body!(Answer {
            to: ParticipantId,
            sdp: String
        }),
        "end_of_candidates" => body!(EndOfCandidates { to: ParticipantId }),
        "media_state" => body!(MediaState {
            to: ParticipantId,
            audio: bool,
            video: bool
        }),
        _ => return None,
    })
}

/// How a client message failed to parse, mapped to an error the client can act on.
pub fn parse_client(text: &str) -> Result<ClientMsg, (ErrorCode, String, Option<String>)> {
    match parse_relayed(text) {
        Some(m) => Ok(m),
        None => parse_any(text),
    }
}

fn parse_any(text: &str) -> Result<ClientMsg, (ErrorCode, String, Option<String>)> {
    // The common case parses straight into the message; only a failure pays for the
    // slower path that says precisely what is wrong.
    if let Ok(m) = serde_json::from_str::<ClientMsg>(text) {
        return Ok(m);
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| (ErrorCode::BadJson, format!("not valid JSON: {e}"), None))?;
    let ty = match value.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => {
            return Err((
                ErrorCode::BadMessage,
                "message has no string `type` field".into(),
                None,
            ));
        }
    };
    if !all_type_names().0.contains(&ty.as_str()) {
        return Err((
            ErrorCode::UnknownType,
            format!("unknown message type `{ty}`"),
            Some(ty),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        (
            ErrorCode::BadMessage,
            format!("invalid `{ty}` message: {e}"),
            Some(ty),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_messages_parse_as_the_enum_does() {
        let cand = r#"{"candidate":"candidate:1 1 udp 2 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
        let cases = [
            format!(r#"{{"type":"candidate","to":"p_1","candidate":{cand}}}"#),
            format!(r#"{{"type":"candidate","candidate":{cand},"to":"p_1"}}"#),
            r#"{"type":"offer","to":"p_1","sdp":"v=0
"}"#
            .into(),
            r#"{"type":"answer","sdp":"v=0","to":"s_doc"}"#.into(),
            r#"{"type":"end_of_candidates","to":"p_1"}"#.into(),
            r#"{"type":"media_state","to":"p_1","audio":true,"video":false}"#.into(),
            r#"{"to":"p_1","type":"offer","sdp":"v=0"}"#.into(),
            // Refused alike: unknown, missing, duplicate, null or mistyped fields, bad ids.
            r#"{"type":"offer","to":"p_1","sdp":"v=0","audio":true}"#.into(),
            r#"{"type":"offer","to":"p_1","sdp":"v=0","audio":null}"#.into(),
            r#"{"type":"offer","to":"p_1"}"#.into(),
            r#"{"type":"offer","to":"p_1","sdp":null}"#.into(),
            r#"{"type":"offer","type":"answer","to":"p_1","sdp":"v=0"}"#.into(),
            r#"{"type":"offer","to":"p_1","to":"p_2","sdp":"v=0"}"#.into(),
            r#"{"type":"media_state","to":"p_1","audio":"yes","video":false}"#.into(),
            r#"{"type":"candidate","to":"p 1","candidate":{"candidate":""}}"#.into(),
            r#"{"type":"end_of_candidates","to":"p_1"} trailing"#.into(),
            r#"{"type":"end_of_candidates","to":"#.into(),
            r#"{"type":"offer","to":"p_1","sdp":"v=0"}"#.into(),
            r#"{"type":"chat","text":"hi"}"#.into(),
        ];
        for text in &cases {
            let general = parse_any(text);
            if let Some(fast) = parse_relayed(text) {
                assert_eq!(Ok(fast), general, "{text}");
            }
            assert_eq!(parse_client(text), general, "{text}");
        }
        assert!(
            parse_relayed(&cases[0]).is_some(),
            "the common shape takes the fast way"
        );
    }

    #[test]
    fn type_lists_match_the_enums() {
        // Every listed client type parses (given its fields) and nothing else does.
        let (client, server) = all_type_names();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json.as_str().unwrap(), code.as_str());
        }
        let sample = ServerMsg::Ping {};
        let v = serde_json::to_value(&sample).unwrap();
        assert!(server.contains(&v["type"].as_str().unwrap()));
        assert!(client.contains(&"hello"));
    }

    #[test]
    fn parse_errors_are_specific() {
        assert_eq!(parse_client("{nope").unwrap_err().0, ErrorCode::BadJson);
        assert_eq!(
            parse_client("{\"x\":1}").unwrap_err().0,
            ErrorCode::BadMessage
        );
        assert_eq!(
            parse_client("{\"type\":\"fly\"}").unwrap_err().0,
            ErrorCode::UnknownType
        );
        assert_eq!(
            parse_client("{\"type\":\"offer\"}").unwrap_err().0,
            ErrorCode::BadMessage
        );
        let ok = parse_client(r#"{"type":"offer","to":"p_1","sdp":"v=0"}"#).unwrap();
        assert!(matches!(ok, ClientMsg::Offer { .. }));
    }
}
