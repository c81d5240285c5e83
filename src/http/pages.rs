//! The pages from `web/`: embedded in the binary (release builds), read from disk in
//! debug builds so editing a page needs no rebuild. What several pages share (the head,
//! the headers, the staff sign-in that `staff.js` drives) is written once in `web/parts/`
//! and put in where a page has a line `<!--#include parts/NAME.html -->`.

use crate::state::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route(
            "/join/{code}",
            get(|_: Path<String>| async { page("join.html") }),
        )
        .route("/dashboard", get(|| async { page("dashboard.html") }))
        .route("/book", get(|| async { page("book.html") }))
        .route("/directory", get(|| async { page("directory.html") }))
        .route(
            "/manage/{token}",
            get(|_: Path<String>| async { page("manage.html") }),
        )
        .route("/admin", get(|| async { page("admin.html") }))
        .route(
            "/setup/{token}",
            get(|_: Path<String>| async { page("setup.html") }),
        )
        .route("/assets/{*path}", get(asset))
        // Browsers ask for it on anything that is not one of our pages (the API's JSON, a
        // 404): the same SVG the pages name, so no request for it fails.
        .route(
            "/favicon.ico",
            get(|| async { serve("assets/favicon.svg") }),
        )
}

fn page(name: &str) -> Response {
    match Web::get(name) {
        Some(file) => with_headers(
            name,
            expand(&String::from_utf8_lossy(&file.data)).into_bytes(),
        ),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The page with each include line replaced by the part it names. One level: parts hold
/// no includes. An unknown part stays a comment (the unit test below names none).
fn expand(page: &str) -> String {
    let mut out = String::with_capacity(page.len() * 2);
    for line in page.split_inclusive('\n') {
        let part = line
            .trim()
            .strip_prefix("<!--#include ")
            .and_then(|rest| rest.strip_suffix("-->"))
            .and_then(|path| Web::get(path.trim()));
        match part {
            Some(part) => out.push_str(&String::from_utf8_lossy(&part.data)),
            None => out.push_str(line),
        }
    }
    out
}

async fn asset(Path(path): Path<String>) -> Response {
    if path.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve(&format!("assets/{path}"))
}

fn serve(path: &str) -> Response {
    match Web::get(path) {
        Some(file) => with_headers(path, file.data.into_owned()),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn with_headers(path: &str, body: Vec<u8>) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_all_its_parts() {
        let pages: Vec<_> = Web::iter().filter(|f| !f.contains('/')).collect();
        assert!(pages.iter().any(|p| p == "join.html"), "{pages:?}");
        for name in pages {
            let page = expand(&String::from_utf8_lossy(&Web::get(&name).unwrap().data));
            assert!(!page.contains("<!--#include"), "{name}: a part is missing");
            assert!(page.starts_with("<!doctype html>"), "{name}");
        }
    }
}
