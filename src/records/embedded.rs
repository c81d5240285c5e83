//! The embedded record store: FHIR R4 JSON files under `<data_dir>/records/`.
//!
//! Accepts Bundles (FHIR exports, Synthea transactions, IPS documents, searchsets)
//! and single resources, in any `*.json` file of the folder and its subfolders.
//! Everything is read once at start into memory, indexed by `Patient.id`; a
//! resource reaches a patient through its `subject`/`patient` reference, resolved
//! through the bundle's `fullUrl`s when it is a `urn:uuid:`. An empty or missing
//! folder is filled with the synthetic demo patients of [`super::demo`] first.

use super::model::{Bundle, Resource};
use super::record::{PatientRecord, relative_ref};
use super::summary::{PanelSummary, assemble};
use super::{RecordSource, RecordsError, demo, today};
use crate::ids::PatientRef;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records held in memory, by patient id.
#[derive(Debug, Default)]
pub struct EmbeddedSource {
    patients: HashMap<String, Arc<PatientRecord>>,
    /// Files or resources that could not be read (counted, not fatal).
    skipped: usize,
}

impl EmbeddedSource {
    /// Load `dir`, writing the demo patients first if it holds no JSON file.
    pub async fn open(dir: &Path) -> Result<Self, RecordsError> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            if json_files(&dir).is_empty() {
                demo::write_demo_patients(&dir)?;
                tracing::info!(dir = %dir.display(), "wrote synthetic demo patients to the empty record store");
            }
            Self::load_dir(&dir)
        })
        .await
        .map_err(|e| RecordsError::Unavailable {
            cause: format!("loading task failed: {e}"),
        })?
    }

    /// Load every JSON file under `dir` (blocking).
    pub fn load_dir(dir: &Path) -> Result<Self, RecordsError> {
        let mut store = Self::default();
        for path in json_files(dir) {
            let bytes = std::fs::read(&path).map_err(|e| RecordsError::Unavailable {
                cause: format!("reading {}: {e}", path.display()),
            })?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => store.add_json(v),
                Err(e) => {
                    store.skipped += 1;
                    tracing::warn!(file = %path.display(), error = %super::model::redacted(&e), "skipped unreadable record file");
                }
            }
        }
        tracing::info!(
            patients = store.patients.len(),
            skipped = store.skipped,
            "record store loaded"
        );
        Ok(store)
    }

    /// Add a Bundle or a single resource.
    pub fn add_json(&mut self, v: Value) {
        let mut staged: HashMap<String, PatientRecord> = HashMap::new();
        let mut medications = Vec::new();
        self.stage(v, &mut staged, &mut medications);
        for (id, mut rec) in staged {
            for (m, url) in &medications {
                rec.add_medication(Clone::clone(m), url.as_deref());
            }
            let slot = self.patients.entry(id).or_default();
            merge(Arc::make_mut(slot), rec);
        }
        // Medications from a file without patients may be referenced from other files.
        if !medications.is_empty() {
            for rec in self.patients.values_mut() {
                let rec = Arc::make_mut(rec);
                for (m, url) in &medications {
                    rec.add_medication(Clone::clone(m), url.as_deref());
                }
            }
        }
    }

    fn stage(
        &mut self,
        v: Value,
        staged: &mut HashMap<String, PatientRecord>,
        medications: &mut Vec<(super::model::Medication, Option<String>)>,
    ) {
        let resource = match Resource::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                self.skipped += 1;
                tracing::warn!(error = %e, "skipped unreadable resource");
                return;
            }
        };
        let Resource::Bundle(bundle) = resource else {
            self.place(resource, None, &HashMap::new(), staged, medications);
            return;
        };
        let urls = full_url_map(&bundle);
        for entry in bundle.entry {
            let Some(v) = entry.resource else { continue };
            match Resource::from_value(v) {
                Ok(Resource::Bundle(inner)) => {
                    // A bundle inside a bundle (e.g. a search result of documents).
                    let inner = serde_json::to_value(BundleOut(&inner)).unwrap_or(Value::Null);
                    self.stage(inner, staged, medications);
                }
                Ok(r) => self.place(r, entry.full_url.as_deref(), &urls, staged, medications),
                Err(e) => {
                    self.skipped += 1;
                    tracing::warn!(error = %e, "skipped unreadable resource");
                }
            }
        }
    }

    fn place(
        &mut self,
        r: Resource,
        full_url: Option<&str>,
        urls: &HashMap<String, (String, String)>,
        staged: &mut HashMap<String, PatientRecord>,
        medications: &mut Vec<(super::model::Medication, Option<String>)>,
    ) {
        match &r {
            Resource::Patient(p) => {
                let Some(id) = p.id.clone() else { return };
                staged.entry(id.clone()).or_default().add(r, full_url);
                return;
            }
            Resource::Medication(m) => {
                medications.push((m.clone(), full_url.map(str::to_owned)));
                return;
            }
            _ => {}
        }
        let Some(Some(patient_ref)) = r.patient_reference() else {
            return;
        };
        let Some(reference) = patient_ref.reference.as_deref() else {
            return;
        };
        let target = urls
            .get(reference)
            .map(|(t, id)| (t.as_str(), id.as_str()))
            .or_else(|| relative_ref(reference));
        if let Some(("Patient", id)) = target {
            staged.entry(id.to_owned()).or_default().add(r, full_url);
        }
    }

    /// Patient ids held, sorted.
    pub fn patient_ids(&self) -> Vec<String> {
        let mut v: Vec<_> = self.patients.keys().cloned().collect();
        v.sort();
        v
    }

    /// One patient's record.
    pub fn record(&self, id: &str) -> Option<Arc<PatientRecord>> {
        self.patients.get(id).cloned()
    }

    /// Resources or files that could not be read while loading.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The panel as of a given date (tests and the bench; [`RecordSource::summary`] uses today).
    pub fn summary_at(
        &self,
        patient: &PatientRef,
        as_of: chrono::NaiveDate,
    ) -> Result<PanelSummary, RecordsError> {
        let rec = self
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
}

fn merge(into: &mut PatientRecord, from: PatientRecord) {
    if from.patient.is_some() {
        into.patient = from.patient;
    }
    into.allergies.extend(from.allergies);
    into.medication_requests.extend(from.medication_requests);
    into.medication_statements
        .extend(from.medication_statements);
    into.conditions.extend(from.conditions);
    into.observations.extend(from.observations);
    into.immunizations.extend(from.immunizations);
    into.encounters.extend(from.encounters);
    into.medications.extend(from.medications);
}

/// `fullUrl` → (`Type`, `id`) for a bundle's entries.
fn full_url_map(b: &Bundle) -> HashMap<String, (String, String)> {
    b.entry
        .iter()
        .filter_map(|e| {
            let url = e.full_url.as_ref()?;
            let r = e.resource.as_ref()?;
            let t = r.get("resourceType")?.as_str()?;
            let id = r.get("id")?.as_str()?;
            Some((url.clone(), (t.to_owned(), id.to_owned())))
        })
        .collect()
}

/// Re-serialise a nested bundle so it goes through the same path as a file.
struct BundleOut<'a>(&'a Bundle);

impl serde::Serialize for BundleOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let entries: Vec<Value> = self
            .0
            .entry
            .iter()
            .map(|e| serde_json::json!({"fullUrl": e.full_url, "resource": e.resource}))
            .collect();
        serde_json::json!({"resourceType": "Bundle", "entry": entries}).serialize(s)
    }
}

/// Every `*.json` file under `dir`, sorted (a missing folder has none).
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
