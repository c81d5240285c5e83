//! Reading FHIR files into changes for the embedded store: Bundles of every type
//! (collection, transaction, batch, searchset, document, history, message), NDJSON
//! bulk-export files (one resource per line) and single resources.
//!
//! This module writes nothing: it turns one file into a [`ParsedFile`] — the resources to
//! put and delete, and what it skipped and why. A file is parsed and checked entirely
//! before the caller applies any of it, so a file with a syntax error changes nothing.
//!
//! What happens to a resource, and why:
//! - It is keyed by (resourceType, id), so a re-export replaces the earlier version
//!   instead of adding a second, stale one next to it.
//! - A resource without `id` takes it from its entry: a `PUT Type/id` request, a
//!   `urn:uuid:` fullUrl (transaction bundles), or an absolute fullUrl ending in `Type/id`.
//! - References to a bundle's fullUrls (`urn:uuid:…`, absolute URLs) are rewritten to
//!   `Type/id`, so they still resolve once the bundle is gone.
//! - Otherwise its JSON text is kept as it came, minus whitespace: numbers keep their
//!   digits (`1.50` stays `1.50`; FHIR decimals carry their precision).
//! - A history bundle lists the newest version first; it is applied oldest first.
//! - Bundles inside bundles (a searchset of documents) are read the same way.
//!
//! Reasons for skipping name the resource type, the position and why — never a value
//! (ids, names and codes can be patient data).

use super::model::Resource;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a file could not be imported. Positions and kinds only: no file content.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: no such file or folder", .0.display())]
    Missing(PathBuf),
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {at}{why}", .path.display())]
    Malformed {
        path: PathBuf,
        /// `line 3: ` or `entry[4]: ` or empty for the whole file.
        at: String,
        why: String,
    },
    #[error("{}: neither *.json nor *.ndjson", .0.display())]
    NotFhirFile(PathBuf),
    #[error("{}: no *.json or *.ndjson files in it", .0.display())]
    NothingToImport(PathBuf),
}

/// A resource's identity in the store: `Type/id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub rtype: String,
    pub id: String,
}

/// One resource as compact JSON text. Only this module makes them, from text it has
/// parsed, so the text is always one valid JSON object with `resourceType` and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceJson(String);

impl ResourceJson {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one file asks of the store, in file order (a later change to the same key wins).
#[derive(Debug)]
pub enum Change {
    Put(ResourceKey, ResourceJson),
    Delete(ResourceKey),
}

/// Where in a file: `line 12, entry[3]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position(Vec<Step>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Line(usize),
    Entry(usize),
}

impl Position {
    fn then(&self, s: Step) -> Self {
        let mut v = self.0.clone();
        v.push(s);
        Self(v)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the file");
        }
        for (i, s) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            match s {
                Step::Line(n) => write!(f, "{sep}line {n}")?,
                Step::Entry(n) => write!(f, "{sep}entry[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Why a resource or entry was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NotAnObject,
    NoResourceType,
    IdNotAString,
    NoId,
    ConditionalUpdate,
    ConditionalDelete,
    Operation,
    ReadRequest,
    NoResource,
    SearchOutcome,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAnObject => "not a JSON object",
            Self::NoResourceType => "no resourceType",
            Self::IdNotAString => "id is not a string",
            Self::NoId => "no id, and no urn:uuid fullUrl or PUT request URL to take one from",
            Self::ConditionalUpdate => {
                "conditional update (a search URL): which resource it replaces cannot be known here"
            }
            Self::ConditionalDelete => {
                "conditional delete (a search URL): which resource it deletes cannot be known here"
            }
            Self::Operation => "an operation request ($…), not a resource to store",
            Self::ReadRequest => "a read or search request, not a resource",
            Self::NoResource => "an entry without a resource",
            Self::SearchOutcome => "a search outcome (OperationOutcome), not part of the record",
        })
    }
}

/// A resource or entry that was not imported.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub at: Position,
    /// The resource type when known (never a value).
    pub rtype: Option<String>,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rtype {
            Some(t) => write!(f, "{}: {t}: {}", self.at, self.reason),
            None => write!(f, "{}: {}", self.at, self.reason),
        }
    }
}

/// The resource types the panel reads; others are stored but not read into memory.
pub const PANEL_TYPES: &[&str] = &[
    "Patient",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
    "Condition",
    "Observation",
    "Immunization",
    "Encounter",
];

/// A resource that is stored (it replaces any older version: keeping that one would
/// show a fact the source has since changed) but that the panel cannot read.
#[derive(Debug, Clone)]
pub struct Unshowable {
    pub at: Position,
    pub rtype: String,
    /// From [`Resource::from_value`]: type and position, never a value.
    pub why: String,
}

impl fmt::Display for Unshowable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.why)
    }
}

/// Everything one file holds, checked, ready to apply.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub changes: Vec<Change>,
    pub skipped: Vec<Skipped>,
    pub unshowable: Vec<Unshowable>,
    /// `urn:` references that name no entry of their bundle (left as they are: they will
    /// not resolve, so what they point at will not show).
    pub unresolved_refs: usize,
}

/// Whether a file's name says it holds FHIR JSON or NDJSON.
pub fn is_fhir_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|x| x.to_str()),
        Some("json" | "ndjson")
    )
}

/// The files to import for each path given, in order: a file as given (it must be
/// `*.json` or `*.ndjson`), a folder's FHIR files recursively, sorted by path. Hidden
/// files and folders (a leading `.`) are passed over.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImportError::Missing(p.clone()),
            _ => ImportError::Read {
                path: p.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            let found =
                fhir_files_under(p).map_err(|(path, source)| ImportError::Read { path, source })?;
            if found.is_empty() {
                return Err(ImportError::NothingToImport(p.clone()));
            }
            out.extend(found);
        } else if is_fhir_file(p) {
            out.push(p.clone());
        } else {
            return Err(ImportError::NotFhirFile(p.clone()));
        }
    }
    Ok(out)
}

/// `*.json` and `*.ndjson` under `dir`, recursively, sorted; hidden entries are passed over.
/// Symlinked folders are followed once (a link back up the tree is not a loop).
pub fn fhir_files_under(dir: &Path) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        if let Ok(real) = std::fs::canonicalize(&d)
            && !seen.insert(real)
        {
            continue;
        }
        let rd = std::fs::read_dir(&d).map_err(|e| (d.clone(), e))?;
        for e in rd {
            let e = e.map_err(|e| (d.clone(), e))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            let ft = e.file_type().map_err(|e| (p.clone(), e))?;
            // Follow a symlink to see whether it is a folder.
            let is_dir = ft.is_dir() || (ft.is_symlink() && p.is_dir());
            if is_dir {
                stack.push(p);
            } else if is_fhir_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read and parse one file (`*.ndjson`: one resource per line; otherwise one JSON value).
pub fn read_file(path: &Path) -> Result<ParsedFile, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ImportError::Malformed {
        path: path.to_owned(),
        at: String::new(),
        why: format!("not UTF-8 text (at byte {})", e.valid_up_to()),
    })?;
    // Some exporters (Windows tools) start the file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ndjson = path.extension().is_some_and(|x| x == "ndjson");
    let parsed = if ndjson {
        parse_ndjson(text)
    } else {
        parse_json(text)
    };
    parsed.map_err(|(at, why)| ImportError::Malformed {
        path: path.to_owned(),
        at: if at.0.is_empty() {
            String::new()
        } else {
            format!("{at}: ")
        },
        why,
    })
}

/// A file-level problem: where, and why.
type Bad = (Position, String);

/// One JSON value: a Bundle or a single resource.
pub fn parse_json(text: &str) -> Result<ParsedFile, Bad> {
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| (Position::default(), syntax(&e)))?;
    let mut out = ParsedFile::default();
    read_resource(raw, &Position::default(), &mut out)?;
    Ok(out)
}

/// NDJSON: one resource per line (blank lines are allowed).
pub fn parse_ndjson(text: &str) -> Result<ParsedFile, Bad> {
    let mut out = ParsedFile::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = Position(vec![Step::Line(i + 1)]);
        let raw: &RawValue = serde_json::from_str(line).map_err(|e| (at.clone(), syntax(&e)))?;
        read_resource(raw, &at, &mut out)?;
    }
    Ok(out)
}

/// A serde_json error as kind and position only (its message can quote a value).
fn syntax(e: &serde_json::Error) -> String {
    super::model::redacted(e)
}

/// The fields of a resource this module looks at; the rest is kept as text.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "resourceType")]
    rtype: Option<Value>,
    id: Option<Value>,
}

#[derive(Deserialize)]
struct BundleHead<'a> {
    #[serde(rename = "type")]
    type_: Option<Value>,
    #[serde(default, borrow)]
    entry: Vec<EntryHead<'a>>,
}

#[derive(Deserialize)]
struct EntryHead<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<Value>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    request: Option<RequestHead>,
    search: Option<SearchHead>,
}

#[derive(Deserialize)]
struct RequestHead {
    method: Option<Value>,
    url: Option<Value>,
}

#[derive(Deserialize)]
struct SearchHead {
    mode: Option<Value>,
}

/// The top-level resource of a file or an NDJSON line.
fn read_resource(raw: &RawValue, at: &Position, out: &mut ParsedFile) -> Result<(), Bad> {
    if !raw.get().starts_with('{') {
        out.skipped.push(Skipped {
            at: at.clone(),
            rtype: None,
            reason: SkipReason::NotAnObject,
        });
        return Ok(());
    }
    let head: Head = serde_json::from_str(raw.get()).map_err(|e| (at.clone(), syntax(&e)))?;
    let Some(rtype) = head.rtype.as_ref().and_then(Value::as_str) else {
        out.skipped.push(Skipped {
            at: at.clone(),
            rtype: None,
            reason: SkipReason::NoResourceType,
        });
        return Ok(());
    };
    if rtype == "Bundle" {
        return read_bundle(raw, at, &Scope::root(), out);
    }
    let id = match head.id {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            out.skipped.push(Skipped {
                at: at.clone(),
                rtype: Some(rtype.to_owned()),
                reason: SkipReason::IdNotAString,
            });
            return Ok(());
        }
    };
    let Some(id) = id else {
        out.skipped.push(Skipped {
            at: at.clone(),
            rtype: Some(rtype.to_owned()),
            reason: SkipReason::NoId,
        });
        return Ok(());
    };
    let key = ResourceKey {
        rtype: rtype.to_owned(),
        id,
    };
    let json = rewrite(raw, None, &Scope::root(), &mut out.unresolved_refs)
        .map_err(|e| (at.clone(), syntax(&e)))?;
    out.put(key, json, at);
    Ok(())
}

impl ParsedFile {
    /// Add a resource, noting it when the panel will not be able to read it.
    fn put(&mut self, key: ResourceKey, json: ResourceJson, at: &Position) {
        if PANEL_TYPES.contains(&key.rtype.as_str()) {
            let typed = serde_json::from_str::<Value>(json.as_str())
                .map_err(|e| syntax(&e))
                .and_then(Resource::from_value);
            if let Err(why) = typed {
                self.unshowable.push(Unshowable {
                    at: at.clone(),
                    rtype: key.rtype.clone(),
                    why,
                });
            }
        }
        self.changes.push(Change::Put(key, json));
    }
}

/// fullUrl → `Type/id` for the bundles around a resource, innermost first.
struct Scope<'p> {
    urls: HashMap<String, String>,
    outer: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    fn root() -> Scope<'static> {
        Scope {
            urls: HashMap::new(),
            outer: None,
        }
    }

    fn resolve(&self, reference: &str) -> Option<&str> {
        self.urls
            .get(reference)
            .map(String::as_str)
            .or_else(|| self.outer.and_then(|o| o.resolve(reference)))
    }
}

/// What one bundle entry turned out to be.
enum Planned<'a> {
    Put(ResourceKey, &'a RawValue, bool),
    Delete(ResourceKey),
    Bundle(&'a RawValue),
    Skip(Option<String>, SkipReason),
}

fn read_bundle(
    raw: &RawValue,
    at: &Position,
    outer: &Scope<'_>,
    out: &mut ParsedFile,
) -> Result<(), Bad> {
    let bundle: BundleHead<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        (
            at.clone(),
            format!("a Bundle whose entries cannot be read: {}", syntax(&e)),
        )
    })?;
    let history = bundle.type_.as_ref().and_then(Value::as_str) == Some("history");
    let mut scope = Scope {
        urls: HashMap::new(),
        outer: Some(outer),
    };
    // First every entry's key, so references to later entries resolve too.
    let mut planned = Vec::with_capacity(bundle.entry.len());
    for entry in &bundle.entry {
        let p = plan_entry(entry, at)?;
        if let (Planned::Put(key, _, _), Some(url)) = (&p, str_of(&entry.full_url)) {
            scope
                .urls
                .insert(url.to_owned(), format!("{}/{}", key.rtype, key.id));
        }
        planned.push(p);
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    if history {
        // History bundles list the newest version first; apply the oldest first.
        order.reverse();
    }
    for i in order {
        let here = at.then(Step::Entry(i));
        match &planned[i] {
            Planned::Put(key, resource, id_missing) => {
                let id = id_missing.then_some(key.id.as_str());
                let json = rewrite(resource, id, &scope, &mut out.unresolved_refs)
                    .map_err(|e| (here.clone(), syntax(&e)))?;
                out.put(key.clone(), json, &here);
            }
            Planned::Delete(key) => out.changes.push(Change::Delete(key.clone())),
            Planned::Bundle(inner) => read_bundle(inner, &here, &scope, out)?,
            Planned::Skip(rtype, reason) => out.skipped.push(Skipped {
                at: here,
                rtype: rtype.clone(),
                reason: *reason,
            }),
        }
    }
    Ok(())
}

fn str_of(v: &Option<Value>) -> Option<&str> {
    v.as_ref().and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Decide what an entry is, without writing anything yet.
fn plan_entry<'a>(entry: &EntryHead<'a>, at: &Position) -> Result<Planned<'a>, Bad> {
    let method = entry
        .request
        .as_ref()
        .and_then(|r| str_of(&r.method))
        .map(str::to_ascii_uppercase);
    let url = entry.request.as_ref().and_then(|r| str_of(&r.url));
    let Some(resource) = entry.resource else {
        return Ok(match (method.as_deref(), url) {
            (Some("DELETE"), Some(u)) if u.contains('?') => {
                Planned::Skip(None, SkipReason::ConditionalDelete)
            }
            (Some("DELETE"), Some(u)) => match super::record::relative_ref(u) {
                Some((t, id)) => Planned::Delete(ResourceKey {
                    rtype: t.to_owned(),
                    id: id.to_owned(),
                }),
                None => Planned::Skip(None, SkipReason::ConditionalDelete),
            },
            (Some("GET" | "HEAD"), _) => Planned::Skip(None, SkipReason::ReadRequest),
            _ => Planned::Skip(None, SkipReason::NoResource),
        });
    };
    if !resource.get().starts_with('{') {
        return Ok(Planned::Skip(None, SkipReason::NotAnObject));
    }
    let head: Head = serde_json::from_str(resource.get()).map_err(|e| (at.clone(), syntax(&e)))?;
    let Some(rtype) = head.rtype.as_ref().and_then(Value::as_str) else {
        return Ok(Planned::Skip(None, SkipReason::NoResourceType));
    };
    let named = |reason| Ok(Planned::Skip(Some(rtype.to_owned()), reason));
    if rtype == "Bundle" {
        return Ok(Planned::Bundle(resource));
    }
    if let Some(u) = url
        && (u.starts_with('$') || u.contains("/$"))
    {
        return named(SkipReason::Operation);
    }
    if entry.search.as_ref().and_then(|s| str_of(&s.mode)) == Some("outcome") {
        return named(SkipReason::SearchOutcome);
    }
    let own_id = match &head.id {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return named(SkipReason::IdNotAString),
    };
    if let Some(id) = own_id {
        let key = ResourceKey {
            rtype: rtype.to_owned(),
            id,
        };
        return Ok(Planned::Put(key, resource, false));
    }
    // No id of its own: from the request, else the fullUrl.
    if method.as_deref() == Some("PUT") {
        match url {
            Some(u) if u.contains('?') => return named(SkipReason::ConditionalUpdate),
            Some(u) => {
                if let Some((t, id)) = super::record::relative_ref(u)
                    && t == rtype
                {
                    return Ok(Planned::Put(key(rtype, id), resource, true));
                }
            }
            None => {}
        }
    }
    let full_url = str_of(&entry.full_url);
    if let Some(uuid) = full_url.and_then(|u| u.strip_prefix("urn:uuid:"))
        && is_fhir_id(uuid)
    {
        return Ok(Planned::Put(key(rtype, uuid), resource, true));
    }
    if let Some((t, id)) = full_url.and_then(super::record::relative_ref)
        && t == rtype
        && is_fhir_id(id)
    {
        return Ok(Planned::Put(key(rtype, id), resource, true));
    }
    named(SkipReason::NoId)
}

fn key(rtype: &str, id: &str) -> ResourceKey {
    ResourceKey {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

/// FHIR `id`: 1–64 of `A-Z a-z 0-9 - .`.
fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The resource as compact JSON: `id` added after `resourceType` when given, references
/// to the bundle's fullUrls rewritten to `Type/id`, everything else as it came.
fn rewrite(
    raw: &RawValue,
    add_id: Option<&str>,
    scope: &Scope<'_>,
    unresolved: &mut usize,
) -> Result<ResourceJson, serde_json::Error> {
    let mut out = String::with_capacity(raw.get().len());
    let fields: Fields<'_> = serde_json::from_str(raw.get())?;
    out.push('{');
    let mut first = true;
    let mut id_written = add_id.is_none();
    for (k, v) in &fields.0 {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::to_string(k)?);
        out.push(':');
        write_value(v, scope, &mut out, unresolved)?;
        if !id_written && k == "resourceType" {
            out.push_str(",\"id\":");
            out.push_str(&serde_json::to_string(&add_id)?);
            id_written = true;
        }
    }
    if !id_written {
        // No resourceType key cannot happen (checked before); keep the id anyway.
        if !first {
            out.push(',');
        }
        out.push_str("\"id\":");
        out.push_str(&serde_json::to_string(&add_id)?);
    }
    out.push('}');
    Ok(ResourceJson(out))
}

fn write_value(
    raw: &RawValue,
    scope: &Scope<'_>,
    out: &mut String,
    unresolved: &mut usize,
) -> Result<(), serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let fields: Fields<'_> = serde_json::from_str(text)?;
            out.push('{');
            for (i, (k, v)) in fields.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k)?);
                out.push(':');
                if k == "reference" && v.get().starts_with('"') {
                    let r: String = serde_json::from_str(v.get())?;
                    if let Some(new) = scope.resolve(&r) {
                        out.push_str(&serde_json::to_string(new)?);
                        continue;
                    }
                    if r.starts_with("urn:") {
                        *unresolved += 1;
                    }
                }
                write_value(v, scope, out, unresolved)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, scope, out, unresolved)?;
            }
            out.push(']');
        }
        // Strings, numbers, true/false/null: the token exactly as written.
        _ => out.push_str(text),
    }
    Ok(())
}

/// A JSON object's members in their order, values as raw text.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Fields<'a>, M::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some((k, val)) = m.next_entry::<String, &'a RawValue>()? {
                    v.push((k, val));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Read one line of the store file, which this module wrote: the key from its head, the
/// text as it is (already compact, ids set, references rewritten).
pub fn stored_line(line: &str) -> Result<(ResourceKey, ResourceJson), String> {
    let head: Head = serde_json::from_str(line).map_err(|e| syntax(&e))?;
    let rtype = head
        .rtype
        .as_ref()
        .and_then(Value::as_str)
        .ok_or("no resourceType")?;
    let id = head
        .id
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no id")?;
    Ok((key(rtype, id), ResourceJson(line.to_owned())))
}

/// Parse a JSON value made in memory (tests, the bench, demo patients) as if read from a
/// file. The error says where and why, as for a file.
pub fn parse_value(v: &Value) -> Result<ParsedFile, String> {
    let text = serde_json::to_string(v).map_err(|e| syntax(&e))?;
    parse_json(&text).map_err(|(at, why)| format!("{at}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn puts(p: &ParsedFile) -> Vec<(String, Value)> {
        p.changes
            .iter()
            .filter_map(|c| match c {
                Change::Put(k, j) => Some((
                    format!("{}/{}", k.rtype, k.id),
                    serde_json::from_str(j.as_str()).unwrap(),
                )),
                Change::Delete(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_transaction_without_ids_takes_them_from_urn_uuids_and_rewrites_references() {
        let b = r#"{"resourceType":"Bundle","type":"transaction","entry":[
          {"fullUrl":"urn:uuid:0b8a4a4c-1f2e-4c7b-9d55-3c1e2f1a9b01",
           "resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
          {"fullUrl":"urn:uuid:7d1c8e0e-6a43-4b38-a8a6-0e9f5f0d2c02",
           "resource":{"resourceType":"Observation","status":"final",
             "valueQuantity":{"value":1.50,"unit":"mmol/L"},
             "subject":{"reference":"urn:uuid:0b8a4a4c-1f2e-4c7b-9d55-3c1e2f1a9b01"},
             "focus":[{"reference":"urn:uuid:ffffffff-0000-0000-0000-000000000000"}]},
           "request":{"method":"POST","url":"Observation"}}]}"#;
        let p = parse_json(b).unwrap();
        let got = puts(&p);
        assert_eq!(got[0].0, "Patient/0b8a4a4c-1f2e-4c7b-9d55-3c1e2f1a9b01");
        assert_eq!(got[0].1["id"], "0b8a4a4c-1f2e-4c7b-9d55-3c1e2f1a9b01");
        assert_eq!(
            got[1].1["subject"]["reference"],
            "Patient/0b8a4a4c-1f2e-4c7b-9d55-3c1e2f1a9b01"
        );
        assert_eq!(p.unresolved_refs, 1, "the dangling urn is counted");
        // The decimal keeps its digits.
        let Change::Put(_, text) = &p.changes[1] else {
            panic!()
        };
        assert!(
            text.as_str().contains(r#""value":1.50"#),
            "{}",
            text.as_str()
        );
        assert!(!text.as_str().contains('\n'));
    }

    #[test]
    fn a_history_bundle_is_applied_oldest_first_and_deletes_are_kept() {
        let b = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "AllergyIntolerance", "id": "a", "clinicalStatus": {"text": "resolved"}},
             "request": {"method": "PUT", "url": "AllergyIntolerance/a"}},
            {"resource": {"resourceType": "AllergyIntolerance", "id": "a", "clinicalStatus": {"text": "active"}},
             "request": {"method": "POST", "url": "AllergyIntolerance"}},
            {"request": {"method": "DELETE", "url": "Condition/c"}},
        ]});
        let p = parse_value(&b).unwrap();
        assert!(matches!(&p.changes[0], Change::Delete(k) if k.rtype == "Condition"));
        let got = puts(&p);
        assert_eq!(got.last().unwrap().1["clinicalStatus"]["text"], "resolved");
    }

    #[test]
    fn entries_that_are_not_resources_are_skipped_with_a_reason_and_no_value() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Patient", "name": [{"family": "Secret"}]},
             "request": {"method": "PUT", "url": "Patient?identifier=http://x|Secret"}},
            {"request": {"method": "DELETE", "url": "Patient?identifier=123"}},
            {"request": {"method": "GET", "url": "Patient?name=peter"}},
            {"resource": {"resourceType": "Parameters"}, "request": {"method": "POST", "url": "ValueSet/$lookup"}},
            {"resource": {"name": "no type"}},
            {"resource": {"resourceType": "Observation"}},
        ]});
        let p = parse_value(&b).unwrap();
        assert!(p.changes.is_empty());
        let reasons: Vec<_> = p.skipped.iter().map(|s| s.reason).collect();
        assert_eq!(
            reasons,
            [
                SkipReason::ConditionalUpdate,
                SkipReason::ConditionalDelete,
                SkipReason::ReadRequest,
                SkipReason::Operation,
                SkipReason::NoResourceType,
                SkipReason::NoId
            ]
        );
        let text: String = p.skipped.iter().map(|s| format!("{s}\n")).collect();
        assert!(
            !text.contains("Secret") && !text.contains("peter"),
            "{text}"
        );
        assert!(text.contains("entry[5]: Observation: no id"), "{text}");
    }

    #[test]
    fn a_syntax_error_names_the_line_and_no_content() {
        let err = parse_ndjson("{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"Sec\n")
            .unwrap_err();
        assert_eq!(err.0.to_string(), "line 2");
        assert!(!err.1.contains("Sec"), "{}", err.1);
    }

    #[test]
    fn nested_bundles_resolve_their_own_full_urls() {
        let doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "pat"}},
            {"fullUrl": "http://example.org/fhir/Condition/c1",
             "resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:p"}}},
        ]});
        let outer =
            json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": doc}]});
        let got = puts(&parse_value(&outer).unwrap());
        assert_eq!(got[1].0, "Condition/c1");
        assert_eq!(got[1].1["subject"]["reference"], "Patient/pat");
    }
}
