//! The embedded record source: the store in `<data_dir>/records/` ([`super::store`]),
//! read into memory and indexed by `Patient.id`.
//!
//! Everything in the folder is read the same way as `examroom records import` reads it
//! (Bundles of any type, NDJSON, single resources; one resource per (resourceType, id),
//! the latest winning). A resource reaches a patient through its `subject`/`patient`
//! reference; a `Medication` reaches the records whose orders reference it.
//!
//! Demo patients ([`super::demo`]) are added in memory only with `serve --demo`; an empty
//! store stays empty. With `records.reload_secs`, the store file is watched and the
//! records are swapped whole when an import replaces it.

use super::demo;
use super::import::{self, PANEL_TYPES, ResourceKey};
use super::model::Resource;
use super::record::{PatientRecord, relative_ref};
use super::service_request::{self, ReferralWrite};
use super::store::{LoadReport, RecordStore, ResourceSet, thousands};
use super::summary::{PanelSummary, assemble};
use super::visit_note::{self, VisitWrite, WriteReceipt};
use super::{RecordSource, RecordWriter, RecordsError, today};
use crate::ids::PatientRef;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

/// How the embedded source is opened.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Add the synthetic demo patients, in memory only (`serve --demo`).
    pub demo: bool,
    /// Look for a new store file this often; `None`: only at start.
    pub reload_every: Option<Duration>,
}

/// What is loaded, for the start-up log and `records check`. Counts only, no patient data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// `Patient` resources in the store (demo patients not counted).
    pub patients: usize,
    /// Resources in the store, every type, one per (resourceType, id).
    pub resources: usize,
    /// Files that could not be read.
    pub unreadable_files: usize,
    /// Resources or entries not taken in (no id, a conditional update, …).
    pub skipped_resources: usize,
    /// Stored resources of a type the panel shows that it cannot read.
    pub unreadable_resources: usize,
    /// Resources of a type the panel shows that name no patient held in the store.
    pub unlinked: usize,
    /// The last two by resource type.
    pub unreadable_by_type: BTreeMap<String, usize>,
    pub unlinked_by_type: BTreeMap<String, usize>,
    /// Demo patients held in memory (`serve --demo`).
    pub demo_patients: usize,
}

impl StoreStats {
    /// Everything that was not loaded or cannot be shown.
    pub fn skipped(&self) -> usize {
        self.unreadable_files + self.skipped_resources + self.unreadable_resources
    }
}

/// One consistent set of records; replaced whole on reload.
#[derive(Debug, Default)]
struct Snapshot {
    patients: HashMap<String, Arc<PatientRecord>>,
    stats: StoreStats,
}

/// Records held in memory, by patient id.
#[derive(Debug, Default)]
pub struct EmbeddedSource {
    /// A `std` lock: held only to clone or swap the `Arc`, never across an await.
    current: RwLock<Arc<Snapshot>>,
    /// What [`Self::add_json`] has added (tests and the bench build a source in memory).
    added: ResourceSet,
    added_skipped: usize,
    /// Bumped on every reload ([`RecordSource::version`]).
    version: std::sync::atomic::AtomicU64,
    /// The store on disk, when loaded from one: where visit notes are written
    /// ([`RecordWriter`]); and whether demo patients are held beside it.
    home: Option<RecordStore>,
    demo: bool,
}

impl EmbeddedSource {
    /// Load the store in `dir` (blocking work off the runtime) and, with
    /// `reload_every`, watch its store file for imports.
    pub async fn open(dir: &Path, opts: EmbeddedOptions) -> Result<Arc<Self>, RecordsError> {
        let store = RecordStore::new(dir);
        let s = store.clone();
        let demo = opts.demo;
        let (seen, loaded) = tokio::task::spawn_blocking(move || {
            let seen = fingerprint(&s.store_file());
            (seen, Self::load(&s, demo))
        })
        .await
        .map_err(|e| RecordsError::Unavailable {
            cause: format!("loading task failed: {e}"),
        })?;
        let (src, report) = loaded?;
        log_loaded("record store", &src.stats(), &report);
        let src = Arc::new(src);
        if let Some(every) = opts.reload_every {
            tokio::spawn(watch(Arc::downgrade(&src), store, demo, every, seen));
        }
        Ok(src)
    }

    /// Load every file of the store in `dir`, without demo patients (blocking).
    pub fn load_dir(dir: &Path) -> Result<Self, RecordsError> {
        Ok(Self::load(&RecordStore::new(dir), false)?.0)
    }

    /// Load the store (blocking): what `serve` holds, and what could not be read.
    pub fn load(store: &RecordStore, demo: bool) -> Result<(Self, LoadReport), RecordsError> {
        let (set, report) = store.load().map_err(|e| RecordsError::Unavailable {
            cause: e.to_string(),
        })?;
        let snapshot = snapshot(set, &report, demo);
        let src = Self {
            current: RwLock::new(Arc::new(snapshot)),
            home: Some(store.clone()),
            demo,
            ..Default::default()
        };
        Ok((src, report))
    }

    /// Add a Bundle or a single resource held in memory. A resource with the
    /// (resourceType, id) of one added before replaces it, as an import would.
    pub fn add_json(&mut self, v: Value) {
        match import::parse_value(&v) {
            Ok(parsed) => {
                self.added_skipped += parsed.skipped.len();
                self.added.apply(parsed.changes, &mut BTreeMap::new());
            }
            Err(why) => {
                self.added_skipped += 1;
                tracing::warn!(%why, "skipped an unreadable bundle");
            }
        }
        let report = LoadReport::default();
        let mut snap = snapshot(self.added.clone(), &report, false);
        snap.stats.skipped_resources += self.added_skipped;
        *self.current.get_mut().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a whole snapshot: it is only ever swapped.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, snap: Snapshot) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// What is loaded now.
    pub fn stats(&self) -> StoreStats {
        self.snapshot().stats.clone()
    }

    /// Patient ids held, sorted.
    pub fn patient_ids(&self) -> Vec<String> {
        let mut v: Vec<_> = self.snapshot().patients.keys().cloned().collect();
        v.sort();
        v
    }

    /// One patient's record.
    pub fn record(&self, id: &str) -> Option<Arc<PatientRecord>> {
        self.snapshot().patients.get(id).cloned()
    }

    /// Resources or files that could not be read, or resources the panel cannot show.
    pub fn skipped(&self) -> usize {
        self.snapshot().stats.skipped()
    }

    /// The panel as of a given date (tests and the bench; [`RecordSource::summary`] uses today).
    pub fn summary_at(
        &self,
        patient: &PatientRef,
        as_of: chrono::NaiveDate,
    ) -> Result<PanelSummary, RecordsError> {
        let snap = self.snapshot();
        let rec = snap
            .patients
            .get(patient.as_str())
            .filter(|r| r.patient.is_some())
            .ok_or(RecordsError::NotFound)?;
        Ok(assemble(patient.as_str(), rec, as_of, chrono::Utc::now()))
    }
}

#[async_trait]
impl RecordSource for EmbeddedSource {
    async fn summary(&self, patient: &PatientRef) -> Result<PanelSummary, RecordsError> {
        self.summary_at(patient, today())
    }

    async fn ready(&self) -> Result<(), RecordsError> {
        Ok(())
    }

    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A visit's Encounter and DocumentReference go into `store.ndjson` under ids made from
/// the visit id, so a second write of the same visit replaces them with themselves (and
/// writes nothing); then the records are loaded again, so the next panel shows them.
impl EmbeddedSource {
    /// Put `resources` about `patient` into the store file (under the import lock,
    /// replaced atomically) and load the records again, so the next panel shows them.
    async fn put_and_reload(
        &self,
        patient: &str,
        resources: Vec<Value>,
    ) -> Result<(), RecordsError> {
        let Some(store) = self.home.clone() else {
            return Err(RecordsError::Config(
                "this record store is held in memory only and cannot be written".into(),
            ));
        };
        // The patient must be one the store shows: a write about no one would be lost.
        if self.record(patient).is_none() {
            return Err(RecordsError::NotFound);
        }
        let demo = self.demo;
        let loaded = tokio::task::spawn_blocking(move || {
            store
                .put_resources(&resources)
                .and_then(|_| store.load())
                .map(|(set, report)| snapshot(set, &report, demo))
        })
        .await
        .map_err(|e| RecordsError::Unavailable {
            cause: format!("writing task failed: {e}"),
        })?
        .map_err(|e| RecordsError::Unavailable {
            cause: e.to_string(),
        })?;
        self.replace(loaded);
        Ok(())
    }
}

#[async_trait]
impl RecordWriter for EmbeddedSource {
    async fn write_visit(&self, w: &VisitWrite) -> Result<WriteReceipt, RecordsError> {
        let encounter_id = visit_note::fhir_id("examroom-", &w.visit);
        let document_id = visit_note::fhir_id("examroom-note-", &w.visit);
        let receipt = WriteReceipt {
            encounter: format!("Encounter/{encounter_id}"),
            document: format!("DocumentReference/{document_id}"),
        };
        let mut encounter = visit_note::encounter(w);
        encounter["id"] = Value::from(encounter_id);
        let mut document = visit_note::document_reference(w, &receipt.encounter);
        document["id"] = Value::from(document_id);
        self.put_and_reload(w.patient.as_str(), vec![encounter, document])
            .await?;
        Ok(receipt)
    }

    /// The ServiceRequest under an id made from the referral id, replaced in place by a
    /// later write (the answer).
    async fn write_referral(&self, w: &ReferralWrite) -> Result<String, RecordsError> {
        let id = format!("examroom-{}", w.referral.as_str().replace('_', "-"));
        let mut resource = service_request::service_request(w);
        resource["id"] = Value::from(id.as_str());
        self.put_and_reload(w.patient.as_str(), vec![resource])
            .await?;
        Ok(format!("ServiceRequest/{id}"))
    }
}

/// Index a set of resources by patient, with the demo patients beneath it when asked.
fn snapshot(store: ResourceSet, report: &LoadReport, demo: bool) -> Snapshot {
    let mut stats = StoreStats {
        patients: store.patients(),
        resources: store.len(),
        unreadable_files: report.unreadable.len(),
        skipped_resources: report.skipped.len(),
        ..Default::default()
    };
    let set = if demo {
        let mut set = demo_set();
        stats.demo_patients = set.patients();
        set.extend(store);
        set
    } else {
        store
    };
    let (patients, unreadable, unlinked) = index(&set);
    stats.unreadable_resources = unreadable.values().sum();
    stats.unlinked = unlinked.values().sum();
    stats.unreadable_by_type = unreadable;
    stats.unlinked_by_type = unlinked;
    Snapshot { patients, stats }
}

/// The demo patients as resources (made here, never written to disk).
fn demo_set() -> ResourceSet {
    let mut set = ResourceSet::default();
    for (_, bundle) in demo::demo_patients() {
        if let Ok(parsed) = import::parse_value(&bundle) {
            set.apply(parsed.changes, &mut BTreeMap::new());
        }
    }
    set
}

/// Per-type counts.
type Counts = BTreeMap<String, usize>;

/// By patient id, the panel's resources; and, per type, how many the panel cannot read
/// and how many name no patient held.
fn index(set: &ResourceSet) -> (HashMap<String, Arc<PatientRecord>>, Counts, Counts) {
    let patient_ids: HashSet<&str> = set
        .iter()
        .filter(|(k, _)| k.rtype == "Patient")
        .map(|(k, _)| k.id.as_str())
        .collect();
    let mut records: HashMap<String, PatientRecord> = HashMap::new();
    let mut medication_refs: HashMap<String, Vec<String>> = HashMap::new();
    let mut medications = HashMap::new();
    let (mut unreadable, mut unlinked) = (Counts::new(), Counts::new());
    for (key, json) in set.iter() {
        if key.rtype == "DocumentReference" {
            // Only examroom's own visit notes (issue 22), beside their Encounter.
            if let Ok(v) = serde_json::from_str::<Value>(json.as_str())
                && let Some(doc) = visit_note::read_note_doc(&v)
                && let Some(p) = patient_of(key, &v).filter(|id| patient_ids.contains(id.as_str()))
            {
                records.entry(p).or_default().visit_notes.push(doc);
            }
            continue;
        }
        if !PANEL_TYPES.contains(&key.rtype.as_str()) {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(json.as_str()) else {
            *unreadable.entry(key.rtype.clone()).or_default() += 1;
            continue;
        };
        let patient = patient_of(key, &v).filter(|id| patient_ids.contains(id.as_str()));
        let med_ref = v
            .get("medicationReference")
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let r = match Resource::from_value(v) {
            Ok(r) => r,
            Err(_) => {
                *unreadable.entry(key.rtype.clone()).or_default() += 1;
                continue;
            }
        };
        if let Resource::Medication(m) = r {
            medications.insert(key.id.clone(), m);
            continue;
        }
        let Some(patient) = patient else {
            *unlinked.entry(key.rtype.clone()).or_default() += 1;
            continue;
        };
        if let Some(m) = med_ref {
            medication_refs.entry(patient.clone()).or_default().push(m);
        }
        records.entry(patient).or_default().add(r, None);
    }
    // A Medication is kept with each record whose orders reference it.
    for (patient, refs) in medication_refs {
        let Some(rec) = records.get_mut(&patient) else {
            continue;
        };
        for reference in refs {
            if let Some(("Medication", id)) = relative_ref(&reference)
                && let Some(m) = medications.get(id)
            {
                rec.add_medication(m.clone(), Some(&reference));
            }
        }
    }
    let patients = records
        .into_iter()
        .map(|(id, rec)| (id, Arc::new(rec)))
        .collect();
    (patients, unreadable, unlinked)
}

/// The patient a resource belongs to, from its `subject` or `patient` reference.
fn patient_of(key: &ResourceKey, v: &Value) -> Option<String> {
    let field = match key.rtype.as_str() {
        "Patient" => return Some(key.id.clone()),
        "Medication" => return None,
        "AllergyIntolerance" | "Immunization" => "patient",
        _ => "subject",
    };
    let reference = v.get(field)?.get("reference")?.as_str()?;
    match relative_ref(reference)? {
        ("Patient", id) => Some(id.to_owned()),
        _ => None,
    }
}

/// `records check`, for the operator's terminal: files and positions, never content.
pub fn render_check(store: &RecordStore, stats: &StoreStats, report: &LoadReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "record store {}: {} ({} loose file{})",
        store.dir().display(),
        if report.store_file {
            super::store::STORE_FILE
        } else {
            "no store file yet"
        },
        report.loose_files,
        if report.loose_files == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        o,
        "  {} patients, {} resources ({} skipped)",
        thousands(stats.patients),
        thousands(stats.resources),
        thousands(stats.skipped())
    );
    if !report.unreadable.is_empty() {
        let _ = writeln!(o, "files that cannot be read (not loaded):");
        for e in &report.unreadable {
            let _ = writeln!(o, "  {e}");
        }
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(o, "skipped (not loaded):");
        for (path, s) in &report.skipped {
            let _ = writeln!(o, "  {}: {s}", path.display());
        }
    }
    let by_type = |m: &Counts| {
        m.iter()
            .map(|(t, n)| format!("{t} {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if stats.unreadable_resources > 0 {
        let _ = writeln!(
            o,
            "stored, but the panel cannot read: {} (`records import --dry-run` on the source file shows where)",
            by_type(&stats.unreadable_by_type)
        );
    }
    if stats.unlinked > 0 {
        let _ = writeln!(
            o,
            "not linked to a patient in the store (not shown): {}",
            by_type(&stats.unlinked_by_type)
        );
    }
    if !report.demo_files.is_empty() {
        let _ = writeln!(
            o,
            "demo-patient files an earlier examroom wrote (not loaded; delete them):"
        );
        for p in &report.demo_files {
            let _ = writeln!(o, "  {}", p.display());
        }
    }
    o
}

/// One log line of counts (never patient data); where to look when something was left out.
fn log_loaded(what: &str, stats: &StoreStats, report: &LoadReport) {
    tracing::info!(
        patients = stats.patients,
        resources = stats.resources,
        skipped = stats.skipped(),
        unlinked = stats.unlinked,
        "{what}: {} patients, {} resources ({} skipped)",
        thousands(stats.patients),
        thousands(stats.resources),
        thousands(stats.skipped()),
    );
    if stats.skipped() > 0 || stats.unlinked > 0 {
        tracing::warn!(
            unreadable_files = stats.unreadable_files,
            skipped_resources = stats.skipped_resources,
            unreadable_resources = stats.unreadable_resources,
            unlinked = stats.unlinked,
            "some records are not shown: `examroom records check` lists which file and position, and why"
        );
    }
    if !report.demo_files.is_empty() {
        tracing::warn!(
            files = report.demo_files.len(),
            "not loading the demo-patient files an earlier examroom wrote into the record store: \
             delete records/demo-patient-*.json, and use `examroom serve --demo` for demo patients"
        );
    }
    if stats.resources == 0 {
        tracing::info!(
            "the record store is empty: `examroom records import PATH…` fills it; \
             `examroom serve --demo` shows synthetic demo patients"
        );
    }
    if stats.demo_patients > 0 {
        tracing::info!(
            demo_patients = stats.demo_patients,
            "demo patients: {} synthetic patients held in memory only (serve --demo)",
            stats.demo_patients
        );
    }
}

/// Identifies one version of the store file: an import renames a new file over it.
type Fingerprint = Option<(u64, Option<SystemTime>, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.len(), m.modified().ok(), ino))
}

/// Reload when the store file is replaced; ends when the source is dropped. A store that
/// cannot be read keeps the records loaded before (and says so once).
async fn watch(
    src: Weak<EmbeddedSource>,
    store: RecordStore,
    demo: bool,
    every: Duration,
    mut seen: Fingerprint,
) {
    loop {
        tokio::time::sleep(every).await;
        if src.strong_count() == 0 {
            return;
        }
        let s = store.clone();
        // Reading and indexing are blocking work: off the runtime.
        let Ok((now, loaded)) = tokio::task::spawn_blocking(move || {
            let now = fingerprint(&s.store_file());
            let loaded = (now != seen).then(|| {
                s.load()
                    .map(|(set, report)| (snapshot(set, &report, demo), report))
            });
            (now, loaded)
        })
        .await
        else {
            continue;
        };
        let Some(loaded) = loaded else { continue };
        seen = now;
        match loaded {
            Ok((snap, report)) => {
                let Some(src) = src.upgrade() else { return };
                log_loaded("record store reloaded", &snap.stats, &report);
                src.replace(snap);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the record store changed but cannot be read; still serving the records loaded before"
            ),
        }
    }
}
