//! [`PanelCache`]: fetch a patient's panel before the physician opens it.
//!
//! `prefetch` is called when a patient enters the waiting room and starts the fetch
//! in the background; `get` returns the cached summary, joins a fetch under way, or
//! starts one. One fetch per patient at a time (single-flight). A summary is kept
//! for the cache's lifetime (default 10 minutes) from when its fetch started;
//! a failed fetch is not kept, so the next `get` tries again.

use super::summary::PanelSummary;
use super::{RecordSource, RecordsError};
use crate::ids::PatientRef;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Default lifetime of a cached panel.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

type Fetch = Shared<BoxFuture<'static, Result<Arc<PanelSummary>, RecordsError>>>;

struct Entry {
    started: Instant,
    /// Distinguishes this fetch from a later one for the same patient.
    generation: u64,
    fetch: Fetch,
}

/// A prefetching, single-flight cache in front of a [`RecordSource`].
pub struct PanelCache {
    source: Arc<dyn RecordSource>,
    ttl: Duration,
    /// A std mutex: held only to look up or insert, never across an `.await`.
    entries: Mutex<HashMap<PatientRef, Entry>>,
    generation: std::sync::atomic::AtomicU64,
}

impl PanelCache {
    pub fn new(source: Arc<dyn RecordSource>, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
        })
    }

    /// Start fetching in the background unless a fresh or running fetch exists.
    pub fn prefetch(self: &Arc<Self>, patient: &PatientRef) {
        let fetch = self.entry(patient);
        tokio::spawn(async move {
            let _ = fetch.await;
        });
    }

    /// The panel: cached, joined in flight, or fetched now.
    pub async fn get(
        self: &Arc<Self>,
        patient: &PatientRef,
    ) -> Result<Arc<PanelSummary>, RecordsError> {
        self.entry(patient).await
    }

    /// Drop a patient's cached panel (e.g. when their visit ends).
    pub fn forget(&self, patient: &PatientRef) {
        self.lock().remove(patient);
    }

    /// Patients with a cached or running fetch.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PatientRef, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(self: &Arc<Self>, patient: &PatientRef) -> Fetch {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, e| now.duration_since(e.started) < self.ttl);
        if let Some(e) = entries.get(patient) {
            return e.fetch.clone();
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (source, me, p) = (self.source.clone(), Arc::downgrade(self), patient.clone());
        let fetch = async move {
            let result = source.summary(&p).await.map(Arc::new);
            if result.is_err()
                && let Some(me) = me.upgrade()
            {
                let mut entries = me.lock();
                if entries.get(&p).is_some_and(|e| e.generation == generation) {
                    entries.remove(&p);
                }
            }
            result
        }
        .boxed()
        .shared();
        entries.insert(
            patient.clone(),
            Entry {
                started: now,
                generation,
                fetch: fetch.clone(),
            },
        );
        fetch
    }
}
