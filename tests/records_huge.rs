//! A huge search answer is refused, not read into memory (issue 15, rule 9: one 60 MB
//! answer once took the server to 677 MB RSS). Its own test binary, so the memory it
//! measures is this test's alone.

#[path = "it/kit/mod.rs"]
mod kit;

use crate::kit::records::scripted::{Behaviour, Script, ScriptedFhir};
use crate::kit::records::*;
use serde_json::json;

/// Peak resident memory of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib / 1024.0
}

/// Reset the peak to the current resident size (Linux ≥ 4.0).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_search_answer_is_refused_without_blowing_up_memory() {
    let me = "pat-1";
    let obs = json!({"resourceType": "Observation", "id": "hr", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": format!("Patient/{me}")},
        "effectiveDateTime": "2025-01-01T00:00:00Z",
        "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
    let one = serde_json::to_vec(&json!({"resource": obs})).unwrap().len() + 1;
    let entries = 64 * 1024 * 1024 / one; // a 64 MiB answer
    let resources = vec![
        json!({"resourceType": "Patient", "id": me, "name": [{"family": "Quill"}]}),
        json!({"resourceType": "AllergyIntolerance", "id": "a1", "code": {"text": "Penicillin"},
               "criticality": "high", "patient": {"reference": format!("Patient/{me}")}}),
    ];
    let dir = tempfile::tempdir().unwrap();
    for length in [true, false] {
        let server = ScriptedFhir::start(resources.clone(), Behaviour::default()).await;
        let src = fhir_client(&server.base, &server.token_url, dir.path(), |_| {}).await;
        // Warm up the client (token, connection pool) before measuring.
        let _ = fhir_panel(&src, me).await;
        server.script(
            "Observation",
            Script::Huge {
                resource: obs.clone(),
                entries,
                length,
            },
        );
        reset_peak();
        let before = peak_rss_mib();
        let p = fhir_panel(&src, me).await;
        let grew = peak_rss_mib() - before;
        let case = if length {
            "with Content-Length"
        } else {
            "chunked"
        };
        eprintln!("{case}: 64 MiB answer, peak memory grew {grew:.1} MiB");
        for s in ["vital_signs", "labs"] {
            assert_eq!(status(&p, s), "unavailable", "{case}: {s}: {}", p[s]);
            assert_eq!(p[s]["error"]["code"], "too_large", "{case}: {s}: {}", p[s]);
            assert_eq!(p[s]["items"], json!([]));
        }
        assert_eq!(
            status(&p, "allergies"),
            "recorded",
            "{case}: the rest loads"
        );
        assert!(
            grew < 40.0,
            "{case}: a 64 MiB answer grew peak memory by {grew:.0} MiB"
        );
    }
}
