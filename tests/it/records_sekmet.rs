//! The FHIR client against sekmet-fhir (a FHIR R4 server with a SMART Backend
//! Services token endpoint) on loopback, loaded with Synthea and IPS patients.
//! Needs `EXAMROOM_SEKMET` and `EXAMROOM_FHIR_FIXTURES` (scripts/fetch-fhir-fixtures).

use crate::kit::records::servers::{FhirProcess, start_sekmet};
use crate::kit::records::*;
use examroom::ids::PatientRef;
use examroom::records::smart::ASSERTION_TYPE;
use examroom::records::{
    ClientKey, EmbeddedSource, FhirConfig, FhirSource, RecordSource, SigningAlg,
};
use serde_json::{Value, json};
use std::time::Duration;

/// A bundle as a transaction that PUTs every resource under its own id, so the
/// server holds the same ids as the embedded store (urn:uuid refs are rewritten by the server).
fn as_put_transaction(b: &Value) -> Value {
    let entries: Vec<Value> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] != "Composition")
        .map(|e| {
            let r = &e["resource"];
            let url = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
            json!({"fullUrl": e["fullUrl"], "resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

async fn load(s: &FhirProcess, bundle: &Value) {
    let r = reqwest::Client::new()
        .post(&s.base)
        .bearer_auth("loader-secret")
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&as_put_transaction(bundle)).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "loading failed: {status} {}",
        r.text().await.unwrap_or_default()
    );
}

fn client(s: &FhirProcess, id: &str, alg: SigningAlg, dir: &std::path::Path) -> FhirConfig {
    let mut cfg = FhirConfig::new(&s.base, &s.token_url, id, alg, dir.to_owned());
    cfg.timeout = Duration::from_secs(20);
    cfg
}

#[tokio::test]
async fn the_fhir_source_gives_the_same_panel_as_the_embedded_store_with_rs384_and_es384() {
    let dir = tempfile::tempdir().unwrap();
    let rs_dir = dir.path().join("rs");
    let es_dir = dir.path().join("es");
    let rs = ClientKey::load_or_create(&rs_dir, SigningAlg::Rs384).unwrap();
    let es = ClientKey::load_or_create(&es_dir, SigningAlg::Es384).unwrap();
    // Registered with exactly the panel's read scopes.
    let scopes = examroom::records::smart::SCOPES;
    let clients = json!([
        {"client_id": "examroom-rs", "jwks": rs.jwks(), "scopes": scopes},
        {"client_id": "examroom-es", "jwks": es.jwks(), "scopes": scopes},
    ]);
    let sekmet = start_sekmet(dir.path(), clients, None).await;

    let mut bundles: Vec<Value> = synthea_bundles().iter().map(|p| read_json(p)).collect();
    bundles.push(read_json(
        &ips_examples().join("Bundle-IPS-examples-Bundle-01.json"),
    ));
    bundles.push(read_json(
        &ips_examples().join("Bundle-bundle-ips-all-sections.json"),
    ));
    let mut embedded = EmbeddedSource::default();
    for b in &bundles {
        load(&sekmet, b).await;
        embedded.add_json(b.clone());
    }

    let rs_src = FhirSource::new(client(&sekmet, "examroom-rs", SigningAlg::Rs384, &rs_dir))
        .await
        .unwrap();
    let es_src = FhirSource::new(client(&sekmet, "examroom-es", SigningAlg::Es384, &es_dir))
        .await
        .unwrap();
    rs_src.ready().await.unwrap();
    es_src.ready().await.unwrap();

    for b in &bundles {
        let id = PatientRef::parse(&bundle_patient_id(b)).unwrap();
        let want = timeless(&embedded.summary_at(&id, as_of()).unwrap());
        let got_rs = timeless(&rs_src.summary_at(&id, as_of()).await.unwrap());
        assert_panels_eq(&got_rs, &want, &format!("RS384 client, patient {id}"));
        let got_es = timeless(&es_src.summary_at(&id, as_of()).await.unwrap());
        assert_panels_eq(&got_es, &want, &format!("ES384 client, patient {id}"));
    }
    // The biggest Synthea patient has more vital signs than one page (200) holds: all come back.
    let vital_codes: Vec<&str> =
        examroom::records::summary::VitalKind::search_codes_by_kind().concat();
    let is_vital = |o: &Value| {
        o["resourceType"] == "Observation"
            && o["code"]["coding"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["system"] == "http://loinc.org"
                        && vital_codes.contains(&c["code"].as_str().unwrap_or(""))
                })
            })
    };
    let vitals_in = |b: &Value| {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| is_vital(&e["resource"]))
            .count()
    };
    let biggest = bundles.iter().max_by_key(|b| vitals_in(b)).unwrap();
    assert!(
        vitals_in(biggest) > 200,
        "fixture too small to page: {}",
        vitals_in(biggest)
    );
    let id = PatientRef::parse(&bundle_patient_id(biggest)).unwrap();
    let rec = es_src.fetch_record(&id).await.unwrap();
    let fetched = rec
        .observations
        .iter()
        .filter(|o| {
            o.code
                .as_ref()
                .is_some_and(|c| vital_codes.contains(&c.code_in("http://loinc.org").unwrap_or("")))
        })
        .count();
    assert_eq!(fetched, vitals_in(biggest));

    // Each token request signs a fresh jti: forcing renewal twice still works...
    for _ in 0..2 {
        es_src.tokens().invalidate().await;
        es_src.tokens().token().await.unwrap();
    }
    // ...while the server refuses a replayed assertion.
    let token_url = sekmet.token_url.clone();
    let assertion = es.client_assertion("examroom-es", &token_url).unwrap();
    let post = |a: String| {
        let token_url = token_url.clone();
        async move {
            let mut form = reqwest::Url::parse("http://f.invalid/").unwrap();
            form.query_pairs_mut()
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", "system/Patient.read")
                .append_pair("client_assertion_type", ASSERTION_TYPE)
                .append_pair("client_assertion", &a);
            reqwest::Client::new()
                .post(token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.query().unwrap().to_owned())
                .send()
                .await
                .unwrap()
        }
    };
    assert!(post(assertion.clone()).await.status().is_success());
    let replay = post(assertion).await;
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("jti"));

    // A patient the server does not have.
    let nobody = PatientRef::parse("no-such-patient").unwrap();
    assert!(matches!(
        es_src.summary(&nobody).await,
        Err(examroom::records::RecordsError::NotFound)
    ));
}

/// The panel as JSON without the times it was read (they differ by source and run).
fn timeless(s: &examroom::records::PanelSummary) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("fetched_at");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(s).unwrap();
    strip(&mut v);
    v
}

/// Equal panels, or the first section that differs (the whole panel is too long to read).
fn assert_panels_eq(got: &Value, want: &Value, what: &str) {
    for (key, w) in want.as_object().unwrap() {
        assert_eq!(
            &got[key], w,
            "{what}: section {key} differs\n got: {}\nwant: {}",
            got[key], w
        );
    }
    assert_eq!(got, want, "{what}");
}
