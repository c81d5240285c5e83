//! `floor-relay`: the least a WebSocket signalling relay can do, as the floor `scripts/bench`
//! measures examroom against (issue 20). It speaks the part of PeerJS server's protocol
//! `examroom-load --server peerjs` uses: `GET /peerjs?id=…` gets `OPEN`, and a message with a
//! `dst` goes to that peer with `src` added — one parse, one serialisation. No auth, no
//! rooms, no limits beyond a bounded outbox per peer (a full one drops the message).
//!
//! ```text
//! floor-relay 127.0.0.1:9100
//! ```

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

// std Mutex: a map look-up, never held across an await.
type Peers = Arc<Mutex<HashMap<String, mpsc::Sender<Utf8Bytes>>>>;

#[derive(Deserialize)]
struct In<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    #[serde(borrow)]
    dst: Option<&'a str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: Option<&'a RawValue>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9100".into());
    let listener = TcpListener::bind(&addr).await?;
    let peers = Peers::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(serve(tcp, peers.clone()));
    }
}

async fn serve(tcp: TcpStream, peers: Peers) {
    let _ = tcp.set_nodelay(true);
    let mut id = String::new();
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    // The callback's error type is tungstenite's (a whole HTTP response); it never fails.
    #[allow(clippy::result_large_err)]
    let learn_id = |req: &Request, res: Response| {
        let query = req.uri().query().unwrap_or_default();
        id = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("id="))
            .unwrap_or_default()
            .to_owned();
        Ok(res)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, learn_id, Some(cfg)).await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(256);
    peers
        .lock()
        .expect("poisoned")
        .insert(id.clone(), tx.clone());
    let _ = tx.try_send(r#"{"type":"OPEN"}"#.into());
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    });
    drop(tx);
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(m) = serde_json::from_str::<In>(&text) else {
            continue;
        };
        let Some(dst) = m.dst else { continue };
        let out = Out {
            ty: m.ty,
            src: &id,
            dst,
            payload: m.payload,
        };
        let to = peers.lock().expect("poisoned").get(dst).cloned();
        if let (Some(to), Ok(json)) = (to, serde_json::to_string(&out)) {
            let _ = to.try_send(json.into());
        }
    }
    peers.lock().expect("poisoned").remove(&id);
    writer.abort();
}
