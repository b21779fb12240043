//! weft's chaincode SDK: the chaincode side of Fabric's chaincode protocol
//! (`protos.ChaincodeMessage`).
//!
//! A contract implements [`Chaincode`]; [`run`] speaks the protocol over a
//! pair of message channels: REGISTER, then one TRANSACTION (or INIT) after
//! another, each answered with COMPLETED or ERROR while the contract's
//! [`Stub`] calls go out as GET_STATE, PUT_STATE, ... and wait for the
//! peer's RESPONSE. The peer links contracts in this way (in-process); a
//! standalone binary bridges the same channels to a gRPC stream.
//!
//! Contracts are plain synchronous code: each transaction runs on a
//! blocking thread, so many transactions proceed at once on one stream.

pub mod contract;
pub mod identity;
pub mod mock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use identity::ClientIdentity;

use prost::Message;
use tokio::sync::mpsc;
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, ChaincodeProposalPayload,
    ChaincodeSpec, DelState, GetHistoryForKey, GetQueryResult, GetState, GetStateByRange, Proposal,
    PutState, QueryResponse, QueryStateNext, Response, SignedProposal,
};
use weft_protos::queryresult::{KeyModification, Kv};

/// A Fabric status below which a chaincode response counts as success.
pub const ERROR_THRESHOLD: i32 = 400;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The peer answered a request with ERROR.
    #[error("{0}")]
    Peer(String),
    #[error("the peer connection closed")]
    Closed,
    #[error("malformed message from the peer: {0}")]
    Malformed(String),
    #[error("the client identity: {0}")]
    Identity(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("handshake: expected {expected}, got {got:?}")]
    Handshake { expected: &'static str, got: Type },
}

/// A contract.
pub trait Chaincode: Send + Sync + 'static {
    /// Runs for INIT messages (Fabric's `--isInit` invocations).
    fn init(&self, stub: &mut Stub) -> Response {
        self.invoke(stub)
    }
    /// Runs one transaction.
    fn invoke(&self, stub: &mut Stub) -> Response;
}

/// A successful response carrying `payload`.
pub fn success(payload: impl Into<Vec<u8>>) -> Response {
    Response {
        status: 200,
        message: String::new(),
        payload: payload.into(),
    }
}

/// A failed response (status 500) with `message`.
pub fn error(message: impl Into<String>) -> Response {
    Response {
        status: 500,
        message: message.into(),
        payload: Vec::new(),
    }
}

/// A transaction's view of the ledger and its proposal.
pub struct Stub<'a> {
    channel_id: String,
    tx_id: String,
    args: Vec<Vec<u8>>,
    proposal: Option<SignedProposal>,
    creator: Vec<u8>,
    transient: std::collections::BTreeMap<String, Vec<u8>>,
    event: Option<ChaincodeEvent>,
    peer: PeerLink<'a>,
}

/// How a transaction's ledger requests reach the peer.
enum PeerLink<'a> {
    /// Over a message stream: requests out, replies back.
    Channels {
        out: mpsc::Sender<ChaincodeMessage>,
        replies: mpsc::Receiver<ChaincodeMessage>,
    },
    /// A call answered on this thread (a peer running a linked-in contract);
    /// None when the transaction was ended.
    Call(&'a mut (dyn FnMut(ChaincodeMessage) -> Option<ChaincodeMessage> + Send)),
}

impl std::fmt::Debug for Stub<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("channel_id", &self.channel_id)
            .field("tx_id", &self.tx_id)
            .finish()
    }
}

impl Stub<'_> {
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// Every argument, function name first.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// The function name and its parameters as strings (lossy UTF-8).
    pub fn function_and_parameters(&self) -> (String, Vec<String>) {
        let mut strings = self
            .args
            .iter()
            .map(|arg| String::from_utf8_lossy(arg).into_owned());
        let function = strings.next().unwrap_or_default();
        (function, strings.collect())
    }

    /// The client's signed proposal, as the peer received it.
    pub fn signed_proposal(&self) -> Option<&SignedProposal> {
        self.proposal.as_ref()
    }

    /// The serialized `msp.SerializedIdentity` of the submitting client.
    pub fn creator(&self) -> &[u8] {
        &self.creator
    }

    /// The submitting client's identity (MSP id, id, attributes).
    pub fn client_identity(&self) -> Result<ClientIdentity, ShimError> {
        ClientIdentity::from_creator(&self.creator).map_err(ShimError::Identity)
    }

    /// Transient data passed with the proposal (never written to the ledger).
    pub fn transient(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        &self.transient
    }

    /// Sets the transaction's event (one per transaction; the last one wins).
    pub fn set_event(&mut self, name: impl Into<String>, payload: impl Into<Vec<u8>>) {
        self.event = Some(ChaincodeEvent {
            chaincode_id: String::new(),
            tx_id: String::new(),
            event_name: name.into(),
            payload: payload.into(),
        });
    }

    fn call(&mut self, kind: Type, payload: Vec<u8>) -> Result<Vec<u8>, ShimError> {
        let message = ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: self.tx_id.clone(),
            channel_id: self.channel_id.clone(),
            ..Default::default()
        };
        let reply = match &mut self.peer {
            PeerLink::Channels { out, replies } => {
                out.blocking_send(message).map_err(|_| ShimError::Closed)?;
                replies.blocking_recv().ok_or(ShimError::Closed)?
            }
            PeerLink::Call(call) => call(message).ok_or(ShimError::Closed)?,
        };
        match Type::try_from(reply.r#type) {
            Ok(Type::Response) => Ok(reply.payload),
            Ok(Type::Error) => Err(ShimError::Peer(
                String::from_utf8_lossy(&reply.payload).into_owned(),
            )),
            _ => Err(ShimError::Malformed(format!(
                "reply of type {} to {kind:?}",
                reply.r#type
            ))),
        }
    }

    /// A GET_STATE-shaped request (`kind`) for `key` in `collection`
    /// (empty: public state); None for an empty answer.
    fn read(
        &mut self,
        kind: Type,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ShimError> {
        let value = self.call(
            kind,
            GetState {
                key: key.into(),
                collection: collection.into(),
            }
            .encode_to_vec(),
        )?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// The committed value of `key` (None if absent).
    pub fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>, ShimError> {
        self.read(Type::GetState, "", key)
    }

    pub fn put_state(&mut self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), ShimError> {
        self.call(
            Type::PutState,
            PutState {
                key: key.into(),
                value: value.into(),
                collection: String::new(),
            }
            .encode_to_vec(),
        )
        .map(drop)
    }

    pub fn del_state(&mut self, key: &str) -> Result<(), ShimError> {
        self.delete("", key)
    }

    /// DEL_STATE of `key` in `collection` (empty: public state).
    fn delete(&mut self, collection: &str, key: &str) -> Result<(), ShimError> {
        self.call(
            Type::DelState,
            DelState {
                key: key.into(),
                collection: collection.into(),
            }
            .encode_to_vec(),
        )
        .map(drop)
    }

    /// The private value of `key` in `collection` (None if absent). Fails
    /// on a peer that is not a member of the collection.
    pub fn get_private_data(
        &mut self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ShimError> {
        self.read(Type::GetState, collection, key)
    }

    /// The SHA-256 of the private value of `key` (None if absent), which
    /// every peer of the channel has.
    pub fn get_private_data_hash(
        &mut self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ShimError> {
        self.read(Type::GetPrivateDataHash, collection, key)
    }

    /// Writes a private value; only its hash goes into the transaction.
    pub fn put_private_data(
        &mut self,
        collection: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), ShimError> {
        let value = value.into();
        if value.is_empty() {
            return Err(ShimError::Peer(format!(
                "private data of key {key:?} in collection {collection} is empty"
            )));
        }
        self.call(
            Type::PutState,
            PutState {
                key: key.into(),
                value,
                collection: collection.into(),
            }
            .encode_to_vec(),
        )
        .map(drop)
    }

    pub fn del_private_data(&mut self, collection: &str, key: &str) -> Result<(), ShimError> {
        self.delete(collection, key)
    }

    /// Private keys of `collection` in `[start, end)`.
    pub fn get_private_data_by_range(
        &mut self,
        collection: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        let start = if start.is_empty() {
            SIMPLE_KEYS_START
        } else {
            start
        };
        let first = self.call(
            Type::GetStateByRange,
            GetStateByRange {
                start_key: start.into(),
                end_key: end.into(),
                collection: collection.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        )?;
        self.kvs(first)
    }

    fn drain(&mut self, first: Vec<u8>) -> Result<Vec<Vec<u8>>, ShimError> {
        let mut response = QueryResponse::decode(first.as_slice())
            .map_err(|e| ShimError::Malformed(e.to_string()))?;
        let mut results = Vec::new();
        loop {
            results.extend(response.results.drain(..).map(|r| r.result_bytes));
            if !response.has_more {
                return Ok(results);
            }
            let next = self.call(
                Type::QueryStateNext,
                QueryStateNext {
                    id: response.id.clone(),
                }
                .encode_to_vec(),
            )?;
            response = QueryResponse::decode(next.as_slice())
                .map_err(|e| ShimError::Malformed(e.to_string()))?;
        }
    }

    fn kvs(&mut self, first: Vec<u8>) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        self.drain(first)?
            .into_iter()
            .map(|bytes| {
                Kv::decode(bytes.as_slice())
                    .map(|kv| (kv.key, kv.value))
                    .map_err(|e| ShimError::Malformed(e.to_string()))
            })
            .collect()
    }

    /// Keys in `[start, end)` (empty `end`: to the end of the namespace).
    /// Composite keys are not in any such range, as in Fabric: an empty
    /// `start` begins after them.
    pub fn get_state_by_range(
        &mut self,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        let start = if start.is_empty() {
            SIMPLE_KEYS_START
        } else {
            start
        };
        self.range(start, end)
    }

    /// Every composite key of `object_type` whose attributes begin with
    /// `attributes`, with its value.
    pub fn get_state_by_partial_composite_key(
        &mut self,
        object_type: &str,
        attributes: &[&str],
    ) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        let start = create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        self.range(&start, &end)
    }

    fn range(&mut self, start: &str, end: &str) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        let first = self.call(
            Type::GetStateByRange,
            GetStateByRange {
                start_key: start.into(),
                end_key: end.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        )?;
        self.kvs(first)
    }

    /// A Mango query over JSON values (`GetQueryResult`).
    pub fn get_query_result(&mut self, query: &str) -> Result<Vec<(String, Vec<u8>)>, ShimError> {
        let first = self.call(
            Type::GetQueryResult,
            GetQueryResult {
                query: query.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        )?;
        self.kvs(first)
    }

    /// Every committed write of `key`, oldest first.
    pub fn get_history_for_key(&mut self, key: &str) -> Result<Vec<KeyModification>, ShimError> {
        let first = self.call(
            Type::GetHistoryForKey,
            GetHistoryForKey { key: key.into() }.encode_to_vec(),
        )?;
        self.drain(first)?
            .into_iter()
            .map(|bytes| {
                KeyModification::decode(bytes.as_slice())
                    .map_err(|e| ShimError::Malformed(e.to_string()))
            })
            .collect()
    }

    /// Calls another chaincode on this channel within this transaction.
    pub fn invoke_chaincode(
        &mut self,
        chaincode: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<Response, ShimError> {
        let spec = ChaincodeSpec {
            chaincode_id: Some(ChaincodeId {
                name: chaincode.into(),
                ..Default::default()
            }),
            input: Some(ChaincodeInput {
                args,
                ..Default::default()
            }),
            ..Default::default()
        };
        let reply = self.call(Type::InvokeChaincode, spec.encode_to_vec())?;
        let message = ChaincodeMessage::decode(reply.as_slice())
            .map_err(|e| ShimError::Malformed(e.to_string()))?;
        if message.r#type != Type::Completed as i32 {
            return Err(ShimError::Peer(
                String::from_utf8_lossy(&message.payload).into_owned(),
            ));
        }
        Response::decode(message.payload.as_slice())
            .map_err(|e| ShimError::Malformed(e.to_string()))
    }
}

const COMPOSITE_KEY_NAMESPACE: char = '\u{0}';
const MAX_UNICODE_RUNE: char = '\u{10FFFF}';
/// Where a range with an empty start key begins: after every composite key.
const SIMPLE_KEYS_START: &str = "\u{1}";

/// Fabric's composite key: `\0type\0attr1\0attr2\0...`.
pub fn create_composite_key(object_type: &str, attributes: &[&str]) -> Result<String, ShimError> {
    let mut key = String::from(COMPOSITE_KEY_NAMESPACE);
    for part in std::iter::once(&object_type).chain(attributes) {
        if part.contains([COMPOSITE_KEY_NAMESPACE, MAX_UNICODE_RUNE]) {
            return Err(ShimError::InvalidKey(format!(
                "{part:?} contains U+0000 or U+10FFFF, which composite keys cannot hold"
            )));
        }
        key.push_str(part);
        key.push(COMPOSITE_KEY_NAMESPACE);
    }
    Ok(key)
}

/// The object type and attributes of a composite key; None for a simple key.
pub fn split_composite_key(key: &str) -> Option<(String, Vec<String>)> {
    let rest = key.strip_prefix(COMPOSITE_KEY_NAMESPACE)?;
    let mut parts: Vec<String> = rest
        .split(COMPOSITE_KEY_NAMESPACE)
        .map(str::to_owned)
        .collect();
    // The key ends with the separator, leaving an empty last part.
    parts.pop();
    if parts.is_empty() {
        return None;
    }
    let object_type = parts.remove(0);
    Some((object_type, parts))
}

type Routes = Arc<Mutex<HashMap<(String, String), mpsc::Sender<ChaincodeMessage>>>>;

fn lock(
    routes: &Routes,
) -> std::sync::MutexGuard<'_, HashMap<(String, String), mpsc::Sender<ChaincodeMessage>>> {
    routes.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the proposal carries beyond the input: creator and transient data.
fn proposal_parts(
    proposal: Option<&SignedProposal>,
) -> (Vec<u8>, std::collections::BTreeMap<String, Vec<u8>>) {
    let Some(signed) = proposal else {
        return Default::default();
    };
    let Ok(proposal) = Proposal::decode(signed.proposal_bytes.as_slice()) else {
        return Default::default();
    };
    let creator = weft_protos::common::Header::decode(proposal.header.as_slice())
        .ok()
        .and_then(|h| {
            weft_protos::common::SignatureHeader::decode(h.signature_header.as_slice()).ok()
        })
        .map(|s| s.creator)
        .unwrap_or_default();
    let transient = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
        .map(|p| p.transient_map)
        .unwrap_or_default();
    (creator, transient)
}

/// Speaks the chaincode protocol for `chaincode`, registered as `id`, until
/// the peer closes the stream.
/// Copies a stream of messages (a gRPC stream, in processes that have one)
/// into a channel of `capacity` that [`run`] or a peer reads, ending at the
/// first error. Spawns a task on the current tokio runtime.
pub fn forward<E: Send + 'static>(
    mut incoming: impl tokio_stream::Stream<Item = Result<ChaincodeMessage, E>> + Send + Unpin + 'static,
    capacity: usize,
) -> mpsc::Receiver<ChaincodeMessage> {
    use tokio_stream::StreamExt;
    let (tx, rx) = mpsc::channel(capacity);
    tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs one TRANSACTION or INIT `message` of `chaincode` on this (blocking)
/// thread: ledger requests go to `out`, their answers come from `replies`.
/// Returns the COMPLETED message (the response and the event). The stream
/// loop of [`run`] uses it, and so does a peer calling a linked-in contract
/// directly.
pub fn execute_transaction(
    chaincode: &dyn Chaincode,
    message: ChaincodeMessage,
    out: mpsc::Sender<ChaincodeMessage>,
    replies: mpsc::Receiver<ChaincodeMessage>,
) -> ChaincodeMessage {
    execute(chaincode, message, PeerLink::Channels { out, replies })
}

/// Runs one TRANSACTION or INIT `message` of `chaincode` on this thread,
/// each ledger request answered by `call` (None: the transaction was ended).
/// Returns the COMPLETED message. A peer running a linked-in contract uses it
/// to answer requests without handing them to another thread.
pub fn execute_transaction_with(
    chaincode: &dyn Chaincode,
    message: ChaincodeMessage,
    call: &mut (dyn FnMut(ChaincodeMessage) -> Option<ChaincodeMessage> + Send),
) -> ChaincodeMessage {
    execute(chaincode, message, PeerLink::Call(call))
}

fn execute(
    chaincode: &dyn Chaincode,
    message: ChaincodeMessage,
    peer: PeerLink<'_>,
) -> ChaincodeMessage {
    let init = message.r#type == Type::Init as i32;
    let input = ChaincodeInput::decode(message.payload.as_slice()).unwrap_or_default();
    let (creator, transient) = proposal_parts(message.proposal.as_ref());
    let mut stub = Stub {
        channel_id: message.channel_id.clone(),
        tx_id: message.txid.clone(),
        args: input.args,
        proposal: message.proposal,
        creator,
        transient,
        event: None,
        peer,
    };
    let response = if init {
        chaincode.init(&mut stub)
    } else {
        chaincode.invoke(&mut stub)
    };
    ChaincodeMessage {
        r#type: Type::Completed as i32,
        payload: response.encode_to_vec(),
        txid: message.txid,
        channel_id: message.channel_id,
        chaincode_event: stub.event.take(),
        ..Default::default()
    }
}

pub async fn run(
    chaincode: Arc<dyn Chaincode>,
    id: &str,
    out: mpsc::Sender<ChaincodeMessage>,
    mut incoming: mpsc::Receiver<ChaincodeMessage>,
) -> Result<(), ShimError> {
    let register = ChaincodeMessage {
        r#type: Type::Register as i32,
        payload: ChaincodeId {
            name: id.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        ..Default::default()
    };
    out.send(register).await.map_err(|_| ShimError::Closed)?;
    for expected in [Type::Registered, Type::Ready] {
        let message = incoming.recv().await.ok_or(ShimError::Closed)?;
        let got = Type::try_from(message.r#type).unwrap_or(Type::Undefined);
        if got != expected {
            return Err(ShimError::Handshake {
                expected: expected.as_str_name(),
                got,
            });
        }
    }
    let routes: Routes = Arc::default();
    while let Some(message) = incoming.recv().await {
        let kind = Type::try_from(message.r#type).unwrap_or(Type::Undefined);
        let key = (message.channel_id.clone(), message.txid.clone());
        match kind {
            Type::Transaction | Type::Init => {
                let (reply_tx, reply_rx) = mpsc::channel(1);
                lock(&routes).insert(key.clone(), reply_tx);
                let chaincode = Arc::clone(&chaincode);
                let out = out.clone();
                let routes = Arc::clone(&routes);
                tokio::task::spawn_blocking(move || {
                    let done =
                        execute_transaction(chaincode.as_ref(), message, out.clone(), reply_rx);
                    lock(&routes).remove(&key);
                    let _ = out.blocking_send(done);
                });
            }
            Type::Response | Type::Error => {
                let route = lock(&routes).get(&key).cloned();
                if let Some(route) = route {
                    let _ = route.send(message).await;
                }
            }
            // Keepalives and anything unexpected need no answer.
            _ => {}
        }
    }
    Ok(())
}
