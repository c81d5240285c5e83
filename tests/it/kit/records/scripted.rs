//! A scripted FHIR R4 server: a real HTTP server (axum on a loopback port) that holds a
//! list of resources and answers searches over them like a plain server would — or, per
//! resource type, misbehaves the way servers seen in the field do. It is not a mock of the
//! client: the client under test talks HTTP to it exactly as it talks to an EHR.
//!
//! By default a search `GET [base]/<Type>?patient=…` answers a `searchset` Bundle of the
//! stored resources of that type whose subject/patient matches, filtered by `category`
//! and `code` (tokens: `system|code` or `code`, commas = OR), sorted by `_sort` (`date`/`-date`), paged
//! by `_count` with `next` links, with `_include` of `:medication`. `POST /auth/token`
//! accepts any well-formed JWT client assertion and hands out a bearer token that every
//! FHIR request must carry.
//!
//! Knobs ([`Behaviour`]): how the `patient` parameter is matched (either form, only
//! `Patient/<id>`, or ignored), whether `_sort` is honoured, a forced page size, a latency
//! added to every answer; and [`Script`] answers per resource type that replace the search.
//!
//! Also used by `crates/examroom-load/src/bin/bench-records.rs` (included by path) for the
//! cold-paint benchmark.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TOKEN: &str = "scripted-access-token";

/// How the server treats the `patient` search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientMatch {
    /// `patient=<id>`, `patient=Patient/<id>` and `patient=<base>/Patient/<id>` (the spec).
    Either,
    /// Only `patient=Patient/<id>` (some servers' reading of a reference parameter).
    ReferenceOnly,
    /// The parameter is ignored: every resource of the type comes back.
    Ignore,
}

/// One scripted answer to a search (or read) of a resource type.
#[derive(Debug, Clone)]
pub enum Script {
    /// 200 with this JSON body (an OperationOutcome, `{}`, a non-searchset Bundle…).
    Json(Value),
    /// This status with an OperationOutcome body.
    Status(u16),
    /// This status, content type and raw body (truncated JSON, HTML…).
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Wait this long, then answer the default search.
    Slow(Duration),
    /// A valid searchset of `entries` copies of `resource`, streamed in chunks without
    /// holding the whole body; with a Content-Length header when `length` is set.
    Huge {
        resource: Value,
        entries: usize,
        length: bool,
    },
}

/// The server's standing behaviour.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub patient_match: PatientMatch,
    /// When false, `_sort` is ignored and results come oldest first.
    pub honour_sort: bool,
    /// Page size used whatever `_count` says (servers cap page sizes).
    pub page_size: Option<usize>,
    /// Added before every FHIR answer (a server "50 ms away").
    pub latency: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            patient_match: PatientMatch::Either,
            honour_sort: true,
            page_size: None,
            latency: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Inner {
    resources: Vec<Value>,
    scripts: HashMap<String, Script>,
    requests: Vec<String>,
    token_requests: usize,
    /// Matching resources (indices, in answer order) per search without its page: the
    /// pages of one search then cost a slice, not a scan of every resource — the fixture
    /// stands in for a server "50 ms away", whose own work should not be what a bench times.
    matched: HashMap<String, Vec<usize>>,
    /// Each resource's JSON, serialised once (same reason).
    serialized: Vec<Option<String>>,
}

impl Inner {
    fn resource_json(&mut self, i: usize) -> &str {
        if self.serialized.len() < self.resources.len() {
            self.serialized.resize(self.resources.len(), None);
        }
        let r = &self.resources[i];
        self.serialized[i].get_or_insert_with(|| serde_json::to_string(r).unwrap())
    }
}

struct Shared {
    inner: Mutex<Inner>,
    behaviour: Mutex<Behaviour>,
    base: String,
}

/// A running scripted server; stops when dropped.
pub struct ScriptedFhir {
    pub base: String,
    pub token_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedFhir {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedFhir {
    /// Start on a free loopback port with these resources.
    pub async fn start(resources: Vec<Value>, behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let base = format!("{root}/fhir");
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                resources,
                ..Inner::default()
            }),
            behaviour: Mutex::new(behaviour),
            base: base.clone(),
        });
        let app = Router::new()
            .route("/auth/token", post(token))
            .route("/fhir/metadata", get(metadata))
            .route("/fhir/{rtype}", get(search))
            .route("/fhir/{rtype}/{id}", get(read))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            token_url: format!("{root}/auth/token"),
            shared,
            task,
        }
    }

    /// Replace the answer to searches (and reads) of `rtype`.
    pub fn script(&self, rtype: &str, s: Script) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .scripts
            .insert(rtype.to_owned(), s);
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    pub fn add(&self, r: Value) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.resources.push(r);
        inner.matched.clear();
    }

    /// Path and query of every FHIR request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    pub fn token_requests(&self) -> usize {
        self.shared.inner.lock().unwrap().token_requests
    }
}

async fn token(
    State(s): State<Arc<Shared>>,
    axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    // The token endpoint is as far away as the FHIR server.
    let latency = s.behaviour.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    s.inner.lock().unwrap().token_requests += 1;
    let assertion = form
        .get("client_assertion")
        .map(String::as_str)
        .unwrap_or("");
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || assertion.split('.').count() != 3
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    axum::Json(json!({"access_token": TOKEN, "token_type": "bearer", "expires_in": 300}))
        .into_response()
}

fn fhir_json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
        serde_json::to_vec(v).unwrap(),
    )
        .into_response()
}

fn outcome(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    fhir_json(
        code,
        &json!({"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception",
                           "diagnostics": format!("scripted {status}")}]}),
    )
}

async fn metadata() -> Response {
    fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "CapabilityStatement", "status": "active",
                "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"]}),
    )
}

/// Common prelude: auth, latency, request log. `Err` is the answer to give instead of the
/// stored resources: a refusal or the scripted answer.
async fn prelude(
    s: &Shared,
    headers: &HeaderMap,
    rtype: &str,
    logged: String,
) -> Result<(), Response> {
    let latency = s.behaviour.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let script = {
        let mut inner = s.inner.lock().unwrap();
        inner.requests.push(logged);
        inner.scripts.get(rtype).cloned()
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Err(outcome(401));
    }
    if let Some(sc) = script
        && let Some(r) = scripted(sc).await
    {
        return Err(r);
    }
    Ok(())
}

async fn read(
    State(s): State<Arc<Shared>>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = prelude(&s, &headers, &rtype, format!("/{rtype}/{id}")).await {
        return answer;
    }
    let inner = s.inner.lock().unwrap();
    match inner
        .resources
        .iter()
        .find(|r| r["resourceType"] == rtype.as_str() && r["id"] == id.as_str())
    {
        Some(r) => fhir_json(StatusCode::OK, r),
        None => outcome(404),
    }
}

/// The scripted answer, or None to fall through to the default search.
async fn scripted(sc: Script) -> Option<Response> {
    match sc {
        Script::Json(v) => Some(fhir_json(StatusCode::OK, &v)),
        Script::Status(code) => Some(outcome(code)),
        Script::Raw {
            status,
            content_type,
            body,
        } => Some(
            (
                StatusCode::from_u16(status).unwrap(),
                [(header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response(),
        ),
        Script::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Script::Huge {
            resource,
            entries,
            length,
        } => Some(huge(resource, entries, length)),
    }
}

fn huge(resource: Value, entries: usize, length: bool) -> Response {
    let head = br#"{"resourceType":"Bundle","type":"searchset","entry":["#.to_vec();
    let one = serde_json::to_vec(&json!({"resource": resource})).unwrap();
    let tail = b"]}".to_vec();
    let total = head.len() + entries * one.len() + entries.saturating_sub(1) + tail.len();
    // 1,000 entries per chunk; the body is never held whole.
    let chunks = (0..entries.div_ceil(1000)).map(move |c| {
        let mut buf = Vec::new();
        if c == 0 {
            buf.extend_from_slice(&head);
        }
        for i in c * 1000..((c + 1) * 1000).min(entries) {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(&one);
        }
        if (c + 1) * 1000 >= entries {
            buf.extend_from_slice(&tail);
        }
        Ok::<_, std::io::Error>(bytes::Bytes::from(buf))
    });
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let mut r = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/fhir+json");
    if length {
        r = r.header(header::CONTENT_LENGTH, total);
    }
    r.body(body).unwrap()
}

/// The query's name/value pairs, percent-decoded (axum's own query parser).
fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    let uri: axum::http::Uri = format!("/?{query}").parse().unwrap_or_default();
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The patient a resource names: subject or patient reference.
fn patient_ref(r: &Value) -> Option<&str> {
    r["subject"]["reference"]
        .as_str()
        .or_else(|| r["patient"]["reference"].as_str())
}

fn patient_matches(m: PatientMatch, param: &str, r: &Value, base: &str) -> bool {
    let Some(reference) = patient_ref(r) else {
        return m == PatientMatch::Ignore;
    };
    let id_of = |s: &str| s.rsplit('/').next().unwrap_or("").to_owned();
    match m {
        PatientMatch::Ignore => true,
        PatientMatch::ReferenceOnly => {
            param.starts_with("Patient/") && id_of(param) == id_of(reference)
        }
        PatientMatch::Either => {
            let wanted = param
                .strip_prefix(&format!("{base}/"))
                .unwrap_or(param)
                .strip_prefix("Patient/")
                .unwrap_or(param);
            !wanted.contains('/') && wanted == id_of(reference)
        }
    }
}

/// A token search on `category` (a list of CodeableConcepts) or `code` (one).
fn token_matches(element: &str, param: &str, r: &Value) -> bool {
    let concepts: Vec<&Value> = match &r[element] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let codings: Vec<&Value> = concepts
        .into_iter()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .collect();
    param.split(',').any(|want| {
        let (system, code) = match want.split_once('|') {
            Some((s, c)) => (Some(s), c),
            None => (None, want),
        };
        codings
            .iter()
            .any(|c| c["code"] == code && system.is_none_or(|s| s.is_empty() || c["system"] == s))
    })
}

/// The date a search sorts by (`date` for Observation, Immunization, Encounter…).
pub fn sort_date(r: &Value) -> String {
    for k in [
        "effectiveDateTime",
        "occurrenceDateTime",
        "authoredOn",
        "recordedDate",
        "onsetDateTime",
        "issued",
    ] {
        if let Some(s) = r[k].as_str() {
            return s.to_owned();
        }
    }
    for k in ["effectivePeriod", "period"] {
        if let Some(s) = r[k]["start"].as_str() {
            return s.to_owned();
        }
    }
    String::new()
}

async fn search(
    State(s): State<Arc<Shared>>,
    Path(rtype): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    if let Err(answer) = prelude(&s, &headers, &rtype, format!("/{rtype}?{query}")).await {
        return answer;
    }
    let params: Vec<(String, String)> = serde_urlencoded_pairs(&query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let b = s.behaviour.lock().unwrap().clone();
    // One lock for the whole answer (no await below).
    let mut inner = s.inner.lock().unwrap();
    let unpaged: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("_page="))
        .collect();
    let key = format!(
        "{rtype}?{}|{:?}|{}",
        unpaged.join("&"),
        b.patient_match,
        b.honour_sort
    );
    let order = match inner.matched.get(&key) {
        Some(order) => order.clone(),
        None => {
            let mut order: Vec<usize> = inner
                .resources
                .iter()
                .enumerate()
                .filter(|(_, r)| r["resourceType"] == rtype.as_str())
                .filter(|(_, r)| match param("patient").or(param("subject")) {
                    Some(p) => patient_matches(b.patient_match, p, r, &s.base),
                    None => true,
                })
                .filter(|(_, r)| param("category").is_none_or(|c| token_matches("category", c, r)))
                .filter(|(_, r)| param("code").is_none_or(|c| token_matches("code", c, r)))
                .map(|(i, _)| i)
                .collect();
            // Oldest first unless the sort is honoured: the order that misleads a client
            // trusting it.
            order.sort_by_cached_key(|&i| sort_date(&inner.resources[i]));
            if b.honour_sort && param("_sort").is_some_and(|v| v.split(',').next() == Some("-date"))
            {
                order.reverse();
            }
            inner.matched.insert(key, order.clone());
            order
        }
    };
    let count = b
        .page_size
        .or_else(|| param("_count").and_then(|c| c.parse().ok()))
        .unwrap_or(50)
        .max(1);
    let page: usize = param("_page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let total = order.len();
    let on_page: Vec<usize> = order.into_iter().skip(page * count).take(count).collect();
    let include = params
        .iter()
        .any(|(n, v)| n == "_include" && v.ends_with(":medication"));
    let mut included = Vec::new();
    if include {
        for &i in &on_page {
            if let Some(reference) = inner.resources[i]["medicationReference"]["reference"].as_str()
                && let Some((t, id)) = reference.split_once('/')
                && let Some(m) = inner
                    .resources
                    .iter()
                    .position(|r| r["resourceType"] == t && r["id"] == id)
            {
                included.push((reference.to_owned(), m));
            }
        }
    }
    // The entries written from each resource's JSON serialised once.
    let mut entries = Vec::with_capacity(on_page.len() + included.len());
    for &i in &on_page {
        let full_url = format!(
            "{}/{}/{}",
            s.base,
            inner.resources[i]["resourceType"].as_str().unwrap_or(""),
            inner.resources[i]["id"].as_str().unwrap_or("")
        );
        entries.push(format!(
            r#"{{"fullUrl":{},"resource":{},"search":{{"mode":"match"}}}}"#,
            json!(full_url),
            inner.resource_json(i)
        ));
    }
    for (reference, m) in included {
        entries.push(format!(
            r#"{{"fullUrl":{},"resource":{},"search":{{"mode":"include"}}}}"#,
            json!(format!("{}/{reference}", s.base)),
            inner.resource_json(m)
        ));
    }
    drop(inner);
    let mut link = vec![json!({"relation": "self", "url": format!("{}/{rtype}?{query}", s.base)})];
    if (page + 1) * count < total {
        let mut q: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("_page="))
            .collect();
        let page_param = format!("_page={}", page + 1);
        q.push(&page_param);
        let q = q.join("&");
        link.push(json!({"relation": "next", "url": format!("{}/{rtype}?{q}", s.base)}));
    }
    let body = format!(
        r#"{{"resourceType":"Bundle","type":"searchset","total":{total},"link":{},"entry":[{}]}}"#,
        Value::Array(link),
        entries.join(",")
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
        body,
    )
        .into_response()
}
