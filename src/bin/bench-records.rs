//! Warm panel-assembly benchmark for the embedded record store.
//!
//! `cargo run --release --bin bench-records -- [VISITS] [ITERATIONS] [DIR]`
//!
//! Builds a Synthea-sized synthetic patient (VISITS monthly visits, default 600:
//! ≈ 4,000 vital-sign and 800 lab observations), or loads DIR instead — a record store
//! (`<data_dir>/records`, what `serve` loads) or any folder of FHIR files (e.g. Synthea
//! output) — printing how long loading took, then assembles the panel ITERATIONS times
//! (default 500) per patient after a warm-up and prints p50/p95/p99.

use examroom::ids::PatientRef;
use examroom::records::{EmbeddedSource, demo};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("date");
    for id in store.patient_ids() {
        let rec = store.record(&id).expect("record");
        let patient = PatientRef::parse(&id).expect("id");
        for _ in 0..20 {
            store.summary_at(&patient, as_of).expect("warm-up");
        }
        let mut times: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(store.summary_at(&patient, as_of).expect("summary"));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "{} observations, {} encounters: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  ({} runs)",
            rec.observations.len(),
            rec.encounters.len(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            iterations
        );
    }
}
