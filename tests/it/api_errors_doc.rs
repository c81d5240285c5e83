//! docs/api.md lists every error code the HTTP API can answer (most in its Errors table,
//! route-specific ones beside their route). The codes are read from the
//! source: each `ApiError` built with a literal code, and every `code()` of an error enum
//! (identity, links, chart, tokens) whose codes reach HTTP clients.

use crate::kit::rust_files;
use std::collections::BTreeSet;
use std::path::Path;

/// The quoted snake_case word that starts at `text` (after optional whitespace), if any.
fn quoted_code(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let word = &rest[..end];
    (!word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(word)
}

fn codes_in(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ctor in [
        "ApiError::new(",
        "ApiError::unauthorized(",
        "ApiError::forbidden(",
    ] {
        for (i, _) in code.match_indices(ctor) {
            let mut args = &code[i + ctor.len()..];
            // `new` takes the status first.
            if ctor == "ApiError::new(" {
                let Some(comma) = args.find(',') else {
                    continue;
                };
                args = &args[comma + 1..];
            }
            if let Some(c) = quoted_code(args) {
                out.insert(c.to_owned());
            }
        }
    }
    // `fn code(&self) -> &'static str { match self { … => "code", … } }`
    for (i, _) in code.match_indices("fn code(") {
        let body = &code[i..];
        let end = body
            .find("\n}")
            .or_else(|| body.find("\n    }\n"))
            .unwrap_or(body.len());
        for (j, _) in body[..end].match_indices("=>") {
            if let Some(c) = quoted_code(&body[..end][j + 2..]) {
                out.insert(c.to_owned());
            }
        }
    }
    out
}

fn documented(doc: &str, code: &str) -> bool {
    doc.split('`').skip(1).step_by(2).any(|d| {
        d == code
            || d.strip_suffix('*').is_some_and(|p| code.starts_with(p))
            || d.strip_suffix("(s)")
                .is_some_and(|p| code == p || code == format!("{p}s"))
    })
}

#[test]
fn every_error_code_the_api_answers_is_in_docs_api_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    let mut files = Vec::new();
    for dir in ["src/http", "src/identity"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut codes = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        codes.extend(codes_in(text));
    }
    assert!(codes.len() > 30, "the scan found too few codes: {codes:?}");
    let missing: Vec<&String> = codes.iter().filter(|c| !documented(&doc, c)).collect();
    assert!(
        missing.is_empty(),
        "error codes the API answers that docs/api.md does not list: {missing:?}"
    );
}

#[test]
fn the_scan_finds_codes_in_both_shapes() {
    let code = r#"
        fn f() { ApiError::new(StatusCode::GONE, "gone_away", "x"); ApiError::forbidden("nope", "y"); }
        impl E { pub fn code(&self) -> &'static str { match self { E::A => "first_one", E::B => other() } }
}
    "#;
    let found = codes_in(code);
    for c in ["gone_away", "nope", "first_one"] {
        assert!(found.contains(c), "{c} in {found:?}");
    }
    assert!(documented("| `token_*` |", "token_expired"));
    assert!(!documented("| `token_*` |", "tokens"));
}
