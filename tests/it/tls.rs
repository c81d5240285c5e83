//! Browsers give a page the camera only in a secure context: examroom serves HTTPS
//! itself when given a certificate, and picks up a renewed certificate without a restart.

use crate::kit::*;
use std::time::Duration;

fn write_cert(dir: &std::path::Path) -> String {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = ck.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    cert
}

fn client_trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_https_and_reloads_a_renewed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path());
    let (c, k) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let app = TestApp::spawn_with(|s| {
        s.server.tls_cert = Some(c.clone());
        s.server.tls_key = Some(k.clone());
    })
    .await;
    let url = format!("https://127.0.0.1:{}/healthz", app.addr.port());
    let r = client_trusting(&first).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", app.addr.port()))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );

    // The certificate is renewed in place (as certbot does): new connections get it.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a different mtime
    let second = write_cert(certs.path());
    let mut reloaded = false;
    for _ in 0..40 {
        if let Ok(r) = client_trusting(&second).get(&url).send().await {
            assert_eq!(r.status(), 200);
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(reloaded, "the renewed certificate was not picked up");
    assert!(
        client_trusting(&first).get(&url).send().await.is_err(),
        "the old certificate is gone"
    );
}

/// Issue 17: the HTTPS listener has the same header deadline as plain HTTP: a client
/// that trickles its request headers is disconnected.
#[tokio::test]
async fn a_slow_header_client_is_disconnected_over_https_too() {
    use std::io::{Read, Write};
    let certs = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(certs.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(certs.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let (c, k) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let app = TestApp::spawn_with(|s| {
        s.server.tls_cert = Some(c.clone());
        s.server.tls_key = Some(k.clone());
        s.server.header_read_timeout_secs = 1;
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = app.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(6) {
            if tls.write_all(b"X").is_err() {
                return true;
            }
            match tls.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a client trickling its headers over TLS still holds the connection"
    );
}
