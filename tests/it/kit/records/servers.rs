//! Real FHIR R4 servers as child processes for the conformance and write-back suites:
//! Medplum's engine (tests/fhir-servers/medplum.mjs), fhirsnake and sekmet-fhir. Each binds a loopback port picked at run
//! time, is loaded through its own REST API and is killed by its own pid when dropped.
#![allow(dead_code)]

use super::env_file;
use crate::kit::services::{answers, free_port};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A FHIR server process; killed when dropped.
pub struct FhirProcess {
    child: Child,
    /// FHIR base URL, without a trailing slash.
    pub base: String,
    /// The SMART token endpoint to use with it.
    pub token_url: String,
    /// The bearer token the loader uses (not the client's).
    loader_token: Option<String>,
    pub name: &'static str,
}

impl Drop for FhirProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$EXAMROOM_MEDPLUM_MODULES`: the node_modules holding @medplum/fhir-router.
pub fn medplum_modules() -> PathBuf {
    env_file(
        "EXAMROOM_MEDPLUM_MODULES",
        "@medplum/fhir-router/package.json",
    )
}

/// `$EXAMROOM_FHIRSNAKE`: the fhirsnake launcher the fetch script writes.
pub fn fhirsnake() -> PathBuf {
    env_file("EXAMROOM_FHIRSNAKE", "")
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Medplum's FhirRouter + MemoryRepository behind our edge, with a SMART token endpoint
/// that accepts assertions signed by a key in `clients` (`[{client_id, jwks}]`).
pub async fn start_medplum(dir: &Path, clients: Value) -> FhirProcess {
    let clients_file = dir.join("medplum-clients.json");
    std::fs::write(&clients_file, serde_json::to_vec(&clients).unwrap()).unwrap();
    let log = std::fs::File::create(dir.join("medplum.log")).unwrap();
    let mut child = Command::new("node")
        .arg(repo_file("tests/fhir-servers/medplum.mjs"))
        .arg("--modules")
        .arg(medplum_modules())
        .arg("--clients")
        .arg(&clients_file)
        .args(["--loader-token", "loader-secret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start node (Node 20+ is needed for the Medplum FHIR server)");
    let stdout = child.stdout.take().unwrap();
    // The script prints `listening http://127.0.0.1:PORT` once it accepts requests.
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), line)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "Medplum did not start in 60 s; see {}",
                dir.join("medplum.log").display()
            )
        })
        .unwrap()
        .unwrap();
    let origin = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| {
            panic!(
                "Medplum did not start ({line:?}); see {}",
                dir.join("medplum.log").display()
            )
        })
        .to_owned();
    FhirProcess {
        child,
        base: format!("{origin}/fhir/R4"),
        token_url: format!("{origin}/auth/token"),
        loader_token: Some("loader-secret".into()),
        name: "Medplum",
    }
}

/// fhirsnake serving an empty `resources/` folder under `dir`, loaded later by PUT. It has
/// no authorization: `token_url` is left for the caller to point at a token endpoint.
pub async fn start_fhirsnake(dir: &Path) -> FhirProcess {
    std::fs::create_dir_all(dir.join("resources/Patient")).unwrap();
    let http = reqwest::Client::new();
    for _attempt in 0..3 {
        let port = free_port();
        let log = std::fs::File::create(dir.join("fhirsnake.log")).unwrap();
        let child = Command::new(fhirsnake())
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start fhirsnake");
        let mut p = FhirProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            token_url: String::new(),
            loader_token: None,
            name: "fhirsnake",
        };
        // A child that exited lost the port between picking and binding: try another.
        let probe = format!("{}/", p.base);
        if p.answers_within(&http, &probe, 150, Duration::from_millis(100))
            .await
        {
            return p;
        }
    }
    panic!(
        "fhirsnake did not start; see {}",
        dir.join("fhirsnake.log").display()
    );
}

/// sekmet-fhir keeping its data (SQLite) under `dir/sekmet-data`, so a restart on the same
/// `dir` serves what it held; SMART Backend Services for `clients` (`[{client_id, jwks,
/// scopes}]`, scopes enforced on every request), and the loader's static bearer token.
/// `port`: the one to bind (a restart takes the same one), else a free one.
pub async fn start_sekmet(dir: &Path, clients: Value, port: Option<u16>) -> FhirProcess {
    let port = port.unwrap_or_else(free_port);
    let root = format!("http://127.0.0.1:{port}");
    let config = json!({
        "base_url": format!("{root}/fhir"),
        "host": "127.0.0.1",
        "port": port,
        "data_dir": dir.join("sekmet-data"),
        "own_private_key_path": dir.join("sekmet-data/keys/sekmet.pem"),
        "server_auth": {
            "types": ["smart", "bearer"],
            "tokens": ["loader-secret"],
            "smart_clients": clients,
            "token_lifetime": 600,
            "enforce_scopes": true,
        },
        "validation": {"inbound": "off"},
        "simulator": {"enabled": false},
    });
    // JSON is YAML: sekmet reads it as its settings.yaml.
    let path = dir.join("sekmet.yaml");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sekmet.log"))
        .unwrap();
    let child = Command::new(super::sekmet())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start sekmet");
    let mut p = FhirProcess {
        child,
        base: format!("{root}/fhir"),
        token_url: format!("{root}/auth/token"),
        loader_token: Some("loader-secret".into()),
        name: "sekmet",
    };
    let (http, probe) = (reqwest::Client::new(), format!("{root}/fhir/metadata"));
    if p.answers_within(&http, &probe, 300, Duration::from_millis(200))
        .await
    {
        return p;
    }
    panic!(
        "sekmet did not start in 60 s; see {}",
        dir.join("sekmet.log").display()
    );
}

impl FhirProcess {
    /// Whether the server answers `probe` within `tries` looks, `every` apart; `false` at
    /// once when its process has exited.
    async fn answers_within(
        &mut self,
        http: &reqwest::Client,
        probe: &str,
        tries: u32,
        every: Duration,
    ) -> bool {
        for _ in 0..tries {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if answers(http, probe).await {
                return true;
            }
            tokio::time::sleep(every).await;
        }
        false
    }

    /// Sends `rb` as the loader: the status and the JSON body (`null` without one).
    async fn send_as_loader(&self, rb: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
        let r = self.loader(rb).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Panics, naming the server and `what` was asked, unless `status` is a success.
    fn assert_took(&self, what: &str, status: reqwest::StatusCode, body: &Value) {
        assert!(
            status.is_success(),
            "{}: {what}: {status} {body}",
            self.name
        );
    }

    fn loader(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header("content-type", "application/fhir+json");
        match &self.loader_token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        let after = self.base.rsplit_once(':').unwrap().1;
        after.split('/').next().unwrap().parse().unwrap()
    }

    /// Every `rtype` resource the server answers to `GET {base}/{rtype}?{query}` (the
    /// first page, up to 1,000), as the loader sees them.
    pub async fn search(&self, rtype: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut q = query.to_vec();
        q.push(("_count", "1000"));
        let url = reqwest::Url::parse_with_params(&format!("{}/{rtype}", self.base), &q).unwrap();
        let (status, body) = self.send_as_loader(reqwest::Client::new().get(url)).await;
        self.assert_took(&format!("search {rtype}"), status, &body);
        body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"].clone())
            .filter(|r| r["resourceType"] == rtype)
            .collect()
    }

    /// `GET {base}/{rtype}/{id}`, as the loader: the resource's current version, `None`
    /// on 404.
    pub async fn read(&self, rtype: &str, id: &str) -> Option<Value> {
        let url = format!("{}/{rtype}/{id}", self.base);
        let (status, body) = self.send_as_loader(reqwest::Client::new().get(url)).await;
        if status == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        self.assert_took(&format!("read {rtype}"), status, &body);
        Some(body)
    }

    /// POST one resource with `If-None-Exist: condition`, as the loader; status and body.
    pub async fn create_if_none_exist(&self, resource: &Value, condition: &str) -> (u16, Value) {
        let rtype = resource["resourceType"].as_str().unwrap();
        let post = reqwest::Client::new()
            .post(format!("{}/{rtype}", self.base))
            .header("if-none-exist", condition)
            .body(serde_json::to_vec(resource).unwrap());
        let (status, body) = self.send_as_loader(post).await;
        (status.as_u16(), body)
    }

    /// POST a transaction (or batch) bundle to the base, as it is. Returns the response
    /// bundle; panics when the server refuses it or any entry failed.
    pub async fn post_bundle(&self, bundle: &Value) -> Value {
        let post = reqwest::Client::new()
            .post(&self.base)
            .body(serde_json::to_vec(bundle).unwrap());
        let (status, body) = self.send_as_loader(post).await;
        self.assert_took("loading a bundle failed", status, &body);
        for e in body["entry"].as_array().into_iter().flatten() {
            let s = e["response"]["status"].as_str().unwrap_or("");
            assert!(
                s.starts_with('2'),
                "{}: an entry was refused: {e}",
                self.name
            );
        }
        body
    }

    /// PUT each resource under its own id, 8 at a time on kept-alive connections.
    pub async fn put_all(&self, resources: &[Value]) {
        use futures_util::StreamExt;
        let http = reqwest::Client::new();
        let puts = resources.iter().map(|r| {
            let url = format!(
                "{}/{}/{}",
                self.base,
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            self.loader(http.put(url))
                .body(serde_json::to_vec(r).unwrap())
                .send()
        });
        let mut results = futures_util::stream::iter(puts).buffer_unordered(8);
        while let Some(resp) = results.next().await {
            let resp = resp.unwrap();
            assert!(
                resp.status().is_success(),
                "{}: PUT failed: {}",
                self.name,
                resp.status()
            );
        }
    }
}

/// The id the server gave the bundle's Patient, from a transaction-response.
pub fn created_patient_id(request: &Value, response: &Value) -> String {
    let entries = request["entry"].as_array().unwrap();
    let i = entries
        .iter()
        .position(|e| e["resource"]["resourceType"] == "Patient")
        .expect("bundle has a Patient");
    let location = response["entry"][i]["response"]["location"]
        .as_str()
        .expect("location of the created Patient");
    // `Patient/<id>` or `Patient/<id>/_history/<v>`, maybe absolute.
    let after = location.split("Patient/").nth(1).unwrap();
    after.split('/').next().unwrap().to_owned()
}

/// Every resource of a bundle with urn:uuid references rewritten to `Type/id`, ids given
/// from the urn where missing (what a server does on a transaction), for servers loaded by PUT.
pub fn resources_with_ids(bundle: &Value) -> Vec<Value> {
    let entries = bundle["entry"].as_array().unwrap();
    let mut map = std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in entries {
        let r = &e["resource"];
        let id = r["id"].as_str().map(str::to_owned).unwrap_or_else(|| {
            e["fullUrl"]
                .as_str()
                .and_then(|u| u.strip_prefix("urn:uuid:"))
                .expect("a resource without id has a urn:uuid fullUrl")
                .to_owned()
        });
        if let Some(full) = e["fullUrl"].as_str() {
            map.insert(
                full.to_owned(),
                format!("{}/{id}", r["resourceType"].as_str().unwrap()),
            );
        }
        let mut r = r.clone();
        r["id"] = json!(id);
        out.push(r);
    }
    fn rewrite(v: &mut Value, map: &std::collections::HashMap<String, String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if k == "reference"
                        && let Some(s) = x.as_str()
                        && let Some(to) = map.get(s)
                    {
                        *x = json!(to);
                    } else {
                        rewrite(x, map);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, map)),
            _ => {}
        }
    }
    out.iter_mut().for_each(|r| rewrite(r, &map));
    out
}
