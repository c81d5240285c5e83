//! The pages from `web/`: embedded in the binary (release builds), read from disk in
//! debug builds so editing a page needs no rebuild.

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
    serve(name)
}

async fn asset(Path(path): Path<String>) -> Response {
    if path.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve(&format!("assets/{path}"))
}

fn serve(path: &str) -> Response {
    match Web::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (header::REFERRER_POLICY, "no-referrer".to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
