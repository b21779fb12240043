//! Fabric's chaincode lifecycle, the `_lifecycle` system chaincode: each
//! organisation's admin approves a chaincode definition for their org, and
//! once enough organisations have approved, the definition is committed on
//! the channel. The committed definitions are what the peer runs and what
//! the committer validates against.
//!
//! State, in the `_lifecycle` namespace of the channel:
//! - `namespaces/<name>`: the committed definition
//!   (`lifecycle.CommitChaincodeDefinitionArgs`, as the commit sent it);
//! - `approvals/<MSP id>/<name>`: that organisation's latest approval
//!   (`lifecycle.ApproveChaincodeDefinitionForMyOrgArgs`, including the
//!   package its peers run). Only a peer of that organisation may endorse a
//!   write of it ([`EndorsementPolicies::set_org_owned`]).
//!
//! A commit is endorsed under the channel's `LifecycleEndorsement` policy (a
//! majority of the organisations' peers), and each endorsing peer refuses it
//! unless its own organisation approved the same definition, so a committed
//! definition always carries a majority of approvals — Fabric's rule.
//! Decisions: approvals are public state rather than Fabric's
//! per-organisation private collections, so every member sees which package
//! id an organisation approved; `init_required` is refused at approval.
//! A definition's collections are checked at approval (names, member
//! organisations of the channel, peer counts, policies).

use std::collections::BTreeMap;

use prost::Message;
use weft_ledger::{EndorsementPolicies, Ledger};
use weft_policy::SignaturePolicy;
use weft_protos::lifecycle::chaincode_source::Type as SourceType;
use weft_protos::lifecycle::check_commit_readiness_result::Mismatches;
use weft_protos::lifecycle::query_chaincode_definitions_result::ChaincodeDefinition;
use weft_protos::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, ApproveChaincodeDefinitionForMyOrgResult,
    CheckCommitReadinessArgs, CheckCommitReadinessResult, CommitChaincodeDefinitionArgs,
    CommitChaincodeDefinitionResult, QueryApprovedChaincodeDefinitionArgs,
    QueryApprovedChaincodeDefinitionResult, QueryChaincodeDefinitionArgs,
    QueryChaincodeDefinitionResult, QueryChaincodeDefinitionsResult,
};
use weft_protos::peer::application_policy::Type as PolicyType;
use weft_protos::peer::{ApplicationPolicy, ChaincodeInput, CollectionConfigPackage, Response};

use crate::private::{self, Collection};
use crate::simulator::Simulator;

/// The system chaincode's name (and namespace).
pub const LIFECYCLE: &str = "_lifecycle";
const DEFINITIONS: &str = "namespaces/";
const APPROVALS: &str = "approvals/";

/// `_lifecycle`'s functions, as Fabric's clients call them.
pub const APPROVE: &str = "ApproveChaincodeDefinitionForMyOrg";
pub const COMMIT: &str = "CommitChaincodeDefinition";
pub const CHECK_COMMIT_READINESS: &str = "CheckCommitReadiness";
pub const QUERY_DEFINITION: &str = "QueryChaincodeDefinition";
pub const QUERY_DEFINITIONS: &str = "QueryChaincodeDefinitions";
pub const QUERY_APPROVED: &str = "QueryApprovedChaincodeDefinition";

/// A chaincode definition committed on a channel, as this peer runs it.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub sequence: i64,
    pub version: String,
    pub policy: SignaturePolicy,
    /// The package this peer's organisation approved for this sequence
    /// (none: the organisation has not approved it, so its peers cannot run
    /// it, though they validate its transactions).
    pub package_id: Option<String>,
    /// Its private data collections, implicit ones included.
    pub collections: BTreeMap<String, Collection>,
}

/// Every committed definition of a channel and the endorsement policies the
/// committer validates with, read from the channel's state.
#[derive(Debug, Default)]
pub struct Definitions {
    pub chaincodes: BTreeMap<String, Definition>,
    pub policies: EndorsementPolicies,
}

impl Definitions {
    /// Reads the committed definitions; `my_msp` is this peer's
    /// organisation, `orgs` the channel's application organisations.
    pub fn read(ledger: &Ledger, my_msp: &str, orgs: &[String]) -> Result<Definitions, String> {
        let mut policies = EndorsementPolicies::new();
        policies.set(LIFECYCLE, majority(orgs));
        policies.set_org_owned(LIFECYCLE, APPROVALS);
        let mut chaincodes = BTreeMap::new();
        let range = ledger
            .get_state_range(LIFECYCLE, DEFINITIONS, &end_of(DEFINITIONS), None)
            .map_err(|e| e.to_string())?;
        for (key, value) in range.results {
            let defined = CommitChaincodeDefinitionArgs::decode(value.value.as_slice())
                .map_err(|e| format!("{LIFECYCLE} {key}: {e}"))?;
            let policy = endorsement_policy(&defined.validation_parameter, orgs)
                .map_err(|e| format!("chaincode {}: {e}", defined.name))?;
            let approval = ledger
                .get_state(LIFECYCLE, &approval_key(my_msp, &defined.name))
                .map_err(|e| e.to_string())?
                .and_then(|v| {
                    ApproveChaincodeDefinitionForMyOrgArgs::decode(v.value.as_slice()).ok()
                });
            let package_id = approval
                .filter(|a| {
                    a.sequence == defined.sequence
                        && Params::of_approval(a) == Params::of_commit(&defined)
                })
                .and_then(|a| package_id(&a));
            let collections = private::collections(defined.collections.as_ref(), orgs)
                .map_err(|e| format!("chaincode {}: {e}", defined.name))?;
            policies.set(defined.name.clone(), policy.clone());
            policies.set_collections(
                defined.name.clone(),
                collections
                    .values()
                    .map(|c| (c.name.clone(), c.endorsement_policy.clone()))
                    .collect(),
            );
            chaincodes.insert(
                defined.name.clone(),
                Definition {
                    name: defined.name,
                    sequence: defined.sequence,
                    version: defined.version,
                    policy,
                    package_id,
                    collections,
                },
            );
        }
        Ok(Definitions {
            chaincodes,
            policies,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.chaincodes.get(name)
    }
}

/// A majority of the organisations' peers: Fabric's default
/// `MAJORITY Endorsement`, which `LifecycleEndorsement` also is.
pub fn majority(orgs: &[String]) -> SignaturePolicy {
    let principals = orgs
        .iter()
        .map(|org| weft_msp::Principal::role(org.clone(), weft_msp::MspRole::Peer))
        .collect();
    // A channel has far fewer organisations than a policy's node bound;
    // should a crafted config have more, nobody satisfies the policy.
    SignaturePolicy::n_out_of(orgs.len() / 2 + 1, principals)
        .unwrap_or_else(|_| SignaturePolicy::nobody())
}

/// The policy a definition's `validation_parameter` (a
/// `protos.ApplicationPolicy`) names. Empty, or a reference to the
/// channel's `Endorsement`/`LifecycleEndorsement` policy, is a majority of
/// the organisations' peers.
pub fn endorsement_policy(
    validation_parameter: &[u8],
    orgs: &[String],
) -> Result<SignaturePolicy, String> {
    if validation_parameter.is_empty() {
        return Ok(majority(orgs));
    }
    let policy = ApplicationPolicy::decode(validation_parameter)
        .map_err(|e| format!("the validation parameter is not an ApplicationPolicy: {e}"))?;
    match policy.r#type {
        Some(PolicyType::SignaturePolicy(envelope)) => {
            SignaturePolicy::from_envelope(&envelope).map_err(|e| e.to_string())
        }
        Some(PolicyType::ChannelConfigPolicyReference(path))
            if path == "/Channel/Application/Endorsement"
                || path == "/Channel/Application/LifecycleEndorsement" =>
        {
            Ok(majority(orgs))
        }
        Some(PolicyType::ChannelConfigPolicyReference(path)) => Err(format!(
            "channel policy reference {path:?} is not supported (use a signature policy or \
             /Channel/Application/Endorsement)"
        )),
        None => Err("the ApplicationPolicy is empty".into()),
    }
}

fn approval_key(msp_id: &str, name: &str) -> String {
    format!("{APPROVALS}{msp_id}/{name}")
}

fn definition_key(name: &str) -> String {
    format!("{DEFINITIONS}{name}")
}

/// The exclusive end of the keys starting with `prefix` (which ends in `/`).
fn end_of(prefix: &str) -> String {
    let mut end = prefix[..prefix.len() - 1].to_owned();
    end.push('0');
    end
}

fn package_id(approval: &ApproveChaincodeDefinitionForMyOrgArgs) -> Option<String> {
    match approval.source.as_ref()?.r#type.as_ref()? {
        SourceType::LocalPackage(local) if !local.package_id.is_empty() => {
            Some(local.package_id.clone())
        }
        _ => None,
    }
}

/// The parts of a definition every organisation must agree on.
#[derive(Debug, PartialEq)]
struct Params<'a> {
    version: &'a str,
    endorsement_plugin: &'a str,
    validation_plugin: &'a str,
    validation_parameter: &'a [u8],
    collections: Option<&'a CollectionConfigPackage>,
    init_required: bool,
}

macro_rules! params_of {
    ($name:ident, $type:ty) => {
        fn $name(args: &'a $type) -> Params<'a> {
            Params {
                version: &args.version,
                endorsement_plugin: &args.endorsement_plugin,
                validation_plugin: &args.validation_plugin,
                validation_parameter: &args.validation_parameter,
                collections: args.collections.as_ref().filter(|c| !c.config.is_empty()),
                init_required: args.init_required,
            }
        }
    };
}

impl<'a> Params<'a> {
    params_of!(of_approval, ApproveChaincodeDefinitionForMyOrgArgs);
    params_of!(of_commit, CommitChaincodeDefinitionArgs);
    params_of!(of_readiness, CheckCommitReadinessArgs);

    /// Fabric's names of the fields where `self` and `other` differ.
    fn mismatches(&self, other: &Params) -> Vec<String> {
        let mut items = Vec::new();
        let mut check = |differs: bool, name: &str| {
            if differs {
                items.push(name.to_owned());
            }
        };
        check(self.version != other.version, "Version");
        check(
            self.endorsement_plugin != other.endorsement_plugin,
            "EndorsementPlugin",
        );
        check(
            self.validation_plugin != other.validation_plugin,
            "ValidationPlugin",
        );
        check(
            self.validation_parameter != other.validation_parameter,
            "ValidationParameter",
        );
        check(self.collections != other.collections, "Collections");
        check(self.init_required != other.init_required, "InitRequired");
        items
    }

    /// What weft cannot run yet, and a malformed policy.
    fn check_supported(&self, orgs: &[String]) -> Result<(), String> {
        if self.version.is_empty() {
            return Err("the definition has no version".into());
        }
        for (plugin, default) in [
            (self.endorsement_plugin, "escc"),
            (self.validation_plugin, "vscc"),
        ] {
            if !plugin.is_empty() && plugin != default {
                return Err(format!(
                    "plugin {plugin:?} is not supported (only Fabric's default {default})"
                ));
            }
        }
        private::collections(self.collections, orgs)?;
        if self.init_required {
            return Err(
                "init_required is not supported: initialise the chaincode with an ordinary transaction"
                    .into(),
            );
        }
        endorsement_policy(self.validation_parameter, orgs).map(|_| ())
    }
}

/// Fabric's chaincode naming rule.
fn check_name(name: &str) -> Result<(), String> {
    weft_protoutil::check_chaincode_name(name).map_err(|e| e.to_string())
}

/// Who calls and where: what `_lifecycle` needs besides the simulator.
pub struct Call<'a> {
    /// This peer's organisation.
    pub my_msp: &'a str,
    /// The channel's application organisations.
    pub orgs: &'a [String],
    /// Whether the proposal's creator is an admin of this peer's organisation.
    pub creator_is_my_admin: bool,
}

/// Runs one `_lifecycle` function: status 200 with the result message, or
/// 500 with Fabric's style of message.
pub fn execute(call: &Call, input: &ChaincodeInput, simulator: &mut Simulator) -> Response {
    let function = input
        .args
        .first()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    let argument = input.args.get(1).map(Vec::as_slice).unwrap_or_default();
    match run(call, &function, argument, simulator) {
        Ok(payload) => Response {
            status: 200,
            message: String::new(),
            payload,
        },
        Err(reason) => Response {
            status: 500,
            message: format!("failed to invoke backing implementation of '{function}': {reason}"),
            payload: Vec::new(),
        },
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, String> {
    M::decode(bytes).map_err(|e| format!("the argument is not a lifecycle.{what}: {e}"))
}

fn run(
    call: &Call,
    function: &str,
    argument: &[u8],
    simulator: &mut Simulator,
) -> Result<Vec<u8>, String> {
    let read = |simulator: &mut Simulator, key: &str| {
        simulator
            .get_state(LIFECYCLE, key)
            .map_err(|e| format!("reading {key}: {e}"))
    };
    let committed = |simulator: &mut Simulator,
                     name: &str|
     -> Result<Option<CommitChaincodeDefinitionArgs>, String> {
        let bytes = read(simulator, &definition_key(name))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        decode(&bytes, "CommitChaincodeDefinitionArgs").map(Some)
    };
    let approval = |simulator: &mut Simulator,
                    msp: &str,
                    name: &str|
     -> Result<Option<ApproveChaincodeDefinitionForMyOrgArgs>, String> {
        let bytes = read(simulator, &approval_key(msp, name))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        decode(&bytes, "ApproveChaincodeDefinitionForMyOrgArgs").map(Some)
    };
    let current_sequence = |defined: &Option<CommitChaincodeDefinitionArgs>| {
        defined.as_ref().map_or(0, |d| d.sequence)
    };
    match function {
        APPROVE => {
            let args: ApproveChaincodeDefinitionForMyOrgArgs =
                decode(argument, "ApproveChaincodeDefinitionForMyOrgArgs")?;
            if !call.creator_is_my_admin {
                return Err(format!(
                    "the creator is not an admin of {}, the organisation of this peer",
                    call.my_msp
                ));
            }
            check_name(&args.name)?;
            let params = Params::of_approval(&args);
            params.check_supported(call.orgs)?;
            let defined = committed(simulator, &args.name)?;
            let current = current_sequence(&defined);
            if args.sequence == current && current > 0 {
                let defined = defined.as_ref().expect("sequence > 0 is defined");
                let differ = params.mismatches(&Params::of_commit(defined));
                if !differ.is_empty() {
                    return Err(format!(
                        "attempted to redefine the current committed sequence ({current}) for \
                         namespace {} with different parameters: {}",
                        args.name,
                        differ.join(", ")
                    ));
                }
            } else if args.sequence != current + 1 {
                return Err(format!(
                    "requested sequence is {}, but new definition must be sequence {}",
                    args.sequence,
                    current + 1
                ));
            }
            simulator.put_state(
                LIFECYCLE,
                &approval_key(call.my_msp, &args.name),
                args.encode_to_vec(),
            );
            Ok(ApproveChaincodeDefinitionForMyOrgResult {}.encode_to_vec())
        }
        COMMIT => {
            let args: CommitChaincodeDefinitionArgs =
                decode(argument, "CommitChaincodeDefinitionArgs")?;
            check_name(&args.name)?;
            let params = Params::of_commit(&args);
            params.check_supported(call.orgs)?;
            let current = current_sequence(&committed(simulator, &args.name)?);
            if args.sequence != current + 1 {
                return Err(format!(
                    "requested sequence is {}, but new definition must be sequence {}",
                    args.sequence,
                    current + 1
                ));
            }
            // Every organisation's approval is read, not only this peer's,
            // so every endorser records the same reads.
            let mut agreed = false;
            for org in call.orgs {
                let approved = approval(simulator, org, &args.name)?.is_some_and(|a| {
                    a.sequence == args.sequence && Params::of_approval(&a) == params
                });
                agreed |= approved && org == call.my_msp;
            }
            if !agreed {
                return Err(format!(
                    "chaincode definition not agreed to by this org ({})",
                    call.my_msp
                ));
            }
            simulator.put_state(LIFECYCLE, &definition_key(&args.name), args.encode_to_vec());
            Ok(CommitChaincodeDefinitionResult {}.encode_to_vec())
        }
        CHECK_COMMIT_READINESS => {
            let args: CheckCommitReadinessArgs = decode(argument, "CheckCommitReadinessArgs")?;
            check_name(&args.name)?;
            let params = Params::of_readiness(&args);
            let mut result = CheckCommitReadinessResult::default();
            for org in call.orgs {
                let (approved, differ) = match approval(simulator, org, &args.name)? {
                    Some(a) if a.sequence == args.sequence => {
                        let differ = params.mismatches(&Params::of_approval(&a));
                        (differ.is_empty(), differ)
                    }
                    _ => (false, Vec::new()),
                };
                result.approvals.insert(org.clone(), approved);
                if !differ.is_empty() {
                    result
                        .mismatches
                        .insert(org.clone(), Mismatches { items: differ });
                }
            }
            Ok(result.encode_to_vec())
        }
        QUERY_DEFINITION => {
            let args: QueryChaincodeDefinitionArgs =
                decode(argument, "QueryChaincodeDefinitionArgs")?;
            let defined = committed(simulator, &args.name)?
                .ok_or_else(|| format!("namespace {} is not defined", args.name))?;
            let params = Params::of_commit(&defined);
            let mut approvals = BTreeMap::new();
            for org in call.orgs {
                let approved = approval(simulator, org, &args.name)?.is_some_and(|a| {
                    a.sequence == defined.sequence && Params::of_approval(&a) == params
                });
                approvals.insert(org.clone(), approved);
            }
            Ok(QueryChaincodeDefinitionResult {
                sequence: defined.sequence,
                version: defined.version.clone(),
                endorsement_plugin: defined.endorsement_plugin.clone(),
                validation_plugin: defined.validation_plugin.clone(),
                validation_parameter: defined.validation_parameter.clone(),
                collections: defined.collections.clone(),
                init_required: defined.init_required,
                approvals,
            }
            .encode_to_vec())
        }
        QUERY_DEFINITIONS => {
            let (entries, _) = simulator
                .get_state_range(LIFECYCLE, DEFINITIONS, &end_of(DEFINITIONS), None)
                .map_err(|e| e.to_string())?;
            let mut result = QueryChaincodeDefinitionsResult::default();
            for (key, bytes) in entries {
                let d: CommitChaincodeDefinitionArgs =
                    decode(&bytes, "CommitChaincodeDefinitionArgs")
                        .map_err(|e| format!("{key}: {e}"))?;
                result.chaincode_definitions.push(ChaincodeDefinition {
                    name: d.name,
                    sequence: d.sequence,
                    version: d.version,
                    endorsement_plugin: d.endorsement_plugin,
                    validation_plugin: d.validation_plugin,
                    validation_parameter: d.validation_parameter,
                    collections: d.collections,
                    init_required: d.init_required,
                });
            }
            Ok(result.encode_to_vec())
        }
        QUERY_APPROVED => {
            let args: QueryApprovedChaincodeDefinitionArgs =
                decode(argument, "QueryApprovedChaincodeDefinitionArgs")?;
            let approved = approval(simulator, call.my_msp, &args.name)?
                .filter(|a| args.sequence == 0 || a.sequence == args.sequence)
                .ok_or_else(|| {
                    format!(
                        "could not fetch approved chaincode definition (name: '{}', sequence: '{}') on channel",
                        args.name, args.sequence
                    )
                })?;
            Ok(QueryApprovedChaincodeDefinitionResult {
                sequence: approved.sequence,
                version: approved.version,
                endorsement_plugin: approved.endorsement_plugin,
                validation_plugin: approved.validation_plugin,
                validation_parameter: approved.validation_parameter,
                collections: approved.collections,
                init_required: approved.init_required,
                source: approved.source,
            }
            .encode_to_vec())
        }
        "" => Err("no function named".into()),
        other => Err(format!(
            "unknown function {other:?} (this peer's _lifecycle offers {APPROVE}, {COMMIT}, \
             {CHECK_COMMIT_READINESS}, {QUERY_DEFINITION}, {QUERY_DEFINITIONS}, {QUERY_APPROVED})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaincode_names_follow_fabric() {
        for good in ["basic", "asset-transfer", "a_b-c1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a--b", "a b", "a/b", "a_"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_msp_id_from_a_config_block_makes_a_majority_policy() {
        // MSP ids the policy language cannot quote (a crafted config block
        // once made the peer panic here at every start).
        let orgs = vec![
            "Org'1\")MSP".to_owned(),
            "Org2MSP".to_owned(),
            String::new(),
        ];
        let policy = majority(&orgs);
        assert_eq!(policy.principals().len(), 3);
        assert!(majority(&[]).principals().is_empty());
    }

    fn signature_policy_parameter(text: &str) -> Result<Vec<u8>, String> {
        let envelope = weft_policy::parse_signature_policy(text).map_err(|e| e.to_string())?;
        Ok(ApplicationPolicy {
            r#type: Some(PolicyType::SignaturePolicy(envelope)),
        }
        .encode_to_vec())
    }

    #[test]
    fn policies_come_from_the_validation_parameter() {
        let orgs = vec![
            "Org1MSP".to_owned(),
            "Org2MSP".to_owned(),
            "Org3MSP".to_owned(),
        ];
        assert_eq!(
            endorsement_policy(&[], &orgs).expect("default").to_string(),
            majority(&orgs).to_string()
        );
        let and = signature_policy_parameter("AND('Org1MSP.peer','Org3MSP.peer')").expect("p");
        let policy = endorsement_policy(&and, &orgs).expect("and");
        assert_eq!(policy.principals().len(), 2);
        let reference = ApplicationPolicy {
            r#type: Some(PolicyType::ChannelConfigPolicyReference(
                "/Channel/Application/Endorsement".into(),
            )),
        }
        .encode_to_vec();
        assert_eq!(
            endorsement_policy(&reference, &orgs)
                .expect("ref")
                .to_string(),
            majority(&orgs).to_string()
        );
        let other = ApplicationPolicy {
            r#type: Some(PolicyType::ChannelConfigPolicyReference(
                "/Channel/Writers".into(),
            )),
        }
        .encode_to_vec();
        assert!(
            endorsement_policy(&other, &orgs)
                .unwrap_err()
                .contains("/Channel/Writers")
        );
        assert!(endorsement_policy(b"\xff", &orgs).is_err());
    }

    #[test]
    fn mismatches_use_fabric_field_names() {
        let a = ApproveChaincodeDefinitionForMyOrgArgs {
            sequence: 1,
            name: "basic".into(),
            version: "1.0".into(),
            ..Default::default()
        };
        let mut c = CommitChaincodeDefinitionArgs {
            sequence: 1,
            name: "basic".into(),
            version: "1.0".into(),
            ..Default::default()
        };
        assert!(
            Params::of_approval(&a)
                .mismatches(&Params::of_commit(&c))
                .is_empty()
        );
        c.version = "2.0".into();
        c.validation_parameter = signature_policy_parameter("OR('Org1MSP.peer')").expect("p");
        assert_eq!(
            Params::of_approval(&a).mismatches(&Params::of_commit(&c)),
            ["Version", "ValidationParameter"]
        );
    }
}
