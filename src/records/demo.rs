//! Synthetic demo patients, made up here for `serve --demo` and the bench.
//!
//! They are held in memory only, never written into a clinic's record store: made-up
//! patients must not end up next to real ones.
//!
//! Nothing in them is copied from any data set: names, values and dates come from
//! the small deterministic generator below. `demo-patient-1` has a high-criticality
//! penicillin allergy, active medications, problems, a year of vital signs and labs
//! with abnormal flags; `demo-patient-2` has no allergies or labs recorded (so the
//! panel shows "none recorded"); `demo-patient-3` is a child with immunizations.

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const UCUM: &str = "http://unitsofmeasure.org";
const OBS_CAT: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERP: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// A tiny deterministic generator (xorshift) so demo data is the same on every start.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f64 / 10_000.0
    }
    /// `base` ± `spread`, rounded to `dp` decimals.
    fn around(&mut self, base: f64, spread: f64, dp: i32) -> f64 {
        let v = base + (self.next() * 2.0 - 1.0) * spread;
        let f = 10f64.powi(dp);
        (v * f).round() / f
    }
}

/// Builds one patient's transaction bundle.
struct PatientBundle {
    id: String,
    entries: Vec<Value>,
    n: usize,
}

impl PatientBundle {
    fn new(patient: Value) -> Self {
        let id = patient["id"].as_str().expect("demo patient id").to_owned();
        let mut b = Self {
            id,
            entries: Vec::new(),
            n: 0,
        };
        b.push(patient);
        b
    }

    fn subject(&self) -> Value {
        json!({"reference": format!("Patient/{}", self.id)})
    }

    fn push(&mut self, mut r: Value) {
        let rtype = r["resourceType"].as_str().expect("resourceType").to_owned();
        if r.get("id").is_none() {
            self.n += 1;
            r["id"] = json!(format!("{}-{}-{}", self.id, rtype.to_lowercase(), self.n));
        }
        let id = r["id"].as_str().expect("id").to_owned();
        self.entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", uuid_like(&id)),
            "resource": r,
            "request": {"method": "PUT", "url": format!("{rtype}/{id}")},
        }));
    }

    fn vital(&mut self, at: &str, code: &str, display: &str, value: f64, unit: &str) {
        let s = self.subject();
        self.push(json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "subject": s, "effectiveDateTime": at,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        }));
    }

    fn blood_pressure(&mut self, at: &str, sys: f64, dia: f64) {
        let s = self.subject();
        let comp = |code: &str, display: &str, v: f64| {
            json!({"code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                   "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}})
        };
        self.push(json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"}], "text": "Blood pressure"},
            "subject": s, "effectiveDateTime": at,
            "component": [comp("8480-6", "Systolic blood pressure", sys), comp("8462-4", "Diastolic blood pressure", dia)],
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn lab(
        &mut self,
        at: &str,
        code: &str,
        display: &str,
        value: f64,
        unit: &str,
        range: (f64, f64),
        flag: Option<&str>,
    ) {
        let s = self.subject();
        let mut o = json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory", "display": "Laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "subject": s, "effectiveDateTime": at,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            "referenceRange": [{"low": {"value": range.0, "unit": unit, "system": UCUM, "code": unit},
                                "high": {"value": range.1, "unit": unit, "system": UCUM, "code": unit}}],
        });
        if let Some(f) = flag {
            o["interpretation"] = json!([{"coding": [{"system": INTERP, "code": f}]}]);
        }
        self.push(o);
    }

    fn encounter(&mut self, at: &str, reason: &str) {
        let s = self.subject();
        self.push(json!({
            "resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [{"coding": [{"system": SNOMED, "code": "185349003", "display": "Encounter for check up"}], "text": "Check-up"}],
            "subject": s, "period": {"start": at, "end": at},
            "reasonCode": [{"text": reason}],
        }));
    }

    fn finish(self) -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": self.entries})
    }
}

/// A stable UUID-shaped string from an id (so bundles are byte-identical across starts).
fn uuid_like(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(id.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn at(d: NaiveDate) -> String {
    format!("{d}T09:30:00+00:00")
}

/// Base date of the demo series: visits are at or before it.
fn base_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date")
}

/// An adult with hypertension and type 2 diabetes, `visits` visits a month apart.
/// `demo-patient-1` is this with 12 visits; the bench uses hundreds.
pub fn chronic_patient(id: &str, visits: usize, seed: u64) -> Value {
    let mut rng = Noise(seed | 1);
    let mut b = PatientBundle::new(json!({
        "resourceType": "Patient", "id": id,
        "name": [{"use": "official", "family": "Testperson", "given": ["Avery", "Demo"]}],
        "gender": "female", "birthDate": "1968-04-17",
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en", "display": "English"}]}},
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es", "display": "Spanish"}], "text": "Spanish"}, "preferred": true}
        ],
    }));
    let s = b.subject();
    b.push(json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
        "type": "allergy", "category": ["medication"], "criticality": "high",
        "code": {"coding": [{"system": SNOMED, "code": "764146007", "display": "Penicillin"}], "text": "Penicillin"},
        "patient": s, "recordedDate": "2009-03-02",
        "reaction": [{"manifestation": [{"coding": [{"system": SNOMED, "code": "39579001", "display": "Anaphylaxis"}], "text": "Anaphylaxis"}], "severity": "severe"}],
    }));
    b.push(json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "type": "intolerance", "category": ["food"], "criticality": "low",
        "code": {"coding": [{"system": SNOMED, "code": "782555009", "display": "Lactose"}], "text": "Lactose"},
        "patient": s,
        "reaction": [{"manifestation": [{"text": "Bloating"}], "severity": "mild"}],
    }));
    b.push(json!({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "314076", "display": "lisinopril 10 MG Oral Tablet"}]},
        "subject": s, "authoredOn": "2021-06-01",
        "dosageInstruction": [{"text": "10 mg by mouth once daily"}],
    }));
    b.push(json!({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "met",
                        "code": {"coding": [{"system": RXNORM, "code": "861007", "display": "metformin hydrochloride 500 MG Oral Tablet"}]}}],
        "medicationReference": {"reference": "#met"},
        "subject": s, "authoredOn": "2022-02-14",
        "dosageInstruction": [{"text": "500 mg twice daily with meals"}],
    }));
    b.push(json!({
        "resourceType": "MedicationStatement", "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "617312", "display": "atorvastatin 20 MG Oral Tablet"}], "text": "Atorvastatin 20 mg"},
        "subject": s, "effectivePeriod": {"start": "2023-09-10"},
        "dosage": [{"text": "20 mg at night"}],
    }));
    b.push(json!({
        "resourceType": "MedicationRequest", "status": "completed", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "197454", "display": "cephalexin 500 MG Oral Capsule"}]},
        "subject": s, "authoredOn": "2024-11-03",
    }));
    for (code, display, onset, status) in [
        ("59621000", "Essential hypertension", "2019-05-20", "active"),
        (
            "44054006",
            "Type 2 diabetes mellitus",
            "2022-02-14",
            "active",
        ),
        ("10509002", "Acute bronchitis", "2024-11-03", "resolved"),
    ] {
        b.push(json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
            "subject": s, "onsetDateTime": onset,
        }));
    }
    for (code, display, date) in [
        (
            "140",
            "Influenza, seasonal, injectable, preservative free",
            "2025-10-12",
        ),
        ("113", "Td (adult) preservative free", "2020-03-18"),
    ] {
        b.push(json!({
            "resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": code, "display": display}]},
            "patient": s, "occurrenceDateTime": date,
        }));
    }
    for v in 0..visits {
        let d = base_date() - Duration::days(30 * (visits - 1 - v) as i64);
        let t = at(d);
        b.encounter(&t, "Chronic disease follow-up");
        b.blood_pressure(&t, rng.around(142.0, 12.0, 0), rng.around(88.0, 8.0, 0));
        b.vital(
            &t,
            "8867-4",
            "Heart rate",
            rng.around(76.0, 10.0, 0),
            "/min",
        );
        b.vital(
            &t,
            "8310-5",
            "Body temperature",
            rng.around(36.8, 0.4, 1),
            "Cel",
        );
        b.vital(
            &t,
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            rng.around(97.0, 2.0, 0),
            "%",
        );
        let kg = rng.around(84.0 - v as f64 * 0.2, 1.5, 1);
        b.vital(&t, "29463-7", "Body weight", kg, "kg");
        b.vital(
            &t,
            "39156-5",
            "Body mass index (BMI) [Ratio]",
            (kg / (1.66 * 1.66) * 10.0).round() / 10.0,
            "kg/m2",
        );
        if v % 3 == 2 || v + 1 == visits {
            let a1c = rng.around(7.6, 0.5, 1);
            b.lab(
                &t,
                "4548-4",
                "Hemoglobin A1c/Hemoglobin.total in Blood",
                a1c,
                "%",
                (4.0, 5.6),
                Some("H"),
            );
            // No interpretation: the panel computes the flag from the range.
            b.lab(
                &t,
                "2345-7",
                "Glucose [Mass/volume] in Serum or Plasma",
                rng.around(150.0, 20.0, 0),
                "mg/dL",
                (70.0, 99.0),
                None,
            );
            b.lab(
                &t,
                "2160-0",
                "Creatinine [Mass/volume] in Serum or Plasma",
                rng.around(0.9, 0.15, 2),
                "mg/dL",
                (0.5, 1.1),
                None,
            );
            let k = rng.around(3.3, 0.1, 1);
            b.lab(
                &t,
                "2823-3",
                "Potassium [Moles/volume] in Serum or Plasma",
                k,
                "mmol/L",
                (3.5, 5.1),
                Some("L"),
            );
        }
    }
    b.finish()
}

/// A young adult with asthma: no allergies, no labs recorded.
fn asthma_patient() -> Value {
    let mut rng = Noise(7);
    let mut b = PatientBundle::new(json!({
        "resourceType": "Patient", "id": "demo-patient-2",
        "name": [{"use": "official", "family": "Samplewood", "given": ["Jordan"]}],
        "gender": "male", "birthDate": "1999-11-30",
    }));
    let s = b.subject();
    b.push(json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": "195967001", "display": "Asthma"}], "text": "Asthma"},
        "subject": s, "onsetDateTime": "2008",
    }));
    b.push(json!({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "745679", "display": "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"}]},
        "subject": s, "authoredOn": "2025-03-01",
        "dosageInstruction": [{"text": "2 puffs every 4-6 hours as needed"}],
    }));
    for v in 0..3 {
        let t = at(base_date() - Duration::days(90 * (2 - v)));
        b.encounter(&t, "Asthma review");
        b.vital(&t, "8867-4", "Heart rate", rng.around(68.0, 6.0, 0), "/min");
        b.vital(
            &t,
            "59408-5",
            "Oxygen saturation",
            rng.around(98.0, 1.0, 0),
            "%",
        );
    }
    b.finish()
}

/// A child with routine immunizations and a weight series.
fn child_patient() -> Value {
    let mut rng = Noise(11);
    let mut b = PatientBundle::new(json!({
        "resourceType": "Patient", "id": "demo-patient-3",
        "name": [{"use": "official", "family": "Exampleton", "given": ["Robin"]}],
        "gender": "female", "birthDate": "2021-07-09",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr", "display": "French"}]}, "preferred": true}],
    }));
    let s = b.subject();
    for (code, display, date) in [
        ("20", "DTaP", "2021-09-10"),
        ("10", "IPV", "2021-09-10"),
        ("03", "MMR", "2022-07-15"),
        ("21", "varicella", "2022-07-15"),
    ] {
        b.push(json!({
            "resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": code, "display": display}]},
            "patient": s, "occurrenceDateTime": date,
        }));
    }
    for v in 0..6 {
        let d = base_date() - Duration::days(120 * (5 - v));
        let t = at(d);
        b.encounter(&t, "Well child visit");
        b.vital(
            &t,
            "29463-7",
            "Body weight",
            rng.around(12.0 + v as f64 * 0.8, 0.3, 1),
            "kg",
        );
    }
    b.finish()
}

/// The demo patients: (name, transaction bundle).
pub fn demo_patients() -> Vec<(&'static str, Value)> {
    vec![
        (
            "demo-patient-1.json",
            chronic_patient("demo-patient-1", 12, 42),
        ),
        ("demo-patient-2.json", asthma_patient()),
        ("demo-patient-3.json", child_patient()),
    ]
}
