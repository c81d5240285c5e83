//! The patient-record side panel, assembled from a [`PatientRecord`]. Pure: no I/O,
//! no clock (the caller passes the date ages are computed at and when it read).
//!
//! Sections follow the International Patient Summary: allergies, medications,
//! problems, vital signs, results, immunizations, plus recent encounters. Each is a
//! [`Section`] whose `status` says exactly what is known: `recorded`,
//! `none_recorded` (only when the source answered completely and validly with
//! nothing to show and nothing was dropped) or `unavailable` (the source could not
//! be read: never shown as "none"). `notes` say what was left out and why.
//!
//! What counts as current follows the resources' status elements (docs/records.md
//! lists every rule with its test). Ordering is total (ties broken by resource id)
//! so two sources holding the same resources give the same summary.

use super::model::*;
use super::record::{Part, PartStatus, PatientRecord};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Most points kept in one vital-sign trend (the most recent ones).
pub const MAX_TREND_POINTS: usize = 50;
/// Most distinct lab tests shown (the most recently resulted ones).
pub const MAX_LABS: usize = 30;
/// Most immunizations shown.
pub const MAX_IMMUNIZATIONS: usize = 30;
/// Most encounters shown.
pub const MAX_ENCOUNTERS: usize = 10;

pub const LOINC: &str = "http://loinc.org";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PanelSummary {
    pub patient_id: String,
    /// The date ages and "recent" are computed at.
    pub as_of: NaiveDate,
    /// When the source was read for this panel.
    pub fetched_at: DateTime<Utc>,
    pub demographics: Demographics,
    pub allergies: Section<Allergy>,
    pub medications: Section<MedicationEntry>,
    pub problems: Section<Problem>,
    pub vital_signs: Section<VitalSign>,
    pub labs: Section<LabResult>,
    pub immunizations: Section<ImmunizationEntry>,
    pub encounters: Section<EncounterEntry>,
}

impl PanelSummary {
    /// Each section's key and whether it could be read, for audit and logs.
    pub fn section_outcomes(&self) -> [(&'static str, SectionStatus); 8] {
        [
            ("demographics", self.demographics.status),
            ("allergies", self.allergies.status),
            ("medications", self.medications.status),
            ("problems", self.problems.status),
            ("vital_signs", self.vital_signs.status),
            ("labs", self.labs.status),
            ("immunizations", self.immunizations.status),
            ("encounters", self.encounters.status),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionStatus {
    Recorded,
    NoneRecorded,
    Unavailable,
}

/// Why a section could not be loaded: a code and a sentence for the physician.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionError {
    pub code: &'static str,
    pub message: String,
}

/// Something the physician must know about a section: what was left out and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    /// `unreadable` | `wrong_patient` | `truncated` | `limited` (more than the panel lists).
    pub code: &'static str,
    pub count: Option<usize>,
    pub text: String,
}

/// A panel section: what is recorded, an explicit "none recorded", or "could not be loaded".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section<T> {
    pub status: SectionStatus,
    /// Empty unless `recorded` (and possibly then, when nothing could be displayed).
    pub items: Vec<T>,
    pub fetched_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<SectionError>,
    pub notes: Vec<Note>,
}

impl<T> Section<T> {
    fn build(part: Part, st: &PartStatus, read_at: DateTime<Utc>, items: Vec<T>) -> Self {
        let fetched_at = st.fetched_at.unwrap_or(read_at);
        if let Some(e) = &st.error {
            return Self {
                status: SectionStatus::Unavailable,
                items: Vec::new(),
                fetched_at,
                error: Some(section_error(part, e)),
                notes: Vec::new(),
            };
        }
        let notes = notes(part, st);
        let status = if items.is_empty() && notes.is_empty() {
            SectionStatus::NoneRecorded
        } else {
            SectionStatus::Recorded
        };
        Self {
            status,
            items,
            fetched_at,
            error: None,
            notes,
        }
    }

    /// The items; empty when none are recorded or the section could not be loaded.
    pub fn items(&self) -> &[T] {
        &self.items
    }
    pub fn is_recorded(&self) -> bool {
        self.status == SectionStatus::Recorded
    }
}

fn section_error(part: Part, e: &super::record::PartError) -> SectionError {
    SectionError {
        code: e.code,
        message: format!("{} could not be loaded: {}", part.title(), e.cause),
    }
}

fn notes(part: Part, st: &PartStatus) -> Vec<Note> {
    let mut v = Vec::new();
    if st.unreadable > 0 {
        let n = st.unreadable;
        v.push(Note {
            code: "unreadable",
            count: Some(n),
            text: format!(
                "{n} {} could not be displayed — open in the EHR",
                part.noun(n)
            ),
        });
    }
    if st.wrong_patient > 0 {
        let n = st.wrong_patient;
        v.push(Note {
            code: "wrong_patient",
            count: Some(n),
            text: format!(
                "{n} {} did not name this patient and {} left out — this section may be unreliable",
                part.noun(n),
                if n == 1 { "was" } else { "were" }
            ),
        });
    }
    if let Some(n) = st.truncated {
        v.push(Note {
            code: "truncated",
            count: Some(n),
            text: format!(
                "The record holds more {}: showing the most recent of the {n} loaded",
                part.noun(2)
            ),
        });
    }
    v
}

/// A coded thing: display text first, the code for hover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concept {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

impl Concept {
    fn from_cc(cc: Option<&CodeableConcept>) -> Self {
        let Some(cc) = cc else {
            return Self::named("(not named in the record)");
        };
        let first = cc
            .coding
            .iter()
            .find(|c| c.code.is_some())
            .or(cc.coding.first());
        let text = cc
            .text
            .clone()
            .or_else(|| cc.coding.iter().find_map(|c| c.display.clone()))
            .or_else(|| first.and_then(|c| c.code.clone()));
        match text {
            Some(text) => Self {
                text,
                code: first.and_then(|c| c.code.clone()),
                system: first.and_then(|c| c.system.clone()),
            },
            None => Self::named("(not named in the record)"),
        }
    }
    /// The concept of element `key`, saying so when it was there but unreadable.
    fn of(cc: Option<&CodeableConcept>, key: &str, unreadable: &[String]) -> Self {
        if cc.is_none() && unreadable.iter().any(|u| u == key) {
            return Self::named("(could not be read — open in the EHR)");
        }
        Self::from_cc(cc)
    }
    fn named(text: &str) -> Self {
        Self {
            text: text.into(),
            code: None,
            system: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Demographics {
    pub status: SectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<SectionError>,
    /// `None` when the source has no Patient resource for this id's record.
    pub name: Option<String>,
    pub birth_date: Option<String>,
    /// Whole years at `as_of`; from a partial birth date it may be one year high.
    pub age: Option<u32>,
    /// `administrative-gender` as recorded: male | female | other | unknown.
    pub sex: Option<String>,
    pub preferred_language: Option<Concept>,
    pub deceased: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allergy {
    pub substance: Concept,
    /// high | low | unable-to-assess; `None` when not recorded.
    pub criticality: Option<String>,
    /// allergy | intolerance
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub category: Vec<String>,
    pub reactions: Vec<String>,
    /// The worst recorded reaction severity: severe | moderate | mild.
    pub severity: Option<String>,
    pub clinical_status: Option<String>,
    /// `unconfirmed` and `presumed` are listed and must be shown as such.
    pub verification_status: Option<String>,
    pub onset: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationEntry {
    pub medication: Concept,
    /// `None` when not recorded or unreadable (then listed, with "status" in `unreadable_fields`).
    pub status: Option<String>,
    /// `request` (an order) or `statement` (what the patient reports taking).
    pub source: &'static str,
    pub dosage: Option<String>,
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub condition: Concept,
    pub clinical_status: Option<String>,
    pub verification_status: Option<String>,
    pub onset: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VitalKind {
    BloodPressure,
    HeartRate,
    Temperature,
    OxygenSaturation,
    Weight,
    Bmi,
}

pub const SYSTOLIC: &str = "8480-6";
pub const DIASTOLIC: &str = "8462-4";

impl VitalKind {
    /// LOINC codes that count as this vital sign (blood pressure: the panels; the
    /// separate systolic and diastolic observations are paired by time).
    pub fn loinc_codes(self) -> &'static [&'static str] {
        match self {
            Self::BloodPressure => &["85354-9", "55284-4"],
            Self::HeartRate => &["8867-4"],
            Self::Temperature => &["8310-5", "8331-1"],
            Self::OxygenSaturation => &["59408-5", "2708-6"],
            Self::Weight => &["29463-7", "3141-9"],
            Self::Bmi => &["39156-5"],
        }
    }
    const ALL: [VitalKind; 6] = [
        Self::BloodPressure,
        Self::HeartRate,
        Self::Temperature,
        Self::OxygenSaturation,
        Self::Weight,
        Self::Bmi,
    ];
    fn of(code: &CodeableConcept) -> Option<Self> {
        Self::ALL.into_iter().find(|k| {
            code.coding.iter().any(|c| {
                c.system.as_deref() == Some(LOINC)
                    && c.code
                        .as_deref()
                        .is_some_and(|x| k.loinc_codes().contains(&x))
            })
        })
    }
    /// The LOINC codes the vital-sign searches ask for, one list per kind (blood
    /// pressure with the separate systolic and diastolic codes).
    pub fn search_codes_by_kind() -> Vec<Vec<&'static str>> {
        Self::ALL
            .into_iter()
            .map(|k| {
                let mut v = k.loinc_codes().to_vec();
                if k == Self::BloodPressure {
                    v.extend([SYSTOLIC, DIASTOLIC]);
                }
                v
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VitalPoint {
    pub at: String,
    /// The value; systolic for blood pressure.
    pub value: f64,
    /// Diastolic, for blood pressure only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diastolic: Option<f64>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VitalSign {
    pub kind: VitalKind,
    /// The name as the latest observation gives it; LOINC code for hover.
    pub label: Concept,
    /// The one unit of every point here (converted where it could be).
    pub unit: Option<String>,
    pub latest: VitalPoint,
    /// Oldest first, at most [`MAX_TREND_POINTS`] of the most recent.
    pub trend: Vec<VitalPoint>,
    /// How many measurements of this kind (in this unit) the record holds.
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// H | L | HH | LL | A | AA | N … (HL7 v3 ObservationInterpretation).
    pub code: String,
    /// `interpretation` (as the lab reported it) or `computed` (from the reference range).
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabResult {
    pub test: Concept,
    /// The value as text, in significant digits: `7.9 %`, `Positive`, `<0.5 mg/L`, `0.0000004 mol/L`.
    pub value: Option<String>,
    pub numeric: Option<f64>,
    pub unit: Option<String>,
    pub at: Option<String>,
    /// `4.0–5.6 %` or the range's own text.
    pub reference_range: Option<String>,
    pub flag: Option<Flag>,
    pub abnormal: bool,
    /// Results of this test in the record (the panel shows the latest).
    pub count: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImmunizationEntry {
    pub vaccine: Concept,
    pub date: Option<String>,
    pub status: Option<String>,
    /// `false` for `not-done` (and when the status is missing or unreadable).
    pub given: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterEntry {
    pub kind: Concept,
    pub class: Option<String>,
    pub status: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub reason: Option<Concept>,
    /// The visit note examroom wrote back for this encounter (issue 22), as plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Items with their sort keys: (time, resource id, item).
type Keyed<'a, T> = Vec<(Option<DateTime<Utc>>, Option<&'a str>, T)>;

/// A sort key for FHIR dates and dateTimes of any precision; unparseable sorts first.
pub fn instant(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?;
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let date = match s.len() {
        4 => NaiveDate::from_ymd_opt(s.parse().ok()?, 1, 1),
        7 => NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok(),
        _ => NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok(),
    }?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

fn status_code(cc: Option<&CodeableConcept>) -> Option<String> {
    cc.and_then(|c| c.first_code().map(str::to_owned))
}

fn age_at(birth: &str, as_of: NaiveDate) -> Option<u32> {
    let (y, m, d) = match birth.len() {
        4 => (birth.parse().ok()?, 1, 1),
        7 => (
            birth.get(..4)?.parse().ok()?,
            birth.get(5..7)?.parse().ok()?,
            1,
        ),
        _ => {
            let b = NaiveDate::parse_from_str(birth.get(..10)?, "%Y-%m-%d").ok()?;
            (b.year(), b.month(), b.day())
        }
    };
    let mut age = as_of.year() - y;
    if (as_of.month(), as_of.day()) < (m, d) {
        age -= 1;
    }
    u32::try_from(age).ok()
}

fn display_name(p: &Patient) -> Option<String> {
    let n = p
        .name
        .iter()
        .find(|n| n.use_.as_deref() == Some("official"))
        .or_else(|| p.name.iter().find(|n| n.use_.as_deref() == Some("usual")))
        .or(p.name.first())?;
    if let Some(t) = &n.text {
        return Some(t.clone());
    }
    let mut parts: Vec<&str> = n.given.iter().map(String::as_str).collect();
    if let Some(f) = &n.family {
        parts.push(f);
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn demographics(rec: &PatientRecord, as_of: NaiveDate) -> Demographics {
    let st = rec.part(Part::Demographics);
    let empty = |status, error| Demographics {
        status,
        error,
        name: None,
        birth_date: None,
        age: None,
        sex: None,
        preferred_language: None,
        deceased: false,
    };
    if let Some(e) = &st.error {
        return empty(
            SectionStatus::Unavailable,
            Some(section_error(Part::Demographics, e)),
        );
    }
    let Some(p) = rec.patient.as_ref() else {
        return empty(SectionStatus::NoneRecorded, None);
    };
    let lang = p
        .communication
        .iter()
        .find(|c| c.preferred == Some(true))
        .or(p.communication.first())
        .and_then(|c| c.language.as_ref())
        .map(|l| Concept::from_cc(Some(l)));
    Demographics {
        status: SectionStatus::Recorded,
        error: None,
        name: display_name(p),
        birth_date: p.birth_date.clone(),
        age: p.birth_date.as_deref().and_then(|b| age_at(b, as_of)),
        sex: p.gender.clone(),
        preferred_language: lang,
        deceased: p.deceased,
    }
}

fn allergies(rec: &PatientRecord) -> Vec<Allergy> {
    fn rank(c: Option<&str>) -> u8 {
        match c {
            Some("high") => 0,
            Some("unable-to-assess") => 1,
            Some("low") => 2,
            _ => 3,
        }
    }
    fn sev_rank(s: &str) -> u8 {
        match s {
            "severe" => 0,
            "moderate" => 1,
            _ => 2,
        }
    }
    let mut v: Vec<(&AllergyIntolerance, Allergy)> = rec
        .allergies
        .iter()
        .filter(|a| {
            // Hidden only on a readable status that says so; an unreadable status is shown.
            let clinical = status_code(a.clinical_status.as_ref());
            let verif = status_code(a.verification_status.as_ref());
            !matches!(clinical.as_deref(), Some("inactive" | "resolved"))
                && !matches!(verif.as_deref(), Some("entered-in-error" | "refuted"))
        })
        .map(|a| {
            let substance = a
                .code
                .as_ref()
                .or_else(|| a.reaction.iter().find_map(|r| r.substance.as_ref()));
            let mut reactions: Vec<String> = Vec::new();
            for r in &a.reaction {
                for m in &r.manifestation {
                    let t = Concept::from_cc(Some(m)).text;
                    if !reactions.contains(&t) {
                        reactions.push(t);
                    }
                }
            }
            let severity = a
                .reaction
                .iter()
                .filter_map(|r| r.severity.clone())
                .min_by_key(|s| sev_rank(s));
            (
                a,
                Allergy {
                    substance: Concept::of(substance, "code", &a.unreadable),
                    criticality: a.criticality.clone(),
                    type_: a.type_.clone(),
                    category: a.category.clone(),
                    reactions,
                    severity,
                    clinical_status: status_code(a.clinical_status.as_ref()),
                    verification_status: status_code(a.verification_status.as_ref()),
                    onset: a
                        .onset
                        .as_ref()
                        .and_then(When::display)
                        .or(a.recorded_date.clone()),
                    unreadable_fields: a.unreadable.clone(),
                },
            )
        })
        .collect();
    v.sort_by(|(a, x), (b, y)| {
        rank(x.criticality.as_deref())
            .cmp(&rank(y.criticality.as_deref()))
            .then_with(|| x.substance.text.cmp(&y.substance.text))
            .then_with(|| a.id.cmp(&b.id))
    });
    v.into_iter().map(|(_, a)| a).collect()
}

fn medication_concept(
    rec: &PatientRecord,
    cc: Option<&CodeableConcept>,
    r: Option<&Reference>,
    contained: &[serde_json::Value],
    unreadable: &[String],
) -> Concept {
    if let Some(cc) = cc {
        return Concept::from_cc(Some(cc));
    }
    let Some(r) = r else {
        return Concept::of(None, "medicationCodeableConcept", unreadable);
    };
    if let Some(m) = r
        .reference
        .as_deref()
        .and_then(|x| rec.medication(x, contained))
        && m.code.is_some()
    {
        return Concept::from_cc(m.code.as_ref());
    }
    match &r.display {
        Some(d) => Concept::named(d),
        None => Concept::from_cc(None),
    }
}

/// A status that could not be read (or is missing, though required) keeps the item
/// listed and says so: an order we cannot rule out is shown, marked.
fn unknown_status(status: &Option<String>, unreadable: &[String]) -> Vec<String> {
    let mut u = unreadable.to_vec();
    if status.is_none() && !u.iter().any(|x| x == "status") {
        u.push("status".into());
    }
    u
}

fn medications(rec: &PatientRecord) -> Vec<MedicationEntry> {
    let mut v: Keyed<MedicationEntry> = Vec::new();
    for m in &rec.medication_requests {
        let current = match m.status.as_deref() {
            Some("active" | "on-hold" | "unknown") | None => true,
            Some(_) => false, // stopped, completed, cancelled, entered-in-error, draft
        };
        let ordered = !matches!(m.intent.as_deref(), Some("proposal" | "plan" | "option"));
        if !current || !ordered || m.do_not_perform == Some(true) {
            continue;
        }
        v.push((
            instant(m.authored_on.as_deref()),
            m.id.as_deref(),
            MedicationEntry {
                medication: medication_concept(
                    rec,
                    m.medication_codeable_concept.as_ref(),
                    m.medication_reference.as_ref(),
                    &m.contained,
                    &m.unreadable,
                ),
                status: m.status.clone(),
                source: "request",
                dosage: m.dosage_text.clone(),
                date: m.authored_on.clone(),
                unreadable_fields: unknown_status(&m.status, &m.unreadable),
            },
        ));
    }
    for m in &rec.medication_statements {
        let current = match m.status.as_deref() {
            Some("active" | "intended" | "on-hold" | "unknown") | None => true,
            Some(_) => false, // stopped, completed, not-taken, entered-in-error
        };
        if !current {
            continue;
        }
        let date = m
            .effective
            .as_ref()
            .and_then(|w| w.instant().map(str::to_owned))
            .or(m.date_asserted.clone());
        v.push((
            instant(date.as_deref()),
            m.id.as_deref(),
            MedicationEntry {
                medication: medication_concept(
                    rec,
                    m.medication_codeable_concept.as_ref(),
                    m.medication_reference.as_ref(),
                    &m.contained,
                    &m.unreadable,
                ),
                status: m.status.clone(),
                source: "statement",
                dosage: m.dosage_text.clone(),
                date,
                unreadable_fields: unknown_status(&m.status, &m.unreadable),
            },
        ));
    }
    // Newest first.
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter().map(|(_, _, m)| m).collect()
}

fn problems(rec: &PatientRecord) -> Vec<Problem> {
    let mut v: Keyed<Problem> = rec
        .conditions
        .iter()
        .filter(|c| {
            let clinical = status_code(c.clinical_status.as_ref());
            let verif = status_code(c.verification_status.as_ref());
            let active = match clinical.as_deref() {
                Some(s) => matches!(s, "active" | "recurrence" | "relapse"),
                None => true,
            };
            active && !c.abated && !matches!(verif.as_deref(), Some("entered-in-error" | "refuted"))
        })
        .map(|c| {
            let onset = c
                .onset
                .as_ref()
                .and_then(When::display)
                .or(c.recorded_date.clone());
            let sort = c
                .onset
                .as_ref()
                .and_then(When::instant)
                .or(c.recorded_date.as_deref());
            (
                instant(sort),
                c.id.as_deref(),
                Problem {
                    condition: Concept::of(c.code.as_ref(), "code", &c.unreadable),
                    clinical_status: status_code(c.clinical_status.as_ref()),
                    verification_status: status_code(c.verification_status.as_ref()),
                    onset,
                    unreadable_fields: c.unreadable.clone(),
                },
            )
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter().map(|(_, _, p)| p).collect()
}

fn usable(o: &Observation) -> bool {
    !matches!(
        o.status.as_deref(),
        Some("entered-in-error" | "cancelled" | "registered")
    )
}

/// Whether a unit is one of these spellings (ASCII case ignored; no allocation, as this
/// runs for every reading of every panel).
fn unit_is(u: &str, spellings: &[&str]) -> bool {
    spellings.iter().any(|s| s.eq_ignore_ascii_case(u))
}

/// The canonical unit of a vital sign and how to convert a value into it, or
/// `None` when the unit is not one we know for this kind (it then gets its own series).
fn to_canonical(kind: VitalKind, unit: Option<&str>, v: f64) -> Option<(&'static str, f64)> {
    let u = unit.unwrap_or("").trim();
    let round = |x: f64, dp: i32| {
        let f = 10f64.powi(dp);
        (x * f).round() / f
    };
    Some(match kind {
        VitalKind::BloodPressure if unit_is(u, &["mm[hg]", "mmhg", "mm hg"]) => ("mm[Hg]", v),
        VitalKind::HeartRate
            if unit_is(
                u,
                &[
                    "/min",
                    "{beats}/min",
                    "beats/min",
                    "beats/minute",
                    "bpm",
                    "{beat}/min",
                ],
            ) =>
        {
            ("/min", v)
        }
        VitalKind::Temperature if unit_is(u, &["cel", "°c", "c", "degc"]) => ("Cel", v),
        VitalKind::Temperature if unit_is(u, &["[degf]", "°f", "f", "degf"]) => {
            ("Cel", round((v - 32.0) * 5.0 / 9.0, 1))
        }
        VitalKind::Temperature if unit_is(u, &["k"]) => ("Cel", round(v - 273.15, 1)),
        VitalKind::OxygenSaturation if unit_is(u, &["%", "percent"]) => ("%", v),
        VitalKind::Weight if unit_is(u, &["kg", "kilogram", "kilograms"]) => ("kg", v),
        VitalKind::Weight if unit_is(u, &["g"]) => ("kg", round(v / 1000.0, 2)),
        VitalKind::Weight if unit_is(u, &["[lb_av]", "lb", "lbs", "pound", "pounds"]) => {
            ("kg", round(v * 0.453_592_37, 1))
        }
        VitalKind::Weight if unit_is(u, &["[oz_av]", "oz"]) => {
            ("kg", round(v * 0.028_349_523_125, 2))
        }
        VitalKind::Bmi if unit_is(u, &["kg/m2", "kg/m^2", "kg/m²"]) => ("kg/m2", v),
        _ => return None,
    })
}

/// One reading, before it is known whether it is recent enough to be shown: nothing is
/// allocated for it (a patient may have thousands), only the last points become
/// [`VitalPoint`]s.
struct Reading<'a> {
    t: Option<DateTime<Utc>>,
    id: Option<&'a str>,
    obs: &'a Observation,
    at: &'a str,
    value: f64,
    diastolic: Option<f64>,
}

/// (kind, unit) → readings.
type Series<'a> = BTreeMap<(VitalKind, Option<&'a str>), Vec<Reading<'a>>>;

fn quantity_unit(q: &Quantity) -> Option<&str> {
    // The UCUM code when there is one: it is what conversions know.
    q.code.as_deref().or(q.unit.as_deref())
}

fn push_point<'a>(
    series: &mut Series<'a>,
    kind: VitalKind,
    (o, at, t): (&'a Observation, &'a str, Option<DateTime<Utc>>),
    q: &'a Quantity,
    diastolic: Option<&'a Quantity>,
) {
    let Some(value) = q.value else { return };
    let raw_unit = quantity_unit(q);
    let (unit, value, dia) = match to_canonical(kind, raw_unit, value) {
        Some((u, v)) => {
            let dia = diastolic
                .and_then(|d| to_canonical(kind, quantity_unit(d), d.value?).map(|(_, x)| x));
            (Some(u), v, dia)
        }
        None => (raw_unit, value, diastolic.and_then(|d| d.value)),
    };
    series.entry((kind, unit)).or_default().push(Reading {
        t,
        id: o.id.as_deref(),
        obs: o,
        at,
        value,
        diastolic: dia,
    });
}

fn component_quantity<'a>(o: &'a Observation, code: &str) -> Option<&'a Quantity> {
    o.component
        .iter()
        .find(|c| c.code.as_ref().is_some_and(|cc| cc.has_code(code)))
        .and_then(|c| match &c.value {
            Some(ObsValue::Quantity(q)) => Some(q),
            _ => None,
        })
}

fn vital_signs(rec: &PatientRecord) -> Vec<VitalSign> {
    let mut series: Series = BTreeMap::new();
    // Separate systolic/diastolic observations, paired by their time.
    let mut systolic: BTreeMap<&str, &Observation> = BTreeMap::new();
    let mut diastolic: BTreeMap<&str, &Observation> = BTreeMap::new();
    let mut panel_times = std::collections::HashSet::new();
    for o in rec.observations.iter().filter(|o| usable(o)) {
        let (Some(code), Some(at)) = (o.code.as_ref(), o.when()) else {
            continue;
        };
        if let Some(kind) = VitalKind::of(code) {
            let t = instant(Some(at));
            if kind == VitalKind::BloodPressure {
                if let Some(sys) = component_quantity(o, SYSTOLIC) {
                    let dia = component_quantity(o, DIASTOLIC);
                    push_point(&mut series, kind, (o, at, t), sys, dia);
                    panel_times.insert(t);
                }
            } else if let Some(q) = o.value_quantity() {
                push_point(&mut series, kind, (o, at, t), q, None);
            }
        } else if code.code_in(LOINC) == Some(SYSTOLIC) {
            systolic.insert(at, o);
        } else if code.code_in(LOINC) == Some(DIASTOLIC) {
            diastolic.insert(at, o);
        }
    }
    for (at, sys) in systolic {
        let t = instant(Some(at));
        if panel_times.contains(&t) {
            continue; // the same reading, already read from its panel
        }
        if let Some(q) = sys.value_quantity() {
            let dia = diastolic.get(at).and_then(|d| d.value_quantity());
            push_point(&mut series, VitalKind::BloodPressure, (sys, at, t), q, dia);
        }
    }
    series
        .into_iter()
        .filter_map(|((kind, unit), mut points)| {
            points.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.id.cmp(&b.id)));
            let count = points.len();
            let unit = unit.map(str::to_owned);
            let point = |r: &Reading| VitalPoint {
                at: r.at.to_owned(),
                value: r.value,
                diastolic: r.diastolic,
                unit: unit.clone(),
            };
            let last = points.last()?;
            let latest = point(last);
            let label = if kind == VitalKind::BloodPressure {
                Concept {
                    text: "Blood pressure".into(),
                    code: Some("85354-9".into()),
                    system: Some(LOINC.into()),
                }
            } else {
                Concept::from_cc(last.obs.code.as_ref())
            };
            let trend = points[count.saturating_sub(MAX_TREND_POINTS)..]
                .iter()
                .map(point)
                .collect();
            Some(VitalSign {
                kind,
                label,
                unit,
                latest,
                trend,
                count,
            })
        })
        .collect()
}

/// Numbers are shown the way the model formats them (kept here for callers of the summary).
pub use super::model::fmt_num;

fn range_text(r: &ReferenceRange) -> Option<String> {
    if let Some(t) = &r.text {
        return Some(t.clone());
    }
    super::model::range_text(&Range {
        low: r.low.clone(),
        high: r.high.clone(),
    })
}

const ABNORMAL: &[&str] = &[
    "H", "L", "HH", "LL", "HU", "LU", "A", "AA", "<", ">", "POS", "R", "W", "DET",
];
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

fn lab_flag(o: &Observation) -> Option<Flag> {
    if let Some(code) = o.interpretation.iter().find_map(|i| {
        i.code_in(INTERPRETATION)
            .or_else(|| i.coding.iter().find_map(|c| c.code.as_deref()))
    }) {
        return Some(Flag {
            code: code.to_owned(),
            source: "interpretation",
        });
    }
    // No interpretation: compare against the (normal) range when units agree.
    let q = o.value_quantity()?;
    let v = q.value?;
    let r = o
        .reference_range
        .iter()
        .find(|r| r.type_.as_ref().is_none_or(|t| t.has_code("normal")))?;
    let same_unit = |b: &Quantity| {
        let (bu, qu) = (
            b.code.as_ref().or(b.unit.as_ref()),
            q.code.as_ref().or(q.unit.as_ref()),
        );
        bu.is_none() || qu.is_none() || bu == qu
    };
    let code = if r
        .low
        .as_ref()
        .is_some_and(|l| same_unit(l) && l.value.is_some_and(|l| v < l))
    {
        "L"
    } else if r
        .high
        .as_ref()
        .is_some_and(|h| same_unit(h) && h.value.is_some_and(|h| v > h))
    {
        "H"
    } else if r.low.is_some() || r.high.is_some() {
        "N"
    } else {
        return None;
    };
    Some(Flag {
        code: code.to_owned(),
        source: "computed",
    })
}

fn lab_value(o: &Observation) -> (Option<String>, Option<f64>, Option<String>) {
    match &o.value {
        Some(ObsValue::Quantity(q)) => (quantity_text(q), q.value, q.unit_text()),
        Some(ObsValue::Concept(cc)) => (Some(Concept::from_cc(Some(cc)).text), None, None),
        Some(ObsValue::String(s) | ObsValue::Text(s)) => (Some(s.clone()), None, None),
        Some(ObsValue::Integer(i)) => (Some(i.to_string()), Some(*i as f64), None),
        Some(ObsValue::Boolean(b)) => (Some(b.to_string()), None, None),
        Some(ObsValue::Range(r)) => (super::model::range_text(r), None, None),
        Some(ObsValue::Ratio(r)) => {
            let part = |q: &Option<Quantity>| q.as_ref().and_then(quantity_text);
            let text = match (part(&r.numerator), part(&r.denominator)) {
                (Some(n), Some(d)) => Some(format!("{n} / {d}")),
                (Some(n), None) => Some(n),
                _ => None,
            };
            (text, None, None)
        }
        Some(ObsValue::Unshown(_)) => (Some("(shown in the EHR only)".into()), None, None),
        None => (None, None, None),
    }
}

/// A lab result: observation category `laboratory` (any system), HL7 v2 `LAB`, or a
/// category whose text names the laboratory. Vital signs are never labs.
fn is_lab(o: &Observation) -> bool {
    if o.code.as_ref().and_then(VitalKind::of).is_some() {
        return false;
    }
    o.category.iter().any(|c| {
        c.has_code("laboratory")
            || c.has_code("LAB")
            || c.has_code("lab")
            || c.text
                .as_deref()
                .or(c.coding.iter().find_map(|x| x.display.as_deref()))
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("lab"))
    })
}

/// The latest result of each test, most recent first (at most [`MAX_LABS`]), and how many
/// tests the record has.
fn labs(rec: &PatientRecord) -> (Vec<LabResult>, usize) {
    // Latest result per test; key by the first code (else the text).
    #[allow(clippy::type_complexity)] // (time, id, observation, count of results)
    let mut latest: BTreeMap<&str, (Option<DateTime<Utc>>, Option<&str>, &Observation, usize)> =
        BTreeMap::new();
    for o in rec.observations.iter().filter(|o| usable(o) && is_lab(o)) {
        let Some(code) = o.code.as_ref() else {
            continue;
        };
        let key = code
            .code_in(LOINC)
            .or_else(|| code.coding.iter().find_map(|c| c.code.as_deref()))
            .or(code.text.as_deref())
            .unwrap_or("");
        let t = instant(o.when());
        let e = latest.entry(key).or_insert((t, o.id.as_deref(), o, 0));
        e.3 += 1;
        if (t, o.id.as_deref()) > (e.0, e.1) {
            (e.0, e.1, e.2) = (t, o.id.as_deref(), o);
        }
    }
    let tests = latest.len();
    let mut v: Vec<_> = latest.into_values().collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let shown = v
        .into_iter()
        .take(MAX_LABS)
        .map(|(_, _, o, count)| {
            let (value, numeric, unit) = lab_value(o);
            let flag = lab_flag(o);
            let abnormal = flag
                .as_ref()
                .is_some_and(|f| ABNORMAL.contains(&f.code.as_str()));
            LabResult {
                test: Concept::of(o.code.as_ref(), "code", &o.unreadable),
                value,
                numeric,
                unit,
                at: o.when().map(str::to_owned),
                reference_range: o.reference_range.first().and_then(range_text),
                flag,
                abnormal,
                count,
                unreadable_fields: o.unreadable.clone(),
            }
        })
        .collect();
    (shown, tests)
}

fn immunizations(rec: &PatientRecord) -> Vec<ImmunizationEntry> {
    let mut v: Vec<_> = rec
        .immunizations
        .iter()
        .filter(|i| !matches!(i.status.as_deref(), Some("entered-in-error")))
        .map(|i| {
            let date = i.occurrence.as_ref().and_then(When::display);
            (
                instant(i.occurrence.as_ref().and_then(When::instant)),
                i.id.as_deref(),
                ImmunizationEntry {
                    vaccine: Concept::of(i.vaccine_code.as_ref(), "vaccineCode", &i.unreadable),
                    date,
                    status: i.status.clone(),
                    given: i.status.as_deref() == Some("completed"),
                    unreadable_fields: unknown_status(&i.status, &i.unreadable),
                },
            )
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter()
        .take(MAX_IMMUNIZATIONS)
        .map(|(_, _, i)| i)
        .collect()
}

fn encounters(rec: &PatientRecord) -> Vec<EncounterEntry> {
    // Sort first, build entries only for those shown: a long history has hundreds.
    let mut v: Vec<_> = rec
        .encounters
        .iter()
        .filter(|e| !matches!(e.status.as_deref(), Some("entered-in-error" | "cancelled")))
        .map(|e| {
            let start = e.period.as_ref().and_then(|p| p.start.as_deref());
            (instant(start), e.id.as_deref(), e)
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter()
        .take(MAX_ENCOUNTERS)
        .map(|(_, _, e)| {
            let kind = match (e.type_.first(), &e.class) {
                (Some(t), _) => Concept::from_cc(Some(t)),
                (None, Some(c)) => Concept {
                    text: c.display.clone().or(c.code.clone()).unwrap_or_default(),
                    code: c.code.clone(),
                    system: c.system.clone(),
                },
                (None, None) => Concept::from_cc(None),
            };
            EncounterEntry {
                kind,
                class: e.class.as_ref().and_then(|c| c.code.clone()),
                status: e.status.clone(),
                start: e.period.as_ref().and_then(|p| p.start.clone()),
                end: e.period.as_ref().and_then(|p| p.end.clone()),
                reason: e.reason_code.first().map(|r| Concept::from_cc(Some(r))),
                note: e.id.as_deref().and_then(|id| {
                    let reference = format!("Encounter/{id}");
                    rec.visit_notes
                        .iter()
                        .find(|n| n.encounter == reference)
                        .map(|n| n.text.clone())
                }),
            }
        })
        .collect()
}

/// Assemble the panel for one patient's record as of `as_of`; `read_at` is when the
/// source was read (a section's own time, when the source gave one, wins).
/// Labs, saying so when older tests are left out (never a silent cut).
fn lab_section(rec: &PatientRecord, read_at: DateTime<Utc>) -> Section<LabResult> {
    let (items, tests) = labs(rec);
    let mut section = Section::build(Part::Labs, &rec.part(Part::Labs), read_at, items);
    if tests > MAX_LABS && section.status == SectionStatus::Recorded {
        section.notes.push(Note {
            code: "limited",
            count: Some(tests),
            text: format!(
                "Showing the latest result of the {MAX_LABS} most recent of {tests} tests — older tests are in the EHR"
            ),
        });
    }
    section
}

pub fn assemble(
    patient_id: &str,
    rec: &PatientRecord,
    as_of: NaiveDate,
    read_at: DateTime<Utc>,
) -> PanelSummary {
    PanelSummary {
        patient_id: patient_id.to_owned(),
        as_of,
        fetched_at: read_at,
        demographics: demographics(rec, as_of),
        allergies: Section::build(
            Part::Allergies,
            &rec.part(Part::Allergies),
            read_at,
            allergies(rec),
        ),
        medications: Section::build(
            Part::Medications,
            &rec.part(Part::Medications),
            read_at,
            medications(rec),
        ),
        problems: Section::build(
            Part::Problems,
            &rec.part(Part::Problems),
            read_at,
            problems(rec),
        ),
        vital_signs: Section::build(
            Part::VitalSigns,
            &rec.part(Part::VitalSigns),
            read_at,
            vital_signs(rec),
        ),
        labs: lab_section(rec, read_at),
        immunizations: Section::build(
            Part::Immunizations,
            &rec.part(Part::Immunizations),
            read_at,
            immunizations(rec),
        ),
        encounters: encounter_section(rec, read_at),
    }
}

/// Encounters, saying so when the visit notes beside them could not be read: a virtual
/// visit shown without its note must not read as "no note was written".
fn encounter_section(rec: &PatientRecord, read_at: DateTime<Utc>) -> Section<EncounterEntry> {
    let items = encounters(rec);
    let mut section = Section::build(
        Part::Encounters,
        &rec.part(Part::Encounters),
        read_at,
        items,
    );
    if rec.visit_notes_failed && section.status != SectionStatus::Unavailable {
        section.status = SectionStatus::Recorded;
        section.notes.push(Note {
            code: "notes_unavailable",
            count: None,
            text: "The notes of video visits could not be loaded — open them in the EHR".into(),
        });
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_in_significant_digits() {
        assert_eq!(fmt_num(4e-7), "0.0000004");
        assert_eq!(fmt_num(7.9), "7.9");
        assert_eq!(fmt_num(7.900_000_000_1), "7.9");
        assert_eq!(fmt_num(0.000_123_456_7), "0.000123457");
        assert_eq!(fmt_num(123_456_789.0), "123456789");
        assert_eq!(fmt_num(140.0), "140");
        assert_eq!(fmt_num(-0.5), "-0.5");
        assert_eq!(fmt_num(0.0), "0");
    }

    #[test]
    fn units_convert_to_one_per_vital() {
        assert_eq!(
            to_canonical(VitalKind::Weight, Some("[lb_av]"), 154.0),
            Some(("kg", 69.9))
        );
        assert_eq!(
            to_canonical(VitalKind::Temperature, Some("[degF]"), 98.6),
            Some(("Cel", 37.0))
        );
        assert_eq!(to_canonical(VitalKind::Weight, Some("stone"), 11.0), None);
    }
}
