//! The nodes a spec describes, and the config file of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_material::layout;
use weft_spec::{ChaincodeSpec, LauncherSpec, NetworkSpec};

use crate::dir::NetworkDir;

const LOOPBACK: &str = "127.0.0.1";

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Raft node `index` of the orderer organisation.
    Orderer { index: u32 },
    /// Peer `index` of organisation number `org`.
    Peer { org: usize, index: u32 },
}

/// One node of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `orderer.example.com`, `peer0.org1.example.com`.
    pub name: String,
    pub role: Role,
    pub msp_id: String,
    pub domain: String,
    pub port: u16,
    /// Where its operations service (`/metrics`, `/healthz`) listens, if it has one.
    pub operations_port: Option<u16>,
    /// The operations service speaks HTTPS (spec `operations: {tls: true}`).
    pub operations_tls: bool,
    /// The host others dial it at: `127.0.0.1`, or its own name inside a
    /// container deployment.
    pub host: String,
    /// The interface it listens on: `127.0.0.1`, or every one (`0.0.0.0`)
    /// in a container.
    pub listen_host: String,
}

/// Where a network's nodes run, which decides the addresses they are
/// reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// From this machine: each node at `127.0.0.1:<port>` (`weft up`; a
    /// compose project seen from its host, through its published ports),
    /// or at its host's address where the spec places nodes on `hosts`.
    #[default]
    Local,
    /// In containers: each node listening on every interface and dialled
    /// at its own name (the service name, resolved by the container
    /// network's DNS and in its TLS certificate) — or, where the spec
    /// places nodes on `hosts`, at its host's address.
    Containers,
    /// In a Kubernetes cluster: each node listening on every interface and
    /// dialled at its Service's name ([`service_name`]: DNS labels hold no
    /// dots), which its TLS certificate carries.
    Kubernetes,
    /// In a Kubernetes cluster, each organisation in a namespace of its own
    /// ([`organization_namespace`]): nodes dialled at `<service>.<namespace>`.
    KubernetesPerOrganization,
}

/// The namespace of organisation `name` in a cluster with a namespace per
/// organisation: its name as a DNS label (`Org1` → `org1`).
pub fn organization_namespace(name: &str) -> String {
    service_name(name)
}

/// The Kubernetes Service (and DNS label) of node `name`:
/// `peer0.org1.example.com` → `peer0-org1-example-com` (lower case, `-`
/// for anything else, at most 63 characters ending in a letter or digit).
pub fn service_name(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.ends_with('-') && !label.is_empty() {
            label.push('-');
        }
    }
    label.truncate(63);
    while label.ends_with('-') {
        label.pop();
    }
    if label.starts_with(|c: char| c.is_ascii_digit()) || label.is_empty() {
        label.insert_str(0, "n-");
        label.truncate(63);
    }
    label
}

impl Node {
    /// Where others dial it (every service of the node).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The address it binds.
    pub fn listen_address(&self) -> String {
        format!("{}:{}", self.listen_host, self.port)
    }

    /// The operations service's address, if the node has one.
    pub fn operations_address(&self) -> Option<String> {
        self.operations_port
            .map(|port| format!("{}:{port}", self.host))
    }

    /// The address its operations service binds, if it has one.
    pub fn operations_listen_address(&self) -> Option<String> {
        self.operations_port
            .map(|port| format!("{}:{port}", self.listen_host))
    }

    /// `http(s)://<operations address>`, if the node has one.
    pub fn operations_url(&self) -> Option<String> {
        let scheme = if self.operations_tls { "https" } else { "http" };
        self.operations_address()
            .map(|address| format!("{scheme}://{address}"))
    }

    /// `orderer` or `peer`: the `weft` sub-command that runs it.
    pub fn kind(&self) -> &'static str {
        match self.role {
            Role::Orderer { .. } => "orderer",
            Role::Peer { .. } => "peer",
        }
    }

    /// The node's crypto material directory.
    pub fn material_dir(&self, organizations: &Path) -> PathBuf {
        match self.role {
            Role::Orderer { index } => layout::orderer_dir(organizations, &self.domain, index),
            Role::Peer { index, .. } => layout::peer_dir(organizations, &self.domain, index),
        }
    }

    /// The organisation directory (`…/peerOrganizations/org1.example.com`).
    pub fn org_dir(&self, organizations: &Path) -> PathBuf {
        match self.role {
            Role::Orderer { .. } => layout::orderer_org_dir(organizations, &self.domain),
            Role::Peer { .. } => layout::peer_org_dir(organizations, &self.domain),
        }
    }
}

/// Every node on this machine: the Raft nodes first (the order they start
/// in), then the peers.
pub fn nodes(spec: &NetworkSpec) -> Vec<Node> {
    nodes_at(spec, Reach::Local)
}

/// Every node as reached from `reach`, in [`nodes`]' order.
pub fn nodes_at(spec: &NetworkSpec, reach: Reach) -> Vec<Node> {
    let mut nodes = unplaced(spec);
    for node in &mut nodes {
        let placed = match node.role {
            Role::Orderer { index } => spec.orderer_host(index),
            Role::Peer { org, index } => spec.peer_host(org, index),
        };
        match (reach, placed) {
            // The cluster's DNS names its Services (`hosts:` is refused there).
            (Reach::Kubernetes, _) => node.host = service_name(&node.name),
            (Reach::KubernetesPerOrganization, _) => {
                let organization = match node.role {
                    Role::Orderer { .. } => &spec.orderers.organization.name,
                    Role::Peer { org, .. } => &spec.organizations[org].name,
                };
                node.host = format!(
                    "{}.{}",
                    service_name(&node.name),
                    organization_namespace(organization)
                );
            }
            // On a host of the spec: dialled at the host's address, from
            // anywhere (its ports are published there).
            (_, Some(host)) => node.host = host.address.clone(),
            (Reach::Containers, None) => node.host = node.name.clone(),
            (Reach::Local, None) => {}
        }
        if reach != Reach::Local {
            node.listen_host = "0.0.0.0".into();
        }
    }
    nodes
}

fn unplaced(spec: &NetworkSpec) -> Vec<Node> {
    let orderer = &spec.orderers.organization;
    let mut nodes: Vec<Node> = (0..spec.orderers.nodes)
        .map(|index| Node {
            name: format!("{}.{}", layout::orderer_host(index), orderer.domain),
            role: Role::Orderer { index },
            msp_id: orderer.msp_id.clone(),
            domain: orderer.domain.clone(),
            port: spec.orderer_port(index),
            operations_port: spec.orderer_operations_port(index),
            operations_tls: spec.operations.tls,
            host: LOOPBACK.into(),
            listen_host: LOOPBACK.into(),
        })
        .collect();
    for (org_index, org) in spec.organizations.iter().enumerate() {
        for index in 0..org.peers {
            nodes.push(Node {
                name: format!("peer{index}.{}", org.domain),
                role: Role::Peer {
                    org: org_index,
                    index,
                },
                msp_id: org.msp_id.clone(),
                domain: org.domain.clone(),
                port: spec.peer_port(org_index, index),
                operations_port: spec.peer_operations_port(org_index, index),
                operations_tls: spec.operations.tls,
                host: LOOPBACK.into(),
                listen_host: LOOPBACK.into(),
            });
        }
    }
    nodes
}

/// A YAML scalar for any string (JSON strings are YAML).
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// `path` relative to the node's directory (`nodes/<node>/`), so the whole
/// network directory can be moved.
fn from_node(path: &Path, dir: &NetworkDir) -> String {
    let relative = path
        .strip_prefix(dir.root())
        .map_or_else(|_| path.to_path_buf(), |rest| Path::new("../..").join(rest));
    quote(&relative.display().to_string())
}

/// Every organisation's TLS CA certificate (peers and orderers trust them all).
pub fn tls_roots(spec: &NetworkSpec, dir: &NetworkDir) -> Vec<PathBuf> {
    let organizations = dir.organizations();
    let mut roots: Vec<PathBuf> = spec
        .organizations
        .iter()
        .map(|o| layout::tls_ca_cert(&layout::peer_org_dir(&organizations, &o.domain), &o.domain))
        .collect();
    let orderer = &spec.orderers.organization.domain;
    roots.push(layout::tls_ca_cert(
        &layout::orderer_org_dir(&organizations, orderer),
        orderer,
    ));
    roots
}

/// The config file of `node` (`weft orderer start` / `weft peer start`).
/// Relative paths in chaincode settings are resolved against `base`.
/// `services` holds the address of each `docker` chaincode's container.
pub fn config_text(
    spec: &NetworkSpec,
    node: &Node,
    dir: &NetworkDir,
    base: &Path,
    services: &BTreeMap<String, String>,
) -> String {
    let material = node.material_dir(&dir.organizations());
    let roots: Vec<String> = tls_roots(spec, dir)
        .iter()
        .map(|p| from_node(p, dir))
        .collect();
    let mut text = format!(
        "# Written by weft up from {spec}; regenerated on every run.\n\
         listen_address: {address}\n\
         data_dir: {data}\n\
         msp_dir: {msp}\n\
         msp_id: {msp_id}\n\
         tls:\n  cert: {cert}\n  key: {key}\n  root_cas: [{roots}]\n",
        spec = dir.spec_file().display(),
        address = quote(&node.listen_address()),
        data = match dir.reach() {
            Reach::Local => "data",
            Reach::Containers | Reach::Kubernetes | Reach::KubernetesPerOrganization => {
                crate::compose::DATA_MOUNT
            }
        },
        msp = from_node(&material.join("msp"), dir),
        msp_id = quote(&node.msp_id),
        cert = from_node(&material.join("tls/server.crt"), dir),
        key = from_node(&material.join("tls/server.key"), dir),
        roots = roots.join(", "),
    );
    if node.host != node.listen_host && matches!(node.role, Role::Peer { .. }) {
        text.push_str(&format!("external_address: {}\n", quote(&node.address())));
    }
    if let Some(address) = node.operations_listen_address() {
        text.push_str(&format!(
            "operations:\n  listen_address: {}\n",
            quote(&address)
        ));
        if spec.operations.tls {
            text.push_str(&format!(
                "  tls:\n    cert: {cert}\n    key: {key}\n    client_root_cas: [{roots}]\n",
                cert = from_node(&material.join("tls/server.crt"), dir),
                key = from_node(&material.join("tls/server.key"), dir),
                roots = roots.join(", "),
            ));
        }
    }
    if let Role::Peer { .. } = node.role {
        let others: Vec<Node> = dir
            .nodes(spec)
            .into_iter()
            .filter(|n| matches!(n.role, Role::Peer { .. }) && n.name != node.name)
            .collect();
        text.push_str("gateway_peers:");
        if others.is_empty() {
            text.push_str(" []");
        }
        text.push('\n');
        for other in others {
            let identity = other
                .material_dir(&dir.organizations())
                .join("msp")
                .join(layout::SIGNCERT_FILE);
            text.push_str(&format!(
                "  - msp_id: {}\n    address: {}\n    identity: {}\n",
                quote(&other.msp_id),
                quote(&other.address()),
                from_node(&identity, dir)
            ));
        }
        // Installed: the chaincodes of the channels this peer's org is in,
        // so deploying on one org's channel restarts no other org's peers.
        let installed: Vec<&ChaincodeSpec> = spec
            .chaincodes
            .iter()
            .filter(|chaincode| {
                spec.chaincode_channels(chaincode).iter().any(|channel| {
                    spec.channel_organizations(channel)
                        .iter()
                        .any(|org| org.msp_id == node.msp_id)
                })
            })
            .collect();
        text.push_str("chaincodes:");
        if installed.is_empty() {
            text.push_str(" []");
        }
        text.push('\n');
        for chaincode in installed {
            text.push_str(&chaincode_text(chaincode, base, services));
        }
    }
    text
}

fn chaincode_text(
    chaincode: &ChaincodeSpec,
    base: &Path,
    services: &BTreeMap<String, String>,
) -> String {
    let absolute = |path: &str| quote(&base.join(path).display().to_string());
    let mut text = format!("  - name: {}\n", quote(&chaincode.name));
    if !chaincode.indexes.is_empty() {
        let indexes: Vec<String> = chaincode.indexes.iter().map(|p| absolute(p)).collect();
        text.push_str(&format!("    indexes: [{}]\n", indexes.join(", ")));
    }
    match &chaincode.launcher {
        LauncherSpec::Builtin(name) => {
            text.push_str(&format!("    launcher:\n      builtin: {}\n", quote(name)));
        }
        LauncherSpec::Process { command, dir, env } => {
            let command: Vec<String> = command.iter().map(|c| quote(c)).collect();
            text.push_str(&format!(
                "    launcher:\n      process:\n        command: [{}]\n",
                command.join(", ")
            ));
            if let Some(dir) = dir {
                text.push_str(&format!("        dir: {}\n", absolute(dir)));
            }
            text.push_str("        env: {");
            let env: Vec<String> = env
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
                .collect();
            text.push_str(&env.join(", "));
            text.push_str("}\n");
        }
        // The peers dial the container `weft up` started (or the
        // Kubernetes Service), as a service.
        LauncherSpec::Docker { .. } | LauncherSpec::Kubernetes { .. } => {
            let address = services.get(&chaincode.name).map_or("", String::as_str);
            text.push_str(&format!(
                "    launcher:\n      external:\n        address: {}\n",
                quote(address)
            ));
        }
        LauncherSpec::External {
            address,
            tls_root_ca,
        } => {
            text.push_str(&format!(
                "    launcher:\n      external:\n        address: {}\n",
                quote(address)
            ));
            if let Some(ca) = tls_root_ca {
                text.push_str(&format!("        tls_root_ca: {}\n", absolute(ca)));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_is_a_dns_label() {
        assert_eq!(
            service_name("peer0.org1.example.com"),
            "peer0-org1-example-com"
        );
        assert_eq!(service_name("Orderer..Example_COM."), "orderer-example-com");
        assert_eq!(service_name("1st.org"), "n-1st-org");
        let long = service_name(&format!("peer0.{}.com", "a".repeat(80)));
        assert_eq!(long.len(), 63);
        assert!(!long.ends_with('-'));
    }

    #[test]
    fn in_kubernetes_every_node_is_dialled_at_its_service_and_listens_everywhere() {
        let spec = NetworkSpec::default_network();
        for node in nodes_at(&spec, Reach::Kubernetes) {
            assert_eq!(node.host, service_name(&node.name));
            assert_eq!(node.listen_host, "0.0.0.0");
        }
    }
}
