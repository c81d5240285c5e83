//! Hand-written FHIR R4 models: only the resources and fields the panel shows.
//!
//! Read leniently per field and strictly per meaning. Every element is read on its
//! own ([`Fields`]): one of an unexpected shape (an extension where a string was
//! expected, a `Period` where a `dateTime` was, a number as a string) leaves that
//! element empty and its name in the resource's `unreadable` list — it never drops
//! the resource. Choice elements (`onset[x]`, `effective[x]`, `value[x]`,
//! `abatement[x]`…) accept every type R4 allows. A resource that is not a JSON
//! object with a `resourceType` cannot be read at all: [`Resource::from_value`]
//! says so and the caller counts it.
//!
//! Nothing here logs or puts a value in an error: values may be patient data.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
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

    /// The first code of any coding (status elements: the value set is fixed).
    pub fn first_code(&self) -> Option<&str> {
        self.coding.iter().find_map(|c| c.code.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identifier {
    pub system: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    pub reference: Option<String>,
    pub identifier: Option<Identifier>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantity {
    pub value: Option<f64>,
    pub comparator: Option<String>,
    pub unit: Option<String>,
    pub system: Option<String>,
    pub code: Option<String>,
}

impl Quantity {
    /// The unit as a person reads it: `unit`, else the code.
    pub fn unit_text(&self) -> Option<String> {
        self.unit.clone().or_else(|| self.code.clone())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Range {
    pub low: Option<Quantity>,
    pub high: Option<Quantity>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratio {
    pub numerator: Option<Quantity>,
    pub denominator: Option<Quantity>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HumanName {
    pub use_: Option<String>,
    pub text: Option<String>,
    pub family: Option<String>,
    pub given: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientCommunication {
    pub language: Option<CodeableConcept>,
    pub preferred: Option<bool>,
}

/// A point or span in time as the record gives it (`onset[x]`, `effective[x]`…).
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// A `date`, `dateTime` or `instant`.
    At(String),
    /// A `Period`; either end may be missing.
    Period(Period),
    /// An age, range or free text: shown, not sorted on.
    Text(String),
}

impl When {
    /// The date or dateTime to sort and show by: the point, else the period's start (or end).
    pub fn instant(&self) -> Option<&str> {
        match self {
            Self::At(s) => Some(s),
            Self::Period(p) => p.start.as_deref().or(p.end.as_deref()),
            Self::Text(_) => None,
        }
    }

    /// As shown to the physician.
    pub fn display(&self) -> Option<String> {
        match self {
            Self::At(s) => Some(s.clone()),
            Self::Period(p) => match (&p.start, &p.end) {
                (Some(s), Some(e)) => Some(format!("{s} to {e}")),
                (Some(s), None) => Some(s.clone()),
                (None, Some(e)) => Some(format!("until {e}")),
                (None, None) => None,
            },
            Self::Text(t) => Some(t.clone()),
        }
    }
}

/// An Observation's `value[x]` (or a component's).
#[derive(Debug, Clone, PartialEq)]
pub enum ObsValue {
    Quantity(Quantity),
    Concept(CodeableConcept),
    String(String),
    Boolean(bool),
    Integer(i64),
    Range(Range),
    Ratio(Ratio),
    /// `valueDateTime`, `valueTime`, `valuePeriod` as text.
    Text(String),
    /// A `value[x]` the panel cannot show (e.g. `valueSampledData`), by element name.
    Unshown(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patient {
    pub id: Option<String>,
    pub identifier: Vec<Identifier>,
    pub name: Vec<HumanName>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub deceased: bool,
    pub communication: Vec<PatientCommunication>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllergyReaction {
    pub substance: Option<CodeableConcept>,
    pub manifestation: Vec<CodeableConcept>,
    pub severity: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllergyIntolerance {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub type_: Option<String>,
    pub category: Vec<String>,
    pub criticality: Option<String>,
    pub code: Option<CodeableConcept>,
    pub patient: Option<Reference>,
    pub onset: Option<When>,
    pub recorded_date: Option<String>,
    pub reaction: Vec<AllergyReaction>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Medication {
    pub id: Option<String>,
    pub code: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MedicationRequest {
    pub id: Option<String>,
    pub status: Option<String>,
    pub intent: Option<String>,
    pub do_not_perform: Option<bool>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub authored_on: Option<String>,
    pub dosage_text: Option<String>,
    /// Contained resources; only `Medication`s are read from here.
    pub contained: Vec<Value>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MedicationStatement {
    pub id: Option<String>,
    pub status: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub effective: Option<When>,
    pub date_asserted: Option<String>,
    pub dosage_text: Option<String>,
    pub contained: Vec<Value>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub category: Vec<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub onset: Option<When>,
    /// Any `abatement[x]` present (and not `abatementBoolean: false`).
    pub abated: bool,
    pub recorded_date: Option<String>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceRange {
    pub low: Option<Quantity>,
    pub high: Option<Quantity>,
    pub type_: Option<CodeableConcept>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservationComponent {
    pub code: Option<CodeableConcept>,
    pub value: Option<ObsValue>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub id: Option<String>,
    pub status: Option<String>,
    pub category: Vec<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub effective: Option<When>,
    pub issued: Option<String>,
    pub value: Option<ObsValue>,
    pub interpretation: Vec<CodeableConcept>,
    pub reference_range: Vec<ReferenceRange>,
    pub component: Vec<ObservationComponent>,
    pub unreadable: Vec<String>,
}

impl Observation {
    /// The clinically relevant time: effective[x], else issued.
    pub fn when(&self) -> Option<&str> {
        self.effective
            .as_ref()
            .and_then(When::instant)
            .or(self.issued.as_deref())
    }

    /// Whether one of the categories carries this observation-category code.
    pub fn in_category(&self, code: &str) -> bool {
        self.category.iter().any(|c| c.has_code(code))
    }

    pub fn value_quantity(&self) -> Option<&Quantity> {
        match &self.value {
            Some(ObsValue::Quantity(q)) => Some(q),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Immunization {
    pub id: Option<String>,
    pub status: Option<String>,
    pub vaccine_code: Option<CodeableConcept>,
    pub patient: Option<Reference>,
    pub occurrence: Option<When>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encounter {
    pub id: Option<String>,
    pub status: Option<String>,
    pub class: Option<Coding>,
    pub type_: Vec<CodeableConcept>,
    pub subject: Option<Reference>,
    pub period: Option<Period>,
    pub reason_code: Vec<CodeableConcept>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleLink {
    pub relation: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleEntry {
    pub full_url: Option<String>,
    /// Kept as JSON so one odd resource cannot make a whole bundle unreadable;
    /// [`Resource::from_value`] types it.
    pub resource: Option<Value>,
    /// `search.mode`: `match`, `include` or `outcome`.
    pub search_mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    pub id: Option<String>,
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
    /// Type a resource by its `resourceType`. Fails only when it is not a JSON object
    /// with a `resourceType`; odd elements are left empty and named in `unreadable`.
    /// The error names no value (values may be patient data).
    pub fn from_value(v: Value) -> Result<Self, String> {
        let Value::Object(obj) = v else {
            return Err("resource is not a JSON object".to_owned());
        };
        let rtype = match obj.get("resourceType") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err("resource without resourceType".to_owned()),
        };
        let mut f = Fields::new(&obj);
        Ok(match rtype.as_str() {
            "Patient" => Self::Patient(read_patient(&mut f)),
            "AllergyIntolerance" => Self::AllergyIntolerance(read_allergy(&mut f)),
            "MedicationRequest" => Self::MedicationRequest(read_med_request(&mut f)),
            "MedicationStatement" => Self::MedicationStatement(read_med_statement(&mut f)),
            "Medication" => Self::Medication(read_medication(&mut f)),
            "Condition" => Self::Condition(read_condition(&mut f)),
            "Observation" => Self::Observation(Box::new(read_observation(&mut f))),
            "Immunization" => Self::Immunization(read_immunization(&mut f)),
            "Encounter" => Self::Encounter(read_encounter(&mut f)),
            "Bundle" => Self::Bundle(read_bundle(&mut f)),
            _ => Self::Other(rtype),
        })
    }

    /// Parse one resource from JSON text.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| redacted(&e))?;
        Self::from_value(v)
    }

    /// The `resourceType` as a static name, for counting and messages.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Patient(_) => "Patient",
            Self::AllergyIntolerance(_) => "AllergyIntolerance",
            Self::MedicationRequest(_) => "MedicationRequest",
            Self::MedicationStatement(_) => "MedicationStatement",
            Self::Medication(_) => "Medication",
            Self::Condition(_) => "Condition",
            Self::Observation(_) => "Observation",
            Self::Immunization(_) => "Immunization",
            Self::Encounter(_) => "Encounter",
            Self::Bundle(_) => "Bundle",
            Self::Other(t) => t,
        }
    }

    /// The reference naming whose record this is (`subject` or `patient`); `None` for
    /// types that name no patient (Medication, Bundle, other types).
    pub fn patient_reference(&self) -> Option<Option<&Reference>> {
        match self {
            Self::AllergyIntolerance(a) => Some(a.patient.as_ref()),
            Self::MedicationRequest(m) => Some(m.subject.as_ref()),
            Self::MedicationStatement(m) => Some(m.subject.as_ref()),
            Self::Condition(c) => Some(c.subject.as_ref()),
            Self::Observation(o) => Some(o.subject.as_ref()),
            Self::Immunization(i) => Some(i.patient.as_ref()),
            Self::Encounter(e) => Some(e.subject.as_ref()),
            Self::Patient(_) | Self::Medication(_) | Self::Bundle(_) | Self::Other(_) => None,
        }
    }
}

/// Reads the elements of one JSON object leniently, remembering which could not be read.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    unreadable: Vec<String>,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Self {
            obj,
            unreadable: Vec::new(),
        }
    }

    /// The names of elements that were present but could not be read.
    pub fn into_unreadable(self) -> Vec<String> {
        self.unreadable
    }

    fn mark(&mut self, key: &str) {
        let key = key.to_owned();
        if !self.unreadable.contains(&key) {
            self.unreadable.push(key);
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// One element read by `read`; `None` or `odd` set marks it unreadable (a partly
    /// read value is kept).
    fn one<T>(&mut self, key: &str, read: impl Fn(&Value, &mut bool) -> Option<T>) -> Option<T> {
        let v = self.get(key)?;
        let mut odd = false;
        let out = read(v, &mut odd);
        if odd || out.is_none() {
            self.mark(key);
        }
        out
    }

    /// A repeating element: an array (a single value is taken as a one-item array);
    /// items that cannot be read are skipped and the element marked.
    fn many<T>(&mut self, key: &str, read: impl Fn(&Value, &mut bool) -> Option<T>) -> Vec<T> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut odd = !v.is_array();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match read(item, &mut odd) {
                Some(x) => out.push(x),
                None => odd = true,
            }
        }
        if odd {
            self.mark(key);
        }
        out
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        self.one(key, string)
    }
    fn strings(&mut self, key: &str) -> Vec<String> {
        self.many(key, string)
    }
    fn boolean(&mut self, key: &str) -> Option<bool> {
        self.one(key, boolean)
    }
    fn concept(&mut self, key: &str) -> Option<CodeableConcept> {
        self.one(key, concept)
    }
    fn concepts(&mut self, key: &str) -> Vec<CodeableConcept> {
        self.many(key, concept)
    }
    fn reference(&mut self, key: &str) -> Option<Reference> {
        self.one(key, reference)
    }
    fn period(&mut self, key: &str) -> Option<Period> {
        self.one(key, period)
    }

    /// Whether any element named `prefix` + a type suffix is present (a choice element).
    fn has_choice(&self, prefix: &str) -> bool {
        self.obj.iter().any(|(k, v)| {
            !v.is_null()
                && k.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    }

    /// A time-like choice element (`onset[x]`, `effective[x]`, `occurrence[x]`…).
    fn when(&mut self, prefix: &str) -> Option<When> {
        let marked = self.unreadable.len();
        for suffix in ["DateTime", "Instant", "Date"] {
            if let Some(s) = self.string(&format!("{prefix}{suffix}")) {
                return Some(When::At(s));
            }
        }
        if let Some(p) = self.period(&format!("{prefix}Period")) {
            return Some(When::Period(p));
        }
        if let Some(s) = self.string(&format!("{prefix}String")) {
            return Some(When::Text(s));
        }
        if let Some(q) = self.one(&format!("{prefix}Age"), quantity) {
            return quantity_text(&q).map(|t| When::Text(format!("age {t}")));
        }
        if let Some(r) = self.one(&format!("{prefix}Range"), range) {
            return range_text(&r).map(|t| When::Text(format!("age {t}")));
        }
        if self.unreadable.len() == marked && self.has_choice(prefix) {
            // A form we do not show (e.g. `Timing`): say so rather than pretend none.
            self.mark(prefix);
        }
        None
    }

    /// An observation's `value[x]`.
    fn obs_value(&mut self) -> Option<ObsValue> {
        if let Some(q) = self.one("valueQuantity", quantity) {
            return Some(ObsValue::Quantity(q));
        }
        if let Some(c) = self.concept("valueCodeableConcept") {
            return Some(ObsValue::Concept(c));
        }
        if let Some(s) = self.string("valueString") {
            return Some(ObsValue::String(s));
        }
        if let Some(b) = self.boolean("valueBoolean") {
            return Some(ObsValue::Boolean(b));
        }
        if let Some(i) = self.one("valueInteger", integer) {
            return Some(ObsValue::Integer(i));
        }
        if let Some(r) = self.one("valueRange", range) {
            return Some(ObsValue::Range(r));
        }
        if let Some(r) = self.one("valueRatio", ratio) {
            return Some(ObsValue::Ratio(r));
        }
        for k in ["valueDateTime", "valueTime"] {
            if let Some(s) = self.string(k) {
                return Some(ObsValue::Text(s));
            }
        }
        if let Some(p) = self.period("valuePeriod") {
            return When::Period(p).display().map(ObsValue::Text);
        }
        let other = self.obj.iter().find(|(k, v)| {
            !v.is_null()
                && k.strip_prefix("value")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
        });
        other.map(|(k, _)| ObsValue::Unshown(k.clone()))
    }
}

fn string(v: &Value, _odd: &mut bool) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn boolean(v: &Value, _odd: &mut bool) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn integer(v: &Value, _odd: &mut bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decimal(v: &Value, _odd: &mut bool) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // Some exporters write decimals as strings to keep their precision.
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

fn object<'a>(v: &'a Value, odd: &mut bool) -> Option<Fields<'a>> {
    match v {
        Value::Object(o) => Some(Fields::new(o)),
        _ => {
            *odd = true;
            None
        }
    }
}

/// Read a nested element; anything odd inside it marks the outer element.
fn nested<T>(v: &Value, odd: &mut bool, read: impl FnOnce(&mut Fields) -> T) -> Option<T> {
    let mut f = object(v, odd)?;
    let out = read(&mut f);
    if !f.unreadable.is_empty() {
        *odd = true;
    }
    Some(out)
}

fn coding(v: &Value, odd: &mut bool) -> Option<Coding> {
    nested(v, odd, |f| Coding {
        system: f.string("system"),
        code: f.string("code"),
        display: f.string("display"),
    })
}

fn concept(v: &Value, odd: &mut bool) -> Option<CodeableConcept> {
    // A bare code string where a CodeableConcept was expected: keep the code.
    if let Value::String(s) = v {
        *odd = true;
        return Some(CodeableConcept {
            coding: vec![Coding {
                code: Some(s.clone()),
                ..Coding::default()
            }],
            text: None,
        });
    }
    nested(v, odd, |f| CodeableConcept {
        coding: f.many("coding", coding),
        text: f.string("text"),
    })
}

fn identifier(v: &Value, odd: &mut bool) -> Option<Identifier> {
    nested(v, odd, |f| Identifier {
        system: f.string("system"),
        value: f.string("value"),
    })
}

fn reference(v: &Value, odd: &mut bool) -> Option<Reference> {
    nested(v, odd, |f| Reference {
        reference: f.string("reference"),
        identifier: f.one("identifier", identifier),
        display: f.string("display"),
    })
}

fn quantity(v: &Value, odd: &mut bool) -> Option<Quantity> {
    nested(v, odd, |f| Quantity {
        value: f.one("value", decimal),
        comparator: f.string("comparator"),
        unit: f.string("unit"),
        system: f.string("system"),
        code: f.string("code"),
    })
}

fn period(v: &Value, odd: &mut bool) -> Option<Period> {
    nested(v, odd, |f| Period {
        start: f.string("start"),
        end: f.string("end"),
    })
}

fn range(v: &Value, odd: &mut bool) -> Option<Range> {
    nested(v, odd, |f| Range {
        low: f.one("low", quantity),
        high: f.one("high", quantity),
    })
}

fn ratio(v: &Value, odd: &mut bool) -> Option<Ratio> {
    nested(v, odd, |f| Ratio {
        numerator: f.one("numerator", quantity),
        denominator: f.one("denominator", quantity),
    })
}

fn human_name(v: &Value, odd: &mut bool) -> Option<HumanName> {
    nested(v, odd, |f| HumanName {
        use_: f.string("use"),
        text: f.string("text"),
        family: f.string("family"),
        given: f.strings("given"),
    })
}

/// A number in at most 6 significant digits, without float noise or exponent:
/// `7.9`, `0.0000004`, `123456789`.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (5 - magnitude).clamp(0, 20) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A quantity as text: `12 a`, `<0.5 mg/L`.
pub fn quantity_text(q: &Quantity) -> Option<String> {
    let v = q.value?;
    Some(format!(
        "{}{}{}",
        q.comparator.as_deref().unwrap_or(""),
        fmt_num(v),
        q.unit_text().map(|u| format!(" {u}")).unwrap_or_default()
    ))
}

/// A range as text: `4–5.6 %`, `≥18 a`.
pub fn range_text(r: &Range) -> Option<String> {
    let num = |q: &Option<Quantity>| q.as_ref().and_then(|q| q.value.map(|v| (v, q.unit_text())));
    let u = |x: Option<String>| x.map(|u| format!(" {u}")).unwrap_or_default();
    let f = fmt_num;
    match (num(&r.low), num(&r.high)) {
        (Some((l, _)), Some((h, hu))) => Some(format!("{}–{}{}", f(l), f(h), u(hu))),
        (Some((l, lu)), None) => Some(format!("≥{}{}", f(l), u(lu))),
        (None, Some((h, hu))) => Some(format!("≤{}{}", f(h), u(hu))),
        (None, None) => None,
    }
}

fn read_patient(f: &mut Fields) -> Patient {
    let deceased =
        f.boolean("deceasedBoolean") == Some(true) || f.string("deceasedDateTime").is_some();
    Patient {
        id: f.string("id"),
        identifier: f.many("identifier", identifier),
        name: f.many("name", human_name),
        gender: f.string("gender"),
        birth_date: f.string("birthDate"),
        deceased,
        communication: f.many("communication", |v, odd| {
            nested(v, odd, |f| PatientCommunication {
                language: f.concept("language"),
                preferred: f.boolean("preferred"),
            })
        }),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_allergy(f: &mut Fields) -> AllergyIntolerance {
    AllergyIntolerance {
        id: f.string("id"),
        clinical_status: f.concept("clinicalStatus"),
        verification_status: f.concept("verificationStatus"),
        type_: f.string("type"),
        category: f.strings("category"),
        criticality: f.string("criticality"),
        code: f.concept("code"),
        patient: f.reference("patient"),
        onset: f.when("onset"),
        recorded_date: f.string("recordedDate"),
        reaction: f.many("reaction", |v, odd| {
            nested(v, odd, |f| AllergyReaction {
                substance: f.concept("substance"),
                manifestation: f.concepts("manifestation"),
                severity: f.string("severity"),
            })
        }),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_medication(f: &mut Fields) -> Medication {
    Medication {
        id: f.string("id"),
        code: f.concept("code"),
    }
}

/// The first dosage's text of a `dosage`/`dosageInstruction` element.
fn dosage_text(f: &mut Fields, key: &str) -> Option<String> {
    f.many(key, |v, odd| nested(v, odd, |f| f.string("text")))
        .into_iter()
        .flatten()
        .next()
}

fn contained(f: &mut Fields) -> Vec<Value> {
    f.many("contained", |v, _| v.is_object().then(|| v.clone()))
}

fn read_med_request(f: &mut Fields) -> MedicationRequest {
    MedicationRequest {
        id: f.string("id"),
        status: f.string("status"),
        intent: f.string("intent"),
        do_not_perform: f.boolean("doNotPerform"),
        medication_codeable_concept: f.concept("medicationCodeableConcept"),
        medication_reference: f.reference("medicationReference"),
        subject: f.reference("subject"),
        authored_on: f.string("authoredOn"),
        dosage_text: dosage_text(f, "dosageInstruction"),
        contained: contained(f),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_med_statement(f: &mut Fields) -> MedicationStatement {
    MedicationStatement {
        id: f.string("id"),
        status: f.string("status"),
        medication_codeable_concept: f.concept("medicationCodeableConcept"),
        medication_reference: f.reference("medicationReference"),
        subject: f.reference("subject"),
        effective: f.when("effective"),
        date_asserted: f.string("dateAsserted"),
        dosage_text: dosage_text(f, "dosage"),
        contained: contained(f),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_condition(f: &mut Fields) -> Condition {
    // Any abatement[x] means it has abated — except an explicit `abatementBoolean: false`.
    let abated = match f.boolean("abatementBoolean") {
        Some(b) => b,
        None => f.has_choice("abatement"),
    };
    Condition {
        id: f.string("id"),
        clinical_status: f.concept("clinicalStatus"),
        verification_status: f.concept("verificationStatus"),
        category: f.concepts("category"),
        code: f.concept("code"),
        subject: f.reference("subject"),
        onset: f.when("onset"),
        abated,
        recorded_date: f.string("recordedDate"),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn reference_range(v: &Value, odd: &mut bool) -> Option<ReferenceRange> {
    nested(v, odd, |f| ReferenceRange {
        low: f.one("low", quantity),
        high: f.one("high", quantity),
        type_: f.concept("type"),
        text: f.string("text"),
    })
}

fn read_observation(f: &mut Fields) -> Observation {
    Observation {
        id: f.string("id"),
        status: f.string("status"),
        category: f.concepts("category"),
        code: f.concept("code"),
        subject: f.reference("subject"),
        effective: f.when("effective"),
        issued: f.string("issued"),
        value: f.obs_value(),
        interpretation: f.concepts("interpretation"),
        reference_range: f.many("referenceRange", reference_range),
        component: f.many("component", |v, odd| {
            nested(v, odd, |f| ObservationComponent {
                code: f.concept("code"),
                value: f.obs_value(),
            })
        }),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_immunization(f: &mut Fields) -> Immunization {
    Immunization {
        id: f.string("id"),
        status: f.string("status"),
        vaccine_code: f.concept("vaccineCode"),
        patient: f.reference("patient"),
        occurrence: f.when("occurrence"),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_encounter(f: &mut Fields) -> Encounter {
    Encounter {
        id: f.string("id"),
        status: f.string("status"),
        class: f.one("class", coding),
        type_: f.concepts("type"),
        subject: f.reference("subject"),
        period: f.period("period"),
        reason_code: f.concepts("reasonCode"),
        unreadable: std::mem::take(&mut f.unreadable),
    }
}

fn read_bundle(f: &mut Fields) -> Bundle {
    Bundle {
        id: f.string("id"),
        type_: f.string("type"),
        total: f.one("total", |v, _| v.as_u64()),
        link: f.many("link", |v, odd| {
            nested(v, odd, |f| BundleLink {
                relation: f.string("relation"),
                url: f.string("url"),
            })
        }),
        entry: f.many("entry", |v, odd| {
            nested(v, odd, |f| BundleEntry {
                full_url: f.string("fullUrl"),
                resource: f.get("resource").cloned(),
                search_mode: f
                    .one("search", |v, odd| nested(v, odd, |f| f.string("mode")))
                    .flatten(),
            })
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allergy(v: Value) -> AllergyIntolerance {
        match Resource::from_value(v).unwrap() {
            Resource::AllergyIntolerance(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_odd_element_is_marked_and_the_rest_is_kept() {
        let a = allergy(json!({
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "criticality": "high",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
            "onsetDateTime": {"extension": [{"url": "x"}]},
            "reaction": [{"manifestation": [{"text": "Hives"}], "severity": 3}],
            "patient": {"reference": "Patient/p1"}
        }));
        assert_eq!(a.criticality.as_deref(), Some("high"));
        assert!(a.code.as_ref().unwrap().has_code("91936005"));
        assert_eq!(
            a.reaction[0].manifestation[0].text.as_deref(),
            Some("Hives")
        );
        assert_eq!(a.unreadable, vec!["onsetDateTime", "reaction"]);
    }

    #[test]
    fn every_onset_form_is_read() {
        let forms = [
            (json!({"onsetDateTime": "2020-01-02"}), Some("2020-01-02")),
            (json!({"onsetPeriod": {"start": "2019"}}), Some("2019")),
            (
                json!({"onsetAge": {"value": 12, "unit": "a"}}),
                Some("age 12 a"),
            ),
            (json!({"onsetString": "childhood"}), Some("childhood")),
            (
                json!({"onsetRange": {"low": {"value": 1, "unit": "a"}, "high": {"value": 3, "unit": "a"}}}),
                Some("age 1–3 a"),
            ),
        ];
        for (mut v, want) in forms {
            v["resourceType"] = json!("AllergyIntolerance");
            let a = allergy(v);
            assert_eq!(a.onset.and_then(|o| o.display()).as_deref(), want);
            assert!(a.unreadable.is_empty());
        }
    }

    #[test]
    fn not_an_object_or_no_type_cannot_be_read() {
        assert!(Resource::from_value(json!("AllergyIntolerance")).is_err());
        assert!(Resource::from_value(json!({"id": "x"})).is_err());
    }

    #[test]
    fn numbers_as_strings_and_single_items_for_arrays_are_read() {
        let v = json!({
            "resourceType": "Observation",
            "valueQuantity": {"value": "4e-7", "unit": "mol/L"},
            "category": {"coding": [{"code": "laboratory"}]}
        });
        let Resource::Observation(o) = Resource::from_value(v).unwrap() else {
            panic!()
        };
        assert_eq!(o.value_quantity().unwrap().value, Some(4e-7));
        assert!(o.in_category("laboratory"));
        assert_eq!(o.unreadable, vec!["category"]);
    }

    #[test]
    fn any_abatement_form_means_abated_but_false_does_not() {
        for (v, want) in [
            (json!({"abatementDateTime": "2020"}), true),
            (json!({"abatementAge": {"value": 3}}), true),
            (json!({"abatementPeriod": {"start": "2020"}}), true),
            (json!({"abatementRange": {"low": {"value": 3}}}), true),
            (json!({"abatementString": "in 2019"}), true),
            (json!({"abatementBoolean": true}), true),
            (json!({"abatementBoolean": false}), false),
            (json!({}), false),
        ] {
            let mut v = v;
            v["resourceType"] = json!("Condition");
            let Resource::Condition(c) = Resource::from_value(v.clone()).unwrap() else {
                panic!()
            };
            assert_eq!(c.abated, want, "{v}");
        }
    }
}
