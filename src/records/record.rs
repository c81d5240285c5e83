//! One patient's resources as read from a store or server, before summarising.
//!
//! Both sources fill a [`PatientRecord`] and hand it to [`crate::records::summary`],
//! so the panel cannot differ by source except in what the source holds.

use super::model::*;
use serde_json::Value;
use std::collections::HashMap;

/// The resources of one patient, plus the `Medication`s their orders point at.
#[derive(Debug, Clone, Default)]
pub struct PatientRecord {
    pub patient: Option<Patient>,
    pub allergies: Vec<AllergyIntolerance>,
    pub medication_requests: Vec<MedicationRequest>,
    pub medication_statements: Vec<MedicationStatement>,
    pub conditions: Vec<Condition>,
    pub observations: Vec<Observation>,
    pub immunizations: Vec<Immunization>,
    pub encounters: Vec<Encounter>,
    /// Referenced medications by every name a reference may use (`Medication/id`,
    /// a bundle's `fullUrl`).
    pub medications: HashMap<String, Medication>,
}

impl PatientRecord {
    /// Add one resource; types the panel does not show are dropped.
    pub fn add(&mut self, r: Resource, full_url: Option<&str>) {
        match r {
            Resource::Patient(p) => self.patient = Some(p),
            Resource::AllergyIntolerance(a) => self.allergies.push(a),
            Resource::MedicationRequest(m) => self.medication_requests.push(m),
            Resource::MedicationStatement(m) => self.medication_statements.push(m),
            Resource::Medication(m) => self.add_medication(m, full_url),
            Resource::Condition(c) => self.conditions.push(c),
            Resource::Observation(o) => self.observations.push(*o),
            Resource::Immunization(i) => self.immunizations.push(i),
            Resource::Encounter(e) => self.encounters.push(e),
            Resource::Bundle(_) | Resource::Other(_) => {}
        }
    }

    pub fn add_medication(&mut self, m: Medication, full_url: Option<&str>) {
        if let Some(url) = full_url {
            self.medications.insert(url.to_owned(), m.clone());
        }
        if let Some(id) = &m.id {
            self.medications.insert(format!("Medication/{id}"), m);
        }
    }

    /// Resolve a medication reference: `#contained`, `Medication/id`, an absolute URL
    /// ending in `Medication/id`, or a bundle `fullUrl`.
    pub fn medication<'a>(&'a self, reference: &str, contained: &'a [Value]) -> Option<Medication> {
        if let Some(local) = reference.strip_prefix('#') {
            return contained
                .iter()
                .find(|c| {
                    c.get("resourceType").and_then(Value::as_str) == Some("Medication")
                        && c.get("id").and_then(Value::as_str) == Some(local)
                })
                .and_then(|c| serde_json::from_value(c.clone()).ok());
        }
        self.medications
            .get(reference)
            .or_else(|| {
                relative_ref(reference).and_then(|(t, id)| {
                    (t == "Medication")
                        .then(|| self.medications.get(&format!("Medication/{id}")))
                        .flatten()
                })
            })
            .cloned()
    }
}

/// `Type/id` from a relative or absolute literal reference (a version suffix
/// `/_history/n` is dropped). `None` for `urn:` and contained references.
pub fn relative_ref(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with("urn:") || reference.starts_with('#') {
        return None;
    }
    let r = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = r.rsplitn(3, '/');
    let id = parts.next()?;
    let rtype = parts.next()?;
    (!id.is_empty() && rtype.starts_with(|c: char| c.is_ascii_uppercase())).then_some((rtype, id))
}
