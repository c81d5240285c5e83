//! The record panel against real FHIR R4 servers and a misbehaving one (issue 15).
//!
//! Real servers, each a process on a loopback port picked at run time, loaded through its
//! own REST API with the same files the embedded store reads:
//! - Medplum's FHIR engine (npm @medplum/fhir-router, tests/fhir-servers/medplum.mjs),
//!   loaded with transaction bundles as exported (server-assigned ids) and batches of PUTs;
//! - fhirsnake (PyPI), a minimal server that ignores every search parameter, loaded by PUT.
//!
//! The scripted server (kit/records/scripted.rs) then plays each misbehaviour seen in
//! the field. Needs `scripts/fetch-fhir-fixtures` (EXAMROOM_FHIR_FIXTURES,
//! EXAMROOM_MEDPLUM_MODULES, EXAMROOM_FHIRSNAKE).

use crate::kit::records::scripted::{Behaviour, PatientMatch, Script, ScriptedFhir};
use crate::kit::records::servers::*;
use crate::kit::records::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Synthea (3), IPS (2 documents) and carebundle (5) patients: (file, what the embedded
/// store reads, the patient id in the file).
fn all_files() -> Vec<(Value, Value, String)> {
    let mut out = Vec::new();
    for p in synthea_bundles() {
        let b = read_json(&p);
        let id = bundle_patient_id(&b);
        out.push((b.clone(), b, id));
    }
    for name in [
        "Bundle-IPS-examples-Bundle-01.json",
        "Bundle-bundle-ips-all-sections.json",
    ] {
        let b = read_json(&ips_examples().join(name));
        let id = bundle_patient_id(&b);
        out.push((b.clone(), b, id));
    }
    // carebundle resources carry no id: the embedded store reads them with the id a server
    // would give (the urn:uuid), which the panel never shows.
    for p in carebundle_bundles() {
        let b = read_json(&p);
        let resources = resources_with_ids(&b);
        let id = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let collection = json!({"resourceType": "Bundle", "type": "collection",
            "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()});
        out.push((b, collection, id));
    }
    out
}

fn panel_resources(b: &Value) -> Vec<Value> {
    resources_with_ids(b)
        .into_iter()
        .filter(|r| PANEL_TYPES.iter().any(|t| r["resourceType"] == *t))
        .collect()
}

fn as_put_batch(b: &Value) -> Value {
    let entries: Vec<Value> = panel_resources(b)
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "batch", "entry": entries})
}

/// `p` as it would be had the server not returned other patients' resources: without its
/// `wrong_patient` notes, and a section that showed nothing only because of them (which the
/// contract makes `recorded` with `items: []`, never "none") as `none_recorded`.
fn without_wrong_patient_notes(p: &Value) -> Value {
    let mut p = p.clone();
    for s in SECTIONS {
        let Some(n) = p[s]["notes"].as_array_mut() else {
            continue;
        };
        let before = n.len();
        n.retain(|n| n["code"] != "wrong_patient");
        if n.len() < before && n.is_empty() && p[s]["items"] == json!([]) {
            p[s]["status"] = json!("none_recorded");
        }
    }
    p
}

/// `p` with each section's items in a canonical order, and the order the panel gave them
/// in reduced to their dates. A server assigns its own ids, and the panel breaks ties
/// between items of the same date by resource id: the same items, dated in the same order,
/// is the same panel.
fn ties_unordered(p: &Value) -> Value {
    let mut p = p.clone();
    for s in SECTIONS {
        if let Some(items) = p[s]["items"].as_array_mut() {
            let dates: Vec<Value> = items
                .iter()
                .map(|i| {
                    ["date", "at", "start", "onset"]
                        .iter()
                        .map(|k| i[*k].clone())
                        .find(|v| !v.is_null())
                        .unwrap_or(Value::Null)
                })
                .collect();
            items.sort_by_key(|i| i.to_string());
            p[s]["item_dates_in_order"] = Value::Array(dates);
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medplum_gives_the_panel_the_embedded_store_gives_for_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = client_jwks(dir.path());
    let medplum = start_medplum(dir.path(), json!([{"client_id": "examroom", "jwks": jwks}])).await;
    let synthea: Vec<Value> = synthea_bundles().iter().map(|p| read_json(p)).collect();
    let synthea_ids: Vec<String> = synthea.iter().map(bundle_patient_id).collect();
    let size = |b: &Value| b["entry"].as_array().map_or(0, Vec::len);
    let smallest = (0..synthea.len())
        .min_by_key(|i| size(&synthea[*i]))
        .unwrap();
    // Medplum's MemoryRepository evaluates FHIRPath for every resource of the type on each
    // search, and again in each `_sort` comparison: 1.7 s to filter one Synthea patient's
    // 345 Observations, 4 s with `_sort`, on a busy 2-core machine. So Medplum gets the
    // smallest Synthea patient (the other two are compared on sekmet and fhirsnake), the IPS
    // and carebundle patients, a generous timeout and pages of 1,000 (the edge re-runs the
    // search for each page, as offset paging does).
    let files: Vec<(Value, Value, String)> = all_files()
        .into_iter()
        .filter(|(_, _, id)| !synthea_ids.contains(id) || *id == synthea_ids[smallest])
        .collect();
    let embedded: Vec<Value> = files.iter().map(|(_, e, _)| e.clone()).collect();
    let src = fhir_client(&medplum.base, &medplum.token_url, dir.path(), |c| {
        c.timeout = Duration::from_secs(90);
        c.page_size = 1000;
    })
    .await;
    for (file, _, id) in &files {
        // carebundle transactions as exported (Medplum assigns ids); Synthea and IPS as a
        // batch of PUTs under their own ids, so the panel's tie-breaks by resource id (which
        // decide, among labs of one date, which fill the 30 shown) are the embedded store's.
        let server_id = if file["type"] == "transaction" && !synthea_ids.contains(id) {
            created_patient_id(file, &medplum.post_bundle(file).await)
        } else {
            medplum.post_bundle(&as_put_batch(file)).await;
            id.clone()
        };
        let want = ties_unordered(&comparable(embedded_panel(&embedded, id), true));
        let got = ties_unordered(&comparable(fhir_panel(&src, &server_id).await, true));
        assert!(
            got == want,
            "Medplum, patient {id} (server id {server_id}):\n{}",
            json_diff(&got, &want)
        );
        for s in SECTIONS {
            assert_ne!(status(&got, s), "unavailable", "{s} of {id}: {}", got[s]);
        }
    }
    // Some patients' sections are non-empty: the comparison is not of two empty panels.
    let mut recorded = 0;
    for (_, _, id) in &files {
        let p = embedded_panel(&embedded, id);
        recorded += SECTIONS
            .iter()
            .filter(|s| status(&p, s) == "recorded")
            .count();
    }
    assert!(
        recorded > 20,
        "only {recorded} recorded sections in all fixtures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhirsnake_ignores_every_search_parameter_and_the_panel_keeps_only_this_patient() {
    let dir = tempfile::tempdir().unwrap();
    let snake = start_fhirsnake(dir.path()).await;
    // fhirsnake has no authorization: the scripted server lends its token endpoint.
    let tokens = ScriptedFhir::start(vec![], Behaviour::default()).await;
    let files = all_files();
    let embedded: Vec<Value> = files.iter().map(|(_, e, _)| e.clone()).collect();
    for (_, e, _) in &files {
        snake.put_all(&panel_resources(e)).await;
    }
    let src = fhir_client(&snake.base, &tokens.token_url, dir.path(), |_| {}).await;
    let mut dropped_somewhere = false;
    for (_, _, id) in &files {
        let want = comparable(embedded_panel(&embedded, id), false);
        let got = comparable(fhir_panel(&src, id).await, false);
        assert!(
            without_wrong_patient_notes(&got) == want,
            "fhirsnake, patient {id}:\n{}",
            json_diff(&without_wrong_patient_notes(&got), &want)
        );
        for s in SECTIONS {
            assert_ne!(status(&got, s), "unavailable", "{s} of {id}: {}", got[s]);
            dropped_somewhere |= !notes(&got, s, "wrong_patient").is_empty();
        }
    }
    assert!(
        dropped_somewhere,
        "fhirsnake returns every patient's resources: some must have been dropped and noted"
    );
}

// --- the scripted server ------------------------------------------------------------------

const ME: &str = "pat-1";

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn vital_category() -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "vital-signs"}]}])
}

fn lab_category() -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "laboratory"}]}])
}

fn heart_rate(id: &str, patient: &str, at: &str, bpm: f64) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": vital_category(),
           "code": coding("http://loinc.org", "8867-4", "Heart rate"),
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": at,
           "valueQuantity": {"value": bpm, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

fn bp_panel(id: &str, patient: &str, at: &str, sys: f64, dia: f64) -> Value {
    let q = |v: f64| json!({"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": vital_category(),
           "code": coding("http://loinc.org", "85354-9", "Blood pressure panel"),
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": at,
           "component": [
               {"code": coding("http://loinc.org", "8480-6", "Systolic blood pressure"), "valueQuantity": q(sys)},
               {"code": coding("http://loinc.org", "8462-4", "Diastolic blood pressure"), "valueQuantity": q(dia)}]})
}

/// One patient's record with something in every section, plus another patient's.
fn two_patients() -> Vec<Value> {
    let mut v = Vec::new();
    for (p, family, allergy, problem, drug, glucose) in [
        (
            ME,
            "Quill",
            "Penicillin G",
            "Essential hypertension",
            "Lisinopril 10 MG Oral Tablet",
            5.4,
        ),
        (
            "pat-2",
            "Other",
            "Peanut",
            "Asthma",
            "Salbutamol inhaler",
            9.9,
        ),
    ] {
        v.push(json!({"resourceType": "Patient", "id": p, "name": [{"family": family, "given": ["Test"]}],
                      "gender": "female", "birthDate": "1970-03-04"}));
        v.push(json!({"resourceType": "AllergyIntolerance", "id": format!("{p}-allergy"),
            "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
            "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
            "criticality": "high",
            "code": {"text": allergy},
            "patient": {"reference": format!("Patient/{p}")}}));
        v.push(json!({"resourceType": "Condition", "id": format!("{p}-problem"),
            "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            "code": {"text": problem}, "subject": {"reference": format!("Patient/{p}")},
            "onsetDateTime": "2015-06-01"}));
        v.push(
            json!({"resourceType": "MedicationRequest", "id": format!("{p}-med"),
            "status": "active", "intent": "order", "medicationCodeableConcept": {"text": drug},
            "subject": {"reference": format!("Patient/{p}")}, "authoredOn": "2025-02-01"}),
        );
        v.push(bp_panel(
            &format!("{p}-bp"),
            p,
            "2025-11-20T10:00:00Z",
            128.0,
            82.0,
        ));
        v.push(heart_rate(
            &format!("{p}-hr"),
            p,
            "2025-11-20T10:00:00Z",
            72.0,
        ));
        v.push(json!({"resourceType": "Observation", "id": format!("{p}-glucose"), "status": "final",
            "category": lab_category(),
            "code": coding("http://loinc.org", "2345-7", "Glucose [Moles/volume] in Serum or Plasma"),
            "subject": {"reference": format!("Patient/{p}")}, "effectiveDateTime": "2025-11-20T10:00:00Z",
            "valueQuantity": {"value": glucose, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}));
        v.push(json!({"resourceType": "Immunization", "id": format!("{p}-flu"), "status": "completed",
            "vaccineCode": {"text": "Influenza vaccine"}, "patient": {"reference": format!("Patient/{p}")},
            "occurrenceDateTime": "2025-10-01"}));
        v.push(
            json!({"resourceType": "Encounter", "id": format!("{p}-visit"), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"text": "Office visit"}], "subject": {"reference": format!("Patient/{p}")},
            "period": {"start": "2025-11-20T10:00:00Z", "end": "2025-11-20T10:30:00Z"}}),
        );
    }
    v
}

struct Scripted {
    server: ScriptedFhir,
    src: examroom::records::FhirSource,
    _dir: tempfile::TempDir,
}

async fn scripted(
    resources: Vec<Value>,
    b: Behaviour,
    tune: impl FnOnce(&mut examroom::records::FhirConfig),
) -> Scripted {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedFhir::start(resources, b).await;
    let src = fhir_client(&server.base, &server.token_url, dir.path(), tune).await;
    Scripted {
        server,
        src,
        _dir: dir,
    }
}

/// The allergies section failed as the issue demands, and the rest of the panel loaded.
fn assert_allergies_unavailable(p: &Value, code: &str, case: &str) {
    let a = &p["allergies"];
    assert_eq!(a["status"], "unavailable", "{case}: {a}");
    assert_eq!(a["items"], json!([]), "{case}: {a}");
    assert_eq!(a["error"]["code"], code, "{case}: {a}");
    let message = a["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Allergies could not be loaded"),
        "{case}: {message:?}"
    );
    assert!(a["fetched_at"].is_string(), "{case}: {a}");
    assert_eq!(
        status(p, "problems"),
        "recorded",
        "{case}: other sections still load"
    );
    assert_eq!(status(p, "medications"), "recorded", "{case}");
    assert_eq!(status(p, "vital_signs"), "recorded", "{case}");
}

#[tokio::test]
async fn a_valid_empty_searchset_is_the_only_none_recorded() {
    let mut resources = two_patients();
    resources.retain(|r| r["resourceType"] != "AllergyIntolerance");
    let s = scripted(resources, Behaviour::default(), |_| {}).await;
    let p = fhir_panel(&s.src, ME).await;
    assert_eq!(
        status(&p, "allergies"),
        "none_recorded",
        "{}",
        p["allergies"]
    );
    assert_eq!(p["allergies"]["items"], json!([]));
    assert!(p["allergies"].get("error").is_none());
}

#[tokio::test]
async fn a_non_bundle_200_to_a_search_is_unavailable_never_none_recorded() {
    let cases = [
        (
            "OperationOutcome",
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "too-costly"}]}),
        ),
        ("empty object", json!({})),
        ("JSON array", json!([])),
        ("JSON null", Value::Null),
        (
            "collection Bundle",
            json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
        ),
        (
            "transaction-response Bundle",
            json!({"resourceType": "Bundle", "type": "transaction-response"}),
        ),
        ("Bundle without type", json!({"resourceType": "Bundle"})),
        ("a Patient", json!({"resourceType": "Patient", "id": ME})),
    ];
    for (case, body) in cases {
        let s = scripted(two_patients(), Behaviour::default(), |_| {}).await;
        s.server.script("AllergyIntolerance", Script::Json(body));
        let p = fhir_panel(&s.src, ME).await;
        assert_allergies_unavailable(&p, "bad_answer", case);
    }
}

#[tokio::test]
async fn an_error_status_to_a_search_is_unavailable_and_the_rest_loads() {
    for (code, want) in [
        (500, "unavailable"),
        (502, "unavailable"),
        (503, "unavailable"),
        (404, "unavailable"),
        (400, "unavailable"),
        (410, "unavailable"),
        (403, "unauthorized"),
    ] {
        let s = scripted(two_patients(), Behaviour::default(), |_| {}).await;
        s.server.script("AllergyIntolerance", Script::Status(code));
        let p = fhir_panel(&s.src, ME).await;
        assert_allergies_unavailable(&p, want, &format!("HTTP {code}"));
    }
}

#[tokio::test]
async fn a_search_slower_than_the_timeout_is_unavailable_and_the_rest_loads() {
    let s = scripted(two_patients(), Behaviour::default(), |c| {
        c.timeout = Duration::from_millis(800)
    })
    .await;
    s.server
        .script("AllergyIntolerance", Script::Slow(Duration::from_secs(5)));
    let t = Instant::now();
    let p = fhir_panel(&s.src, ME).await;
    assert_allergies_unavailable(&p, "timeout", "slow answer");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the panel waited {:?} for a search that times out after 0.8 s",
        t.elapsed()
    );
}

/// A search answer holding the second of `two_patients`, as bytes.
fn one_patient_bundle() -> Vec<u8> {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset",
        "entry": [{"resource": two_patients()[1]}]});
    serde_json::to_vec(&bundle).unwrap()
}

#[tokio::test]
async fn truncated_or_malformed_json_is_unavailable() {
    let full = one_patient_bundle();
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated", full[..full.len() / 2].to_vec()),
        ("cut before the last brace", full[..full.len() - 1].to_vec()),
        (
            "malformed",
            br#"{"resourceType":"Bundle",,"type":"searchset"}"#.to_vec(),
        ),
        ("empty body", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, 0x7b, 0x7d]),
    ];
    allergies_unavailable_for_each(cases, "application/fhir+json").await;
}

/// Each case's body, served with 200 and `content_type` for the allergies, is a bad answer.
async fn allergies_unavailable_for_each(
    cases: impl IntoIterator<Item = (&str, Vec<u8>)>,
    content_type: &'static str,
) {
    for (case, body) in cases {
        let s = scripted(two_patients(), Behaviour::default(), |_| {}).await;
        s.server.script(
            "AllergyIntolerance",
            Script::Raw {
                status: 200,
                content_type,
                body,
            },
        );
        let p = fhir_panel(&s.src, ME).await;
        assert_allergies_unavailable(&p, "bad_answer", case);
    }
}

#[tokio::test]
async fn an_html_answer_is_unavailable_even_when_it_holds_a_bundle() {
    let bundle = one_patient_bundle();
    let cases: [(&str, Vec<u8>); 2] = [
        (
            "a login page",
            b"<!doctype html><html><body>Please sign in</body></html>".to_vec(),
        ),
        ("a searchset served as text/html", bundle),
    ];
    allergies_unavailable_for_each(cases, "text/html; charset=utf-8").await;
}

#[tokio::test]
async fn a_server_ignoring_sort_and_paging_still_shows_the_latest_vital_first_to_last() {
    let mut resources = two_patients();
    resources.retain(|r| !r["id"].as_str().unwrap().ends_with("-bp"));
    // 30 monthly blood pressures; the latest is the highest.
    for i in 0..30 {
        let at = format!("{}-{:02}-15T09:00:00Z", 2023 + i / 12, i % 12 + 1);
        resources.push(bp_panel(
            &format!("bp-{i:02}"),
            ME,
            &at,
            110.0 + i as f64,
            70.0,
        ));
    }
    let b = Behaviour {
        honour_sort: false,
        page_size: Some(7),
        ..Behaviour::default()
    };
    let s = scripted(resources, b, |_| {}).await;
    let p = fhir_panel(&s.src, ME).await;
    let bp = items(&p, "vital_signs")
        .iter()
        .find(|v| v["kind"] == "blood_pressure")
        .unwrap_or_else(|| panic!("no blood pressure: {}", p["vital_signs"]));
    assert_eq!(bp["latest"]["value"], json!(139.0), "{bp}");
    assert!(
        bp["latest"]["at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-15"),
        "{bp}"
    );
    assert_eq!(bp["count"], json!(30), "every page followed: {bp}");
    let dates: Vec<&str> = bp["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pt| pt["at"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "trend oldest first");
    assert!(
        notes(&p, "vital_signs", "truncated").is_empty(),
        "{}",
        p["vital_signs"]
    );
    assert!(
        s.server
            .requests()
            .iter()
            .filter(|r| r.starts_with("/Observation"))
            .count()
            > 4,
        "next links were followed"
    );
}

#[tokio::test]
async fn hitting_the_paging_bound_says_the_section_is_truncated() {
    let mut resources = two_patients();
    resources.retain(|r| !r["id"].as_str().unwrap().ends_with("-hr"));
    for i in 0..150 {
        let at = format!("2025-{:02}-{:02}T08:00:00Z", i / 28 + 1, i % 28 + 1);
        resources.push(heart_rate(
            &format!("hr-{i:03}"),
            ME,
            &at,
            60.0 + (i % 30) as f64,
        ));
    }
    let b = Behaviour {
        page_size: Some(10),
        ..Behaviour::default()
    };
    let s = scripted(resources, b, |c| c.max_pages = 3).await;
    let p = fhir_panel(&s.src, ME).await;
    assert_eq!(status(&p, "vital_signs"), "recorded");
    let t = notes(&p, "vital_signs", "truncated");
    assert_eq!(t.len(), 1, "{}", p["vital_signs"]);
    assert!(!t[0]["text"].as_str().unwrap_or("").is_empty());
    // The server sorted by date (newest first): what is shown is the most recent.
    let hr = items(&p, "vital_signs")
        .iter()
        .find(|v| v["kind"] == "heart_rate")
        .unwrap();
    assert!(
        hr["latest"]["at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-10"),
        "{hr}"
    );
}

#[tokio::test]
async fn a_server_ignoring_the_patient_filter_cannot_put_anyone_elses_data_in_the_panel() {
    let mut resources = two_patients();
    // This patient's resources named in the other forms the spec allows.
    let base_placeholder = "BASE";
    resources.push(
        json!({"resourceType": "AllergyIntolerance", "id": "full-url-allergy",
        "code": {"text": "Latex"}, "criticality": "high",
        "patient": {"reference": format!("{base_placeholder}/Patient/{ME}")}}),
    );
    // And resources naming nobody.
    resources.push(
        json!({"resourceType": "AllergyIntolerance", "id": "orphan-allergy",
        "code": {"text": "Shellfish"}}),
    );
    resources.push(json!({"resourceType": "Condition", "id": "orphan-problem",
        "code": {"text": "Gout"}, "subject": {"display": "someone"}}));
    let b = Behaviour {
        patient_match: PatientMatch::Ignore,
        ..Behaviour::default()
    };
    let s = scripted(vec![], b, |_| {}).await;
    for mut r in resources {
        if r["id"] == "full-url-allergy" {
            r["patient"]["reference"] = json!(format!("{}/Patient/{ME}", s.server.base));
        }
        s.server.add(r);
    }
    let p = fhir_panel(&s.src, ME).await;
    let text = p.to_string();
    for other in ["Peanut", "Asthma", "Salbutamol", "Shellfish", "Gout"] {
        assert!(
            !text.contains(other),
            "{other} of another patient shown: {text}"
        );
    }
    for lab in items(&p, "labs") {
        assert_ne!(lab["numeric"], json!(9.9), "pat-2's glucose shown: {lab}");
    }
    let allergies: Vec<&str> = items(&p, "allergies")
        .iter()
        .map(|a| a["substance"]["text"].as_str().unwrap())
        .collect();
    assert!(allergies.contains(&"Penicillin G"), "{allergies:?}");
    assert!(
        allergies.contains(&"Latex"),
        "full-URL reference kept: {allergies:?}"
    );
    let wp = notes(&p, "allergies", "wrong_patient");
    assert_eq!(wp.len(), 1, "{}", p["allergies"]);
    assert_eq!(
        wp[0]["count"],
        json!(2),
        "pat-2's and the orphan: {}",
        wp[0]
    );
    for s in [
        "problems",
        "medications",
        "vital_signs",
        "labs",
        "immunizations",
        "encounters",
    ] {
        assert_eq!(notes(&p, s, "wrong_patient").len(), 1, "{s}: {}", p[s]);
        assert_eq!(status(&p, s), "recorded", "{s}: {}", p[s]);
    }
}

#[tokio::test]
async fn a_server_matching_only_patient_references_still_fills_every_section() {
    let b = Behaviour {
        patient_match: PatientMatch::ReferenceOnly,
        ..Behaviour::default()
    };
    let s = scripted(two_patients(), b, |_| {}).await;
    let p = fhir_panel(&s.src, ME).await;
    for sec in SECTIONS {
        assert_eq!(status(&p, sec), "recorded", "{sec}: {}", p[sec]);
        assert!(!items(&p, sec).is_empty(), "{sec}");
    }
}
