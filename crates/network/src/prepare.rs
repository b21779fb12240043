//! Everything `weft up` writes before a node starts: crypto material, genesis
//! blocks, node configs and connection profiles. Each step keeps what a
//! previous run wrote, so an interrupted run is completed by the next.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use weft_channel::BatchSettings;
use weft_material::channel::{ConsenterNode, channel_profile};
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_protos::Message;
use weft_spec::{LauncherSpec, NetworkSpec};

use crate::dir::{NetworkDir, write_atomic};
use crate::nodes::{Node, Role, config_text};
use crate::{NetworkError, profile};

/// Writes what is missing; `progress` gets one line per step. Returns the
/// nodes whose existing config file changed (a running one must restart to
/// see the change). `services` holds the address of every `docker`
/// chaincode's running container.
pub fn prepare(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    base: &Path,
    services: &BTreeMap<String, String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Node>, NetworkError> {
    for chaincode in &spec.chaincodes {
        if matches!(
            chaincode.launcher,
            LauncherSpec::Docker { .. } | LauncherSpec::Kubernetes { .. }
        ) && !services.contains_key(&chaincode.name)
        {
            return Err(NetworkError::Refused(format!(
                "chaincode {}: its container is not running, so the peers have nowhere to dial",
                chaincode.name
            )));
        }
    }
    let organizations = dir.organizations();
    let config = CryptogenConfig {
        issuers: crate::cas::prepare(spec, &organizations, progress)?,
        node_hosts: dir
            .nodes(spec)
            .into_iter()
            .filter(|node| node.host != node.name)
            .map(|node| (node.name, node.host))
            .collect(),
        ..CryptogenConfig::default()
    };
    let report = cryptogen::generate(spec, &organizations, &config, &mut |_| {})
        .map_err(|e| NetworkError::Material(e.to_string()))?;
    // The CAs' stores are released before the CAs start.
    drop(config);
    progress(&format!(
        "crypto material: {} identities written, {} kept",
        report.identities_written, report.identities_kept
    ));
    for channel in &spec.channels {
        let path = dir.block(&channel.name);
        if path.is_file() {
            progress(&format!("channel {}: genesis block kept", channel.name));
            continue;
        }
        let orgs: Vec<(&str, &str)> = spec
            .channel_organizations(channel)
            .iter()
            .map(|o| (o.domain.as_str(), o.msp_id.as_str()))
            .collect();
        let consenters: Vec<ConsenterNode> = dir
            .nodes(spec)
            .into_iter()
            .filter_map(|node| match node.role {
                Role::Orderer { index } => Some(ConsenterNode {
                    host: node.host,
                    port: u32::from(node.port),
                    index,
                }),
                Role::Peer { .. } => None,
            })
            .collect();
        let size = &spec.orderers.batch_size;
        let batch = BatchSettings {
            max_message_count: size.max_message_count,
            absolute_max_bytes: size.absolute_max_bytes,
            preferred_max_bytes: size.preferred_max_bytes,
            timeout: spec.batch_timeout(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let orderer = &spec.orderers.organization;
        let profile = channel_profile(
            &organizations,
            &channel.name,
            &orgs,
            (&orderer.domain, &orderer.msp_id),
            &consenters,
            batch,
            now,
        )
        .map_err(|e| NetworkError::Material(e.to_string()))?;
        let block = weft_channel::genesis_block(&profile)
            .map_err(|e| NetworkError::Material(format!("channel {}: {e}", channel.name)))?;
        write_atomic(&path, &block.encode_to_vec())?;
        progress(&format!(
            "channel {}: genesis block written ({})",
            channel.name,
            orgs.iter().map(|o| o.1).collect::<Vec<_>>().join(", ")
        ));
    }
    let all = dir.nodes(spec);
    let mut changed = Vec::new();
    for node in &all {
        let path = dir.node_config(&node.name);
        let text = config_text(spec, node, dir, base, services);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == text => continue,
            Ok(_) => changed.push(node.clone()),
            Err(_) => {}
        }
        write_atomic(&path, text.as_bytes())?;
    }
    progress(&format!(
        "node configs: {} orderer(s), {} peer(s)",
        all.iter()
            .filter(|n| matches!(n.role, Role::Orderer { .. }))
            .count(),
        all.iter()
            .filter(|n| matches!(n.role, Role::Peer { .. }))
            .count()
    ));
    for (index, org) in spec.organizations.iter().enumerate() {
        let (json, yaml) = profile::connection_profile(spec, index, &organizations)?;
        let paths = profile::paths(&organizations, org);
        write_atomic(&paths.0, json.as_bytes())?;
        write_atomic(&paths.1, yaml.as_bytes())?;
    }
    progress("connection profiles written");
    // A cluster's network has no REST gateway of `weft up`'s.
    if let Some(port) = spec.rest_port()
        && dir.reach() != crate::nodes::Reach::Kubernetes
    {
        crate::rest::write_config(dir, spec)?;
        progress(&format!("REST gateway: 127.0.0.1:{port}"));
    }
    Ok(changed)
}
