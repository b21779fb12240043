//! The Kubernetes launcher against a recording stand-in for the Kubernetes
//! API (no cluster can run here): an HTTP server answering the Deployment
//! and Service endpoints as the API server does (404 Status for a missing
//! object, server-side apply, watch streams, label-selected lists; a
//! Deployment becomes available when a watch of it is served, as a
//! controller would make it). The test checks the exact requests the
//! launcher makes — create, get, watch for readiness, apply for an upgrade,
//! list and delete for garbage — that its verbs are exactly the Role it is
//! granted, and every object it sends against Kubernetes 1.30's schemas
//! (`kubernetes-validate --strict`, PyPI). Not proven here: a real API
//! server's admission, defaulting and scheduling.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weft_kube::{Launcher, ROLE_RULES, Workload};

/// One request the launcher made.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    /// `deployments` or `services`.
    resource: String,
    name: Option<String>,
    query: String,
    content_type: String,
    body: Option<Value>,
}

impl Exchange {
    /// `GET deployments/x`, `WATCH deployments`, `LIST services`, …
    fn short(&self) -> String {
        let verb = match (self.method.as_str(), &self.name) {
            ("GET", None) if self.query.contains("watch=true") => "WATCH",
            ("GET", None) => "LIST",
            (method, _) => method,
        };
        match &self.name {
            Some(name) => format!("{verb} {}/{name}", self.resource),
            None => format!("{verb} {}", self.resource),
        }
    }

    /// The RBAC verb this request needs.
    fn verb(&self) -> &'static str {
        match (self.method.as_str(), &self.name) {
            ("GET", None) if self.query.contains("watch=true") => "watch",
            ("GET", None) => "list",
            ("GET", Some(_)) => "get",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            _ => "unknown",
        }
    }
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String), Value>,
    log: Vec<Exchange>,
    version: u64,
    /// Deployments that never become available.
    stuck: BTreeSet<String>,
}

impl Store {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }
}

type Shared = Arc<Mutex<Store>>;

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

fn api_version(resource: &str) -> &'static str {
    if resource == "deployments" {
        "apps/v1"
    } else {
        "v1"
    }
}

fn matches_selector(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &object["metadata"]["labels"];
        match term.split_once('=') {
            Some((key, value)) => labels[key] == value,
            None => !labels[term].is_null(),
        }
    })
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            v.replace("%2C", ",")
                .replace("%3D", "=")
                .replace("%2F", "/")
                .replace('+', " ")
        })
    })
}

async fn handle(
    State(store): State<Shared>,
    method: Method,
    Path(parts): Path<Vec<(String, String)>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts: BTreeMap<String, String> = parts.into_iter().collect();
    let request = Exchange {
        method: method.to_string(),
        resource: parts.get("resource").cloned().unwrap_or_default(),
        name: parts.get("name").cloned(),
        query: query.unwrap_or_default(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: (!body.is_empty()).then(|| {
            serde_json::from_slice(&body)
                .unwrap_or(json!({"unparsed": String::from_utf8_lossy(&body)}))
        }),
    };
    let (response, stall) = respond(&mut store.lock().expect("store"), request);
    if stall {
        // A watch that sees nothing before it times out (shortened).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    response
}

/// The API server's answer, and whether it is a watch that stalls.
fn respond(store: &mut Store, request: Exchange) -> (Response, bool) {
    let Exchange {
        method,
        resource,
        name,
        query,
        body,
        ..
    } = request.clone();
    store.log.push(request);
    let key = |name: &str| (resource.clone(), name.to_owned());
    let response = match (method.as_str(), name) {
        ("GET", None) if query.contains("watch=true") => {
            // The controller's work: the watched Deployment's newest
            // generation becomes available, and the watch says so.
            let selector = query_value(&query, "fieldSelector").unwrap_or_default();
            let name = selector.trim_start_matches("metadata.name=").to_owned();
            let version = store.next_version();
            let stuck = store.stuck.contains(&name);
            let Some(object) = store.objects.get_mut(&key(&name)) else {
                return (
                    status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{name} not found"),
                    ),
                    false,
                );
            };
            if stuck {
                return ((StatusCode::OK, String::new()).into_response(), true);
            }
            let generation = object["metadata"]["generation"].clone();
            object["status"] = json!({
                "observedGeneration": generation,
                "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
            });
            object["metadata"]["resourceVersion"] = json!(version);
            let event = json!({"type": "MODIFIED", "object": object});
            (StatusCode::OK, format!("{event}\n")).into_response()
        }
        ("GET", None) => {
            let selector = query_value(&query, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|((r, _), o)| *r == resource && matches_selector(o, &selector))
                .map(|(_, o)| o.clone())
                .collect();
            let kind = if resource == "deployments" {
                "DeploymentList"
            } else {
                "ServiceList"
            };
            let version = store.next_version();
            axum::Json(json!({
                "apiVersion": api_version(&resource), "kind": kind,
                "metadata": {"resourceVersion": version}, "items": items,
            }))
            .into_response()
        }
        ("GET", Some(name)) => match store.objects.get(&key(&name)) {
            Some(object) => axum::Json(object.clone()).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{resource} \"{name}\" not found"),
            ),
        },
        ("POST", None) => {
            let Some(mut object) = body else {
                return (
                    status(StatusCode::BAD_REQUEST, "BadRequest", "no body".into()),
                    false,
                );
            };
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if store.objects.contains_key(&key(&name)) {
                return (
                    status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{name} exists"),
                    ),
                    false,
                );
            }
            let version = store.next_version();
            object["metadata"]["resourceVersion"] = json!(version);
            object["metadata"]["generation"] = json!(1);
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
            store.objects.insert(key(&name), object.clone());
            (StatusCode::CREATED, axum::Json(object)).into_response()
        }
        ("PATCH", Some(name)) => {
            let Some(applied) = body else {
                return (
                    status(StatusCode::BAD_REQUEST, "BadRequest", "no body".into()),
                    false,
                );
            };
            let version = store.next_version();
            let existing = store.objects.get(&key(&name)).cloned();
            let generation = existing
                .as_ref()
                .and_then(|o| o["metadata"]["generation"].as_i64())
                .unwrap_or(0);
            let changed = existing
                .as_ref()
                .is_none_or(|o| o["spec"] != applied["spec"]);
            let mut object = applied;
            object["metadata"]["resourceVersion"] = json!(version);
            object["metadata"]["generation"] = json!(generation + i64::from(changed));
            if let Some(status) = existing.as_ref().map(|o| o["status"].clone()) {
                object["status"] = status;
            }
            store.objects.insert(key(&name), object.clone());
            axum::Json(object).into_response()
        }
        ("DELETE", Some(name)) => match store.objects.remove(&key(&name)) {
            Some(object) => axum::Json(object).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{name} not found"),
            ),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            method.clone(),
        ),
    };
    (response, false)
}

/// Starts the stand-in on 127.0.0.1; its URL and store.
async fn api_server() -> (String, Shared) {
    let store: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/{resource}",
            axum::routing::any(handle),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/{resource}/{name}",
            axum::routing::any(handle),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}",
            axum::routing::any(handle),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}/{name}",
            axum::routing::any(handle),
        )
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), store)
}

fn workload(chaincode: &str, version: &str, image: &str) -> Workload {
    Workload {
        chaincode: chaincode.into(),
        version: version.into(),
        image: image.into(),
        command: vec!["chaincode".into(), "run".into(), "{chaincode_id}".into()],
        service: format!("chaincode-{chaincode}"),
        instance: "weft-default".into(),
    }
}

fn taken(store: &Shared) -> Vec<Exchange> {
    std::mem::take(&mut store.lock().expect("store").log)
}

/// `kubernetes-validate --strict -k 1.30.0` on `objects`.
fn validate(objects: &[Value]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let file = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&file, serde_saphyr::to_string(object).expect("YAML")).expect("write");
        files.push(file);
    }
    let python = weft_compat::python().expect("compat/.venv (compat/install.sh)");
    let checked = Command::new(python.with_file_name("kubernetes-validate"))
        .args(["--strict", "-k", "1.30.0", "--no-warn"])
        .args(&files)
        .output()
        .expect("kubernetes-validate (compat/install.sh installs it)");
    let said = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}");
    assert_eq!(
        said.matches(" passed for resource ").count(),
        files.len(),
        "{said}"
    );
}

#[tokio::test]
async fn the_launcher_creates_waits_upgrades_and_collects_garbage_with_only_its_verbs() {
    let (url, store) = api_server().await;
    let launcher = Launcher::at(&url, "weft").expect("launcher");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let said = lines.clone();
    let mut progress = move |line: &str| said.lock().expect("lines").push(line.to_owned());
    let timeout = Duration::from_secs(20);

    // A new chaincode: read, create, watch until available.
    let v1 = workload("basic", "1.0", "weft:0.1.0");
    launcher
        .ensure(&v1, timeout, &mut progress)
        .await
        .expect("ensure");
    let created = taken(&store);
    let shorts: Vec<String> = created.iter().map(Exchange::short).collect();
    assert_eq!(
        shorts,
        [
            "GET deployments/chaincode-basic",
            "POST deployments",
            "GET services/chaincode-basic",
            "POST services",
            "GET deployments/chaincode-basic",
            "WATCH deployments",
        ],
        "{created:#?}"
    );
    let watch = &created[5];
    assert!(
        watch
            .query
            .contains("fieldSelector=metadata.name%3Dchaincode-basic")
            || watch
                .query
                .contains("fieldSelector=metadata.name=chaincode-basic"),
        "{}",
        watch.query
    );
    let deployment = created[1].body.clone().expect("the Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"], json!(["chaincode", "run", "basic"]));
    assert_eq!(container["env"][0]["value"], "0.0.0.0:9999");
    assert_eq!(container["env"][1]["value"], "basic");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    let said = lines.lock().expect("lines").clone();
    assert!(
        said.iter()
            .any(|l| l.contains("available at chaincode-basic:9999")),
        "{said:?}"
    );

    // A new version and image: read, apply (server-side, weft's field
    // manager), watch the new generation roll out.
    let v2 = workload("basic", "1.1", "weft:0.2.0");
    launcher
        .ensure(&v2, timeout, &mut progress)
        .await
        .expect("upgrade");
    let upgraded = taken(&store);
    let shorts: Vec<String> = upgraded.iter().map(Exchange::short).collect();
    assert_eq!(
        shorts,
        [
            "GET deployments/chaincode-basic",
            "PATCH deployments/chaincode-basic",
            "GET services/chaincode-basic",
            "PATCH services/chaincode-basic",
            "GET deployments/chaincode-basic",
            "WATCH deployments",
        ],
        "{upgraded:#?}"
    );
    let apply = &upgraded[1];
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert!(apply.query.contains("fieldManager=weft") && apply.query.contains("force=true"));
    let patched = apply.body.clone().expect("applied Deployment");
    assert_eq!(
        patched["spec"]["template"]["metadata"]["annotations"]["weft.dev/chaincode-version"],
        "1.1"
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "weft:0.2.0"
    );
    {
        let store = store.lock().expect("store");
        let stored = &store.objects[&("deployments".to_owned(), "chaincode-basic".to_owned())];
        assert_eq!(
            stored["metadata"]["generation"], 2,
            "the template changed: a rollout"
        );
    }

    // A second chaincode, then garbage: only the workloads of this network
    // whose chaincode left the spec go.
    let extra = workload("extra", "1.0", "weft:0.1.0");
    launcher
        .ensure(&extra, timeout, &mut progress)
        .await
        .expect("extra");
    let extra_exchange = taken(&store);
    store.lock().expect("store").objects.insert(
        ("deployments".into(), "other-network".into()),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "other-network", "labels": {
                   "app.kubernetes.io/instance": "another", "weft.dev/chaincode": "x"}}}),
    );
    let deleted = launcher
        .collect_garbage("weft-default", &["chaincode-basic".to_owned()])
        .await
        .expect("garbage");
    assert_eq!(
        deleted,
        ["Deployment chaincode-extra", "Service chaincode-extra"]
    );
    let collected = taken(&store);
    let shorts: Vec<String> = collected.iter().map(Exchange::short).collect();
    assert_eq!(
        shorts,
        [
            "LIST deployments",
            "DELETE deployments/chaincode-extra",
            "LIST services",
            "DELETE services/chaincode-extra",
        ]
    );
    assert!(
        collected[0].query.contains("labelSelector="),
        "{}",
        collected[0].query
    );
    {
        let store = store.lock().expect("store");
        let left: Vec<&String> = store.objects.keys().map(|(_, name)| name).collect();
        assert_eq!(
            left,
            ["chaincode-basic", "other-network", "chaincode-basic"]
        );
    }

    // A Deployment that never becomes available: a clear error in time.
    let stuck = workload("stuck", "1.0", "weft:0.1.0");
    store
        .lock()
        .expect("store")
        .stuck
        .insert("chaincode-stuck".into());
    let failed = launcher
        .ensure(&stuck, Duration::from_secs(1), &mut progress)
        .await
        .expect_err("never available");
    let said = failed.to_string();
    assert!(
        said.contains("chaincode stuck") && said.contains("no available pod after 1s"),
        "{said}"
    );
    let stuck_exchange = taken(&store);

    // The verbs used are exactly the Role's.
    let mut used = BTreeSet::new();
    for exchange in created
        .iter()
        .chain(&upgraded)
        .chain(&extra_exchange)
        .chain(&collected)
        .chain(&stuck_exchange)
    {
        used.insert((exchange.resource.clone(), exchange.verb().to_owned()));
    }
    let granted: BTreeSet<(String, String)> = ROLE_RULES
        .iter()
        .flat_map(|(_, resource, verbs)| {
            verbs.iter().map(|v| (resource.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(used, granted);

    // Every object sent validates against Kubernetes 1.30.
    let sent: Vec<Value> = created
        .iter()
        .chain(&upgraded)
        .chain(&extra_exchange)
        .filter_map(|e| e.body.clone())
        .collect();
    assert_eq!(sent.len(), 6);
    validate(&sent);
}
