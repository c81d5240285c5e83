//! The visit history: the writer, and the no-show sweep.
//!
//! The writer: every transition a room makes goes to the durable store
//! *before* the room sends what the transition causes (`live::record_first`), so
//! whatever a patient or physician was told happened is in the history even if this
//! node is killed the next instant (`docs/deploy.md`, "Node failure").
//!
//! Invariant: a visit's transitions are written in the order they were made. While the
//! database answers, each is written directly (bounded by [`DIRECT_WAIT`]); once a write
//! fails or times out, it and every later one go through one retrying queue until that
//! queue is empty again, so a slow database costs one bounded stall, not one per visit.

use crate::durable::{DurableError, DurableStore, VisitEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How long a room waits for the database before it carries on and queues the write.
pub const DIRECT_WAIT: Duration = Duration::from_secs(2);
/// Direct writes in flight at once. The database pool is small (10 PostgreSQL / 8 SQLite
/// connections): a burst of transitions (thousands of patients arriving) must leave
/// connections for sign-ins, `hello`s and room loads, or those time out instead.
const WRITERS: usize = 4;
/// Transitions held for retry while the database is away.
const BACKLOG: usize = 10_000;
/// Attempts for errors other than an unreachable database (which is waited out).
const ATTEMPTS: u32 = 8;

pub struct HistoryWriter {
    durable: Arc<dyn DurableStore>,
    backlog: mpsc::Sender<VisitEvent>,
    writers: Semaphore,
    /// Transitions queued or being retried; while non-zero, new ones queue behind them.
    queued: Arc<AtomicUsize>,
    /// Ticks once per stored transition, for whoever waits for one to land.
    written: Arc<watch::Sender<u64>>,
}

impl HistoryWriter {
    /// Starts the retry task; it ends when the writer is dropped.
    pub fn start(durable: Arc<dyn DurableStore>) -> Self {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(watch::Sender::new(0));
        tokio::spawn(retry(durable.clone(), rx, queued.clone(), written.clone()));
        HistoryWriter {
            durable,
            backlog: tx,
            writers: Semaphore::new(WRITERS),
            queued,
            written,
        }
    }

    /// Changes each time a transition is stored (directly or from the retry queue).
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Returns once the transition is stored, or (database failing) queued for retry.
    pub async fn record(&self, ev: VisitEvent) {
        if self.queued.load(Ordering::Acquire) == 0 {
            let write = async {
                let _permit = self.writers.acquire().await.expect("never closed");
                self.durable.record_visit_event(ev.clone()).await
            };
            match tokio::time::timeout(DIRECT_WAIT, write).await {
                Ok(Ok(())) => {
                    self.written.send_modify(|n| *n += 1);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "recording visit history failed; queued for retry")
                }
                Err(_) => tracing::warn!(
                    "recording visit history took over {DIRECT_WAIT:?}; queued for retry"
                ),
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.backlog.try_send(ev).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("visit history queue is full; a transition was not recorded");
        }
    }
}

/// Writes queued transitions in order; the store's writes are idempotent, so a write
/// that timed out above but did land is harmless to repeat.
async fn retry(
    durable: Arc<dyn DurableStore>,
    mut rx: mpsc::Receiver<VisitEvent>,
    queued: Arc<AtomicUsize>,
    written: Arc<watch::Sender<u64>>,
) {
    while let Some(ev) = rx.recv().await {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match durable.record_visit_event(ev.clone()).await {
                Ok(()) => {
                    written.send_modify(|n| *n += 1);
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
        queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Patients who never connected within their appointment window are no-shows: a
/// patient link that expired unused, whose visit never started, gets a `no_show`
/// history entry (at the link's expiry), so the no-show rate counts them.
pub async fn sweep_no_shows(durable: &dyn DurableStore, now: i64) -> Result<usize, DurableError> {
    let mut marked = 0;
    for link in durable.list_links(None).await? {
        let unused = link.first_used_at.is_none() && !link.revoked;
        if link.kind != crate::durable::LinkKind::Patient || !unused || link.expires_at > now {
            continue;
        }
        if durable.visit(&link.visit).await?.is_some() {
            continue;
        }
        durable
            .record_visit_event(VisitEvent {
                visit: link.visit.clone(),
                room: link.room.clone(),
                state: crate::visit::VisitState::NoShow,
                at: link.expires_at,
                actor: Some("system".into()),
                physician: None,
                patient_ref: link.patient_ref.clone(),
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
