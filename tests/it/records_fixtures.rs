//! The panel against real FHIR that nobody here wrote: the HL7 R4 examples, the IPS
//! example bundles and Synthea patients (fetched by `scripts/fetch-fhir-fixtures`).

use crate::kit::records::*;
use examroom::ids::PatientRef;
use examroom::records::model::Resource;
use examroom::records::summary::{VitalKind, assemble};
use examroom::records::{EmbeddedSource, PatientRecord};

const SHOWN: &[&str] = PANEL_TYPES;

#[test]
fn every_r4_example_of_a_shown_type_parses() {
    let mut counts = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(r4_examples()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rtype) = SHOWN.iter().find(|t| name.starts_with(&format!("{t}-"))) else {
            continue;
        };
        let r = Resource::from_slice(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!matches!(r, Resource::Other(_)), "{name} typed as Other");
        *counts.entry(*rtype).or_insert(0) += 1;
    }
    for t in SHOWN {
        assert!(
            counts.get(t).copied().unwrap_or(0) > 0,
            "no {t} examples seen"
        );
    }
    assert!(counts["Observation"] > 50, "{counts:?}");
}

#[test]
fn the_r4_example_patient_has_a_high_criticality_cashew_allergy_and_a_low_blood_pressure() {
    let dir = r4_examples();
    let mut rec = PatientRecord::default();
    for f in [
        "Patient-example.json",
        "AllergyIntolerance-example.json",
        "Observation-blood-pressure.json",
    ] {
        rec.add(
            Resource::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap(),
            None,
        );
    }
    let s = assemble("example", &rec, as_of(), chrono::Utc::now());
    assert_eq!(s.demographics.name.as_deref(), Some("Peter James Chalmers"));
    assert_eq!(s.demographics.birth_date.as_deref(), Some("1974-12-25"));
    assert_eq!(s.demographics.age, Some(51));
    assert_eq!(s.demographics.sex.as_deref(), Some("male"));
    let allergy = &s.allergies.items()[0];
    assert_eq!(allergy.substance.text, "Cashew nuts");
    assert_eq!(allergy.criticality.as_deref(), Some("high"));
    assert!(
        allergy
            .reactions
            .iter()
            .any(|r| r.contains("Anaphylactic") || r.contains("anaphyla")),
        "{:?}",
        allergy.reactions
    );
    let bp = &s.vital_signs.items()[0];
    assert_eq!(bp.kind, VitalKind::BloodPressure);
    assert_eq!((bp.latest.value, bp.latest.diastolic), (107.0, Some(60.0)));
    assert!(!s.medications.is_recorded());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["medications"]["status"], "none_recorded");
    assert_eq!(json["allergies"]["status"], "recorded");
}

fn ips_store(file: &str) -> (EmbeddedSource, String) {
    let b = read_json(&ips_examples().join(file));
    let id = bundle_patient_id(&b);
    let mut store = EmbeddedSource::default();
    store.add_json(b);
    (store, id)
}

#[test]
fn every_ips_example_bundle_gives_a_summary_with_the_sections_it_has() {
    let mut seen = 0;
    for e in std::fs::read_dir(ips_examples()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("Bundle-") {
            continue;
        }
        seen += 1;
        let b = read_json(&p);
        let has = |t: &str| {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["resource"]["resourceType"] == t)
        };
        let (store, id) = ips_store(&name);
        assert_eq!(store.skipped(), 0, "{name}");
        let s = store
            .summary_at(&PatientRef::parse(&id).unwrap(), as_of())
            .unwrap();
        assert!(s.demographics.name.is_some(), "{name}");
        assert_eq!(
            s.allergies.is_recorded(),
            has("AllergyIntolerance"),
            "{name}"
        );
        assert_eq!(
            s.medications.is_recorded(),
            has("MedicationStatement") || has("MedicationRequest"),
            "{name}"
        );
        assert_eq!(s.problems.is_recorded(), has("Condition"), "{name}");
        assert_eq!(s.immunizations.is_recorded(), has("Immunization"), "{name}");
        for m in s.medications.items() {
            assert_ne!(
                m.medication.text, "(not named in the record)",
                "{name}: unresolved medication"
            );
        }
    }
    assert_eq!(seen, 5);
}

#[test]
fn ips_bundle_01_shows_penicillin_first_and_resolves_referenced_medications() {
    let (store, id) = ips_store("Bundle-IPS-examples-Bundle-01.json");
    let s = store
        .summary_at(&PatientRef::parse(&id).unwrap(), as_of())
        .unwrap();
    let first = &s.allergies.items()[0];
    assert_eq!(first.criticality.as_deref(), Some("high"));
    assert!(
        first.substance.text.to_lowercase().contains("penicillin"),
        "{first:?}"
    );
    assert_eq!(s.medications.items().len(), 2);
    assert!(
        s.medications
            .items()
            .iter()
            .all(|m| m.medication.code.is_some())
    );
    assert!(s.labs.is_recorded());
}

#[test]
fn synthea_patients_have_long_vital_trends_and_lab_values() {
    for path in synthea_bundles() {
        let b = read_json(&path);
        let id = bundle_patient_id(&b);
        let mut store = EmbeddedSource::default();
        store.add_json(b);
        assert_eq!(store.skipped(), 0);
        let s = store
            .summary_at(&PatientRef::parse(&id).unwrap(), as_of())
            .unwrap();
        assert!(s.demographics.age.is_some());
        let vitals = s.vital_signs.items();
        let hr = vitals
            .iter()
            .find(|v| v.kind == VitalKind::HeartRate)
            .expect("heart rate");
        assert!(hr.count >= 10, "heart rate points: {}", hr.count);
        assert!(hr.trend.len() >= 10);
        assert!(
            hr.trend
                .windows(2)
                .all(|w| w[0].at <= w[1].at || w[0].at.len() != w[1].at.len())
        );
        let bp = vitals
            .iter()
            .find(|v| v.kind == VitalKind::BloodPressure)
            .expect("blood pressure");
        assert!(bp.latest.diastolic.is_some());
        assert!(
            s.labs
                .items()
                .iter()
                .filter(|l| l.numeric.is_some())
                .count()
                >= 3
        );
        assert!(s.encounters.items().len() <= examroom::records::summary::MAX_ENCOUNTERS);
    }
}
