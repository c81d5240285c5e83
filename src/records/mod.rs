//! The patient-record side panel: where records come from and what the panel shows.
//!
//! - [`model`]: hand-written FHIR R4 models, only the fields the panel reads.
//! - [`record`]: one patient's resources ([`PatientRecord`]), the same whatever the source.
//! - [`summary`]: the pure assembly of a [`PanelSummary`] from a record.
//! - [`embedded`]: the default source, the store under `<data_dir>/records/` held in memory.
//! - [`store`]: that store on disk (`store.ndjson`, atomic replace), what `records import`
//!   writes.
//! - [`import`]: reading FHIR files (Bundles of any type, NDJSON, single resources) into
//!   changes keyed by (resourceType, id).
//! - [`demo`]: synthetic demo patients, in memory only, with `serve --demo`.
//! - [`fhir`]: a FHIR R4 server as the source, with SMART Backend Services auth ([`smart`]).
//! - [`cache`]: [`PanelCache`], prefetch when a patient enters the waiting room.
//! - [`visit_note`]: the physician's note of a visit and the FHIR `Encounter` and
//!   `DocumentReference` it becomes (pure).
//! - [`service_request`]: a referral and the FHIR `ServiceRequest` it becomes (pure).
//! - [`write_back`]: notes and referrals kept durably, then written to the source through
//!   [`RecordWriter`] by one node at a time, retried with backoff while the source is down.
//!
//! The source is chosen once by [`open`]; nothing else knows which one it is.
//! Errors never carry patient data: no ids, names or values in their text.

pub mod cache;
pub mod demo;
pub mod embedded;
mod error;
pub mod fhir;
pub mod import;
pub mod model;
pub mod record;
pub mod service_request;
pub mod smart;
pub mod store;
pub mod summary;
pub mod visit_note;
pub mod write_back;

pub use cache::PanelCache;
pub use embedded::{EmbeddedOptions, EmbeddedSource, StoreStats};
pub use error::RecordsError;
pub use fhir::{FhirConfig, FhirSource};
pub use record::PatientRecord;
pub use smart::{ClientKey, SigningAlg};
pub use store::RecordStore;
pub use summary::{PanelSummary, Section};

use crate::config::{RecordsBackend, Settings};
use crate::ids::PatientRef;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Where patient records come from.
#[async_trait]
pub trait RecordSource: Send + Sync + 'static {
    /// The panel for one patient, as of today.
    async fn summary(&self, patient: &PatientRef) -> Result<PanelSummary, RecordsError>;
    /// Whether the source can answer now (for readiness probes).
    async fn ready(&self) -> Result<(), RecordsError>;
    /// Changes whenever the source knows its content changed (an embedded store
    /// reloaded after an import): a panel cached under another version is stale. A
    /// remote server cannot tell us, so it stays 0 and the cache's age bound applies.
    fn version(&self) -> u64 {
        0
    }
}

/// Where a visit's note is written: into the same source the panel reads.
#[async_trait]
pub trait RecordWriter: Send + Sync + 'static {
    /// Put the visit's `Encounter` and `DocumentReference` into the record, once however
    /// often it is called for the same visit (a retry after a lost answer finds what the
    /// first call made). Errors carry no patient data.
    async fn write_visit(
        &self,
        w: &visit_note::VisitWrite,
    ) -> Result<visit_note::WriteReceipt, RecordsError>;

    /// Put the referral's `ServiceRequest` into the record, or bring the one there up to
    /// date (an answer changes its status and notes): one resource per referral however
    /// often it is called. `ServiceRequest/<id>`. Errors carry no patient data.
    async fn write_referral(
        &self,
        w: &service_request::ReferralWrite,
    ) -> Result<String, RecordsError>;
}

/// Open the configured record source: `embedded` (default) or `fhir`.
pub async fn open(settings: &Settings) -> Result<Arc<dyn RecordSource>, RecordsError> {
    Ok(open_with_writer(settings).await?.0)
}

/// The configured record source, and the writer into it (the same object).
pub async fn open_with_writer(
    settings: &Settings,
) -> Result<(Arc<dyn RecordSource>, Arc<dyn RecordWriter>), RecordsError> {
    match settings.records.source {
        RecordsBackend::Embedded => {
            let dir = settings.server.data_dir.join("records");
            let opts = EmbeddedOptions {
                demo: settings.records.demo,
                reload_every: (settings.records.reload_secs > 0)
                    .then(|| Duration::from_secs(settings.records.reload_secs)),
            };
            let src = EmbeddedSource::open(&dir, opts).await?;
            Ok((src.clone(), src))
        }
        RecordsBackend::Fhir => {
            let src = Arc::new(FhirSource::from_settings(settings).await?);
            Ok((src.clone(), src))
        }
    }
}

/// Today's date for ages in a live panel.
pub(crate) fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}
