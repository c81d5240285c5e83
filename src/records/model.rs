//! Hand-written FHIR R4 models: only the resources and fields the panel shows.
//!
//! Every field is optional and unknown fields are ignored, so a resource from any
//! server or export parses as long as the fields we read have their R4 types.
//! [`Resource::from_value`] dispatches on `resourceType`; types we do not show
//! become [`Resource::Other`].

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CodeableConcept {
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

impl CodeableConcept {
    /// The first code of `system`, if any.
    pub fn code_in(&self, system: &str) -> Option<&str> {
        self.coding
            .iter()
            .find(|c| c.system.as_deref() == Some(system))
            .and_then(|c| c.code.as_deref())
    }

    /// Whether any coding has this code (any system).
    pub fn has_code(&self, code: &str) -> bool {
        self.coding.iter().any(|c| c.code.as_deref() == Some(code))
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Reference {
    pub reference: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Quantity {
    pub value: Option<f64>,
    pub comparator: Option<String>,
    pub unit: Option<String>,
    pub system: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct HumanName {
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub text: Option<String>,
    pub family: Option<String>,
    pub given: Vec<String>,
    pub prefix: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PatientCommunication {
    pub language: Option<CodeableConcept>,
    pub preferred: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Patient {
    pub id: Option<String>,
    pub name: Vec<HumanName>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub deceased_boolean: Option<bool>,
    pub deceased_date_time: Option<String>,
    pub communication: Vec<PatientCommunication>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AllergyReaction {
    pub substance: Option<CodeableConcept>,
    pub manifestation: Vec<CodeableConcept>,
    pub severity: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AllergyIntolerance {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub category: Vec<String>,
    pub criticality: Option<String>,
    pub code: Option<CodeableConcept>,
    pub patient: Option<Reference>,
    pub onset_date_time: Option<String>,
    pub recorded_date: Option<String>,
    pub reaction: Vec<AllergyReaction>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Dosage {
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Medication {
    pub id: Option<String>,
    pub code: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct MedicationRequest {
    pub id: Option<String>,
    pub status: Option<String>,
    pub intent: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub authored_on: Option<String>,
    pub dosage_instruction: Vec<Dosage>,
    /// Contained resources; only `Medication`s are read from here.
    pub contained: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct MedicationStatement {
    pub id: Option<String>,
    pub status: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub date_asserted: Option<String>,
    pub dosage: Vec<Dosage>,
    pub contained: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub category: Vec<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub onset_date_time: Option<String>,
    pub onset_period: Option<Period>,
    pub abatement_date_time: Option<String>,
    pub recorded_date: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ReferenceRange {
    pub low: Option<Quantity>,
    pub high: Option<Quantity>,
    #[serde(rename = "type")]
    pub type_: Option<CodeableConcept>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ObservationComponent {
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub value_codeable_concept: Option<CodeableConcept>,
    pub value_string: Option<String>,
    pub interpretation: Vec<CodeableConcept>,
    pub reference_range: Vec<ReferenceRange>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Observation {
    pub id: Option<String>,
    pub status: Option<String>,
    pub category: Vec<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub effective_instant: Option<String>,
    pub issued: Option<String>,
    pub value_quantity: Option<Quantity>,
    pub value_codeable_concept: Option<CodeableConcept>,
    pub value_string: Option<String>,
    pub value_boolean: Option<bool>,
    pub value_integer: Option<i64>,
    pub interpretation: Vec<CodeableConcept>,
    pub reference_range: Vec<ReferenceRange>,
    pub component: Vec<ObservationComponent>,
}

impl Observation {
    /// The clinically relevant time: effective[x], else issued.
    pub fn when(&self) -> Option<&str> {
        self.effective_date_time
            .as_deref()
            .or(self.effective_instant.as_deref())
            .or(self
                .effective_period
                .as_ref()
                .and_then(|p| p.start.as_deref().or(p.end.as_deref())))
            .or(self.issued.as_deref())
    }

    /// Whether one of the categories carries this observation-category code.
    pub fn in_category(&self, code: &str) -> bool {
        self.category.iter().any(|c| c.has_code(code))
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Immunization {
    pub id: Option<String>,
    pub status: Option<String>,
    pub vaccine_code: Option<CodeableConcept>,
    pub patient: Option<Reference>,
    pub occurrence_date_time: Option<String>,
    pub occurrence_string: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Encounter {
    pub id: Option<String>,
    pub status: Option<String>,
    pub class: Option<Coding>,
    #[serde(rename = "type")]
    pub type_: Vec<CodeableConcept>,
    pub subject: Option<Reference>,
    pub period: Option<Period>,
    pub reason_code: Vec<CodeableConcept>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct BundleLink {
    pub relation: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct BundleEntry {
    pub full_url: Option<String>,
    /// Kept as JSON so one odd resource cannot make a whole bundle unreadable;
    /// [`Resource::from_value`] types it.
    pub resource: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Bundle {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub total: Option<u64>,
    pub link: Vec<BundleLink>,
    pub entry: Vec<BundleEntry>,
}

impl Bundle {
    /// The `next` paging link, if any.
    pub fn next_link(&self) -> Option<&str> {
        self.link
            .iter()
            .find(|l| l.relation.as_deref() == Some("next"))
            .and_then(|l| l.url.as_deref())
    }
}

/// One resource of a type the panel reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Patient(Patient),
    AllergyIntolerance(AllergyIntolerance),
    MedicationRequest(MedicationRequest),
    MedicationStatement(MedicationStatement),
    Medication(Medication),
    Condition(Condition),
    Observation(Box<Observation>),
    Immunization(Immunization),
    Encounter(Encounter),
    Bundle(Bundle),
    /// A resource type the panel does not show.
    Other(String),
}

impl Resource {
    /// Type a resource by its `resourceType`. The error names the type and the
    /// position of the problem, never a value (values may be patient data).
    pub fn from_value(v: Value) -> Result<Self, String> {
        let rtype = v
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| "resource without resourceType".to_owned())?
            .to_owned();
        fn typed<T: serde::de::DeserializeOwned>(v: Value, rtype: &str) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| format!("{rtype}: {}", redacted(&e)))
        }
        Ok(match rtype.as_str() {
            "Patient" => Self::Patient(typed(v, &rtype)?),
            "AllergyIntolerance" => Self::AllergyIntolerance(typed(v, &rtype)?),
            "MedicationRequest" => Self::MedicationRequest(typed(v, &rtype)?),
            "MedicationStatement" => Self::MedicationStatement(typed(v, &rtype)?),
            "Medication" => Self::Medication(typed(v, &rtype)?),
            "Condition" => Self::Condition(typed(v, &rtype)?),
            "Observation" => Self::Observation(Box::new(typed(v, &rtype)?)),
            "Immunization" => Self::Immunization(typed(v, &rtype)?),
            "Encounter" => Self::Encounter(typed(v, &rtype)?),
            "Bundle" => Self::Bundle(typed(v, &rtype)?),
            _ => Self::Other(rtype),
        })
    }

    /// Parse one resource from JSON text.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| redacted(&e))?;
        Self::from_value(v)
    }
}

/// A serde_json error without its message text, which can quote the offending value.
pub(crate) fn redacted(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "unexpected type or value",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        kind.to_owned()
    } else {
        format!("{kind} at line {} column {}", e.line(), e.column())
    }
}
