//! Endorser transactions: the tx id, the proposal hash, parsing an envelope
//! into its parts (with the Fabric validation code for each way it can be
//! malformed) and assembling a signed transaction from endorsements.

use weft_crypto::{SignError, Signer, sha256};
use weft_protos::Message;
use weft_protos::Timestamp;
use weft_protos::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use weft_protos::kvrwset::{HashedRwSet, KvrwSet};
use weft_protos::peer::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeHeaderExtension,
    ChaincodeId, ChaincodeInput, ChaincodeInvocationSpec, ChaincodeProposalPayload, ChaincodeSpec,
    Endorsement, Proposal, ProposalResponsePayload, Response, SignedProposal, Transaction,
    TransactionAction, TxValidationCode,
};
use weft_protos::rwset::{CollectionHashedReadWriteSet, NsReadWriteSet, TxReadWriteSet};

/// Lower-case hex, as Fabric prints hashes and tx ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0x0f) as usize] as char);
    }
    out
}

/// The bytes of lower- or upper-case hex text; `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// Fabric's transaction id: `hex(SHA-256(nonce ‖ creator))`.
pub fn compute_tx_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut input = Vec::with_capacity(nonce.len() + creator.len());
    input.extend_from_slice(nonce);
    input.extend_from_slice(creator);
    hex(&sha256(&input))
}

/// The hash an endorser binds its response to:
/// SHA-256(channel header ‖ signature header ‖ proposal payload without the transient map).
pub fn proposal_hash(
    channel_header: &[u8],
    signature_header: &[u8],
    proposal_payload_without_transient: &[u8],
) -> [u8; 32] {
    let mut hasher = weft_crypto::Sha256::new();
    hasher
        .update(channel_header)
        .update(signature_header)
        .update(proposal_payload_without_transient);
    hasher.finish()
}

/// Why an envelope is not a well-formed transaction; each maps to the
/// validation code Fabric records for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is empty")]
    NilEnvelope,
    #[error("the envelope is not a protobuf Envelope: {0}")]
    MalformedEnvelope(String),
    #[error("the envelope payload is missing or malformed: {0}")]
    BadPayload(String),
    #[error("the payload header is missing or malformed: {0}")]
    BadCommonHeader(String),
    #[error("the channel header is malformed: {0}")]
    BadChannelHeader(String),
    #[error("the chaincode header extension is malformed: {0}")]
    BadHeaderExtension(String),
    #[error("tx id {claimed:?} does not match hex(SHA-256(nonce ‖ creator)) = {computed}")]
    BadTxId { claimed: String, computed: String },
    #[error("header type {0} is not a transaction type weft commits")]
    UnknownTxType(i32),
    #[error("the transaction has no actions")]
    NoActions,
    #[error("the endorser transaction is malformed: {0}")]
    InvalidEndorserTransaction(String),
    #[error("the proposal response payload is malformed: {0}")]
    BadResponsePayload(String),
    #[error("the read-write set is malformed: {0}")]
    BadRwSet(String),
}

impl EnvelopeError {
    /// The validation code Fabric writes into the block for this failure.
    pub fn code(&self) -> TxValidationCode {
        match self {
            EnvelopeError::NilEnvelope => TxValidationCode::NilEnvelope,
            EnvelopeError::MalformedEnvelope(_) => TxValidationCode::InvalidOtherReason,
            EnvelopeError::BadPayload(_) => TxValidationCode::BadPayload,
            EnvelopeError::BadCommonHeader(_) => TxValidationCode::BadCommonHeader,
            EnvelopeError::BadChannelHeader(_) => TxValidationCode::BadChannelHeader,
            EnvelopeError::BadHeaderExtension(_) => TxValidationCode::BadHeaderExtension,
            EnvelopeError::BadTxId { .. } => TxValidationCode::BadProposalTxid,
            EnvelopeError::UnknownTxType(_) => TxValidationCode::UnknownTxType,
            EnvelopeError::NoActions => TxValidationCode::NilTxaction,
            EnvelopeError::InvalidEndorserTransaction(_) => {
                TxValidationCode::InvalidEndorserTransaction
            }
            EnvelopeError::BadResponsePayload(_) => TxValidationCode::BadResponsePayload,
            EnvelopeError::BadRwSet(_) => TxValidationCode::BadRwset,
        }
    }
}

/// One namespace's reads and writes, with the hashed reads and writes of
/// its private data collections.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceRwSet {
    pub namespace: String,
    pub rwset: KvrwSet,
    pub collections: Vec<CollectionHashedRwSet>,
}

impl NamespaceRwSet {
    /// The wire form that goes into a `TxReadWriteSet`.
    pub fn to_proto(&self) -> NsReadWriteSet {
        NsReadWriteSet {
            namespace: self.namespace.clone(),
            rwset: self.rwset.encode_to_vec(),
            collection_hashed_rwset: self
                .collections
                .iter()
                .map(|collection| CollectionHashedReadWriteSet {
                    collection_name: collection.name.clone(),
                    hashed_rwset: collection.hashed.encode_to_vec(),
                    pvt_rwset_hash: collection.pvt_rwset_hash.clone(),
                })
                .collect(),
        }
    }
}

/// A private data collection's part of a transaction as every peer sees it:
/// SHA-256 hashes of the keys and values read and written, and the hash of
/// the private read-write set (`rwset.CollectionPvtReadWriteSet.rwset`
/// bytes) that only member peers hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectionHashedRwSet {
    pub name: String,
    pub hashed: HashedRwSet,
    pub pvt_rwset_hash: Vec<u8>,
}

/// The endorsed action of an endorser transaction.
#[derive(Debug, Clone)]
pub struct EndorsedAction {
    /// The bytes every endorsement signs (followed by the endorser).
    pub proposal_response_payload: Vec<u8>,
    pub endorsements: Vec<Endorsement>,
    pub chaincode_id: ChaincodeId,
    pub response: Response,
    pub events: Vec<u8>,
    pub rwsets: Vec<NamespaceRwSet>,
}

/// A parsed transaction envelope.
#[derive(Debug, Clone)]
pub struct EndorserTransaction {
    /// The signed bytes (the envelope payload) and the creator's signature over them.
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub channel_header: ChannelHeader,
    pub signature_header: SignatureHeader,
    /// Present for ENDORSER_TRANSACTION; `None` for CONFIG.
    pub action: Option<EndorsedAction>,
}

impl EndorserTransaction {
    pub fn tx_id(&self) -> &str {
        &self.channel_header.tx_id
    }

    pub fn is_config(&self) -> bool {
        self.channel_header.r#type == HeaderType::Config as i32
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, String> {
    M::decode(bytes).map_err(|error| error.to_string())
}

/// Parses a transaction envelope as Fabric's committer does, checking its
/// structure and tx id (not its signatures: those need the MSPs).
pub fn parse_envelope(bytes: &[u8]) -> Result<EndorserTransaction, EnvelopeError> {
    if bytes.is_empty() {
        return Err(EnvelopeError::NilEnvelope);
    }
    let envelope: Envelope = decode(bytes).map_err(EnvelopeError::MalformedEnvelope)?;
    if envelope.payload.is_empty() {
        return Err(EnvelopeError::BadPayload("the payload is empty".into()));
    }
    let payload: Payload = decode(&envelope.payload).map_err(EnvelopeError::BadPayload)?;
    let header = payload
        .header
        .ok_or_else(|| EnvelopeError::BadCommonHeader("the payload has no header".into()))?;
    let channel_header: ChannelHeader =
        decode(&header.channel_header).map_err(EnvelopeError::BadChannelHeader)?;
    let signature_header: SignatureHeader =
        decode(&header.signature_header).map_err(EnvelopeError::BadCommonHeader)?;
    let header_type = channel_header.r#type;
    let action = if header_type == HeaderType::EndorserTransaction as i32 {
        // A config transaction is checked by the channel configuration; a
        // genesis block's, as configtxgen writes it, has neither.
        if signature_header.creator.is_empty() {
            return Err(EnvelopeError::BadCommonHeader(
                "the signature header has no creator".into(),
            ));
        }
        if signature_header.nonce.is_empty() {
            return Err(EnvelopeError::BadCommonHeader(
                "the signature header has no nonce".into(),
            ));
        }
        let computed = compute_tx_id(&signature_header.nonce, &signature_header.creator);
        if computed != channel_header.tx_id {
            return Err(EnvelopeError::BadTxId {
                claimed: channel_header.tx_id.clone(),
                computed,
            });
        }
        let extension: ChaincodeHeaderExtension =
            decode(&channel_header.extension).map_err(EnvelopeError::BadHeaderExtension)?;
        if extension
            .chaincode_id
            .as_ref()
            .is_none_or(|id| id.name.is_empty())
        {
            return Err(EnvelopeError::BadHeaderExtension(
                "the header extension names no chaincode".into(),
            ));
        }
        Some(parse_endorser_action(&payload.data)?)
    } else if header_type == HeaderType::Config as i32 {
        None
    } else {
        return Err(EnvelopeError::UnknownTxType(header_type));
    };

    Ok(EndorserTransaction {
        payload: envelope.payload,
        signature: envelope.signature,
        channel_header,
        signature_header,
        action,
    })
}

fn parse_endorser_action(data: &[u8]) -> Result<EndorsedAction, EnvelopeError> {
    let transaction: Transaction =
        decode(data).map_err(EnvelopeError::InvalidEndorserTransaction)?;
    let action = match transaction.actions.as_slice() {
        [] => return Err(EnvelopeError::NoActions),
        [action] => action,
        _ => {
            return Err(EnvelopeError::InvalidEndorserTransaction(format!(
                "{} actions; Fabric transactions carry exactly one",
                transaction.actions.len()
            )));
        }
    };
    let action_payload: ChaincodeActionPayload =
        decode(&action.payload).map_err(EnvelopeError::InvalidEndorserTransaction)?;
    let endorsed = action_payload.action.ok_or_else(|| {
        EnvelopeError::InvalidEndorserTransaction("the action has no endorsed action".into())
    })?;
    if endorsed.endorsements.is_empty() {
        return Err(EnvelopeError::InvalidEndorserTransaction(
            "the action carries no endorsements".into(),
        ));
    }
    let response_payload: ProposalResponsePayload =
        decode(&endorsed.proposal_response_payload).map_err(EnvelopeError::BadResponsePayload)?;
    let chaincode_action: ChaincodeAction =
        decode(&response_payload.extension).map_err(EnvelopeError::BadResponsePayload)?;
    let chaincode_id = chaincode_action.chaincode_id.clone().ok_or_else(|| {
        EnvelopeError::BadResponsePayload("the chaincode action names no chaincode".into())
    })?;
    let results: TxReadWriteSet =
        decode(&chaincode_action.results).map_err(EnvelopeError::BadRwSet)?;
    let mut rwsets = Vec::with_capacity(results.ns_rwset.len());
    for namespace in results.ns_rwset {
        if namespace.namespace.is_empty() {
            return Err(EnvelopeError::BadRwSet(
                "a read-write set names no namespace".into(),
            ));
        }
        let rwset: KvrwSet = decode(&namespace.rwset).map_err(|error| {
            EnvelopeError::BadRwSet(format!("namespace {}: {error}", namespace.namespace))
        })?;
        let mut collections = Vec::with_capacity(namespace.collection_hashed_rwset.len());
        for collection in namespace.collection_hashed_rwset {
            if collection.collection_name.is_empty() {
                return Err(EnvelopeError::BadRwSet(format!(
                    "namespace {}: a collection read-write set names no collection",
                    namespace.namespace
                )));
            }
            let hashed: HashedRwSet = decode(&collection.hashed_rwset).map_err(|error| {
                EnvelopeError::BadRwSet(format!(
                    "namespace {} collection {}: {error}",
                    namespace.namespace, collection.collection_name
                ))
            })?;
            collections.push(CollectionHashedRwSet {
                name: collection.collection_name,
                hashed,
                pvt_rwset_hash: collection.pvt_rwset_hash,
            });
        }
        rwsets.push(NamespaceRwSet {
            namespace: namespace.namespace,
            rwset,
            collections,
        });
    }
    Ok(EndorsedAction {
        proposal_response_payload: endorsed.proposal_response_payload,
        endorsements: endorsed.endorsements,
        chaincode_id,
        response: chaincode_action.response.unwrap_or_default(),
        events: chaincode_action.events,
        rwsets,
    })
}

/// Assembles a signed endorser transaction the way a client and its
/// endorsers together produce one: proposal, endorsements over the same
/// response payload, and the creator's signature over the envelope payload.
#[derive(Debug, Clone)]
pub struct TransactionBuilder {
    pub channel_id: String,
    pub chaincode: String,
    /// Serialized `msp.SerializedIdentity` of the submitting client.
    pub creator: Vec<u8>,
    pub nonce: Vec<u8>,
    pub timestamp: Timestamp,
    pub args: Vec<Vec<u8>>,
    /// Private inputs for the endorsers (`GetTransient`): in the signed
    /// proposal, never in the transaction or the proposal hash.
    pub transient: std::collections::BTreeMap<String, Vec<u8>>,
    pub rwsets: Vec<NamespaceRwSet>,
    pub response: Response,
}

impl TransactionBuilder {
    pub fn tx_id(&self) -> String {
        compute_tx_id(&self.nonce, &self.creator)
    }

    /// The bytes each endorsement covers (before the endorser is appended).
    pub fn proposal_response_payload(&self) -> Vec<u8> {
        let (channel_header, signature_header) = self.headers();
        let proposal_payload = self.proposal_payload(false);
        let results = TxReadWriteSet {
            data_model: 0,
            ns_rwset: self.rwsets.iter().map(NamespaceRwSet::to_proto).collect(),
        };
        let action = ChaincodeAction {
            results: results.encode_to_vec(),
            events: Vec::new(),
            response: Some(self.response.clone()),
            chaincode_id: Some(ChaincodeId {
                name: self.chaincode.clone(),
                ..ChaincodeId::default()
            }),
        };
        ProposalResponsePayload {
            proposal_hash: proposal_hash(&channel_header, &signature_header, &proposal_payload)
                .to_vec(),
            extension: action.encode_to_vec(),
        }
        .encode_to_vec()
    }

    /// The signed envelope bytes: each endorser signs the response payload,
    /// the creator signs the envelope payload.
    pub fn build(
        &self,
        creator: &dyn Signer,
        endorsers: &[(&[u8], &dyn Signer)],
    ) -> Result<Vec<u8>, SignError> {
        let response_payload = self.proposal_response_payload();
        let mut endorsements = Vec::with_capacity(endorsers.len());
        for (endorser, signer) in endorsers {
            let mut signed = response_payload.clone();
            signed.extend_from_slice(endorser);
            endorsements.push(Endorsement {
                endorser: endorser.to_vec(),
                signature: signer.sign(&signed)?,
            });
        }
        self.build_with_endorsements(creator, response_payload, endorsements)
    }

    /// The client's signed proposal: what an application sends to the
    /// gateway or an endorser.
    pub fn signed_proposal(&self, creator: &dyn Signer) -> Result<SignedProposal, SignError> {
        let (channel_header, signature_header) = self.headers();
        let proposal_bytes = Proposal {
            header: Header {
                channel_header,
                signature_header,
            }
            .encode_to_vec(),
            payload: self.proposal_payload(true),
            extension: Vec::new(),
        }
        .encode_to_vec();
        let signature = creator.sign(&proposal_bytes)?;
        Ok(SignedProposal {
            proposal_bytes,
            signature,
        })
    }

    /// Like [`build`](Self::build), with endorsements produced elsewhere.
    pub fn build_with_endorsements(
        &self,
        creator: &dyn Signer,
        proposal_response_payload: Vec<u8>,
        endorsements: Vec<Endorsement>,
    ) -> Result<Vec<u8>, SignError> {
        let (channel_header, signature_header) = self.headers();
        let action_payload = ChaincodeActionPayload {
            chaincode_proposal_payload: self.proposal_payload(false),
            action: Some(ChaincodeEndorsedAction {
                proposal_response_payload,
                endorsements,
            }),
        };
        let transaction = Transaction {
            actions: vec![TransactionAction {
                header: signature_header.clone(),
                payload: action_payload.encode_to_vec(),
            }],
        };
        let payload = Payload {
            header: Some(Header {
                channel_header,
                signature_header,
            }),
            data: transaction.encode_to_vec(),
        }
        .encode_to_vec();
        let signature = creator.sign(&payload)?;
        Ok(Envelope { payload, signature }.encode_to_vec())
    }

    fn headers(&self) -> (Vec<u8>, Vec<u8>) {
        let channel_header = ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            version: 0,
            timestamp: Some(self.timestamp),
            channel_id: self.channel_id.clone(),
            tx_id: self.tx_id(),
            epoch: 0,
            extension: ChaincodeHeaderExtension {
                chaincode_id: Some(ChaincodeId {
                    name: self.chaincode.clone(),
                    ..ChaincodeId::default()
                }),
            }
            .encode_to_vec(),
            tls_cert_hash: Vec::new(),
        };
        let signature_header = SignatureHeader {
            creator: self.creator.clone(),
            nonce: self.nonce.clone(),
        };
        (
            channel_header.encode_to_vec(),
            signature_header.encode_to_vec(),
        )
    }

    /// The proposal's payload; with `transient`, its transient map (only the
    /// signed proposal carries it, as Fabric's clients send it).
    fn proposal_payload(&self, transient: bool) -> Vec<u8> {
        let spec = ChaincodeInvocationSpec {
            chaincode_spec: Some(ChaincodeSpec {
                r#type: 0,
                chaincode_id: Some(ChaincodeId {
                    name: self.chaincode.clone(),
                    ..ChaincodeId::default()
                }),
                input: Some(ChaincodeInput {
                    args: self.args.clone(),
                    ..ChaincodeInput::default()
                }),
                timeout: 0,
            }),
        };
        ChaincodeProposalPayload {
            input: spec.encode_to_vec(),
            transient_map: if transient {
                self.transient
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Default::default()
            },
        }
        .encode_to_vec()
    }
}
