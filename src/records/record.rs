//! One patient's resources as read from a store or server, before summarising, and
//! for each part of the panel how reading it went ([`PartStatus`]).
//!
//! Both sources fill a [`PatientRecord`] and hand it to [`crate::records::summary`],
//! so the panel cannot differ by source except in what the source holds and how
//! reading it went.

use super::model::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A part of the panel, read by one or more requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Demographics,
    Allergies,
    Medications,
    Problems,
    VitalSigns,
    Labs,
    Immunizations,
    Encounters,
}

impl Part {
    pub const ALL: [Part; 8] = [
        Part::Demographics,
        Part::Allergies,
        Part::Medications,
        Part::Problems,
        Part::VitalSigns,
        Part::Labs,
        Part::Immunizations,
        Part::Encounters,
    ];

    /// As named in the panel JSON and in logs.
    pub fn key(self) -> &'static str {
        match self {
            Part::Demographics => "demographics",
            Part::Allergies => "allergies",
            Part::Medications => "medications",
            Part::Problems => "problems",
            Part::VitalSigns => "vital_signs",
            Part::Labs => "labs",
            Part::Immunizations => "immunizations",
            Part::Encounters => "encounters",
        }
    }

    /// As a physician reads it at the start of a sentence.
    pub fn title(self) -> &'static str {
        match self {
            Part::Demographics => "Patient details",
            Part::Allergies => "Allergies",
            Part::Medications => "Medications",
            Part::Problems => "Problems",
            Part::VitalSigns => "Vital signs",
            Part::Labs => "Lab results",
            Part::Immunizations => "Immunizations",
            Part::Encounters => "Encounters",
        }
    }

    /// One item of this part, singular and plural, for notes.
    pub fn noun(self, n: usize) -> &'static str {
        match (self, n == 1) {
            (Part::Demographics, _) => "patient resource",
            (Part::Allergies, true) => "allergy",
            (Part::Allergies, false) => "allergies",
            (Part::Medications, true) => "medication",
            (Part::Medications, false) => "medications",
            (Part::Problems, true) => "problem",
            (Part::Problems, false) => "problems",
            (Part::VitalSigns, true) => "vital sign",
            (Part::VitalSigns, false) => "vital signs",
            (Part::Labs, true) => "lab result",
            (Part::Labs, false) => "lab results",
            (Part::Immunizations, true) => "immunization",
            (Part::Immunizations, false) => "immunizations",
            (Part::Encounters, true) => "encounter",
            (Part::Encounters, false) => "encounters",
        }
    }

    /// Which part a resource type belongs to (observations: both vitals and labs
    /// are decided by the summary, this names the search it came from).
    pub fn of_type(rtype: &str) -> Option<Part> {
        Some(match rtype {
            "Patient" => Part::Demographics,
            "AllergyIntolerance" => Part::Allergies,
            "MedicationRequest" | "MedicationStatement" => Part::Medications,
            "Condition" => Part::Problems,
            "Observation" => Part::Labs,
            "Immunization" => Part::Immunizations,
            "Encounter" => Part::Encounters,
            _ => return None,
        })
    }
}

/// Why a part could not be read. The message names no patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartError {
    /// `bad_answer` | `timeout` | `unavailable` | `unauthorized` | `too_large`.
    pub code: &'static str,
    pub cause: String,
}

/// How reading one part went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartStatus {
    /// When the part was read (the last request of it answered).
    pub fetched_at: Option<DateTime<Utc>>,
    /// Set when the part could not be read; its resources are then not shown.
    pub error: Option<PartError>,
    /// Resources that could not be read at all.
    pub unreadable: usize,
    /// Resources naming another patient, or none: dropped.
    pub wrong_patient: usize,
    /// The bound on resources was hit: more exist than the number read.
    pub truncated: Option<usize>,
}

impl PartStatus {
    /// Read without trouble at `at`.
    pub fn read_at(at: DateTime<Utc>) -> Self {
        Self {
            fetched_at: Some(at),
            ..Self::default()
        }
    }

    /// Could not be read, tried just now.
    pub fn failed(e: &super::error::RecordsError) -> Self {
        use super::error::RecordsError as E;
        let code = match e {
            E::Timeout(_) => "timeout",
            E::Unauthorized { .. } => "unauthorized",
            E::BadData(_) => "bad_answer",
            E::TooLarge(_) => "too_large",
            E::NotFound | E::Unavailable { .. } | E::Config(_) => "unavailable",
        };
        let cause = match e {
            E::NotFound => "the record server answered 404 Not Found".to_owned(),
            other => other.to_string(),
        };
        Self {
            fetched_at: Some(Utc::now()),
            error: Some(PartError { code, cause }),
            ..Self::default()
        }
    }

    /// Fold another request's outcome for the same part into this one.
    pub fn merge(&mut self, other: PartStatus) {
        self.fetched_at = self.fetched_at.max(other.fetched_at);
        if self.error.is_none() {
            self.error = other.error;
        }
        self.unreadable += other.unreadable;
        self.wrong_patient += other.wrong_patient;
        self.truncated = match (self.truncated, other.truncated) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

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
    /// examroom's visit notes in the record (issue 22), shown with their Encounter.
    pub visit_notes: Vec<super::visit_note::NoteDoc>,
    /// The visit notes could not be read (the encounters themselves were).
    pub visit_notes_failed: bool,
    /// Referenced medications by every name a reference may use (`Medication/id`,
    /// a bundle's `fullUrl`).
    pub medications: HashMap<String, Medication>,
    /// How reading each part went; a part missing here was read without trouble.
    pub status: BTreeMap<Part, PartStatus>,
    /// (type, id) of resources added, so one arriving twice (two searches, two
    /// files) is shown once.
    seen: HashSet<(String, String)>,
}

impl PatientRecord {
    /// Add one resource; types the panel does not show are dropped, and a resource
    /// already added (same type and id) is not added again.
    pub fn add(&mut self, r: Resource, full_url: Option<&str>) {
        if let Some(id) = resource_id(&r)
            && !self.seen.insert((r.type_name().to_owned(), id.to_owned()))
        {
            return;
        }
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

    /// The status of one part (default: read without trouble).
    pub fn part(&self, part: Part) -> PartStatus {
        self.status.get(&part).cloned().unwrap_or_default()
    }

    /// Record how reading (part of) a part went.
    pub fn note(&mut self, part: Part, status: PartStatus) {
        self.status.entry(part).or_default().merge(status);
    }

    /// Resolve a medication reference: `#contained`, `Medication/id`, an absolute URL
    /// ending in `Medication/id`, or a bundle `fullUrl`.
    pub fn medication(&self, reference: &str, contained: &[Value]) -> Option<Medication> {
        if let Some(local) = reference.strip_prefix('#') {
            return contained
                .iter()
                .find_map(|c| match Resource::from_value(c.clone()) {
                    Ok(Resource::Medication(m)) if m.id.as_deref() == Some(local) => Some(m),
                    _ => None,
                });
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

fn resource_id(r: &Resource) -> Option<&str> {
    match r {
        Resource::Patient(x) => x.id.as_deref(),
        Resource::AllergyIntolerance(x) => x.id.as_deref(),
        Resource::MedicationRequest(x) => x.id.as_deref(),
        Resource::MedicationStatement(x) => x.id.as_deref(),
        Resource::Condition(x) => x.id.as_deref(),
        Resource::Observation(x) => x.id.as_deref(),
        Resource::Immunization(x) => x.id.as_deref(),
        Resource::Encounter(x) => x.id.as_deref(),
        Resource::Medication(_) | Resource::Bundle(_) | Resource::Other(_) => None,
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

/// Whether `r` names this patient: `Patient/<id>` (relative, absolute, versioned)
/// or a logical reference by one of the patient's identifiers.
pub fn names_patient(r: &Reference, id: &str, identifiers: &[Identifier]) -> bool {
    if let Some(reference) = r.reference.as_deref() {
        return relative_ref(reference) == Some(("Patient", id));
    }
    match &r.identifier {
        Some(Identifier {
            system,
            value: Some(value),
        }) => identifiers.iter().any(|i| {
            i.value.as_deref() == Some(value) && (system.is_none() || &i.system == system)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Reference {
        Reference {
            reference: Some(s.into()),
            ..Reference::default()
        }
    }

    #[test]
    fn a_patient_is_named_by_relative_absolute_versioned_or_logical_reference() {
        let ids = [Identifier {
            system: Some("urn:mrn".into()),
            value: Some("42".into()),
        }];
        for ok in [
            "Patient/p1",
            "https://ehr.example/fhir/Patient/p1",
            "Patient/p1/_history/3",
        ] {
            assert!(names_patient(&lit(ok), "p1", &ids), "{ok}");
        }
        for bad in ["Patient/p2", "p1", "Group/p1", "urn:uuid:p1", "Patient/p10"] {
            assert!(!names_patient(&lit(bad), "p1", &ids), "{bad}");
        }
        let logical = |system: Option<&str>, value: &str| Reference {
            identifier: Some(Identifier {
                system: system.map(Into::into),
                value: Some(value.into()),
            }),
            ..Reference::default()
        };
        assert!(names_patient(&logical(Some("urn:mrn"), "42"), "p1", &ids));
        assert!(names_patient(&logical(None, "42"), "p1", &ids));
        assert!(!names_patient(
            &logical(Some("urn:other"), "42"),
            "p1",
            &ids
        ));
        assert!(!names_patient(&Reference::default(), "p1", &ids));
    }
}
