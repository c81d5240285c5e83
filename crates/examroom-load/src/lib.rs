//! examroom's tooling, kept out of the server crate: the load generator behind
//! `examroom-load` (issue 10), the `bench-connect` and `bench-records` benches, and the
//! client side of the connection check. The server never depends on this crate, so what only
//! the tooling needs (an HdrHistogram, a PeerJS client) never reaches a server build.
//!
//! The load generator drives concurrent visits against a running signalling server —
//! examroom, or PeerJS server for comparison — and reports relay latency, join and admit
//! latency, and the server's CPU time and memory as `/proc` sees them.
//!
//! - [`check`]: the client side of the connection check (probes over a data channel).
//! - [`fixture`]: physicians, rooms, sessions and tokens for examroom, written straight into
//!   its durable store (no HTTP API needed).
//! - [`proc_stats`]: CPU time and resident memory of the server process.
//! - `wire`: the messages sent, with the sender's timestamp inside every relayed payload.
//! - `side`: one participant's connection, kept as its page keeps it (resume on
//!   `going_away` or close), and the account of the relays it sent and received.
//!
//! A run goes: optionally connect `idle` waiting patients and hold them (memory per
//! connection), then set up `visits` (join → admit → offer/answer), start every visit at
//! once, let a warm-up pass, and measure for `duration`. In an open loop each side sends
//! candidates at a fixed rate whatever the server does; in a closed loop each visit keeps one
//! candidate in flight, bouncing between the two sides.
//!
//! [`run_through`] is the same run with a fault in the middle (a node killed, Redis
//! restarted, …): it reports how long each visit took to relay both ways again, the relays
//! lost and duplicated, and what the clients were told. Against a cluster, [`Target::nodes`]
//! spreads each visit's two sides over the nodes in every placement.
//!
//! Everything runs on one current-thread runtime in the caller, so the generator can be
//! pinned to one core and never competes with the server for a second one.

pub mod check;
pub mod fixture;
pub mod proc_stats;
mod side;
mod wire;

use fixture::{Fixtures, VisitFixture};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use side::Side;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wire::{Incoming, Wire};

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Which server is under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    Examroom,
    PeerJs,
}

/// Where to connect, and what the server knows about the participants.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: Server,
    /// `ws://host:port/ws` for examroom, `ws://host:port/peerjs` for PeerJS server.
    pub url: String,
    /// examroom only: the other nodes of a cluster. With k nodes in all (`url` first),
    /// visit n's patient connects to node n mod k and its physician to node (n / k) mod k,
    /// and in every other k² visits the patient arrives first, so that the room runs on
    /// her node: every placement of sides and room occurs.
    pub nodes: Vec<String>,
    /// examroom only: visits and idle patients made by [`fixture::prepare`].
    pub fixtures: Fixtures,
    /// PeerJS only: the server's `key` (default `peerjs`).
    pub peerjs_key: String,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent visits (pairs of connections).
    pub visits: usize,
    /// Total relayed messages per second across all visits (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    /// Waiting patients connected first and held for the whole run.
    pub idle: usize,
    pub warmup: Duration,
    /// Measurement window; with no visits, how long the idle connections are held.
    pub duration: Duration,
    /// Longest wait for all connections / visits to be set up.
    pub setup_timeout: Duration,
    /// Idle connections being opened, and visits being set up, at once.
    pub connect_concurrency: usize,
    /// Client source addresses 127.0.0.1 … 127.0.0.N, so that 10k+ connections never run
    /// out of ephemeral ports towards one server port.
    pub source_addrs: u8,
    /// Physicians end their visits (`end_visit`) when the run stops (examroom).
    pub end_visits: bool,
    /// The server process, for CPU time and memory.
    pub server_pid: Option<u32>,
    pub sdp_bytes: usize,
    pub candidate_bytes: usize,
    /// [`run_through`]: how long after the fault each visit may take to relay both ways
    /// again before it counts as not restored.
    pub restore_timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            visits: 10,
            rate: Some(100.0),
            idle: 0,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(60),
            connect_concurrency: 128,
            source_addrs: 1,
            end_visits: true,
            server_pid: None,
            sdp_bytes: 3000,
            candidate_bytes: 300,
            restore_timeout: Duration::from_secs(30),
        }
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
        }
    }
}

/// What a run measured. Serialised as one JSON line by `examroom-load`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub server: Option<Server>,
    pub visits: usize,
    pub rate_target: Option<f64>,
    pub visits_ready: usize,
    pub visits_failed: usize,
    /// From the first visit's connect to the last visit ready (or failed).
    pub visits_setup_secs: f64,
    /// Visits that broke after setup.
    pub visits_broken: usize,
    /// Relayed messages received by clients inside the measurement window.
    pub relayed: u64,
    pub window_secs: f64,
    pub relayed_per_sec: f64,
    /// Server CPU (user + system) inside the window.
    pub server_cpu_secs: f64,
    pub server_cpu_us_per_msg: Option<f64>,
    /// Time the server's threads waited for a CPU inside the window (other processes on its
    /// core): large values mean latency reflects the machine, not the server.
    pub server_runqueue_wait_secs: f64,
    pub generator_runqueue_wait_secs: f64,
    /// Generator CPU inside the window: when it nears 1.0 per second, the generator is the limit.
    pub generator_cpu_secs: f64,
    /// Relay latency (candidates) inside the window.
    pub relay: Percentiles,
    /// Offer and answer (≈3 KB SDP) during setup.
    pub sdp: Percentiles,
    /// Patient connect → `waiting` (examroom) / connect → `OPEN` (PeerJS).
    pub join: Percentiles,
    /// `admit` sent → both sides `admitted` (examroom only).
    pub admit: Percentiles,
    pub idle: usize,
    pub idle_connected: usize,
    pub idle_failed: usize,
    /// Idle connections the server closed while they were held.
    pub idle_dropped: usize,
    pub idle_connect_secs: f64,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_per_idle_conn_kib: Option<f64>,
    pub rss_end_kib: u64,
    /// Server RSS at the end of the measurement window, every visit still in call (both
    /// sides connected and admitted, offer/answer done, candidates trickling).
    pub rss_in_call_kib: u64,
    /// (`rss_in_call_kib` − RSS before the visits, idle connections included) ÷ the
    /// visits' connections (two per visit that was set up).
    pub rss_per_call_conn_kib: Option<f64>,
    pub server_errors: u64,
    /// A few of the errors seen, for the log.
    pub error_samples: Vec<String>,
    /// [`run_through`]: visits that relayed both ways again after the fault, and how long
    /// after it ended the first relay sent after it arrived (the later of the two sides).
    pub restored: usize,
    pub restore: Percentiles,
    /// Candidates sent during the run (both sides of every visit), those that never
    /// arrived, and those that arrived more than once (by their sequence numbers).
    pub relays_sent: u64,
    pub relays_lost: u64,
    pub relays_duplicated: u64,
    /// Per visit, the longest a side went without a candidate from its peer while the
    /// run relayed.
    pub longest_gap: Percentiles,
    /// What the clients were told besides the visit's own course (`going_away`,
    /// `peer_reconnecting`, `error:<code>`, `waiting` again …), and how their connections
    /// went (`closed` without notice, `resumed`, `reconnect_failed`), with counts.
    pub notices: BTreeMap<String, u64>,
    /// Visits whose physician was told `visit_ended` when the run stopped (`end_visits`).
    pub visits_ended: usize,
    /// [`run_through`]: a few visits that did not relay both ways again, and where their
    /// sides were, for the log.
    pub unrestored_samples: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Run,
    /// Sending stops; what is in flight may still arrive.
    Drain,
    Stop,
}

struct Hists {
    relay: Histogram<u64>,
    sdp: Histogram<u64>,
    join: Histogram<u64>,
    admit: Histogram<u64>,
    restore: Histogram<u64>,
    gap: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

/// State shared by every connection task of a run.
struct Ctx {
    server: Server,
    url: String,
    /// examroom: every node, `url` first.
    urls: Vec<String>,
    peerjs_key: String,
    wire: Wire,
    clock: Instant,
    rate: Option<f64>,
    visits: usize,
    source_addrs: u8,
    end_visits: bool,
    measuring: AtomicBool,
    relayed: AtomicU64,
    ready: AtomicUsize,
    failed: AtomicUsize,
    /// Visits that were set up and then broke (closed, errors on send).
    broken: AtomicUsize,
    idle_connected: AtomicUsize,
    idle_failed: AtomicUsize,
    idle_dropped: AtomicUsize,
    server_errors: AtomicU64,
    /// When the fault ended, ns on `clock`; `u64::MAX` until then.
    mark: AtomicU64,
    restored: AtomicUsize,
    ended: AtomicUsize,
    relays_sent: AtomicU64,
    relays_lost: AtomicU64,
    relays_duplicated: AtomicU64,
    /// std Mutex: held only to record one value, never across an await.
    hists: Mutex<Hists>,
    errors: Mutex<Vec<String>>,
    unrestored: Mutex<Vec<String>>,
    notices: Mutex<BTreeMap<String, u64>>,
}

impl Ctx {
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn record(&self, pick: impl FnOnce(&mut Hists) -> &mut Histogram<u64>, ns: u64) {
        let mut h = self.hists.lock().expect("poisoned");
        pick(&mut h).saturating_record(ns.max(1));
    }

    fn notice(&self, what: &str) {
        let mut n = self.notices.lock().expect("poisoned");
        *n.entry(what.to_owned()).or_default() += 1;
    }

    fn note_error(&self, what: impl Into<String>) {
        let mut e = self.errors.lock().expect("poisoned");
        if e.len() < 20 {
            let mut s: String = what.into();
            s.truncate(300);
            e.push(s);
        }
    }

    fn source(&self, n: usize) -> IpAddr {
        let k = self.source_addrs.max(1) as usize;
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % k) as u8))
    }

    fn peerjs_url(&self, id: &str) -> String {
        format!(
            "{}?key={}&id={id}&token={}",
            self.url,
            self.peerjs_key,
            examroom_protocol::ids::random_id()
        )
    }
}

/// Open a WebSocket from `src` with small buffers (the generator holds 10k+ of them).
async fn connect(url: &str, src: IpAddr) -> Result<Ws, String> {
    let hostport = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|e| format!("{hostport}: {e} (give an IP address and port)"))?;
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(src, 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let stream = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// The next text message; control frames are skipped. Cancel-safe.
async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed by server: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err("connection ended".into()),
        }
    }
}

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Read until a message of type `ty` (and `pred`) arrives, answering pings meanwhile.
async fn wait_for(
    ctx: &Ctx,
    ws: &mut Ws,
    ty: &str,
    pred: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let text = tokio::time::timeout_at(deadline, next_text(ws))
            .await
            .map_err(|_| format!("no `{ty}` within {STEP_TIMEOUT:?}"))??;
        let got = wire::msg_type(&text);
        if got.as_deref() == Some(ty) && pred(&text) {
            return Ok(text);
        }
        match ctx.wire.classify(&text) {
            Incoming::Ping => send(ws, r#"{"type":"pong"}"#.into()).await?,
            Incoming::Error => {
                ctx.server_errors.fetch_add(1, Relaxed);
                return Err(format!("waiting for `{ty}`: {text}"));
            }
            _ => {}
        }
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn jittered_interval(period: Duration) -> tokio::time::Interval {
    let offset = period.mul_f64(rand::random::<f64>());
    tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
}

/// A joined connection, its resume token, and the message that said it joined.
type Joined = (Ws, Option<String>, String);

/// Connect to `url` and join: examroom `hello` → `welcome` (its resume token) → `waiting`
/// for patients (`queue` for physicians); PeerJS: the server's `OPEN`.
async fn join(
    ctx: &Ctx,
    n: usize,
    url: &str,
    id: &str,
    token: &str,
    physician: bool,
) -> Result<Joined, String> {
    match ctx.server {
        Server::Examroom => {
            let mut ws = connect(url, ctx.source(n)).await?;
            send(
                &mut ws,
                format!(r#"{{"type":"hello","v":1,"token":"{token}"}}"#),
            )
            .await?;
            let welcome = wait_for(ctx, &mut ws, "welcome", |_| true).await?;
            let until = if physician { "queue" } else { "waiting" };
            let joined = wait_for(ctx, &mut ws, until, |_| true).await?;
            Ok((ws, side::resume_token(&welcome), joined))
        }
        Server::PeerJs => {
            let mut ws = connect(&ctx.peerjs_url(id), ctx.source(n)).await?;
            let joined = wait_for(ctx, &mut ws, "OPEN", |_| true).await?;
            Ok((ws, None, joined))
        }
    }
}

/// Who is who in one visit, and where each side connects.
struct Pair {
    doc: String,
    doc_token: String,
    pat: String,
    pat_token: String,
    room: String,
    visit: String,
    doc_node: usize,
    pat_node: usize,
    /// The patient arrives first: the room runs on her node.
    patient_first: bool,
}

fn pairs(server: Server, fixtures: &Fixtures, visits: usize, nodes: usize) -> Vec<Pair> {
    let k = nodes.max(1);
    match server {
        Server::Examroom => fixtures
            .visits
            .iter()
            .take(visits)
            .enumerate()
            .map(|(n, v): (usize, &VisitFixture)| Pair {
                doc: v.physician.clone(),
                doc_token: v.physician_token.clone(),
                pat: v.patient.clone(),
                pat_token: v.patient_token.clone(),
                room: v.room.to_string(),
                visit: v.visit.to_string(),
                pat_node: n % k,
                doc_node: (n / k) % k,
                // One node: the physician first, as the benches always measured it.
                patient_first: k > 1 && (n / (k * k)) % 2 == 1,
            })
            .collect(),
        Server::PeerJs => {
            let tag = &examroom_protocol::ids::random_id()[..8];
            (0..visits)
                .map(|i| Pair {
                    doc: format!("lg-{tag}-{i}-d"),
                    doc_token: String::new(),
                    pat: format!("lg-{tag}-{i}-p"),
                    pat_token: String::new(),
                    room: String::new(),
                    visit: String::new(),
                    doc_node: 0,
                    pat_node: 0,
                    patient_first: false,
                })
                .collect()
        }
    }
}

/// One visit from join to end. Both connections live in this one task, so join, admit and
/// relay latencies are taken on one clock without coordination.
async fn visit(
    ctx: Arc<Ctx>,
    n: usize,
    p: Pair,
    gate: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
) {
    // Only the setup is gated: visits arrive `connect_concurrency` at a time.
    let permit = gate.acquire_owned().await;
    let set_up = setup(&ctx, n, &p).await;
    drop(permit);
    let (mut doc, mut pat) = match set_up {
        Ok(x) => x,
        Err(e) => {
            ctx.failed.fetch_add(1, Relaxed);
            ctx.note_error(format!("visit {n} setup: {e}"));
            return;
        }
    };
    ctx.ready.fetch_add(1, Relaxed);
    let outcome = steady(&ctx, &mut doc, &mut pat, &p, phase).await;
    let lost = |from: &Side, to: &Side| from.sent.saturating_sub(to.distinct);
    ctx.relays_sent.fetch_add(doc.sent + pat.sent, Relaxed);
    ctx.relays_lost
        .fetch_add(lost(&doc, &pat) + lost(&pat, &doc), Relaxed);
    ctx.relays_duplicated
        .fetch_add(doc.duplicated + pat.duplicated, Relaxed);
    ctx.record(|h| &mut h.gap, doc.max_gap.max(pat.max_gap));
    let restored = doc.restored_at.is_some() && pat.restored_at.is_some();
    if ctx.mark.load(Relaxed) != u64::MAX && !restored {
        let mut u = ctx.unrestored.lock().expect("poisoned");
        if u.len() < 10 {
            u.push(format!(
                "visit {n}: physician on node {} (heard the patient again: {}, connected: {}), \
                 patient on node {} (heard him again: {}, connected: {}), patient first: {}",
                p.doc_node,
                doc.restored_at.is_some(),
                doc.ws.is_some(),
                p.pat_node,
                pat.restored_at.is_some(),
                pat.ws.is_some(),
                p.patient_first
            ));
        }
    }
    if let Err(e) = &outcome {
        ctx.broken.fetch_add(1, Relaxed);
        ctx.note_error(format!("visit {n}: {e}"));
    }
    if ctx.server == Server::Examroom
        && ctx.end_visits
        && outcome.is_ok()
        && end(&ctx, &mut doc, &p).await
    {
        ctx.ended.fetch_add(1, Relaxed);
    }
    for ws in [&mut doc.ws, &mut pat.ws].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
}

/// The physician ends the visit, as a person would: again after a refusal or a lost
/// connection, for at most 15 s. Whether he was told `visit_ended`.
async fn end(ctx: &Ctx, doc: &mut Side, p: &Pair) -> bool {
    let end = format!(
        r#"{{"type":"end_visit","room":"{}","visit":"{}"}}"#,
        p.room, p.visit
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut asked: Option<tokio::time::Instant> = None;
    loop {
        if doc.ws.is_some() && asked.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            doc.send(ctx, end.clone()).await;
            asked = Some(tokio::time::Instant::now());
        }
        let Ok(event) = tokio::time::timeout_at(deadline, doc.next()).await else {
            return false;
        };
        match doc.on(ctx, event, &p.pat, false).await {
            Ok(Some(ty)) if ty == "visit_ended" => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Join both sides (each on its node, in the pair's order), admit, and exchange offer
/// and answer.
async fn setup(ctx: &Ctx, n: usize, p: &Pair) -> Result<(Side, Side), String> {
    let join_doc = || {
        join(
            ctx,
            2 * n,
            &ctx.urls[p.doc_node],
            &p.doc,
            &p.doc_token,
            true,
        )
    };
    let join_pat = || {
        join(
            ctx,
            2 * n + 1,
            &ctx.urls[p.pat_node],
            &p.pat,
            &p.pat_token,
            false,
        )
    };
    let ((mut doc, doc_resume, doc_queue), (mut pat, pat_resume, _)) = if p.patient_first {
        let t0 = ctx.now();
        let pat = join_pat().await?;
        ctx.record(|h| &mut h.join, ctx.now() - t0);
        (join_doc().await?, pat)
    } else {
        let doc = join_doc().await?;
        let t0 = ctx.now();
        let pat = join_pat().await?;
        ctx.record(|h| &mut h.join, ctx.now() - t0);
        (doc, pat)
    };

    if ctx.server == Server::Examroom {
        // She may be in the queue he was shown on joining (she arrived first).
        if !doc_queue.contains(&p.visit) {
            wait_for(ctx, &mut doc, "queue", |q| q.contains(&p.visit)).await?;
        }
        let ta = ctx.now();
        let admit = format!(
            r#"{{"type":"admit","room":"{}","visit":"{}"}}"#,
            p.room, p.visit
        );
        send(&mut doc, admit).await?;
        // Whichever arrives first waits in its socket; the second read is "both notified".
        wait_for(ctx, &mut doc, "admitted", |_| true).await?;
        wait_for(ctx, &mut pat, "admitted", |_| true).await?;
        ctx.record(|h| &mut h.admit, ctx.now() - ta);
    }

    let (offer_ty, answer_ty) = match ctx.server {
        Server::Examroom => ("offer", "answer"),
        Server::PeerJs => ("OFFER", "ANSWER"),
    };
    send(&mut doc, ctx.wire.offer(&p.pat, ctx.now())).await?;
    let o = wait_for(ctx, &mut pat, offer_ty, |_| true).await?;
    if let Some(ts) = wire::timestamp(&o) {
        ctx.record(|h| &mut h.sdp, ctx.now() - ts);
    }
    send(&mut pat, ctx.wire.answer(&p.doc, ctx.now())).await?;
    let a = wait_for(ctx, &mut doc, answer_ty, |_| true).await?;
    if let Some(ts) = wire::timestamp(&a) {
        ctx.record(|h| &mut h.sdp, ctx.now() - ts);
    }
    let doc = Side::new(
        "physician",
        &p.doc_token,
        p.doc_node,
        ctx.source(2 * n),
        doc,
        doc_resume,
    );
    let pat = Side::new(
        "patient",
        &p.pat_token,
        p.pat_node,
        ctx.source(2 * n + 1),
        pat,
        pat_resume,
    );
    Ok((doc, pat))
}

/// Wait for the start signal, then stream candidates both ways until told to drain;
/// return when told to stop. Each side resumes on its own when its connection goes.
async fn steady(
    ctx: &Ctx,
    doc: &mut Side,
    pat: &mut Side,
    p: &Pair,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), String> {
    let mut doc_tick = None;
    let mut pat_tick = None;
    let mut heartbeat = ctx
        .wire
        .heartbeat()
        .map(|_| jittered_interval(Duration::from_secs(5)));
    let (mut started, mut sending, mut restored) = (false, false, false);
    loop {
        let now = *phase.borrow_and_update();
        match now {
            Phase::Stop => return Ok(()),
            Phase::Run if !started => {
                (started, sending) = (true, true);
                doc.start_flowing(ctx.now());
                pat.start_flowing(ctx.now());
                match ctx.rate {
                    Some(rate) => {
                        // Each side sends its share of the total rate, on its own clock.
                        let period = Duration::from_secs_f64(2.0 * ctx.visits as f64 / rate);
                        doc_tick = Some(jittered_interval(period));
                        pat_tick = Some(jittered_interval(period));
                    }
                    // Closed loop: one candidate in flight per visit, bounced by each side.
                    None => doc.relay(ctx, &p.pat).await,
                }
            }
            Phase::Drain if sending => {
                sending = false;
                (doc_tick, pat_tick) = (None, None);
                doc.stop_flowing(ctx.now());
                pat.stop_flowing(ctx.now());
            }
            _ => {}
        }
        let bounce = sending && ctx.rate.is_none();
        tokio::select! {
            r = phase.changed() => if r.is_err() { return Ok(()) },
            _ = tick(&mut doc_tick) => doc.relay(ctx, &p.pat).await,
            _ = tick(&mut pat_tick) => pat.relay(ctx, &p.doc).await,
            _ = tick(&mut heartbeat) => {
                let hb = ctx.wire.heartbeat().unwrap_or_default();
                for side in [&mut *doc, &mut *pat] {
                    if !side.send(ctx, hb.into()).await {
                        return Err(format!("{} side: heartbeat not sent", side.who));
                    }
                }
            }
            e = doc.next() => { doc.on(ctx, e, &p.pat, bounce).await?; }
            e = pat.next() => { pat.on(ctx, e, &p.doc, bounce).await?; }
        }
        if !restored && let (Some(a), Some(b)) = (doc.restored_at, pat.restored_at) {
            restored = true;
            ctx.restored.fetch_add(1, Relaxed);
            let mark = ctx.mark.load(Relaxed);
            ctx.record(|h| &mut h.restore, a.max(b).saturating_sub(mark));
        }
    }
}

/// One waiting patient (or PeerJS peer) that only holds its connection.
async fn idle(
    ctx: Arc<Ctx>,
    n: usize,
    token: String,
    gate: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
) {
    let permit = gate.acquire_owned().await;
    let id = format!(
        "lg-idle-{}-{n}",
        &ctx.clock.elapsed().as_nanos() % 1_000_000
    );
    let mut ws = match join(&ctx, n, &ctx.url, &id, &token, false).await {
        Ok((ws, _, _)) => ws,
        Err(e) => {
            ctx.idle_failed.fetch_add(1, Relaxed);
            ctx.note_error(format!("idle {n}: {e}"));
            return;
        }
    };
    drop(permit);
    ctx.idle_connected.fetch_add(1, Relaxed);
    let mut heartbeat = ctx
        .wire
        .heartbeat()
        .map(|_| jittered_interval(Duration::from_secs(5)));
    loop {
        let now = *phase.borrow_and_update();
        if now == Phase::Stop {
            break;
        }
        tokio::select! {
            r = phase.changed() => if r.is_err() { break },
            _ = tick(&mut heartbeat) => {
                if send(&mut ws, ctx.wire.heartbeat().unwrap_or_default().into()).await.is_err() {
                    ctx.idle_dropped.fetch_add(1, Relaxed);
                    return;
                }
            }
            t = next_text(&mut ws) => match t {
                Ok(t) => if ctx.wire.classify(&t) == Incoming::Ping {
                    let _ = send(&mut ws, r#"{"type":"pong"}"#.into()).await;
                },
                Err(e) => {
                    ctx.idle_dropped.fetch_add(1, Relaxed);
                    ctx.note_error(format!("idle {n} dropped: {e}"));
                    return;
                }
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

/// Poll until `done()` or the deadline.
async fn until(deadline: Duration, done: impl Fn() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while !done() {
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Run one load against `target`. Bounded: every wait has a deadline, and every task it
/// started is finished or aborted before it returns.
pub async fn run(cfg: &LoadConfig, target: &Target) -> Report {
    run_inner(cfg, target, None).await
}

/// Run one load against `target` (examroom, open loop: `cfg.rate` set) with a fault in
/// it: once every visit relays and the warm-up has passed, `fault` runs (it kills a node,
/// restarts Redis, … and returns when the fault is over: the node is dead or replaced,
/// Redis answers again). From then on each visit counts as restored once a relay sent
/// after the fault arrived on both sides ([`Report::restored`], [`Report::restore`]);
/// the run waits for that at most `cfg.restore_timeout`, then measures `cfg.duration`
/// more and stops as [`run`] does.
pub async fn run_through(
    cfg: &LoadConfig,
    target: &Target,
    fault: impl Future<Output = ()>,
) -> Report {
    run_inner(cfg, target, Some(Box::pin(fault))).await
}

async fn run_inner(
    cfg: &LoadConfig,
    target: &Target,
    fault: Option<std::pin::Pin<Box<dyn Future<Output = ()> + '_>>>,
) -> Report {
    let urls: Vec<String> = std::iter::once(target.url.clone())
        .chain(target.nodes.iter().cloned())
        .collect();
    let ctx = Arc::new(Ctx {
        server: target.server,
        url: target.url.clone(),
        urls,
        peerjs_key: target.peerjs_key.clone(),
        wire: Wire::new(target.server, cfg.sdp_bytes, cfg.candidate_bytes),
        clock: Instant::now(),
        rate: cfg.rate,
        visits: cfg.visits,
        source_addrs: cfg.source_addrs,
        end_visits: cfg.end_visits,
        measuring: AtomicBool::new(false),
        relayed: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        broken: AtomicUsize::new(0),
        idle_connected: AtomicUsize::new(0),
        idle_failed: AtomicUsize::new(0),
        idle_dropped: AtomicUsize::new(0),
        server_errors: AtomicU64::new(0),
        mark: AtomicU64::new(u64::MAX),
        restored: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        relays_sent: AtomicU64::new(0),
        relays_lost: AtomicU64::new(0),
        relays_duplicated: AtomicU64::new(0),
        hists: Mutex::new(Hists {
            relay: histogram(),
            sdp: histogram(),
            join: histogram(),
            admit: histogram(),
            restore: histogram(),
            gap: histogram(),
        }),
        errors: Mutex::new(Vec::new()),
        unrestored: Mutex::new(Vec::new()),
        notices: Mutex::new(BTreeMap::new()),
    });
    let sample = || cfg.server_pid.and_then(proc_stats::sample);
    let own = || proc_stats::sample(std::process::id());
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let mut tasks = tokio::task::JoinSet::new();
    let mut report = Report {
        server: Some(target.server),
        visits: cfg.visits,
        rate_target: cfg.rate,
        idle: cfg.idle,
        ..Default::default()
    };
    report.rss_before_kib = sample().map(|s| s.rss_kib).unwrap_or_default();

    // ---- idle connections ----
    if cfg.idle > 0 {
        let gate = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
        let tokens: Vec<String> = match target.server {
            Server::Examroom => target
                .fixtures
                .idle
                .iter()
                .take(cfg.idle)
                .cloned()
                .collect(),
            Server::PeerJs => vec![String::new(); cfg.idle],
        };
        let t0 = Instant::now();
        for (n, token) in tokens.into_iter().enumerate() {
            tasks.spawn(idle(ctx.clone(), n, token, gate.clone(), phase_rx.clone()));
        }
        until(cfg.setup_timeout, || {
            ctx.idle_connected.load(Relaxed) + ctx.idle_failed.load(Relaxed) >= cfg.idle
        })
        .await;
        report.idle_connect_secs = t0.elapsed().as_secs_f64();
        // Let the server settle (queues, first pings) before reading its memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        report.rss_idle_kib = sample().map(|s| s.rss_kib).unwrap_or_default();
        let connected = ctx.idle_connected.load(Relaxed);
        if connected > 0 && report.rss_idle_kib > 0 {
            report.rss_per_idle_conn_kib = Some(
                (report.rss_idle_kib as f64 - report.rss_before_kib as f64) / connected as f64,
            );
        }
    }

    // ---- visits ----
    if cfg.visits > 0 {
        let gate = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
        let t0 = Instant::now();
        for (n, p) in pairs(target.server, &target.fixtures, cfg.visits, ctx.urls.len())
            .into_iter()
            .enumerate()
        {
            // Visits are numbered after the idle connections so source addresses spread.
            let (ctx, phase) = (ctx.clone(), phase_rx.clone());
            tasks.spawn(visit(ctx, cfg.idle + n, p, gate.clone(), phase));
        }
        until(cfg.setup_timeout, || {
            ctx.ready.load(Relaxed) + ctx.failed.load(Relaxed) >= cfg.visits
        })
        .await;
        report.visits_setup_secs = t0.elapsed().as_secs_f64();
        report.visits_ready = ctx.ready.load(Relaxed);
        let _ = phase_tx.send(Phase::Run);
        tokio::time::sleep(cfg.warmup).await;
        let (s0, g0, r0, t0) = (sample(), own(), ctx.relayed.load(Relaxed), Instant::now());
        ctx.measuring.store(true, Relaxed);
        if let Some(fault) = fault {
            fault.await;
            ctx.mark.store(ctx.now(), Relaxed);
            let ready = report.visits_ready;
            until(cfg.restore_timeout, || {
                ctx.restored.load(Relaxed) + ctx.broken.load(Relaxed) >= ready
            })
            .await;
        }
        tokio::time::sleep(cfg.duration).await;
        ctx.measuring.store(false, Relaxed);
        let (s1, g1, r1) = (sample(), own(), ctx.relayed.load(Relaxed));
        report.window_secs = t0.elapsed().as_secs_f64();
        report.relayed = r1 - r0;
        report.relayed_per_sec = report.relayed as f64 / report.window_secs;
        if let Some(b) = s1 {
            // Before the visits: with idle connections, the RSS they already hold.
            let base = if cfg.idle > 0 {
                report.rss_idle_kib
            } else {
                report.rss_before_kib
            };
            report.rss_in_call_kib = b.rss_kib;
            if report.visits_ready > 0 && base > 0 {
                report.rss_per_call_conn_kib =
                    Some((b.rss_kib as f64 - base as f64) / (2 * report.visits_ready) as f64);
            }
        }
        if let (Some(a), Some(b)) = (s0, s1) {
            report.server_cpu_secs = (b.cpu - a.cpu).as_secs_f64();
            report.server_runqueue_wait_secs = b
                .runqueue_wait
                .saturating_sub(a.runqueue_wait)
                .as_secs_f64();
            if report.relayed > 0 {
                report.server_cpu_us_per_msg =
                    Some(report.server_cpu_secs * 1e6 / report.relayed as f64);
            }
        }
        if let (Some(a), Some(b)) = (g0, g1) {
            report.generator_cpu_secs = (b.cpu - a.cpu).as_secs_f64();
            report.generator_runqueue_wait_secs = b
                .runqueue_wait
                .saturating_sub(a.runqueue_wait)
                .as_secs_f64();
        }
    } else if cfg.idle > 0 {
        tokio::time::sleep(cfg.duration).await;
    }
    report.rss_end_kib = sample().map(|s| s.rss_kib).unwrap_or_default();
    report.idle_connected = ctx.idle_connected.load(Relaxed);
    report.idle_failed = ctx.idle_failed.load(Relaxed);
    report.idle_dropped = ctx.idle_dropped.load(Relaxed);

    // ---- stop ----
    if cfg.visits > 0 {
        // What was sent may still be on its way: give it a second before counting it lost.
        let _ = phase_tx.send(Phase::Drain);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = phase_tx.send(Phase::Stop);
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    report.visits_failed = ctx.failed.load(Relaxed);
    report.visits_broken = ctx.broken.load(Relaxed);
    report.server_errors = ctx.server_errors.load(Relaxed);
    report.error_samples = ctx.errors.lock().expect("poisoned").clone();
    report.notices = ctx.notices.lock().expect("poisoned").clone();
    report.unrestored_samples = ctx.unrestored.lock().expect("poisoned").clone();
    report.restored = ctx.restored.load(Relaxed);
    report.visits_ended = ctx.ended.load(Relaxed);
    report.relays_sent = ctx.relays_sent.load(Relaxed);
    report.relays_lost = ctx.relays_lost.load(Relaxed);
    report.relays_duplicated = ctx.relays_duplicated.load(Relaxed);
    let h = ctx.hists.lock().expect("poisoned");
    report.restore = Percentiles::of(&h.restore);
    report.longest_gap = Percentiles::of(&h.gap);
    report.relay = Percentiles::of(&h.relay);
    report.sdp = Percentiles::of(&h.sdp);
    report.join = Percentiles::of(&h.join);
    report.admit = Percentiles::of(&h.admit);
    report
}
