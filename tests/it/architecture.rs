//! The layers docs/architecture.md draws, checked against the source: every
//! `crate::…` / `super::…` path in `src/` is an arrow from the file's part of the server
//! to the part it names, and an arrow may only run down the layers:
//!
//! entry (main, cli, app) → edge (http, signalling) → edge state → use cases
//! (identity, records' panel, history, media) → ports (the live store, durable store
//! and record source traits) → adapters (memory/Redis, SQLite/PostgreSQL, FHIR/embedded)
//! → model (visit state machine, ids, protocol, config, audit chain, ICE, metrics).
//!
//! Besides the direction: a use case never names another use case or an adapter (it
//! goes through a port); no part below the edge names axum or a socket; and the parts
//! form no cycle. Test code inside `src/` (`#[cfg(test)]` modules) is not counted.

use crate::kit::rust_files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Entry,
    Edge,
    EdgeState,
    UseCase,
    Port,
    Adapter,
    Model,
}

/// Each part of the server: a module path prefix and its layer. The longest prefix that
/// matches a module names its part.
const PARTS: &[(&str, Layer)] = &[
    ("main", Layer::Entry),
    ("lib", Layer::Entry),
    ("cli", Layer::Entry),
    ("app", Layer::Entry),
    ("bin", Layer::Entry),
    ("http", Layer::Edge),
    ("signalling", Layer::Edge),
    ("state", Layer::EdgeState),
    ("identity", Layer::UseCase),
    ("history", Layer::UseCase),
    ("directory", Layer::UseCase),
    ("referrals", Layer::UseCase),
    ("appointments", Layer::UseCase),
    ("media", Layer::UseCase),
    ("records", Layer::UseCase),
    ("records::cache", Layer::UseCase),
    ("records::write_back", Layer::UseCase),
    ("live", Layer::Port),
    ("live::counters", Layer::Port),
    ("durable", Layer::Port),
    ("durable::stats", Layer::Port),
    ("notify", Layer::Port),
    ("notify::mail", Layer::Adapter),
    ("notify::text", Layer::Adapter),
    ("live::memory", Layer::Adapter),
    ("live::redis", Layer::Adapter),
    ("durable::sql", Layer::Adapter),
    ("durable::sqlite", Layer::Adapter),
    ("durable::postgres", Layer::Adapter),
    ("durable::methods", Layer::Adapter),
    ("records::fhir", Layer::Adapter),
    ("records::smart", Layer::Adapter),
    ("records::embedded", Layer::Adapter),
    ("records::store", Layer::Adapter),
    ("records::import", Layer::Adapter),
    ("visit", Layer::Model),
    ("scheduling", Layer::Model),
    ("gazetteer", Layer::Model),
    ("ids", Layer::Model),
    ("protocol", Layer::Model),
    ("config", Layer::Model),
    ("audit", Layer::Model),
    ("ice", Layer::Model),
    ("metrics", Layer::Model),
    ("records::model", Layer::Model),
    ("records::error", Layer::Model),
    ("records::record", Layer::Model),
    ("records::summary", Layer::Model),
    ("records::demo", Layer::Model),
    ("records::visit_note", Layer::Model),
    ("records::service_request", Layer::Model),
];

/// `records` itself is the record-source port (the `RecordSource` trait and `open`);
/// its panel cache is the use case. The table above lists `records` as a use case so
/// that a new file there is not silently a port; these module paths are the port.
const PORT_MODULES: &[&str] = &["records"];

fn part_of(module: &[String]) -> Option<(String, Layer)> {
    let path = module.join("::");
    if PORT_MODULES.contains(&path.as_str()) {
        return Some((path, Layer::Port));
    }
    PARTS
        .iter()
        .filter(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(prefix, layer)| (prefix.to_string(), *layer))
}

/// The module path of a source file: `src/http/admin/rooms.rs` → `http::admin::rooms`.
fn module_of(file: &Path, src: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The file's code without its test module and without comments.
fn production_code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `use a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| {
            expand_use(i)
                .into_iter()
                .map(move |e| format!("{prefix}{e}"))
        })
        .collect()
}

/// Every module path the code names, resolved against the file's own module.
fn named_modules(code: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        paths.extend(expand_use(&rest[..end]));
    }
    // Paths written inline, outside `use` lines.
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            paths.push(tail[..end].to_owned());
            rest = &rest[i + start.len()..];
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let path = path.replace("$crate::", "crate::");
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut resolved: Vec<String> = match segments.first() {
            Some(&"crate") => Vec::new(),
            Some(&"super") => module.to_vec(),
            Some(&"self") => module.to_vec(),
            _ => continue,
        };
        let mut iter = segments.iter().peekable();
        if iter.peek() == Some(&&"crate") {
            iter.next();
        }
        while let Some(s) = iter.peek() {
            match **s {
                "super" => {
                    resolved.pop();
                }
                "self" => {}
                _ => break,
            }
            iter.next();
        }
        // Module segments are lower case; the first capitalised or last one is an item.
        for s in iter {
            if s.starts_with(|c: char| c.is_uppercase()) {
                break;
            }
            resolved.push((*s).to_owned());
        }
        if !resolved.is_empty() {
            out.insert(resolved);
        }
    }
    out
}

/// The longest prefix of `path` that is a module of the crate (paths may end in an item
/// written in lower case: a function or a constant).
fn module_prefix(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

struct Arrow {
    from_file: String,
    from: (String, Layer),
    to: (String, Layer),
    named: String,
}

fn arrows() -> Vec<Arrow> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f, &src)).collect();
    let mut out = Vec::new();
    for file in &files {
        let module = module_of(file, &src);
        let Some(from) = part_of(&module) else {
            panic!(
                "{}: no layer for module `{}`; add it to PARTS in this test and to docs/architecture.md",
                file.display(),
                module.join("::")
            );
        };
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        for named in named_modules(&code, &module) {
            let Some(target) = module_prefix(&named, &modules) else {
                continue;
            };
            let Some(to) = part_of(&target) else { continue };
            if to.0 == from.0 {
                continue;
            }
            out.push(Arrow {
                from_file: file.strip_prefix(root).unwrap().display().to_string(),
                from: from.clone(),
                to,
                named: named.join("::"),
            });
        }
    }
    out
}

/// Whether an arrow from part `from` to part `to` may exist. Adapters implement ports,
/// so they name their port (dependency inversion: the port is the use cases' and the
/// adapter plugs into it); a port may name its own adapters only to pick one at start-up.
fn allowed(from: &(String, Layer), to: &(String, Layer)) -> Result<(), &'static str> {
    use Layer::*;
    let family = |p: &str| p.split("::").next().unwrap_or_default().to_owned();
    let same_family = family(&from.0) == family(&to.0);
    match (from.1, to.1) {
        (Entry, _) => Ok(()),
        (Edge, Edge | EdgeState | UseCase | Port | Model) => Ok(()),
        (Edge, _) => Err("the edge names an adapter; only the entry point wires them"),
        (EdgeState, UseCase | Port | Model) => Ok(()),
        (UseCase, UseCase) => Err("a use case names another use case"),
        (UseCase, Adapter) => Err("a use case names an adapter instead of its port"),
        (UseCase, Port | Model) => Ok(()),
        (Port, Port | Adapter) if same_family => Ok(()),
        (Adapter, Adapter) if same_family => Ok(()),
        (Adapter, Adapter) => Err("an adapter names another store's adapter"),
        (Port | Adapter, Port) if same_family || from.1 == Port => Ok(()),
        (Adapter, Port) => Ok(()),
        (Port | Adapter | Model, Model) => Ok(()),
        _ => Err("the arrow runs up the layers"),
    }
}

#[test]
fn every_arrow_runs_down_the_layers() {
    let bad: Vec<String> = arrows()
        .into_iter()
        .filter_map(|a| {
            allowed(&a.from, &a.to).err().map(|why| {
                format!(
                    "{}: {} ({:?}) -> {} ({:?}) via `{}`: {why}",
                    a.from_file, a.from.0, a.from.1, a.to.0, a.to.1, a.named
                )
            })
        })
        .collect();
    assert!(
        bad.is_empty(),
        "arrows against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_parts_form_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in arrows() {
        graph.entry(a.from.0).or_default().insert(a.to.0);
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        let cycle = visit(n, &graph, &mut state, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "parts in a cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn nothing_below_the_edge_sees_http_or_sockets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let module = module_of(&file, &src);
        let Some((_, layer)) = part_of(&module) else {
            continue;
        };
        if layer <= Layer::EdgeState {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        for word in ["axum::", "tokio_tungstenite", "AppState"] {
            if code.contains(word) {
                bad.push(format!("{} ({layer:?}) names `{word}`", file.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_layer_check_sees_an_upward_arrow() {
    // The checker itself: an adapter naming the edge, a use case naming another, and a
    // grouped import are all found.
    let module = vec!["live".to_owned(), "redis".to_owned()];
    let named = named_modules(
        "use crate::{http::error::ApiError, ids::RoomId};\nfn f() { super::super::identity::x(); }",
        &module,
    );
    let names: Vec<String> = named.iter().map(|n| n.join("::")).collect();
    assert!(names.contains(&"http::error".to_owned()), "{names:?}");
    assert!(names.contains(&"ids".to_owned()), "{names:?}");
    assert!(names.contains(&"identity::x".to_owned()), "{names:?}");
    let part = |m: &[&str]| part_of(&m.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let redis = part(&["live", "redis"]);
    assert!(allowed(&redis, &part(&["http", "error"])).is_err());
    assert!(allowed(&redis, &part(&["live"])).is_ok());
    assert!(allowed(&redis, &part(&["durable", "sqlite"])).is_err());
    assert!(allowed(&part(&["identity"]), &part(&["records", "cache"])).is_err());
    assert!(allowed(&part(&["visit"]), &part(&["identity"])).is_err());
    assert!(allowed(&part(&["identity"]), &part(&["durable", "postgres"])).is_err());
}

#[test]
fn the_server_does_not_depend_on_its_tools() {
    // The load generator and benches live in crates/examroom-load, which depends on the
    // server; the server's own dependencies must not pull the tooling back in.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("\n[")
        .find(|section| section.starts_with("dependencies]"))
        .expect("a [dependencies] section");
    for tool in ["examroom-load", "hdrhistogram"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(tool)),
            "the server depends on {tool}"
        );
    }
}
