//! A `webrtc`-crate peer behind a protocol client: it does what a browser page does with
//! the signalling messages (answer offers, apply answers, trickle candidates both ways).

use super::Client;
use examroom::media::peer::{
    Candidate, Channel, LocalCandidate, LocalCandidates, Peer, pipe_candidates,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Relay signalling for `peer` over `client` towards participant `to`, until the
/// returned handle is aborted. Messages of other types are kept in the returned channel.
pub fn signal_over_ws(
    mut client: Client,
    peer: Arc<Peer>,
    mut local: LocalCandidates,
    to: String,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let (others_tx, others_rx) = tokio::sync::mpsc::unbounded_channel();
    for v in client.backlog.drain(..) {
        let _ = others_tx.send(v);
    }
    let task = tokio::spawn(async move {
        let mut local_done = false;
        loop {
            tokio::select! {
                c = local.recv(), if !local_done => match c {
                    Some(LocalCandidate::Candidate(c)) => {
                        let m = json!({"type": "candidate", "to": to, "candidate": c});
                        let _ = client.ws.send(Message::Text(m.to_string().into())).await;
                    }
                    Some(LocalCandidate::End) => {
                        let m = json!({"type": "end_of_candidates", "to": to});
                        let _ = client.ws.send(Message::Text(m.to_string().into())).await;
                    }
                    None => local_done = true,
                },
                m = client.ws.next() => {
                    let Some(Ok(Message::Text(t))) = m else { break };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str().unwrap_or_default() {
                        "ping" => { let _ = client.ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await; }
                        "offer" => {
                            let answer = peer.accept_offer(v["sdp"].as_str().unwrap()).await.unwrap();
                            let m = json!({"type": "answer", "to": to, "sdp": answer});
                            let _ = client.ws.send(Message::Text(m.to_string().into())).await;
                        }
                        "answer" => peer.set_answer(v["sdp"].as_str().unwrap()).await.unwrap(),
                        "candidate" => {
                            let c: Candidate = serde_json::from_value(v["candidate"].clone()).unwrap();
                            let _ = peer.add_remote_candidate(c).await;
                        }
                        _ => { let _ = others_tx.send(v); }
                    }
                }
            }
        }
    });
    (task, others_rx)
}

/// Offer/answer between two peers; returns them shared, with candidates piped both ways.
pub async fn signal_directly(
    a: (Peer, LocalCandidates),
    b: (Peer, LocalCandidates),
) -> (Arc<Peer>, Arc<Peer>, Channel) {
    let (a, a_cands) = (Arc::new(a.0), a.1);
    let (b, b_cands) = (Arc::new(b.0), b.1);
    let chan = a.create_channel("chat").await.unwrap();
    let offer = a.create_offer().await.unwrap();
    let answer = b.accept_offer(&offer).await.unwrap();
    a.set_answer(&answer).await.unwrap();
    pipe_candidates(a_cands, b.clone());
    pipe_candidates(b_cands, a.clone());
    (a, b, chan)
}

/// Both peers reach `connected`, the answerer takes the offerer's channel `chat`, and
/// `ask` crosses one way and `reply` the other. Returns the answerer's end of the channel.
pub async fn chat_both_ways(
    offerer: &Peer,
    answerer: &Peer,
    chat: &Channel,
    (ask, reply): (&str, &str),
    wait: Duration,
) -> Channel {
    offerer
        .wait_connected(wait)
        .await
        .expect("offerer reaches connected");
    answerer
        .wait_connected(wait)
        .await
        .expect("answerer reaches connected");
    let remote = answerer.accept_channel(wait).await.unwrap();
    chat.wait_open(wait).await.unwrap();
    chat.send_text(ask).await.unwrap();
    assert_eq!(remote.recv_timeout(wait).await.unwrap(), ask.as_bytes());
    remote.send_text(reply).await.unwrap();
    assert_eq!(chat.recv_timeout(wait).await.unwrap(), reply.as_bytes());
    remote
}
