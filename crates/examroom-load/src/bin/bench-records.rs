//! Record-panel benchmarks: warm assembly, and cold first paint from a distant FHIR server.
//!
//! `cargo run --release -p examroom-load --bin bench-records -- [VISITS] [ITERATIONS] [DIR]`
//!
//! Warm: builds a Synthea-sized synthetic patient (VISITS monthly visits, default 600:
//! ≈ 4,000 vital-sign and 800 lab observations), or loads DIR (e.g. Synthea output)
//! instead, then assembles the panel ITERATIONS times (default 500) per patient
//! after a warm-up and prints p50/p95/p99.
//!
//! `cargo run --release -p examroom-load --bin bench-records -- cold [LATENCY_MS] [RUNS] [VISITS] [PAGE_SIZE]`
//!
//! Cold: serves the same synthetic patient from the scripted FHIR server of the records
//! tests (tests/it/kit/records/scripted.rs, a real HTTP server on loopback) with
//! LATENCY_MS (default 50) added before every answer, token endpoint included, and times
//! RUNS (default 20) first paints, each with a new client: new token, new connections,
//! nothing cached — what the physician waits for when the panel was not prefetched.
//! PAGE_SIZE is the `_count` asked for (default: the client's, 200).
//!
//! `cargo run --release -p examroom-load --bin bench-records -- parse [VISITS] [RUNS]`
//!
//! The client's own CPU in a cold paint: the same patient as searchset pages (bytes),
//! parsed and typed as the FHIR client does, without a network or a server.

#[path = "../../../../tests/it/kit/records/scripted.rs"]
mod scripted;

use examroom::ids::PatientRef;
use examroom::records::{EmbeddedSource, FhirConfig, FhirSource, SigningAlg, demo};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cold") {
        cold(&args[1..]);
    } else if args.first().map(String::as_str) == Some("parse") {
        parse(&args[1..]);
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
        let mut running: Option<FhirSource> = None;
        let mut warm_client = Vec::new();
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
            // The same patient from a client that has already been used (its token and
            // connections kept): a patient whose panel was not prefetched, on a server
            // that has been running.
            let src = running.get_or_insert(src);
            let t = Instant::now();
            let panel = src.summary_at(&patient, as_of()).await.expect("panel");
            warm_client.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(panel);
        }
        let (w50, w95, w99) = percentiles(warm_client);
        let (p50, p95, p99) = percentiles(times);
        println!(
            "cold first paint, {latency} ms per answer, {n} resources, _count {}, {requests} FHIR requests + 1 token: \
             p50 {p50:.0} ms  p95 {p95:.0} ms  p99 {p99:.0} ms  ({runs} runs)",
            page_size.unwrap_or(200)
        );
        println!(
            "  same, from a client already running (token and connections kept): \
             p50 {w50:.0} ms  p95 {w95:.0} ms  p99 {w99:.0} ms"
        );
    });
}

/// The client's own CPU in a cold paint: the synthetic patient's resources as searchset
/// pages of 200 (bytes, as they arrive), read the way the FHIR client reads them.
fn parse(args: &[String]) {
    use examroom::records::model::Resource;
    let visits: usize = args.first().map_or(600, |a| a.parse().expect("VISITS"));
    let runs: usize = args.get(1).map_or(20, |a| a.parse().expect("RUNS"));
    let bundle = demo::chronic_patient("bench-patient", visits, 7);
    let entries = bundle["entry"].as_array().expect("entries");
    let pages: Vec<Vec<u8>> = entries
        .chunks(200)
        .map(|c| {
            serde_json::to_vec(&serde_json::json!({
                "resourceType": "Bundle", "type": "searchset",
                "entry": c.iter().map(|e| serde_json::json!({"resource": e["resource"]})).collect::<Vec<_>>()
            }))
            .expect("page")
        })
        .collect();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut n = 0;
        for page in &pages {
            let v: serde_json::Value = serde_json::from_slice(page).expect("json");
            let Ok(Resource::Bundle(b)) = Resource::from_value(v) else {
                panic!("not a bundle")
            };
            for e in b.entry {
                if let Some(r) = e.resource {
                    std::hint::black_box(Resource::from_value(r).expect("resource"));
                    n += 1;
                }
            }
        }
        assert_eq!(n, entries.len());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p95, p99) = percentiles(times);
    println!(
        "parse {} resources in {} pages ({:.1} MB): p50 {p50:.1} ms  p95 {p95:.1} ms  p99 {p99:.1} ms  ({runs} runs)",
        entries.len(),
        pages.len(),
        bytes as f64 / 1e6
    );
}

/// A folder for the client key, under the system temp dir (made once per run).
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("examroom-bench-records-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("key dir");
    d
}
