//! The network spec: one YAML document that describes a weft network.
//!
//! Organisations (MSP ID, domain, peers, users, ports), the ordering service
//! (organisation, Raft nodes, ports, batch settings), channels (which
//! organisations) and chaincodes (version, launcher, endorsement policy,
//! indexes, channels). Errors name the file, the place in the document and
//! what was expected.
//!
//! Ports: unless given, peer `j` of organisation `k` listens on
//! `7051 + 2000·k + 100·j` (Fabric's test-network: peer0.org1 7051,
//! peer0.org2 9051, peer0.org3 11051) and Raft node `i` on `7050 + 1000·i`.
//! Each node's operations service (`/metrics`, `/healthz`) listens on
//! `operationsPorts[i]` when given; when neither `ports` nor
//! `operationsPorts` is given, on the listen port + 10000 (17051, 17050, …);
//! a node with explicit `ports` but no `operationsPorts` has none.
//!
//! Certificate authorities (`certificateAuthorities: true`): one CA per
//! organisation, as Fabric's test-network with `-ca` runs them —
//! `ca-<org name in lower case>` for peer organisations and `ca-orderer`,
//! listening on `caPort` of the organisation, by default 7054 for the first
//! peer organisation, 8054 for the second, 9054 for the orderers', and
//! `9054 + 1000·k` for peer organisation `k ≥ 2` (10054, 11054, …). A CA on
//! a default port has its operations service on that port + 10000 (17054,
//! as Fabric's test-network); one with an explicit `caPort` only where
//! `caOperationsPort` is given.
//!
//! Hosts: a spec may place its nodes on machines (`hosts:` with names and
//! addresses; `hosts: [...]` under each organisation and the orderers, a
//! host per node, like `ports`) for `weft deploy compose --per-host`.
//!
//! Invariant: parsing and validation only; no file system (the caller reads
//! the file and passes its name for messages).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The spec used when none is given.
pub const DEFAULT_SPEC_YAML: &str = include_str!("default-network.yaml");

/// Limits that keep a typo from generating thousands of identities.
pub const PEERS_PER_ORGANIZATION_MAX: u32 = 32;
pub const USERS_PER_ORGANIZATION_MAX: u32 = 1000;
pub const ORDERER_NODES_MAX: u32 = 9;

/// The top-level keys of a spec; besides them, only `x-…` extension blocks
/// (ignored, a place for YAML anchors) are allowed. [`NetworkSpec::from_yaml`]
/// refuses any other key, so typos are caught as everywhere else.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "organizations",
    "orderers",
    "channels",
    "chaincodes",
    "operations",
    "hosts",
    "eventSinks",
    "signatureAlgorithm",
    "certificateAuthorities",
    "rest",
];

/// A network spec that parsed and passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// A name for the network, used in generated files.
    pub name: String,
    /// Peer organisations.
    pub organizations: Vec<OrganizationSpec>,
    /// The ordering service.
    pub orderers: OrdererSpec,
    /// Channels; when omitted, one channel `mychannel` with every organisation.
    #[serde(default = "default_channels")]
    pub channels: Vec<ChannelSpec>,
    /// Chaincodes deployed on the channels.
    #[serde(default)]
    pub chaincodes: Vec<ChaincodeSpec>,
    /// Every node's operations service (Fabric's `operations:`).
    #[serde(default, skip_serializing_if = "OperationsSpec::is_default")]
    pub operations: OperationsSpec,
    /// The machines nodes are placed on (`weft deploy compose --per-host`);
    /// when given, every organisation and the orderers name a host per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    /// `weft events sink` processes that `weft up` runs beside the nodes,
    /// each writing a channel into PostgreSQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_sinks: Vec<EventSinkSpec>,
    /// The key type of every organisation's signing CA and identities
    /// (their `msp/`): `ecdsa` (P-256, Fabric 2's) or `ed25519` (Fabric 3's).
    /// TLS keys stay ECDSA P-256.
    #[serde(default, skip_serializing_if = "SignatureAlgorithm::is_default")]
    pub signature_algorithm: SignatureAlgorithm,
    /// Identities come from a certificate authority per organisation
    /// (`weft ca`), which `weft up` runs beside the nodes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub certificate_authorities: bool,
    /// The REST gateway `weft up` runs (`weft rest`); see [`NetworkSpec::rest_port`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestSpec>,
}

/// `rest:`: the REST gateway's port, or `enabled: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestSpec {
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

fn enabled() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A CA's operations port: the one given, else its default port + 10000
/// when its port is the default, else none.
fn ca_operations_port(port: Option<u16>, operations: Option<u16>, default: u32) -> Option<u16> {
    match (operations, port) {
        (Some(operations), _) => Some(operations),
        (None, Some(_)) => None,
        (None, None) => u16::try_from(default + 10_000).ok(),
    }
}

/// An organisation's certificate authority (`certificateAuthorities: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateAuthoritySpec {
    /// `ca-org1`, `ca-orderer`: the CA's name, which clients address it by.
    pub name: String,
    /// Its directory under `organizations/fabric-ca/` (`org1`, `ordererOrg`).
    pub directory: String,
    pub port: u16,
    /// Its operations service (`/healthz`, `/metrics`), if it has one.
    pub operations_port: Option<u16>,
    /// The organisation's domain and MSP ID.
    pub domain: String,
    pub msp_id: String,
    /// The organisation's name in lower case (`org1`): the affiliation its
    /// identities are registered under.
    pub affiliation: String,
}

/// The key type of MSP identities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256, as Fabric 2.
    #[default]
    Ecdsa,
    /// Ed25519, as Fabric 3 allows: signing and verifying cost less than
    /// P-256's (a verification about four fifths).
    Ed25519,
}

impl SignatureAlgorithm {
    pub fn is_default(&self) -> bool {
        *self == SignatureAlgorithm::Ecdsa
    }
}

/// A channel followed into PostgreSQL (`weft events sink`), supervised by
/// `weft up` like a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSinkSpec {
    /// What `weft status` and the logs call it (`reporting`).
    pub name: String,
    /// The database: `postgres://user:password@host:port/database`.
    pub postgres: String,
    /// TLS to the database, trusting this CA certificate (PEM, relative to
    /// the spec) for the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_ca: Option<String>,
    /// The channel; the spec's first by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The organisation whose peer and user follow the channel; the spec's
    /// first by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The user of that organisation (`User1` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only these chaincodes' transactions (all by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chaincodes: Vec<String>,
    /// Only chaincode events of these names (all by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// `writes` and `state` rows (true by default).
    #[serde(default = "yes")]
    pub writes: bool,
    /// `/metrics` and `/healthz` of the sink on 127.0.0.1 at this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_port: Option<u16>,
}

fn yes() -> bool {
    true
}

impl EventSinkSpec {
    /// The channel it follows in `spec`.
    pub fn channel_in<'a>(&'a self, spec: &'a NetworkSpec) -> &'a str {
        self.channel.as_deref().unwrap_or(&spec.channels[0].name)
    }

    /// The organisation it reads as in `spec`.
    pub fn organization_in<'a>(&self, spec: &'a NetworkSpec) -> Option<&'a OrganizationSpec> {
        match &self.organization {
            Some(name) => spec.organization(name),
            None => spec.organizations.first(),
        }
    }
}

/// A machine of a network spread over several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// What nodes call it (`host1`).
    pub name: String,
    /// Where the other hosts reach it: an IP address or a DNS name. Its
    /// nodes' ports are published there, and their TLS certificates name it.
    pub address: String,
}

/// `operations:` settings shared by every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationsSpec {
    /// HTTPS on every operations port (Fabric's `operations.tls.enabled`),
    /// with each node's TLS certificate; `/metrics` and `/logspec` then
    /// need a client certificate from one of the network's TLS CAs.
    #[serde(default)]
    pub tls: bool,
}

impl OperationsSpec {
    fn is_default(&self) -> bool {
        self == &OperationsSpec::default()
    }
}

/// A channel and its member organisations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelSpec {
    /// Fabric's channel name rules: lower case, digits, `.` and `-`.
    pub name: String,
    /// Organisations by name or MSP ID; every organisation when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<String>>,
}

/// A chaincode: its definition and how its code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChaincodeSpec {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Channels it is deployed on; every channel when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// A signature policy such as `AND('Org1MSP.peer','Org2MSP.peer')`; when
    /// omitted, a majority of the channel's organisations (Fabric's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
    /// CouchDB-style JSON index files, relative to the spec file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<String>,
    /// Private data collections: a file in Fabric's `collections_config.json`
    /// format, relative to the spec file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections_config: Option<String>,
    pub launcher: LauncherSpec,
}

/// How a chaincode's code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum LauncherSpec {
    /// A contract linked into the `weft` binary (`basic`).
    Builtin(String),
    /// A command each peer starts (classic mode); `{peer_address}` and
    /// `{chaincode_id}` in its arguments are filled in.
    #[serde(rename_all = "camelCase")]
    Process {
        command: Vec<String>,
        /// Working directory, relative to the spec file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// Chaincode-as-a-service listening at `address`; the peers dial it.
    #[serde(rename_all = "camelCase")]
    External {
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_root_ca: Option<String>,
    },
    /// Chaincode-as-a-service in a container, run by `weft up` on the
    /// local Docker engine; the peers dial it. It gets Fabric's
    /// `CHAINCODE_SERVER_ADDRESS` and `CHAINCODE_ID`. Either an `image`, or
    /// a source directory to `build` one from (relative to the spec file).
    #[serde(rename_all = "camelCase")]
    Docker {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        build: Option<String>,
        /// Arguments for the image's entrypoint (its own command otherwise);
        /// `{chaincode_address}` and `{chaincode_id}` are filled in.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command: Vec<String>,
    },
    /// Chaincode-as-a-service in a Kubernetes Deployment and Service of its
    /// own, created through the Kubernetes API by the network's init Job
    /// (`weft deploy k8s`, `weft deploy helm`); the peers dial it.
    #[serde(rename_all = "camelCase")]
    Kubernetes {
        image: String,
        /// Arguments for the image's entrypoint (its own command otherwise);
        /// `{chaincode_address}` and `{chaincode_id}` are filled in.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command: Vec<String>,
    },
}

/// A peer organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationSpec {
    /// Short name (`Org1`).
    pub name: String,
    /// MSP identifier (`Org1MSP`).
    pub msp_id: String,
    /// DNS domain; node names are `peer0.<domain>` and so on.
    pub domain: String,
    /// Number of peers: `peer0` … `peer{n-1}`.
    #[serde(default = "one")]
    pub peers: u32,
    /// Number of users besides `Admin`: `User1` … `User{n}`.
    #[serde(default = "one")]
    pub users: u32,
    /// Listen port of each peer, in order; see the module docs for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Operations service port of each peer; see the module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_ports: Option<Vec<u16>>,
    /// The host (of the spec's `hosts`) of each peer, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// The port of the organisation's CA (`certificateAuthorities: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_port: Option<u16>,
    /// The port of its CA's operations service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_operations_port: Option<u16>,
}

/// The ordering service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdererSpec {
    pub organization: OrdererOrganizationSpec,
    /// Number of Raft nodes: `orderer`, `orderer2`, `orderer3`, …
    #[serde(default = "three")]
    pub nodes: u32,
    /// Listen port of each node, in order; see the module docs for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Operations service port of each node; see the module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_ports: Option<Vec<u16>>,
    /// The host (of the spec's `hosts`) of each Raft node, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// How long the orderer waits for more transactions before cutting a
    /// block (a Go duration: `250ms`, `2s`).
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: String,
    #[serde(default)]
    pub batch_size: BatchSizeSpec,
}

/// Fabric's `BatchSize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BatchSizeSpec {
    pub max_message_count: u32,
    pub absolute_max_bytes: u32,
    pub preferred_max_bytes: u32,
}

impl Default for BatchSizeSpec {
    fn default() -> Self {
        BatchSizeSpec {
            max_message_count: 500,
            absolute_max_bytes: 10 * 1024 * 1024,
            preferred_max_bytes: 2 * 1024 * 1024,
        }
    }
}

/// The organisation that runs the ordering service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdererOrganizationSpec {
    pub name: String,
    pub msp_id: String,
    pub domain: String,
    /// The port of the organisation's CA (`certificateAuthorities: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_port: Option<u16>,
    /// The port of its CA's operations service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_operations_port: Option<u16>,
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
}

fn default_batch_timeout() -> String {
    "250ms".into()
}

fn default_version() -> String {
    "1.0".into()
}

/// The channel a spec without `channels` gets.
pub const DEFAULT_CHANNEL: &str = "mychannel";

fn default_channels() -> Vec<ChannelSpec> {
    vec![ChannelSpec {
        name: DEFAULT_CHANNEL.into(),
        organizations: None,
    }]
}

/// What is wrong with a spec, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}: {message}")]
pub struct SpecError {
    /// The file (or `<default spec>`).
    pub file: String,
    /// Where in the document: a path such as `organizations[1].mspId`, or a line and column.
    pub location: String,
    pub message: String,
}

impl NetworkSpec {
    /// The built-in default network.
    pub fn default_network() -> Self {
        Self::from_yaml(DEFAULT_SPEC_YAML, "<default spec>")
            .expect("the built-in default spec is valid")
    }

    /// The spec as YAML that [`NetworkSpec::from_yaml`] reads back equal.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a spec serializes: plain data, string keys")
    }

    /// Parses and validates a spec. `file` names the source in error messages.
    /// Top-level `x-…` keys are extension blocks, ignored (as in
    /// docker-compose files): a place for anchors (`x-org: &org`) that the
    /// organisations merge (`<<: *org`).
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, SpecError> {
        let fail = |location: &str, message: String| SpecError {
            file: file.to_owned(),
            location: location.to_owned(),
            message,
        };
        let keys: BTreeMap<String, serde::de::IgnoredAny> = serde_saphyr::from_str(text)
            .map_err(|e| fail("document", plain_yaml_error(e.to_string().trim())))?;
        if let Some(unknown) = keys
            .keys()
            .find(|key| !TOP_LEVEL_KEYS.contains(&key.as_str()) && !key.starts_with("x-"))
        {
            return Err(fail(
                unknown,
                format!(
                    "unknown key; expected one of {} (or an `x-…` block, which is ignored)",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ));
        }
        let spec: NetworkSpec = serde_saphyr::from_str(text)
            .map_err(|e| fail("document", plain_yaml_error(e.to_string().trim())))?;
        spec.validate(file)?;
        Ok(spec)
    }

    fn validate(&self, file: &str) -> Result<(), SpecError> {
        let fail = |location: String, message: String| SpecError {
            file: file.to_owned(),
            location,
            message,
        };
        if self.organizations.is_empty() {
            return Err(fail(
                "organizations".into(),
                "expected at least one peer organisation".into(),
            ));
        }
        let mut msp_ids = BTreeSet::new();
        let mut domains = BTreeSet::new();
        let mut names = BTreeSet::new();
        let orderer = &self.orderers.organization;
        let orgs = self
            .organizations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    format!("organizations[{i}]"),
                    o.name.as_str(),
                    o.msp_id.as_str(),
                    o.domain.as_str(),
                )
            })
            .chain(std::iter::once((
                "orderers.organization".to_owned(),
                orderer.name.as_str(),
                orderer.msp_id.as_str(),
                orderer.domain.as_str(),
            )));
        for (path, name, msp_id, domain) in orgs {
            if !is_identifier(name) {
                return Err(fail(
                    format!("{path}.name"),
                    format!("expected a name of letters, digits, '-' or '_', got {name:?}"),
                ));
            }
            if !is_identifier(msp_id) {
                return Err(fail(
                    format!("{path}.mspId"),
                    format!("expected an MSP ID of letters, digits, '-' or '_', got {msp_id:?}"),
                ));
            }
            if !is_domain(domain) {
                return Err(fail(
                    format!("{path}.domain"),
                    format!("expected a DNS domain such as org1.example.com, got {domain:?}"),
                ));
            }
            if !names.insert(name.to_ascii_lowercase()) {
                return Err(fail(
                    format!("{path}.name"),
                    format!("organisation name {name:?} is used twice"),
                ));
            }
            if !msp_ids.insert(msp_id) {
                return Err(fail(
                    format!("{path}.mspId"),
                    format!("MSP ID {msp_id:?} is used twice"),
                ));
            }
            if !domains.insert(domain.to_ascii_lowercase()) {
                return Err(fail(
                    format!("{path}.domain"),
                    format!("domain {domain:?} is used twice"),
                ));
            }
        }
        for (i, org) in self.organizations.iter().enumerate() {
            if !(1..=PEERS_PER_ORGANIZATION_MAX).contains(&org.peers) {
                return Err(fail(
                    format!("organizations[{i}].peers"),
                    format!(
                        "expected 1 to {PEERS_PER_ORGANIZATION_MAX} peers, got {}",
                        org.peers
                    ),
                ));
            }
            if org.users > USERS_PER_ORGANIZATION_MAX {
                return Err(fail(
                    format!("organizations[{i}].users"),
                    format!(
                        "expected at most {USERS_PER_ORGANIZATION_MAX} users, got {}",
                        org.users
                    ),
                ));
            }
        }
        if !(1..=ORDERER_NODES_MAX).contains(&self.orderers.nodes) {
            return Err(fail(
                "orderers.nodes".into(),
                format!(
                    "expected 1 to {ORDERER_NODES_MAX} Raft nodes, got {}",
                    self.orderers.nodes
                ),
            ));
        }
        if self.certificate_authorities && !self.hosts.is_empty() {
            return Err(fail(
                "certificateAuthorities".into(),
                "certificate authorities are not yet placed on hosts: remove `hosts:` or \
                 run `weft ca` yourself on each host"
                    .into(),
            ));
        }
        self.validate_ports()
            .map_err(|(path, message)| fail(path, message))?;
        self.validate_hosts()
            .map_err(|(path, message)| fail(path, message))?;
        self.validate_batch()
            .map_err(|(path, message)| fail(path, message))?;
        self.validate_channels()
            .map_err(|(path, message)| fail(path, message))?;
        self.validate_chaincodes()
            .map_err(|(path, message)| fail(path, message))?;
        self.validate_event_sinks()
            .map_err(|(path, message)| fail(path, message))?;
        Ok(())
    }

    fn validate_event_sinks(&self) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        for (i, sink) in self.event_sinks.iter().enumerate() {
            let path = |field: &str| format!("eventSinks[{i}].{field}");
            if !is_identifier(&sink.name) {
                return Err((
                    path("name"),
                    format!(
                        "expected letters, digits, '-' and '_' (at most 64), got {:?}",
                        sink.name
                    ),
                ));
            }
            if !names.insert(sink.name.as_str()) {
                return Err((
                    path("name"),
                    format!("event sink {:?} is defined twice", sink.name),
                ));
            }
            if sink.postgres.trim().is_empty() {
                return Err((
                    path("postgres"),
                    "expected a PostgreSQL URL (postgres://user@host:port/database)".into(),
                ));
            }
            let channel_name = sink.channel_in(self);
            let Some(channel) = self.channels.iter().find(|c| c.name == channel_name) else {
                return Err((
                    path("channel"),
                    format!("no channel named {channel_name:?}"),
                ));
            };
            let Some(org) = sink.organization_in(self) else {
                return Err((
                    path("organization"),
                    format!(
                        "no organisation named {:?}",
                        sink.organization.as_deref().unwrap_or_default()
                    ),
                ));
            };
            if !self
                .channel_organizations(channel)
                .iter()
                .any(|member| member.msp_id == org.msp_id)
            {
                return Err((
                    path("organization"),
                    format!(
                        "{} is not a member of channel {channel_name:?}: its peers do not have it",
                        org.name
                    ),
                ));
            }
            if let Some(user) = &sink.user
                && !(user == "Admin" || is_user_name(user, org.users))
            {
                return Err((
                    path("user"),
                    format!(
                        "expected Admin or User1 … User{} of {}, got {user:?}",
                        org.users, org.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Listen port of peer `j` of organisation number `k`, unclamped (so
    /// validation can report a default that overflows), and the document
    /// path it comes from.
    fn peer_port_wide(&self, k: usize, j: u32) -> (u32, String) {
        match &self.organizations[k].ports {
            Some(list) => (
                list.get(j as usize).copied().map_or(0, u32::from),
                format!("organizations[{k}].ports[{j}]"),
            ),
            None => (
                7051 + 2000 * k as u32 + 100 * j,
                format!("organizations[{k}] (default port of peer{j})"),
            ),
        }
    }

    /// Like [`peer_port_wide`](Self::peer_port_wide), for Raft node `i`.
    fn orderer_port_wide(&self, i: u32) -> (u32, String) {
        match &self.orderers.ports {
            Some(list) => (
                list.get(i as usize).copied().map_or(0, u32::from),
                format!("orderers.ports[{i}]"),
            ),
            None => (
                7050 + 1000 * i,
                format!("orderers (default port of node {})", i + 1),
            ),
        }
    }

    /// The operations port of peer `j` of organisation `k`, unclamped, and
    /// where it comes from; `None`: the peer has no operations service.
    fn peer_operations_port_wide(&self, k: usize, j: u32) -> Option<(u32, String)> {
        let org = &self.organizations[k];
        match (&org.operations_ports, &org.ports) {
            (Some(list), _) => Some((
                list.get(j as usize).copied().map_or(0, u32::from),
                format!("organizations[{k}].operationsPorts[{j}]"),
            )),
            (None, Some(_)) => None,
            (None, None) => Some((
                self.peer_port_wide(k, j).0 + 10_000,
                format!("organizations[{k}] (default operations port of peer{j})"),
            )),
        }
    }

    /// Like [`peer_operations_port_wide`](Self::peer_operations_port_wide), for Raft node `i`.
    fn orderer_operations_port_wide(&self, i: u32) -> Option<(u32, String)> {
        match (&self.orderers.operations_ports, &self.orderers.ports) {
            (Some(list), _) => Some((
                list.get(i as usize).copied().map_or(0, u32::from),
                format!("orderers.operationsPorts[{i}]"),
            )),
            (None, Some(_)) => None,
            (None, None) => Some((
                self.orderer_port_wide(i).0 + 10_000,
                format!("orderers (default operations port of node {})", i + 1),
            )),
        }
    }

    /// The operations port of peer `peer` of organisation `org`, if it has one.
    pub fn peer_operations_port(&self, org: usize, peer: u32) -> Option<u16> {
        self.peer_operations_port_wide(org, peer)
            .map(|(port, _)| u16::try_from(port).unwrap_or(u16::MAX))
    }

    /// The operations port of Raft node `index`, if it has one.
    pub fn orderer_operations_port(&self, index: u32) -> Option<u16> {
        self.orderer_operations_port_wide(index)
            .map(|(port, _)| u16::try_from(port).unwrap_or(u16::MAX))
    }

    /// Listen port of peer `peer` of organisation number `org` (validation
    /// has checked that it fits in 16 bits).
    pub fn peer_port(&self, org: usize, peer: u32) -> u16 {
        u16::try_from(self.peer_port_wide(org, peer).0).unwrap_or(u16::MAX)
    }

    /// Listen port of Raft node `index` (0-based).
    pub fn orderer_port(&self, index: u32) -> u16 {
        u16::try_from(self.orderer_port_wide(index).0).unwrap_or(u16::MAX)
    }

    /// The certificate authorities `weft up` runs: one per peer
    /// organisation, then the orderers' (none without `certificateAuthorities`).
    pub fn certificate_authorities(&self) -> Vec<CertificateAuthoritySpec> {
        if !self.certificate_authorities {
            return Vec::new();
        }
        let mut cas: Vec<CertificateAuthoritySpec> = self
            .organizations
            .iter()
            .enumerate()
            .map(|(k, org)| {
                let lower = org.name.to_ascii_lowercase();
                let default = match k {
                    0 => 7054,
                    1 => 8054,
                    k => 9054 + 1000 * u32::try_from(k - 1).unwrap_or(u32::MAX),
                };
                CertificateAuthoritySpec {
                    name: format!("ca-{lower}"),
                    directory: lower.clone(),
                    port: org
                        .ca_port
                        .unwrap_or_else(|| u16::try_from(default).unwrap_or(u16::MAX)),
                    operations_port: ca_operations_port(
                        org.ca_port,
                        org.ca_operations_port,
                        default,
                    ),
                    domain: org.domain.clone(),
                    msp_id: org.msp_id.clone(),
                    affiliation: lower,
                }
            })
            .collect();
        let orderer = &self.orderers.organization;
        cas.push(CertificateAuthoritySpec {
            name: "ca-orderer".into(),
            directory: "ordererOrg".into(),
            port: orderer.ca_port.unwrap_or(9054),
            operations_port: ca_operations_port(orderer.ca_port, orderer.ca_operations_port, 9054),
            domain: orderer.domain.clone(),
            msp_id: orderer.msp_id.clone(),
            affiliation: orderer.name.to_ascii_lowercase(),
        });
        cas
    }

    /// The port of the REST gateway `weft up` runs, if it runs one: `rest.port`;
    /// without `rest:`, 8080 when every node is on its default port (a spec
    /// that chooses its ports chooses this one too); none with `enabled: false`.
    pub fn rest_port(&self) -> Option<u16> {
        match &self.rest {
            Some(RestSpec { enabled: false, .. }) => None,
            Some(RestSpec {
                port: Some(port), ..
            }) => Some(*port),
            _ if self.organizations.iter().all(|o| o.ports.is_none())
                && self.orderers.ports.is_none() =>
            {
                Some(8080)
            }
            Some(_) => Some(8080),
            None => None,
        }
    }

    /// The organisation a channel or chaincode names, by name or MSP ID.
    pub fn organization(&self, name: &str) -> Option<&OrganizationSpec> {
        self.organizations
            .iter()
            .find(|o| o.name == name || o.msp_id == name)
    }

    /// The organisations of `channel`.
    pub fn channel_organizations(&self, channel: &ChannelSpec) -> Vec<&OrganizationSpec> {
        match &channel.organizations {
            None => self.organizations.iter().collect(),
            Some(names) => names
                .iter()
                .filter_map(|name| self.organization(name))
                .collect(),
        }
    }

    /// The channels `chaincode` is deployed on.
    pub fn chaincode_channels(&self, chaincode: &ChaincodeSpec) -> Vec<&ChannelSpec> {
        self.channels
            .iter()
            .filter(|c| {
                chaincode
                    .channels
                    .as_ref()
                    .is_none_or(|names| names.contains(&c.name))
            })
            .collect()
    }

    /// The orderers' BatchTimeout (its format is checked by validation).
    pub fn batch_timeout(&self) -> std::time::Duration {
        weft_protoutil::parse_duration(&self.orderers.batch_timeout).unwrap_or_default()
    }

    fn validate_ports(&self) -> Result<(), (String, String)> {
        for (k, org) in self.organizations.iter().enumerate() {
            for (key, list) in [
                ("ports", &org.ports),
                ("operationsPorts", &org.operations_ports),
            ] {
                if let Some(ports) = list
                    && ports.len() != org.peers as usize
                {
                    return Err((
                        format!("organizations[{k}].{key}"),
                        format!(
                            "expected {} port(s), one per peer, got {}",
                            org.peers,
                            ports.len()
                        ),
                    ));
                }
            }
        }
        for (key, list) in [
            ("ports", &self.orderers.ports),
            ("operationsPorts", &self.orderers.operations_ports),
        ] {
            if let Some(ports) = list
                && ports.len() != self.orderers.nodes as usize
            {
                return Err((
                    format!("orderers.{key}"),
                    format!(
                        "expected {} port(s), one per Raft node, got {}",
                        self.orderers.nodes,
                        ports.len()
                    ),
                ));
            }
        }
        let mut seen: BTreeMap<u32, (String, String)> = BTreeMap::new();
        let peers = self.organizations.iter().enumerate().flat_map(|(k, org)| {
            (0..org.peers).flat_map(move |j| {
                let node = format!("peer{j}.{}", org.domain);
                [
                    Some((node.clone(), self.peer_port_wide(k, j))),
                    self.peer_operations_port_wide(k, j)
                        .map(|port| (format!("the operations service of {node}"), port)),
                ]
                .into_iter()
                .flatten()
            })
        });
        let domain = &self.orderers.organization.domain;
        let orderers = (0..self.orderers.nodes).flat_map(|i| {
            let node = format!("{}.{domain}", orderer_host(i));
            [
                Some((node.clone(), self.orderer_port_wide(i))),
                self.orderer_operations_port_wide(i)
                    .map(|port| (format!("the operations service of {node}"), port)),
            ]
            .into_iter()
            .flatten()
        });
        let sinks = self.event_sinks.iter().enumerate().filter_map(|(i, sink)| {
            sink.operations_port.map(|port| {
                (
                    format!("the operations service of event sink {}", sink.name),
                    (u32::from(port), format!("eventSinks[{i}].operationsPort")),
                )
            })
        });
        let cas = self.certificate_authorities().into_iter().map(|ca| {
            let path = match self
                .organizations
                .iter()
                .position(|o| o.msp_id == ca.msp_id)
            {
                Some(k) => format!("organizations[{k}].caPort"),
                None => "orderers.organization.caPort".into(),
            };
            let operations = ca.operations_port.map(|port| {
                (
                    format!(
                        "the operations service of certificate authority {}",
                        ca.name
                    ),
                    (u32::from(port), path.replace("caPort", "caOperationsPort")),
                )
            });
            std::iter::once((
                format!("certificate authority {}", ca.name),
                (u32::from(ca.port), path),
            ))
            .chain(operations)
        });
        let rest = self.rest_port().map(|port| {
            (
                "the REST gateway".to_owned(),
                (u32::from(port), "rest.port".to_owned()),
            )
        });
        for (node, (port, path)) in peers
            .chain(orderers)
            .chain(sinks)
            .chain(cas.flatten())
            .chain(rest)
        {
            if port == 0 || port > u32::from(u16::MAX) {
                return Err((
                    path,
                    format!("expected a port from 1 to 65535 for {node}, got {port}"),
                ));
            }
            if let Some((other, other_path)) = seen.get(&port) {
                return Err((
                    path,
                    format!("port {port} of {node} is already used by {other} ({other_path})"),
                ));
            }
            seen.insert(port, (node, path));
        }
        Ok(())
    }

    /// The host of peer `peer` of organisation `org`, when nodes are placed.
    pub fn peer_host(&self, org: usize, peer: u32) -> Option<&HostSpec> {
        let name = self.organizations[org].hosts.as_ref()?.get(peer as usize)?;
        self.hosts.iter().find(|h| &h.name == name)
    }

    /// The host of Raft node `index`, when nodes are placed.
    pub fn orderer_host(&self, index: u32) -> Option<&HostSpec> {
        let name = self.orderers.hosts.as_ref()?.get(index as usize)?;
        self.hosts.iter().find(|h| &h.name == name)
    }

    fn validate_hosts(&self) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            if !is_identifier(&host.name) {
                return Err((
                    format!("hosts[{i}].name"),
                    format!(
                        "expected a name of letters, digits, '-' or '_', got {:?}",
                        host.name
                    ),
                ));
            }
            if !names.insert(host.name.as_str()) {
                return Err((
                    format!("hosts[{i}].name"),
                    format!("host {:?} is named twice", host.name),
                ));
            }
            if host.address.parse::<std::net::IpAddr>().is_err() && !is_domain(&host.address) {
                return Err((
                    format!("hosts[{i}].address"),
                    format!(
                        "expected an IP address or a DNS name, got {:?}",
                        host.address
                    ),
                ));
            }
            if !addresses.insert(host.address.as_str()) {
                return Err((
                    format!("hosts[{i}].address"),
                    format!("address {} is given to two hosts", host.address),
                ));
            }
        }
        let placements = self
            .organizations
            .iter()
            .enumerate()
            .map(|(k, org)| {
                (
                    format!("organizations[{k}].hosts"),
                    &org.hosts,
                    org.peers,
                    "peer",
                )
            })
            .chain(std::iter::once((
                "orderers.hosts".to_owned(),
                &self.orderers.hosts,
                self.orderers.nodes,
                "Raft node",
            )));
        for (path, list, count, what) in placements {
            match list {
                None if self.hosts.is_empty() => {}
                None => {
                    return Err((
                        path,
                        format!(
                            "expected a host per {what} ({count}), since the spec has hosts ({})",
                            names.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Some(_) if self.hosts.is_empty() => {
                    return Err((
                        path,
                        "names hosts, but the spec has no `hosts:` to place nodes on".into(),
                    ));
                }
                Some(list) => {
                    if list.len() != count as usize {
                        return Err((
                            path,
                            format!(
                                "expected {count} host(s), one per {what}, got {}",
                                list.len()
                            ),
                        ));
                    }
                    for (j, name) in list.iter().enumerate() {
                        if !names.contains(name.as_str()) {
                            return Err((
                                format!("{path}[{j}]"),
                                format!(
                                    "no host {name:?} in `hosts:` ({})",
                                    names.iter().copied().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_batch(&self) -> Result<(), (String, String)> {
        let timeout =
            weft_protoutil::parse_duration(&self.orderers.batch_timeout).map_err(|e| {
                (
                    "orderers.batchTimeout".to_owned(),
                    format!("expected a duration such as 250ms or 2s: {e}"),
                )
            })?;
        if timeout.is_zero() || timeout > std::time::Duration::from_secs(60) {
            return Err((
                "orderers.batchTimeout".into(),
                format!(
                    "expected more than 0 and at most 60s, got {}",
                    self.orderers.batch_timeout
                ),
            ));
        }
        let size = &self.orderers.batch_size;
        if size.max_message_count == 0 {
            return Err((
                "orderers.batchSize.maxMessageCount".into(),
                "expected at least 1".into(),
            ));
        }
        if size.preferred_max_bytes == 0 || size.preferred_max_bytes > size.absolute_max_bytes {
            return Err((
                "orderers.batchSize.preferredMaxBytes".into(),
                format!(
                    "expected from 1 to absoluteMaxBytes ({}), got {}",
                    size.absolute_max_bytes, size.preferred_max_bytes
                ),
            ));
        }
        Ok(())
    }

    fn validate_channels(&self) -> Result<(), (String, String)> {
        if self.channels.is_empty() {
            return Err(("channels".into(), "expected at least one channel".into()));
        }
        let known = || {
            self.organizations
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut names = BTreeSet::new();
        for (i, channel) in self.channels.iter().enumerate() {
            if !is_channel_name(&channel.name) {
                return Err((
                    format!("channels[{i}].name"),
                    format!(
                        "expected a channel name of lower-case letters, digits, '.' and '-', starting with a letter, got {:?}",
                        channel.name
                    ),
                ));
            }
            if !names.insert(channel.name.as_str()) {
                return Err((
                    format!("channels[{i}].name"),
                    format!("channel {:?} is defined twice", channel.name),
                ));
            }
            if let Some(orgs) = &channel.organizations {
                if orgs.is_empty() {
                    return Err((
                        format!("channels[{i}].organizations"),
                        "expected at least one organisation".into(),
                    ));
                }
                let mut members = BTreeSet::new();
                for (j, name) in orgs.iter().enumerate() {
                    let Some(org) = self.organization(name) else {
                        return Err((
                            format!("channels[{i}].organizations[{j}]"),
                            format!(
                                "no organisation named {name:?} (organisations: {})",
                                known()
                            ),
                        ));
                    };
                    if !members.insert(org.msp_id.as_str()) {
                        return Err((
                            format!("channels[{i}].organizations[{j}]"),
                            format!("organisation {name:?} is listed twice"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_chaincodes(&self) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        for (i, chaincode) in self.chaincodes.iter().enumerate() {
            let path = |field: &str| format!("chaincodes[{i}].{field}");
            if !is_chaincode_name(&chaincode.name) {
                return Err((
                    path("name"),
                    format!(
                        "expected a chaincode name of letters and digits, joined by '-' or '_', got {:?}",
                        chaincode.name
                    ),
                ));
            }
            if !names.insert(chaincode.name.as_str()) {
                return Err((
                    path("name"),
                    format!("chaincode {:?} is defined twice", chaincode.name),
                ));
            }
            if chaincode.version.is_empty() {
                return Err((path("version"), "expected a non-empty version".into()));
            }
            if let Some(channels) = &chaincode.channels {
                if channels.is_empty() {
                    return Err((path("channels"), "expected at least one channel".into()));
                }
                for (j, name) in channels.iter().enumerate() {
                    if !self.channels.iter().any(|c| &c.name == name) {
                        return Err((
                            format!("chaincodes[{i}].channels[{j}]"),
                            format!(
                                "no channel named {name:?} (channels: {})",
                                self.channels
                                    .iter()
                                    .map(|c| c.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
            if let Some(policy) = &chaincode.endorsement_policy {
                let envelope = weft_policy::parse_signature_policy(policy)
                    .map_err(|e| (path("endorsementPolicy"), e.to_string()))?;
                let compiled = weft_policy::SignaturePolicy::from_envelope(&envelope)
                    .map_err(|e| (path("endorsementPolicy"), e.to_string()))?;
                for channel in self.chaincode_channels(chaincode) {
                    let members = self.channel_organizations(channel);
                    for principal in compiled.principals() {
                        let msp_id = principal.msp_id();
                        if !members.iter().any(|o| o.msp_id == msp_id) {
                            return Err((
                                path("endorsementPolicy"),
                                format!(
                                    "principal of {msp_id:?} is not an organisation of channel {:?} (members: {})",
                                    channel.name,
                                    members
                                        .iter()
                                        .map(|o| o.msp_id.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
            match &chaincode.launcher {
                LauncherSpec::Builtin(name) if name.is_empty() => {
                    return Err((
                        path("launcher.builtin"),
                        "expected the name of a built-in chaincode (basic)".into(),
                    ));
                }
                LauncherSpec::Process { command, .. } if command.is_empty() => {
                    return Err((
                        path("launcher.process.command"),
                        "expected a command and its arguments".into(),
                    ));
                }
                LauncherSpec::Docker { image, build, .. } => match (image, build) {
                    (Some(image), None) if image.trim().is_empty() => {
                        return Err((
                            path("launcher.docker.image"),
                            "expected an image such as my-chaincode:1.0".into(),
                        ));
                    }
                    (None, Some(dir)) if dir.trim().is_empty() => {
                        return Err((
                            path("launcher.docker.build"),
                            "expected the chaincode's source directory".into(),
                        ));
                    }
                    (Some(_), Some(_)) | (None, None) => {
                        return Err((
                            path("launcher.docker"),
                            "expected either `image` (an image to run) or `build` (a source directory to build one from)".into(),
                        ));
                    }
                    _ => {}
                },
                LauncherSpec::Kubernetes { image, .. } if image.trim().is_empty() => {
                    return Err((
                        path("launcher.kubernetes.image"),
                        "expected an image the cluster can pull, such as registry.example.com/my-chaincode:1.0".into(),
                    ));
                }
                LauncherSpec::External { address, .. }
                    if address.rsplit_once(':').is_none_or(|(host, port)| {
                        host.is_empty() || port.parse::<u16>().is_err()
                    }) =>
                {
                    return Err((
                        path("launcher.external.address"),
                        format!("expected host:port, got {address:?}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Host names of the Raft nodes: `orderer`, `orderer2`, `orderer3`, …
pub fn orderer_host(index: u32) -> String {
    if index == 0 {
        "orderer".to_owned()
    } else {
        format!("orderer{}", index + 1)
    }
}

/// Fabric's channel name rule: `[a-z][a-z0-9.-]*`, under 250 characters.
fn is_channel_name(s: &str) -> bool {
    s.len() < 250
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// Fabric's chaincode name rule: `[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*`.
fn is_chaincode_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split(['-', '_'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The YAML parser's terse words for a wrong type, said as what was
/// expected.
fn plain_yaml_error(message: &str) -> String {
    [
        ("invalid u32", "expected a whole number (like 2)"),
        ("invalid u16", "expected a whole number from 0 to 65535"),
        ("invalid u64", "expected a whole number"),
        (
            "expected mapping start",
            "expected a mapping here (indented `key: value` lines, or `{key: value}`), found none",
        ),
        (
            "expected sequence start",
            "expected a list here (`- item` lines, or `[a, b]`)",
        ),
    ]
    .iter()
    .fold(message.to_owned(), |text, (terse, plain)| {
        text.replace(terse, plain)
    })
}

/// `User<n>` with `1 <= n <= users`: the users cryptogen makes.
fn is_user_name(s: &str, users: u32) -> bool {
    s.strip_prefix("User")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=users).contains(&n))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_is_fabrics_test_network() {
        let spec = NetworkSpec::default_network();
        let ids: Vec<_> = spec
            .organizations
            .iter()
            .map(|o| (o.msp_id.as_str(), o.domain.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("Org1MSP", "org1.example.com"),
                ("Org2MSP", "org2.example.com")
            ]
        );
        assert_eq!(spec.orderers.organization.msp_id, "OrdererMSP");
        assert_eq!(spec.orderers.nodes, 3);
    }

    #[test]
    fn to_yaml_reads_back_equal() {
        let full = format!(
            "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, peers: 2, ports: [7051, 7151]}}\n  - {{name: Org2, mspId: Org2MSP, domain: org2.example.com}}\n{ORDERERS}channels:\n  - {{name: a}}\n  - {{name: b, organizations: [Org1]}}\nchaincodes:\n  - name: p\n    channels: [b]\n    endorsementPolicy: \"OR('Org1MSP.peer')\"\n    indexes: [i.json]\n    launcher: {{process: {{command: [node, '{{peer_address}}'], dir: cc, env: {{K: 'v: 1'}}}}}}\n  - name: e\n    launcher: {{external: {{address: '127.0.0.1:9999', tlsRootCa: ca.pem}}}}\n  - {{name: b2, version: '2.0', launcher: {{builtin: basic}}}}\n"
        );
        for spec in [
            NetworkSpec::default_network(),
            NetworkSpec::from_yaml(&full, "full.yaml").expect("full spec"),
        ] {
            let yaml = spec.to_yaml();
            let again = NetworkSpec::from_yaml(&yaml, "again.yaml").expect(&yaml);
            assert_eq!(again, spec, "{yaml}");
        }
    }

    fn error(yaml: &str) -> SpecError {
        NetworkSpec::from_yaml(yaml, "net.yaml").expect_err("spec must be refused")
    }

    const ORDERERS: &str =
        "orderers:\n  organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n";

    #[test]
    fn x_blocks_hold_anchors_and_other_keys_are_refused() {
        let spec = NetworkSpec::from_yaml(
            &format!(
                "x-org: &org\n  peers: 2\n  users: 3\nx-unused: [1, 2]\nname: n\norganizations:\n  - <<: *org\n    name: Org1\n    mspId: Org1MSP\n    domain: org1.com\n{ORDERERS}chaincodes:\n  - name: cc\n    version: 1.0\n    launcher: {{builtin: basic}}\n"
            ),
            "net.yaml",
        )
        .expect("x- blocks are ignored, their anchors used");
        assert_eq!(spec.organizations[0].peers, 2);
        assert_eq!(spec.organizations[0].users, 3);
        assert_eq!(spec.chaincodes[0].version, "1.0", "typed as before");
        let typo = error(&format!("name: n\norganisations: []\n{ORDERERS}"));
        assert_eq!(
            typo.to_string(),
            format!(
                "net.yaml: organisations: unknown key; expected one of {} (or an `x-…` block, which is ignored)",
                TOP_LEVEL_KEYS.join(", ")
            )
        );
        // Every key the spec serializes is a known one.
        let mut full = NetworkSpec::default_network();
        full.hosts.push(HostSpec {
            name: "h".into(),
            address: "10.0.0.1".into(),
        });
        full.operations.tls = true;
        let yaml = full.to_yaml();
        let keys: BTreeMap<String, serde::de::IgnoredAny> =
            serde_saphyr::from_str(&yaml).expect("yaml");
        for key in keys.keys() {
            assert!(TOP_LEVEL_KEYS.contains(&key.as_str()), "{key}");
        }
    }

    #[test]
    fn type_errors_say_what_was_expected() {
        let peers = error(&format!(
            "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.com, peers: two}}\n{ORDERERS}"
        ));
        assert!(
            peers
                .to_string()
                .contains("expected a whole number (like 2)"),
            "{peers}"
        );
        let orderers = error(
            "name: n\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.com}\norderers:\n",
        );
        assert!(
            orderers.to_string().contains("expected a mapping here"),
            "{orderers}"
        );
    }

    #[test]
    fn event_sinks_are_checked_against_channels_organisations_and_ports() {
        let base = format!(
            "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.com}}\n  - {{name: Org2, mspId: Org2MSP, domain: org2.com}}\n{ORDERERS}channels:\n  - name: mychannel\n  - {{name: private, organizations: [Org2]}}\n"
        );
        let spec = NetworkSpec::from_yaml(
            &format!(
                "{base}eventSinks:\n  - {{name: reporting, postgres: 'postgres://me@db/r', chaincodes: [basic], operationsPort: 9444}}\n  - {{name: org2, postgres: 'postgres://me@db/r', channel: private, organization: Org2MSP, user: User1, writes: false}}\n"
            ),
            "net.yaml",
        )
        .expect("valid sinks");
        let [first, second] = spec.event_sinks.as_slice() else {
            panic!("two sinks");
        };
        assert_eq!(first.channel_in(&spec), "mychannel");
        assert_eq!(
            first.organization_in(&spec).map(|o| o.name.as_str()),
            Some("Org1")
        );
        assert!(first.writes);
        assert!(!second.writes);
        let again = NetworkSpec::from_yaml(&spec.to_yaml(), "again.yaml").expect("round trip");
        assert_eq!(again, spec);

        for (sink, expected) in [
            (
                "{name: r, postgres: ''}",
                "eventSinks[0].postgres: expected a PostgreSQL URL",
            ),
            (
                "{name: r, postgres: p, channel: nope}",
                "eventSinks[0].channel: no channel named \"nope\"",
            ),
            (
                "{name: r, postgres: p, channel: private}",
                "eventSinks[0].organization: Org1 is not a member of channel \"private\"",
            ),
            (
                "{name: r, postgres: p, user: User9}",
                "eventSinks[0].user: expected Admin or User1 … User1 of Org1, got \"User9\"",
            ),
            (
                "{name: r, postgres: p, operationsPort: 7051}",
                "eventSinks[0].operationsPort: port 7051 of the operations service of event sink r is already used by peer0.org1.com",
            ),
            (
                "{name: 'a b', postgres: p}",
                "eventSinks[0].name: expected letters",
            ),
        ] {
            let message = error(&format!("{base}eventSinks:\n  - {sink}\n")).to_string();
            assert!(message.contains(expected), "{sink}: {message}");
        }
        let twice = error(&format!(
            "{base}eventSinks:\n  - {{name: r, postgres: p}}\n  - {{name: r, postgres: p}}\n"
        ));
        assert!(
            twice
                .to_string()
                .contains("eventSinks[1].name: event sink \"r\" is defined twice")
        );
    }

    #[test]
    fn errors_name_file_path_and_expectation() {
        let cases = [
            (
                format!(
                    "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.example.com}}\n{ORDERERS}chaincodes:\n  - {{name: cc, launcher: {{kubernetes: {{image: ' '}}}}}}\n"
                ),
                "net.yaml: chaincodes[0].launcher.kubernetes.image: expected an image the cluster can pull",
            ),
            (
                format!(
                    "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.example.com}}\n  - {{name: Org2, mspId: Org1MSP, domain: org2.example.com}}\n{ORDERERS}"
                ),
                "net.yaml: organizations[1].mspId: MSP ID \"Org1MSP\" is used twice",
            ),
            (
                format!(
                    "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: 'org1..com'}}\n{ORDERERS}"
                ),
                "net.yaml: organizations[0].domain: expected a DNS domain",
            ),
            (
                format!(
                    "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.com, peers: 0}}\n{ORDERERS}"
                ),
                "net.yaml: organizations[0].peers: expected 1 to 32 peers, got 0",
            ),
            (
                format!("name: n\norganizations: []\n{ORDERERS}"),
                "net.yaml: organizations: expected at least one peer organisation",
            ),
            (
                format!(
                    "name: n\norganizations:\n  - {{name: Org1, mspId: OrdererMSP, domain: org1.com}}\n{ORDERERS}"
                ),
                "net.yaml: orderers.organization.mspId: MSP ID \"OrdererMSP\" is used twice",
            ),
        ];
        for (yaml, expected) in cases {
            let message = error(&yaml).to_string();
            assert!(
                message.starts_with(expected),
                "{message}\n  expected: {expected}"
            );
        }
    }

    const TWO_ORGS: &str = "name: n\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com}\n  - {name: Org2, mspId: Org2MSP, domain: org2.example.com}\n";

    #[test]
    fn default_network_has_mychannel_and_basic_on_test_network_ports() {
        let spec = NetworkSpec::default_network();
        assert_eq!(spec.channels.len(), 1);
        assert_eq!(spec.channels[0].name, "mychannel");
        assert_eq!(spec.channel_organizations(&spec.channels[0]).len(), 2);
        assert_eq!(spec.chaincodes[0].name, "basic");
        assert_eq!(
            spec.chaincodes[0].launcher,
            LauncherSpec::Builtin("basic".into())
        );
        assert_eq!((spec.peer_port(0, 0), spec.peer_port(1, 0)), (7051, 9051));
        let orderers: Vec<u16> = (0..3).map(|i| spec.orderer_port(i)).collect();
        assert_eq!(orderers, [7050, 8050, 9050]);
        assert_eq!(spec.batch_timeout(), std::time::Duration::from_millis(250));
        // Operations services on the listen ports + 10000.
        assert_eq!(
            (
                spec.peer_operations_port(0, 0),
                spec.peer_operations_port(1, 0)
            ),
            (Some(17051), Some(19051))
        );
        let operations: Vec<Option<u16>> =
            (0..3).map(|i| spec.orderer_operations_port(i)).collect();
        assert_eq!(operations, [Some(17050), Some(18050), Some(19050)]);
    }

    #[test]
    fn operations_ports_are_explicit_once_ports_are() {
        let explicit = "name: n\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [30001], operationsPorts: [30002]}\n  - {name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [30003]}\n";
        let spec =
            NetworkSpec::from_yaml(&format!("{explicit}{ORDERERS}"), "net.yaml").expect("valid");
        assert_eq!(spec.peer_operations_port(0, 0), Some(30002));
        assert_eq!(spec.peer_operations_port(1, 0), None);
        let clash = explicit.replace("operationsPorts: [30002]", "operationsPorts: [30003]");
        let error = NetworkSpec::from_yaml(&format!("{clash}{ORDERERS}"), "net.yaml")
            .expect_err("a clash")
            .to_string();
        assert!(
            error.contains("port 30003 of peer0.org2.example.com is already used by the operations service of peer0.org1.example.com"),
            "{error}"
        );
        let short = explicit.replace("operationsPorts: [30002]", "operationsPorts: []");
        let error = NetworkSpec::from_yaml(&format!("{short}{ORDERERS}"), "net.yaml")
            .expect_err("too few")
            .to_string();
        assert!(
            error.contains(
                "organizations[0].operationsPorts: expected 1 port(s), one per peer, got 0"
            ),
            "{error}"
        );
    }

    #[test]
    fn certificate_authorities_take_fabrics_ports_and_are_checked() {
        let mut spec = NetworkSpec::default_network();
        assert!(spec.certificate_authorities().is_empty());
        spec.certificate_authorities = true;
        let cas: Vec<(String, String, u16, Option<u16>)> = spec
            .certificate_authorities()
            .into_iter()
            .map(|ca| (ca.name, ca.directory, ca.port, ca.operations_port))
            .collect();
        assert_eq!(
            cas,
            [
                ("ca-org1".into(), "org1".into(), 7054, Some(17054)),
                ("ca-org2".into(), "org2".into(), 8054, Some(18054)),
                ("ca-orderer".into(), "ordererOrg".into(), 9054, Some(19054)),
            ]
        );
        let text = "name: n\ncertificateAuthorities: true\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [30001], caPort: 30005}\n";
        let spec = NetworkSpec::from_yaml(&format!("{text}{ORDERERS}"), "net.yaml").expect("valid");
        assert_eq!(spec.certificate_authorities()[0].port, 30005);
        assert_eq!(spec.certificate_authorities()[0].operations_port, None);
        let clash = text.replace("caPort: 30005", "caPort: 30001");
        let error = NetworkSpec::from_yaml(&format!("{clash}{ORDERERS}"), "net.yaml")
            .expect_err("a clash")
            .to_string();
        assert!(
            error.contains("organizations[0].caPort")
                && error.contains("port 30001 of certificate authority ca-org1 is already used by peer0.org1.example.com"),
            "{error}"
        );
    }

    #[test]
    fn the_rest_gateway_is_on_8080_unless_the_spec_chooses_ports() {
        assert_eq!(NetworkSpec::default_network().rest_port(), Some(8080));
        let explicit = "name: n\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [30001]}\n";
        let spec =
            NetworkSpec::from_yaml(&format!("{explicit}{ORDERERS}"), "net.yaml").expect("valid");
        assert_eq!(spec.rest_port(), None);
        let chosen = format!("{explicit}{ORDERERS}rest: {{port: 30009}}\n");
        assert_eq!(
            NetworkSpec::from_yaml(&chosen, "net.yaml")
                .expect("valid")
                .rest_port(),
            Some(30009)
        );
        let mut off = NetworkSpec::default_network();
        off.rest = Some(RestSpec {
            enabled: false,
            port: None,
        });
        assert_eq!(off.rest_port(), None);
        let clash = format!("{explicit}{ORDERERS}rest: {{port: 30001}}\n");
        let error = NetworkSpec::from_yaml(&clash, "net.yaml")
            .expect_err("a clash")
            .to_string();
        assert!(
            error.contains("rest.port") && error.contains("port 30001 of the REST gateway"),
            "{error}"
        );
    }

    #[test]
    fn hosts_place_every_node_and_are_checked() {
        let placed = "name: n\nhosts:\n  - {name: h1, address: 10.0.0.1}\n  - {name: h2, address: h2.example.com}\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com, peers: 2, hosts: [h1, h2]}\norderers:\n  organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n  nodes: 1\n  hosts: [h2]\n";
        let spec = NetworkSpec::from_yaml(placed, "net.yaml").expect("valid");
        assert_eq!(
            spec.peer_host(0, 1).map(|h| h.address.as_str()),
            Some("h2.example.com")
        );
        assert_eq!(spec.orderer_host(0).map(|h| h.name.as_str()), Some("h2"));
        assert_eq!(
            NetworkSpec::from_yaml(&spec.to_yaml(), "again").expect("round trip"),
            spec
        );
        let cases = [
            (
                placed.replace("hosts: [h1, h2]", "hosts: [h1, h3]"),
                "organizations[0].hosts[1]: no host \"h3\" in `hosts:` (h1, h2)",
            ),
            (
                placed.replace("hosts: [h1, h2]", "hosts: [h1]"),
                "organizations[0].hosts: expected 2 host(s), one per peer, got 1",
            ),
            (
                placed.replace("  hosts: [h2]\n", ""),
                "orderers.hosts: expected a host per Raft node (1), since the spec has hosts (h1, h2)",
            ),
            (
                placed.replace("address: h2.example.com", "address: 10.0.0.1"),
                "hosts[1].address: address 10.0.0.1 is given to two hosts",
            ),
            (
                placed.replace("address: h2.example.com", "address: 'a b'"),
                "hosts[1].address: expected an IP address or a DNS name, got \"a b\"",
            ),
        ];
        for (text, expected) in cases {
            let error = NetworkSpec::from_yaml(&text, "net.yaml")
                .expect_err(expected)
                .to_string();
            assert!(error.contains(expected), "{error}\nexpected: {expected}");
        }
        let unplaced = format!("{TWO_ORGS}{ORDERERS}").replace(
            "domain: org2.example.com}",
            "domain: org2.example.com, hosts: [h1]}",
        );
        let error = NetworkSpec::from_yaml(&unplaced, "net.yaml")
            .expect_err("no hosts")
            .to_string();
        assert!(
            error.contains("organizations[1].hosts: names hosts, but the spec has no `hosts:`"),
            "{error}"
        );
    }

    #[test]
    fn channels_default_to_mychannel_with_every_organisation() {
        let spec =
            NetworkSpec::from_yaml(&format!("{TWO_ORGS}{ORDERERS}"), "net.yaml").expect("valid");
        assert_eq!(spec.channels[0].name, DEFAULT_CHANNEL);
        assert_eq!(spec.channel_organizations(&spec.channels[0]).len(), 2);
        assert!(spec.chaincodes.is_empty());
    }

    #[test]
    fn channel_chaincode_and_port_errors_are_precise() {
        let cases = [
            (
                "channels:\n  - {name: mychannel, organizations: [Org1, Org3]}\n".to_owned(),
                "net.yaml: channels[0].organizations[1]: no organisation named \"Org3\" (organisations: Org1, Org2)",
            ),
            (
                "channels:\n  - {name: MyChannel}\n".to_owned(),
                "net.yaml: channels[0].name: expected a channel name",
            ),
            (
                "chaincodes:\n  - {name: basic, channels: [other], launcher: {builtin: basic}}\n".to_owned(),
                "net.yaml: chaincodes[0].channels[0]: no channel named \"other\" (channels: mychannel)",
            ),
            (
                "channels:\n  - {name: mychannel, organizations: [Org1]}\nchaincodes:\n  - name: basic\n    endorsementPolicy: \"AND('Org1MSP.peer','Org2MSP.peer')\"\n    launcher: {builtin: basic}\n".to_owned(),
                "net.yaml: chaincodes[0].endorsementPolicy: principal of \"Org2MSP\" is not an organisation of channel \"mychannel\" (members: Org1MSP)",
            ),
            (
                "chaincodes:\n  - name: basic\n    endorsementPolicy: \"AND('Org1MSP.peer',\"\n    launcher: {builtin: basic}\n".to_owned(),
                "net.yaml: chaincodes[0].endorsementPolicy: policy",
            ),
            (
                "chaincodes:\n  - {name: cc, launcher: {external: {address: nowhere}}}\n".to_owned(),
                "net.yaml: chaincodes[0].launcher.external.address: expected host:port, got \"nowhere\"",
            ),
            (
                "chaincodes:\n  - {name: cc, launcher: {builtin: basic}}\n  - {name: cc, launcher: {builtin: basic}}\n".to_owned(),
                "net.yaml: chaincodes[1].name: chaincode \"cc\" is defined twice",
            ),
        ];
        for (tail, expected) in cases {
            let message = error(&format!("{TWO_ORGS}{ORDERERS}{tail}")).to_string();
            assert!(
                message.starts_with(expected),
                "{message}\n  expected: {expected}"
            );
        }
        let duplicate = format!(
            "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [7051]}}\n  - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [7050]}}\n{ORDERERS}"
        );
        assert_eq!(
            error(&duplicate).to_string(),
            "net.yaml: orderers (default port of node 1): port 7050 of orderer.example.com is already used by peer0.org2.example.com (organizations[1].ports[0])"
        );
        let explicit = format!(
            "{TWO_ORGS}orderers:\n  organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n  nodes: 2\n  ports: [9051, 9052]\n"
        );
        assert_eq!(
            error(&explicit).to_string(),
            "net.yaml: orderers.ports[0]: port 9051 of orderer.example.com is already used by peer0.org2.example.com (organizations[1] (default port of peer0))"
        );
        let count = format!(
            "name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, peers: 2, ports: [7051]}}\n{ORDERERS}"
        );
        assert_eq!(
            error(&count).to_string(),
            "net.yaml: organizations[0].ports: expected 2 port(s), one per peer, got 1"
        );
        let timeout = format!("{TWO_ORGS}{ORDERERS}  batchTimeout: soon\n");
        assert!(
            error(&timeout)
                .to_string()
                .starts_with("net.yaml: orderers.batchTimeout: expected a duration"),
            "{}",
            error(&timeout)
        );
    }

    #[test]
    fn bad_yaml_names_the_file_and_position() {
        let message = error("name: n\norganizations: [\n").to_string();
        assert!(message.starts_with("net.yaml: "), "{message}");
        assert!(
            message.contains("line") || message.contains(':'),
            "{message}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_types_are_reported_with_their_name() {
        let message = error(&format!(
            "name: n\norganizations:\n  - {{name: Org1, mspid: Org1MSP, domain: a.com}}\n{ORDERERS}"
        ))
        .to_string();
        assert!(message.contains("mspid"), "{message}");
        let message = error(&format!("name: n\norganizations:\n  - {{name: Org1, mspId: Org1MSP, domain: a.com, peers: many}}\n{ORDERERS}")).to_string();
        assert!(message.starts_with("net.yaml: "), "{message}");
        assert!(
            message.contains("many") || message.contains("integer") || message.contains("u32"),
            "{message}"
        );
    }

    #[test]
    fn yaml_merge_keys_work_as_in_fabric_configs() {
        let yaml = format!(
            "name: n\norgDefaults: &defaults\n  peers: 2\n  users: 3\norganizations:\n  - <<: *defaults\n    name: Org1\n    mspId: Org1MSP\n    domain: org1.example.com\n{ORDERERS}"
        );
        // Unknown top-level keys are refused, so anchors live on an element instead.
        assert!(NetworkSpec::from_yaml(&yaml, "net.yaml").is_err());
        let yaml = format!(
            "name: n\norganizations:\n  - &org1\n    name: Org1\n    mspId: Org1MSP\n    domain: org1.example.com\n    peers: 2\n  - <<: *org1\n    name: Org2\n    mspId: Org2MSP\n    domain: org2.example.com\n{ORDERERS}"
        );
        let spec = NetworkSpec::from_yaml(&yaml, "net.yaml").expect("merge keys");
        assert_eq!(spec.organizations[1].peers, 2);
    }
}
