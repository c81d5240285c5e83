//! What the panel may call current (issue 15, rules 2, 5 and 7), with resources in every
//! form the FHIR R4 specification allows for the fields the panel reads. Each panel is
//! computed twice — from the embedded store and through the FHIR client from the scripted
//! server holding the same resources — and the two must agree.

use crate::kit::records::scripted::{Behaviour, ScriptedFhir};
use crate::kit::records::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

const ME: &str = "pat-1";
const CLINICAL_ALLERGY: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const VERIFY_ALLERGY: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const CLINICAL_CONDITION: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFY_CONDITION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const UCUM: &str = "http://unitsofmeasure.org";

fn cc(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn me() -> Value {
    json!({"reference": format!("Patient/{ME}")})
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": ME, "name": [{"family": "Quill", "given": ["Ada"]}],
           "gender": "female", "birthDate": "1961-07-30"})
}

/// The panel for `resources` (plus the Patient), checked to be the same from the embedded
/// store and from a FHIR server.
async fn panel(resources: Vec<Value>) -> Value {
    let mut all = vec![patient()];
    all.extend(resources);
    let bundle = json!({"resourceType": "Bundle", "type": "collection",
        "entry": all.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()});
    let embedded = embedded_panel(&[bundle], ME);
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedFhir::start(all, Behaviour::default()).await;
    let src = fhir_client(&server.base, &server.token_url, dir.path(), |_| {}).await;
    let fhir = fhir_panel(&src, ME).await;
    let (fhir, want) = (comparable(fhir, false), comparable(embedded.clone(), false));
    assert!(
        fhir == want,
        "the FHIR source (got) and the embedded store (want) disagree:\n{}",
        json_diff(&fhir, &want)
    );
    embedded
}

/// The display texts of a section's items under `field`.
fn texts(p: &Value, section: &str, field: &str) -> Vec<String> {
    items(p, section)
        .iter()
        .map(|i| i[field]["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The section shows exactly these items (by `field`'s text), in any order.
fn assert_shown(p: &Value, section: &str, field: &str, expected: &[&str]) {
    let mut shown = texts(p, section, field);
    shown.sort();
    assert_eq!(shown, expected, "{}", p[section]);
}

/// The vital signs of one kind (`weight`, `blood_pressure`…) on the panel.
fn vitals<'a>(p: &'a Value, kind: &str) -> Vec<&'a Value> {
    let all = items(p, "vital_signs");
    all.iter().filter(|v| v["kind"] == kind).collect()
}

// --- immunizations -------------------------------------------------------------------------

fn immunization(id: &str, status: Option<&str>, extra: Value) -> Value {
    let mut r = json!({"resourceType": "Immunization", "id": id, "vaccineCode": {"text": id},
                       "patient": me(), "occurrenceDateTime": "2024-10-01"});
    if let Some(s) = status {
        r["status"] = json!(s);
    }
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[tokio::test]
async fn immunizations_not_done_or_entered_in_error_are_never_given() {
    let p = panel(vec![
        immunization("given-datetime", Some("completed"), json!({})),
        immunization(
            "given-string-date",
            Some("completed"),
            json!({"occurrenceDateTime": null, "occurrenceString": "autumn 2019"}),
        ),
        immunization(
            "not-done",
            Some("not-done"),
            json!({"statusReason": cc("http://terminology.hl7.org/CodeSystem/v3-ActReason", "PATOBJ")}),
        ),
        immunization("entered-in-error", Some("entered-in-error"), json!({})),
        immunization("no-status", None, json!({})),
    ])
    .await;
    let by_name = |n: &str| {
        items(&p, "immunizations")
            .iter()
            .find(|i| i["vaccine"]["text"] == n)
            .cloned()
    };
    assert_eq!(by_name("given-datetime").unwrap()["given"], json!(true));
    assert_eq!(by_name("given-string-date").unwrap()["given"], json!(true));
    let not_done = by_name("not-done").expect("not-done is listed, as not given");
    assert_eq!(not_done["given"], json!(false), "{not_done}");
    assert!(
        by_name("entered-in-error").is_none(),
        "{}",
        p["immunizations"]
    );
    if let Some(i) = by_name("no-status") {
        assert_ne!(
            i["given"],
            json!(true),
            "a status we cannot read is not 'given': {i}"
        );
    }
}

// --- medications ---------------------------------------------------------------------------

fn request(id: &str, status: Value, intent: &str, extra: Value) -> Value {
    let mut r = json!({"resourceType": "MedicationRequest", "id": id, "status": status,
        "intent": intent, "medicationCodeableConcept": {"text": id}, "subject": me(),
        "authoredOn": "2025-03-01"});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn statement(id: &str, status: &str) -> Value {
    json!({"resourceType": "MedicationStatement", "id": id, "status": status,
           "medicationCodeableConcept": {"text": id}, "subject": me(),
           "effectiveDateTime": "2025-03-01"})
}

#[tokio::test]
async fn only_active_orders_and_statements_are_current_medications() {
    let mut rs = vec![
        request("rq-active-order", json!("active"), "order", json!({})),
        request(
            "rq-active-original-order",
            json!("active"),
            "original-order",
            json!({}),
        ),
        request(
            "rq-do-not-perform",
            json!("active"),
            "order",
            json!({"doNotPerform": true}),
        ),
        request("rq-proposal", json!("active"), "proposal", json!({})),
        request("rq-plan", json!("active"), "plan", json!({})),
        request("rq-option", json!("active"), "option", json!({})),
        request(
            "rq-unreadable-status",
            json!({"code": "active"}),
            "order",
            json!({}),
        ),
    ];
    for s in [
        "stopped",
        "completed",
        "cancelled",
        "entered-in-error",
        "draft",
    ] {
        rs.push(request(&format!("rq-{s}"), json!(s), "order", json!({})));
    }
    rs.push(statement("st-active", "active"));
    for s in ["stopped", "completed", "entered-in-error", "not-taken"] {
        rs.push(statement(&format!("st-{s}"), s));
    }
    // medication[x] as a reference: to a contained Medication and to a Medication resource.
    rs.push(json!({"resourceType": "MedicationRequest", "id": "rq-contained", "status": "active",
        "intent": "order", "subject": me(),
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "Metformin 500 mg"}}],
        "medicationReference": {"reference": "#m1"}}));
    rs.push(json!({"resourceType": "Medication", "id": "warfarin",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "855332",
                             "display": "Warfarin Sodium 5 MG Oral Tablet"}]}}));
    rs.push(json!({"resourceType": "MedicationRequest", "id": "rq-referenced", "status": "active",
        "intent": "order", "subject": me(), "medicationReference": {"reference": "Medication/warfarin"}}));
    let p = panel(rs).await;
    assert_shown(
        &p,
        "medications",
        "medication",
        &[
            "Metformin 500 mg",
            "Warfarin Sodium 5 MG Oral Tablet",
            "rq-active-order",
            "rq-active-original-order",
            "rq-unreadable-status",
            "st-active",
        ],
    );
    let odd = items(&p, "medications")
        .iter()
        .find(|m| m["medication"]["text"] == "rq-unreadable-status")
        .unwrap();
    assert_eq!(odd["status"], Value::Null, "{odd}");
    assert!(
        odd["unreadable_fields"].to_string().contains("\"status\""),
        "{odd}"
    );
    let st = items(&p, "medications")
        .iter()
        .find(|m| m["medication"]["text"] == "st-active")
        .unwrap();
    assert_eq!(st["source"], "statement");
}

// --- problems ------------------------------------------------------------------------------

fn condition(id: &str, clinical: Option<&str>, extra: Value) -> Value {
    let mut r = json!({"resourceType": "Condition", "id": id, "code": {"text": id}, "subject": me(),
                       "onsetDateTime": "2019-01-01"});
    if let Some(c) = clinical {
        r["clinicalStatus"] = cc(CLINICAL_CONDITION, c);
    }
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[tokio::test]
async fn abated_resolved_inactive_or_in_remission_conditions_are_not_active_problems() {
    let abatements = [
        ("abatementDateTime", json!("2021-05-01")),
        (
            "abatementAge",
            json!({"value": 50, "unit": "a", "system": UCUM, "code": "a"}),
        ),
        (
            "abatementPeriod",
            json!({"start": "2021-01-01", "end": "2021-03-01"}),
        ),
        (
            "abatementRange",
            json!({"low": {"value": 50, "unit": "a", "system": UCUM, "code": "a"},
                                  "high": {"value": 52, "unit": "a", "system": UCUM, "code": "a"}}),
        ),
        ("abatementString", json!("in childhood")),
        // STU3's form, still found in exports converted to R4.
        ("abatementBoolean", json!(true)),
    ];
    let mut rs = vec![
        condition("active", Some("active"), json!({})),
        condition("recurrence", Some("recurrence"), json!({})),
        condition("relapse", Some("relapse"), json!({})),
    ];
    for s in ["resolved", "inactive", "remission"] {
        rs.push(condition(&format!("status-{s}"), Some(s), json!({})));
    }
    for (k, v) in &abatements {
        let mut extra = serde_json::Map::new();
        extra.insert((*k).to_owned(), v.clone());
        rs.push(condition(
            &format!("active-with-{k}"),
            Some("active"),
            Value::Object(extra.clone()),
        ));
        rs.push(condition(
            &format!("no-status-with-{k}"),
            None,
            Value::Object(extra),
        ));
    }
    for v in ["entered-in-error", "refuted"] {
        rs.push(condition(
            &format!("verification-{v}"),
            Some("active"),
            json!({"verificationStatus": cc(VERIFY_CONDITION, v)}),
        ));
    }
    let p = panel(rs).await;
    assert_shown(
        &p,
        "problems",
        "condition",
        &["active", "recurrence", "relapse"],
    );
}

// --- allergies -----------------------------------------------------------------------------

fn allergy(id: &str, verification: Option<&str>, clinical: Option<&str>) -> Value {
    let mut r = json!({"resourceType": "AllergyIntolerance", "id": id, "code": {"text": id},
                       "criticality": "high", "patient": me()});
    if let Some(v) = verification {
        r["verificationStatus"] = cc(VERIFY_ALLERGY, v);
    }
    if let Some(c) = clinical {
        r["clinicalStatus"] = cc(CLINICAL_ALLERGY, c);
    }
    r
}

#[tokio::test]
async fn unconfirmed_allergies_are_listed_and_marked_refuted_and_entered_in_error_are_hidden() {
    let p = panel(vec![
        allergy("confirmed", Some("confirmed"), Some("active")),
        allergy("unconfirmed", Some("unconfirmed"), Some("active")),
        allergy("presumed", Some("presumed"), Some("active")),
        allergy("no-verification", None, Some("active")),
        allergy("no-status-at-all", None, None),
        allergy("refuted", Some("refuted"), None),
        allergy("entered-in-error", Some("entered-in-error"), None),
        allergy("resolved", Some("confirmed"), Some("resolved")),
        allergy("inactive", Some("confirmed"), Some("inactive")),
    ])
    .await;
    assert_shown(
        &p,
        "allergies",
        "substance",
        &[
            "confirmed",
            "no-status-at-all",
            "no-verification",
            "presumed",
            "unconfirmed",
        ],
    );
    let get = |n: &str| {
        items(&p, "allergies")
            .iter()
            .find(|a| a["substance"]["text"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(get("unconfirmed")["verification_status"], "unconfirmed");
    assert_eq!(get("presumed")["verification_status"], "presumed");
    assert_eq!(get("confirmed")["verification_status"], "confirmed");
}

/// An allergy with one field of an unexpected shape is kept, with what could be read.
#[tokio::test]
async fn one_odd_field_never_drops_an_allergy() {
    let odd = [
        (
            "criticality as an object",
            json!({"criticality": {"extension": []}}),
        ),
        (
            "onset Period",
            json!({"onsetPeriod": {"start": "2001-02-03"}}),
        ),
        ("onset as a number", json!({"onsetDateTime": 2001})),
        (
            "code without display",
            json!({"code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]}}),
        ),
        (
            "reaction not a list",
            json!({"reaction": {"manifestation": [{"text": "Hives"}]}}),
        ),
        ("category a string", json!({"category": "medication"})),
        (
            "an unknown value[x]",
            json!({"extension": [{"url": "http://example.org/x", "valueBanana": {"ripe": true}}]}),
        ),
        (
            "clinicalStatus as text only",
            json!({"clinicalStatus": {"text": "Active"}}),
        ),
    ];
    for (case, extra) in odd {
        let mut a = allergy("Penicillin", Some("confirmed"), Some("active"));
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        let p = panel(vec![a]).await;
        assert_eq!(
            status(&p, "allergies"),
            "recorded",
            "{case}: {}",
            p["allergies"]
        );
        assert_eq!(
            items(&p, "allergies").len(),
            1,
            "{case}: {}",
            p["allergies"]
        );
        assert_eq!(
            items(&p, "allergies")[0]["criticality"] == "high",
            case != "criticality as an object",
            "{case}"
        );
    }
}

/// A resource that cannot be read at all is counted, not silently dropped.
#[tokio::test]
async fn an_unreadable_allergy_is_counted_in_a_note() {
    let p = panel(vec![
        allergy("Penicillin", Some("confirmed"), Some("active")),
        json!({"resourceType": "AllergyIntolerance", "id": "garbled", "patient": me(),
               "code": 17, "clinicalStatus": [], "verificationStatus": "yes"}),
    ])
    .await;
    assert_eq!(status(&p, "allergies"), "recorded");
    let n = notes(&p, "allergies", "unreadable");
    let listed = items(&p, "allergies").len();
    assert!(
        listed == 2 || (listed == 1 && n.len() == 1 && n[0]["count"] == json!(1)),
        "the garbled allergy is listed or counted: {}",
        p["allergies"]
    );
}

// --- vital signs ---------------------------------------------------------------------------

fn vital(id: &str, loinc: &str, at: &str, value: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": [cc(OBS_CATEGORY, "vital-signs")],
           "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
           "subject": me(), "effectiveDateTime": at, "valueQuantity": value})
}

fn q(value: f64, unit: &str, code: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": code})
}

#[tokio::test]
async fn blood_pressure_as_one_panel_or_as_two_observations_both_show() {
    let panel_form = json!({"resourceType": "Observation", "id": "bp-panel", "status": "final",
        "category": [cc(OBS_CATEGORY, "vital-signs")],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": me(), "effectiveDateTime": "2025-09-01T09:00:00Z",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": q(131.0, "mmHg", "mm[Hg]")},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": q(85.0, "mmHg", "mm[Hg]")}]});
    let p = panel(vec![panel_form.clone()]).await;
    let bp = items(&p, "vital_signs")
        .iter()
        .find(|v| v["kind"] == "blood_pressure")
        .unwrap_or_else(|| panic!("panel form: {}", p["vital_signs"]));
    assert_eq!(bp["latest"]["value"], json!(131.0));
    assert_eq!(bp["latest"]["diastolic"], json!(85.0));
    assert!(
        bp["latest"]["at"]
            .as_str()
            .unwrap()
            .starts_with("2025-09-01")
    );

    let separate = vec![
        vital(
            "sys",
            "8480-6",
            "2025-10-01T09:00:00Z",
            q(128.0, "mmHg", "mm[Hg]"),
        ),
        vital(
            "dia",
            "8462-4",
            "2025-10-01T09:00:00Z",
            q(82.0, "mmHg", "mm[Hg]"),
        ),
    ];
    let p = panel(separate.clone()).await;
    let bps = vitals(&p, "blood_pressure");
    assert!(
        !bps.is_empty(),
        "two separate observations: {}",
        p["vital_signs"]
    );
    let systolic_shown = bps.iter().any(|v| v["latest"]["value"] == json!(128.0));
    let diastolic_shown = bps
        .iter()
        .any(|v| v["latest"]["diastolic"] == json!(82.0) || v["latest"]["value"] == json!(82.0));
    assert!(systolic_shown && diastolic_shown, "{}", p["vital_signs"]);

    // Both forms in one record: the later (separate) reading is the latest.
    let mut both = separate;
    both.push(panel_form);
    let p = panel(both).await;
    let latest_sys = vitals(&p, "blood_pressure")
        .into_iter()
        .map(|v| v["latest"]["at"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    assert!(latest_sys.starts_with("2025-10-01"), "{}", p["vital_signs"]);
}

/// Points of one vital sign share one unit: lb and kg (°F and °C) in one series are
/// converted, never plotted on one axis; every point carries its date.
#[tokio::test]
async fn mixed_units_in_one_series_are_converted_and_every_point_is_dated() {
    let p = panel(vec![
        vital("w1", "29463-7", "2025-01-10", q(80.0, "kg", "kg")),
        vital("w2", "29463-7", "2025-06-10", q(180.0, "lb", "[lb_av]")),
        vital("w3", "29463-7", "2025-03-10", q(81000.0, "g", "g")),
        vital("t1", "8310-5", "2025-01-10", q(37.0, "C", "Cel")),
        vital("t2", "8310-5", "2025-06-10", q(100.4, "F", "[degF]")),
    ])
    .await;
    for v in items(&p, "vital_signs") {
        let unit = &v["unit"];
        for pt in v["trend"].as_array().unwrap().iter().chain([&v["latest"]]) {
            assert_eq!(&pt["unit"], unit, "one unit per series: {v}");
            assert!(
                pt["at"].as_str().is_some_and(|a| !a.is_empty()),
                "dated: {v}"
            );
        }
    }
    let kg = |v: &Value| -> f64 {
        let x = v["value"].as_f64().unwrap();
        match v["unit"].as_str().unwrap() {
            "kg" => x,
            "g" => x / 1000.0,
            "lb" | "[lb_av]" => x * 0.453_592_37,
            u => panic!("weight unit {u}"),
        }
    };
    let weights = vitals(&p, "weight");
    assert_eq!(weights.len(), 1, "lb, g and kg convert: {weights:?}");
    let latest = &weights[0]["latest"];
    assert!(
        latest["at"].as_str().unwrap().starts_with("2025-06-10"),
        "{latest}"
    );
    assert!(
        (kg(latest) - 81.647).abs() < 0.05,
        "180 lb is 81.65 kg: {latest}"
    );
    assert_eq!(weights[0]["count"], json!(3));
    let temps = vitals(&p, "temperature");
    assert_eq!(temps.len(), 1, "°F and °C convert: {temps:?}");
    let t = &temps[0]["latest"];
    let celsius = match t["unit"].as_str().unwrap() {
        "Cel" | "°C" | "C" => t["value"].as_f64().unwrap(),
        "[degF]" | "°F" | "F" => (t["value"].as_f64().unwrap() - 32.0) / 1.8,
        u => panic!("temperature unit {u}"),
    };
    assert!((celsius - 38.0).abs() < 0.05, "100.4 °F is 38 °C: {t}");
}

// --- labs ----------------------------------------------------------------------------------

fn lab(id: &str, category: Value, loinc: &str, value: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final", "category": category,
           "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": id}], "text": id},
           "subject": me(), "effectiveDateTime": "2025-11-02T08:00:00Z", "valueQuantity": value})
}

#[tokio::test]
async fn labs_are_recognised_by_category_lab_code_or_text() {
    let coded = vec![
        lab(
            "by-category",
            json!([cc(OBS_CATEGORY, "laboratory")]),
            "2345-7",
            q(5.1, "mmol/L", "mmol/L"),
        ),
        lab(
            "by-v2-0074-LAB",
            json!([cc("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB")]),
            "2160-0",
            q(80.0, "umol/L", "umol/L"),
        ),
    ];
    let p = panel(coded.clone()).await;
    assert_shown(&p, "labs", "test", &["by-category", "by-v2-0074-LAB"]);

    // A category given only as text: a FHIR server's token search cannot match it, so only
    // the embedded store (which reads every Observation) can recognise it.
    let mut all = coded;
    all.push(lab(
        "by-text",
        json!([{"text": "Laboratory"}]),
        "718-7",
        q(13.2, "g/dL", "g/dL"),
    ));
    let mut entries = vec![json!({"resource": patient()})];
    entries.extend(all.into_iter().map(|r| json!({"resource": r})));
    let p = embedded_panel(
        &[json!({"resourceType": "Bundle", "type": "collection", "entry": entries})],
        ME,
    );
    assert_shown(
        &p,
        "labs",
        "test",
        &["by-category", "by-text", "by-v2-0074-LAB"],
    );
}

#[tokio::test]
async fn a_tiny_lab_value_is_shown_in_significant_digits_not_as_zero() {
    let p = panel(vec![
        lab(
            "tiny",
            json!([cc(OBS_CATEGORY, "laboratory")]),
            "14682-9",
            q(4e-7, "mol/L", "mol/L"),
        ),
        lab(
            "huge",
            json!([cc(OBS_CATEGORY, "laboratory")]),
            "777-3",
            q(2.5e11, "/L", "/L"),
        ),
    ])
    .await;
    for (name, want) in [("tiny", 4e-7), ("huge", 2.5e11)] {
        let l = items(&p, "labs")
            .iter()
            .find(|l| l["test"]["text"] == name)
            .unwrap_or_else(|| panic!("{name}: {}", p["labs"]));
        // The value as shown, maybe followed by its unit.
        let shown = l["value"].as_str().unwrap();
        let number = shown.split_whitespace().next().unwrap_or("");
        let parsed: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {shown:?}"));
        assert!(
            ((parsed - want) / want).abs() < 1e-9,
            "{name} shown as {shown:?}, not {want}"
        );
        assert_eq!(l["numeric"], json!(want), "{l}");
    }
}

#[tokio::test]
async fn more_tests_than_the_panel_lists_are_never_cut_silently() {
    // 35 different tests, one result each, a day apart: the panel lists the 30 most recent
    // and says that 35 exist.
    let all: Vec<Value> = (0..35)
        .map(|i| {
            let mut l = lab(
                &format!("test-{i:02}"),
                json!([cc(OBS_CATEGORY, "laboratory")]),
                &format!("{}-0", 10_000 + i),
                q(1.0 + i as f64, "mmol/L", "mmol/L"),
            );
            l["effectiveDateTime"] = json!(format!(
                "2025-{:02}-{:02}T08:00:00Z",
                i / 28 + 10,
                i % 28 + 1
            ));
            l
        })
        .collect();
    let p = panel(all).await;
    let shown = texts(&p, "labs", "test");
    assert_eq!(shown.len(), 30, "{}", p["labs"]);
    assert_eq!(shown[0], "test-34", "most recent first: {shown:?}");
    assert!(
        !shown.contains(&"test-04".to_owned()),
        "the oldest are the ones left out"
    );
    let limited = notes(&p, "labs", "limited");
    assert_eq!(limited.len(), 1, "{}", p["labs"]);
    assert_eq!(limited[0]["count"], json!(35));
    assert!(limited[0]["text"].as_str().unwrap().contains("35"));

    // 30 tests exactly: nothing left out, no note.
    let p = panel(
        (0..30)
            .map(|i| {
                lab(
                    &format!("t{i}"),
                    json!([cc(OBS_CATEGORY, "laboratory")]),
                    &format!("{}-1", 20_000 + i),
                    q(1.0, "mmol/L", "mmol/L"),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(texts(&p, "labs", "test").len(), 30);
    assert!(notes(&p, "labs", "limited").is_empty(), "{}", p["labs"]);
}

// --- property: random schema-valid allergies never vanish -----------------------------------

fn arb_coding() -> impl Strategy<Value = Value> {
    (
        prop::option::of(Just("http://snomed.info/sct")),
        prop::option::of("[0-9]{6,9}"),
        prop::option::of("[A-Za-z][A-Za-z ]{2,20}"),
        prop::bool::ANY,
    )
        .prop_map(|(system, code, display, ext)| {
            let mut c = json!({});
            if let Some(s) = system {
                c["system"] = json!(s);
            }
            if let Some(x) = code {
                c["code"] = json!(x);
            }
            if let Some(d) = display {
                c["display"] = json!(d);
            }
            if ext {
                c["extension"] = json!([{"url": "http://example.org/ext", "valueString": "x"}]);
            }
            c
        })
}

fn arb_extension() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"url": "http://example.org/a", "valueString": "note"})),
        Just(json!({"url": "http://example.org/b", "valueBoolean": true})),
        Just(json!({"url": "http://example.org/c", "valueCodeableConcept": {"text": "x"}})),
        Just(json!({"url": "http://example.org/d", "valueSomethingFromR6": {"a": [1, 2]}})),
        Just(
            json!({"url": "http://example.org/e", "extension": [{"url": "inner", "valueInteger": 3}]})
        ),
    ]
}

fn arb_onset() -> impl Strategy<Value = Option<(&'static str, Value)>> {
    prop::option::of(prop_oneof![
        Just(("onsetDateTime", json!("2004-05-06"))),
        Just(("onsetDateTime", json!("2004"))),
        Just(("onsetDateTime", json!("2004-05-06T07:08:09+02:00"))),
        Just(("onsetPeriod", json!({"start": "2004-05-06"}))),
        Just(("onsetPeriod", json!({"end": "2004-05-06"}))),
        Just((
            "onsetAge",
            json!({"value": 12, "unit": "a", "system": UCUM, "code": "a"})
        )),
        Just(("onsetString", json!("as a child"))),
        Just((
            "onsetRange",
            json!({"low": {"value": 1, "unit": "a"}, "high": {"value": 3, "unit": "a"}})
        )),
    ])
}

prop_compose! {
    /// A schema-valid AllergyIntolerance for ME, named "Amoxicillin" in `code.text` or a
    /// coding display when `code` is kept, in one of the statuses that must be listed.
    fn arb_allergy()(
        text_in in 0..3usize, // 0: code.text, 1: coding display only, 2: no code at all
        codings in prop::collection::vec(arb_coding(), 0..3),
        criticality in prop::option::of(prop_oneof![Just("low"), Just("high"), Just("unable-to-assess")]),
        kind in prop::option::of(prop_oneof![Just("allergy"), Just("intolerance")]),
        category in prop::option::of(prop::collection::vec(
            prop_oneof![Just("food"), Just("medication"), Just("environment"), Just("biologic")], 1..3)),
        clinical in prop::option::of(Just("active")),
        verification in prop::option::of(prop_oneof![Just("confirmed"), Just("unconfirmed")]),
        onset in arb_onset(),
        extensions in prop::collection::vec(arb_extension(), 0..3),
        primitive_ext in prop::bool::ANY,
        reactions in prop::collection::vec((
            prop::collection::vec(arb_coding(), 0..2),
            prop::option::of(prop_oneof![Just("mild"), Just("moderate"), Just("severe")]),
            prop::option::of(Just("2004-05-06")),
            prop::bool::ANY,
        ), 0..3),
        full_url_ref in prop::bool::ANY,
        recorded in prop::option::of(Just("2010-01-01")),
        note in prop::option::of(Just(json!([{"text": "seen in A&E"}]))),
        unknown_element in prop::bool::ANY,
    ) -> Value {
        let mut a = json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": me()});
        if full_url_ref {
            a["patient"] = json!({"reference": format!("Patient/{ME}"), "display": "Ada Quill"});
        }
        let mut codings = codings;
        match text_in {
            0 => a["code"] = json!({"text": "Amoxicillin", "coding": codings}),
            1 => {
                codings.push(json!({"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "code": "723", "display": "Amoxicillin"}));
                a["code"] = json!({"coding": codings});
            }
            _ => {}
        }
        if let Some(c) = criticality { a["criticality"] = json!(c); }
        if primitive_ext && a.get("criticality").is_some() {
            a["_criticality"] = json!({"extension": [{"url": "http://example.org/src", "valueString": "patient"}]});
        }
        if let Some(k) = kind { a["type"] = json!(k); }
        if let Some(c) = category { a["category"] = json!(c); }
        if let Some(c) = clinical { a["clinicalStatus"] = cc(CLINICAL_ALLERGY, c); }
        if let Some(v) = verification { a["verificationStatus"] = cc(VERIFY_ALLERGY, v); }
        if let Some((k, v)) = onset { a[k] = v; }
        if !extensions.is_empty() { a["extension"] = json!(extensions); }
        if !reactions.is_empty() {
            a["reaction"] = json!(reactions.into_iter().map(|(m, sev, onset, desc)| {
                let mut r = json!({"manifestation": [{"coding": m, "text": "Rash"}]});
                if let Some(s) = sev { r["severity"] = json!(s); }
                if let Some(o) = onset { r["onset"] = json!(o); }
                if desc { r["description"] = json!("itchy rash"); }
                r
            }).collect::<Vec<_>>());
        }
        if let Some(r) = recorded { a["recordedDate"] = json!(r); }
        if let Some(n) = note { a["note"] = n; }
        if unknown_element {
            // An element from a later FHIR version.
            a["participant"] = json!([{"actor": {"reference": "Practitioner/x"}}]);
        }
        a
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    #[test]
    fn a_schema_valid_allergy_never_vanishes(a in arb_allergy()) {
        let bundle = json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": patient()}, {"resource": a.clone()}]});
        let p = embedded_panel(&[bundle], ME);
        prop_assert_eq!(status(&p, "allergies"), "recorded", "{} -> {}", a, p["allergies"]);
        let listed = items(&p, "allergies");
        prop_assert_eq!(listed.len(), 1, "{} -> {}", a, p["allergies"]);
        let shown = &listed[0];
        // Named by what the record says: code.text, else a coding's display.
        if let Some(code) = a.get("code") {
            let want = code["text"].as_str().map(str::to_owned).unwrap_or_else(|| {
                code["coding"].as_array().unwrap().iter()
                    .find_map(|c| c["display"].as_str()).unwrap().to_owned()
            });
            prop_assert_eq!(&shown["substance"]["text"], &json!(want), "{} -> {}", a, shown);
        }
        if let Some(c) = a.get("criticality") {
            prop_assert_eq!(&shown["criticality"], c, "{} -> {}", a, shown);
        }
        if a.get("verificationStatus").is_some_and(|v| v.to_string().contains("unconfirmed")) {
            prop_assert_eq!(&shown["verification_status"], "unconfirmed");
        }
    }
}

/// A handful of the same variations through the FHIR client, so the property holds on both
/// paths (each case runs a real HTTP round trip, so not 256 of them).
#[tokio::test]
async fn schema_valid_allergy_variations_survive_the_fhir_client_too() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..12 {
        let a = arb_allergy().new_tree(&mut runner).unwrap().current();
        let p = panel(vec![a.clone()]).await;
        assert_eq!(items(&p, "allergies").len(), 1, "{a} -> {}", p["allergies"]);
    }
}
