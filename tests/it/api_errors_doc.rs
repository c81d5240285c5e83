//! The error codes clients switch on are two enums in `examroom-protocol`
//! (`ApiErrorCode` for HTTP, `ErrorCode` for the WebSocket), and the documents list exactly
//! those: every code of the enum is in the document, and every code the document's error
//! table names is one of the enum's. The source keeps to the enums: no handler writes an
//! `"error"` member by hand.

use crate::kit::rust_files;
use examroom::protocol::{ApiErrorCode, ErrorCode};
use std::collections::BTreeSet;
use std::path::Path;

fn doc(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name),
    )
    .unwrap()
}

/// Every backticked word of the document (a code is written as `code`).
fn backticked(doc: &str) -> BTreeSet<&str> {
    doc.split('`').skip(1).step_by(2).collect()
}

/// The lines of the table that follows `heading`, up to the first line that is not a row.
fn table_rows<'a>(doc: &'a str, heading: &str) -> Vec<&'a str> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .collect()
}

/// The snake_case codes written in backticks in column `col` of a table row.
fn codes_in_cell(row: &str, col: usize) -> Vec<&str> {
    let cell = row.split('|').nth(col + 1).unwrap_or_default();
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

#[test]
fn docs_api_md_lists_every_http_error_code() {
    let doc = doc("api.md");
    let words = backticked(&doc);
    let missing: Vec<&str> = ApiErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !words.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "HTTP error codes that docs/api.md does not list: {missing:?}"
    );
}

#[test]
fn every_code_in_the_api_error_table_is_one_the_server_answers() {
    let doc = doc("api.md");
    let rows = table_rows(&doc, "## Errors");
    assert!(rows.len() > 20, "the Errors table was not found: {rows:?}");
    let known: BTreeSet<&str> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let unknown: Vec<&str> = rows
        .iter()
        .flat_map(|r| codes_in_cell(r, 1))
        .filter(|c| !known.contains(c))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/api.md's Errors table names codes no handler answers: {unknown:?}"
    );
}

#[test]
fn docs_protocol_md_lists_exactly_the_websocket_error_codes() {
    let doc = doc("protocol.md");
    let rows = table_rows(&doc, "## Error codes");
    let documented: BTreeSet<&str> = rows.iter().flat_map(|r| codes_in_cell(r, 0)).collect();
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !documented.contains(c))
        .collect();
    assert!(missing.is_empty(), "not in docs/protocol.md: {missing:?}");
    // The table may also name what the upgrade answers over HTTP, saying so.
    let ws: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let http: BTreeSet<&str> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let mut unknown = Vec::new();
    for row in &rows {
        for c in codes_in_cell(row, 0) {
            if !(ws.contains(c) || (row.contains("HTTP") && http.contains(c))) {
                unknown.push(c);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/protocol.md names error codes the server never sends: {unknown:?}"
    );
}

/// A handler that wrote `{"error": "…"}` itself would answer a code the enum (and so the
/// tests above) does not know.
#[test]
fn no_handler_writes_an_error_code_by_hand() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut by_hand = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let squashed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squashed.contains("\"error\":\"") {
                by_hand.push(format!("{}:{}", f.display(), n + 1));
            }
        }
    }
    assert!(
        by_hand.is_empty(),
        "error codes written by hand: {by_hand:?}"
    );
}

#[test]
fn the_table_reader_finds_codes_and_only_codes() {
    let doc = "## Errors\n\n| status | `error` | when |\n|---|---|---|\n\
               | 401 | `no_credentials`, `token_expired` | no `token` given, see `GET /x` |\n\
               | 404 | `not_found` | — |\n\nafter\n| 1 | `x` | y |\n";
    let rows = table_rows(doc, "## Errors");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        codes_in_cell(rows[0], 1),
        vec!["no_credentials", "token_expired"]
    );
    assert_eq!(codes_in_cell(rows[1], 1), vec!["not_found"]);
    assert!(codes_in_cell(rows[0], 2).contains(&"token"));
}
