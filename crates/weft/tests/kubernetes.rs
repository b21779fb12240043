//! `weft deploy k8s`: its objects checked by `kubernetes-validate --strict`
//! for Kubernetes 1.30 (PyPI, which `compat/install.sh` installs), and its
//! podman variant run for real by `podman kube play` (Debian's podman) on a
//! podman of the test's own: private storage, API socket and network,
//! removed afterwards.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn weft(args: &[&str]) -> Output {
    Command::new(WEFT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("weft")
}

/// `kubernetes-validate --strict -k 1.30.0` on `files`.
fn validate(files: &[PathBuf]) {
    let python = weft_compat::python().expect("compat/.venv (compat/install.sh)");
    let tool = python.with_file_name("kubernetes-validate");
    let checked = Command::new(tool)
        .args(["--strict", "-k", "1.30.0", "--no-warn"])
        .args(files)
        .output()
        .expect("kubernetes-validate (compat/install.sh installs it)");
    let said = text(&checked);
    assert!(checked.status.success(), "{said}");
    assert!(
        said.matches(" passed for resource ").count() > files.len(),
        "{said}"
    );
}

/// Every YAML document of `file`.
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("manifest");
    text.split("\n---\n")
        .skip(1)
        .map(|doc| serde_saphyr::from_str(doc).expect("a YAML document"))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("manifests")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// The objects of the default network validate for Kubernetes 1.30, one
/// Service is exposed, every object is in the namespace, CA keys stay off
/// the cluster and each node's pod sees its own keys and nobody else's.
#[test]
fn the_objects_validate_expose_one_gateway_and_keep_keys_to_their_nodes() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = out.path().join("k8s");
    let wrote = weft(&[
        "deploy",
        "k8s",
        "--output",
        output.to_str().expect("utf8"),
        "--namespace",
        "weft-test",
        "--expose",
        "load-balancer",
        "--storage-class",
        "fast",
        "--storage",
        "2Gi",
    ]);
    let said = text(&wrote);
    assert!(wrote.status.success(), "{said}");
    assert!(said.contains("kubectl apply -f"), "{said}");
    assert!(
        said.contains("kubectl -n weft-test get service weft-default-gateway"),
        "{said}"
    );
    let files = yaml_files(&output.join("kubernetes"));
    validate(&files);
    let docs: Vec<Value> = files.iter().flat_map(|f| documents(f)).collect();
    let kind = |k: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == k).collect() };

    for doc in &docs {
        if doc["kind"] != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "weft-test", "{doc:#}");
        }
    }
    // Exactly one Service reachable from outside: the gateway peer's.
    let services = kind("Service");
    assert_eq!(services.len(), 6, "a Service per node and the gateway's");
    let exposed: Vec<&&Value> = services
        .iter()
        .filter(|s| s["spec"]["type"] != "ClusterIP")
        .collect();
    assert_eq!(exposed.len(), 1, "{exposed:#?}");
    assert_eq!(exposed[0]["metadata"]["name"], "weft-default-gateway");
    assert_eq!(exposed[0]["spec"]["type"], "LoadBalancer");
    assert_eq!(
        exposed[0]["spec"]["selector"]["weft.dev/node"],
        "peer0-org1-example-com"
    );
    assert_eq!(exposed[0]["spec"]["ports"][0]["port"], 7051);

    // Each node: a Deployment of one pod on its claim, probed, unprivileged.
    let deployments = kind("Deployment");
    assert_eq!(deployments.len(), 5);
    let peer = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == "peer0-org1-example-com")
        .expect("peer0.org1's Deployment");
    assert_eq!(peer["spec"]["strategy"]["type"], "Recreate");
    let pod = &peer["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = &pod["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!([
            "peer",
            "start",
            "--config",
            "/network/nodes/peer0.org1.example.com/config.yaml"
        ])
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 17051);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let claims = kind("PersistentVolumeClaim");
    let claim = claims
        .iter()
        .find(|c| c["metadata"]["name"] == "data-peer0-org1-example-com")
        .expect("peer0.org1's claim");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert!(kind("Role").is_empty() && kind("ClusterRole").is_empty());

    // Keys: Secrets hold them, each mounted only where it belongs; the CA
    // keys are nowhere in the objects.
    let secrets: BTreeSet<String> = kind("Secret")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().expect("name").to_owned())
        .collect();
    assert!(!secrets.is_empty());
    for deployment in &deployments {
        let node = deployment["metadata"]["name"].as_str().expect("name");
        let sources = deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
            .as_array()
            .expect("projected sources");
        let mut own_keys = 0;
        for source in sources {
            let Some(secret) = source.get("secret") else {
                continue;
            };
            assert!(secrets.contains(secret["name"].as_str().expect("name")));
            for item in secret["items"].as_array().expect("items") {
                let path = item["path"].as_str().expect("path");
                let parts: Vec<&str> = path.split('/').collect();
                let host = parts
                    .iter()
                    .position(|part| *part == "peers" || *part == "orderers")
                    .and_then(|i| parts.get(i + 1))
                    .map(|part| part.replace('.', "-"));
                assert_eq!(host.as_deref(), Some(node), "{node} mounts {path}");
                own_keys += usize::from(path.ends_with("_sk") || path.ends_with(".key"));
            }
        }
        assert_eq!(own_keys, 2, "{node}: its signing key and TLS key");
    }
    let network = output.join("network/organizations");
    let everything: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("manifest"))
        .collect();
    for ca in [
        "peerOrganizations/org1.example.com/ca/priv_sk",
        "peerOrganizations/org1.example.com/tlsca/priv_sk",
        "ordererOrganizations/example.com/ca/priv_sk",
    ] {
        let key = std::fs::read(network.join(ca)).expect("CA key");
        assert!(
            !everything.contains(&base64(&key)),
            "{ca} is in the objects"
        );
        let pem = String::from_utf8(key).expect("PEM");
        let body = pem.lines().nth(1).expect("PEM body");
        assert!(!everything.contains(body), "{ca} is in the objects");
    }

    // The TLS certificates carry the Services' names the nodes are dialled at.
    let cert = std::fs::read(
        network
            .join("peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls/server.crt"),
    )
    .expect("TLS certificate");
    let der = &weft_crypto::pem::certificates(&cert).expect("PEM")[0];
    assert!(
        der.windows(22).any(|w| w == b"peer0-org1-example-com"),
        "the SAN peer0-org1-example-com"
    );
    let job = &kind("Job")[0];
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert!(args.iter().any(|a| a == "kubernetes"), "{args:?}");

    // The podman variant is valid Kubernetes too.
    let podman = out.path().join("podman");
    let wrote = weft(&[
        "deploy",
        "k8s",
        "--podman",
        "--output",
        podman.to_str().expect("utf8"),
    ]);
    assert!(wrote.status.success(), "{}", text(&wrote));
    validate(&[
        podman.join("podman-claims.yaml"),
        podman.join("podman.yaml"),
    ]);
}

fn base64(bytes: &[u8]) -> String {
    weft_crypto::pem::base64(bytes)
}

/// What cannot be deployed yet, or is wrong, is refused by name before
/// anything is written.
#[test]
fn what_a_cluster_cannot_take_is_refused_by_name() {
    let out = tempfile::tempdir().expect("temp dir");
    let refused = |spec: Option<&str>, extra: &[&str], expected: &[&str]| {
        let output = out.path().join("out");
        let mut args = vec!["deploy", "k8s", "--output", output.to_str().expect("utf8")];
        let file = out.path().join("spec.yaml");
        if let Some(spec) = spec {
            std::fs::write(&file, spec).expect("spec");
            args.push(file.to_str().expect("utf8"));
        }
        args.extend_from_slice(extra);
        let result = weft(&args);
        let said = text(&result);
        assert!(!result.status.success(), "{said}");
        for word in expected {
            assert!(said.contains(word), "{word:?} in {said}");
        }
        assert!(!output.exists(), "nothing written: {said}");
    };
    refused(None, &["--namespace", "Bad_NS"], &["Bad_NS", "DNS label"]);
    refused(None, &["--gateway-org", "Org9"], &["Org9", "Org1, Org2"]);
    let default = weft_spec::DEFAULT_SPEC_YAML;
    refused(
        Some(&format!("{default}certificateAuthorities: true\n")),
        &[],
        &["certificateAuthorities", "Kubernetes"],
    );
    let docker = default.replace(
        "    launcher:\n      builtin: basic",
        "    launcher:\n      docker: {image: \"basic:1\"}",
    );
    assert_ne!(docker, default, "the default spec's launcher line");
    refused(Some(&docker), &[], &["chaincode basic", "docker launcher"]);
}

/// A spec with a chaincode for the Kubernetes launcher: the peers dial its
/// Service, the init Job alone gets a token, bound to a Role of exactly the
/// launcher's verbs; where it cannot run it is refused by name.
#[test]
fn a_kubernetes_chaincode_gets_its_service_address_and_the_launchers_least_privilege() {
    let out = tempfile::tempdir().expect("temp dir");
    let spec = weft_spec::DEFAULT_SPEC_YAML.replace(
        "    launcher:\n      builtin: basic",
        "    launcher:\n      kubernetes: {image: \"registry.example.com/basic-cc:1.0\", command: [chaincode, run, basic]}",
    );
    assert_ne!(spec, weft_spec::DEFAULT_SPEC_YAML);
    let file = out.path().join("spec.yaml");
    std::fs::write(&file, &spec).expect("spec");
    let output = out.path().join("k8s");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["deploy", "k8s", file.to_str().expect("utf8"), "--output"]
            .map(str::to_owned)
            .to_vec();
        args.push(output.to_str().expect("utf8").to_owned());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        weft(&args)
    };
    let refused = run(args(&[]));
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("give --namespace"),
        "{}",
        text(&refused)
    );
    let refused = run(args(&["--podman", "--namespace", "weft"]));
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("podman lacks"),
        "{}",
        text(&refused)
    );

    let wrote = run(args(&["--namespace", "weft"]));
    assert!(wrote.status.success(), "{}", text(&wrote));
    let files = yaml_files(&output.join("kubernetes"));
    validate(&files);
    let docs: Vec<Value> = files.iter().flat_map(|f| documents(f)).collect();
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("the launcher's Role");
    let granted: Vec<(String, String, Vec<String>)> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            (
                rule["apiGroups"][0].as_str().expect("group").to_owned(),
                rule["resources"][0].as_str().expect("resource").to_owned(),
                rule["verbs"]
                    .as_array()
                    .expect("verbs")
                    .iter()
                    .map(|v| v.as_str().expect("verb").to_owned())
                    .collect(),
            )
        })
        .collect();
    let launcher: Vec<(String, String, Vec<String>)> = weft_kube::ROLE_RULES
        .iter()
        .map(|(g, r, v)| {
            (
                g.to_string(),
                r.to_string(),
                v.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(granted, launcher);
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "RoleBinding")
        .expect("RoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "weft-default-launcher");
    assert_eq!(binding["subjects"][0]["namespace"], "weft");
    // Only the init Job mounts a token, and it is the launcher's.
    for doc in &docs {
        let pod = match doc["kind"].as_str() {
            Some("Deployment" | "Job") => &doc["spec"]["template"]["spec"],
            _ => continue,
        };
        if doc["kind"] == "Job" {
            assert_eq!(pod["serviceAccountName"], "weft-default-launcher");
            assert_eq!(pod["automountServiceAccountToken"], true);
        } else {
            assert_eq!(pod["automountServiceAccountToken"], false, "{doc:#}");
        }
    }
    let config =
        std::fs::read_to_string(output.join("network/nodes/peer0.org1.example.com/config.yaml"))
            .expect("peer config");
    assert!(
        config.contains("external:\n        address: \"chaincode-basic:9999\""),
        "{config}"
    );

    // Where no cluster runs it: named.
    let dir = out.path().join("up");
    let up = weft(&[
        "up",
        file.to_str().expect("utf8"),
        "--dir",
        dir.to_str().expect("utf8"),
    ]);
    assert!(!up.status.success());
    let said = text(&up);
    assert!(
        said.contains("chaincodes[0].launcher.kubernetes") && said.contains("weft deploy k8s"),
        "{said}"
    );
    let compose = weft(&[
        "deploy",
        "compose",
        file.to_str().expect("utf8"),
        "--output",
        out.path().join("compose").to_str().expect("utf8"),
    ]);
    assert!(!compose.status.success());
    assert!(
        text(&compose).contains("kubernetes launcher runs in a cluster"),
        "{}",
        text(&compose)
    );
}

/// `--per-organization`: a directory of objects per namespace (org1, org2,
/// orderer), each with only its own organisation's keys, its own init Job
/// and (peer organisations) its own gateway; nodes dial each other across
/// namespaces at `<service>.<namespace>`, which their certificates name.
#[test]
fn per_organization_namespaces_hold_only_their_own_keys() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = out.path().join("k8s");
    let wrote = weft(&[
        "deploy",
        "k8s",
        "--per-organization",
        "--output",
        output.to_str().expect("utf8"),
    ]);
    assert!(wrote.status.success(), "{}", text(&wrote));
    for (namespace, msp_id, domain) in [
        ("org1", "Org1MSP", "peerorganizations-org1-example-com"),
        ("org2", "Org2MSP", "peerorganizations-org2-example-com"),
        ("orderer", "OrdererMSP", "ordererorganizations-example-com"),
    ] {
        let files = yaml_files(&output.join("kubernetes").join(namespace));
        validate(&files);
        let docs: Vec<Value> = files.iter().flat_map(|f| documents(f)).collect();
        for doc in &docs {
            let expected = if doc["kind"] == "Namespace" {
                &doc["metadata"]["name"]
            } else {
                &doc["metadata"]["namespace"]
            };
            assert_eq!(expected, namespace, "{doc:#}");
            if doc["kind"] == "Secret" {
                let name = doc["metadata"]["name"].as_str().expect("name");
                assert!(name.contains(domain), "{namespace} holds {name}");
            }
        }
        let exposed = docs
            .iter()
            .filter(|d| d["kind"] == "Service" && d["spec"]["type"] != "ClusterIP")
            .count();
        assert_eq!(exposed, usize::from(namespace != "orderer"), "{namespace}");
        let job = docs.iter().find(|d| d["kind"] == "Job").expect("init Job");
        let args = &job["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(
            args.as_array().expect("args").iter().any(|a| a == msp_id)
                && args
                    .as_array()
                    .expect("args")
                    .iter()
                    .any(|a| a == "kubernetes-per-organization"),
            "{args}"
        );
    }
    // The same directory for one namespace: its certificates name the
    // nodes as the namespaces dial them, so it is refused.
    let refused = weft(&["deploy", "k8s", "--output", output.to_str().expect("utf8")]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("was written for a namespace per organisation"),
        "{}",
        text(&refused)
    );
    let network = output.join("network");
    let config = std::fs::read_to_string(network.join("nodes/peer0.org1.example.com/config.yaml"))
        .expect("config");
    assert!(
        config.contains("\"peer0-org2-example-com.org2:9051\""),
        "{config}"
    );
    let cert = std::fs::read(network.join(
        "organizations/peerOrganizations/org2.example.com/peers/peer0.org2.example.com/tls/server.crt",
    ))
    .expect("certificate");
    let der = &weft_crypto::pem::certificates(&cert).expect("PEM")[0];
    let san = b"peer0-org2-example-com.org2";
    assert!(der.windows(san.len()).any(|w| w == san), "the SAN");
}

/// Lints (strict, Kubernetes 1.30) and renders `chart` with `values` through
/// Helm's SDK; the rendered files, or Helm's refusal.
fn helm_render(chart: &Path, output: &Path, values: &str) -> Result<Vec<PathBuf>, String> {
    let python = weft_compat::python().expect("compat/.venv (compat/install.sh)");
    let script = weft_compat::compat_dir().join("python/helm_chart.py");
    let run = Command::new(&python)
        .arg(script)
        .arg(chart)
        .arg(output)
        .arg(values)
        .output()
        .expect("python");
    assert!(run.status.success(), "{}", text(&run));
    let report: Value = serde_json::from_slice(&run.stdout).expect("helm_chart.py's report");
    if let Some(error) = report.get("error") {
        return Err(error.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        report["lint"]["errors"],
        serde_json::json!([]),
        "{report:#}"
    );
    for message in report["lint"]["messages"].as_array().expect("messages") {
        assert!(message["severity"].as_u64() < Some(2), "lint: {message}");
    }
    Ok(report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| PathBuf::from(f.as_str().expect("path")))
        .collect())
}

fn objects(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("rendered");
            text.split("\n---").map(str::to_owned).collect::<Vec<_>>()
        })
        .filter(|doc| doc.lines().any(|l| l.starts_with("kind:")))
        .map(|doc| serde_saphyr::from_str(doc.trim_start_matches('\n')).expect("YAML"))
        .collect()
}

/// `weft deploy helm`: the chart lints, renders the objects of `weft deploy
/// k8s` (validated the same way), and an upgrade with more peers adds them
/// everywhere they must appear, up to the chart's capacity.
#[test]
fn the_helm_chart_renders_the_same_objects_and_scales_peers() {
    let out = tempfile::tempdir().expect("temp dir");
    let chart_out = out.path().join("helm");
    let wrote = weft(&[
        "deploy",
        "helm",
        "--output",
        chart_out.to_str().expect("utf8"),
        "--peer-capacity",
        "2",
    ]);
    let said = text(&wrote);
    assert!(wrote.status.success(), "{said}");
    assert!(said.contains("helm install weft"), "{said}");
    let chart = chart_out.join("chart");

    let rendered = helm_render(&chart, &out.path().join("r1"), "{}").expect("render");
    validate(&rendered);
    let installed = objects(&rendered);
    let names = |docs: &[Value]| -> BTreeSet<(String, String)> {
        docs.iter()
            .map(|d| {
                (
                    d["kind"].as_str().expect("kind").to_owned(),
                    d["metadata"]["name"].as_str().expect("name").to_owned(),
                )
            })
            .collect()
    };
    // The same objects as `weft deploy k8s` of the same spec (the chart's
    // identities are its own: only names are compared).
    let k8s = out.path().join("k8s");
    let wrote = weft(&["deploy", "k8s", "--output", k8s.to_str().expect("utf8")]);
    assert!(wrote.status.success(), "{}", text(&wrote));
    let plain: Vec<Value> = yaml_files(&k8s.join("kubernetes"))
        .iter()
        .flat_map(|f| documents(f))
        .collect();
    assert_eq!(names(&installed), names(&plain));
    let job = installed.iter().find(|d| d["kind"] == "Job").expect("Job");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );

    // Two peers in Org1: peer1's objects appear, peer0 names it as a
    // gateway peer, and the init Job's spec counts it.
    let upgraded = helm_render(
        &chart,
        &out.path().join("r2"),
        r#"{"organizations": {"org1": {"peers": 2}, "org2": {"peers": 1}}, "storage": {"className": "fast", "size": "1Gi"}, "gateway": {"type": "LoadBalancer", "perOrganization": true}}"#,
    )
    .expect("render with two peers");
    validate(&upgraded);
    let docs = objects(&upgraded);
    let added: BTreeSet<(String, String)> = names(&docs)
        .difference(&names(&installed))
        .cloned()
        .collect();
    for kind in ["Deployment", "Service", "PersistentVolumeClaim"] {
        let name = if kind == "PersistentVolumeClaim" {
            "data-peer1-org1-example-com"
        } else {
            "peer1-org1-example-com"
        };
        assert!(
            added.contains(&(kind.to_owned(), name.to_owned())),
            "{added:?}"
        );
    }
    assert!(
        added.contains(&(
            "Service".to_owned(),
            "weft-default-gateway-org2msp".to_owned()
        )),
        "{added:?}"
    );
    let config = docs
        .iter()
        .find(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("weft-default-nodes-peer0-org1-example-com-"))
        })
        .and_then(|d| d["data"]["config.yaml"].as_str())
        .expect("peer0.org1's config");
    assert!(config.contains("peer1-org1-example-com:7151"), "{config}");
    let spec = docs
        .iter()
        .find_map(|d| d["data"]["network.yaml"].as_str())
        .expect("the init Job's spec");
    let parsed = weft_spec::NetworkSpec::from_yaml(spec, "network.yaml").expect("a valid spec");
    assert_eq!(parsed.organizations[0].peers, 2);
    assert_eq!(parsed.organizations[1].peers, 1);
    let claim = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "data-peer1-org1-example-com")
        .expect("claim");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(
        claim["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    // Past the identities the chart holds: Helm refuses the values.
    let refused = helm_render(
        &chart,
        &out.path().join("r3"),
        r#"{"organizations": {"org1": {"peers": 3}, "org2": {"peers": 1}}}"#,
    )
    .expect_err("three peers");
    assert!(
        refused.contains("/organizations/org1/peers") && refused.contains("maximum"),
        "{refused}"
    );

    // Written again with a larger capacity: the identities are kept, and
    // three peers render.
    let key = std::fs::read(chart_out.join(
        "network/organizations/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp/keystore/priv_sk",
    ))
    .expect("peer0's key");
    let wrote = weft(&[
        "deploy",
        "helm",
        "--output",
        chart_out.to_str().expect("utf8"),
        "--peer-capacity",
        "3",
    ]);
    assert!(wrote.status.success(), "{}", text(&wrote));
    let again = std::fs::read(chart_out.join(
        "network/organizations/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp/keystore/priv_sk",
    ))
    .expect("peer0's key");
    assert_eq!(key, again, "identities are kept");
    let three = helm_render(
        &chart,
        &out.path().join("r4"),
        r#"{"organizations": {"org1": {"peers": 3}, "org2": {"peers": 1}}}"#,
    )
    .expect("three peers");
    assert!(
        names(&objects(&three))
            .contains(&("Deployment".to_owned(), "peer2-org1-example-com".to_owned())),
        "peer2 renders"
    );
}

/// A podman of the test's own.
struct Podman {
    dir: tempfile::TempDir,
    service: Child,
    network: String,
}

impl Podman {
    /// None (after saying why) where this machine cannot run podman (not root).
    fn start() -> Option<Podman> {
        if !support::is_root() {
            eprintln!("skipped: podman's networks need root, and these tests do not run as root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits=[\"nofile=20000:20000\",\"nproc=32768:32768\"]\n[engine]\nruntime=\"runc\"\n",
        )
        .expect("containers.conf");
        let socket = dir.path().join("podman.sock");
        let log = std::fs::File::create(dir.path().join("service.log")).expect("log");
        let service = Self::command_in(dir.path())
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("podman (Debian; compat/install.sh installs it): {e}"));
        let network = format!("weft-k8s-{}", std::process::id());
        let podman = Podman {
            dir,
            service,
            network,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "podman's API socket");
            std::thread::sleep(Duration::from_millis(100));
        }
        podman.ok(&["network", "create", &podman.network]);
        Some(podman)
    }

    fn command_in(dir: &Path) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .env("CONTAINERS_CONF", dir.join("containers.conf"));
        command
    }

    fn podman(&self, args: &[&str]) -> Output {
        Self::command_in(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.podman(args);
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            text(&output)
        );
        text(&output)
    }

    fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("podman.sock").display()),
            )
            .stdin(Stdio::null())
            .output()
            .expect("weft")
    }

    /// `podman kube play` of `file` on the test's network.
    fn play(&self, file: &Path) {
        self.ok(&[
            "kube",
            "play",
            "--network",
            &self.network,
            file.to_str().expect("utf8"),
        ]);
    }

    /// Waits for the init pod's `weft deploy init` to print `ready`; its log.
    fn init_ready(&self, container: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let log = text(&self.podman(&["logs", container]));
            if log.contains("] ready") {
                return log;
            }
            assert!(Instant::now() < deadline, "init not ready:\n{log}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["pod", "rm", "--all", "--force"]);
        let _ = self.podman(&["volume", "rm", "--all", "--force"]);
        let _ = self.podman(&["network", "rm", "--force", &self.network]);
        let _ = self.podman(&["rmi", "--all", "--force"]);
        let _ = self.service.kill();
        let _ = self.service.wait();
        support::unmount_under(self.dir.path());
    }
}

use support::free_port;

/// The block the official Node gateway client's transfer committed in.
fn run_gateway_app(network: &Path, peer: u16) -> u64 {
    support::run_gateway_app(network, peer, "basic")["transferStatus"]["blockNumber"]
        .as_u64()
        .expect("block number")
}

/// The podman variant of the objects runs the network: the init pod joins
/// channels and deploys the chaincode, the official Node gateway client
/// submits (2-of-2, through both organisations' pods) through the one
/// published endpoint, and pods played again after `kube down` keep their
/// ledgers and their channels.
#[test]
fn the_network_runs_from_its_objects_under_podman_and_keeps_its_ledgers() {
    let Some(podman) = Podman::start() else {
        return;
    };
    let built = podman.weft(&["image", "build", "--tag", "localhost/weft:k8s-test"]);
    assert!(built.status.success(), "{}", text(&built));

    let dir = tempfile::tempdir().expect("temp dir");
    let peer = free_port();
    let spec = format!(
        "name: kube\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{peer}], operationsPorts: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         orderers: {{organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}, nodes: 3, ports: [{}, {}, {}]}}\n\
         chaincodes:\n  - {{name: basic, launcher: {{builtin: basic}}}}\n",
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let file = dir.path().join("network.yaml");
    std::fs::write(&file, spec).expect("spec");
    let output = dir.path().join("out");
    let wrote = weft(&[
        "deploy",
        "k8s",
        file.to_str().expect("utf8"),
        "--podman",
        "--image",
        "localhost/weft:k8s-test",
        "--output",
        output.to_str().expect("utf8"),
    ]);
    let said = text(&wrote);
    assert!(wrote.status.success(), "{said}");
    assert!(said.contains(&format!("127.0.0.1:{peer}")), "{said}");

    podman.play(&output.join("podman-claims.yaml"));
    podman.play(&output.join("podman.yaml"));
    let log = podman.init_ready("kube-init-init");
    assert!(log.contains("definition committed"), "{log}");
    let network = output.join("network");
    let first = run_gateway_app(&network, peer);

    // Every pod down and played again: the claims keep the ledgers.
    podman.ok(&[
        "kube",
        "down",
        output.join("podman.yaml").to_str().expect("utf8"),
    ]);
    podman.play(&output.join("podman.yaml"));
    let log = podman.init_ready("kube-init-init");
    assert!(log.contains("already defined"), "{log}");
    let peer_log = text(&podman.podman(&["logs", "peer0-org2-example-com-peer"]));
    assert!(
        peer_log.contains("channel mychannel: opened at height"),
        "{peer_log}"
    );
    let second = run_gateway_app(&network, peer);
    assert!(
        second > first + 1,
        "the ledger went on from block {first}: {second}"
    );
}

/// Where no organisation holds another's admin (a namespace each), each
/// runs `weft deploy init --organization` alone: an upgrade is approved by
/// each for itself, committed once, and both finish; the orderers' own run
/// only joins and waits for the Raft leader.
#[test]
fn each_organization_deploys_its_own_part_and_the_definition_is_committed_once() {
    let network = support::up::UpNetwork::up(&support::one_orderer_spec("perorg"), &[]);
    let stored = network.path().join("network.yaml");
    let original = std::fs::read_to_string(&stored).expect("stored spec");
    let upgraded = original.replace(
        "launcher: {builtin: basic}",
        "version: \"1.1\"\n    launcher: {builtin: basic}",
    );
    assert_ne!(upgraded, original, "{original}");
    std::fs::write(&stored, upgraded).expect("spec");
    let init = |organization: &str| {
        Command::new(WEFT)
            .args([
                "deploy",
                "init",
                "--reach",
                "local",
                "--timeout",
                "60",
                "--organization",
            ])
            .arg(organization)
            .arg("--dir")
            .arg(network.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weft deploy init")
    };
    let (org1, org2, orderer) = (init("Org1"), init("Org2MSP"), init("Orderer"));
    let said: Vec<String> = [org1, org2, orderer]
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("init");
            assert!(output.status.success(), "{}", text(&output));
            text(&output)
        })
        .collect();
    for (own, other, said) in [
        ("Org1MSP", "Org2MSP", &said[0]),
        ("Org2MSP", "Org1MSP", &said[1]),
    ] {
        assert!(said.contains(&format!("approved by {own}")), "{said}");
        assert!(!said.contains(&format!("approved by {other}")), "{said}");
        assert!(said.contains("] ready"), "{said}");
    }
    let commits = said
        .iter()
        .filter(|s| s.contains("definition committed (version 1.1, sequence 2"))
        .count();
    let others = said
        .iter()
        .filter(|s| s.contains("definition committed by another organisation (sequence 2)"))
        .count();
    assert_eq!((commits, others), (1, 1), "{said:#?}");
    assert!(
        said[2].contains("Raft leader elected") && !said[2].contains("approved"),
        "{}",
        said[2]
    );

    // The upgraded definition serves.
    network.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "k1",
        "blue",
        "5",
        "Tom",
        "100",
    ]);
    let read = network.ok(&[
        "chaincode",
        "query",
        "basic",
        "ReadAsset",
        "k1",
        "--org",
        "Org2",
    ]);
    assert!(read.contains("\"Owner\":\"Tom\""), "{read}");
}
