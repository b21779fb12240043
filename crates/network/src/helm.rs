//! `weft deploy helm`: the objects of `weft deploy k8s` as a Helm chart.
//!
//! ```text
//! <output>/network/                 the network directory, at the chart's peer capacity
//! <output>/chart/Chart.yaml
//! <output>/chart/values.yaml        image, storage, resources, gateway exposure, peers per organisation
//! <output>/chart/values.schema.json what Helm checks the values against (peers ≤ the capacity)
//! <output>/chart/templates/         the same objects as `weft deploy k8s`, templated
//! ```
//!
//! Peers scale with the values: `--peer-capacity N` issues identities for N
//! peers per organisation, `organizations.<org>.peers` (1..=N) says how many
//! run, and `helm upgrade` with more renders their claims, Services,
//! Deployments and material, lists them in the other peers' configs as
//! gateway peers (the pods roll: their template carries a checksum of the
//! material) and in the spec the init Job reads; the Job is a post-install
//! and post-upgrade hook, so the new peers join their channels. The ledgers'
//! claims are kept by Helm (`helm.sh/resource-policy: keep`) when peers are
//! scaled down or the release is uninstalled. Orderers do not scale: Raft
//! membership is in the channels' configs. Objects keep the names of `weft
//! deploy k8s` (they are the nodes' DNS names, in their certificates), so a
//! namespace holds one release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_spec::NetworkSpec;

use crate::compose::SPEC_MOUNT;
use crate::dir::{NetworkDir, absolute, write_atomic};
use crate::k8s::{
    ClusterOptions, Exposure, KubernetesOptions, Objects, checked_spec, gateway_node, label,
};
use crate::nodes::{Node, Reach, Role};
use crate::{NetworkError, prepare};

/// What `weft deploy helm` is asked for.
#[derive(Debug, Clone)]
pub struct HelmOptions {
    pub cluster: ClusterOptions,
    /// Peers per organisation the chart has identities for (at least the
    /// spec's); None: the spec's.
    pub peer_capacity: Option<u32>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct HelmChart {
    pub chart: PathBuf,
    pub network_dir: NetworkDir,
    pub gateway: Node,
    pub gateway_service: String,
}

const IMAGE: &str = "__WEFT_IMAGE__";
const STORAGE_CLASS: &str = "__WEFT_STORAGE_CLASS__";
const STORAGE_SIZE: &str = "__WEFT_STORAGE_SIZE__";
const GATEWAY_TYPE: &str = "__WEFT_GATEWAY_TYPE__";
const CHECKSUM: &str = "__WEFT_CHECKSUM__";
const NAMESPACE: &str = "__WEFT_NAMESPACE__";
const RESOURCES: &str = "__WEFT_RESOURCES_";
/// `peers:` of organisation k in the spec template is `PEERS_SENTINEL + k`.
const PEERS_SENTINEL: u32 = 7_700_000;

/// Writes the network directory and the chart.
pub fn write(
    spec_text: &str,
    origin: &str,
    builtins: &[String],
    options: &HelmOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<HelmChart, NetworkError> {
    let spec = checked_spec(spec_text, origin, builtins)?;
    let full = at_capacity(&spec, origin, options.peer_capacity)?;
    let keys = organization_keys(&full);
    let output = absolute(&options.cluster.output);
    let dir = NetworkDir::new(output.join("network")).reached_from(Reach::Kubernetes);
    let gateway = gateway_node(
        &full,
        &dir.nodes(&full),
        options.cluster.gateway_org.as_deref(),
    )?;
    crate::k8s::check_existing(&dir, &full, &output)?;
    let full_text = full.to_yaml();
    dir.store_spec(&full_text, Path::new(SPEC_MOUNT))?;
    prepare::prepare(
        &dir,
        &full,
        Path::new(SPEC_MOUNT),
        &crate::k8s::chaincode_services(&full),
        progress,
    )?;
    let placeholders = KubernetesOptions {
        cluster: ClusterOptions {
            output: output.clone(),
            image: IMAGE.into(),
            storage_class: Some(STORAGE_CLASS.into()),
            storage: STORAGE_SIZE.into(),
            ..options.cluster.clone()
        },
        namespace: None,
        podman: false,
        per_organization: false,
    };
    let objects = Objects::new(&full, &dir, &placeholders)?;
    let nodes = dir.nodes(&full);
    let chart = output.join("chart");
    let templates = chart.join("templates");
    if templates.exists() {
        std::fs::remove_dir_all(&templates).map_err(|e| NetworkError::io(&templates, e))?;
    }
    let condition = |node: &Node| peer_condition(&keys, node);

    // Material: one ConfigMap/Secret per directory; a peer's own only
    // while it runs; the spec and node configs templated.
    let owner = |relative: &str| -> Option<&Node> {
        nodes.iter().find(|node| {
            let own = node
                .material_dir(&dir.organizations())
                .strip_prefix(dir.root())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            relative == format!("nodes/{}", node.name)
                || relative == own
                || relative.starts_with(&format!("{own}/"))
        })
    };
    let mut material = String::new();
    for bundle in objects.bundles.values() {
        let text = if bundle.dir.is_empty() {
            let template = spec_template(&dir, &full, &keys)?;
            templated_config_map(&objects, &bundle.name, "network.yaml", &template)?
        } else if let Some(node) = bundle
            .dir
            .strip_prefix("nodes/")
            .and_then(|name| nodes.iter().find(|n| n.name == name))
        {
            let config = std::fs::read_to_string(dir.node_config(&node.name))
                .map_err(|e| NetworkError::io(&dir.node_config(&node.name), e))?;
            let template = config_template(&config, &nodes, &keys);
            templated_config_map(&objects, &bundle.name, "config.yaml", &template)?
        } else {
            document(&yaml(&objects.bundle_doc(bundle, &bundle.name, false))?)
        };
        material.push_str(&guarded(owner(&bundle.dir).and_then(&condition), &text));
    }
    write_template(&templates.join("material.yaml"), &material)?;
    let mut base = document(&yaml(&objects.service_account())?);
    for mut doc in objects.launcher_rbac() {
        if doc["kind"] == "RoleBinding" {
            doc["subjects"][0]["namespace"] = json!(NAMESPACE);
        }
        base.push_str(&document(&yaml(&doc)?));
    }
    write_template(&templates.join("base.yaml"), &base)?;

    let mut resources = BTreeMap::new();
    for node in &nodes {
        let mut claim = objects.claim(node);
        claim["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        let mut deployment = objects.deployment(node)?;
        deployment["spec"]["template"]["metadata"]["annotations"] =
            json!({"checksum/material": CHECKSUM});
        let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
        resources
            .entry(node.kind())
            .or_insert_with(|| container["resources"].clone());
        container["resources"] = json!(format!("{RESOURCES}{}", node.kind()));
        let mut text = String::new();
        for doc in [claim, objects.service(node), deployment] {
            text.push_str(&document(&yaml(&doc)?));
        }
        write_template(
            &templates.join(format!("{}.yaml", crate::nodes::service_name(&node.name))),
            &guarded(condition(node), &text),
        )?;
    }

    let gateway_service = format!("{}-gateway", objects.instance);
    let mut exposed = document(&yaml(&objects.gateway_service(&gateway, &gateway_service))?);
    for node in &nodes {
        if matches!(node.role, Role::Peer { index: 0, .. }) && node.name != gateway.name {
            let name = format!("{}-gateway-{}", objects.instance, label(&node.msp_id));
            exposed.push_str(&guarded(
                Some(".Values.gateway.perOrganization".into()),
                &document(&yaml(&objects.gateway_service(node, &name))?),
            ));
        }
    }
    write_template(&templates.join("gateway.yaml"), &exposed)?;

    let init = format!("{}-init", objects.instance);
    let mut job = objects.init_job(&init)?;
    job["metadata"]["annotations"] = json!({
        "helm.sh/hook": "post-install,post-upgrade",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    });
    let container = &mut job["spec"]["template"]["spec"]["containers"][0];
    resources.insert("init", container["resources"].clone());
    container["resources"] = json!(format!("{RESOURCES}init"));
    write_template(&templates.join("init-job.yaml"), &document(&yaml(&job)?))?;

    write_atomic(
        &templates.join("NOTES.txt"),
        format!(
            "The weft network {network:?} is in namespace {{{{ .Release.Namespace }}}}; the init Job {init} (a post-install and post-upgrade hook) has joined its channels and deployed its chaincodes.\n\
             Peers per organisation:{{{{ range $org, $values := .Values.organizations }}}} {{{{ $org }}}}={{{{ $values.peers }}}}{{{{ end }}}}\n\
             The gateway peer {gateway} is exposed by Service {gateway_service} ({{{{ .Values.gateway.type }}}}):\n\
             \x20 kubectl -n {{{{ .Release.Namespace }}}} get service {gateway_service}\n\
             Applications connect there with TLS server name {gateway} and the material of the chart's network directory.\n",
            network = full.name,
            gateway = gateway.name,
        )
        .as_bytes(),
    )?;
    let capacity = full.organizations.first().map_or(1, |o| o.peers);
    write_atomic(
        &chart.join("Chart.yaml"),
        format!(
            "apiVersion: v2\n\
             name: {name}\n\
             description: The weft network {network:?} (written by weft deploy helm; regenerate rather than edit)\n\
             type: application\n\
             version: {version}\n\
             appVersion: {version:?}\n",
            name = objects.instance,
            network = full.name,
            version = env!("CARGO_PKG_VERSION"),
        )
        .as_bytes(),
    )?;
    write_atomic(
        &chart.join("values.yaml"),
        values_yaml(&spec, &keys, capacity, options, &resources)?.as_bytes(),
    )?;
    let schema = serde_json::to_string_pretty(&values_schema(&keys, capacity))
        .map_err(|e| NetworkError::Material(e.to_string()))?;
    write_atomic(&chart.join("values.schema.json"), schema.as_bytes())?;
    progress(&format!(
        "chart {}: {} node(s) at most ({} peer(s) per organisation), gateway {} (Service {gateway_service})",
        chart.display(),
        nodes.len(),
        capacity,
        gateway.name
    ));
    Ok(HelmChart {
        chart,
        network_dir: dir,
        gateway,
        gateway_service,
    })
}

/// The spec with every organisation at `capacity` peers, validated again.
fn at_capacity(
    spec: &NetworkSpec,
    origin: &str,
    capacity: Option<u32>,
) -> Result<NetworkSpec, NetworkError> {
    let mut full = spec.clone();
    if let Some(capacity) = capacity {
        for (k, org) in full.organizations.iter_mut().enumerate() {
            if capacity < org.peers {
                return Err(NetworkError::Refused(format!(
                    "--peer-capacity {capacity}: {} has {} peers in {origin}",
                    org.name, org.peers
                )));
            }
            let short = |list: &Option<Vec<u16>>| {
                list.as_ref().is_some_and(|l| l.len() < capacity as usize)
            };
            if short(&org.ports) || short(&org.operations_ports) {
                return Err(NetworkError::Refused(format!(
                    "--peer-capacity {capacity}: organizations[{k}] ({}) lists ports for fewer peers; list {capacity}, or leave the ports to weft",
                    org.name
                )));
            }
            org.peers = capacity;
        }
    }
    Ok(NetworkSpec::from_yaml(&full.to_yaml(), origin)?)
}

/// Each organisation's key in the values: its name as a label.
fn organization_keys(spec: &NetworkSpec) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for org in &spec.organizations {
        let mut key = label(&org.name);
        if keys.contains(&key) {
            key = format!("{key}-{}", keys.len());
        }
        keys.push(key);
    }
    keys
}

/// The Go template condition under which peer `node` runs (None: always).
fn peer_condition(keys: &[String], node: &Node) -> Option<String> {
    match node.role {
        Role::Peer { org, index } if index > 0 => Some(format!(
            "lt {index} (int (index .Values.organizations {:?} \"peers\"))",
            keys[org]
        )),
        _ => None,
    }
}

fn guarded(condition: Option<String>, text: &str) -> String {
    match condition {
        None => text.to_owned(),
        Some(condition) => format!("{{{{- if {condition} }}}}\n{text}{{{{- end }}}}\n"),
    }
}

fn document(text: &str) -> String {
    format!("---\n{text}")
}

fn yaml(doc: &Value) -> Result<String, NetworkError> {
    serde_saphyr::to_string(doc).map_err(|e| NetworkError::Material(e.to_string()))
}

/// A ConfigMap whose one file is a template (a block scalar).
fn templated_config_map(
    objects: &Objects<'_>,
    name: &str,
    file: &str,
    template: &str,
) -> Result<String, NetworkError> {
    let head = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": objects.metadata(name, "material", None),
    });
    let mut text = document(&yaml(&head)?);
    text.push_str(&format!("data:\n  {file}: |\n"));
    for line in template.lines() {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// The stored spec with each organisation's `peers:` from the values.
fn spec_template(
    dir: &NetworkDir,
    full: &NetworkSpec,
    keys: &[String],
) -> Result<String, NetworkError> {
    let stored = std::fs::read_to_string(dir.spec_file())
        .map_err(|e| NetworkError::io(&dir.spec_file(), e))?;
    let header = stored.lines().next().unwrap_or_default();
    let mut sentinel = full.clone();
    for (k, org) in sentinel.organizations.iter_mut().enumerate() {
        org.peers = PEERS_SENTINEL + k as u32;
    }
    let mut text = format!("{header}\n{}", sentinel.to_yaml());
    for (k, key) in keys.iter().enumerate() {
        let literal = format!("peers: {}", PEERS_SENTINEL + k as u32);
        if text.matches(&literal).count() != 1 {
            return Err(NetworkError::Material(format!(
                "the spec's template: organizations[{k}].peers not found once"
            )));
        }
        text = text.replace(
            &literal,
            &format!("peers: {{{{ index .Values.organizations {key:?} \"peers\" }}}}"),
        );
    }
    Ok(text)
}

/// A node's config with each gateway peer listed while it runs (the
/// entries of `gateway_peers`, the only list of `msp_id` items).
fn config_template(config: &str, nodes: &[Node], keys: &[String]) -> String {
    let lines: Vec<&str> = config.lines().collect();
    let mut out = Vec::new();
    let mut conditions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with("  - msp_id: ") && i + 2 < lines.len() {
            let address = lines[i + 1].trim_start().trim_start_matches("address: ");
            let host = address
                .trim_matches('"')
                .split(':')
                .next()
                .unwrap_or_default();
            let condition = nodes
                .iter()
                .find(|n| n.host == host)
                .and_then(|n| peer_condition(keys, n));
            let entry: Vec<String> = lines[i..i + 3].iter().map(|l| (*l).to_owned()).collect();
            match &condition {
                Some(condition) => {
                    out.push(format!("{{{{- if {condition} }}}}"));
                    out.extend(entry);
                    out.push("{{- end }}".to_owned());
                }
                None => out.extend(entry),
            }
            conditions.push(condition);
            i += 3;
            continue;
        }
        out.push(lines[i].to_owned());
        i += 1;
    }
    // Every gateway peer conditional: an empty list when none runs.
    if !conditions.is_empty() && conditions.iter().all(Option::is_some) {
        let any: Vec<String> = conditions
            .iter()
            .flatten()
            .map(|c| format!("({c})"))
            .collect();
        let all = if any.len() == 1 {
            any[0].clone()
        } else {
            format!("or {}", any.join(" "))
        };
        if let Some(index) = out.iter().position(|l| l.starts_with("gateway_peers:")) {
            out[index] = format!("gateway_peers:{{{{ if not {all} }}}} []{{{{ end }}}}");
        }
    }
    out.join("\n") + "\n"
}

/// Writes a template with the placeholders replaced by value references.
fn write_template(path: &Path, text: &str) -> Result<(), NetworkError> {
    let mut out = String::new();
    for line in text.lines() {
        let indent = " ".repeat(line.len() - line.trim_start().len());
        let line = line.replace(&format!("\"{IMAGE}\""), IMAGE).replace(
            IMAGE,
            "\"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"",
        );
        let line = if line.trim_start() == "imagePullPolicy: IfNotPresent" {
            format!("{indent}imagePullPolicy: {{{{ .Values.image.pullPolicy }}}}")
        } else {
            line
        };
        if line.contains(STORAGE_CLASS) {
            out.push_str(&format!(
                "{indent}{{{{- with .Values.storage.className }}}}\n{indent}storageClassName: {{{{ . | quote }}}}\n{indent}{{{{- end }}}}\n"
            ));
            continue;
        }
        if let Some(at) = line.find(RESOURCES) {
            let kind: String = line[at + RESOURCES.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            out.push_str(&format!(
                "{indent}resources: {{{{- toYaml .Values.resources.{kind} | nindent {} }}}}\n",
                indent.len() + 2
            ));
            continue;
        }
        let line = line
            .replace(&format!("\"{STORAGE_SIZE}\""), STORAGE_SIZE)
            .replace(STORAGE_SIZE, "{{ .Values.storage.size | quote }}")
            .replace(&format!("\"{GATEWAY_TYPE}\""), GATEWAY_TYPE)
            .replace(GATEWAY_TYPE, "{{ .Values.gateway.type }}")
            .replace(&format!("\"{NAMESPACE}\""), NAMESPACE)
            .replace(NAMESPACE, "{{ .Release.Namespace }}")
            .replace(&format!("\"{CHECKSUM}\""), CHECKSUM)
            .replace(
                CHECKSUM,
                "{{ include (print $.Template.BasePath \"/material.yaml\") . | sha256sum }}",
            );
        out.push_str(&line);
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

fn values_yaml(
    spec: &NetworkSpec,
    keys: &[String],
    capacity: u32,
    options: &HelmOptions,
    resources: &BTreeMap<&str, Value>,
) -> Result<String, NetworkError> {
    let (repository, tag) = options
        .cluster
        .image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .unwrap_or((options.cluster.image.as_str(), "latest"));
    let block = |value: &Value, indent: usize| -> Result<String, NetworkError> {
        Ok(yaml(value)?
            .lines()
            .map(|l| format!("{}{l}\n", " ".repeat(indent)))
            .collect())
    };
    let mut text = format!(
        "# Values of the weft network {name:?} (written by weft deploy helm).\n\
         image:\n  repository: {repository:?}\n  tag: {tag:?}\n  pullPolicy: IfNotPresent\n\
         storage:\n  # The ledgers' StorageClass; empty: the cluster's default.\n  className: {class:?}\n  size: {size:?}\n\
         # The Service exposing the gateway peer outside the cluster (NodePort or\n\
         # LoadBalancer); perOrganization adds one for each other organisation's peer0.\n\
         gateway:\n  type: {gateway}\n  perOrganization: false\n\
         resources:\n",
        name = spec.name,
        class = options.cluster.storage_class.clone().unwrap_or_default(),
        size = options.cluster.storage,
        gateway = match options.cluster.exposure {
            Exposure::NodePort => "NodePort",
            Exposure::LoadBalancer => "LoadBalancer",
        },
    );
    for (kind, value) in resources {
        text.push_str(&format!("  {kind}:\n"));
        text.push_str(&block(value, 4)?);
    }
    text.push_str(&format!(
        "# Peers per organisation: 1 to {capacity} (the identities this chart holds;\n\
         # `weft deploy helm --peer-capacity N` writes a chart for more).\n\
         organizations:\n"
    ));
    for (org, key) in spec.organizations.iter().zip(keys) {
        text.push_str(&format!(
            "  {key}:  # {} ({})\n    peers: {}\n",
            org.name, org.msp_id, org.peers
        ));
    }
    Ok(text)
}

fn values_schema(keys: &[String], capacity: u32) -> Value {
    let organizations: serde_json::Map<String, Value> = keys
        .iter()
        .map(|key| {
            (
                key.clone(),
                json!({
                    "type": "object",
                    "required": ["peers"],
                    "properties": {"peers": {"type": "integer", "minimum": 1, "maximum": capacity}},
                    "additionalProperties": false,
                }),
            )
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["image", "storage", "gateway", "resources", "organizations"],
        "properties": {
            "image": {
                "type": "object",
                "required": ["repository", "tag"],
                "properties": {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": {"type": "string", "minLength": 1},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
            },
            "storage": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "className": {"type": "string"},
                    "size": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"},
                },
            },
            "gateway": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["NodePort", "LoadBalancer"]},
                    "perOrganization": {"type": "boolean"},
                },
            },
            "resources": {"type": "object"},
            "organizations": {
                "type": "object",
                "required": keys,
                "properties": organizations,
                "additionalProperties": false,
            },
        },
    })
}
