//! The FHIR client against a small FHIR-ish server we control: retries on 5xx and
//! 429 (with Retry-After), paging across several pages, timeouts, token caching.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use examroom::ids::PatientRef;
use examroom::records::{FhirConfig, FhirSource, RecordsError, SigningAlg};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Scripted failures: (status, Retry-After) answered in turn, per resource type.
type Failures = HashMap<String, Vec<(u16, Option<&'static str>)>>;

#[derive(Default)]
struct Script {
    /// Failures to answer before succeeding, per resource type: (status, retry-after).
    failures: std::sync::Mutex<Failures>,
    /// Delay before answering Observation searches.
    slow: std::sync::Mutex<Option<Duration>>,
    hits: std::sync::Mutex<HashMap<String, usize>>,
    tokens: AtomicUsize,
    observations: usize,
}

impl Script {
    /// A server with `n` vital-sign observations per patient.
    fn observing(n: usize) -> Script {
        Script {
            observations: n,
            ..Default::default()
        }
    }

    /// Answer `resource` searches with `answers` in turn before succeeding.
    fn fail(&self, resource: &str, answers: Vec<(u16, Option<&'static str>)>) {
        self.failures
            .lock()
            .unwrap()
            .insert(resource.into(), answers);
    }
}

type S = Arc<Script>;

async fn token(State(s): State<S>, body: String) -> Json<Value> {
    assert!(body.contains("grant_type=client_credentials"));
    assert!(body.contains(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    ));
    s.tokens.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": "tok", "token_type": "bearer", "expires_in": 300}))
}

fn hit(s: &Script, what: &str) -> Option<Response> {
    *s.hits.lock().unwrap().entry(what.to_owned()).or_default() += 1;
    let mut f = s.failures.lock().unwrap();
    let queue = f.get_mut(what)?;
    if queue.is_empty() {
        return None;
    }
    let (status, retry) = queue.remove(0);
    let mut resp = (StatusCode::from_u16(status).unwrap(), "nope").into_response();
    if let Some(r) = retry {
        resp.headers_mut().insert("retry-after", r.parse().unwrap());
    }
    Some(resp)
}

async fn patient(State(s): State<S>, headers: HeaderMap) -> Response {
    assert_eq!(headers["authorization"], "Bearer tok");
    if let Some(r) = hit(&s, "Patient") {
        return r;
    }
    Json(
        json!({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-02-02",
                "name": [{"family": "Pager", "given": ["Paula"]}]}),
    )
    .into_response()
}

async fn search(
    State(s): State<S>,
    axum::extract::Path(rtype): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = hit(&s, &rtype) {
        return r;
    }
    let empty = json!({"resourceType": "Bundle", "type": "searchset", "entry": []});
    if rtype != "Observation" {
        return Json(empty).into_response();
    }
    let slow = *s.slow.lock().unwrap();
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    // The vitals search asks by LOINC code (heart rate among them).
    if !q
        .get("code")
        .is_some_and(|c| c.contains("http://loinc.org|8867-4"))
    {
        return Json(empty).into_response();
    }
    // Page through `s.observations` heart rates, 7 per page, using our own offset parameter.
    let offset: usize = q.get("page_from").map_or(0, |v| v.parse().unwrap());
    let end = (offset + 7).min(s.observations);
    let entries: Vec<Value> = (offset..end)
        .map(|i| json!({"fullUrl": format!("Observation/hr{i}"), "resource": {
            "resourceType": "Observation", "id": format!("hr{i}"), "status": "final",
            "category": [{"coding": [{"code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": format!("2025-01-{:02}T10:00:00Z", i + 1),
            "valueQuantity": {"value": 60 + i, "unit": "/min"}}}))
        .collect();
    let mut links = vec![];
    if end < s.observations {
        // Relative next link, as some servers send.
        links.push(json!({"relation": "next", "url": format!("Observation?patient=Patient/p1&code=http://loinc.org|8867-4&page_from={end}")}));
    }
    Json(json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}))
        .into_response()
}

async fn start(script: Script) -> (S, FhirSource, tempfile::TempDir) {
    let s = Arc::new(script);
    let app = Router::new()
        .route("/token", post(token))
        .route("/fhir/Patient/{id}", get(patient))
        .route("/fhir/{rtype}", get(search))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = FhirConfig::new(
        &format!("http://{addr}/fhir"),
        &format!("http://{addr}/token"),
        "examroom-test",
        SigningAlg::Es384,
        dir.path().to_owned(),
    );
    cfg.timeout = Duration::from_millis(500);
    cfg.backoff = Duration::from_millis(20);
    cfg.retries = 3;
    let src = FhirSource::new(cfg).await.unwrap();
    (s, src, dir)
}

fn p1() -> PatientRef {
    PatientRef::parse("p1").unwrap()
}

fn as_of() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
}

#[tokio::test]
async fn paging_follows_next_links_across_several_pages() {
    let (s, src, _dir) = start(Script::observing(30)).await;
    let summary = src.summary_at(&p1(), as_of()).await.unwrap();
    let hr = &summary.vital_signs.items()[0];
    assert_eq!(hr.count, 30, "all five pages were read");
    assert_eq!(hr.latest.value, 89.0);
    assert_eq!(summary.demographics.age, Some(45));
    // Five pages of vital signs plus the laboratory search.
    assert!(s.hits.lock().unwrap()["Observation"] > 5);
    // One token for the whole panel (nine requests).
    assert_eq!(s.tokens.load(Ordering::SeqCst), 1);
    src.summary_at(&p1(), as_of()).await.unwrap();
    assert_eq!(s.tokens.load(Ordering::SeqCst), 1, "token is cached");
}

#[tokio::test]
async fn server_errors_and_429_are_retried_honouring_retry_after() {
    let script = Script::observing(3);
    script.fail("Patient", vec![(503, None), (502, None)]);
    script.fail("Condition", vec![(429, Some("1"))]);
    let (s, src, _dir) = start(script).await;
    let t0 = Instant::now();
    let summary = src.summary_at(&p1(), as_of()).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After: {:?}",
        t0.elapsed()
    );
    assert_eq!(summary.demographics.sex.as_deref(), Some("female"));
    let hits = s.hits.lock().unwrap();
    assert_eq!(hits["Patient"], 3);
    assert_eq!(hits["Condition"], 2);
}

#[tokio::test]
async fn persistent_server_errors_mark_the_part_unavailable_without_patient_data() {
    let script = Script::observing(3);
    script.fail("Patient", vec![(500, None); 10]);
    let (s, src, _dir) = start(script).await;
    let summary = src.summary_at(&p1(), as_of()).await.unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    let demo = &json["demographics"];
    assert_eq!(demo["status"], "unavailable");
    assert_eq!(demo["error"]["code"], "unavailable");
    let message = demo["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Patient details could not be loaded"),
        "{message}"
    );
    assert!(
        !message.contains("p1"),
        "error text leaks the patient id: {message}"
    );
    // The other sections were still read, and say what they found.
    assert_eq!(json["allergies"]["status"], "none_recorded");
    assert_eq!(json["vital_signs"]["status"], "recorded");
    assert_eq!(
        s.hits.lock().unwrap()["Patient"],
        4,
        "first try + 3 retries"
    );
}

#[tokio::test]
async fn a_missing_patient_is_not_found_and_not_retried() {
    let script = Script::default();
    script.fail("Patient", vec![(404, None)]);
    let (s, src, _dir) = start(script).await;
    assert!(matches!(
        src.summary_at(&p1(), as_of()).await,
        Err(RecordsError::NotFound)
    ));
    assert_eq!(s.hits.lock().unwrap()["Patient"], 1);
}

#[tokio::test]
async fn a_slow_server_times_out_and_only_its_sections_say_so() {
    let script = Script::observing(3);
    *script.slow.lock().unwrap() = Some(Duration::from_secs(3));
    let (_s, src, _dir) = start(script).await;
    let t0 = Instant::now();
    let summary = src.summary_at(&p1(), as_of()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let json = serde_json::to_value(&summary).unwrap();
    for section in ["vital_signs", "labs"] {
        assert_eq!(json[section]["status"], "unavailable", "{section}");
        assert_eq!(json[section]["error"]["code"], "timeout", "{section}");
        assert_eq!(json[section]["items"], json!([]), "{section}");
    }
    assert_eq!(json["allergies"]["status"], "none_recorded");
    assert_eq!(json["demographics"]["status"], "recorded");
}

#[tokio::test]
async fn a_refused_token_drops_the_cache_and_retries_once() {
    let script = Script::observing(1);
    script.fail("Patient", vec![(401, None)]);
    let (s, src, _dir) = start(script).await;
    src.summary_at(&p1(), as_of()).await.unwrap();
    assert_eq!(s.tokens.load(Ordering::SeqCst), 2);
}
