//! The visit history: the writer, and the no-show sweep.
//!
//! The writer: every transition a room makes goes to the durable store
//! *before* the room sends what the transition causes (`live::record_first`), so
//! whatever a patient or physician was told happened is in the history even if this
//! node is killed the next instant (`docs/deploy.md`, "History before effects").
//!
//! Invariant: a visit's transitions are written in the order they were made (the store
//! orders a visit's history by time and ignores a transition written twice, so a write
//! repeated, or made by another node, changes nothing). While the database answers, each
//! is written directly (bounded by [`DIRECT_WAIT`], or [`PARKED_WAIT`] where there is a
//! [`Parking`]); once a write fails or times out, it and every later one go through one
//! retrying queue until that queue is empty again, so a slow database costs one bounded
//! stall, not one per visit.
//!
//! With several nodes the queue is also *parked* outside the process (`live::Parking`,
//! a Redis list) before the room carries on: the room then waits for Redis (≈ 1 ms), not
//! for the database, so a database outage does not hold up the room's relays; and a
//! queued transition outlives its node. The node removes it once written; a node that
//! stopped or died before the database came back leaves it parked, and any node's
//! [`sweep_parked`] writes it.
//!
//! What nobody could park (one node without Redis, or Redis away too) is held in this
//! process; a node that stops gracefully writes it to the *spool* in its data directory
//! ([`SPOOL_FILE`], the parked format, one per line, in order) and the next start on that
//! directory replays it into the queue before any room runs.

use crate::durable::{DurableError, DurableStore, VisitEvent};
use crate::ids::{PatientRef, RoomId, StaffId, VisitId};
use crate::live::Parking;
use crate::visit::VisitState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How long a room waits for the database before it carries on and queues the write.
pub const DIRECT_WAIT: Duration = Duration::from_secs(2);
/// The same where a queued transition is parked outside the process first: queuing is
/// then as safe as writing, so the room waits only as long as a healthy database takes
/// on a busy day (a write is ≈ 1–3 ms; 250 ms is far in its tail).
pub const PARKED_WAIT: Duration = Duration::from_millis(250);
/// Direct writes in flight at once. The database pool is small (10 PostgreSQL / 8 SQLite
/// connections): a burst of transitions (thousands of patients arriving) must leave
/// connections for sign-ins, `hello`s and room loads, or those time out instead.
const WRITERS: usize = 4;
/// Transitions held for retry while the database is away.
const BACKLOG: usize = 10_000;
/// Attempts for errors other than an unreachable database (which is waited out).
const ATTEMPTS: u32 = 8;
/// After parking failed (Redis away too), transitions queue in memory only for this
/// long before parking is tried again: a room must not wait out Redis's timeout for
/// every transition.
const PARKING_BACKOFF: Duration = Duration::from_secs(5);
/// How often each node looks for transitions other nodes left parked.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// A parked transition younger than this is its node's to write (it is retrying it);
/// older, any node writes it. Writing one twice is harmless, only wasted.
const SWEEP_AGE_MS: i64 = 10_000;
/// Parked transitions read per sweep round.
const SWEEP_BATCH: usize = 200;

/// The spool in the data directory: what a stopping node held only in memory.
pub const SPOOL_FILE: &str = "history-spool.jsonl";

/// One queued transition, and its parked copy (`None`: held in this process only, under
/// `id` in [`Held`]).
struct Queued {
    id: u64,
    ev: VisitEvent,
    parked: Option<String>,
}

/// Queued transitions held only in this process, by queue order, in the parked format:
/// what a stopping node spools. std Mutex: an insert or remove, never across an await.
type Held = Arc<Mutex<BTreeMap<u64, String>>>;

pub struct HistoryWriter {
    durable: Arc<dyn DurableStore>,
    parking: Option<Arc<dyn Parking>>,
    backlog: mpsc::Sender<Queued>,
    writers: Semaphore,
    /// Transitions queued or being retried; while non-zero, new ones queue behind them.
    queued: Arc<AtomicUsize>,
    /// Those of them held in this process only (parking failed or there is none).
    held: Held,
    next_id: AtomicU64,
    /// Where to spool what is held when the node stops (`None`: nowhere, it is lost).
    spool: Option<PathBuf>,
    /// Last time parking failed. std Mutex: a read or write of an `Instant`, no await.
    parking_failed: Mutex<Option<Instant>>,
    /// Ticks once per stored transition, for whoever waits for one to land.
    written: Arc<watch::Sender<u64>>,
    /// Notified each time the queue lost one (written, or given up).
    settled: Arc<Notify>,
}

impl HistoryWriter {
    /// Starts the retry task; it ends when the writer is dropped. With `parking`, queued
    /// transitions are parked there too, and a sweeper writes those other nodes left.
    /// With `spool` (a data directory), what a previous run there spooled is queued first,
    /// in order, and what this run holds only in memory is spooled there when it stops.
    pub fn start(
        durable: Arc<dyn DurableStore>,
        parking: Option<Arc<dyn Parking>>,
        spool: Option<&Path>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let queued = Arc::new(AtomicUsize::new(0));
        let held: Held = Arc::default();
        let written = Arc::new(watch::Sender::new(0));
        let settled = Arc::new(Notify::new());
        let retrying = Retry {
            durable: durable.clone(),
            parking: parking.clone(),
            queued: queued.clone(),
            held: held.clone(),
            written: written.clone(),
            settled: settled.clone(),
        };
        tokio::spawn(retry(retrying, rx));
        if let Some(p) = &parking {
            tokio::spawn(sweep_parked(
                durable.clone(),
                p.clone(),
                queued.clone(),
                written.clone(),
                tx.downgrade(),
            ));
        }
        let writer = HistoryWriter {
            durable,
            parking,
            backlog: tx,
            writers: Semaphore::new(WRITERS),
            queued,
            held,
            next_id: AtomicU64::new(0),
            spool: spool.map(|dir| dir.join(SPOOL_FILE)),
            parking_failed: Mutex::new(None),
            written,
            settled,
        };
        writer.replay_spool();
        writer
    }

    /// Queue what the last run on this data directory spooled, in order, and remove the
    /// spool (what is still held when this run stops is spooled again).
    fn replay_spool(&self) {
        let Some(path) = &self.spool else {
            return;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "the visit-history spool cannot be read; left in place");
                return;
            }
        };
        let (mut queued, mut unreadable) = (0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()).take(BACKLOG) {
            match ParkedTransition::from_text(line) {
                Some(p) => {
                    self.hold(p.event(), line.to_owned());
                    queued += 1;
                }
                None => unreadable += 1,
            }
        }
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(error = %e, "the replayed visit-history spool could not be removed");
        }
        tracing::info!(
            queued,
            unreadable,
            "visit history left by the last run (spooled when it stopped) queued for writing"
        );
    }

    /// Queue `ev` held in this process only (`text`: its parked format, for the spool).
    fn hold(&self, ev: VisitEvent, text: String) {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        self.held.lock().expect("poisoned").insert(id, text);
        self.queued.fetch_add(1, Ordering::AcqRel);
        let parked = None;
        if self.backlog.try_send(Queued { id, ev, parked }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.held.lock().expect("poisoned").remove(&id);
            tracing::error!("visit history queue is full; a transition was not recorded");
        }
    }

    /// Changes each time a transition is stored (directly or from the retry queue).
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Returns once the transition is stored, or (database failing) queued for retry,
    /// and parked outside this process when there is a [`Parking`] that answers.
    pub async fn record(&self, ev: VisitEvent) {
        if self.queued.load(Ordering::Acquire) == 0 {
            let wait = if self.parking.is_some() {
                PARKED_WAIT
            } else {
                DIRECT_WAIT
            };
            let write = async {
                let _permit = self.writers.acquire().await.expect("never closed");
                self.durable.record_visit_event(ev.clone()).await
            };
            match tokio::time::timeout(wait, write).await {
                Ok(Ok(())) => {
                    self.written.send_modify(|n| *n += 1);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "recording visit history failed; queued for retry")
                }
                Err(_) => {
                    tracing::warn!("recording visit history took over {wait:?}; queued for retry")
                }
            }
        }
        let Some(parked) = self.park(&ev).await else {
            let text = ParkedTransition::new(&ev).to_text();
            self.hold(ev, text);
            return;
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let parked = Some(parked);
        if self.backlog.try_send(Queued { id, ev, parked }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("visit history queue is full; the transition stays parked");
        }
    }

    /// Park `ev` outside this process; its parked text, or `None` (no parking, or it is
    /// failing).
    async fn park(&self, ev: &VisitEvent) -> Option<String> {
        let parking = self.parking.as_ref()?;
        let failed = *self.parking_failed.lock().expect("poisoned");
        if failed.is_some_and(|at| at.elapsed() < PARKING_BACKOFF) {
            return None;
        }
        let item = ParkedTransition::new(ev).to_text();
        match parking.park(&item).await {
            Ok(()) => Some(item),
            Err(e) => {
                tracing::warn!(error = %e, "visit history not parked; held in this process until the database answers");
                *self.parking_failed.lock().expect("poisoned") = Some(Instant::now());
                None
            }
        }
    }

    /// The node is stopping: give the queue up to `within` to reach the database. What is
    /// left is parked (another node, or this one restarted, writes it) or spooled (the
    /// next start on this data directory writes it); returns how many transitions are
    /// left held only in this process, which are lost when it exits.
    pub async fn drain(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        while self.queued.load(Ordering::Acquire) > 0 {
            if tokio::time::timeout_at(deadline, self.settled.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let left = self.queued.load(Ordering::Acquire);
        let held: Vec<String> = self
            .held
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect();
        if left > 0 {
            tracing::warn!(
                left,
                parked = left.saturating_sub(held.len()),
                "stopping with visit history the database has not taken; what is parked is written by another node"
            );
        }
        if held.is_empty() {
            return 0;
        }
        let Some(path) = &self.spool else {
            tracing::error!(
                unparked = held.len(),
                "stopping with visit history held only in this process: it is lost"
            );
            return held.len();
        };
        match write_spool(path, &held) {
            Ok(()) => {
                tracing::warn!(
                    spooled = held.len(),
                    "visit history held only in this process written to the spool; the next start on this data directory writes it"
                );
                0
            }
            Err(e) => {
                tracing::error!(
                    unparked = held.len(),
                    error = %e,
                    "stopping with visit history held only in this process, and the spool could not be written: it is lost"
                );
                held.len()
            }
        }
    }
}

/// Write `lines` to the spool at `path`, whole or not at all: a temporary file, synced,
/// then renamed over it.
fn write_spool(path: &Path, lines: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for line in lines {
        writeln!(f, "{line}")?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A transition as it is parked: an explicit, versioned format, because nodes of
/// different versions share the list during a rolling upgrade. A node skips (leaves
/// parked) a version it does not know.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ParkedTransition {
    v: u32,
    /// Makes each parked item unique, so removing it by value removes this one.
    id: String,
    /// When it was parked (ms): the sweep leaves young ones to their node.
    parked_at: i64,
    visit: VisitId,
    room: RoomId,
    state: VisitState,
    at: i64,
    actor: Option<String>,
    physician: Option<StaffId>,
    patient_ref: Option<PatientRef>,
}

impl ParkedTransition {
    const VERSION: u32 = 1;

    fn new(ev: &VisitEvent) -> Self {
        ParkedTransition {
            v: Self::VERSION,
            id: crate::ids::random_id(),
            parked_at: chrono::Utc::now().timestamp_millis(),
            visit: ev.visit.clone(),
            room: ev.room.clone(),
            state: ev.state,
            at: ev.at,
            actor: ev.actor.clone(),
            physician: ev.physician.clone(),
            patient_ref: ev.patient_ref.clone(),
        }
    }

    fn to_text(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// `None` for what this version cannot read (a newer format, or garbage).
    fn from_text(text: &str) -> Option<Self> {
        let p: ParkedTransition = serde_json::from_str(text).ok()?;
        (p.v == Self::VERSION).then_some(p)
    }

    fn event(self) -> VisitEvent {
        VisitEvent {
            visit: self.visit,
            room: self.room,
            state: self.state,
            at: self.at,
            actor: self.actor,
            physician: self.physician,
            patient_ref: self.patient_ref,
        }
    }
}

struct Retry {
    durable: Arc<dyn DurableStore>,
    parking: Option<Arc<dyn Parking>>,
    queued: Arc<AtomicUsize>,
    held: Held,
    written: Arc<watch::Sender<u64>>,
    settled: Arc<Notify>,
}

/// Writes queued transitions in order; the store's writes are idempotent, so a write
/// that timed out above but did land is harmless to repeat.
async fn retry(r: Retry, mut rx: mpsc::Receiver<Queued>) {
    while let Some(Queued { id, ev, parked }) = rx.recv().await {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match r.durable.record_visit_event(ev.clone()).await {
                Ok(()) => {
                    r.written.send_modify(|n| *n += 1);
                    break;
                }
                // A database that is away is waited for, however long: the queue holds.
                Err(e @ DurableError::Unavailable(_)) => {
                    if attempt == 1 || attempt % 20 == 0 {
                        tracing::warn!(error = %e, attempt, "database away; visit history waits");
                    }
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "recording visit history failed; retrying")
                }
                Err(e) => {
                    tracing::error!(error = %e, visit = %ev.visit, "visit history transition lost");
                    break;
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        match (&parked, &r.parking) {
            (Some(item), Some(p)) => {
                // Left parked, another node's sweep writes it again: harmless.
                if let Err(e) = p.unpark(item).await {
                    tracing::debug!(error = %e, "written visit history not unparked");
                }
            }
            _ => {
                r.held.lock().expect("poisoned").remove(&id);
            }
        }
        r.queued.fetch_sub(1, Ordering::AcqRel);
        r.settled.notify_one();
    }
}

/// Writes what other nodes left parked (they stopped or died before the database came
/// back), oldest first, whenever this node's own queue is empty. Ends with the writer.
async fn sweep_parked(
    durable: Arc<dyn DurableStore>,
    parking: Arc<dyn Parking>,
    queued: Arc<AtomicUsize>,
    written: Arc<watch::Sender<u64>>,
    alive: mpsc::WeakSender<Queued>,
) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        if alive.upgrade().is_none() {
            return;
        }
        if queued.load(Ordering::Acquire) > 0 {
            continue;
        }
        let items = match parking.parked(SWEEP_BATCH).await {
            Ok(items) => items,
            Err(e) => {
                tracing::debug!(error = %e, "parked visit history not read");
                continue;
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        for item in items {
            let Some(p) = ParkedTransition::from_text(&item) else {
                continue;
            };
            if now - p.parked_at < SWEEP_AGE_MS {
                continue;
            }
            match durable.record_visit_event(p.event()).await {
                Ok(()) => written.send_modify(|n| *n += 1),
                Err(e @ DurableError::Unavailable(_)) => {
                    tracing::debug!(error = %e, "database away; parked visit history waits");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "parked visit history transition lost");
                }
            }
            if let Err(e) = parking.unpark(&item).await {
                tracing::debug!(error = %e, "written visit history not unparked");
            }
        }
    }
}

/// Patients who never connected within their appointment window are no-shows: a
/// patient link that expired unused, whose visit never started, gets a `no_show`
/// history entry (at the link's expiry), so the no-show rate counts them.
pub async fn sweep_no_shows(durable: &dyn DurableStore, now: i64) -> Result<usize, DurableError> {
    let mut marked = 0;
    for link in durable.list_links(None).await? {
        let unused = link.first_used_at.is_none() && !link.revoked;
        if link.new.kind != crate::durable::LinkKind::Patient
            || !unused
            || link.new.expires_at > now
        {
            continue;
        }
        if durable.visit(&link.new.visit).await?.is_some() {
            continue;
        }
        durable
            .record_visit_event(VisitEvent {
                visit: link.new.visit.clone(),
                room: link.new.room.clone(),
                state: crate::visit::VisitState::NoShow,
                at: link.new.expires_at,
                actor: Some("system".into()),
                physician: None,
                patient_ref: link.new.patient_ref.clone(),
            })
            .await?;
        marked += 1;
    }
    Ok(marked)
}

/// Runs [`sweep_no_shows`] every minute until `shutdown`.
pub async fn no_show_sweeper(durable: Arc<dyn DurableStore>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) =
            sweep_no_shows(durable.as_ref(), chrono::Utc::now().timestamp_millis()).await
        {
            tracing::warn!(error = %e, "no-show sweep failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes of the next version will find this text in Redis during a rolling upgrade:
    /// version 1 must keep loading as it is written here.
    #[test]
    fn a_version_1_parked_transition_loads() {
        let text = r#"{"v":1,"id":"abc","parked_at":1700000000000,"visit":"v_1","room":"r_1","state":"admitted","at":1700000000001,"actor":"s_doc","physician":"s_doc","patient_ref":null}"#;
        let p = ParkedTransition::from_text(text).expect("version 1 loads");
        let ev = p.event();
        assert_eq!(ev.visit.as_str(), "v_1");
        assert_eq!(ev.state, VisitState::Admitted);
        assert_eq!(ev.at, 1_700_000_000_001);
        assert_eq!(
            ev.physician.map(|s| s.as_str().to_owned()).as_deref(),
            Some("s_doc")
        );
    }

    #[test]
    fn a_parked_transition_of_an_unknown_version_is_left_alone() {
        let text = r#"{"v":2,"id":"abc","parked_at":1,"visit":"v_1","room":"r_1","state":"admitted","at":1,"actor":null,"physician":null,"patient_ref":null}"#;
        assert!(ParkedTransition::from_text(text).is_none());
        assert!(ParkedTransition::from_text("not json").is_none());
    }
}
