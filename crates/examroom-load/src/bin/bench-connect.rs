//! Benchmark (not a test): time from "patient admitted" to "ICE connected" for two
//! webrtc-crate peers on loopback, signalled through a real examroom server in this
//! process — direct (host candidates) and relay-only through a TURN server — and the
//! CPU cost of one connection check.
//!
//! ```text
//! cargo run --release -p examroom-load --bin bench-connect -- [VISITS]            # direct only
//! EXAMROOM_TEST_TURN_URL=… EXAMROOM_TEST_TURN_SECRET=… cargo run --release -p examroom-load --bin bench-connect -- 100
//! ```

use examroom::config::{Secret, Settings};
use examroom::durable::{NewRoom, NewStaff};
use examroom::identity::Role;
use examroom::identity::token::NewToken;
use examroom::ids::{ParticipantId, VisitId};
use examroom::media::peer::{
    Candidate, IcePolicy, LocalCandidate, LocalCandidates, Peer, PeerOptions,
};
use examroom::protocol::IceServerInfo;
use examroom::visit::RoomKind;
use examroom_load::check::{CheckOptions, run_check};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn until(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let m = ws.next().await;
        let Some(Ok(Message::Text(t))) = m else {
            panic!("closed waiting for {ty}: {m:?}")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "error" {
            panic!("error waiting for {ty}: {v}");
        }
        if v["type"] == ty {
            return v;
        }
    }
}

async fn hello(addr: &str, token: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    send(&mut ws, json!({"type": "hello", "v": 1, "token": token})).await;
    let w = until(&mut ws, "welcome").await;
    (ws, w)
}

/// Signalling for one peer until aborted: what a browser page does with the messages.
fn relay(
    mut ws: Ws,
    peer: Arc<Peer>,
    mut local: LocalCandidates,
    to: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut done = false;
        loop {
            tokio::select! {
                c = local.recv(), if !done => match c {
                    Some(LocalCandidate::Candidate(c)) => send(&mut ws, json!({"type": "candidate", "to": to, "candidate": c})).await,
                    _ => done = true,
                },
                m = ws.next() => {
                    let Some(Ok(Message::Text(t))) = m else { break };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str().unwrap_or_default() {
                        "ping" => send(&mut ws, json!({"type": "pong"})).await,
                        "offer" => {
                            let a = peer.accept_offer(v["sdp"].as_str().unwrap()).await.unwrap();
                            send(&mut ws, json!({"type": "answer", "to": to, "sdp": a})).await;
                        }
                        "answer" => peer.set_answer(v["sdp"].as_str().unwrap()).await.unwrap(),
                        "candidate" => {
                            let c: Candidate = serde_json::from_value(v["candidate"].clone()).unwrap();
                            let _ = peer.add_remote_candidate(c).await;
                        }
                        _ => {}
                    }
                }
            }
        }
    })
}

/// A scratch data dir, removed when the bench ends.
struct DataDir(std::path::PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Clinic {
    addr: String,
    state: examroom::app::AppState,
}

/// A physician with a room of their own and a signed-in dashboard token.
async fn physician(state: &examroom::app::AppState) -> (examroom::ids::RoomId, String) {
    let n = examroom::ids::random_id();
    let doc = state
        .durable
        .create_staff(NewStaff {
            email: format!("{n}@bench.test"),
            name: "Dr Bench".into(),
            roles: vec![Role::Physician],
            password_hash: None,
            languages: vec![],
            gender: None,
        })
        .await
        .unwrap();
    let room = state
        .durable
        .create_room(NewRoom {
            max_wait_secs: 3600,
            ..NewRoom::with_defaults(
                &format!("Bench {n}"),
                RoomKind::Physician,
                vec![doc.id.clone()],
            )
        })
        .await
        .unwrap();
    let token = examroom_load::fixture::signed_in_physician(
        state.durable.as_ref(),
        &state.keys,
        &doc.id,
        "Dr Bench",
        7200,
    )
    .await
    .unwrap();
    (room.id, token)
}

async fn clinic(turn: Option<(String, String)>) -> (Clinic, DataDir) {
    let dir = DataDir(
        std::env::temp_dir().join(format!("examroom-bench-{}", examroom::ids::random_id())),
    );
    let mut s = Settings::default();
    s.server.addr = "127.0.0.1:0".parse().unwrap();
    s.server.data_dir = dir.0.clone();
    s.identity.token_secret = Secret::new("bench-secret-bench-secret-bench-secret");
    s.signalling.rate_per_sec = 10_000;
    s.signalling.rate_burst = 10_000;
    if let Some((url, secret)) = turn {
        s.ice.turn_urls = vec![url];
        s.ice.turn_secret = Secret::new(secret);
    }
    let listener = tokio::net::TcpListener::bind(s.server.addr).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = examroom::app::build(s).await.unwrap();
    tokio::spawn(examroom::app::run(listener, state.clone()));
    (Clinic { addr, state }, dir)
}

/// One visit: patient waits, physician admits; returns admitted → both ICE-connected.
async fn one_visit(c: &Clinic, policy: IcePolicy) -> Duration {
    let (room, doc_token) = physician(&c.state).await;
    let patient = ParticipantId::new();
    let token = c.state.keys.issue(
        NewToken {
            sub: patient.to_string(),
            name: "Pat".into(),
            roles: vec![Role::Patient],
            room: Some(room.clone()),
            visit: Some(VisitId::new()),
            patient: None,
            sid: None,
            lang: None,
            ttl_secs: 900,
        },
        chrono::Utc::now().timestamp(),
    );
    let (mut pws, pw) = hello(&c.addr, &token).await;
    let waiting = until(&mut pws, "waiting").await;
    let (mut dws, dw) = hello(&c.addr, &doc_token).await;
    send(
        &mut dws,
        json!({"type": "admit", "room": room, "visit": waiting["visit"]}),
    )
    .await;
    let d = until(&mut dws, "admitted").await;
    let start = Instant::now();
    let _ = until(&mut pws, "admitted").await;
    let ice = |w: &Value| -> Vec<IceServerInfo> {
        serde_json::from_value(w["ice_servers"].clone()).unwrap()
    };
    let opts = |servers| PeerOptions {
        ice_servers: servers,
        policy,
        ..PeerOptions::default()
    };
    let (dp, dc) = Peer::new(opts(ice(&dw))).await.unwrap();
    let (pp, pc) = Peer::new(opts(ice(&pw))).await.unwrap();
    let (dp, pp) = (Arc::new(dp), Arc::new(pp));
    let _ch = dp.create_channel("chat").await.unwrap();
    let offer = dp.create_offer().await.unwrap();
    send(
        &mut dws,
        json!({"type": "offer", "to": patient, "sdp": offer}),
    )
    .await;
    let doc_id = d["participant"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| dw["participant"].as_str().unwrap().to_owned());
    let t1 = relay(dws, dp.clone(), dc, patient.to_string());
    let t2 = relay(pws, pp.clone(), pc, doc_id);
    dp.wait_connected(Duration::from_secs(30)).await.unwrap();
    pp.wait_connected(Duration::from_secs(30)).await.unwrap();
    let took = start.elapsed();
    t1.abort();
    t2.abort();
    dp.close().await;
    pp.close().await;
    took
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn run(label: &str, c: &Clinic, policy: IcePolicy, n: usize) {
    let mut ms = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        // A visit that does not connect within 30 s counts as failed, not as a hang.
        match tokio::time::timeout(Duration::from_secs(30), one_visit(c, policy)).await {
            Ok(d) => ms.push(d.as_secs_f64() * 1000.0),
            Err(_) => failed += 1,
        }
    }
    if failed > 0 {
        println!("({label}: {failed} of {n} visits did not connect within 30 s)");
    }
    let n = ms.len();
    if n == 0 {
        return;
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| {label} | {n} | {:.1} | {:.1} | {:.1} | {:.1} |",
        pct(&ms, 0.5),
        pct(&ms, 0.9),
        pct(&ms, 0.99),
        ms[n - 1]
    );
}

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    println!("| path | visits | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|");
    let relay_only = std::env::args().nth(2).as_deref() == Some("relay");
    let (direct, _d1) = clinic(None).await;
    if !relay_only {
        run("direct (host candidates)", &direct, IcePolicy::All, n).await;
    }
    if let (Ok(url), Ok(secret)) = (
        std::env::var("EXAMROOM_TEST_TURN_URL"),
        std::env::var("EXAMROOM_TEST_TURN_SECRET"),
    ) {
        let (relayed, _d2) = clinic(Some((url, secret))).await;
        run("relay only, through coturn", &relayed, IcePolicy::Relay, n).await;
    } else {
        println!(
            "(no TURN server: set EXAMROOM_TEST_TURN_URL/SECRET, e.g. `eval \"$(scripts/coturn --env)\"`)"
        );
    }
    // CPU of connection checks: client and server peer are both in this process, so the
    // figure is an upper bound for the server's share.
    let checks = 20;
    let before = cpu_secs();
    let t0 = Instant::now();
    for _ in 0..checks {
        let (peer, mut cands) = Peer::new(PeerOptions::default()).await.unwrap();
        let peer = Arc::new(peer);
        let ch = peer.create_lossy_channel("check").await.unwrap();
        let offer = peer.create_offer().await.unwrap();
        let (mut handle, answer) = direct
            .state
            .checks
            .start("bench".into(), offer)
            .await
            .unwrap();
        peer.set_answer(&answer).await.unwrap();
        let mut server_cands = handle.take_local_candidates().unwrap();
        let p2 = peer.clone();
        let pump = tokio::spawn(async move {
            while let Some(LocalCandidate::Candidate(c)) = server_cands.recv().await {
                let _ = p2.add_remote_candidate(c).await;
            }
        });
        let h = Arc::new(handle);
        let h2 = h.clone();
        let pump2 = tokio::spawn(async move {
            while let Some(LocalCandidate::Candidate(c)) = cands.recv().await {
                let _ = h2.add_remote_candidate(c).await;
            }
        });
        let opts = CheckOptions {
            probes: 50,
            settle: Duration::from_millis(300),
            ..CheckOptions::default()
        };
        run_check(&peer, &ch, &opts).await.unwrap();
        pump.abort();
        pump2.abort();
        peer.close().await;
    }
    let cpu = (cpu_secs() - before) / checks as f64;
    println!(
        "\nconnection check (50 probes of 1000 B, 20 ms apart): {:.1} ms CPU per check (client + server peer, one process), {:.2} s wall per check",
        cpu * 1000.0,
        t0.elapsed().as_secs_f64() / checks as f64
    );
}
