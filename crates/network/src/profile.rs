//! Fabric's common connection profile for each organisation, in JSON and
//! YAML, at the paths Fabric's test-network writes them
//! (`peerOrganizations/org1.example.com/connection-org1.{json,yaml}`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_material::layout;
use weft_spec::{NetworkSpec, OrganizationSpec};

use crate::NetworkError;

/// (`connection-<org>.json`, `connection-<org>.yaml`).
pub fn paths(organizations: &Path, org: &OrganizationSpec) -> (PathBuf, PathBuf) {
    let dir = layout::peer_org_dir(organizations, &org.domain);
    let stem = format!("connection-{}", org.name.to_ascii_lowercase());
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.yaml")),
    )
}

/// The profile of organisation number `index` as (JSON, YAML) text.
pub fn connection_profile(
    spec: &NetworkSpec,
    index: usize,
    organizations: &Path,
) -> Result<(String, String), NetworkError> {
    let org = &spec.organizations[index];
    let org_dir = layout::peer_org_dir(organizations, &org.domain);
    let ca_path = layout::tls_ca_cert(&org_dir, &org.domain);
    let pem = std::fs::read_to_string(&ca_path).map_err(|e| NetworkError::io(&ca_path, e))?;
    let names: Vec<String> = (0..org.peers)
        .map(|peer| format!("peer{peer}.{}", org.domain))
        .collect();
    let peers: serde_json::Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(peer, name)| {
            (
                name.clone(),
                json!({
                    "url": format!(
                        "grpcs://{}:{}",
                        // A peer placed on a host of the spec is reached there.
                        spec.peer_host(index, peer as u32)
                            .map_or("localhost", |host| host.address.as_str()),
                        spec.peer_port(index, peer as u32)
                    ),
                    "tlsCACerts": { "pem": pem },
                    "grpcOptions": {
                        "ssl-target-name-override": name,
                        "hostnameOverride": name,
                    },
                }),
            )
        })
        .collect();
    let profile = json!({
        "name": format!("{}-{}", spec.name, org.name.to_ascii_lowercase()),
        "version": "1.0.0",
        "client": {
            "organization": org.name,
            "connection": { "timeout": { "peer": { "endorser": "300" } } },
        },
        "organizations": {
            org.name.clone(): {
                "mspid": org.msp_id,
                "peers": names,
            },
        },
        "peers": peers,
    });
    let json = serde_json::to_string_pretty(&profile)
        .map_err(|e| NetworkError::Material(e.to_string()))?;
    let mut yaml = String::from("---\n");
    emit_yaml(&profile, 0, &mut yaml);
    Ok((json + "\n", yaml))
}

/// Block-style YAML for a JSON value: maps and lists indented by two,
/// multi-line strings as literal blocks, other strings JSON-quoted.
fn emit_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.push_str(&format!("{pad}{}:", scalar_key(key)));
                nested(item, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                nested(item, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn nested(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_yaml(item, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            emit_yaml(item, indent + 2, out);
        }
        Value::String(text) if text.contains('\n') => {
            out.push_str(" |\n");
            for line in text.trim_end_matches('\n').lines() {
                out.push_str(&format!("{}{line}\n", " ".repeat(indent + 2)));
            }
        }
        other => out.push_str(&format!(" {}\n", scalar(other))),
    }
}

fn scalar_key(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}
