//! The connection check: a client opens a WebRTC connection to examroom's own peer, which
//! echoes every data-channel message back as it came, so the client can measure round-trip
//! time, loss and throughput and learn which ICE path (host / srflx / relay) works from where
//! it is — before a visit, not during one.
//!
//! Transport-agnostic: [`CheckService::start`] takes an offer's SDP and returns the answer's,
//! and the [`CheckHandle`] takes remote candidates and yields local ones; the signalling layer
//! carries them (`check_offer` / `check_answer` / `check_candidate`).
//!
//! Cost is bounded: at most `media.max_concurrent_checks` run at once (the next start is
//! refused with [`CheckError::TooManyChecks`]), and each is closed after
//! `media.check_max_secs`, when its handle is dropped, or when its connection fails.
//!
//! Ports: `webrtc` 0.21 has no UDP mux (`SettingEngine::with_udp_network` is still a
//! commented-out TODO), and each connection binds its own sockets. With `media.udp_port = 0`
//! each check binds an ephemeral port; with `udp_port = P` the checks use the fixed range
//! `P .. P + max_concurrent_checks`, one port per running check, so a firewall opens a small
//! known range. See `docs/media.md`.

use crate::config::MediaSettings;
use crate::ice::IceConfig;
use crate::media::peer::{
    Channel, LocalCandidates, Peer, PeerError, PeerOptions, PeerState, SelectedPath,
};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// Identifies one running check (for logs and for the signalling layer's bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CheckId(u64);

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "check-{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `media.max_concurrent_checks` checks are already running; try again shortly.
    #[error("too many connection checks are running; try again in a moment")]
    TooManyChecks,
    /// The offer could not be applied (malformed SDP, no data channel, …).
    #[error("the check offer was refused: {0}")]
    BadOffer(#[source] PeerError),
    /// The server-side peer could not be built (e.g. its UDP port is taken).
    #[error("the check peer could not start: {0}")]
    Peer(#[source] PeerError),
}

/// Runs connection checks. Clone freely; clones share the limits.
#[derive(Clone)]
pub struct CheckService {
    shared: Arc<Shared>,
}

struct Shared {
    ice: IceConfig,
    udp_ip: IpAddr,
    max_duration: Duration,
    permits: Arc<Semaphore>,
    /// Permits the semaphore was created with.
    capacity: usize,
    /// Free fixed ports when `media.udp_port` is set, one per permit. A std mutex: held for
    /// one push or pop, never across an `.await`.
    ports: Option<Arc<Mutex<Vec<u16>>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for CheckService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckService")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl CheckService {
    pub fn new(settings: &MediaSettings, ice: IceConfig) -> Self {
        let max = settings.max_concurrent_checks.max(1);
        let ports = (settings.udp_port != 0).then(|| {
            let first = settings.udp_port;
            let ports: Vec<u16> = (0..max)
                .filter_map(|i| u16::try_from(i).ok().and_then(|i| first.checked_add(i)))
                .rev()
                .collect();
            Arc::new(Mutex::new(ports))
        });
        // With a fixed range that ran off the end of the port space, fewer ports than
        // permits exist; the smaller number is the real limit.
        let max = ports
            .as_ref()
            .map(|p| p.lock().expect("not poisoned").len())
            .unwrap_or(max);
        Self {
            shared: Arc::new(Shared {
                ice,
                udp_ip: settings.udp_ip,
                max_duration: Duration::from_secs(settings.check_max_secs.max(1)),
                permits: Arc::new(Semaphore::new(max)),
                capacity: max,
                ports,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.shared.capacity - self.shared.permits.available_permits()
    }

    /// Start a check for `owner` (a pseudonymous participant or connection id; never logged)
    /// from the client's offer. Returns the handle and the answer SDP to send back.
    ///
    /// The offer must contain a data channel; the server echoes every channel the client
    /// opens. Send the handle's local candidates to the client and feed the client's
    /// candidates into [`CheckHandle::add_remote_candidate`].
    pub async fn start(
        &self,
        owner: String,
        offer_sdp: String,
    ) -> Result<(CheckHandle, String), CheckError> {
        let permit = Arc::clone(&self.shared.permits)
            .try_acquire_owned()
            .map_err(|_| CheckError::TooManyChecks)?;
        let lease = PortLease::take(self.shared.ports.clone());
        let port = lease.port.unwrap_or(0);
        let id = CheckId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));

        let (peer, candidates) = Peer::new(PeerOptions {
            ice_servers: self.shared.ice.stun_servers(),
            udp_addrs: vec![SocketAddr::new(self.shared.udp_ip, port)],
            ..PeerOptions::default()
        })
        .await
        .map_err(CheckError::Peer)?;
        let peer = Arc::new(peer);
        let answer = match peer.accept_offer(&offer_sdp).await {
            Ok(answer) => answer,
            Err(e) => {
                peer.close().await;
                return Err(CheckError::BadOffer(e));
            }
        };

        let stop = CancellationToken::new();
        let (done_tx, done_rx) = watch::channel(false);
        tokio::spawn(supervise(Supervised {
            id,
            peer: Arc::clone(&peer),
            stop: stop.clone(),
            max_duration: self.shared.max_duration,
            permit,
            lease,
            done: done_tx,
        }));
        tracing::info!(check = %id, port, "connection check started");
        Ok((
            CheckHandle {
                id,
                owner,
                peer,
                local_candidates: Some(candidates),
                stop,
                done: done_rx,
            },
            answer,
        ))
    }
}

/// One running check. Dropping it (or calling [`CheckHandle::close`]) ends the check.
pub struct CheckHandle {
    id: CheckId,
    owner: String,
    peer: Arc<Peer>,
    local_candidates: Option<LocalCandidates>,
    stop: CancellationToken,
    done: watch::Receiver<bool>,
}

impl std::fmt::Debug for CheckHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CheckHandle {
    pub fn id(&self) -> CheckId {
        self.id
    }

    /// Who started the check (as passed to [`CheckService::start`]).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The server peer's local candidates, to be sent to the client as `check_candidate`
    /// messages; [`crate::media::peer::LocalCandidate::End`] ends each round. Can be taken
    /// once, so a forwarding task can own it.
    pub fn take_local_candidates(&mut self) -> Option<LocalCandidates> {
        self.local_candidates.take()
    }

    /// A candidate from the client (`check_candidate`). An empty candidate is accepted.
    pub async fn add_remote_candidate(
        &self,
        candidate: crate::media::peer::Candidate,
    ) -> Result<(), PeerError> {
        self.peer.add_remote_candidate(candidate).await
    }

    /// The path the server sees, once connected.
    pub async fn selected_path(&self) -> Option<SelectedPath> {
        self.peer.selected_path().await
    }

    /// Resolves when the check has ended (time limit, failure, or close) and its resources
    /// are released.
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// End the check now and wait until its resources are released.
    pub async fn close(self) {
        self.stop.cancel();
        self.finished().await;
    }
}

impl Drop for CheckHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A fixed port taken from the pool, given back on drop.
struct PortLease {
    port: Option<u16>,
    pool: Option<Arc<Mutex<Vec<u16>>>>,
}

impl PortLease {
    fn take(pool: Option<Arc<Mutex<Vec<u16>>>>) -> Self {
        // One port per permit, so a permit holder always finds one free.
        let port = pool
            .as_ref()
            .and_then(|p| p.lock().expect("not poisoned").pop());
        Self { port, pool }
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let (Some(port), Some(pool)) = (self.port, &self.pool) {
            pool.lock().expect("not poisoned").push(port);
        }
    }
}

struct Supervised {
    id: CheckId,
    peer: Arc<Peer>,
    stop: CancellationToken,
    max_duration: Duration,
    permit: OwnedSemaphorePermit,
    lease: PortLease,
    done: watch::Sender<bool>,
}

/// Owns one check from start to release: echoes its channels, enforces its time limit, and
/// is the one place it is cleaned up.
async fn supervise(s: Supervised) {
    let echo = tokio::spawn(echo_channels(Arc::clone(&s.peer)));
    let mut state = s.peer.state_changes();
    let reason = tokio::select! {
        _ = tokio::time::sleep(s.max_duration) => "time limit",
        _ = s.stop.cancelled() => "closed",
        _ = state.wait_for(|st| matches!(st, PeerState::Failed | PeerState::Closed)) => "connection ended",
    };
    echo.abort();
    s.peer.close().await;
    tracing::info!(check = %s.id, reason, "connection check ended");
    // Release the port before the permit, so the next permit holder finds it free.
    drop(s.lease);
    drop(s.permit);
    s.done.send_replace(true);
}

/// Echo every channel the client opens, each message back as it came (text stays text).
async fn echo_channels(peer: Arc<Peer>) {
    let mut tasks = tokio::task::JoinSet::new();
    // Checks are short and bounded by the supervisor; a long timeout just keeps accepting.
    while let Ok(channel) = peer.accept_channel(Duration::from_secs(3600)).await {
        tasks.spawn(async move {
            while let Some(m) = channel.recv_message().await {
                if channel.send_message(&m).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// How [`run_check`] probes.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Probes to send. Default 50.
    pub probes: u32,
    /// Gap between probes. Default 20 ms.
    pub interval: Duration,
    /// Bytes per probe (at least 16). Default 1000.
    pub payload_bytes: usize,
    /// How long to wait for the channel to open. Default 15 s.
    pub open_timeout: Duration,
    /// After the last probe, how long to wait for stragglers. Default 2 s.
    pub settle: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            probes: 50,
            interval: Duration::from_millis(20),
            payload_bytes: 1000,
            open_timeout: Duration::from_secs(15),
            settle: Duration::from_secs(2),
        }
    }
}

/// What a client learns from a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub rtt_ms_p50: f64,
    pub rtt_ms_max: f64,
    pub sent: u32,
    pub received: u32,
    pub loss_pct: f64,
    /// Echoed payload bits per second over the probing time (both directions carried it).
    pub throughput_kbps: f64,
    /// The selected candidate pair as the client sees it.
    pub path: Option<SelectedPath>,
}

const PROBE_HEADER: usize = 12;

/// Client side of a check: over `channel` (created before the offer, ideally with
/// [`Peer::create_lossy_channel`] so loss is real loss), send numbered probes to the echoing
/// server and measure what comes back. The peer must be signalled by the caller.
pub async fn run_check(
    peer: &Peer,
    channel: &Channel,
    options: &CheckOptions,
) -> Result<CheckReport, PeerError> {
    channel.wait_open(options.open_timeout).await?;
    let size = options.payload_bytes.max(PROBE_HEADER);
    let start = Instant::now();
    let last_send = Arc::new(Mutex::new(None::<Instant>));

    let send = async {
        let mut sent = 0u32;
        let mut tick = tokio::time::interval(options.interval);
        for seq in 0..options.probes {
            tick.tick().await;
            let mut probe = vec![0u8; size];
            probe[..4].copy_from_slice(&seq.to_be_bytes());
            let micros = start.elapsed().as_micros() as u64;
            probe[4..PROBE_HEADER].copy_from_slice(&micros.to_be_bytes());
            if channel.send(&probe).await.is_err() {
                break;
            }
            sent += 1;
        }
        *last_send.lock().expect("not poisoned") = Some(Instant::now());
        sent
    };

    let receive = async {
        let mut rtts = Vec::new();
        let mut bytes = 0usize;
        let mut seen = std::collections::HashSet::new();
        loop {
            let deadline = match *last_send.lock().expect("not poisoned") {
                Some(t) => t + options.settle,
                None => Instant::now() + options.settle + options.interval * 4,
            };
            if seen.len() as u32 >= options.probes {
                break;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            // Re-evaluate the deadline at least every interval while still sending.
            let wait = wait.min(options.interval.max(Duration::from_millis(50)));
            match tokio::time::timeout(wait, channel.recv()).await {
                Ok(Some(echo)) if echo.len() >= PROBE_HEADER => {
                    let seq = u32::from_be_bytes(echo[..4].try_into().expect("4 bytes"));
                    let at = u64::from_be_bytes(echo[4..PROBE_HEADER].try_into().expect("8 bytes"));
                    if seen.insert(seq) {
                        let now = start.elapsed().as_micros() as u64;
                        rtts.push(now.saturating_sub(at) as f64 / 1000.0);
                        bytes += echo.len();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {}
            }
        }
        (rtts, bytes)
    };

    let (sent, (mut rtts, bytes)) = tokio::join!(send, receive);
    let elapsed = start.elapsed().as_secs_f64().max(1e-3);
    rtts.sort_by(|a, b| a.total_cmp(b));
    let received = rtts.len() as u32;
    Ok(CheckReport {
        rtt_ms_p50: rtts.get(rtts.len() / 2).copied().unwrap_or(0.0),
        rtt_ms_max: rtts.last().copied().unwrap_or(0.0),
        sent,
        received,
        loss_pct: if sent == 0 {
            100.0
        } else {
            100.0 * f64::from(sent.saturating_sub(received)) / f64::from(sent)
        },
        throughput_kbps: (bytes as f64 * 8.0 / 1000.0) / elapsed,
        path: peer.selected_path().await,
    })
}
