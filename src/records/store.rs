//! The embedded record store on disk: `<data_dir>/records/`.
//!
//! Layout (docs/records.md):
//! - `store.ndjson`: the canonical store, written only by `examroom records import`.
//!   FHIR NDJSON (the bulk-data format), one resource per line, sorted by type then id,
//!   one line per (resourceType, id). Replaced atomically: written to a temporary file,
//!   flushed to disk, renamed over the old one, then the folder flushed — a crash leaves
//!   the old store or the new one, never half of one.
//! - any other `*.json` / `*.ndjson` under the folder: "loose" files (the layout before
//!   `records import`), read on start the same way, never written.
//! - `.store.lock`: held while an import reads, merges and replaces the store, so two
//!   imports cannot lose each other's changes.
//!
//! Invariants: one resource per (resourceType, id) — a later version replaces an earlier
//! one across every file; loose files are applied in path order and the store last, so
//! what was imported wins over a stale loose copy; the store file is never half-applied
//! and never written from a file that failed to parse.

use super::import::{
    self, Change, ImportError, ParsedFile, ResourceJson, ResourceKey, Skipped, Unshowable,
    fhir_files_under,
};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The canonical store file, inside `<data_dir>/records/`.
pub const STORE_FILE: &str = "store.ndjson";
const LOCK_FILE: &str = ".store.lock";

/// Why the store could not be read or written. Paths and positions only, no content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} could not be imported (nothing was written):\n  {}", if .0.len() == 1 { "a file" } else { "files" }, list(.0))]
    Unreadable(Vec<ImportError>),
    #[error(transparent)]
    Input(#[from] ImportError),
    #[error("the record store {} cannot be read at line {line}: {why}", .path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("the record store {}: {what}: {source}", .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

fn list(errors: &[ImportError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { path, what, source }
}

/// Every resource held, one per (resourceType, id).
#[derive(Debug, Clone, Default)]
pub struct ResourceSet {
    map: BTreeMap<ResourceKey, ResourceJson>,
}

/// How a set of changes landed, per resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeCounts {
    /// Resources of this type read from the files.
    pub read: usize,
    pub added: usize,
    pub replaced: usize,
    /// Read, and byte-for-byte what the store already held.
    pub unchanged: usize,
    pub deleted: usize,
    /// Deletes of resources the store did not hold.
    pub delete_absent: usize,
}

impl ResourceSet {
    /// Apply one file's changes in order, counting per type into `counts`.
    pub fn apply(&mut self, changes: Vec<Change>, counts: &mut BTreeMap<String, TypeCounts>) {
        for c in changes {
            match c {
                Change::Put(key, json) => {
                    let n = counts.entry(key.rtype.clone()).or_default();
                    n.read += 1;
                    match self.map.insert(key, json.clone()) {
                        None => n.added += 1,
                        Some(old) if old == json => n.unchanged += 1,
                        Some(_) => n.replaced += 1,
                    }
                }
                Change::Delete(key) => {
                    let n = counts.entry(key.rtype.clone()).or_default();
                    match self.map.remove(&key) {
                        Some(_) => n.deleted += 1,
                        None => n.delete_absent += 1,
                    }
                }
            }
        }
    }

    /// Add every resource of `other`, replacing those with the same (resourceType, id).
    pub fn extend(&mut self, other: ResourceSet) {
        self.map.extend(other.map);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ResourceKey, &ResourceJson)> {
        self.map.iter()
    }

    /// How many `Patient` resources.
    pub fn patients(&self) -> usize {
        self.map.keys().filter(|k| k.rtype == "Patient").count()
    }

    /// Resources per type.
    pub fn per_type(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for k in self.map.keys() {
            *m.entry(k.rtype.as_str()).or_insert(0) += 1;
        }
        m
    }

    /// The store file's content: one resource per line, sorted by type then id.
    fn to_ndjson(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.map.values().map(|j| j.as_str().len() + 1).sum());
        for j in self.map.values() {
            out.extend_from_slice(j.as_str().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// What `records import` did (or, with `dry_run`, would do).
#[derive(Debug, Default)]
pub struct ImportReport {
    pub files: Vec<PathBuf>,
    pub counts: BTreeMap<String, TypeCounts>,
    /// Per file, what was not imported and why.
    pub skipped: Vec<(PathBuf, Skipped)>,
    /// Per file, what was stored but the panel cannot read.
    pub unshowable: Vec<(PathBuf, Unshowable)>,
    pub unresolved_refs: usize,
    /// Whether the store file was replaced (false for a dry run or when nothing changed).
    pub written: bool,
    pub store_file: PathBuf,
    pub patients: usize,
    pub resources: usize,
}

impl ImportReport {
    /// For the operator's terminal: counts per type, then each skipped or unreadable
    /// resource by file and position.
    pub fn render(&self, dry_run: bool) -> String {
        let mut o = String::new();
        let files = self.files.len();
        let _ = writeln!(o, "read {files} file{}", if files == 1 { "" } else { "s" });
        let _ = writeln!(
            o,
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "resource type", "read", "added", "replaced", "unchanged", "deleted"
        );
        let mut total = TypeCounts::default();
        for (t, c) in &self.counts {
            let _ = writeln!(
                o,
                "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
                t,
                thousands(c.read),
                thousands(c.added),
                thousands(c.replaced),
                thousands(c.unchanged),
                thousands(c.deleted)
            );
            total.read += c.read;
            total.added += c.added;
            total.replaced += c.replaced;
            total.unchanged += c.unchanged;
            total.deleted += c.deleted;
            total.delete_absent += c.delete_absent;
        }
        let _ = writeln!(
            o,
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "total",
            thousands(total.read),
            thousands(total.added),
            thousands(total.replaced),
            thousands(total.unchanged),
            thousands(total.deleted)
        );
        if total.delete_absent > 0 {
            let _ = writeln!(
                o,
                "{} deletes named resources the store did not hold",
                thousands(total.delete_absent)
            );
        }
        file_list(&mut o, "skipped", "(not imported)", &self.skipped);
        let cannot_read = "imported, but the panel cannot read";
        let not_kept = "(an older version is not kept)";
        file_list(&mut o, cannot_read, not_kept, &self.unshowable);
        if self.unresolved_refs > 0 {
            let _ = writeln!(
                o,
                "{} urn: references name no entry of their bundle: left as they are, what they point at will not show",
                thousands(self.unresolved_refs)
            );
        }
        let state = if dry_run {
            "dry run, nothing written"
        } else if self.written {
            "written"
        } else {
            "unchanged, nothing to write"
        };
        let _ = writeln!(
            o,
            "store {}: {} patients, {} resources ({state})",
            self.store_file.display(),
            thousands(self.patients),
            thousands(self.resources)
        );
        o
    }
}

/// What loading the folder found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Loose files read, and whether the store file was there.
    pub loose_files: usize,
    pub store_file: bool,
    /// Loose files that could not be read (not loaded; the rest was).
    pub unreadable: Vec<ImportError>,
    pub skipped: Vec<(PathBuf, Skipped)>,
    /// Demo-patient files an earlier examroom wrote into the folder (not loaded).
    pub demo_files: Vec<PathBuf>,
}

/// `1204` as `1,204`, for counts people read.
/// `{before} {count} {after}:` and one line per file, unless there are none.
fn file_list<T: std::fmt::Display>(
    o: &mut String,
    before: &str,
    after: &str,
    files: &[(PathBuf, T)],
) {
    if files.is_empty() {
        return;
    }
    let _ = writeln!(o, "{before} {} {after}:", thousands(files.len()));
    for (path, why) in files {
        let _ = writeln!(o, "  {}: {why}", path.display());
    }
}

pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The embedded store in `<data_dir>/records/`.
#[derive(Debug, Clone)]
pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    pub fn new(records_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: records_dir.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn store_file(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// Everything the folder holds: loose files in path order, then the store file, each
    /// resource replacing an earlier one with the same (resourceType, id). A loose file
    /// that cannot be read is left out and reported; a store file that cannot be read is
    /// an error (it is ours, written atomically: something is badly wrong, and serving
    /// without it would show its patients as having no record).
    pub fn load(&self) -> Result<(ResourceSet, LoadReport), StoreError> {
        let mut set = ResourceSet::default();
        let mut report = LoadReport::default();
        let mut counts = BTreeMap::new();
        let loose = match fhir_files_under(&self.dir) {
            Ok(v) => v,
            Err((_, e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err((path, e)) => return Err(io(&path, "listing the folder")(e)),
        };
        let store_file = self.store_file();
        for path in loose.into_iter().filter(|p| *p != store_file) {
            if is_planted_demo_file(&path) {
                report.demo_files.push(path);
                continue;
            }
            report.loose_files += 1;
            match import::read_file(&path) {
                Ok(parsed) => {
                    report
                        .skipped
                        .extend(parsed.skipped.into_iter().map(|s| (path.clone(), s)));
                    set.apply(parsed.changes, &mut counts);
                }
                Err(e) => report.unreadable.push(e),
            }
        }
        if let Some(changes) = self.read_store_file()? {
            report.store_file = true;
            set.apply(changes, &mut counts);
        }
        Ok((set, report))
    }

    /// The store file's resources, or `None` when there is no store file yet.
    fn read_store_file(&self) -> Result<Option<Vec<Change>>, StoreError> {
        let path = self.store_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(StoreError::Corrupt {
                    path,
                    line: 0,
                    why: "not UTF-8 text".into(),
                });
            }
            Err(e) => return Err(io(&path, "reading")(e)),
        };
        let mut changes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, json) = import::stored_line(line).map_err(|why| StoreError::Corrupt {
                path: path.clone(),
                line: i + 1,
                why,
            })?;
            changes.push(Change::Put(key, json));
        }
        Ok(Some(changes))
    }

    /// Import files and folders: read and check every file first — if any cannot be
    /// read, write nothing — then, holding the lock, merge into the store file and
    /// replace it atomically. `dry_run` reports what would change and writes nothing.
    pub fn import(&self, paths: &[PathBuf], dry_run: bool) -> Result<ImportReport, StoreError> {
        let files = import::expand(paths)?;
        let mut parsed: Vec<(PathBuf, ParsedFile)> = Vec::with_capacity(files.len());
        let mut bad = Vec::new();
        for f in files {
            match import::read_file(&f) {
                Ok(p) => parsed.push((f, p)),
                Err(e) => bad.push(e),
            }
        }
        if !bad.is_empty() {
            return Err(StoreError::Unreadable(bad));
        }

        let mut report = ImportReport {
            store_file: self.store_file(),
            ..Default::default()
        };
        let _lock = if dry_run { None } else { Some(self.lock()?) };
        let mut set = ResourceSet::default();
        if let Some(changes) = self.read_store_file()? {
            set.apply(changes, &mut BTreeMap::new());
        }
        for (path, p) in parsed {
            report.unresolved_refs += p.unresolved_refs;
            report
                .skipped
                .extend(p.skipped.into_iter().map(|s| (path.clone(), s)));
            report
                .unshowable
                .extend(p.unshowable.into_iter().map(|u| (path.clone(), u)));
            set.apply(p.changes, &mut report.counts);
            report.files.push(path);
        }
        let changed = report
            .counts
            .values()
            .any(|c| c.added + c.replaced + c.deleted > 0);
        if changed && !dry_run {
            self.write(&set)?;
            report.written = true;
        }
        report.patients = set.patients();
        report.resources = set.len();
        Ok(report)
    }

    /// Put resources into the store (the write-back of a visit, issue 22): under the
    /// import lock, merged into the store file and replaced atomically, like an import.
    /// A resource replaces the one with its (resourceType, id); putting what the store
    /// already holds writes nothing. Whether the file was written.
    pub fn put_resources(&self, resources: &[serde_json::Value]) -> Result<bool, StoreError> {
        let mut changes = Vec::new();
        for r in resources {
            let parsed = import::parse_value(r).map_err(|why| StoreError::Corrupt {
                path: PathBuf::from("(a resource to write)"),
                line: 0,
                why,
            })?;
            changes.extend(parsed.changes);
        }
        let _lock = self.lock()?;
        let mut set = ResourceSet::default();
        if let Some(held) = self.read_store_file()? {
            set.apply(held, &mut BTreeMap::new());
        }
        let mut counts = BTreeMap::new();
        set.apply(changes, &mut counts);
        let changed = counts
            .values()
            .any(|c: &TypeCounts| c.added + c.replaced + c.deleted > 0);
        if changed {
            self.write(&set)?;
        }
        Ok(changed)
    }

    /// Take the import lock (blocks while another import holds it).
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir, "creating the folder"))?;
        let path = self.dir.join(LOCK_FILE);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path, "opening the lock file"))?;
        f.lock().map_err(io(&path, "locking"))?;
        Ok(f)
    }

    /// Replace the store file: temporary file, fsync, rename, fsync the folder.
    fn write(&self, set: &ResourceSet) -> Result<(), StoreError> {
        let path = self.store_file();
        let tmp = self
            .dir
            .join(format!(".{STORE_FILE}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                // Patient records: readable by the server's user only.
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io(&tmp, "creating"))?;
            f.write_all(&set.to_ndjson()).map_err(io(&tmp, "writing"))?;
            f.sync_all().map_err(io(&tmp, "flushing to disk"))?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(io(&path, "replacing"))?;
            #[cfg(unix)]
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir, "flushing the folder"))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// `demo-patient-N.json` holding only `demo-patient-…` patients: written by examroom
/// before demo patients needed `serve --demo`. Left on disk (never delete a clinic's
/// files) but not loaded: made-up patients must not sit among real ones.
fn is_planted_demo_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(n) = name
        .strip_prefix("demo-patient-")
        .and_then(|r| r.strip_suffix(".json"))
    else {
        return false;
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(parsed) = import::read_file(path) else {
        return false;
    };
    let patients: HashSet<&str> = parsed
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Put(k, _) if k.rtype == "Patient" => Some(k.id.as_str()),
            _ => None,
        })
        .collect();
    !patients.is_empty() && patients.iter().all(|id| id.starts_with("demo-patient-"))
}
