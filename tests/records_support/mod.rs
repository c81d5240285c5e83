//! Helpers shared by the records tests: where the fetched FHIR fixtures are.
#![allow(dead_code)]

use chrono::NaiveDate;
use std::path::PathBuf;

/// The date panels are computed at in tests (ages are checked against it).
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
}

fn env_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!(
            "{var} is not set: run `scripts/fetch-fhir-fixtures` and export the variables it prints \
             (or `eval \"$(scripts/fetch-fhir-fixtures --env)\"`)"
        ),
    }
}

/// `$EXAMROOM_FHIR_FIXTURES`, the `.cache/fhir` folder the fetch script fills.
pub fn fixtures() -> PathBuf {
    let p = env_path("EXAMROOM_FHIR_FIXTURES");
    assert!(
        p.join("r4-examples/package").is_dir(),
        "{} has no r4-examples: run scripts/fetch-fhir-fixtures",
        p.display()
    );
    p
}

pub fn r4_examples() -> PathBuf {
    fixtures().join("r4-examples/package")
}

pub fn ips_examples() -> PathBuf {
    fixtures().join("ips/package/example")
}

pub fn synthea_bundles() -> Vec<PathBuf> {
    let dir = fixtures().join("synthea/fhir");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-fhir-fixtures", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(
        !v.is_empty(),
        "no Synthea patients: run scripts/fetch-fhir-fixtures"
    );
    v
}

/// `$EXAMROOM_SEKMET`, the sekmet binary.
pub fn sekmet() -> PathBuf {
    let p = env_path("EXAMROOM_SEKMET");
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-fhir-fixtures",
        p.display()
    );
    p
}

pub fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The patient id of a bundle's (first) Patient entry.
pub fn bundle_patient_id(b: &serde_json::Value) -> String {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .expect("bundle has a Patient")
}
