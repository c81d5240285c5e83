//! A real Chromium completes a connection check against `CheckService`: the server peer
//! interoperates with a browser's SDP, its mDNS-hidden host candidates and its JSON
//! candidates. Signalling here is a throwaway HTTP endpoint; examroom carries the same
//! values over its WebSocket.
//!
//! Needs Chromium: `apt-get install -y chromium`, or EXAMROOM_TEST_CHROMIUM=/path/to/chrome.
//! Fails (never skips) when neither is found.

use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use examroom::config::MediaSettings;
use examroom::ice::IceConfig;
use examroom::media::check::{CheckHandle, CheckService};
use examroom::media::peer::{Candidate, LocalCandidate};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

const PAGE: &str = r#"<!doctype html><script>
(async () => {
  const post = (p, b) => fetch(p, {method: 'POST', headers: {'content-type': 'application/json'},
                                   body: JSON.stringify(b)}).then(r => r.json());
  try {
    const pc = new RTCPeerConnection({iceServers: []});
    const dc = pc.createDataChannel('check', {ordered: true, maxRetransmits: 0});
    const early = [];
    let offered = false;
    pc.onicecandidate = e => {
      if (!e.candidate) return;
      if (offered) post('/candidate', e.candidate.toJSON()); else early.push(e.candidate.toJSON());
    };
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await post('/offer', {sdp: pc.localDescription.sdp});   // check_offer
    offered = true;
    for (const c of early) await post('/candidate', c);                   // check_candidate
    await pc.setRemoteDescription({type: 'answer', sdp: answer.sdp});      // check_answer
    for (const c of answer.candidates) await pc.addIceCandidate(c);        // check_candidate
    await new Promise((res, rej) => { dc.onopen = res; setTimeout(() => rej('open timeout'), 15000); });
    const sentAt = new Map(), rtts = [];
    let textBack = false;
    dc.onmessage = e => {
      textBack = textBack || typeof e.data === 'string';
      const t = sentAt.get(e.data);
      if (t !== undefined) { rtts.push(performance.now() - t); sentAt.delete(e.data); }
    };
    for (let i = 0; i < 10; i++) {
      const m = 'ping-' + i; sentAt.set(m, performance.now()); dc.send(m);
      await new Promise(r => setTimeout(r, 20));
    }
    await new Promise(r => setTimeout(r, 1000));
    await post('/result', {received: rtts.length, rtts, textBack});
  } catch (err) {
    await post('/result', {error: String(err)});
  }
})();
</script>"#;

struct App {
    checks: CheckService,
    handle: Mutex<Option<CheckHandle>>,
    results: mpsc::Sender<Value>,
}

async fn offer(State(app): State<Arc<App>>, Json(body): Json<Value>) -> Json<Value> {
    let sdp = body["sdp"].as_str().unwrap().to_owned();
    let (mut handle, answer) = app.checks.start("browser".into(), sdp).await.unwrap();
    // Non-trickle toward the page keeps it simple: collect this round's candidates.
    let mut local = handle.take_local_candidates().unwrap();
    let mut candidates = Vec::new();
    while let Ok(Some(LocalCandidate::Candidate(c))) =
        tokio::time::timeout(Duration::from_secs(5), local.recv()).await
    {
        candidates.push(c);
    }
    *app.handle.lock().await = Some(handle);
    Json(json!({ "sdp": answer, "candidates": candidates }))
}

async fn candidate(State(app): State<Arc<App>>, Json(c): Json<Candidate>) -> Json<Value> {
    let guard = app.handle.lock().await;
    let outcome = match guard.as_ref() {
        Some(h) => h.add_remote_candidate(c).await.map_err(|e| e.to_string()),
        None => Err("no check".into()),
    };
    Json(json!({ "ok": outcome.is_ok(), "why": outcome.err() }))
}

async fn result(State(app): State<Arc<App>>, Json(v): Json<Value>) -> Json<Value> {
    app.results.send(v).await.ok();
    Json(json!({}))
}

fn chromium() -> String {
    if let Ok(p) = std::env::var("EXAMROOM_TEST_CHROMIUM") {
        return p;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return name.into();
        }
    }
    panic!("Chromium not found: apt-get install -y chromium, or set EXAMROOM_TEST_CHROMIUM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_a_connection_check() {
    let browser = chromium();
    let (tx, mut rx) = mpsc::channel(1);
    let app = Arc::new(App {
        checks: CheckService::new(&MediaSettings::default(), IceConfig::host_only()),
        handle: Mutex::new(None),
        results: tx,
    });
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/offer", post(offer))
        .route("/candidate", post(candidate))
        .route("/result", post(result))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let profile = tempfile::tempdir().unwrap();
    let mut chrome = tokio::process::Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            &url,
        ])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let report = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the page reports within 60 s")
        .unwrap();
    chrome.kill().await.ok();
    assert!(report.get("error").is_none(), "page failed: {report}");
    assert_eq!(report["received"], 10, "{report}");
    assert_eq!(
        report["textBack"], true,
        "text must be echoed as text: {report}"
    );
    let handle = app.handle.lock().await.take().unwrap();
    let path = handle
        .selected_path()
        .await
        .expect("server sees a selected pair");
    eprintln!("server-side path with Chromium: {path:?}; report {report}");
    handle.close().await;
}
