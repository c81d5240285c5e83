//! A WebRTC peer for data channels that behaves like a browser's `RTCPeerConnection`.
//!
//! Used by the server-side connection check, by tests as a stand-in for a patient's or a
//! physician's browser, and by benchmarks and the load generator. It wraps `webrtc` 0.21
//! (the driver-based rewrite: `PeerConnectionBuilder` + a [`PeerConnectionEventHandler`]),
//! and speaks only plain strings and JSON-ready values so everything can ride examroom's
//! WebSocket protocol:
//!
//! - SDP is a `String` (the `sdp` field of an `RTCSessionDescriptionInit`);
//! - a candidate is a [`Candidate`], serialised exactly like a browser's
//!   `RTCIceCandidateInit`: `{candidate, sdpMid, sdpMLineIndex, usernameFragment}`.
//!
//! Trickle ICE: local candidates come out of the [`LocalCandidates`] receiver returned by
//! [`Peer::new`], ending each gathering round with [`LocalCandidate::End`]; remote ones go in
//! with [`Peer::add_remote_candidate`], which may be called before the remote description is
//! set (they are held back until it is, as browsers' signalling often races).
//!
//! Invariants: the handler given to `webrtc` never blocks (its callbacks run on the
//! connection's driver), so it only forwards events into channels.

use crate::ice::IceServer;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};

/// Which candidates ICE may use, as `RTCConfiguration.iceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only relay (TURN) candidates: what a patient behind a strict firewall ends up using.
    Relay,
}

/// ICE check pacing (see `Peer::new`).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
const ICE_MAX_BINDING_REQUESTS: u16 = 28;

/// How to build a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// STUN/TURN servers, as [`crate::ice::IceConfig::servers_for`] mints them.
    pub ice_servers: Vec<IceServer>,
    pub policy: IcePolicy,
    /// Local UDP addresses to bind. A concrete IP binds exactly that interface; `0.0.0.0:0`
    /// binds every non-loopback interface. Default `127.0.0.1:0`.
    pub udp_addrs: Vec<SocketAddr>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            policy: IcePolicy::All,
            udp_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        }
    }
}

/// An ICE candidate as browsers exchange it (`RTCIceCandidateInit`); the wire type.
/// An empty `candidate` line means "end of candidates".
pub use crate::protocol::{Candidate, CandidateKind};

/// One item out of [`LocalCandidates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCandidate {
    Candidate(Candidate),
    /// Gathering finished (a browser's `icecandidate` event with a null candidate). Comes
    /// again after each ICE restart's gathering round.
    End,
}

/// Local candidates of one peer, in gathering order. Unbounded on purpose: gathering yields a
/// handful of candidates per round and the driver's callback must never wait on a reader.
pub type LocalCandidates = mpsc::UnboundedReceiver<LocalCandidate>;

fn kind_from_rtc(t: RTCIceCandidateType) -> CandidateKind {
    match t {
        RTCIceCandidateType::Host => CandidateKind::Host,
        RTCIceCandidateType::Srflx => CandidateKind::Srflx,
        RTCIceCandidateType::Prflx => CandidateKind::Prflx,
        RTCIceCandidateType::Relay => CandidateKind::Relay,
        _ => CandidateKind::Unknown,
    }
}

/// The candidate pair ICE selected: which path the media would take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedPath {
    pub local: CandidateKind,
    pub remote: CandidateKind,
    /// `udp`/`tcp`/`tls` between this peer and its TURN server, when the local side is a relay.
    pub relay_protocol: Option<String>,
}

impl SelectedPath {
    /// `relay` if either end is relayed, else `srflx` if either is reflexive, else `host`:
    /// the one word a support page shows.
    pub fn summary(&self) -> CandidateKind {
        use CandidateKind::*;
        let both = [self.local, self.remote];
        if both.contains(&Relay) {
            Relay
        } else if both.contains(&Srflx) || both.contains(&Prflx) {
            Srflx
        } else if both.contains(&Host) {
            Host
        } else {
            Unknown
        }
    }
}

/// Connection state, as `RTCPeerConnection.connectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for PeerState {
    fn from(s: RTCPeerConnectionState) -> Self {
        match s {
            RTCPeerConnectionState::Connecting => Self::Connecting,
            RTCPeerConnectionState::Connected => Self::Connected,
            RTCPeerConnectionState::Disconnected => Self::Disconnected,
            RTCPeerConnectionState::Failed => Self::Failed,
            RTCPeerConnectionState::Closed => Self::Closed,
            _ => Self::New,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {context}: {source}")]
    Webrtc {
        context: &'static str,
        #[source]
        source: webrtc::error::Error,
    },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error("peer connection {0:?} before connecting")]
    NotConnected(PeerState),
    #[error("data channel closed")]
    ChannelClosed,
}

fn ctx(context: &'static str) -> impl FnOnce(webrtc::error::Error) -> PeerError {
    move |source| PeerError::Webrtc { context, source }
}

/// Forwards the driver's events into channels. Never blocks: see the module invariants.
struct Events {
    /// Relay candidate `address:port` → the TURN URL it was allocated from.
    relay_urls: Arc<Mutex<HashMap<String, String>>>,
    candidates: mpsc::UnboundedSender<LocalCandidate>,
    state: watch::Sender<PeerState>,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if event.candidate.typ == RTCIceCandidateType::Relay && !event.url.is_empty() {
            let key = format!("{}:{}", event.candidate.address, event.candidate.port);
            self.relay_urls
                .lock()
                .expect("not poisoned")
                .insert(key, event.url.clone());
        }
        let Ok(init) = event.candidate.to_json() else {
            return;
        };
        // webrtc fills sdpMid with "" which browsers reject ("no m-line with that mid"); null
        // plus sdpMLineIndex 0 is accepted everywhere and right for one bundled transport.
        let _ = self.candidates.send(LocalCandidate::Candidate(Candidate {
            candidate: init.candidate,
            sdp_mid: init.sdp_mid.filter(|m| !m.is_empty()),
            sdp_m_line_index: init.sdp_mline_index.or(Some(0)),
            username_fragment: init.username_fragment,
        }));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.candidates.send(LocalCandidate::End);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state.into());
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.channels.send(dc);
    }
}

/// One browser-like peer connection. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<PeerState>,
    /// Channels the remote side opened. An async mutex because it only serialises readers of
    /// one receiver, whose `recv` must await; it guards no state.
    remote_channels: tokio::sync::Mutex<mpsc::UnboundedReceiver<Arc<dyn DataChannel>>>,
    /// Remote candidates that arrived before the remote description; `None` once it is set.
    /// A std mutex: held only to push or take, never across an `.await`.
    early_candidates: Mutex<Option<Vec<Candidate>>>,
    /// Shared with [`Events`]; a std mutex, held only for one insert or lookup.
    relay_urls: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Build a peer and start its driver. Returns the peer and its local-candidate stream.
    pub async fn new(options: PeerOptions) -> Result<(Peer, LocalCandidates), PeerError> {
        let ice_servers = options
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
        let policy = match options.policy {
            IcePolicy::All => RTCIceTransportPolicy::All,
            IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        };
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(policy)
            .build();
        // mDNS off: the default (query-only) opens a multicast socket per connection, which a
        // server running many checks does not want, and the server never needs to resolve a
        // browser's `.local` name — the browser's checks reach it and show up as prflx.
        // ICE pacing at RFC 8445's Ta of 50 ms (the crate's default is 200 ms), with as many
        // binding requests per pair, 28, as keep its 1.4 s before a pair is given up: on a
        // good path the pair is checked, then nominated, one tick apart, so a 200 ms tick
        // alone put 200–400 ms between admit and connected.
        // With relay-only policy no better pair can come, so the 2 s the agent would wait
        // before nominating a relay pair (for a host or reflexive one to show up) is lost time.
        let relay_wait = match options.policy {
            IcePolicy::Relay => Some(Duration::ZERO),
            IcePolicy::All => None,
        };
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            .with_relay_acceptance_min_wait(relay_wait)
            .build();
        let (cand_tx, cand_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(PeerState::New);
        let (chan_tx, chan_rx) = mpsc::unbounded_channel();
        let relay_urls = Arc::new(Mutex::new(HashMap::new()));
        let handler = Arc::new(Events {
            relay_urls: relay_urls.clone(),
            candidates: cand_tx,
            state: state_tx,
            channels: chan_tx,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(options.udp_addrs)
            .build()
            .await
            .map_err(ctx("build peer connection"))?;
        let peer = Peer {
            pc: Arc::new(pc),
            state: state_rx,
            remote_channels: tokio::sync::Mutex::new(chan_rx),
            early_candidates: Mutex::new(Some(Vec::new())),
            relay_urls,
        };
        Ok((peer, cand_rx))
    }

    /// Create an offer, apply it locally, and return its SDP. Create data channels first:
    /// an offer without any has no `m=application` section and no transport.
    pub async fn create_offer(&self) -> Result<String, PeerError> {
        let offer = self.pc.create_offer(None).await;
        let offer = offer.map_err(ctx("create offer"))?;
        self.apply_local(offer, "set local offer").await
    }

    /// Apply a remote offer (first one or a renegotiation/ICE restart) and return the answer.
    pub async fn accept_offer(&self, offer_sdp: &str) -> Result<String, PeerError> {
        let offer = RTCSessionDescription::offer(offer_sdp.to_owned());
        let offer = offer.map_err(ctx("parse offer"))?;
        self.apply_remote(offer, "set remote offer").await?;
        let answer = self.pc.create_answer(None).await;
        let answer = answer.map_err(ctx("create answer"))?;
        self.apply_local(answer, "set local answer").await
    }

    /// Apply the remote answer to our offer.
    pub async fn set_answer(&self, answer_sdp: &str) -> Result<(), PeerError> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned());
        let answer = answer.map_err(ctx("parse answer"))?;
        self.apply_remote(answer, "set remote answer").await
    }

    /// Set our own description; returns its SDP for the other side.
    async fn apply_local(
        &self,
        desc: RTCSessionDescription,
        context: &'static str,
    ) -> Result<String, PeerError> {
        let sdp = desc.sdp.clone();
        self.pc
            .set_local_description(desc)
            .await
            .map_err(ctx(context))?;
        Ok(sdp)
    }

    /// Set the other side's description, then add the candidates that came before it.
    async fn apply_remote(
        &self,
        desc: RTCSessionDescription,
        context: &'static str,
    ) -> Result<(), PeerError> {
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(ctx(context))?;
        self.flush_early_candidates().await;
        Ok(())
    }

    /// Add a remote candidate. An empty `candidate` (end of candidates) is accepted and
    /// ignored. Before the remote description is set, the candidate is held back.
    pub async fn add_remote_candidate(&self, candidate: Candidate) -> Result<(), PeerError> {
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        {
            let mut early = self.early_candidates.lock().expect("not poisoned");
            if let Some(held) = early.as_mut() {
                held.push(candidate);
                return Ok(());
            }
        }
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_m_line_index,
                username_fragment: candidate.username_fragment,
                url: None,
            })
            .await
            .map_err(ctx("add remote candidate"))
    }

    async fn flush_early_candidates(&self) {
        let held = self.early_candidates.lock().expect("not poisoned").take();
        for c in held.unwrap_or_default() {
            // A malformed early candidate must not fail the description that follows it.
            if let Err(e) = self.add_remote_candidate(c).await {
                tracing::debug!(error = %e, "dropped an early remote candidate");
            }
        }
    }

    /// Start an ICE restart: returns a new offer with fresh ICE credentials (send it to the
    /// other side, which answers with [`Peer::accept_offer`]). Gathering starts again, so
    /// new local candidates and another [`LocalCandidate::End`] follow.
    pub async fn restart_ice(&self) -> Result<String, PeerError> {
        self.pc.restart_ice().await.map_err(ctx("restart ice"))?;
        self.create_offer().await
    }

    /// The current connection state.
    pub fn state(&self) -> PeerState {
        *self.state.borrow()
    }

    /// A receiver of connection-state changes.
    pub fn state_changes(&self) -> watch::Receiver<PeerState> {
        self.state.clone()
    }

    /// Wait until the connection is `connected` (ICE and DTLS up). Fails early on `failed` or
    /// `closed`, or after `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), PeerError> {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                matches!(
                    s,
                    PeerState::Connected | PeerState::Failed | PeerState::Closed
                )
            }),
        )
        .await
        .map_err(|_| PeerError::Timeout(timeout, "connection"))?;
        match waited.map(|s| *s) {
            Ok(PeerState::Connected) => Ok(()),
            Ok(other) => Err(PeerError::NotConnected(other)),
            Err(_) => Err(PeerError::NotConnected(PeerState::Closed)),
        }
    }

    /// Open a data channel (reliable, ordered). Before the first offer, this is what gives
    /// the offer its transport.
    pub async fn create_channel(&self, label: &str) -> Result<Channel, PeerError> {
        let dc = self
            .pc
            .create_data_channel(label, None)
            .await
            .map_err(ctx("create data channel"))?;
        Ok(Channel::new(dc))
    }

    /// Open an ordered data channel that never retransmits (`maxRetransmits: 0`): a lost
    /// message stays lost, which is what measuring loss needs. Ordered, because an unordered
    /// first message can overtake the channel-open handshake and be dropped.
    pub async fn create_lossy_channel(&self, label: &str) -> Result<Channel, PeerError> {
        let init = RTCDataChannelInit {
            ordered: true,
            max_retransmits: Some(0),
            ..RTCDataChannelInit::default()
        };
        let dc = self
            .pc
            .create_data_channel(label, Some(init))
            .await
            .map_err(ctx("create data channel"))?;
        Ok(Channel::new(dc))
    }

    /// The next data channel the remote side opened.
    pub async fn accept_channel(&self, timeout: Duration) -> Result<Channel, PeerError> {
        let mut rx = self.remote_channels.lock().await;
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(dc)) => Ok(Channel::new(dc)),
            Ok(None) => Err(PeerError::ChannelClosed),
            Err(_) => Err(PeerError::Timeout(timeout, "a remote data channel")),
        }
    }

    /// The selected candidate pair, once connected (`None` before, or without data channels:
    /// the ICE transport is reached through the SCTP transport).
    pub async fn selected_path(&self) -> Option<SelectedPath> {
        let sctp = self.pc.sctp().await?;
        let pair = sctp
            .transport()
            .ice_transport()
            .get_selected_candidate_pair()
            .await
            .ok()??;
        let local = kind_from_rtc(pair.local().typ);
        // webrtc 0.21 leaves `relay_protocol` and `url` of the selected pair's candidates
        // unset; the URL a relay candidate came from is only on its gathering event, so the
        // handler remembers it by address.
        let relay_protocol = (local == CandidateKind::Relay)
            .then(|| {
                let key = format!("{}:{}", pair.local().address, pair.local().port);
                let urls = self.relay_urls.lock().expect("not poisoned");
                urls.get(&key).map(|u| relay_protocol_of(u))
            })
            .flatten();
        Some(SelectedPath {
            local,
            remote: kind_from_rtc(pair.remote().typ),
            relay_protocol,
        })
    }

    /// Close the connection (idempotent); releases TURN allocations best-effort.
    pub async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing peer connection");
        }
    }
}

/// `udp`, `tcp` or `tls` from a TURN URL (`turns:` is TLS; else `?transport=`, default UDP).
fn relay_protocol_of(url: &str) -> String {
    if url.starts_with("turns:") {
        return "tls".into();
    }
    match url.split_once("transport=") {
        Some((_, t)) => t.split('&').next().unwrap_or("udp").to_ascii_lowercase(),
        None => "udp".into(),
    }
}

/// A data channel with a simple message API. Messages are delivered in order; text and
/// binary are both handed out as bytes.
pub struct Channel {
    dc: Arc<dyn DataChannel>,
    /// Events pumped out of the driver by one task so none is lost between `wait_open` and
    /// `recv` calls.
    /// Async mutex for the same reason as `Peer::remote_channels`: it serialises readers.
    rx: tokio::sync::Mutex<mpsc::Receiver<Message>>,
    open: watch::Receiver<ChannelState>,
}

/// One data-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub data: Vec<u8>,
    /// Sent as text (a JavaScript string) rather than binary.
    pub text: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    Connecting,
    Open,
    Closed,
}

/// Messages queued per channel before the pump waits for the reader.
const CHANNEL_QUEUE: usize = 1024;

impl Channel {
    fn new(dc: Arc<dyn DataChannel>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
        let (open_tx, open_rx) = watch::channel(ChannelState::Connecting);
        let pump = dc.clone();
        tokio::spawn(async move {
            while let Some(event) = pump.poll().await {
                match event {
                    DataChannelEvent::OnOpen => {
                        open_tx.send_replace(ChannelState::Open);
                    }
                    DataChannelEvent::OnMessage(msg) => {
                        // The reader is gone (Channel dropped): stop pumping.
                        let delivered = tx
                            .send(Message {
                                data: msg.data.to_vec(),
                                text: msg.is_string,
                            })
                            .await;
                        if delivered.is_err() {
                            break;
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
            open_tx.send_replace(ChannelState::Closed);
        });
        Self {
            dc,
            rx: tokio::sync::Mutex::new(rx),
            open: open_rx,
        }
    }

    /// Wait until the channel is open (DTLS + SCTP + DCEP done).
    pub async fn wait_open(&self, timeout: Duration) -> Result<(), PeerError> {
        let mut rx = self.open.clone();
        let state = tokio::time::timeout(timeout, rx.wait_for(|s| *s != ChannelState::Connecting))
            .await
            .map_err(|_| PeerError::Timeout(timeout, "data channel open"))?
            .map(|s| *s)
            .unwrap_or(ChannelState::Closed);
        match state {
            ChannelState::Open => Ok(()),
            _ => Err(PeerError::ChannelClosed),
        }
    }

    /// Send a binary message.
    pub async fn send(&self, data: &[u8]) -> Result<(), PeerError> {
        self.dc
            .send(BytesMut::from(data))
            .await
            .map_err(|_| PeerError::ChannelClosed)
    }

    /// Send a text message.
    pub async fn send_text(&self, text: &str) -> Result<(), PeerError> {
        self.dc
            .send_text(text)
            .await
            .map_err(|_| PeerError::ChannelClosed)
    }

    /// The next message's bytes; `None` once the channel is closed and drained.
    pub async fn recv(&self) -> Option<Vec<u8>> {
        self.recv_message().await.map(|m| m.data)
    }

    /// The next message with its kind (text or binary).
    pub async fn recv_message(&self) -> Option<Message> {
        self.rx.lock().await.recv().await
    }

    /// Send `message` as the kind it was received as.
    pub async fn send_message(&self, message: &Message) -> Result<(), PeerError> {
        if message.text {
            // Text arrived as valid UTF-8; a lossy conversion only guards against a broken peer.
            self.send_text(&String::from_utf8_lossy(&message.data))
                .await
        } else {
            self.send(&message.data).await
        }
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(PeerError::ChannelClosed),
            Err(_) => Err(PeerError::Timeout(timeout, "a data channel message")),
        }
    }

    /// Close this channel.
    pub async fn close(&self) {
        let _ = self.dc.close().await;
    }
}

/// Forward every local candidate of `from` into `to` until `from` ends: in-process
/// signalling for tests and benchmarks. Returns the task handle.
pub fn pipe_candidates(mut from: LocalCandidates, to: Arc<Peer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(c) = from.recv().await {
            if let LocalCandidate::Candidate(c) = c
                && let Err(e) = to.add_remote_candidate(c).await
            {
                tracing::debug!(error = %e, "piped candidate refused");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_serialize_like_rtc_ice_candidate_init() {
        let c = Candidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: None,
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMLineIndex":0}"#
        );
        assert_eq!(c.kind(), Some(CandidateKind::Host));
        let from_browser: Candidate =
            serde_json::from_str(r#"{"candidate":"candidate:2 1 udp 1 10.0.0.1 9 typ relay raddr 0.0.0.0 rport 0","sdpMid":"0"}"#)
                .unwrap();
        assert_eq!(from_browser.kind(), Some(CandidateKind::Relay));
        assert_eq!(from_browser.sdp_m_line_index, None);
    }
}
