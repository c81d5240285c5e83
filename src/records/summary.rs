//! The patient-record side panel, assembled from a [`PatientRecord`]. Pure: no I/O,
//! no clock (the caller passes the date the age is computed at).
//!
//! Sections follow the International Patient Summary: allergies, medications,
//! problems, vital signs, results, immunizations, plus recent encounters. Each is a
//! [`Section`]: `{"status":"recorded","items":[…]}` or `{"status":"none_recorded"}`,
//! so the panel can say "none recorded" instead of showing a blank. Every coded
//! thing is a [`Concept`]: the text the source gives first, the code kept for hover.
//!
//! Ordering is total (ties broken by resource id) so two sources holding the same
//! resources give the same summary.

use super::model::*;
use super::record::PatientRecord;
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
    pub demographics: Demographics,
    pub allergies: Section<Allergy>,
    pub medications: Section<MedicationEntry>,
    pub problems: Section<Problem>,
    pub vital_signs: Section<VitalSign>,
    pub labs: Section<LabResult>,
    pub immunizations: Section<ImmunizationEntry>,
    pub encounters: Section<EncounterEntry>,
}

/// A panel section: what is recorded, or an explicit "none recorded".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Section<T> {
    Recorded { items: Vec<T> },
    NoneRecorded,
}

impl<T> Section<T> {
    fn from_items(items: Vec<T>) -> Self {
        if items.is_empty() {
            Self::NoneRecorded
        } else {
            Self::Recorded { items }
        }
    }
    /// The items; empty when none are recorded.
    pub fn items(&self) -> &[T] {
        match self {
            Self::Recorded { items } => items,
            Self::NoneRecorded => &[],
        }
    }
    pub fn is_recorded(&self) -> bool {
        matches!(self, Self::Recorded { .. })
    }
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
            return Self::unnamed();
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
            None => Self::unnamed(),
        }
    }
    fn unnamed() -> Self {
        Self {
            text: "(not named in the record)".into(),
            code: None,
            system: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Demographics {
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
    pub verification_status: Option<String>,
    pub onset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationEntry {
    pub medication: Concept,
    pub status: Option<String>,
    /// `request` (an order) or `statement` (what the patient reports taking).
    pub source: &'static str,
    pub dosage: Option<String>,
    pub date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub condition: Concept,
    pub clinical_status: Option<String>,
    pub onset: Option<String>,
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

impl VitalKind {
    /// LOINC codes that count as this vital sign.
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
    fn of(obs: &Observation) -> Option<Self> {
        let code = obs.code.as_ref()?;
        [
            Self::BloodPressure,
            Self::HeartRate,
            Self::Temperature,
            Self::OxygenSaturation,
            Self::Weight,
            Self::Bmi,
        ]
        .into_iter()
        .find(|k| {
            code.coding.iter().any(|c| {
                c.system.as_deref() == Some(LOINC)
                    && c.code
                        .as_deref()
                        .is_some_and(|x| k.loinc_codes().contains(&x))
            })
        })
    }
}

pub const SYSTOLIC: &str = "8480-6";
pub const DIASTOLIC: &str = "8462-4";

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
    pub latest: VitalPoint,
    /// Oldest first, at most [`MAX_TREND_POINTS`] of the most recent.
    pub trend: Vec<VitalPoint>,
    /// How many measurements the record holds in all.
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
    /// The value as text: `7.9 %`, `Positive`, `<0.5 mg/L`.
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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImmunizationEntry {
    pub vaccine: Concept,
    pub date: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterEntry {
    pub kind: Concept,
    pub class: Option<String>,
    pub status: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub reason: Option<Concept>,
}

/// Items with their sort keys: (time, resource id, item).
type Keyed<'a, T> = Vec<(Option<DateTime<Utc>>, Option<&'a str>, T)>;

/// A sort key for FHIR dates and dateTimes of any precision; unparseable sorts first.
fn instant(s: Option<&str>) -> Option<DateTime<Utc>> {
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
    cc.and_then(|c| c.coding.iter().find_map(|c| c.code.clone()))
}

fn age_at(birth: &str, as_of: NaiveDate) -> Option<u32> {
    let (y, m, d) = match birth.len() {
        4 => (birth.parse().ok()?, 1, 1),
        7 => (birth[..4].parse().ok()?, birth[5..7].parse().ok()?, 1),
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

fn demographics(p: Option<&Patient>, as_of: NaiveDate) -> Demographics {
    let Some(p) = p else {
        return Demographics {
            name: None,
            birth_date: None,
            age: None,
            sex: None,
            preferred_language: None,
            deceased: false,
        };
    };
    let lang = p
        .communication
        .iter()
        .find(|c| c.preferred == Some(true))
        .or(p.communication.first())
        .and_then(|c| c.language.as_ref())
        .map(|l| Concept::from_cc(Some(l)));
    Demographics {
        name: display_name(p),
        birth_date: p.birth_date.clone(),
        age: p.birth_date.as_deref().and_then(|b| age_at(b, as_of)),
        sex: p.gender.clone(),
        preferred_language: lang,
        deceased: p.deceased_boolean == Some(true) || p.deceased_date_time.is_some(),
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
                    substance: Concept::from_cc(substance),
                    criticality: a.criticality.clone(),
                    type_: a.type_.clone(),
                    category: a.category.clone(),
                    reactions,
                    severity,
                    clinical_status: status_code(a.clinical_status.as_ref()),
                    verification_status: status_code(a.verification_status.as_ref()),
                    onset: a.onset_date_time.clone().or(a.recorded_date.clone()),
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
) -> Concept {
    if let Some(cc) = cc {
        return Concept::from_cc(Some(cc));
    }
    let Some(r) = r else {
        return Concept::unnamed();
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
        Some(d) => Concept {
            text: d.clone(),
            code: None,
            system: None,
        },
        None => Concept::unnamed(),
    }
}

fn medications(rec: &PatientRecord) -> Vec<MedicationEntry> {
    let mut v: Keyed<MedicationEntry> = Vec::new();
    for m in &rec.medication_requests {
        if !matches!(m.status.as_deref(), Some("active" | "on-hold")) {
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
                ),
                status: m.status.clone(),
                source: "request",
                dosage: m.dosage_instruction.iter().find_map(|d| d.text.clone()),
                date: m.authored_on.clone(),
            },
        ));
    }
    for m in &rec.medication_statements {
        if !matches!(m.status.as_deref(), Some("active" | "intended" | "on-hold")) {
            continue;
        }
        let date = m
            .effective_date_time
            .clone()
            .or_else(|| m.effective_period.as_ref().and_then(|p| p.start.clone()))
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
                ),
                status: m.status.clone(),
                source: "statement",
                dosage: m.dosage.iter().find_map(|d| d.text.clone()),
                date,
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
                // No status: active unless it has abated.
                None => c.abatement_date_time.is_none(),
            };
            active && !matches!(verif.as_deref(), Some("entered-in-error" | "refuted"))
        })
        .map(|c| {
            let onset = c
                .onset_date_time
                .clone()
                .or_else(|| c.onset_period.as_ref().and_then(|p| p.start.clone()))
                .or(c.recorded_date.clone());
            (
                instant(onset.as_deref()),
                c.id.as_deref(),
                Problem {
                    condition: Concept::from_cc(c.code.as_ref()),
                    clinical_status: status_code(c.clinical_status.as_ref()),
                    onset,
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

fn vital_point(kind: VitalKind, o: &Observation) -> Option<VitalPoint> {
    let at = o.when()?.to_owned();
    if kind == VitalKind::BloodPressure {
        let comp = |code: &str| {
            o.component
                .iter()
                .find(|c| c.code.as_ref().is_some_and(|cc| cc.has_code(code)))
                .and_then(|c| c.value_quantity.as_ref())
        };
        let sys = comp(SYSTOLIC)?;
        let dia = comp(DIASTOLIC);
        return Some(VitalPoint {
            at,
            value: sys.value?,
            diastolic: dia.and_then(|d| d.value),
            unit: sys.unit.clone().or(sys.code.clone()),
        });
    }
    let q = o.value_quantity.as_ref()?;
    Some(VitalPoint {
        at,
        value: q.value?,
        diastolic: None,
        unit: q.unit.clone().or(q.code.clone()),
    })
}

fn vital_signs(rec: &PatientRecord) -> Vec<VitalSign> {
    type Series<'a> = Vec<(
        Option<DateTime<Utc>>,
        Option<&'a str>,
        &'a Observation,
        VitalPoint,
    )>;
    let mut by_kind: BTreeMap<VitalKind, Series> = BTreeMap::new();
    for o in rec.observations.iter().filter(|o| usable(o)) {
        let Some(kind) = VitalKind::of(o) else {
            continue;
        };
        if let Some(p) = vital_point(kind, o) {
            by_kind
                .entry(kind)
                .or_default()
                .push((instant(Some(&p.at)), o.id.as_deref(), o, p));
        }
    }
    by_kind
        .into_iter()
        .map(|(kind, mut series)| {
            series.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            let count = series.len();
            let (_, _, latest_obs, latest) = series.last().expect("non-empty series").clone();
            let trend = series
                .into_iter()
                .skip(count.saturating_sub(MAX_TREND_POINTS))
                .map(|(_, _, _, p)| p)
                .collect();
            VitalSign {
                kind,
                label: Concept::from_cc(latest_obs.code.as_ref()),
                latest,
                trend,
                count,
            }
        })
        .collect()
}

fn fmt_num(v: f64) -> String {
    // `7.90` arrives as 7.9: show what the number is, without float noise.
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

fn range_text(r: &ReferenceRange) -> Option<String> {
    if let Some(t) = &r.text {
        return Some(t.clone());
    }
    let unit = |q: &Quantity| q.unit.clone().or(q.code.clone());
    let lo = r.low.as_ref().and_then(|q| q.value.map(|v| (v, unit(q))));
    let hi = r.high.as_ref().and_then(|q| q.value.map(|v| (v, unit(q))));
    let u = |x: &Option<String>| x.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
    match (lo, hi) {
        (Some((l, _)), Some((h, hu))) => Some(format!("{}–{}{}", fmt_num(l), fmt_num(h), u(&hu))),
        (Some((l, lu)), None) => Some(format!("≥{}{}", fmt_num(l), u(&lu))),
        (None, Some((h, hu))) => Some(format!("≤{}{}", fmt_num(h), u(&hu))),
        (None, None) => None,
    }
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
    let q = o.value_quantity.as_ref()?;
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
    if let Some(q) = &o.value_quantity {
        let unit = q.unit.clone().or(q.code.clone());
        let text = q.value.map(|v| {
            format!(
                "{}{}{}",
                q.comparator.as_deref().unwrap_or(""),
                fmt_num(v),
                unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
            )
        });
        return (text, q.value, unit);
    }
    if let Some(cc) = &o.value_codeable_concept {
        return (Some(Concept::from_cc(Some(cc)).text), None, None);
    }
    if let Some(s) = &o.value_string {
        return (Some(s.clone()), None, None);
    }
    if let Some(i) = o.value_integer {
        return (Some(i.to_string()), Some(i as f64), None);
    }
    if let Some(b) = o.value_boolean {
        return (Some(b.to_string()), None, None);
    }
    (None, None, None)
}

fn labs(rec: &PatientRecord) -> Vec<LabResult> {
    // Latest result per test; key by the first code (else the text).
    #[allow(clippy::type_complexity)] // (time, id, observation, count of results)
    let mut latest: BTreeMap<
        String,
        (Option<DateTime<Utc>>, Option<&str>, &Observation, usize),
    > = BTreeMap::new();
    for o in rec
        .observations
        .iter()
        .filter(|o| usable(o) && o.in_category("laboratory"))
    {
        let Some(code) = o.code.as_ref() else {
            continue;
        };
        let key = code
            .code_in(LOINC)
            .or_else(|| code.coding.iter().find_map(|c| c.code.as_deref()))
            .or(code.text.as_deref())
            .unwrap_or("")
            .to_owned();
        let t = instant(o.when());
        let e = latest.entry(key).or_insert((t, o.id.as_deref(), o, 0));
        e.3 += 1;
        if (t, o.id.as_deref()) > (e.0, e.1) {
            (e.0, e.1, e.2) = (t, o.id.as_deref(), o);
        }
    }
    let mut v: Vec<_> = latest.into_values().collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter()
        .take(MAX_LABS)
        .map(|(_, _, o, count)| {
            let (value, numeric, unit) = lab_value(o);
            let flag = lab_flag(o);
            let abnormal = flag
                .as_ref()
                .is_some_and(|f| ABNORMAL.contains(&f.code.as_str()));
            LabResult {
                test: Concept::from_cc(o.code.as_ref()),
                value,
                numeric,
                unit,
                at: o.when().map(str::to_owned),
                reference_range: o.reference_range.first().and_then(range_text),
                flag,
                abnormal,
                count,
            }
        })
        .collect()
}

fn immunizations(rec: &PatientRecord) -> Vec<ImmunizationEntry> {
    let mut v: Vec<_> = rec
        .immunizations
        .iter()
        .filter(|i| !matches!(i.status.as_deref(), Some("entered-in-error")))
        .map(|i| {
            let date = i
                .occurrence_date_time
                .clone()
                .or(i.occurrence_string.clone());
            (
                instant(i.occurrence_date_time.as_deref()),
                i.id.as_deref(),
                ImmunizationEntry {
                    vaccine: Concept::from_cc(i.vaccine_code.as_ref()),
                    date,
                    status: i.status.clone(),
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
    let mut v: Vec<_> = rec
        .encounters
        .iter()
        .filter(|e| !matches!(e.status.as_deref(), Some("entered-in-error" | "cancelled")))
        .map(|e| {
            let start = e.period.as_ref().and_then(|p| p.start.clone());
            let kind = match (e.type_.first(), &e.class) {
                (Some(t), _) => Concept::from_cc(Some(t)),
                (None, Some(c)) => Concept {
                    text: c.display.clone().or(c.code.clone()).unwrap_or_default(),
                    code: c.code.clone(),
                    system: c.system.clone(),
                },
                (None, None) => Concept::unnamed(),
            };
            (
                instant(start.as_deref()),
                e.id.as_deref(),
                EncounterEntry {
                    kind,
                    class: e.class.as_ref().and_then(|c| c.code.clone()),
                    status: e.status.clone(),
                    start,
                    end: e.period.as_ref().and_then(|p| p.end.clone()),
                    reason: e.reason_code.first().map(|r| Concept::from_cc(Some(r))),
                },
            )
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter()
        .take(MAX_ENCOUNTERS)
        .map(|(_, _, e)| e)
        .collect()
}

/// Assemble the panel for one patient's record as of `as_of`.
pub fn assemble(patient_id: &str, rec: &PatientRecord, as_of: NaiveDate) -> PanelSummary {
    PanelSummary {
        patient_id: patient_id.to_owned(),
        as_of,
        demographics: demographics(rec.patient.as_ref(), as_of),
        allergies: Section::from_items(allergies(rec)),
        medications: Section::from_items(medications(rec)),
        problems: Section::from_items(problems(rec)),
        vital_signs: Section::from_items(vital_signs(rec)),
        labs: Section::from_items(labs(rec)),
        immunizations: Section::from_items(immunizations(rec)),
        encounters: Section::from_items(encounters(rec)),
    }
}
