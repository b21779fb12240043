//! The endorser: checks a signed proposal, simulates it with the chaincode
//! and signs the result, building the `ProposalResponse` exactly as Fabric
//! does (proposal hash over the proposal's own header bytes; endorsement
//! signature over `proposal_response_payload ‖ endorser`).

use std::sync::Arc;

use prost::Message;
use weft_crypto::Signer;
use weft_protos::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::{
    ChaincodeAction, ChaincodeHeaderExtension, ChaincodeId, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, Endorsement, Proposal, ProposalResponse, ProposalResponsePayload,
    Response, SignedProposal,
};
use weft_protos::rwset::TxReadWriteSet;
use weft_protoutil::{compute_tx_id, proposal_hash};

use tonic::{Request, Status};
use weft_material::SigningIdentity;
use weft_protos::peer::endorser_server::Endorser as EndorserRpc;

use crate::chaincode::{ChaincodeSupport, ExecError, Executed, Invocation};
use crate::channel::{Channels, PeerChannel, now_seconds};
use crate::dissemination::Distributor;
use crate::install::Packages;
use crate::lifecycle;
use crate::simulator::Simulator;

/// What endorsing needs of the peer: its identity, its channels, its
/// chaincodes and where private data goes. The Endorser and Gateway
/// services share one.
pub struct Endorsing {
    pub msp_id: String,
    pub signer: Arc<SigningIdentity>,
    pub channels: Arc<Channels>,
    pub chaincodes: Arc<ChaincodeSupport>,
    pub private: Arc<Distributor>,
    pub metrics: Arc<crate::metrics::PeerMetrics>,
    /// Installed chaincode packages (`peer lifecycle chaincode install`).
    pub packages: Arc<Packages>,
    /// The admins of the peer's organisation: who may install chaincode.
    pub admin: Arc<weft_node::AdminAuthority>,
}

/// The `protos.Endorser` service.
#[derive(Clone)]
pub struct EndorserService(pub Arc<Endorsing>);

#[tonic::async_trait]
impl EndorserRpc for EndorserService {
    async fn process_proposal(
        &self,
        request: Request<SignedProposal>,
    ) -> Result<tonic::Response<ProposalResponse>, Status> {
        process_proposal(&self.0, request.get_ref(), Purpose::Endorse)
            .await
            .map(tonic::Response::new)
            .map_err(EndorseError::into_status)
    }
}

/// Why a proposal was not simulated. Each maps to a gRPC status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EndorseError {
    #[error("malformed proposal: {0}")]
    Malformed(String),
    #[error("channel {0} not found on this peer")]
    UnknownChannel(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("duplicate transaction found [{0}]")]
    Duplicate(String),
    #[error(
        "make sure the chaincode {chaincode} has been successfully defined on channel {channel} and try again: chaincode {chaincode} not found"
    )]
    UnknownChaincode { chaincode: String, channel: String },
    #[error(transparent)]
    Chaincode(#[from] ExecError),
    #[error("{0}")]
    Internal(String),
}

impl EndorseError {
    /// The gRPC status the Endorser service answers with.
    pub fn into_status(self) -> Status {
        Status::new(self.code(), self.to_string())
    }

    pub fn code(&self) -> tonic::Code {
        match self {
            EndorseError::Malformed(_) => tonic::Code::InvalidArgument,
            EndorseError::UnknownChannel(_) | EndorseError::UnknownChaincode { .. } => {
                tonic::Code::NotFound
            }
            EndorseError::Denied(_) => tonic::Code::PermissionDenied,
            EndorseError::Duplicate(_) => tonic::Code::AlreadyExists,
            EndorseError::Chaincode(ExecError::Timeout { .. }) => tonic::Code::DeadlineExceeded,
            EndorseError::Chaincode(_) => tonic::Code::Aborted,
            EndorseError::Internal(_) => tonic::Code::Internal,
        }
    }
}

/// A proposal taken apart.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub channel_header: ChannelHeader,
    pub header: Header,
    pub creator: Vec<u8>,
    pub chaincode: String,
    pub payload: ChaincodeProposalPayload,
    pub spec: ChaincodeInvocationSpec,
}

fn malformed(what: &str) -> impl Fn(prost::DecodeError) -> EndorseError + '_ {
    move |e| EndorseError::Malformed(format!("{what}: {e}"))
}

/// Decodes a signed proposal's layers and checks the tx id.
pub fn unpack(signed: &SignedProposal) -> Result<Unpacked, EndorseError> {
    let proposal =
        Proposal::decode(signed.proposal_bytes.as_slice()).map_err(malformed("Proposal"))?;
    let header = Header::decode(proposal.header.as_slice()).map_err(malformed("Header"))?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(malformed("ChannelHeader"))?;
    let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(malformed("SignatureHeader"))?;
    if channel_header.r#type != HeaderType::EndorserTransaction as i32 {
        return Err(EndorseError::Malformed(format!(
            "header type {} is not ENDORSER_TRANSACTION",
            channel_header.r#type
        )));
    }
    if signature_header.nonce.is_empty() {
        return Err(EndorseError::Malformed(
            "the signature header has no nonce".into(),
        ));
    }
    let expected = compute_tx_id(&signature_header.nonce, &signature_header.creator);
    if channel_header.tx_id != expected {
        return Err(EndorseError::Malformed(format!(
            "tx id {:?} is not hex(SHA-256(nonce ‖ creator)) = {expected}",
            channel_header.tx_id
        )));
    }
    let extension = ChaincodeHeaderExtension::decode(channel_header.extension.as_slice())
        .map_err(malformed("ChaincodeHeaderExtension"))?;
    let chaincode = extension.chaincode_id.map(|id| id.name).unwrap_or_default();
    if chaincode.is_empty() {
        return Err(EndorseError::Malformed(
            "the proposal names no chaincode".into(),
        ));
    }
    let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
        .map_err(malformed("ChaincodeProposalPayload"))?;
    let spec = ChaincodeInvocationSpec::decode(payload.input.as_slice())
        .map_err(malformed("ChaincodeInvocationSpec"))?;
    Ok(Unpacked {
        channel_header,
        header,
        creator: signature_header.creator,
        chaincode,
        payload,
        spec,
    })
}

/// What a proposal is processed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An endorsement: the simulated results, signed by this peer.
    Endorse,
    /// A gateway Evaluate, which returns only the chaincode's response: the
    /// same checks and simulation, but no read-write set is encoded, nothing
    /// is signed and no private data leaves the peer.
    Evaluate,
}

/// Checks, simulates and endorses one proposal. A chaincode response with
/// status ≥ 400 comes back unendorsed, as Fabric returns it.
pub async fn process_proposal(
    peer: &Endorsing,
    signed: &SignedProposal,
    purpose: Purpose,
) -> Result<ProposalResponse, EndorseError> {
    peer.metrics.proposals_received.inc();
    let started = std::time::Instant::now();
    let unpacked = unpack(signed)?;
    let (channel_id, chaincode) = (
        unpacked.channel_header.channel_id.clone(),
        unpacked.chaincode.clone(),
    );
    let result = endorse(peer, signed, unpacked, purpose).await;
    // Fabric counts a proposal as successful when it is endorsed (a
    // chaincode error response is returned, unendorsed).
    let success = result
        .as_ref()
        .is_ok_and(|r| r.response.as_ref().is_some_and(|r| r.status < 400));
    peer.metrics
        .proposal(&channel_id, &chaincode, success, started);
    result
}

async fn endorse(
    peer: &Endorsing,
    signed: &SignedProposal,
    unpacked: Unpacked,
    purpose: Purpose,
) -> Result<ProposalResponse, EndorseError> {
    let channel_id = unpacked.channel_header.channel_id.clone();
    if channel_id.is_empty() && purpose == Purpose::Endorse {
        return local_lifecycle(peer, signed, &unpacked).await;
    }
    let channel: Arc<PeerChannel> = peer
        .channels
        .get(&channel_id)
        .ok_or_else(|| EndorseError::UnknownChannel(channel_id.clone()))?;
    channel
        .config
        .authorize(
            "/Channel/Application/Writers",
            &unpacked.creator,
            &signed.proposal_bytes,
            &signed.signature,
            now_seconds(),
        )
        .map_err(|e| EndorseError::Denied(e.to_string()))?;
    let tx_id = unpacked.channel_header.tx_id.clone();
    if channel
        .ledger
        .transaction(&tx_id)
        .map_err(|e| EndorseError::Internal(e.to_string()))?
        .is_some()
    {
        return Err(EndorseError::Duplicate(tx_id));
    }
    let input = unpacked
        .spec
        .chaincode_spec
        .as_ref()
        .and_then(|spec| spec.input.clone())
        .unwrap_or_default();
    let creator_msp = SerializedIdentity::decode(unpacked.creator.as_slice())
        .map(|identity| identity.mspid)
        .unwrap_or_default();
    let mut simulator = Simulator::new(Arc::clone(&channel.ledger));
    let definitions = channel.definitions();
    let (executed, version) = if unpacked.chaincode == lifecycle::LIFECYCLE {
        let call = lifecycle::Call {
            my_msp: &peer.msp_id,
            orgs: &channel.config.application_orgs,
            creator_is_my_admin: channel
                .config
                .msps
                .validate(&unpacked.creator, now_seconds())
                .is_ok_and(|identity| identity.msp_id() == peer.msp_id && identity.is_admin()),
        };
        let response = lifecycle::execute(&call, &input, &mut simulator);
        let executed = Executed {
            response,
            event: None,
        };
        (executed, "syscc".to_owned())
    } else {
        let definition =
            definitions
                .get(&unpacked.chaincode)
                .ok_or_else(|| EndorseError::UnknownChaincode {
                    chaincode: unpacked.chaincode.clone(),
                    channel: channel_id.clone(),
                })?;
        let version = definition.version.clone();
        if let Some(package_id) = &definition.package_id
            && peer
                .packages
                .has_undeclared_indexes(&channel, &unpacked.chaincode, package_id)
        {
            // Once per channel, namespace and package: index files are synced.
            tokio::task::block_in_place(|| {
                peer.packages
                    .declare_indexes(&channel, &unpacked.chaincode, package_id)
            })
            .map_err(EndorseError::Internal)?;
        }
        let executed = peer
            .chaincodes
            .execute(
                &unpacked.chaincode,
                Invocation {
                    channel_id: channel_id.clone(),
                    tx_id: tx_id.clone(),
                    init: input.is_init,
                    input,
                    proposal: Some(signed.clone()),
                    definitions: Arc::clone(&definitions),
                    creator_msp,
                },
                &mut simulator,
                0,
            )
            .await?;
        (executed, version)
    };
    let response = executed.response;
    if response.status >= weft_shim::ERROR_THRESHOLD || response.status < 200 {
        return Ok(ProposalResponse {
            version: 1,
            response: Some(Response {
                status: response.status,
                message: response.message,
                payload: Vec::new(),
            }),
            ..Default::default()
        });
    }
    if purpose == Purpose::Evaluate {
        return Ok(ProposalResponse {
            version: 1,
            timestamp: unpacked.channel_header.timestamp,
            response: Some(response),
            ..Default::default()
        });
    }
    let event = executed.event.map(|mut event| {
        event.chaincode_id = unpacked.chaincode.clone();
        event.tx_id = tx_id.clone();
        event.encode_to_vec()
    });
    let simulated = simulator.results();
    if let Some(private) = &simulated.private {
        // Fabric's order: the private data reaches the member peers before
        // the endorsement is returned.
        peer.private
            .distribute(&channel_id, &definitions, &tx_id, private)
            .await
            .map_err(EndorseError::Internal)?;
    }
    let results = TxReadWriteSet {
        data_model: 0,
        ns_rwset: simulated.public.iter().map(|ns| ns.to_proto()).collect(),
    };
    let action = ChaincodeAction {
        results: results.encode_to_vec(),
        events: event.unwrap_or_default(),
        response: Some(response.clone()),
        chaincode_id: Some(ChaincodeId {
            name: unpacked.chaincode.clone(),
            version,
            path: String::new(),
        }),
    };
    let payload_without_transient = ChaincodeProposalPayload {
        input: unpacked.payload.input.clone(),
        transient_map: Default::default(),
    }
    .encode_to_vec();
    let response_payload = ProposalResponsePayload {
        proposal_hash: proposal_hash(
            &unpacked.header.channel_header,
            &unpacked.header.signature_header,
            &payload_without_transient,
        )
        .to_vec(),
        extension: action.encode_to_vec(),
    }
    .encode_to_vec();
    let endorser = peer.signer.serialized();
    let mut signed_bytes = response_payload.clone();
    signed_bytes.extend_from_slice(&endorser);
    let signature = peer
        .signer
        .sign(&signed_bytes)
        .map_err(|e| EndorseError::Internal(e.to_string()))?;
    // When the transaction comes back in a block, this endorsement need not
    // be verified again.
    channel
        .signatures
        .remember(&peer.signer.public_key(), &signed_bytes, &signature);
    Ok(ProposalResponse {
        version: 1,
        timestamp: unpacked.channel_header.timestamp,
        response: Some(response),
        payload: response_payload,
        endorsement: Some(Endorsement {
            endorser,
            signature,
        }),
        interest: None,
    })
}

/// A proposal without a channel: `_lifecycle`'s peer-local functions
/// (install, query installed, get an installed package), for admins of the
/// peer's organisation only, as Fabric's `Admins` ACL on them.
async fn local_lifecycle(
    peer: &Endorsing,
    signed: &SignedProposal,
    unpacked: &Unpacked,
) -> Result<ProposalResponse, EndorseError> {
    use weft_protos::lifecycle::{
        GetInstalledChaincodePackageArgs, GetInstalledChaincodePackageResult, InstallChaincodeArgs,
        InstallChaincodeResult, QueryInstalledChaincodeArgs, QueryInstalledChaincodeResult,
        QueryInstalledChaincodesResult, query_installed_chaincodes_result::InstalledChaincode,
    };
    if unpacked.chaincode != lifecycle::LIFECYCLE {
        return Err(EndorseError::Malformed(format!(
            "a proposal without a channel may only call {}, not {}",
            lifecycle::LIFECYCLE,
            unpacked.chaincode
        )));
    }
    let timestamp = unpacked
        .channel_header
        .timestamp
        .as_ref()
        .map_or(0, |t| t.seconds);
    peer.admin
        .check_signed_by_admin(
            &unpacked.creator,
            &signed.proposal_bytes,
            &signed.signature,
            timestamp,
        )
        .map_err(|e| EndorseError::Denied(format!("_lifecycle without a channel: {e}")))?;
    let args = unpacked
        .spec
        .chaincode_spec
        .as_ref()
        .and_then(|spec| spec.input.as_ref())
        .map(|input| input.args.clone())
        .unwrap_or_default();
    let function = args
        .first()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    let argument = args.get(1).map(Vec::as_slice).unwrap_or_default();
    let decode_error = |what: &str, e: prost::DecodeError| format!("failed to decode {what}: {e}");
    let result: Result<Vec<u8>, String> = match function.as_str() {
        "InstallChaincode" => match InstallChaincodeArgs::decode(argument) {
            Err(e) => Err(decode_error("InstallChaincodeArgs", e)),
            Ok(args) => peer
                .packages
                .install(args.chaincode_install_package, &peer.chaincodes)
                .await
                .map(|installed| {
                    InstallChaincodeResult {
                        package_id: installed.package_id,
                        label: installed.label,
                    }
                    .encode_to_vec()
                }),
        },
        "QueryInstalledChaincodes" => Ok(QueryInstalledChaincodesResult {
            installed_chaincodes: peer
                .packages
                .list()
                .into_iter()
                .map(|p| InstalledChaincode {
                    package_id: p.package_id,
                    label: p.label,
                    references: Default::default(),
                })
                .collect(),
        }
        .encode_to_vec()),
        "QueryInstalledChaincode" => match QueryInstalledChaincodeArgs::decode(argument) {
            Err(e) => Err(decode_error("QueryInstalledChaincodeArgs", e)),
            Ok(args) => peer.packages.find(&args.package_id).map(|p| {
                QueryInstalledChaincodeResult {
                    package_id: p.package_id,
                    label: p.label,
                    references: Default::default(),
                }
                .encode_to_vec()
            }),
        },
        "GetInstalledChaincodePackage" => {
            match GetInstalledChaincodePackageArgs::decode(argument) {
                Err(e) => Err(decode_error("GetInstalledChaincodePackageArgs", e)),
                Ok(args) => peer.packages.get(&args.package_id).map(|bytes| {
                    GetInstalledChaincodePackageResult {
                        chaincode_install_package: bytes,
                    }
                    .encode_to_vec()
                }),
            }
        }
        other => Err(format!(
            "{} function {other:?} needs a channel (only InstallChaincode, QueryInstalledChaincode(s) \
             and GetInstalledChaincodePackage run without one)",
            lifecycle::LIFECYCLE
        )),
    };
    let response = match result {
        Ok(payload) => Response {
            status: 200,
            message: String::new(),
            payload,
        },
        Err(message) => {
            tracing::warn!("_lifecycle {function} refused: {message}");
            Response {
                status: 500,
                message,
                payload: Vec::new(),
            }
        }
    };
    Ok(ProposalResponse {
        version: 1,
        timestamp: unpacked.channel_header.timestamp,
        response: Some(response),
        ..Default::default()
    })
}
