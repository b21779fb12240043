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
use weft_protos::peer::ApplicationPolicy;
use weft_protos::peer::application_policy::Type as PolicyType;

use crate::{ClientError, Gateway, Submitted};

/// The system chaincode that manages chaincode definitions.
pub const LIFECYCLE: &str = "_lifecycle";

/// The channel policy a definition without its own policy refers to (what
/// Fabric's CLI sends by default).
pub const DEFAULT_POLICY_REFERENCE: &str = "/Channel/Application/Endorsement";

/// A chaincode definition: what every organisation approves and the
/// channel commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub version: String,
    pub sequence: i64,
    /// A signature policy (`AND('Org1MSP.peer','Org2MSP.peer')`); `None`
    /// refers to the channel's `Endorsement` policy (a majority of orgs).
    pub endorsement_policy: Option<String>,
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
            sequence: definition.sequence,
            name: definition.name.clone(),
            version: definition.version.clone(),
            validation_parameter: definition.validation_parameter()?,
            source: Some(source),
            ..Default::default()
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
        let args = CheckCommitReadinessArgs {
            sequence: definition.sequence,
            name: definition.name.clone(),
            version: definition.version.clone(),
            validation_parameter: definition.validation_parameter()?,
            ..Default::default()
        };
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
        let args = CommitChaincodeDefinitionArgs {
            sequence: definition.sequence,
            name: definition.name.clone(),
            version: definition.version.clone(),
            validation_parameter: definition.validation_parameter()?,
            ..Default::default()
        };
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
