//! The client side of the connection check (`docs/media.md`): over a data channel to
//! examroom's echoing peer (`examroom::media::check`, reached through `check_offer` /
//! `check_answer` / `check_candidate`), send numbered, timestamped probes and measure what
//! comes back — round-trip time, loss, throughput and the ICE path that was selected.
//!
//! It lives with the load tool, not in the server: the server only answers checks; this is
//! what a Rust client (the benches, the tests) runs against it. Browsers do the same in JS.

use examroom::media::peer::{Channel, Peer, PeerError, SelectedPath};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
