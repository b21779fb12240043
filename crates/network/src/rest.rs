//! The REST gateway of a `weft up` network (`weft rest`, see
//! [`NetworkSpec::rest_port`]): its directory `rest/` with `rest.yaml` (every
//! organisation's `Admin` and users as identities, through the
//! organisation's first peer) and `keys.json` (API keys, `weft rest key
//! create --org Org1 --user User1`). The supervisor runs it beside the nodes.

use std::path::PathBuf;

use weft_material::layout;
use weft_spec::NetworkSpec;

use crate::NetworkError;
use crate::dir::{NetworkDir, write_atomic};
use crate::nodes::Role;

/// `rest/`.
pub fn dir(network: &NetworkDir) -> PathBuf {
    network.root().join("rest")
}

/// `rest/rest.yaml`.
pub fn config(network: &NetworkDir) -> PathBuf {
    dir(network).join("rest.yaml")
}

/// `rest/keys.json`.
pub fn keys(network: &NetworkDir) -> PathBuf {
    dir(network).join("keys.json")
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Writes `rest/rest.yaml` for the spec (when it has a REST gateway).
pub fn write_config(network: &NetworkDir, spec: &NetworkSpec) -> Result<(), NetworkError> {
    let Some(port) = spec.rest_port() else {
        return Ok(());
    };
    let organizations = network.organizations();
    let nodes = network.nodes(spec);
    let mut text = format!(
        "# Written by weft up from the network's spec (rewritten at each run).\n\
         listen: {}\n\
         keys: keys.json\n\
         identities:\n",
        quoted(&format!("127.0.0.1:{port}"))
    );
    for (index, org) in spec.organizations.iter().enumerate() {
        let Some(peer) = nodes
            .iter()
            .find(|n| matches!(n.role, Role::Peer { org, index: 0 } if org == index))
        else {
            continue;
        };
        let org_dir = layout::peer_org_dir(&organizations, &org.domain);
        let tls_ca = layout::tls_ca_cert(&org_dir, &org.domain);
        let users =
            std::iter::once("Admin".to_owned()).chain((1..=org.users).map(|n| format!("User{n}")));
        for user in users {
            let msp = layout::user_dir(&org_dir, &user, &org.domain).join("msp");
            text.push_str(&format!(
                "  {}:\n    mspId: {}\n    identity: {{msp: {}}}\n    gateway: {{endpoint: {}, tlsCaCert: {}}}\n",
                quoted(&format!("{}/{user}", org.name)),
                quoted(&org.msp_id),
                quoted(&msp.display().to_string()),
                quoted(&peer.address()),
                quoted(&tls_ca.display().to_string()),
            ));
        }
    }
    write_atomic(&config(network), text.as_bytes())
}
