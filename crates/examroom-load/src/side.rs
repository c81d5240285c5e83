//! One participant's connection during a visit, kept the way its page keeps it.
//!
//! examroom: told `going_away`, or closed, a side reconnects after a jittered delay (the
//! notice's `reconnect_after_ms`, else half a second) with its resume token, and keeps
//! trying, backing off; after a failed try it goes to the next node, as a balancer that
//! took a dead backend out would send it. It never reloads: no new token, no new visit.
//! PeerJS has no resume: there a closed connection breaks the visit, as before.
//!
//! A side numbers the candidates it sends and keeps which of its peer's numbers arrived
//! (a bit set), so a run can say how many relays were lost and how many arrived twice,
//! and when, after a fault, the first relay sent after it arrived.

use super::{Ctx, Server, Ws, connect, next_text, send, wait_for, wire};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// The longest a reconnection (TCP, `hello`, `welcome`) may take before it counts as failed:
/// a stalled node accepts the connection in its kernel and never answers.
const RECONNECT_WITHIN: Duration = Duration::from_secs(5);
/// The delay after a close without notice, before jitter.
const AFTER_CLOSE: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Side {
    /// "physician" or "patient", for error messages.
    pub who: &'static str,
    token: String,
    /// Index into the run's node URLs: where it connects now.
    node: usize,
    src: IpAddr,
    /// `None` while it waits to reconnect.
    pub ws: Option<Ws>,
    resume: Option<String>,
    retry_at: Instant,
    failures: u32,
    /// Candidates sent, numbered from 1.
    pub sent: u64,
    /// Which of the peer's candidates arrived, by sequence number.
    seen: Vec<u64>,
    /// Distinct candidates from the peer that arrived.
    pub distinct: u64,
    /// Candidates from the peer that arrived a second time.
    pub duplicated: u64,
    last_arrival: Option<u64>,
    /// The longest time without a relay from the peer while relays were flowing, ns.
    pub max_gap: u64,
    /// When the first relay sent after the fault ended arrived, ns on the run's clock.
    pub restored_at: Option<u64>,
}

/// What happens next on a side.
pub(crate) enum Event {
    Text(String),
    Closed(String),
    /// Time to reconnect.
    Due,
}

impl Side {
    /// A side joined to `node` with `ws`, holding `resume` from its `welcome`.
    pub fn new(
        who: &'static str,
        token: &str,
        node: usize,
        src: IpAddr,
        ws: Ws,
        resume: Option<String>,
    ) -> Side {
        Side {
            ws: Some(ws),
            resume,
            ..Side::unconnected(who, token, node, src)
        }
    }

    fn unconnected(who: &'static str, token: &str, node: usize, src: IpAddr) -> Side {
        Side {
            who,
            token: token.to_owned(),
            node,
            src,
            ws: None,
            resume: None,
            retry_at: Instant::now(),
            failures: 0,
            sent: 0,
            seen: Vec::new(),
            distinct: 0,
            duplicated: 0,
            last_arrival: None,
            max_gap: 0,
            restored_at: None,
        }
    }

    /// The next message, the connection ending, or (while disconnected) the time to
    /// reconnect. Cancel-safe.
    pub async fn next(&mut self) -> Event {
        match &mut self.ws {
            Some(ws) => match next_text(ws).await {
                Ok(t) => Event::Text(t),
                Err(e) => Event::Closed(e),
            },
            None => {
                tokio::time::sleep_until(self.retry_at).await;
                Event::Due
            }
        }
    }

    /// Send `text` if connected; a failed send is a lost connection.
    pub async fn send(&mut self, ctx: &Ctx, text: String) -> bool {
        let Some(ws) = &mut self.ws else {
            return false;
        };
        if send(ws, text).await.is_ok() {
            return true;
        }
        self.lost(ctx, "closed", AFTER_CLOSE);
        false
    }

    /// Send the next numbered candidate to `peer` (nothing while disconnected: a page
    /// cannot send either).
    pub async fn relay(&mut self, ctx: &Ctx, peer: &str) {
        let seq = self.sent + 1;
        if self
            .send(ctx, ctx.wire.candidate(peer, ctx.now(), seq))
            .await
        {
            self.sent = seq;
        }
    }

    /// The connection is gone (`why`, counted as a notice): reconnect after `after`,
    /// jittered between half and one and a half times it so that a node's participants do
    /// not all come back in the same millisecond.
    pub fn lost(&mut self, ctx: &Ctx, why: &str, after: Duration) {
        ctx.notice(why);
        self.ws = None;
        self.retry_at = Instant::now() + after.mul_f64(0.5 + rand::random::<f64>());
    }

    /// Reconnect and resume. A failure backs off and moves to the next node.
    pub async fn reconnect(&mut self, ctx: &Ctx) {
        let url = &ctx.urls[self.node];
        let hello = serde_json::json!({
            "type": "hello", "v": 1, "token": self.token, "resume": self.resume,
        })
        .to_string();
        let attempt = tokio::time::timeout(RECONNECT_WITHIN, async {
            let mut ws = connect(url, self.src).await?;
            send(&mut ws, hello).await?;
            let welcome = wait_for(ctx, &mut ws, "welcome", |_| true).await?;
            Ok::<_, String>((ws, resume_token(&welcome)))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no welcome within {RECONNECT_WITHIN:?}")));
        match attempt {
            Ok((ws, resume)) => {
                self.ws = Some(ws);
                self.resume = resume.or(self.resume.take());
                self.failures = 0;
                ctx.notice("resumed");
            }
            Err(e) => {
                self.failures += 1;
                self.node = (self.node + 1) % ctx.urls.len();
                ctx.note_error(format!("{} reconnecting: {e}", self.who));
                let backoff = AFTER_CLOSE * 2u32.pow(self.failures.min(4));
                self.lost(ctx, "reconnect_failed", backoff.min(MAX_BACKOFF));
            }
        }
    }

    /// Relays start flowing now: gaps are measured from here.
    pub fn start_flowing(&mut self, now: u64) {
        self.last_arrival = Some(now);
    }

    /// Relays stop flowing: a silence up to now counts as a gap.
    pub fn stop_flowing(&mut self, now: u64) {
        if let Some(last) = self.last_arrival.take() {
            self.max_gap = self.max_gap.max(now.saturating_sub(last));
        }
    }

    /// A relay from the peer arrived at `now`, numbered `seq`, sent at `ts`; `mark` is
    /// when the fault ended (`u64::MAX` before).
    pub fn arrived(&mut self, seq: Option<u64>, ts: Option<u64>, now: u64, mark: u64) {
        if let Some(seq) = seq {
            let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
            if self.seen.len() <= word {
                self.seen.resize(word + 1, 0);
            }
            if self.seen[word] & bit == 0 {
                self.seen[word] |= bit;
                self.distinct += 1;
            } else {
                self.duplicated += 1;
            }
            if let Some(last) = self.last_arrival.replace(now) {
                self.max_gap = self.max_gap.max(now.saturating_sub(last));
            }
        }
        if self.restored_at.is_none() && ts.is_some_and(|t| t >= mark) {
            self.restored_at = Some(now);
        }
    }

    /// Handle what happened on this side; returns the type of a message that is neither
    /// a relay nor a ping. `peer` is who a closed-loop `bounce` answers.
    pub async fn on(
        &mut self,
        ctx: &Ctx,
        event: Event,
        peer: &str,
        bounce: bool,
    ) -> Result<Option<String>, String> {
        let text = match event {
            Event::Due => {
                self.reconnect(ctx).await;
                return Ok(None);
            }
            Event::Closed(e) if ctx.server == Server::PeerJs => {
                return Err(format!("{} side: {e}", self.who));
            }
            Event::Closed(_) => {
                self.lost(ctx, "closed", AFTER_CLOSE);
                return Ok(None);
            }
            Event::Text(t) => t,
        };
        match ctx.wire.classify(&text) {
            wire::Incoming::Relay(ts) => {
                let now = ctx.now();
                ctx.relayed.fetch_add(1, Relaxed);
                if let Some(ts) = ts
                    && ctx.measuring.load(Relaxed)
                {
                    ctx.record(|h| &mut h.relay, now.saturating_sub(ts));
                }
                self.arrived(wire::sequence(&text), ts, now, ctx.mark.load(Relaxed));
                if bounce {
                    self.relay(ctx, peer).await;
                }
                Ok(None)
            }
            wire::Incoming::Ping => {
                self.send(ctx, r#"{"type":"pong"}"#.into()).await;
                Ok(None)
            }
            wire::Incoming::Error => {
                ctx.server_errors.fetch_add(1, Relaxed);
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                ctx.notice(&format!("error:{}", v["code"].as_str().unwrap_or("?")));
                ctx.note_error(text);
                Ok(Some("error".into()))
            }
            wire::Incoming::Other => {
                let ty = wire::msg_type(&text).unwrap_or_default();
                if ctx.server == Server::Examroom && ty == "going_away" {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let ms = v["reconnect_after_ms"].as_u64().unwrap_or(500);
                    self.lost(ctx, "going_away", Duration::from_millis(ms));
                } else if ctx.server == Server::Examroom && !ROUTINE.contains(&ty.as_str()) {
                    ctx.notice(&ty);
                }
                Ok(Some(ty))
            }
        }
    }
}

/// What a visit hears as a matter of course: not a notice.
const ROUTINE: [&str; 7] = [
    "welcome",
    "token",
    "queue",
    "admitted",
    "visit_ended",
    "pong",
    "end_of_candidates",
];

/// The resume token in a `welcome`.
pub(crate) fn resume_token(welcome: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(welcome).ok()?;
    v["resume_token"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> Side {
        Side::unconnected("patient", "", 0, IpAddr::from([127, 0, 0, 1]))
    }

    #[test]
    fn a_relay_that_arrives_twice_is_counted_once_and_as_a_duplicate() {
        let mut s = side();
        s.start_flowing(0);
        for (seq, at) in [(1, 10), (2, 20), (2, 25), (4, 90), (200, 100)] {
            s.arrived(Some(seq), Some(at), at, u64::MAX);
        }
        assert_eq!((s.distinct, s.duplicated), (4, 1));
        assert_eq!(s.max_gap, 65, "the longest silence between two arrivals");
        assert_eq!(s.restored_at, None, "no fault, nothing to restore");
    }

    #[test]
    fn restored_is_when_the_first_relay_sent_after_the_fault_arrived() {
        let mut s = side();
        s.arrived(Some(1), Some(50), 400, 100);
        assert_eq!(s.restored_at, None, "sent before the fault ended");
        s.arrived(Some(2), Some(150), 500, 100);
        s.arrived(Some(3), Some(200), 600, 100);
        assert_eq!(s.restored_at, Some(500));
        s.stop_flowing(2_000);
        assert_eq!(s.max_gap, 1_400, "a silence up to the end counts");
    }
}
