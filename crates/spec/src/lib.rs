//! The network spec: one YAML document that describes a weft network.
//!
//! This version covers what crypto-material generation needs: the peer
//! organisations (MSP ID, domain, how many peers and users) and the ordering
//! service's organisation and node count. Channels, chaincodes and ports join
//! it with `weft up`. Errors name the file, the place in the document and what
//! was expected.
//!
//! Invariant: parsing and validation only; no file system (the caller reads
//! the file and passes its name for messages).

use std::collections::BTreeSet;

use serde::Deserialize;

/// The spec used when none is given.
pub const DEFAULT_SPEC_YAML: &str = include_str!("default-network.yaml");

/// Limits that keep a typo from generating thousands of identities.
pub const PEERS_PER_ORGANIZATION_MAX: u32 = 32;
pub const USERS_PER_ORGANIZATION_MAX: u32 = 1000;
pub const ORDERER_NODES_MAX: u32 = 9;

/// A network spec that parsed and passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// A name for the network, used in generated files.
    pub name: String,
    /// Peer organisations.
    pub organizations: Vec<OrganizationSpec>,
    /// The ordering service.
    pub orderers: OrdererSpec,
}

/// A peer organisation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

/// The ordering service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdererSpec {
    pub organization: OrdererOrganizationSpec,
    /// Number of Raft nodes: `orderer`, `orderer2`, `orderer3`, …
    #[serde(default = "three")]
    pub nodes: u32,
}

/// The organisation that runs the ordering service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdererOrganizationSpec {
    pub name: String,
    pub msp_id: String,
    pub domain: String,
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
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

    /// Parses and validates a spec. `file` names the source in error messages.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, SpecError> {
        let spec: NetworkSpec = serde_saphyr::from_str(text).map_err(|e| SpecError {
            file: file.to_owned(),
            location: "document".to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
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
        Ok(())
    }
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

    fn error(yaml: &str) -> SpecError {
        NetworkSpec::from_yaml(yaml, "net.yaml").expect_err("spec must be refused")
    }

    const ORDERERS: &str =
        "orderers:\n  organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n";

    #[test]
    fn errors_name_file_path_and_expectation() {
        let cases = [
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
