//! Helpers shared by the records tests: where the fetched FHIR fixtures are.
#![allow(dead_code)]

use chrono::NaiveDate;
use std::path::PathBuf;

/// The date panels are computed at in tests (ages are checked against it).
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
}

/// `$var`, which must name something that exists (`inside`, relative to it, if given).
pub fn env_file(var: &str, inside: &str) -> PathBuf {
    let p = env_path(var);
    let wanted = if inside.is_empty() {
        p.clone()
    } else {
        p.join(inside)
    };
    assert!(
        wanted.exists(),
        "{} missing: run scripts/fetch-fhir-fixtures",
        wanted.display()
    );
    p
}

pub fn env_path(var: &str) -> PathBuf {
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
    env_file("EXAMROOM_FHIR_FIXTURES", "r4-examples/package")
}

pub fn r4_examples() -> PathBuf {
    fixtures().join("r4-examples/package")
}

pub fn ips_examples() -> PathBuf {
    fixtures().join("ips/package/example")
}

/// The `.json` files of a fixture folder, sorted; fails when there are none.
fn json_files_in(folder: &str, what: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(folder);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-fhir-fixtures", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(
        !v.is_empty(),
        "no {what} patients: run scripts/fetch-fhir-fixtures"
    );
    v
}

pub fn synthea_bundles() -> Vec<PathBuf> {
    json_files_in("synthea/fhir", "Synthea")
}

/// `$EXAMROOM_SEKMET`, the sekmet binary.
pub fn sekmet() -> PathBuf {
    env_file("EXAMROOM_SEKMET", "")
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

/// The resource types the panel reads (test servers are loaded with these only: claims,
/// procedures, documents… would only make loading slower).
#[allow(unused_imports)] // not every binary that includes the kit reads fixtures
pub use examroom::records::import::PANEL_TYPES;

pub mod scripted;
pub mod servers;

/// The carebundle patients (transaction bundles, resources without ids, urn:uuid references).
pub fn carebundle_bundles() -> Vec<PathBuf> {
    json_files_in("carebundle", "carebundle")
}

/// The panel as the JSON the API serves (what the tests assert on).
pub fn json_of(summary: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(summary).unwrap()
}

/// The panel without what legitimately differs between two reads of the same record:
/// when it was fetched, whether it came from the cache, and (with `drop_id`) the patient id
/// a server assigned.
pub fn comparable(mut panel: serde_json::Value, drop_id: bool) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                o.remove("fetched_at");
                o.remove("cached");
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut panel);
    if drop_id && let Some(o) = panel.as_object_mut() {
        o.remove("patient_id");
    }
    panel
}

/// The section names of the panel, in contract order.
pub const SECTIONS: [&str; 7] = [
    "allergies",
    "medications",
    "problems",
    "vital_signs",
    "labs",
    "immunizations",
    "encounters",
];

pub fn status(panel: &serde_json::Value, section: &str) -> String {
    panel[section]["status"].as_str().unwrap_or("").to_owned()
}

pub fn items<'a>(panel: &'a serde_json::Value, section: &str) -> &'a [serde_json::Value] {
    panel[section]["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The notes of a section with this code.
pub fn notes<'a>(
    panel: &'a serde_json::Value,
    section: &str,
    code: &str,
) -> Vec<&'a serde_json::Value> {
    panel[section]["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["code"] == code)
        .collect()
}

/// A FHIR client for tests: ES384 key under `key_dir` (made on first use), client id
/// `examroom`, 20 s timeout, one quick retry. `tune` adjusts the rest.
pub async fn fhir_client(
    base: &str,
    token_url: &str,
    key_dir: &std::path::Path,
    tune: impl FnOnce(&mut examroom::records::FhirConfig),
) -> examroom::records::FhirSource {
    let mut cfg = examroom::records::FhirConfig::new(
        base,
        token_url,
        "examroom",
        examroom::records::SigningAlg::Es384,
        key_dir.to_owned(),
    );
    cfg.timeout = std::time::Duration::from_secs(20);
    cfg.retries = 1;
    cfg.backoff = std::time::Duration::from_millis(20);
    tune(&mut cfg);
    examroom::records::FhirSource::new(cfg).await.unwrap()
}

/// The JWKS of the test client key under `key_dir` (made on first use).
pub fn client_jwks(key_dir: &std::path::Path) -> serde_json::Value {
    examroom::records::ClientKey::load_or_create(key_dir, examroom::records::SigningAlg::Es384)
        .unwrap()
        .jwks()
}

/// The panel the embedded store gives for these files' patient `id`, as JSON.
pub fn embedded_panel(files: &[serde_json::Value], id: &str) -> serde_json::Value {
    let mut store = examroom::records::EmbeddedSource::default();
    for f in files {
        store.add_json(f.clone());
    }
    let id = examroom::ids::PatientRef::parse(id).unwrap();
    json_of(&store.summary_at(&id, as_of()).unwrap())
}

/// A FHIR panel as JSON; panics when the whole panel failed.
pub async fn fhir_panel(src: &examroom::records::FhirSource, id: &str) -> serde_json::Value {
    let id = examroom::ids::PatientRef::parse(id).unwrap();
    match src.summary_at(&id, as_of()).await {
        Ok(p) => json_of(&p),
        Err(e) => panic!("the whole panel failed: {e}"),
    }
}

/// Where two JSON values differ: up to 12 paths with both sides, short enough for a test
/// message (whole panels run to hundreds of kB).
pub fn json_diff(got: &serde_json::Value, want: &serde_json::Value) -> String {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::*;
        if out.len() >= 12 || a == b {
            return;
        }
        match (a, b) {
            (Object(x), Object(y)) => {
                let mut keys: Vec<&std::string::String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let n = serde_json::Value::Null;
                    walk(
                        &format!("{path}.{k}"),
                        x.get(k).unwrap_or(&n),
                        y.get(k).unwrap_or(&n),
                        out,
                    );
                }
            }
            (Array(x), Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), p, q, out);
                }
            }
            _ => {
                let cut = |v: &serde_json::Value| {
                    let s = v.to_string();
                    if s.len() > 300 {
                        format!("{}… ({} chars)", &s[..s.floor_char_boundary(300)], s.len())
                    } else {
                        s
                    }
                };
                out.push(format!(
                    "  {path}:\n    got  {}\n    want {}",
                    cut(a),
                    cut(b)
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk("", got, want, &mut out);
    out.join("\n")
}
