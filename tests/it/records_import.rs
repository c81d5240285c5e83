//! `examroom records import` and the embedded store, run as the real binary on real FHIR:
//! Synthea transaction bundles, the HL7 R4 examples and the IPS documents (fetched by
//! `scripts/fetch-fhir-fixtures`). A clinic re-exports its records and imports them again;
//! the panel must show what the latest export says, not what an older one said.

use crate::kit::records::*;
use examroom::ids::PatientRef;
use examroom::records::{EmbeddedOptions, EmbeddedSource, RecordsError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Run the real `examroom` binary with `--data-dir data`.
fn examroom(data: &Path, args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_examroom"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .args(paths)
        .env(
            "EXAMROOM__IDENTITY__TOKEN_SECRET",
            "import-test-secret-import-test-secret",
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run examroom")
}

fn import(data: &Path, paths: &[&Path]) -> Output {
    examroom(data, &["records", "import"], paths)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "import failed:\n{}\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// The per-type table of an import report: type → (read, added, replaced, unchanged, deleted).
fn report_counts(out: &str) -> BTreeMap<String, [usize; 5]> {
    out.lines()
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let mut w = l.split_whitespace();
            let t = w.next()?;
            if !t.starts_with(|c: char| c.is_ascii_uppercase()) {
                return None;
            }
            let n: Vec<usize> = w
                .map(|x| x.replace(',', "").parse().ok())
                .collect::<Option<_>>()?;
            Some((t.to_owned(), n.try_into().ok()?))
        })
        .collect()
}

/// Resources per type in a bundle's entries.
fn bundle_counts(b: &Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in b["entry"].as_array().unwrap() {
        *m.entry(e["resource"]["resourceType"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

fn records_dir(data: &Path) -> PathBuf {
    data.join("records")
}

fn store_file(data: &Path) -> PathBuf {
    records_dir(data).join("store.ndjson")
}

/// The panel as JSON, without the times it was read (two reads compare equal).
fn panel(src: &EmbeddedSource, patient: &str) -> Value {
    let s = src
        .summary_at(&PatientRef::parse(patient).unwrap(), as_of())
        .unwrap_or_else(|e| panic!("no panel: {e}"));
    let mut v = serde_json::to_value(&s).unwrap();
    strip_times(&mut v);
    v
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("fetched_at");
            m.remove("cached");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The codes listed in one panel section (`medication`, `substance`, …).
fn listed_codes(panel: &Value, section: &str, concept: &str) -> Vec<String> {
    panel[section]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[concept]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Bulk-data export files from a bundle: one `Type.ndjson` per type, references as
/// `Type/id` (as a FHIR server's `$export` writes them).
fn write_ndjson_export(b: &Value, dir: &Path) {
    let urls: BTreeMap<String, String> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["resource"];
            (
                e["fullUrl"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                ),
            )
        })
        .collect();
    fn relink(v: &mut Value, urls: &BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("reference")
                    && let Some(new) = urls.get(r.as_str())
                {
                    *r = new.clone();
                }
                m.values_mut().for_each(|v| relink(v, urls));
            }
            Value::Array(a) => a.iter_mut().for_each(|v| relink(v, urls)),
            _ => {}
        }
    }
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for e in b["entry"].as_array().unwrap() {
        let mut r = e["resource"].clone();
        relink(&mut r, &urls);
        let line = files
            .entry(r["resourceType"].as_str().unwrap().to_owned())
            .or_default();
        line.push_str(&serde_json::to_string(&r).unwrap());
        line.push('\n');
    }
    std::fs::create_dir_all(dir).unwrap();
    for (t, text) in files {
        std::fs::write(dir.join(format!("{t}.ndjson")), text).unwrap();
    }
}

/// The Synthea patient with the most resources.
fn biggest_synthea() -> (PathBuf, Value) {
    synthea_bundles()
        .into_iter()
        .map(|p| {
            let b = read_json(&p);
            (p, b)
        })
        .max_by_key(|(_, b)| b["entry"].as_array().unwrap().len())
        .unwrap()
}

#[test]
fn a_synthea_transaction_bundle_imports_every_resource_and_reports_counts_per_type() {
    let data = tempfile::tempdir().unwrap();
    let (path, bundle) = biggest_synthea();
    let out = assert_ok(&import(data.path(), &[&path]));
    let counts = report_counts(&out);
    let want = bundle_counts(&bundle);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{out}"
    );
    for (t, n) in &want {
        assert_eq!(counts[t], [*n, *n, 0, 0, 0], "{t} in\n{out}");
    }
    let total: usize = want.values().sum();
    assert!(
        out.contains(&format!(
            "1 patients, {} resources (written)",
            thousands(total)
        )),
        "{out}"
    );
    assert!(!out.contains("skipped"), "{out}");

    // What the server loads from the store is the panel of the bundle itself.
    let id = bundle_patient_id(&bundle);
    let stored = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    assert_eq!(stored.stats().resources, total);
    assert_eq!(stored.skipped(), 0);
    let mut direct = EmbeddedSource::default();
    direct.add_json(bundle.clone());
    let p = panel(&stored, &id);
    assert_eq!(p, panel(&direct, &id));
    assert_eq!(p["vital_signs"]["status"], "recorded");

    // Importing the same export again changes nothing, byte for byte.
    let before = std::fs::read(store_file(data.path())).unwrap();
    let again = assert_ok(&import(data.path(), &[&path]));
    assert!(again.contains("unchanged, nothing to write"), "{again}");
    assert_eq!(report_counts(&again)["Observation"][3], want["Observation"]);
    assert_eq!(std::fs::read(store_file(data.path())).unwrap(), before);
}

fn thousands(n: usize) -> String {
    examroom::records::store::thousands(n)
}

#[test]
fn a_transaction_without_resource_ids_takes_them_from_urn_uuid_full_urls() {
    // As a transaction is sent to a server: no ids, entries linked by urn:uuid fullUrls.
    let (_, bundle) = biggest_synthea();
    let id = bundle_patient_id(&bundle);
    let mut no_ids = bundle.clone();
    for e in no_ids["entry"].as_array_mut().unwrap() {
        assert!(e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        e["resource"].as_object_mut().unwrap().remove("id");
    }
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("in/transaction.json");
    write_json(&file, &no_ids);
    let out = assert_ok(&import(data.path(), &[&file]));
    let want = bundle_counts(&bundle);
    for (t, n) in &want {
        assert_eq!(report_counts(&out)[t][1], *n, "{t} added in\n{out}");
    }
    let stored = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    let mut direct = EmbeddedSource::default();
    direct.add_json(bundle);
    assert_eq!(panel(&stored, &id), panel(&direct, &id));

    // The HL7 example transaction: POSTs without ids, a conditional update, deletes,
    // an operation and reads. What can be stored is; the rest is listed with why.
    let hl7 = r4_examples().join("Bundle-bundle-transaction.json");
    let out = assert_ok(&import(data.path(), &[&hl7]));
    // Two POSTs (ids from their urn:uuid), two PUTs by id; the conditional PUT is skipped.
    assert_eq!(report_counts(&out)["Patient"][..2], [4, 4], "{out}");
    for why in [
        "entry[3]: Patient: conditional update",
        "entry[6]: conditional delete",
        "entry[7]: Parameters: an operation request",
        "entry[8]: a read or search request",
    ] {
        assert!(out.contains(why), "{why} missing from\n{out}");
    }
    let stored = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    assert!(
        stored
            .patient_ids()
            .contains(&"61ebe359-bfdc-4613-8bf2-c5e300945f0a".to_owned()),
        "the POSTed patient is stored under its urn:uuid"
    );
}

#[test]
fn an_ndjson_bulk_export_folder_imports_and_loads_like_the_bundle() {
    let (_, bundle) = biggest_synthea();
    let id = bundle_patient_id(&bundle);
    let mut direct = EmbeddedSource::default();
    direct.add_json(bundle.clone());
    let want = panel(&direct, &id);

    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export/2026-01-01");
    write_ndjson_export(&bundle, &export);
    let data = tempfile::tempdir().unwrap();
    let out = assert_ok(&import(data.path(), &[&work.path().join("export")]));
    for (t, n) in bundle_counts(&bundle) {
        assert_eq!(report_counts(&out)[&t][1], n, "{t} in\n{out}");
    }
    let stored = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    assert_eq!(panel(&stored, &id), want);

    // The same files dropped into the store folder by hand load the same way on start.
    let loose = tempfile::tempdir().unwrap();
    write_ndjson_export(&bundle, &records_dir(loose.path()).join("bulk"));
    let src = EmbeddedSource::load_dir(&records_dir(loose.path())).unwrap();
    assert_eq!(src.skipped(), 0);
    assert_eq!(panel(&src, &id), want);
}

/// A Synthea patient with an active MedicationRequest and an active AllergyIntolerance,
/// each with a code no other active one of its kind has.
fn patient_with_active_medication_and_allergy() -> (Value, String, String) {
    let code = |r: &Value, field: &str| r[field]["coding"][0]["code"].as_str().map(str::to_owned);
    let active = |r: &Value, t: &str| {
        r["resourceType"] == t
            && (r["status"] == "active" || r["clinicalStatus"]["coding"][0]["code"] == "active")
    };
    for p in synthea_bundles() {
        let b = read_json(&p);
        let res: Vec<&Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .collect();
        let unique = |t: &str, field: &str| {
            let codes: Vec<String> = res
                .iter()
                .filter(|r| active(r, t))
                .filter_map(|r| code(r, field))
                .collect();
            codes
                .iter()
                .find(|c| codes.iter().filter(|d| d == c).count() == 1)
                .cloned()
        };
        if let (Some(med), Some(allergy)) = (
            unique("MedicationRequest", "medicationCodeableConcept"),
            unique("AllergyIntolerance", "code"),
        ) {
            return (b, med, allergy);
        }
    }
    panic!("no Synthea fixture patient has an active medication and allergy");
}

/// The same export after the medication was stopped and the allergy resolved.
fn re_export(b: &Value, med: &str, allergy: &str) -> Value {
    let mut b = b.clone();
    for e in b["entry"].as_array_mut().unwrap() {
        let r = &mut e["resource"];
        if r["resourceType"] == "MedicationRequest"
            && r["medicationCodeableConcept"]["coding"][0]["code"] == med
        {
            r["status"] = json!("stopped");
        }
        if r["resourceType"] == "AllergyIntolerance" && r["code"]["coding"][0]["code"] == allergy {
            r["clinicalStatus"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "resolved"}]});
        }
    }
    b
}

#[test]
fn a_re_export_replaces_a_stopped_medication_and_a_resolved_allergy_instead_of_adding_to_them() {
    let (bundle, med, allergy) = patient_with_active_medication_and_allergy();
    let id = bundle_patient_id(&bundle);
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("2025-12/export.json");
    let second = work.path().join("2026-01/export.json");
    write_json(&first, &bundle);
    write_json(&second, &re_export(&bundle, &med, &allergy));

    let data = tempfile::tempdir().unwrap();
    assert_ok(&import(data.path(), &[&first]));
    let before = panel(
        &EmbeddedSource::load_dir(&records_dir(data.path())).unwrap(),
        &id,
    );
    assert!(listed_codes(&before, "medications", "medication").contains(&med));
    assert!(listed_codes(&before, "allergies", "substance").contains(&allergy));

    let out = assert_ok(&import(data.path(), &[&second]));
    let counts = report_counts(&out);
    assert!(counts["MedicationRequest"][2] >= 1, "replaced:\n{out}");
    assert_eq!(counts["AllergyIntolerance"][2], 1, "replaced:\n{out}");
    assert_eq!(counts["MedicationRequest"][1], 0, "nothing added:\n{out}");
    let store = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    assert_eq!(
        store.stats().resources,
        bundle["entry"].as_array().unwrap().len(),
        "one version of each resource"
    );
    let after = panel(&store, &id);
    assert!(
        !listed_codes(&after, "medications", "medication").contains(&med),
        "the stopped medication is still listed as active"
    );
    assert!(
        !listed_codes(&after, "allergies", "substance").contains(&allergy),
        "the resolved allergy is still listed"
    );
    assert_eq!(
        listed_codes(&after, "allergies", "substance").len(),
        listed_codes(&before, "allergies", "substance").len() - 1
    );

    // The same two exports left as loose files in the store folder (the layout before
    // `records import`): the later path wins, nothing is listed twice.
    let loose = tempfile::tempdir().unwrap();
    for (from, to) in [
        (&first, "2025-12-export.json"),
        (&second, "2026-01-export.json"),
    ] {
        std::fs::create_dir_all(records_dir(loose.path())).unwrap();
        std::fs::copy(from, records_dir(loose.path()).join(to)).unwrap();
    }
    let src = EmbeddedSource::load_dir(&records_dir(loose.path())).unwrap();
    assert_eq!(panel(&src, &id), after);
}

#[test]
fn a_file_with_a_syntax_error_is_refused_and_the_store_stays_byte_for_byte_the_same() {
    let data = tempfile::tempdir().unwrap();
    let ips = ips_examples().join("Bundle-IPS-examples-Bundle-01.json");
    assert_ok(&import(data.path(), &[&ips]));
    let before = std::fs::read(store_file(data.path())).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(records_dir(d))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let files_before = listing(data.path());

    let work = tempfile::tempdir().unwrap();
    // A good file first: it must not be applied either.
    let (good, _) = biggest_synthea();
    let broken_ndjson = work.path().join("broken.ndjson");
    std::fs::write(
        &broken_ndjson,
        "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n\
         {\"resourceType\":\"Patient\",\"id\":\"p2\",\"name\":[{\"family\":\"Zyxwvutsrq\"\n",
    )
    .unwrap();
    let broken_json = work.path().join("broken.json");
    let mut text = std::fs::read_to_string(&ips).unwrap();
    text.truncate(text.len() / 2);
    std::fs::write(&broken_json, text).unwrap();

    let o = import(data.path(), &[&good, &broken_ndjson, &broken_json]);
    assert!(!o.status.success(), "a broken file must fail the import");
    let err = stderr(&o);
    assert!(
        err.contains("broken.ndjson: line 2: "),
        "names the file and line: {err}"
    );
    assert!(err.contains("broken.json: truncated JSON"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!err.contains("Zyxwvutsrq"), "no record content: {err}");
    assert_eq!(std::fs::read(store_file(data.path())).unwrap(), before);
    assert_eq!(listing(data.path()), files_before, "no temporary file left");

    // A missing path fails the same way.
    let o = import(data.path(), &[&good, &work.path().join("nope")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no such file or folder"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(store_file(data.path())).unwrap(), before);

    // A store file that cannot be read is not silently replaced or served as empty.
    std::fs::write(store_file(data.path()), b"{\"resourceType\":\"Pat").unwrap();
    let o = import(data.path(), &[&good]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot be read at line 1"),
        "{}",
        stderr(&o)
    );
    assert!(EmbeddedSource::load_dir(&records_dir(data.path())).is_err());
}

#[test]
fn two_imports_at_once_both_land() {
    let data = tempfile::tempdir().unwrap();
    let bundles = synthea_bundles();
    let children: Vec<_> = bundles
        .iter()
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_examroom"))
                .arg("--data-dir")
                .arg(data.path())
                .args(["records", "import"])
                .arg(p)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let src = EmbeddedSource::load_dir(&records_dir(data.path())).unwrap();
    for p in &bundles {
        let id = bundle_patient_id(&read_json(p));
        assert!(src.patient_ids().contains(&id), "an import was lost");
    }
}

/// Start `examroom serve` and return its log up to "serving HTTP" (JSON lines).
fn serve_log(data: &Path, extra: &[&str]) -> Vec<Value> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_examroom"))
        .arg("--data-dir")
        .arg(data)
        .args(["--log-json", "serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .env(
            "EXAMROOM__IDENTITY__TOKEN_SECRET",
            "import-test-secret-import-test-secret",
        )
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("the server did not start: {log:?}");
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
        let serving = v["fields"]["message"] == "serving HTTP";
        log.push(v);
        if serving {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

fn message_with<'a>(log: &'a [Value], prefix: &str) -> Option<&'a Value> {
    log.iter().find(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(prefix))
    })
}

#[test]
fn serve_shows_demo_patients_only_with_demo_and_never_writes_them() {
    let empty = tempfile::tempdir().unwrap();
    let log = serve_log(empty.path(), &[]);
    let store = message_with(&log, "record store:").expect("the store line");
    assert_eq!(
        store["fields"]["message"],
        "record store: 0 patients, 0 resources (0 skipped)"
    );
    assert!(
        message_with(&log, "demo patients").is_none(),
        "no demo patients without --demo: {log:?}"
    );
    assert!(!records_dir(empty.path()).exists(), "nothing planted");

    let demo = tempfile::tempdir().unwrap();
    let log = serve_log(demo.path(), &["--demo"]);
    let line = message_with(&log, "demo patients").expect("demo line");
    assert_eq!(line["fields"]["demo_patients"], 3);
    assert!(
        !records_dir(demo.path()).exists(),
        "demo patients stay in memory"
    );

    // A store with records: counts in the log, and nothing of the records themselves.
    let data = tempfile::tempdir().unwrap();
    let (path, bundle) = biggest_synthea();
    assert_ok(&import(data.path(), &[&path]));
    let log = serve_log(data.path(), &[]);
    let total = bundle["entry"].as_array().unwrap().len();
    assert_eq!(
        message_with(&log, "record store:").unwrap()["fields"]["message"],
        format!(
            "record store: 1 patients, {} resources (0 skipped)",
            thousands(total)
        )
    );
    let text = serde_json::to_string(&log).unwrap();
    let patient = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    let name = patient["resource"]["name"][0]["family"].as_str().unwrap();
    assert!(!text.contains(name), "a patient's name in the log");
    assert!(
        !text.contains(&bundle_patient_id(&bundle)),
        "a patient id in the log"
    );
}

#[tokio::test]
async fn the_demo_source_has_the_demo_patients_and_the_plain_one_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let demo_patient = PatientRef::parse("demo-patient-1").unwrap();
    let plain = EmbeddedSource::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        plain.summary_at(&demo_patient, as_of()),
        Err(RecordsError::NotFound)
    ));
    let demo = EmbeddedSource::open(
        dir.path(),
        EmbeddedOptions {
            demo: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(demo.summary_at(&demo_patient, as_of()).is_ok());
    assert!(!dir.path().exists() || std::fs::read_dir(dir.path()).unwrap().next().is_none());

    // Demo files an older examroom planted in a clinic's store are not loaded.
    for (name, bundle) in examroom::records::demo::demo_patients() {
        write_json(&dir.path().join(name), &bundle);
    }
    let (src, report) =
        EmbeddedSource::load(&examroom::records::RecordStore::new(dir.path()), false).unwrap();
    assert_eq!(report.demo_files.len(), 3);
    assert!(src.patient_ids().is_empty());
}

#[tokio::test]
async fn a_running_server_sees_an_import_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let src = EmbeddedSource::open(
        &records_dir(data.path()),
        EmbeddedOptions {
            demo: false,
            reload_every: Some(Duration::from_millis(50)),
        },
    )
    .await
    .unwrap();
    let (path, bundle) = biggest_synthea();
    let id = PatientRef::parse(&bundle_patient_id(&bundle)).unwrap();
    assert!(matches!(
        src.summary_at(&id, as_of()),
        Err(RecordsError::NotFound)
    ));
    let d = data.path().to_owned();
    let out = tokio::task::spawn_blocking(move || import(&d, &[&path]))
        .await
        .unwrap();
    assert_ok(&out);
    let mut seen = false;
    for _ in 0..200 {
        if src.summary_at(&id, as_of()).is_ok() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the import did not reach the running source");

    // A panel the physician already has is not served from the cache once a re-export
    // changed the record: the next read shows the new allergy without "Refresh".
    let src: std::sync::Arc<dyn examroom::records::RecordSource> = src;
    let cache = examroom::records::PanelCache::new(src.clone(), Duration::from_secs(300), 10);
    let visit = examroom::ids::VisitId::parse("v-reload").unwrap();
    let first = cache.get(&visit, &id, false).await.unwrap();
    assert!(cache.get(&visit, &id, false).await.unwrap().cached);
    let marker = "Peanut (added by a re-export)";
    assert!(
        !serde_json::to_string(&*first.summary)
            .unwrap()
            .contains(marker)
    );
    let extra = data.path().join("extra.json");
    write_json(
        &extra,
        &json!({"resourceType": "AllergyIntolerance", "id": "reexport-peanut",
                "patient": {"reference": format!("Patient/{}", id.as_str())},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                "code": {"text": marker}, "criticality": "high"}),
    );
    let before = src.version();
    let d = data.path().to_owned();
    let out = tokio::task::spawn_blocking(move || import(&d, &[&extra]))
        .await
        .unwrap();
    assert_ok(&out);
    for _ in 0..200 {
        if src.version() != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_ne!(src.version(), before, "the store was not reloaded");
    let after = cache.get(&visit, &id, false).await.unwrap();
    assert!(!after.cached, "a panel from before the reload was served");
    assert!(
        serde_json::to_string(&*after.summary)
            .unwrap()
            .contains(marker),
        "the re-exported allergy is not shown"
    );
}
