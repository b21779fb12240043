//! Building a channel's genesis block with Fabric's config tree layout and
//! default policies (those of Fabric's test-network `configtx.yaml`).

use std::collections::BTreeMap;
use std::time::Duration;

use weft_crypto::sha256;
use weft_policy::{ImplicitMeta, MetaRule, parse_signature_policy};
use weft_protos::common::{
    BlockDataHashingStructure, Capabilities, Capability, ChannelHeader, Config, ConfigEnvelope,
    ConfigGroup, ConfigPolicy, ConfigValue, Envelope, HashingAlgorithm, HeaderType, LastConfig,
    Metadata, OrdererAddresses, OrdererBlockMetadata, Payload, Policy, SignatureHeader,
    policy::PolicyType,
};
use weft_protos::msp::{FabricMspConfig, MspConfig};
use weft_protos::orderer::{BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType};
use weft_protos::{Message, Timestamp, etcdraft};
use weft_protoutil::{MetadataSlot, new_block};

use crate::{APPLICATION_GROUP, ChannelConfig, ConfigError, ORDERER_GROUP, format_duration};
use weft_protos::common::Block;

/// An organisation of the channel.
#[derive(Debug, Clone)]
pub struct OrgProfile {
    pub msp_id: String,
    pub msp: FabricMspConfig,
    /// Orderer endpoints (`host:port`), for orderer organisations.
    pub endpoints: Vec<String>,
}

/// A Raft consenter: where it listens and its TLS certificates (PEM).
#[derive(Debug, Clone)]
pub struct ConsenterProfile {
    pub host: String,
    pub port: u32,
    pub client_tls_cert: Vec<u8>,
    pub server_tls_cert: Vec<u8>,
}

/// Fabric's `BatchSize` and `BatchTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_message_count: u32,
    pub absolute_max_bytes: u32,
    pub preferred_max_bytes: u32,
    pub timeout: Duration,
}

impl Default for BatchSettings {
    /// Fabric's test-network values: 10 messages, 99 MB, 512 KB, 2 s.
    fn default() -> Self {
        Self {
            max_message_count: 10,
            absolute_max_bytes: 99 * 1024 * 1024,
            preferred_max_bytes: 512 * 1024,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Everything a channel's genesis block says.
#[derive(Debug, Clone)]
pub struct ChannelProfile {
    pub channel_id: String,
    pub application_orgs: Vec<OrgProfile>,
    pub orderer_orgs: Vec<OrgProfile>,
    pub consenters: Vec<ConsenterProfile>,
    pub batch: BatchSettings,
    /// The channel header timestamp.
    pub timestamp_seconds: i64,
}

fn signature_policy(text: &str) -> Result<ConfigPolicy, ConfigError> {
    let envelope = parse_signature_policy(text).map_err(|e| ConfigError::Policy {
        path: text.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(config_policy(
        PolicyType::Signature,
        envelope.encode_to_vec(),
    ))
}

fn implicit_meta(rule: MetaRule, sub_policy: &str) -> ConfigPolicy {
    let meta = ImplicitMeta {
        rule,
        sub_policy: sub_policy.to_owned(),
    };
    config_policy(PolicyType::ImplicitMeta, meta.to_proto().encode_to_vec())
}

fn config_policy(kind: PolicyType, value: Vec<u8>) -> ConfigPolicy {
    ConfigPolicy {
        version: 0,
        policy: Some(Policy {
            r#type: kind as i32,
            value,
        }),
        mod_policy: "Admins".into(),
    }
}

fn value(message: &impl Message) -> ConfigValue {
    ConfigValue {
        version: 0,
        value: message.encode_to_vec(),
        mod_policy: "Admins".into(),
    }
}

fn capabilities(name: &str) -> ConfigValue {
    value(&Capabilities {
        capabilities: BTreeMap::from([(name.to_owned(), Capability {})]),
    })
}

fn group(
    groups: BTreeMap<String, ConfigGroup>,
    values: BTreeMap<String, ConfigValue>,
    policies: BTreeMap<String, ConfigPolicy>,
) -> ConfigGroup {
    ConfigGroup {
        version: 0,
        groups,
        values,
        policies,
        mod_policy: "Admins".into(),
    }
}

fn org_group(org: &OrgProfile, peer_org: bool) -> Result<ConfigGroup, ConfigError> {
    if org.msp_id.is_empty()
        || !org
            .msp_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ConfigError::Msp {
            msp_id: org.msp_id.clone(),
            reason: "an MSP id is letters, digits, '-', '_' or '.'".into(),
        });
    }
    let id = &org.msp_id;
    let mut values = BTreeMap::from([(
        "MSP".to_owned(),
        value(&MspConfig {
            r#type: 0,
            config: org.msp.encode_to_vec(),
        }),
    )]);
    let policies = if peer_org {
        BTreeMap::from([
            (
                "Readers".to_owned(),
                signature_policy(&format!("OR('{id}.admin', '{id}.peer', '{id}.client')"))?,
            ),
            (
                "Writers".to_owned(),
                signature_policy(&format!("OR('{id}.admin', '{id}.client')"))?,
            ),
            (
                "Admins".to_owned(),
                signature_policy(&format!("OR('{id}.admin')"))?,
            ),
            (
                "Endorsement".to_owned(),
                signature_policy(&format!("OR('{id}.peer')"))?,
            ),
        ])
    } else {
        values.insert(
            "Endpoints".to_owned(),
            value(&OrdererAddresses {
                addresses: org.endpoints.clone(),
            }),
        );
        BTreeMap::from([
            (
                "Readers".to_owned(),
                signature_policy(&format!("OR('{id}.member')"))?,
            ),
            (
                "Writers".to_owned(),
                signature_policy(&format!("OR('{id}.member')"))?,
            ),
            (
                "Admins".to_owned(),
                signature_policy(&format!("OR('{id}.admin')"))?,
            ),
        ])
    };
    Ok(group(BTreeMap::new(), values, policies))
}

fn standard_policies(extra: &[(&str, MetaRule, &str)]) -> BTreeMap<String, ConfigPolicy> {
    let mut policies = BTreeMap::from([
        (
            "Readers".to_owned(),
            implicit_meta(MetaRule::Any, "Readers"),
        ),
        (
            "Writers".to_owned(),
            implicit_meta(MetaRule::Any, "Writers"),
        ),
        (
            "Admins".to_owned(),
            implicit_meta(MetaRule::Majority, "Admins"),
        ),
    ]);
    for (name, rule, sub_policy) in extra {
        policies.insert((*name).to_owned(), implicit_meta(*rule, sub_policy));
    }
    policies
}

/// The `common.Config` a profile describes.
pub fn config(profile: &ChannelProfile) -> Result<Config, ConfigError> {
    let application = group(
        profile
            .application_orgs
            .iter()
            .map(|org| Ok((org.msp_id.clone(), org_group(org, true)?)))
            .collect::<Result<_, ConfigError>>()?,
        BTreeMap::from([("Capabilities".to_owned(), capabilities("V2_5"))]),
        standard_policies(&[
            ("Endorsement", MetaRule::Majority, "Endorsement"),
            ("LifecycleEndorsement", MetaRule::Majority, "Endorsement"),
        ]),
    );
    let batch = &profile.batch;
    let raft = etcdraft::ConfigMetadata {
        consenters: profile
            .consenters
            .iter()
            .map(|c| etcdraft::Consenter {
                host: c.host.clone(),
                port: c.port,
                client_tls_cert: c.client_tls_cert.clone(),
                server_tls_cert: c.server_tls_cert.clone(),
            })
            .collect(),
        options: Some(etcdraft::Options {
            tick_interval: "500ms".into(),
            election_tick: 10,
            heartbeat_tick: 1,
            max_inflight_blocks: 5,
            snapshot_interval_size: 16 * 1024 * 1024,
        }),
    };
    let orderer = group(
        profile
            .orderer_orgs
            .iter()
            .map(|org| Ok((org.msp_id.clone(), org_group(org, false)?)))
            .collect::<Result<_, ConfigError>>()?,
        BTreeMap::from([
            (
                "ConsensusType".to_owned(),
                value(&ConsensusType {
                    r#type: "etcdraft".into(),
                    metadata: raft.encode_to_vec(),
                    state: 0,
                }),
            ),
            (
                "BatchSize".to_owned(),
                value(&BatchSize {
                    max_message_count: batch.max_message_count,
                    absolute_max_bytes: batch.absolute_max_bytes,
                    preferred_max_bytes: batch.preferred_max_bytes,
                }),
            ),
            (
                "BatchTimeout".to_owned(),
                value(&BatchTimeout {
                    timeout: format_duration(batch.timeout),
                }),
            ),
            (
                "ChannelRestrictions".to_owned(),
                value(&ChannelRestrictions { max_count: 0 }),
            ),
            ("Capabilities".to_owned(), capabilities("V2_0")),
        ]),
        standard_policies(&[("BlockValidation", MetaRule::Any, "Writers")]),
    );
    let channel = group(
        BTreeMap::from([
            (APPLICATION_GROUP.to_owned(), application),
            (ORDERER_GROUP.to_owned(), orderer),
        ]),
        BTreeMap::from([
            (
                "HashingAlgorithm".to_owned(),
                value(&HashingAlgorithm {
                    name: "SHA256".into(),
                }),
            ),
            (
                "BlockDataHashingStructure".to_owned(),
                value(&BlockDataHashingStructure { width: u32::MAX }),
            ),
            ("Capabilities".to_owned(), capabilities("V3_0")),
        ]),
        standard_policies(&[]),
    );
    Ok(Config {
        sequence: 0,
        channel_group: Some(channel),
    })
}

/// The CONFIG envelope carrying `config` for `channel_id`, unsigned (as in a
/// genesis block).
pub fn config_envelope_bytes(channel_id: &str, config: Config, timestamp_seconds: i64) -> Vec<u8> {
    let data = ConfigEnvelope {
        config: Some(config),
        last_update: None,
    }
    .encode_to_vec();
    let channel_header = ChannelHeader {
        r#type: HeaderType::Config as i32,
        version: 1,
        timestamp: Some(Timestamp {
            seconds: timestamp_seconds,
            nanos: 0,
        }),
        channel_id: channel_id.to_owned(),
        ..Default::default()
    };
    let signature_header = SignatureHeader {
        creator: Vec::new(),
        // Deterministic and unique per configuration.
        nonce: sha256(&data)[..24].to_vec(),
    };
    let payload = Payload {
        header: Some(weft_protos::common::Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: signature_header.encode_to_vec(),
        }),
        data,
    };
    Envelope {
        payload: payload.encode_to_vec(),
        signature: Vec::new(),
    }
    .encode_to_vec()
}

/// Block 0 of a channel: one CONFIG envelope, LAST_CONFIG pointing at itself.
pub fn genesis_block(profile: &ChannelProfile) -> Result<Block, ConfigError> {
    weft_protoutil::check_channel_id(&profile.channel_id)
        .map_err(|e| ConfigError::malformed(format!("channel id {:?}", profile.channel_id), e))?;
    let envelope = config_envelope_bytes(
        &profile.channel_id,
        config(profile)?,
        profile.timestamp_seconds,
    );
    let mut block = new_block(0, Vec::new(), vec![envelope]);
    if let Some(metadata) = block.metadata.as_mut() {
        metadata.metadata[MetadataSlot::Signatures as usize] = Metadata {
            value: OrdererBlockMetadata {
                last_config: Some(LastConfig { index: 0 }),
                consenter_metadata: Vec::new(),
            }
            .encode_to_vec(),
            signatures: Vec::new(),
        }
        .encode_to_vec();
        metadata.metadata[MetadataSlot::LastConfig as usize] = Metadata {
            value: LastConfig { index: 0 }.encode_to_vec(),
            signatures: Vec::new(),
        }
        .encode_to_vec();
    }
    ChannelConfig::from_block(&block)?;
    Ok(block)
}
