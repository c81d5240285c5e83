//! What the generator sends and how it reads what comes back, for both servers it measures.
//!
//! Every relayed payload carries `lgts=<nanoseconds>` — the sender's clock reading — inside
//! the SDP or the candidate string, so the receiver can compute latency on the same process
//! clock without any bookkeeping. Candidates also carry `lgseq=<n>`, the sender's count of
//! candidates sent, so the receiver can tell a lost relay from one that arrived twice. Messages are built from templates split around that
//! number, so building one is a few string copies.

use super::Server;

const TS: &str = "{LGTS}";

/// Message templates for one server, built once per run.
#[derive(Debug, Clone)]
pub struct Wire {
    server: Server,
    sdp: (String, String),
    candidate: (String, String),
}

/// What a received text message is, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A relayed offer, answer or candidate; with the sender's timestamp when it carries one.
    Relay(Option<u64>),
    /// examroom's heartbeat: answer with `pong`.
    Ping,
    /// An error or refusal from the server.
    Error,
    Other,
}

/// An SDP of about `bytes` bytes (as sent inside JSON), shaped like a browser's audio+video offer.
fn sdp_body(bytes: usize) -> String {
    let mut s = format!(
        "v=0\r\no=- {TS} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS lg\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
         a=ice-options:trickle\r\na=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02\r\n\
         a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107\r\nc=IN IP4 0.0.0.0\r\n\
         a=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
    );
    let mut pt = 96;
    while s.len() + 40 < bytes {
        s.push_str(&format!(
            "a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} nack pli\r\n"
        ));
        pt = if pt >= 127 { 96 } else { pt + 1 };
    }
    s
}

fn candidate_body(bytes: usize) -> String {
    let mut c = format!(
        "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 10.0.0.1 \
         rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10 {TS}"
    );
    // The JSON around the candidate string adds ~140 bytes.
    while c.len() + 140 < bytes {
        c.push('x');
    }
    c
}

/// Split a JSON-encoded string literal around the timestamp placeholder.
fn split(json: String) -> (String, String) {
    let at = json.find(TS).expect("template carries the placeholder");
    (json[..at].to_owned(), json[at + TS.len()..].to_owned())
}

impl Wire {
    pub fn new(server: Server, sdp_bytes: usize, candidate_bytes: usize) -> Wire {
        let sdp = serde_json::to_string(&sdp_body(sdp_bytes)).expect("string encodes");
        let candidate = serde_json::json!({
            "candidate": candidate_body(candidate_bytes),
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "EsAw",
        })
        .to_string();
        Wire {
            server,
            sdp: split(sdp),
            candidate: split(candidate),
        }
    }

    fn sdp(&self, ts: u64) -> String {
        format!("{}lgts={ts}{}", self.sdp.0, self.sdp.1)
    }

    pub fn offer(&self, to: &str, ts: u64) -> String {
        let sdp = self.sdp(ts);
        match self.server {
            Server::Examroom => format!(r#"{{"type":"offer","to":"{to}","sdp":{sdp}}}"#),
            Server::PeerJs => format!(
                r#"{{"type":"OFFER","dst":"{to}","payload":{{"sdp":{{"type":"offer","sdp":{sdp}}},"type":"media","connectionId":"mc_lg","browser":"chrome"}}}}"#
            ),
        }
    }

    pub fn answer(&self, to: &str, ts: u64) -> String {
        let sdp = self.sdp(ts);
        match self.server {
            Server::Examroom => format!(r#"{{"type":"answer","to":"{to}","sdp":{sdp}}}"#),
            Server::PeerJs => format!(
                r#"{{"type":"ANSWER","dst":"{to}","payload":{{"sdp":{{"type":"answer","sdp":{sdp}}},"type":"media","connectionId":"mc_lg","browser":"chrome"}}}}"#
            ),
        }
    }

    /// A candidate stamped with the send time `ts` and the sender's sequence number `seq`.
    pub fn candidate(&self, to: &str, ts: u64, seq: u64) -> String {
        let (a, b) = &self.candidate;
        match self.server {
            Server::Examroom => format!(
                r#"{{"type":"candidate","to":"{to}","candidate":{a}lgts={ts} lgseq={seq}{b}}}"#
            ),
            Server::PeerJs => format!(
                r#"{{"type":"CANDIDATE","dst":"{to}","payload":{{"candidate":{a}lgts={ts} lgseq={seq}{b},"type":"media","connectionId":"mc_lg"}}}}"#
            ),
        }
    }

    /// The keep-alive a client sends on its own: PeerJS clients send `HEARTBEAT` every 5 s;
    /// examroom clients only answer the server's `ping`.
    pub fn heartbeat(&self) -> Option<&'static str> {
        match self.server {
            Server::Examroom => None,
            Server::PeerJs => Some(r#"{"type":"HEARTBEAT"}"#),
        }
    }

    pub fn classify(&self, text: &str) -> Incoming {
        let ty = msg_type(text);
        match (self.server, ty.as_deref()) {
            (Server::Examroom, Some("offer" | "answer" | "candidate"))
            | (Server::PeerJs, Some("OFFER" | "ANSWER" | "CANDIDATE")) => {
                Incoming::Relay(timestamp(text))
            }
            (Server::Examroom, Some("ping")) => Incoming::Ping,
            (Server::Examroom, Some("error")) => Incoming::Error,
            (Server::PeerJs, Some("ERROR" | "ID-TAKEN" | "EXPIRE" | "LEAVE")) => Incoming::Error,
            _ => Incoming::Other,
        }
    }
}

/// The `type` of a JSON message. Both servers write `type` first, so the fast path is a
/// prefix match; anything else is parsed properly.
pub fn msg_type(text: &str) -> Option<String> {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#)
        && let Some(end) = rest.find('"')
    {
        return Some(rest[..end].to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("type")?.as_str().map(str::to_owned)
}

/// The sender's timestamp in a relayed payload.
pub fn timestamp(text: &str) -> Option<u64> {
    number_after(text, "lgts=")
}

/// The sender's sequence number in a relayed candidate.
pub fn sequence(text: &str) -> Option<u64> {
    number_after(text, "lgseq=")
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examroom_messages_parse_as_the_protocol_says() {
        let w = Wire::new(Server::Examroom, 3000, 300);
        let offer = w.offer("p_1", 42);
        assert!((2900..3300).contains(&offer.len()), "{}", offer.len());
        let msg = examroom_protocol::parse_client(&offer).expect("a valid offer");
        assert_eq!(msg.type_name(), "offer");
        let cand = w.candidate("p_1", 7, 12);
        assert!((250..350).contains(&cand.len()), "{}", cand.len());
        assert_eq!(
            examroom_protocol::parse_client(&cand).unwrap().type_name(),
            "candidate"
        );
        assert_eq!(timestamp(&cand), Some(7));
        assert_eq!(sequence(&cand), Some(12));
        assert_eq!(
            sequence(&w.offer("p_1", 7)),
            None,
            "only candidates are numbered"
        );
        assert_eq!(
            w.classify(&cand.replace("\"to\"", "\"from\"")),
            Incoming::Relay(Some(7))
        );
        assert_eq!(w.classify(r#"{"type":"ping"}"#), Incoming::Ping);
    }

    #[test]
    fn peerjs_messages_are_json_with_dst_and_payload() {
        let w = Wire::new(Server::PeerJs, 3000, 300);
        for m in [w.offer("b", 1), w.answer("b", 2), w.candidate("b", 3, 1)] {
            let v: serde_json::Value = serde_json::from_str(&m).expect("valid JSON");
            assert_eq!(v["dst"], "b");
            assert!(v["payload"].is_object());
        }
        assert_eq!(w.classify(&w.answer("b", 9)), Incoming::Relay(Some(9)));
        assert_eq!(msg_type(r#"{ "type": "OPEN" }"#).as_deref(), Some("OPEN"));
    }
}
