//! Record-panel benchmarks: warm assembly, and cold first paint from a distant FHIR server.
//!
//! `cargo run --release --bin bench-records -- [VISITS] [ITERATIONS] [DIR]`
//!
//! Warm: builds a Synthea-sized synthetic patient (VISITS monthly visits, default 600:
//! ≈ 4,000 vital-sign and 800 lab observations), or loads DIR (e.g. Synthea output)
//! instead, then assembles the panel ITERATIONS times (default 500) per patient
//! after a warm-up and prints p50/p95/p99.
//!
//! `cargo run --release --bin bench-records -- cold [LATENCY_MS] [RUNS] [VISITS] [PAGE_SIZE]`
//!
//! Cold: serves the same synthetic patient from the scripted FHIR server of the records
//! tests (tests/records_support/scripted.rs, a real HTTP server on loopback) with
//! LATENCY_MS (default 50) added before every answer, token endpoint included, and times
//! RUNS (default 20) first paints, each with a new client: new token, new connections,
//! nothing cached — what the physician waits for when the panel was not prefetched.
//! PAGE_SIZE is the `_count` asked for (default: the client's, 200).

#[path = "../../tests/records_support/scripted.rs"]
mod scripted;

use examroom::ids::PatientRef;
use examroom::records::{EmbeddedSource, FhirConfig, FhirSource, SigningAlg, demo};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cold") {
        cold(&args[1..]);
    } else {
        warm(&args);
    }
}

fn as_of() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("date")
}

fn percentiles(mut times: Vec<f64>) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (pct(0.50), pct(0.95), pct(0.99))
}

fn warm(args: &[String]) {
    let visits: usize = args.first().map_or(600, |a| a.parse().expect("VISITS"));
    let iterations: usize = args.get(1).map_or(500, |a| a.parse().expect("ITERATIONS"));
    let store = match args.get(2) {
        Some(dir) => {
            let t = Instant::now();
            let s = EmbeddedSource::load_dir(std::path::Path::new(dir)).expect("load DIR");
            let st = s.stats();
            println!(
                "loaded {} patients, {} resources ({} skipped) in {:.0} ms",
                st.patients,
                st.resources,
                st.skipped(),
                t.elapsed().as_secs_f64() * 1000.0
            );
            s
        }
        None => {
            let mut s = EmbeddedSource::default();
            s.add_json(demo::chronic_patient("bench-patient", visits, 7));
            s
        }
    };
    for id in store.patient_ids() {
        let rec = store.record(&id).expect("record");
        let patient = PatientRef::parse(&id).expect("id");
        for _ in 0..20 {
            store.summary_at(&patient, as_of()).expect("warm-up");
        }
        let times: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(store.summary_at(&patient, as_of()).expect("summary"));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        let (p50, p95, p99) = percentiles(times);
        println!(
            "{} observations, {} encounters: p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms  ({iterations} runs)",
            rec.observations.len(),
            rec.encounters.len(),
        );
    }
}

fn cold(args: &[String]) {
    let latency: u64 = args.first().map_or(50, |a| a.parse().expect("LATENCY_MS"));
    let runs: usize = args.get(1).map_or(20, |a| a.parse().expect("RUNS"));
    let visits: usize = args.get(2).map_or(600, |a| a.parse().expect("VISITS"));
    let page_size: Option<u32> = args.get(3).map(|a| a.parse().expect("PAGE_SIZE"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let bundle = demo::chronic_patient("bench-patient", visits, 7);
        let resources: Vec<serde_json::Value> = bundle["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        let n = resources.len();
        let server = scripted::ScriptedFhir::start(
            resources,
            scripted::Behaviour {
                latency: Duration::from_millis(latency),
                ..scripted::Behaviour::default()
            },
        )
        .await;
        let dir = tempfile_dir();
        let patient = PatientRef::parse("bench-patient").expect("id");
        let mut times = Vec::new();
        let mut requests = 0;
        for _ in 0..runs {
            let mut cfg = FhirConfig::new(
                &server.base,
                &server.token_url,
                "bench",
                SigningAlg::Es384,
                dir.clone(),
            );
            cfg.timeout = Duration::from_secs(30);
            if let Some(n) = page_size {
                cfg.page_size = n;
            }
            let src = FhirSource::new(cfg).await.expect("client");
            let before = server.requests().len();
            let t = Instant::now();
            let panel = src.summary_at(&patient, as_of()).await.expect("panel");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            requests = server.requests().len() - before;
            std::hint::black_box(panel);
        }
        let (p50, p95, p99) = percentiles(times);
        println!(
            "cold first paint, {latency} ms per answer, {n} resources, _count {}, {requests} FHIR requests + 1 token: \
             p50 {p50:.0} ms  p95 {p95:.0} ms  p99 {p99:.0} ms  ({runs} runs)",
            page_size.unwrap_or(200)
        );
    });
}

/// A folder for the client key, under the system temp dir (made once per run).
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("examroom-bench-records-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("key dir");
    d
}
