//! A FHIR R4 server as the record source (the clinic's EHR).
//!
//! One panel is a `Patient` read plus thirteen searches (vital signs one per kind) run
//! concurrently, each paged through `Bundle.link[relation=next]` up to
//! [`FhirConfig::max_pages`]. Every request
//! has its own timeout; 5xx, 429 and connection failures are retried with
//! exponential backoff, honouring `Retry-After` (capped). A 401 drops the cached
//! token and tries once more with a new one. `next` links are only followed on the
//! configured server's origin, so the bearer token never goes anywhere else.
//!
//! Error texts name the resource type and the status, never a URL (it holds the
//! patient id) or a response body.

use super::model::{Bundle, Resource};
use super::record::{Part, PartStatus, PatientRecord, names_patient};
use super::service_request::{self, REFERRAL_SYSTEM, ReferralWrite};
use super::smart::{
    ClientKey, SCOPES, SigningAlg, TokenClient, TokenSource, WRITE_SCOPES, transport_error,
};
use super::summary::{LOINC, PanelSummary, VitalKind, assemble};
use super::visit_note::{self, NOTE_SYSTEM, VISIT_SYSTEM, VisitWrite, WriteReceipt};
use super::{RecordSource, RecordWriter, RecordsError, today};
use crate::config::Settings;
use crate::ids::PatientRef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use std::path::PathBuf;
use std::time::Duration;

/// Referenced medications read one by one at most, when a server ignored `_include`.
const MAX_MEDICATION_READS: usize = 50;

/// How to reach the FHIR server.
#[derive(Debug, Clone)]
pub struct FhirConfig {
    /// FHIR base URL, e.g. `https://ehr.example/fhir`.
    pub base_url: String,
    /// SMART token endpoint.
    pub token_url: String,
    pub client_id: String,
    pub signing_alg: SigningAlg,
    /// Folder holding (or receiving) the client key pair.
    pub key_dir: PathBuf,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Attempts after the first, for 5xx/429/connection failures. Default 3.
    pub retries: u32,
    /// First backoff; doubles each attempt. Default 200 ms.
    pub backoff: Duration,
    /// Longest `Retry-After` we wait. Default 5 s.
    pub max_retry_after: Duration,
    /// Resources per page asked for (`_count`). Default 200.
    pub page_size: u32,
    /// Pages followed per search at most. Default 10.
    pub max_pages: u32,
    /// Resources read per search at most; beyond it the section says it is partial.
    /// Default 2000.
    pub max_resources: usize,
    /// Largest response body accepted, bytes; a larger one fails its section. Default 8 MiB.
    pub max_response_bytes: usize,
    /// Space-separated scopes requested. Default [`SCOPES`].
    pub scopes: String,
    /// Space-separated scopes of the write-back's token. Default [`WRITE_SCOPES`].
    pub write_scopes: String,
}

impl FhirConfig {
    /// The configuration from settings, with default retry and paging.
    pub fn from_settings(s: &Settings) -> Result<Self, RecordsError> {
        let r = &s.records;
        let need = |v: &str, key: &str| {
            if v.trim().is_empty() {
                Err(RecordsError::Config(format!(
                    "records.{key} is required when records.source = \"fhir\""
                )))
            } else {
                Ok(v.trim().to_owned())
            }
        };
        Ok(Self {
            base_url: need(&r.fhir_base_url, "fhir_base_url")?,
            token_url: need(&r.fhir_token_url, "fhir_token_url")?,
            client_id: need(&r.fhir_client_id, "fhir_client_id")?,
            signing_alg: SigningAlg::parse(&r.fhir_signing_alg)?,
            key_dir: s.server.data_dir.clone(),
            timeout: Duration::from_millis(r.fhir_timeout_ms.max(1)),
            page_size: r.fhir_page_size.clamp(1, 1000),
            max_pages: r.fhir_max_pages.max(1),
            max_resources: r.max_resources_per_section.max(1),
            max_response_bytes: r.fhir_max_response_bytes.max(1024),
            write_scopes: r.fhir_write_scopes.trim().to_owned(),
            ..Self::new("", "", "", SigningAlg::Es384, PathBuf::new())
        })
    }

    /// A configuration with default retry, paging and scopes.
    pub fn new(
        base_url: &str,
        token_url: &str,
        client_id: &str,
        signing_alg: SigningAlg,
        key_dir: PathBuf,
    ) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token_url: token_url.to_owned(),
            client_id: client_id.to_owned(),
            signing_alg,
            key_dir,
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            page_size: 200,
            max_pages: 10,
            max_resources: 2000,
            max_response_bytes: 8 << 20,
            scopes: SCOPES.to_owned(),
            write_scopes: WRITE_SCOPES.to_owned(),
        }
    }
}

/// The clinic's FHIR server, read with SMART Backend Services.
pub struct FhirSource {
    http: reqwest::Client,
    base: Url,
    cfg: FhirConfig,
    tokens: TokenSource,
    /// Tokens with the write-back's scopes, asked for only when a note is written.
    writes: TokenSource,
    /// Response bodies buffered and parsed at once, node-wide: each may hold up to
    /// `max_response_bytes`, and a panel runs thirteen searches (and several panels may be
    /// prefetched together), so without this a server answering every search with a huge
    /// body would multiply the cap. Reading a body is quick next to the round trip, so the
    /// others wait little.
    bodies: tokio::sync::Semaphore,
}

/// Bodies read at once ([`FhirSource::bodies`]).
const BODIES_AT_ONCE: usize = 2;

impl std::fmt::Debug for FhirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirSource")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(reqwest::Response),
    Retry(RecordsError, Option<Duration>),
    Fail(RecordsError),
}

impl FhirSource {
    pub async fn from_settings(s: &Settings) -> Result<Self, RecordsError> {
        Self::new(FhirConfig::from_settings(s)?).await
    }

    /// Build the client; loads (or creates) the key pair. Makes no request.
    pub async fn new(cfg: FhirConfig) -> Result<Self, RecordsError> {
        let mut base = Url::parse(&cfg.base_url)
            .map_err(|e| RecordsError::Config(format!("records.fhir_base_url: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let (dir, alg) = (cfg.key_dir.clone(), cfg.signing_alg);
        // The same key twice (one per token source): `ClientKey` is not `Clone`, the
        // file is made once.
        let (key, write_key) = tokio::task::spawn_blocking(move || {
            let key = ClientKey::load_or_create(&dir, alg)?;
            Ok::<_, RecordsError>((key, ClientKey::load_or_create(&dir, alg)?))
        })
        .await
        .map_err(|e| RecordsError::Config(format!("key task failed: {e}")))??;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| RecordsError::Config(format!("HTTP client: {e}")))?;
        // One token endpoint and client, two scope sets, each with its own key.
        let source = |scopes: &str, key| {
            let client = TokenClient {
                token_url: cfg.token_url.clone(),
                client_id: cfg.client_id.clone(),
                scope: scopes.to_owned(),
                key,
            };
            TokenSource::new(http.clone(), client, cfg.timeout)
        };
        let tokens = source(&cfg.scopes, key);
        let writes = source(&cfg.write_scopes, write_key);
        Ok(Self {
            http,
            base,
            cfg,
            tokens,
            writes,
            bodies: tokio::sync::Semaphore::new(BODIES_AT_ONCE),
        })
    }

    /// examroom's public key for the EHR to register.
    pub fn client_key(&self) -> &ClientKey {
        self.tokens.key()
    }

    /// The token source (tests force renewal through it).
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Fetch everything the panel shows for one patient. Fails as a whole only when
    /// our credentials are refused, the patient does not exist, or the server answers
    /// a read of this patient with another one; a search that fails marks its part.
    #[tracing::instrument(skip_all)]
    pub async fn fetch_record(&self, patient: &PatientRef) -> Result<PatientRecord, RecordsError> {
        let id = patient.as_str();
        // Credentials first: refused credentials fail the whole panel, not eight parts.
        self.tokens.token().await?;
        let patient_url = self.url(&format!("Patient/{id}"), &[])?;
        let n = self.cfg.page_size.to_string();
        // The reference form the specification defines for reference parameters.
        let reference = format!("Patient/{id}");
        let by_patient = |rtype: &str, extra: &[(&str, &str)]| -> Result<Url, RecordsError> {
            let mut q = vec![("patient", reference.as_str()), ("_count", n.as_str())];
            q.extend_from_slice(extra);
            self.url(rtype, &q)
        };
        let searches = [
            (Part::Allergies, by_patient("AllergyIntolerance", &[])?),
            (
                Part::Medications,
                by_patient(
                    "MedicationRequest",
                    &[("_include", "MedicationRequest:medication")],
                )?,
            ),
            (
                Part::Medications,
                by_patient(
                    "MedicationStatement",
                    &[("_include", "MedicationStatement:medication")],
                )?,
            ),
            (Part::Problems, by_patient("Condition", &[])?),
            (
                Part::Labs,
                by_patient(
                    "Observation",
                    &[("category", "laboratory,LAB"), ("_sort", "-date")],
                )?,
            ),
            (
                Part::Immunizations,
                by_patient("Immunization", &[("_sort", "-date")])?,
            ),
            (
                Part::Encounters,
                by_patient("Encounter", &[("_sort", "-date")])?,
            ),
        ];
        // One vital-sign search per kind, all at once: a patient with thousands of
        // readings pages each kind in parallel instead of one long series of pages, and
        // each kind gets its own bound, so a frequent one cannot crowd out the others.
        let mut searches = searches.to_vec();
        for codes in VitalKind::search_codes_by_kind() {
            let codes = codes
                .iter()
                .map(|c| format!("{LOINC}|{c}"))
                .collect::<Vec<_>>()
                .join(",");
            searches.push((
                Part::VitalSigns,
                by_patient(
                    "Observation",
                    &[("code", codes.as_str()), ("_sort", "-date")],
                )?,
            ));
        }
        let (patient_res, results) = tokio::join!(
            self.read_patient(patient_url),
            futures_util::future::join_all(
                searches
                    .into_iter()
                    .map(|(part, u)| async move { (part, self.search_all(part, u).await) })
            )
        );
        let mut rec = PatientRecord::default();
        let identifiers = match patient_res {
            Ok((p, at)) => {
                if p.id.as_deref() != Some(id) {
                    tracing::warn!("the Patient read returned another patient; panel refused");
                    return Err(RecordsError::BadData(
                        "the server answered a read of this patient with another patient".into(),
                    ));
                }
                let ids = p.identifier.clone();
                rec.add(Resource::Patient(p), None);
                rec.note(Part::Demographics, PartStatus::read_at(at));
                ids
            }
            Err(RecordsError::NotFound) => return Err(RecordsError::NotFound),
            Err(e) => {
                rec.note(Part::Demographics, PartStatus::failed(&e));
                Vec::new()
            }
        };
        for (part, outcome) in results {
            let mut status = outcome.status;
            for (full_url, r) in outcome.resources {
                match r.patient_reference() {
                    Some(Some(subject)) if names_patient(subject, id, &identifiers) => {}
                    // Another patient, or none named: never shown as this patient's.
                    Some(_) => {
                        status.wrong_patient += 1;
                        continue;
                    }
                    None => {}
                }
                rec.add(r, full_url.as_deref());
            }
            if status.wrong_patient > 0 {
                tracing::warn!(
                    section = part.key(),
                    dropped = status.wrong_patient,
                    "search returned resources of another patient or none; dropped"
                );
            }
            rec.note(part, status);
        }
        self.read_missing_medications(&mut rec).await;
        // examroom's visit notes, only for a record holding a virtual visit (most have
        // none: no request for them).
        let virtual_visit = rec
            .encounters
            .iter()
            .any(|e| e.class.as_ref().and_then(|c| c.code.as_deref()) == Some("VR"));
        if virtual_visit {
            match self.read_visit_notes(id).await {
                Ok(notes) => rec.visit_notes = notes,
                Err(e) => {
                    tracing::warn!(error = %e, "visit notes could not be loaded");
                    rec.visit_notes_failed = true;
                }
            }
        }
        Ok(rec)
    }

    /// This patient's visit notes written by examroom, with the write-back's token (the
    /// scopes that let it read back what it wrote): only DocumentReferences carrying our
    /// identifier system and naming this patient, whatever the server's search matched.
    async fn read_visit_notes(&self, id: &str) -> Result<Vec<visit_note::NoteDoc>, RecordsError> {
        let what = "DocumentReference";
        let subject = format!("Patient/{id}");
        let system = format!("{NOTE_SYSTEM}|");
        let n = self.cfg.page_size.to_string();
        let query = [
            ("patient", subject.as_str()),
            ("identifier", system.as_str()),
            ("_count", n.as_str()),
        ];
        let mut notes = Vec::new();
        self.search_with_write_token(what, &query, "DocumentReference search", |r| {
            let names_this_patient = r["subject"]["reference"]
                .as_str()
                .and_then(super::record::relative_ref)
                == Some(("Patient", id));
            if names_this_patient && let Some(doc) = visit_note::read_note_doc(r) {
                notes.push(doc);
            }
        })
        .await?;
        Ok(notes)
    }

    /// Medications that orders and statements reference but the searches did not return:
    /// a server may ignore `_include` (fhirsnake does), and the panel would then say
    /// "(not named in the record)" of a medication the record names. Read them (relative
    /// `Medication/<id>` references, at most [`MAX_MEDICATION_READS`], concurrently); one
    /// that cannot be read leaves its item as it was.
    async fn read_missing_medications(&self, rec: &mut PatientRecord) {
        let referenced = rec
            .medication_requests
            .iter()
            .map(|m| (m.medication_reference.as_ref(), &m.contained))
            .chain(
                rec.medication_statements
                    .iter()
                    .map(|m| (m.medication_reference.as_ref(), &m.contained)),
            );
        let mut missing: Vec<String> = referenced
            .filter_map(|(r, contained)| {
                let reference = r?.reference.as_deref()?;
                let (rtype, id) = reference.split_once('/')?;
                let relative = rtype == "Medication" && !id.is_empty() && !id.contains('/');
                (relative && rec.medication(reference, contained).is_none())
                    .then(|| reference.to_owned())
            })
            .collect();
        missing.sort();
        missing.dedup();
        missing.truncate(MAX_MEDICATION_READS);
        let reads = missing.into_iter().map(|reference| async move {
            let url = self.url(&reference, &[]).ok()?;
            let resp = self.get(url, "Medication").await.ok()?;
            let v = self.body(resp, "Medication").await.ok()?;
            match Resource::from_value(v) {
                Ok(Resource::Medication(m)) => Some((reference, m)),
                _ => None,
            }
        });
        for (reference, m) in futures_util::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
        {
            rec.add_medication(m, Some(&reference));
        }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, RecordsError> {
        let mut u = self
            .base
            .join(path)
            .map_err(|e| RecordsError::Config(format!("FHIR URL: {e}")))?;
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        Ok(u)
    }

    /// Read this patient's `Patient` resource and when it was read.
    async fn read_patient(
        &self,
        url: Url,
    ) -> Result<(super::model::Patient, DateTime<Utc>), RecordsError> {
        let started = std::time::Instant::now();
        let result = async {
            let resp = self.get(url, "Patient").await?;
            let v = self.body(resp, "Patient").await?;
            match Resource::from_value(v) {
                Ok(Resource::Patient(p)) => Ok((p, Utc::now())),
                Ok(other) => Err(RecordsError::BadData(format!(
                    "Patient read: {} instead of a Patient",
                    safe_type(other.type_name())
                ))),
                Err(e) => Err(RecordsError::BadData(format!("Patient read: {e}"))),
            }
        }
        .await;
        if let Err(e) = &result
            && !matches!(e, RecordsError::NotFound)
        {
            log_failure(Part::Demographics, e, started);
        }
        result
    }

    /// Read a response body: refused beyond the byte cap (streamed, never buffered
    /// whole), refused when the content type is not JSON, then parsed.
    async fn body(
        &self,
        mut resp: reqwest::Response,
        what: &str,
    ) -> Result<serde_json::Value, RecordsError> {
        let cap = self.cfg.max_response_bytes;
        if let Some(ct) = resp.headers().get(reqwest::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !(essence == "application/fhir+json"
                || essence == "application/json"
                || essence == "application/json+fhir")
            {
                return Err(RecordsError::BadData(format!(
                    "{what}: the server answered with content type {} instead of FHIR JSON",
                    if essence.len() <= 64 {
                        essence
                    } else {
                        "(too long)"
                    }
                )));
            }
        }
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(RecordsError::TooLarge(cap));
        }
        // Never closed, so acquiring cannot fail; held until the body is parsed.
        let _reading = self
            .bodies
            .acquire()
            .await
            .map_err(|_| RecordsError::Unavailable {
                cause: "the record source is shutting down".into(),
            })?;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(e, self.cfg.timeout))?
        {
            if bytes.len() + chunk.len() > cap {
                return Err(RecordsError::TooLarge(cap));
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| RecordsError::BadData(format!("{what}: {}", super::model::redacted(&e))))
    }

    /// One search, every page up to the bounds: the resources found (not yet checked
    /// against the patient) and how it went. Never fails: a failure marks the part.
    async fn search_all(&self, part: Part, first: Url) -> SearchOutcome {
        let rtype = first
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_owned();
        let started = std::time::Instant::now();
        let mut out = SearchOutcome::default();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let page = match self.search_page(url, &rtype).await {
                Ok(b) => b,
                Err(e) => {
                    log_failure(part, &e, started);
                    out.resources.clear();
                    out.status = PartStatus::failed(&e);
                    return out;
                }
            };
            let next_link = page.next_link().map(str::to_owned);
            for entry in page.entry {
                if entry.search_mode.as_deref() == Some("outcome") {
                    continue;
                }
                let Some(v) = entry.resource else { continue };
                match Resource::from_value(v) {
                    Ok(r) if r.type_name() == rtype || matches!(r, Resource::Medication(_)) => {
                        out.resources.push((entry.full_url, r));
                    }
                    Ok(_) => {} // another type (e.g. an OperationOutcome entry): not ours to show
                    Err(e) => {
                        out.status.unreadable += 1;
                        tracing::warn!(section = part.key(), error = %e, "unreadable resource in search result");
                    }
                }
            }
            if let Some(link) = next_link.as_deref() {
                let read = out.resources.len();
                if pages >= self.cfg.max_pages || read >= self.cfg.max_resources {
                    tracing::warn!(
                        section = part.key(),
                        pages,
                        read,
                        "search has more results than we read"
                    );
                    out.status.truncated = Some(read);
                    break;
                }
                match self.same_origin(link) {
                    Ok(u) => next = Some(u),
                    Err(e) => {
                        log_failure(part, &e, started);
                        out.resources.clear();
                        out.status = PartStatus::failed(&e);
                        return out;
                    }
                }
            }
        }
        out.status.fetched_at = Some(Utc::now());
        out
    }

    /// One page of a search: it must be a `Bundle` of type `searchset`; anything else
    /// (an OperationOutcome, `{}`, another bundle type) is an error, never "none".
    async fn search_page(&self, url: Url, rtype: &str) -> Result<Bundle, RecordsError> {
        let resp = self.get(url, rtype).await?;
        let v = self.body(resp, rtype).await?;
        match Resource::from_value(v) {
            Ok(Resource::Bundle(b)) if b.type_.as_deref() == Some("searchset") => Ok(b),
            Ok(Resource::Bundle(_)) => Err(RecordsError::BadData(format!(
                "{rtype} search: the answer was a Bundle but not a search result"
            ))),
            Ok(other) => Err(RecordsError::BadData(format!(
                "{rtype} search: the server answered with {} instead of a search result",
                safe_type(other.type_name())
            ))),
            Err(_) => Err(RecordsError::BadData(format!(
                "{rtype} search: the answer was not a FHIR resource"
            ))),
        }
    }

    /// A `next` link, resolved against the base and refused if it leaves the server.
    fn same_origin(&self, link: &str) -> Result<Url, RecordsError> {
        let u = self
            .base
            .join(link)
            .map_err(|_| RecordsError::BadData("unparseable next link".into()))?;
        if u.origin() != self.base.origin() {
            return Err(RecordsError::BadData(
                "next link points at another server; not followed".into(),
            ));
        }
        Ok(u)
    }

    /// GET with auth, retries and the per-request timeout.
    async fn get(&self, url: Url, what: &str) -> Result<reqwest::Response, RecordsError> {
        self.get_with(&self.tokens, url, what).await
    }

    /// [`Self::get`] with the tokens of `tokens`.
    async fn get_with(
        &self,
        tokens: &TokenSource,
        url: Url,
        what: &str,
    ) -> Result<reqwest::Response, RecordsError> {
        let mut attempt = 0u32;
        let mut reauthorised = false;
        loop {
            let token = tokens.token().await?;
            let outcome = match self
                .http
                .get(url.clone())
                .timeout(self.cfg.timeout)
                .bearer_auth(&token)
                .header("accept", "application/fhir+json")
                .send()
                .await
            {
                Err(e) if e.is_timeout() => Attempt::Fail(RecordsError::Timeout(self.cfg.timeout)),
                Err(e) => Attempt::Retry(transport_error(e, self.cfg.timeout), None),
                Ok(r) => self.classify(r, what),
            };
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(RecordsError::Unauthorized { .. }) if !reauthorised => {
                    // The token may have been revoked or expired early: one fresh try.
                    reauthorised = true;
                    tokens.invalidate().await;
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e, retry_after) => {
                    if attempt >= self.cfg.retries {
                        return Err(e);
                    }
                    let backoff = self.cfg.backoff * 2u32.pow(attempt);
                    let wait = retry_after
                        .map(|d| d.min(self.cfg.max_retry_after))
                        .unwrap_or(backoff);
                    attempt += 1;
                    tracing::debug!(resource = what, attempt, ?wait, "retrying FHIR request");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn classify(&self, r: reqwest::Response, what: &str) -> Attempt {
        let status = r.status();
        if status.is_success() {
            return Attempt::Done(r);
        }
        let cause = format!("{what}: server answered {status}");
        match status {
            StatusCode::NOT_FOUND | StatusCode::GONE if what == "Patient" => {
                Attempt::Fail(RecordsError::NotFound)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fail(RecordsError::Unauthorized { cause })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                Attempt::Retry(RecordsError::Unavailable { cause }, retry_after(&r))
            }
            s if s.is_server_error() => {
                Attempt::Retry(RecordsError::Unavailable { cause }, retry_after(&r))
            }
            _ => Attempt::Fail(RecordsError::Unavailable { cause }),
        }
    }

    /// The panel as of a given date.
    pub async fn summary_at(
        &self,
        patient: &PatientRef,
        as_of: chrono::NaiveDate,
    ) -> Result<PanelSummary, RecordsError> {
        let rec = self.fetch_record(patient).await?;
        Ok(assemble(patient.as_str(), &rec, as_of, Utc::now()))
    }
}

// --- the write-back (issue 22) ------------------------------------------------------------

impl FhirSource {
    /// Pages through the `rtype` search `query` with the write-back's token (the scopes
    /// that let it read back what it wrote), handing `each` every entry's resource; at most
    /// [`FhirConfig::max_pages`] pages. `Ok(true)` when the server had more than that.
    /// `context` names the search in the error of an answer that is not a search result.
    async fn search_with_write_token(
        &self,
        rtype: &str,
        query: &[(&str, &str)],
        context: &str,
        mut each: impl FnMut(&serde_json::Value) + Send,
    ) -> Result<bool, RecordsError> {
        let mut next = Some(self.url(rtype, query)?);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let resp = self.get_with(&self.writes, url, rtype).await?;
            let page = self.body(resp, rtype).await?;
            if page["resourceType"] != "Bundle" || page["type"] != "searchset" {
                return Err(RecordsError::BadData(format!(
                    "{context}: the answer was not a search result"
                )));
            }
            for e in page["entry"].as_array().into_iter().flatten() {
                each(&e["resource"]);
            }
            let link = page["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str());
            if let Some(link) = link {
                if pages >= self.cfg.max_pages {
                    return Ok(true);
                }
                next = Some(self.same_origin(link)?);
            }
        }
        Ok(false)
    }

    /// The id of the resource `ours` names, when the server holds one. The identifier is
    /// checked here on every resource returned: a server may ignore the `identifier`
    /// parameter (fhirsnake answers every resource of the type), and a resource without
    /// our identifier is never ours.
    async fn find_by_identifier(
        &self,
        ours: OurResource<'_>,
    ) -> Result<Option<String>, RecordsError> {
        let OurResource {
            rtype,
            system,
            value,
        } = ours;
        let token = format!("{system}|{value}");
        let n = self.cfg.page_size.to_string();
        let query = [("identifier", token.as_str()), ("_count", n.as_str())];
        let mut found = Vec::new();
        let context = format!("{rtype} search by identifier");
        let truncated = self
            .search_with_write_token(rtype, &query, &context, |r| {
                if r["resourceType"] == rtype
                    && visit_note::has_identifier(r, system, value)
                    && let Some(id) = r["id"].as_str()
                {
                    found.push(id.to_owned());
                }
            })
            .await?;
        if truncated {
            tracing::warn!(
                resource = rtype,
                pages = self.cfg.max_pages,
                "search by identifier has more pages than we read"
            );
        }
        found.sort();
        found.dedup();
        if found.len() > 1 {
            tracing::warn!(
                resource = rtype,
                copies = found.len(),
                "the record source holds several resources with one visit's identifier"
            );
        }
        Ok(found.into_iter().next())
    }

    /// Create `resource` as `ours` unless the server holds it: search first (whatever the
    /// server does with `If-None-Exist`), then a conditional create (which a server that
    /// supports it makes safe against any other writer in between). `Type/id` of what
    /// the server holds.
    async fn create_once(
        &self,
        ours: OurResource<'_>,
        resource: serde_json::Value,
    ) -> Result<String, RecordsError> {
        match self.find_by_identifier(ours).await? {
            Some(id) => Ok(format!("{}/{id}", ours.rtype)),
            None => self.create_new(ours, resource).await,
        }
    }

    /// The conditional create of [`Self::create_once`], without the search before it.
    async fn create_new(
        &self,
        ours: OurResource<'_>,
        resource: serde_json::Value,
    ) -> Result<String, RecordsError> {
        let OurResource {
            rtype,
            system,
            value,
        } = ours;
        let mut condition = Url::parse("http://condition.invalid/").expect("static url");
        condition
            .query_pairs_mut()
            .append_pair("identifier", &format!("{system}|{value}"));
        let condition = condition.query().unwrap_or_default().to_owned();
        let url = self.url(rtype, &[])?;
        let resp = self
            .send_write(
                reqwest::Method::POST,
                url,
                Some(&condition),
                &resource,
                rtype,
            )
            .await?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The body may be empty (a server answering `return=minimal`): the Location names it.
        let body = self.body(resp, rtype).await.ok();
        let id = body
            .as_ref()
            .filter(|b| b["resourceType"] == rtype)
            .and_then(|b| b["id"].as_str().map(str::to_owned))
            .or_else(|| location.as_deref().and_then(|l| id_from_location(l, rtype)))
            .ok_or_else(|| {
                RecordsError::BadData(format!(
                    "{rtype} create: the server named no id for what it made"
                ))
            })?;
        Ok(format!("{rtype}/{id}"))
    }

    /// POST a new resource with the write token and `If-None-Exist: condition`, or PUT
    /// one in place (no condition). One attempt (the write-back's outbox retries with
    /// backoff), plus one with a fresh token after a 401.
    async fn send_write(
        &self,
        method: reqwest::Method,
        url: Url,
        condition: Option<&str>,
        resource: &serde_json::Value,
        what: &str,
    ) -> Result<reqwest::Response, RecordsError> {
        let verb = if method == reqwest::Method::PUT {
            "update"
        } else {
            "create"
        };
        let body = serde_json::to_vec(resource).map_err(|e| {
            RecordsError::BadData(format!("{what}: {}", super::model::redacted(&e)))
        })?;
        let mut reauthorised = false;
        loop {
            let token = self.writes.token().await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.cfg.timeout)
                .bearer_auth(&token)
                .header("accept", "application/fhir+json")
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=representation");
            if let Some(condition) = condition {
                req = req.header("if-none-exist", condition);
            }
            let r = req
                .body(body.clone())
                .send()
                .await
                .map_err(|e| transport_error(e, self.cfg.timeout))?;
            let status = r.status();
            if status.is_success() {
                return Ok(r);
            }
            if status == StatusCode::UNAUTHORIZED && !reauthorised {
                reauthorised = true;
                self.writes.invalidate().await;
                continue;
            }
            let cause = format!("{what} {verb}: server answered {status}");
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    RecordsError::Unauthorized { cause }
                }
                StatusCode::PRECONDITION_FAILED => RecordsError::BadData(format!(
                    "{what} {verb}: several resources already carry this identifier"
                )),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    RecordsError::Unavailable { cause }
                }
                _ => RecordsError::BadData(cause),
            });
        }
    }
}

/// The id in a `Location` header: `…/Type/<id>` or `…/Type/<id>/_history/<v>`.
fn id_from_location(location: &str, rtype: &str) -> Option<String> {
    let after = location.rsplit_once(&format!("{rtype}/"))?.1;
    let id = after.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// What one search found, before the patient check.
#[derive(Default)]
struct SearchOutcome {
    resources: Vec<(Option<String>, Resource)>,
    status: PartStatus,
}

/// A resource type name from the server, only when it looks like one (it goes in
/// messages and logs, which must never carry what a server put in free text).
fn safe_type(t: &str) -> &str {
    let looks_like_type = (1..=64).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    if looks_like_type { t } else { "something else" }
}

/// One line per failed part: section, error code, duration. No patient data.
fn log_failure(part: Part, e: &RecordsError, started: std::time::Instant) {
    tracing::warn!(
        section = part.key(),
        error = PartStatus::failed(e).error.map(|e| e.code).unwrap_or("unavailable"),
        cause = %e,
        duration_ms = started.elapsed().as_millis() as u64,
        "record section could not be loaded"
    );
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let v = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[async_trait]
impl RecordSource for FhirSource {
    async fn summary(&self, patient: &PatientRef) -> Result<PanelSummary, RecordsError> {
        self.summary_at(patient, today()).await
    }

    /// The server answers `metadata` and our credentials get a token.
    async fn ready(&self) -> Result<(), RecordsError> {
        let url = self.url("metadata", &[])?;
        let r = self
            .http
            .get(url)
            .timeout(self.cfg.timeout)
            .header("accept", "application/fhir+json")
            .send()
            .await
            .map_err(|e| transport_error(e, self.cfg.timeout))?;
        if !r.status().is_success() {
            return Err(RecordsError::Unavailable {
                cause: format!("metadata: server answered {}", r.status()),
            });
        }
        self.tokens.token().await.map(|_| ())
    }
}

/// A resource examroom writes, as the record source knows it: its type and our identifier
/// on it (`system|value`), by which a retry finds what an earlier attempt made.
#[derive(Debug, Clone, Copy)]
struct OurResource<'a> {
    rtype: &'a str,
    system: &'a str,
    value: &'a str,
}

impl<'a> OurResource<'a> {
    fn new(rtype: &'a str, system: &'a str, value: &'a str) -> Self {
        Self {
            rtype,
            system,
            value,
        }
    }
}

/// The visit's Encounter, then its DocumentReference pointing at it; each created once
/// ([`FhirSource::create_once`]), so a retry after any failure finishes what is missing.
#[async_trait]
impl RecordWriter for FhirSource {
    #[tracing::instrument(skip_all)]
    async fn write_visit(&self, w: &VisitWrite) -> Result<WriteReceipt, RecordsError> {
        let value = w.visit.as_str();
        let encounter = visit_note::encounter(w);
        let encounter = self
            .create_once(
                OurResource::new("Encounter", VISIT_SYSTEM, value),
                encounter,
            )
            .await?;
        let document = visit_note::document_reference(w, &encounter);
        let document = self
            .create_once(
                OurResource::new("DocumentReference", NOTE_SYSTEM, value),
                document,
            )
            .await?;
        Ok(WriteReceipt {
            encounter,
            document,
        })
    }

    /// The referral's ServiceRequest: found by its identifier and replaced in place
    /// (`PUT ServiceRequest/<id>`: the same content again changes nothing that matters,
    /// an answer changes the status and notes), else created once.
    #[tracing::instrument(skip_all)]
    async fn write_referral(&self, w: &ReferralWrite) -> Result<String, RecordsError> {
        const RTYPE: &str = "ServiceRequest";
        let ours = OurResource::new(RTYPE, REFERRAL_SYSTEM, w.referral.as_str());
        let mut resource = service_request::service_request(w);
        let Some(id) = self.find_by_identifier(ours).await? else {
            return self.create_new(ours, resource).await;
        };
        // The id goes into a URL path: only what FHIR allows in an id.
        let fhir_id = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !fhir_id {
            return Err(RecordsError::BadData(format!(
                "{RTYPE} search by identifier: the server named an id FHIR does not allow"
            )));
        }
        resource["id"] = serde_json::Value::from(id.as_str());
        let url = self.url(&format!("{RTYPE}/{id}"), &[])?;
        self.send_write(reqwest::Method::PUT, url, None, &resource, RTYPE)
            .await?;
        Ok(format!("{RTYPE}/{id}"))
    }
}
