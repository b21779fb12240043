//! Channel configuration, as Fabric carries it: a `common.Config` tree inside
//! the CONFIG envelope of a channel's genesis block.
//!
//! [`genesis_block`] builds that block from a [`ChannelProfile`] (the orgs and
//! their MSPs, the Raft consenters, batch settings, Fabric's default
//! policies). [`ChannelConfig::from_block`] reads any config block back into
//! what orderers and peers act on: the MSPs, the policy tree (`/Channel/Writers`,
//! `/Channel/Application/Org1MSP/Admins`...), batch size and timeout, consenters
//! and orderer endpoints.
//!
//! Invariant: no clock, no file system; "now" is an argument wherever
//! certificates are checked.

mod blocks;
mod genesis;
mod policies;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weft_msp::{Identity, Msp, MspManager, MspManagerConfig};
use weft_protos::common::{
    Block, Config, ConfigEnvelope, ConfigGroup, Envelope, HeaderType, OrdererAddresses, Payload,
};
use weft_protos::msp::{FabricMspConfig, MspConfig};
use weft_protos::orderer::{BatchSize, BatchTimeout, ConsensusType};
use weft_protos::{Message, etcdraft};

pub use blocks::{BLOCK_VALIDATION_POLICY, sign_block, verify_block_signatures};
pub use genesis::{
    BatchSettings, ChannelProfile, ConsenterProfile, OrgProfile, config as profile_config,
    config_envelope_bytes, genesis_block,
};
pub use policies::{PolicyDenied, PolicyTree};
pub use weft_protoutil::{format_duration, parse_duration};

/// Well-known group names of the config tree.
pub const CHANNEL_GROUP: &str = "Channel";
pub const APPLICATION_GROUP: &str = "Application";
pub const ORDERER_GROUP: &str = "Orderer";

/// Why a block is not a usable channel configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not a config block: {0}")]
    NotConfig(String),
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("MSP {msp_id}: {reason}")]
    Msp { msp_id: String, reason: String },
    #[error("policy {path}: {reason}")]
    Policy { path: String, reason: String },
}

impl ConfigError {
    fn malformed(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ConfigError::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// One Raft consenter as the channel config names it. Its Raft node id is its
/// position in the consenter list, plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consenter {
    pub id: u64,
    pub host: String,
    pub port: u32,
    /// PEM, as in Fabric's `etcdraft.Consenter`.
    pub client_tls_cert: Vec<u8>,
    pub server_tls_cert: Vec<u8>,
}

impl Consenter {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A channel's configuration, parsed and ready to enforce.
#[derive(Debug)]
pub struct ChannelConfig {
    pub channel_id: String,
    pub sequence: u64,
    pub msps: Arc<MspManager>,
    pub policies: PolicyTree,
    pub batch_size: BatchSize,
    pub batch_timeout: Duration,
    pub consensus_type: String,
    pub consenters: Vec<Consenter>,
    /// MSP ids of the application (peer) organisations.
    pub application_orgs: Vec<String>,
    /// Orderer endpoints, per orderer organisation.
    pub orderer_endpoints: BTreeMap<String, Vec<String>>,
    /// The raw tree, for whoever needs a value not surfaced here.
    pub config: Config,
}

impl ChannelConfig {
    /// Reads the configuration out of a config block (a genesis block, or a
    /// later block whose only envelope is of type CONFIG).
    pub fn from_block(block: &Block) -> Result<Self, ConfigError> {
        let (channel_id, envelope) = config_envelope(block)?;
        let config = envelope
            .config
            .ok_or_else(|| ConfigError::NotConfig("CONFIG envelope without a config".into()))?;
        Self::from_config(channel_id, config)
    }

    pub fn from_config(channel_id: String, config: Config) -> Result<Self, ConfigError> {
        weft_protoutil::check_channel_id(&channel_id)
            .map_err(|e| ConfigError::malformed("channel id", e))?;
        let root = config
            .channel_group
            .as_ref()
            .ok_or_else(|| ConfigError::malformed("config", "no channel group"))?;

        let mut msps = Vec::new();
        let mut application_orgs = Vec::new();
        let mut orderer_endpoints = BTreeMap::new();
        if let Some(application) = root.groups.get(APPLICATION_GROUP) {
            for (name, org) in &application.groups {
                let msp = org_msp(name, org)?;
                application_orgs.push(msp.id().to_owned());
                msps.push(msp);
            }
        }
        let orderer = root
            .groups
            .get(ORDERER_GROUP)
            .ok_or_else(|| ConfigError::malformed("config", "no Orderer group"))?;
        for (name, org) in &orderer.groups {
            let msp = org_msp(name, org)?;
            let endpoints = match org.values.get("Endpoints") {
                Some(value) => {
                    OrdererAddresses::decode(value.value.as_slice())
                        .map_err(|e| ConfigError::malformed(format!("{name} Endpoints"), e))?
                        .addresses
                }
                None => Vec::new(),
            };
            orderer_endpoints.insert(msp.id().to_owned(), endpoints);
            msps.push(msp);
        }

        let batch_size: BatchSize = decode_value(orderer, "BatchSize")?;
        if batch_size.max_message_count == 0 {
            return Err(ConfigError::malformed(
                "BatchSize",
                "MaxMessageCount must be at least 1",
            ));
        }
        if batch_size.absolute_max_bytes == 0
            || batch_size.preferred_max_bytes == 0
            || batch_size.preferred_max_bytes > batch_size.absolute_max_bytes
        {
            return Err(ConfigError::malformed(
                "BatchSize",
                "need 0 < PreferredMaxBytes <= AbsoluteMaxBytes",
            ));
        }
        let timeout: BatchTimeout = decode_value(orderer, "BatchTimeout")?;
        let batch_timeout = parse_duration(&timeout.timeout)
            .map_err(|e| ConfigError::malformed("BatchTimeout", e))?;
        if batch_timeout.is_zero() {
            return Err(ConfigError::malformed("BatchTimeout", "must be positive"));
        }
        let consensus: ConsensusType = decode_value(orderer, "ConsensusType")?;
        let metadata = etcdraft::ConfigMetadata::decode(consensus.metadata.as_slice())
            .map_err(|e| ConfigError::malformed("ConsensusType metadata", e))?;
        let consenters = metadata
            .consenters
            .into_iter()
            .enumerate()
            .map(|(index, c)| Consenter {
                id: index as u64 + 1,
                host: c.host,
                port: c.port,
                client_tls_cert: c.client_tls_cert,
                server_tls_cert: c.server_tls_cert,
            })
            .collect::<Vec<_>>();
        if consensus.r#type == "etcdraft" && consenters.is_empty() {
            return Err(ConfigError::malformed(
                "ConsensusType metadata",
                "etcdraft needs at least one consenter",
            ));
        }

        let policies = PolicyTree::compile(root)?;
        Ok(Self {
            channel_id,
            sequence: config.sequence,
            msps: Arc::new(MspManager::new(msps, MspManagerConfig::default())),
            policies,
            batch_size,
            batch_timeout,
            consensus_type: consensus.r#type,
            consenters,
            application_orgs,
            orderer_endpoints,
            config,
        })
    }

    /// Every organisation's MSP definition (application and orderer), by MSP id.
    pub fn msp_configs(&self) -> BTreeMap<String, FabricMspConfig> {
        let mut out = BTreeMap::new();
        let Some(root) = self.config.channel_group.as_ref() else {
            return out;
        };
        for group in [APPLICATION_GROUP, ORDERER_GROUP] {
            let Some(section) = root.groups.get(group) else {
                continue;
            };
            for org in section.groups.values() {
                let Some(value) = org.values.get("MSP") else {
                    continue;
                };
                if let Ok(wrapper) = MspConfig::decode(value.value.as_slice())
                    && let Ok(config) = FabricMspConfig::decode(wrapper.config.as_slice())
                {
                    out.insert(config.name.clone(), config);
                }
            }
        }
        out
    }

    /// Checks that `creator` is a valid identity of one of the channel's MSPs
    /// at `now`, that it signed `data` with `signature`, and that it satisfies
    /// the policy at `path` (`/Channel/Writers`...).
    pub fn authorize(
        &self,
        path: &str,
        creator: &[u8],
        data: &[u8],
        signature: &[u8],
        now_unix_seconds: i64,
    ) -> Result<Arc<Identity>, PolicyDenied> {
        let identity = self
            .msps
            .validate(creator, now_unix_seconds)
            .map_err(|e| PolicyDenied::Identity(e.to_string()))?;
        identity
            .verify(data, signature)
            .map_err(|e| PolicyDenied::Signature(e.to_string()))?;
        self.policies
            .evaluate(path, std::slice::from_ref(&identity))?;
        Ok(identity)
    }
}

/// The channel id and config envelope of a config block.
pub fn config_envelope(block: &Block) -> Result<(String, ConfigEnvelope), ConfigError> {
    let data = block
        .data
        .as_ref()
        .filter(|d| d.data.len() == 1)
        .ok_or_else(|| {
            ConfigError::NotConfig("a config block holds exactly one envelope".into())
        })?;
    let envelope = Envelope::decode(data.data[0].as_slice())
        .map_err(|e| ConfigError::malformed("envelope", e))?;
    let payload = Payload::decode(envelope.payload.as_slice())
        .map_err(|e| ConfigError::malformed("payload", e))?;
    let header = payload
        .header
        .ok_or_else(|| ConfigError::malformed("payload", "no header"))?;
    let channel_header =
        weft_protos::common::ChannelHeader::decode(header.channel_header.as_slice())
            .map_err(|e| ConfigError::malformed("channel header", e))?;
    if channel_header.r#type != HeaderType::Config as i32 {
        return Err(ConfigError::NotConfig(format!(
            "envelope type is {}, not CONFIG",
            channel_header.r#type
        )));
    }
    // The id names directories on every node that joins: Fabric's rule.
    weft_protoutil::check_channel_id(&channel_header.channel_id)
        .map_err(|e| ConfigError::malformed("channel header", e))?;
    let config = ConfigEnvelope::decode(payload.data.as_slice())
        .map_err(|e| ConfigError::malformed("config envelope", e))?;
    Ok((channel_header.channel_id, config))
}

fn org_msp(name: &str, org: &ConfigGroup) -> Result<Msp, ConfigError> {
    let value = org.values.get("MSP").ok_or_else(|| ConfigError::Msp {
        msp_id: name.to_owned(),
        reason: "organisation group has no MSP value".into(),
    })?;
    let msp_error = |reason: String| ConfigError::Msp {
        msp_id: name.to_owned(),
        reason,
    };
    let wrapper =
        MspConfig::decode(value.value.as_slice()).map_err(|e| msp_error(e.to_string()))?;
    if wrapper.r#type != 0 {
        return Err(msp_error(format!(
            "MSP type {} is not supported (only FABRIC, 0)",
            wrapper.r#type
        )));
    }
    let config =
        FabricMspConfig::decode(wrapper.config.as_slice()).map_err(|e| msp_error(e.to_string()))?;
    Msp::from_config(&config).map_err(|e| msp_error(e.to_string()))
}

fn decode_value<M: Message + Default>(group: &ConfigGroup, key: &str) -> Result<M, ConfigError> {
    let value = group
        .values
        .get(key)
        .ok_or_else(|| ConfigError::malformed("Orderer group", format!("no {key} value")))?;
    M::decode(value.value.as_slice()).map_err(|e| ConfigError::malformed(key, e))
}
