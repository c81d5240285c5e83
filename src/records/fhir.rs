//! A FHIR R4 server as the record source (the clinic's EHR).
//!
//! One panel is a `Patient` read plus eight searches run concurrently, each paged
//! through `Bundle.link[relation=next]` up to [`FhirConfig::max_pages`]. Every request
//! has its own timeout; 5xx, 429 and connection failures are retried with
//! exponential backoff, honouring `Retry-After` (capped). A 401 drops the cached
//! token and tries once more with a new one. `next` links are only followed on the
//! configured server's origin, so the bearer token never goes anywhere else.
//!
//! Error texts name the resource type and the status, never a URL (it holds the
//! patient id) or a response body.

use super::model::{Bundle, Resource};
use super::record::PatientRecord;
use super::smart::{ClientKey, SCOPES, SigningAlg, TokenSource};
use super::summary::{PanelSummary, assemble};
use super::{RecordSource, RecordsError, today};
use crate::config::Settings;
use crate::ids::PatientRef;
use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Space-separated scopes requested. Default [`SCOPES`].
    pub scopes: String,
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
            scopes: SCOPES.to_owned(),
        }
    }
}

/// The clinic's FHIR server, read with SMART Backend Services.
pub struct FhirSource {
    http: reqwest::Client,
    base: Url,
    cfg: FhirConfig,
    tokens: TokenSource,
}

impl std::fmt::Debug for FhirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirSource")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) fn transport_error(e: reqwest::Error, timeout: Duration) -> RecordsError {
    if e.is_timeout() {
        RecordsError::Timeout(timeout)
    } else {
        RecordsError::Unavailable {
            cause: e.without_url().to_string(),
        }
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
        let key = tokio::task::spawn_blocking(move || ClientKey::load_or_create(&dir, alg))
            .await
            .map_err(|e| RecordsError::Config(format!("key task failed: {e}")))??;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| RecordsError::Config(format!("HTTP client: {e}")))?;
        let tokens = TokenSource::new(
            http.clone(),
            cfg.token_url.clone(),
            cfg.client_id.clone(),
            cfg.scopes.clone(),
            key,
            cfg.timeout,
        );
        Ok(Self {
            http,
            base,
            cfg,
            tokens,
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

    /// Fetch everything the panel shows for one patient.
    #[tracing::instrument(skip_all)]
    pub async fn fetch_record(&self, patient: &PatientRef) -> Result<PatientRecord, RecordsError> {
        let id = patient.as_str();
        let patient_url = self.url(&format!("Patient/{id}"), &[])?;
        let n = self.cfg.page_size.to_string();
        let by_patient = |rtype: &str, extra: &[(&str, &str)]| -> Result<Url, RecordsError> {
            let mut q = vec![("patient", id), ("_count", n.as_str())];
            q.extend_from_slice(extra);
            self.url(rtype, &q)
        };
        let searches = [
            by_patient("AllergyIntolerance", &[])?,
            by_patient(
                "MedicationRequest",
                &[("_include", "MedicationRequest:medication")],
            )?,
            by_patient(
                "MedicationStatement",
                &[("_include", "MedicationStatement:medication")],
            )?,
            by_patient("Condition", &[])?,
            by_patient(
                "Observation",
                &[("category", "vital-signs"), ("_sort", "-date")],
            )?,
            by_patient(
                "Observation",
                &[("category", "laboratory"), ("_sort", "-date")],
            )?,
            by_patient("Immunization", &[("_sort", "-date")])?,
            by_patient("Encounter", &[("_sort", "-date")])?,
        ];
        let (patient_res, results) = tokio::join!(
            self.read(patient_url),
            futures_util::future::join_all(searches.into_iter().map(|u| self.search_all(u)))
        );
        let mut rec = PatientRecord::default();
        match Resource::from_value(patient_res?) {
            Ok(r @ Resource::Patient(_)) => rec.add(r, None),
            Ok(_) => {
                return Err(RecordsError::BadData(
                    "Patient read returned another type".into(),
                ));
            }
            Err(e) => return Err(RecordsError::BadData(e)),
        }
        for bundle_entries in results {
            for (full_url, r) in bundle_entries? {
                rec.add(r, full_url.as_deref());
            }
        }
        Ok(rec)
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

    async fn read(&self, url: Url) -> Result<serde_json::Value, RecordsError> {
        let resp = self.get(url, "Patient").await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(e, self.cfg.timeout))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RecordsError::BadData(format!("Patient: {}", super::model::redacted(&e))))
    }

    /// All pages of one search, as (fullUrl, resource) pairs.
    async fn search_all(
        &self,
        first: Url,
    ) -> Result<Vec<(Option<String>, Resource)>, RecordsError> {
        let rtype = first
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_owned();
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let resp = self.get(url, &rtype).await?;
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| transport_error(e, self.cfg.timeout))?;
            let bundle: Bundle = serde_json::from_slice(&bytes).map_err(|e| {
                RecordsError::BadData(format!("{rtype} search: {}", super::model::redacted(&e)))
            })?;
            for entry in bundle.entry.iter().cloned() {
                let Some(v) = entry.resource else { continue };
                match Resource::from_value(v) {
                    Ok(r) => out.push((entry.full_url, r)),
                    // One odd resource should not blank the whole panel.
                    Err(e) => {
                        tracing::warn!(error = %e, "skipped unreadable resource in search result")
                    }
                }
            }
            if let Some(link) = bundle.next_link() {
                if pages >= self.cfg.max_pages {
                    tracing::warn!(resource = %rtype, pages, "search has more pages than we follow");
                    break;
                }
                next = Some(self.same_origin(link)?);
            }
        }
        Ok(out)
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
        let mut attempt = 0u32;
        let mut reauthorised = false;
        loop {
            let token = self.tokens.token().await?;
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
                    self.tokens.invalidate().await;
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
            StatusCode::NOT_FOUND | StatusCode::GONE => Attempt::Fail(RecordsError::NotFound),
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
        Ok(assemble(patient.as_str(), &rec, as_of))
    }
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
