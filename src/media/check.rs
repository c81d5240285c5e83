//! The connection check: a client opens a WebRTC connection to examroom's own peer, which
//! echoes every data-channel message back as it came, so the client can measure round-trip
//! time, loss and throughput and learn which ICE path (host / srflx / relay) works from where
//! it is — before a visit, not during one.
//!
//! This module is the server's answering side. Transport-agnostic: [`CheckService::start`]
//! takes an offer's SDP and returns the answer's, and the [`CheckHandle`] takes remote
//! candidates and yields local ones; the signalling layer carries them (`check_offer` /
//! `check_answer` / `check_candidate`). The probing side, what a client runs against this, is
//! tooling and lives in the `examroom-load` crate (`examroom_load::check::run_check`).
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
    Candidate, LocalCandidates, Peer, PeerError, PeerOptions, PeerState, SelectedPath,
};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    /// A candidate was dropped by policy (see [`CandidateGate`]); the check goes on.
    #[error("candidate refused: {0}")]
    CandidateRefused(&'static str),
    /// A candidate could not be parsed or applied; the check goes on.
    #[error("candidate not applied: {0}")]
    BadCandidate(#[source] PeerError),
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
        // Candidates inside the offer go through the same gate as trickled ones.
        let (offer_sdp, embedded) = split_candidates(&offer_sdp);
        let answer = match peer.accept_offer(&offer_sdp).await {
            Ok(answer) => answer,
            Err(e) => {
                peer.close().await;
                return Err(CheckError::BadOffer(e));
            }
        };
        let gate = CandidateGate::new(self.shared.udp_ip);
        for c in embedded {
            if gate.admit(&c).is_ok() {
                peer.add_remote_candidate(c).await.ok();
            }
        }

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
                gate,
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
    gate: CandidateGate,
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
    ///
    /// [`CheckError::CandidateRefused`] means the candidate was dropped by policy (see
    /// [`CandidateGate`]); the check goes on, and the client needs to be told nothing.
    pub async fn add_remote_candidate(&self, candidate: Candidate) -> Result<(), CheckError> {
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        self.gate
            .admit(&candidate)
            .map_err(CheckError::CandidateRefused)?;
        self.peer
            .add_remote_candidate(candidate)
            .await
            .map_err(CheckError::BadCandidate)
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

/// Most remote candidates one check accepts; a browser sends a handful.
const MAX_REMOTE_CANDIDATES: usize = 32;

/// Which client candidates the server peer will send connectivity checks to.
///
/// Remote candidates are addresses the *client* chooses, and the server peer sends STUN
/// requests to each: unfiltered, a check would let anyone make examroom probe hosts on its own
/// networks. So a candidate's address must be no "closer" than the server's own `udp_ip`:
/// a server on a public address talks only to public addresses, one on a private address to
/// private and public ones, and only a server on loopback (tests, development) to loopback.
/// Link-local, multicast, unspecified and unresolved mDNS (`.local`) candidates are dropped,
/// and at most [`MAX_REMOTE_CANDIDATES`] are taken per check. A client whose direct
/// candidates are dropped still reaches the server: its checks arrive as peer-reflexive.
#[derive(Debug)]
pub struct CandidateGate {
    server: IpAddr,
    /// A std mutex: one increment, never held across an `.await`.
    admitted: Mutex<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Loopback,
    Private,
    Global,
}

fn scope(ip: IpAddr) -> Option<Scope> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some(Scope::Loopback)
            } else if v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_link_local()
            {
                None
            } else if v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64) {
                // RFC 1918 and RFC 6598 (carrier-grade NAT) space.
                Some(Scope::Private)
            } else {
                Some(Scope::Global)
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return scope(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            if v6.is_loopback() {
                Some(Scope::Loopback)
            } else if v6.is_unspecified() || v6.is_multicast() || seg0 & 0xffc0 == 0xfe80 {
                None
            } else if seg0 & 0xfe00 == 0xfc00 {
                // Unique local addresses (fc00::/7).
                Some(Scope::Private)
            } else {
                Some(Scope::Global)
            }
        }
    }
}

impl CandidateGate {
    pub fn new(server: IpAddr) -> Self {
        Self {
            server,
            admitted: Mutex::new(0),
        }
    }

    /// Whether the server peer may use `candidate`; the reason when not.
    pub fn admit(&self, candidate: &Candidate) -> Result<(), &'static str> {
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
        let address = candidate
            .candidate
            .trim_start_matches("candidate:")
            .split_whitespace()
            .nth(4)
            .ok_or("malformed candidate")?;
        let ip: IpAddr = address
            .parse()
            .map_err(|_| "not an IP address (mDNS names are not resolved)")?;
        let theirs = scope(ip).ok_or("address cannot be a peer")?;
        // A server bound to 0.0.0.0 is treated as global: the strictest choice.
        let ours = scope(self.server).unwrap_or(Scope::Global);
        if theirs < ours {
            return Err("address is on a network the server must not probe");
        }
        let mut admitted = self.admitted.lock().expect("not poisoned");
        if *admitted >= MAX_REMOTE_CANDIDATES {
            return Err("too many candidates");
        }
        *admitted += 1;
        Ok(())
    }
}

/// Split `a=candidate:` lines out of an SDP, as trickled candidates of the first m-section
/// (a check has one bundled transport).
fn split_candidates(sdp: &str) -> (String, Vec<Candidate>) {
    let mut kept = String::with_capacity(sdp.len());
    let mut candidates = Vec::new();
    for line in sdp.split_inclusive('\n') {
        match line.trim_end().strip_prefix("a=") {
            Some(attr) if attr.starts_with("candidate:") => candidates.push(Candidate {
                candidate: attr.to_owned(),
                sdp_mid: None,
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
            _ => kept.push_str(line),
        }
    }
    (kept, candidates)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(addr: &str) -> Candidate {
        Candidate {
            candidate: format!("candidate:1 1 udp 2130706431 {addr} 5000 typ host"),
            sdp_mid: None,
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    #[test]
    fn a_public_server_never_probes_private_loopback_or_link_local_addresses() {
        let gate = CandidateGate::new("203.0.113.7".parse().unwrap());
        // Documentation ranges count as public: test networks use them for real hosts.
        assert!(gate.admit(&cand("198.51.100.20")).is_ok());
        assert!(gate.admit(&cand("8.8.8.8")).is_ok());
        assert!(gate.admit(&cand("10.1.2.3")).is_err());
        assert!(gate.admit(&cand("192.168.1.10")).is_err());
        assert!(gate.admit(&cand("100.64.0.1")).is_err());
        assert!(gate.admit(&cand("127.0.0.1")).is_err());
        assert!(
            gate.admit(&cand("169.254.169.254")).is_err(),
            "cloud metadata"
        );
        assert!(gate.admit(&cand("::1")).is_err());
        assert!(gate.admit(&cand("fd00::1")).is_err());
        assert!(gate.admit(&cand("2001:4860:4860::8888")).is_ok());
        assert!(gate.admit(&cand("5c3a9f1e-0000.local")).is_err());
    }

    #[test]
    fn a_private_server_accepts_private_and_public_and_loopback_accepts_all() {
        let private = CandidateGate::new("10.0.0.5".parse().unwrap());
        assert!(private.admit(&cand("10.1.2.3")).is_ok());
        assert!(private.admit(&cand("8.8.8.8")).is_ok());
        assert!(private.admit(&cand("127.0.0.1")).is_err());
        let lo = CandidateGate::new("127.0.0.1".parse().unwrap());
        assert!(lo.admit(&cand("127.0.0.1")).is_ok());
        assert!(lo.admit(&cand("10.1.2.3")).is_ok());
    }

    #[test]
    fn at_most_a_bounded_number_of_candidates_per_check() {
        let gate = CandidateGate::new("127.0.0.1".parse().unwrap());
        for _ in 0..MAX_REMOTE_CANDIDATES {
            assert!(gate.admit(&cand("127.0.0.1")).is_ok());
        }
        assert_eq!(gate.admit(&cand("127.0.0.1")), Err("too many candidates"));
    }

    #[test]
    fn candidates_embedded_in_an_offer_are_split_out() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                   a=candidate:1 1 udp 1 10.0.0.9 5000 typ host\r\na=mid:0\r\n";
        let (kept, cands) = split_candidates(sdp);
        assert!(!kept.contains("candidate"));
        assert!(kept.contains("a=mid:0\r\n"));
        assert_eq!(cands.len(), 1);
        assert_eq!(
            cands[0].candidate,
            "candidate:1 1 udp 1 10.0.0.9 5000 typ host"
        );
    }
}
