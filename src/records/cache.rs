//! [`PanelCache`]: fetch a patient's panel before the physician opens it.
//!
//! Keyed by visit *and* patient: a new visit starts fresh, it never sees the panel
//! an earlier visit fetched. `prefetch` is called when a patient enters the waiting
//! room and starts the fetch in the background; `get` returns the cached panel,
//! joins a fetch under way, or starts one; `get` with `refresh` always starts a new
//! fetch ("Refresh", "Try again"). One fetch per key at a time (single-flight). A
//! panel is kept for `ttl` from when its fetch started and at most `max_panels` are
//! kept (the oldest go first); a failed fetch is not kept, and neither is a panel
//! fetched before the source's content changed ([`RecordSource::version`]).

use super::summary::PanelSummary;
use super::{RecordSource, RecordsError};
use crate::ids::{PatientRef, VisitId};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Default lifetime of a cached panel.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default number of panels kept.
pub const DEFAULT_MAX_PANELS: usize = 500;

type Fetch = Shared<BoxFuture<'static, Result<Arc<PanelSummary>, RecordsError>>>;
type Key = (VisitId, PatientRef);

struct Entry {
    started: Instant,
    /// Distinguishes this fetch from a later one for the same key.
    generation: u64,
    /// The source's content version the fetch started at.
    version: u64,
    fetch: Fetch,
}

/// A prefetching, single-flight, bounded cache in front of a [`RecordSource`].
pub struct PanelCache {
    source: Arc<dyn RecordSource>,
    ttl: Duration,
    max_panels: usize,
    /// A std mutex: held only to look up or insert, never across an `.await`.
    entries: Mutex<HashMap<Key, Entry>>,
    generation: std::sync::atomic::AtomicU64,
}

/// A panel and whether it came from the cache (`false`: read from the source now).
#[derive(Debug, Clone)]
pub struct Served {
    pub summary: Arc<PanelSummary>,
    pub cached: bool,
}

impl PanelCache {
    pub fn new(source: Arc<dyn RecordSource>, ttl: Duration, max_panels: usize) -> Arc<Self> {
        Arc::new(Self {
            source,
            ttl,
            max_panels: max_panels.max(1),
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
        })
    }

    /// Start fetching in the background unless a fresh or running fetch exists.
    pub fn prefetch(self: &Arc<Self>, visit: &VisitId, patient: &PatientRef) {
        let (fetch, _) = self.entry(visit, patient, false);
        tokio::spawn(async move {
            let _ = fetch.await;
        });
    }

    /// The panel: cached, joined in flight, or fetched now (always now with `refresh`).
    pub async fn get(
        self: &Arc<Self>,
        visit: &VisitId,
        patient: &PatientRef,
        refresh: bool,
    ) -> Result<Served, RecordsError> {
        let (fetch, reused) = self.entry(visit, patient, refresh);
        let summary = fetch.await?;
        Ok(Served {
            summary,
            cached: reused,
        })
    }

    /// Drop every cached panel of a visit (e.g. when it ends).
    pub fn forget_visit(&self, visit: &VisitId) {
        self.lock().retain(|(v, _), _| v != visit);
    }

    /// Panels cached or being fetched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fetch for this key and whether it was already there.
    fn entry(
        self: &Arc<Self>,
        visit: &VisitId,
        patient: &PatientRef,
        refresh: bool,
    ) -> (Fetch, bool) {
        let now = Instant::now();
        let key = (visit.clone(), patient.clone());
        // Read before the fetch starts: a reload during the fetch makes it stale at once.
        let version = self.source.version();
        let mut entries = self.lock();
        entries.retain(|_, e| now.duration_since(e.started) < self.ttl && e.version == version);
        if !refresh && let Some(e) = entries.get(&key) {
            return (e.fetch.clone(), true);
        }
        while entries.len() >= self.max_panels {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.started)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (source, me, k) = (self.source.clone(), Arc::downgrade(self), key.clone());
        let fetch = async move {
            let result = source.summary(&k.1).await.map(Arc::new);
            if result.is_err()
                && let Some(me) = me.upgrade()
            {
                let mut entries = me.lock();
                if entries.get(&k).is_some_and(|e| e.generation == generation) {
                    entries.remove(&k);
                }
            }
            result
        }
        .boxed()
        .shared();
        entries.insert(
            key,
            Entry {
                started: now,
                generation,
                version,
                fetch: fetch.clone(),
            },
        );
        (fetch, false)
    }
}
