//! Security headers on every response, and the WebSocket `Origin` check.
//!
//! One middleware ([`security_headers`]) sets them all, so no route can forget one:
//! - a strict `Content-Security-Policy`: scripts and styles only from our own files (the
//!   pages have no inline script, style or `on…` attribute, so no `'unsafe-inline'`),
//!   `connect-src` our own origin (HTTP and WebSocket), `frame-ancestors 'none'`;
//! - `X-Frame-Options: DENY` for browsers that predate `frame-ancestors` (clickjacking of
//!   admit/deny/admin buttons);
//! - `Permissions-Policy`: camera and microphone for our own pages only;
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (join links carry
//!   their secret in the path), `Cross-Origin-Opener-Policy: same-origin`;
//! - `Cache-Control: no-store` on every `/api` answer: records, tokens, staff lists and
//!   visit history are all patient or credential data, and one rule for all of `/api` is
//!   one rule nobody has to remember;
//! - `Strict-Transport-Security` when examroom serves TLS itself;
//! - `X-XSS-Protection: 0`: the legacy XSS auditor is itself a leak; the CSP does its job.
//!
//! TURN servers are not listed in the policy: ICE traffic is not governed by
//! `connect-src` in any browser, so listing them would promise a control that is not there.

use crate::config::{Settings, origin_of};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The header values, computed once from the settings.
#[derive(Debug, Clone)]
pub struct WebPolicy {
    csp: HeaderValue,
    hsts: bool,
}

pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(self), \
     fullscreen=(self), geolocation=(), payment=(), usb=(), serial=(), bluetooth=()";

impl WebPolicy {
    pub fn new(settings: &Settings) -> Self {
        WebPolicy {
            csp: HeaderValue::from_str(&content_security_policy(settings))
                .unwrap_or_else(|_| HeaderValue::from_static(BASE_CSP)),
            hsts: settings.server.tls_cert.is_some(),
        }
    }
}

const BASE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; \
     manifest-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// `connect-src` is our own origin; with a `public_url` also its WebSocket form, for
/// browsers whose `'self'` does not yet cover `ws:`/`wss:`.
fn content_security_policy(settings: &Settings) -> String {
    let mut connect = vec!["'self'".to_owned()];
    if let Some(o) = origin_of(&settings.server.public_url) {
        connect.push(o.replacen("http", "ws", 1));
    }
    BASE_CSP.replace(
        "connect-src 'self'",
        &format!("connect-src {}", connect.join(" ")),
    )
}

pub async fn security_headers(
    State(policy): State<Arc<WebPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, policy.csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert("x-xss-protection", HeaderValue::from_static("0"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // For HTTP/1.0 caches, which know no Cache-Control.
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    if policy.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// Why a WebSocket upgrade's `Origin` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("the page's origin is not allowed to open this WebSocket")]
    NotAllowed,
}

/// Cross-site WebSocket hijacking needs a browser, and browsers always send `Origin` on
/// a WebSocket upgrade. So: no `Origin` (a tool, a test, the load generator) is allowed;
/// an `Origin` must be the request's own host, `public_url`, or one of
/// `server.allowed_origins`. `Origin: null` (sandboxed frames, `file:` pages) is refused.
pub fn check_origin(settings: &Settings, headers: &HeaderMap) -> Result<(), OriginError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .ok()
        .and_then(origin_of)
        .ok_or(OriginError::NotAllowed)?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    // Same host as the request: the page was served by us (the quick start, and every
    // deployment reached under one name). Scheme is not compared: behind a TLS proxy
    // the page is https and the hop to us is plain.
    let same_host = host.is_some_and(|h| {
        ["http", "https"]
            .iter()
            .any(|s| origin_of(&format!("{s}://{h}")).as_deref() == Some(origin.as_str()))
    });
    let listed = std::iter::once(&settings.server.public_url)
        .chain(&settings.server.allowed_origins)
        .filter_map(|o| origin_of(o))
        .any(|o| o == origin);
    if same_host || listed {
        Ok(())
    } else {
        Err(OriginError::NotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn origins_are_checked_against_the_host_and_the_list() {
        let mut s = Settings::default();
        s.server.allowed_origins = vec!["https://portal.clinic.example".into()];
        s.server.public_url = "https://visits.clinic.example/".into();
        let ok = |o, h| check_origin(&s, &headers(o, h)).is_ok();
        assert!(ok(None, "127.0.0.1:8080"), "tools send no Origin");
        assert!(ok(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(ok(Some("https://visits.clinic.example"), "10.0.0.5:8080"));
        assert!(ok(Some("https://portal.clinic.example"), "10.0.0.5:8080"));
        assert!(ok(Some("https://visits.clinic.example:443"), "x"));
        assert!(!ok(Some("https://evil.example"), "127.0.0.1:8080"));
        assert!(!ok(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"));
        assert!(!ok(Some("null"), "127.0.0.1:8080"));
        assert!(!ok(Some("https://visits.clinic.example.evil.example"), "x"));
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_framing() {
        let mut s = Settings::default();
        s.server.public_url = "https://visits.clinic.example".into();
        let csp = content_security_policy(&s);
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("connect-src 'self' wss://visits.clinic.example"));
    }
}
