//! Fabric's chaincode lifecycle from the client side (what
//! `peer lifecycle chaincode approveformyorg|checkcommitreadiness|commit|querycommitted`
//! send): proposals to the `_lifecycle` system chaincode, whose argument is
//! the `lifecycle.*Args` message, through the gateway.

use std::collections::BTreeMap;

use weft_protos::Message;
use weft_protos::lifecycle::chaincode_source::{Local, Type as SourceType};
use weft_protos::lifecycle::query_chaincode_definitions_result::ChaincodeDefinition;
use weft_protos::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, ChaincodeSource, CheckCommitReadinessArgs,
    CheckCommitReadinessResult, CommitChaincodeDefinitionArgs, QueryChaincodeDefinitionArgs,
    QueryChaincodeDefinitionResult, QueryChaincodeDefinitionsArgs, QueryChaincodeDefinitionsResult,
};
use weft_protos::peer::application_policy::Type as PolicyType;
use weft_protos::peer::collection_config::Payload as CollectionPayload;
use weft_protos::peer::collection_policy_config::Payload as MemberPolicy;
use weft_protos::peer::{
    ApplicationPolicy, CollectionConfig, CollectionConfigPackage, CollectionPolicyConfig,
    StaticCollectionConfig,
};

use crate::{ClientError, Gateway, Submitted};

/// The system chaincode that manages chaincode definitions.
pub const LIFECYCLE: &str = "_lifecycle";

/// The channel policy a definition without its own policy refers to (what
/// Fabric's CLI sends by default).
pub const DEFAULT_POLICY_REFERENCE: &str = "/Channel/Application/Endorsement";

/// A chaincode definition: what every organisation approves and the
/// channel commits.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub version: String,
    pub sequence: i64,
    /// A signature policy (`AND('Org1MSP.peer','Org2MSP.peer')`); `None`
    /// refers to the channel's `Endorsement` policy (a majority of orgs).
    pub endorsement_policy: Option<String>,
    /// Private data collections (Fabric's `--collections-config`).
    pub collections: Option<CollectionConfigPackage>,
}

/// One collection as Fabric's `collections_config.json` gives it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CollectionJson {
    name: String,
    policy: String,
    #[serde(default)]
    required_peer_count: i32,
    #[serde(default)]
    max_peer_count: i32,
    #[serde(default)]
    block_to_live: u64,
    #[serde(default)]
    member_only_read: bool,
    #[serde(default)]
    member_only_write: bool,
    #[serde(default)]
    endorsement_policy: Option<EndorsementPolicyJson>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndorsementPolicyJson {
    #[serde(default)]
    signature_policy: Option<String>,
    #[serde(default)]
    channel_config_policy: Option<String>,
}

/// Parses a collections configuration in Fabric's JSON format (an array
/// of `{name, policy, requiredPeerCount, maxPeerCount, blockToLive,
/// memberOnlyRead, memberOnlyWrite, endorsementPolicy}`); `source` names
/// the file in errors.
pub fn collections_config(
    json: &str,
    source: &str,
) -> Result<CollectionConfigPackage, ClientError> {
    let setup = |message: String| ClientError::Setup(format!("{source}: {message}"));
    let collections: Vec<CollectionJson> =
        serde_json::from_str(json).map_err(|e| setup(e.to_string()))?;
    let mut config = Vec::with_capacity(collections.len());
    for collection in collections {
        let name = collection.name;
        let member_policy = weft_policy::parse_signature_policy(&collection.policy)
            .map_err(|e| setup(format!("collection {name}: {e}")))?;
        let endorsement_policy = match collection.endorsement_policy {
            None => None,
            Some(EndorsementPolicyJson {
                signature_policy: Some(text),
                channel_config_policy: None,
            }) => Some(ApplicationPolicy {
                r#type: Some(PolicyType::SignaturePolicy(
                    weft_policy::parse_signature_policy(&text)
                        .map_err(|e| setup(format!("collection {name}: endorsementPolicy: {e}")))?,
                )),
            }),
            Some(EndorsementPolicyJson {
                signature_policy: None,
                channel_config_policy: Some(reference),
            }) => Some(ApplicationPolicy {
                r#type: Some(PolicyType::ChannelConfigPolicyReference(reference)),
            }),
            Some(_) => {
                return Err(setup(format!(
                    "collection {name}: endorsementPolicy needs exactly one of signaturePolicy and channelConfigPolicy"
                )));
            }
        };
        config.push(CollectionConfig {
            payload: Some(CollectionPayload::StaticCollectionConfig(
                StaticCollectionConfig {
                    name,
                    member_orgs_policy: Some(CollectionPolicyConfig {
                        payload: Some(MemberPolicy::SignaturePolicy(member_policy)),
                    }),
                    required_peer_count: collection.required_peer_count,
                    maximum_peer_count: collection.max_peer_count,
                    block_to_live: collection.block_to_live,
                    member_only_read: collection.member_only_read,
                    member_only_write: collection.member_only_write,
                    endorsement_policy,
                },
            )),
        });
    }
    Ok(CollectionConfigPackage { config })
}

impl Definition {
    /// The `validation_parameter` bytes: a `protos.ApplicationPolicy`.
    pub fn validation_parameter(&self) -> Result<Vec<u8>, ClientError> {
        let policy = match &self.endorsement_policy {
            Some(text) => PolicyType::SignaturePolicy(
                weft_policy::parse_signature_policy(text)
                    .map_err(|e| ClientError::Setup(format!("endorsement policy {text:?}: {e}")))?,
            ),
            None => PolicyType::ChannelConfigPolicyReference(DEFAULT_POLICY_REFERENCE.into()),
        };
        Ok(ApplicationPolicy {
            r#type: Some(policy),
        }
        .encode_to_vec())
    }
}

/// A `lifecycle.*Args` message carrying `definition`'s fields (the caller's
/// function returns its error if the policy does not parse).
macro_rules! definition_args {
    ($type:ident, $definition:expr) => {
        $type {
            sequence: $definition.sequence,
            name: $definition.name.clone(),
            version: $definition.version.clone(),
            validation_parameter: $definition.validation_parameter()?,
            collections: $definition.collections.clone(),
            ..Default::default()
        }
    };
}

fn call(function: &str, argument: impl Message) -> Vec<Vec<u8>> {
    vec![function.as_bytes().to_vec(), argument.encode_to_vec()]
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, ClientError> {
    M::decode(bytes)
        .map_err(|e| ClientError::Setup(format!("{LIFECYCLE} answered a bad {what}: {e}")))
}

impl Gateway {
    /// Approves `definition` for this identity's organisation (the identity
    /// must be one of its admins), naming the package its peers run.
    pub async fn approve_definition(
        &self,
        channel: &str,
        definition: &Definition,
        package_id: Option<&str>,
    ) -> Result<Submitted, ClientError> {
        let source = ChaincodeSource {
            r#type: Some(match package_id {
                Some(id) => SourceType::LocalPackage(Local {
                    package_id: id.to_owned(),
                }),
                None => SourceType::Unavailable(Default::default()),
            }),
        };
        let args = ApproveChaincodeDefinitionForMyOrgArgs {
            source: Some(source),
            ..definition_args!(ApproveChaincodeDefinitionForMyOrgArgs, definition)
        };
        self.submit(
            channel,
            LIFECYCLE,
            &call("ApproveChaincodeDefinitionForMyOrg", args),
        )
        .await
    }

    /// Which organisations have approved exactly `definition`.
    pub async fn commit_readiness(
        &self,
        channel: &str,
        definition: &Definition,
    ) -> Result<BTreeMap<String, bool>, ClientError> {
        let args = definition_args!(CheckCommitReadinessArgs, definition);
        let payload = self
            .evaluate(channel, LIFECYCLE, &call("CheckCommitReadiness", args))
            .await?;
        let result: CheckCommitReadinessResult = decode(&payload, "CheckCommitReadinessResult")?;
        Ok(result.approvals.into_iter().collect())
    }

    /// Commits `definition` on the channel; the gateway gathers endorsements
    /// from enough organisations, each of which must have approved it.
    pub async fn commit_definition(
        &self,
        channel: &str,
        definition: &Definition,
    ) -> Result<Submitted, ClientError> {
        let args = definition_args!(CommitChaincodeDefinitionArgs, definition);
        self.submit(channel, LIFECYCLE, &call("CommitChaincodeDefinition", args))
            .await
    }

    /// The committed definition of chaincode `name`, if there is one.
    pub async fn committed_definition(
        &self,
        channel: &str,
        name: &str,
    ) -> Result<Option<QueryChaincodeDefinitionResult>, ClientError> {
        let args = QueryChaincodeDefinitionArgs { name: name.into() };
        match self
            .evaluate(channel, LIFECYCLE, &call("QueryChaincodeDefinition", args))
            .await
        {
            Ok(payload) => decode(&payload, "QueryChaincodeDefinitionResult").map(Some),
            Err(ClientError::Gateway { message, .. })
                if message.contains(&format!("namespace {name} is not defined")) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Every committed definition on the channel.
    pub async fn committed_definitions(
        &self,
        channel: &str,
    ) -> Result<Vec<ChaincodeDefinition>, ClientError> {
        let payload = self
            .evaluate(
                channel,
                LIFECYCLE,
                &call(
                    "QueryChaincodeDefinitions",
                    QueryChaincodeDefinitionsArgs {},
                ),
            )
            .await?;
        let result: QueryChaincodeDefinitionsResult =
            decode(&payload, "QueryChaincodeDefinitionsResult")?;
        Ok(result.chaincode_definitions)
    }
}

/// A peer's Endorser, as an admin of its organisation: the channel-less
/// `_lifecycle` functions `peer lifecycle chaincode install|queryinstalled|
/// getinstalledpackage` call (not through the gateway: they act on that
/// one peer).
#[derive(Clone)]
pub struct PeerAdmin {
    client: weft_protos::peer::endorser_client::EndorserClient<tonic::transport::Channel>,
    gateway: Gateway,
}

impl std::fmt::Debug for PeerAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAdmin").finish()
    }
}

/// An installed package: its id and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub package_id: String,
    pub label: String,
}

impl PeerAdmin {
    /// A lazily connecting client for the peer at `host:port`, trusting the
    /// PEM `ca` for its TLS certificate, signing as `identity`.
    pub fn connect(
        endpoint: &str,
        ca: Vec<u8>,
        identity: weft_material::SigningIdentity,
    ) -> Result<Self, ClientError> {
        // One connection: the gateway's signing, the peer's endorser.
        let gateway = Gateway::connect_with_ca(endpoint, ca, identity)?;
        Ok(PeerAdmin {
            client: weft_protos::peer::endorser_client::EndorserClient::new(
                gateway.channel.clone(),
            )
            .max_decoding_message_size(128 * 1024 * 1024)
            .max_encoding_message_size(128 * 1024 * 1024),
            gateway,
        })
    }

    async fn call(&self, function: &str, argument: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let args = vec![function.as_bytes().to_vec(), argument];
        let builder = self.gateway.builder("", LIFECYCLE, &args);
        let proposal = builder.signed_proposal(self.gateway.identity.as_ref())?;
        let mut request = tonic::Request::new(proposal);
        // Installing a Node package runs `npm install` on the peer.
        request.set_timeout(std::time::Duration::from_secs(600));
        let response = self
            .client
            .clone()
            .process_proposal(request)
            .await
            .map_err(|s| ClientError::from_status(function_step(function), s))?
            .into_inner()
            .response
            .unwrap_or_default();
        if response.status != 200 {
            return Err(ClientError::Refused {
                status: response.status,
                message: response.message,
            });
        }
        Ok(response.payload)
    }

    /// Installs an install package (`.tar.gz`); returns its package id and label.
    pub async fn install(&self, package: Vec<u8>) -> Result<InstalledPackage, ClientError> {
        let args = weft_protos::lifecycle::InstallChaincodeArgs {
            chaincode_install_package: package,
        };
        let result: weft_protos::lifecycle::InstallChaincodeResult = decode(
            &self.call("InstallChaincode", args.encode_to_vec()).await?,
            "InstallChaincodeResult",
        )?;
        Ok(InstalledPackage {
            package_id: result.package_id,
            label: result.label,
        })
    }

    /// The packages installed on the peer.
    pub async fn installed(&self) -> Result<Vec<InstalledPackage>, ClientError> {
        let args = weft_protos::lifecycle::QueryInstalledChaincodesArgs {};
        let result: weft_protos::lifecycle::QueryInstalledChaincodesResult = decode(
            &self
                .call("QueryInstalledChaincodes", args.encode_to_vec())
                .await?,
            "QueryInstalledChaincodesResult",
        )?;
        Ok(result
            .installed_chaincodes
            .into_iter()
            .map(|c| InstalledPackage {
                package_id: c.package_id,
                label: c.label,
            })
            .collect())
    }

    /// The bytes of an installed package.
    pub async fn installed_package(&self, package_id: &str) -> Result<Vec<u8>, ClientError> {
        let args = weft_protos::lifecycle::GetInstalledChaincodePackageArgs {
            package_id: package_id.to_owned(),
        };
        let result: weft_protos::lifecycle::GetInstalledChaincodePackageResult = decode(
            &self
                .call("GetInstalledChaincodePackage", args.encode_to_vec())
                .await?,
            "GetInstalledChaincodePackageResult",
        )?;
        Ok(result.chaincode_install_package)
    }
}

fn function_step(function: &str) -> &'static str {
    match function {
        "InstallChaincode" => "install",
        "QueryInstalledChaincodes" => "query installed",
        _ => "get installed package",
    }
}
