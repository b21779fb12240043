//! One connected chaincode stream: routes the chaincode's messages to the
//! transaction they belong to and answers its ledger requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::mpsc;
use weft_ledger::Page;
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::{
    ChaincodeMessage, ChaincodeSpec, DelState, GetHistoryForKey, GetQueryResult, GetState,
    GetStateByRange, GetStateMetadata, GetStateMultiple, GetStateMultipleResult, PutState,
    PutStateMetadata, QueryMetadata, QueryResponse, QueryResponseMetadata, QueryResultBytes,
    QueryStateClose, QueryStateNext, Response, StateMetadata, StateMetadataResult, WriteBatchState,
    write_record,
};
use weft_protos::queryresult::{KeyModification, Kv};

use super::{ChaincodeSupport, ExecError, Executed, Invocation};
use crate::private::Collection;
use crate::simulator::Simulator;

/// How deep chaincode-to-chaincode calls may nest.
const MAX_CALL_DEPTH: usize = 8;

type TxKey = (String, String);

/// Completes a ledger request's answer on this worker thread. Reads and
/// writes of the simulator complete when first polled, so the answer is had
/// at once; one that has to wait (a call to a chaincode on a stream) is
/// finished with this worker's other tasks handed to another thread
/// meanwhile (`block_in_place`). Handing off for every transaction, as
/// before, cost the peers a blocking-pool wake-up and two context switches
/// per endorsement.
fn answer_here<F: std::future::Future>(runtime: &tokio::runtime::Handle, answer: F) -> F::Output {
    let mut answer = std::pin::pin!(answer);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match answer.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => tokio::task::block_in_place(|| runtime.block_on(answer)),
    }
}

/// A registered chaincode stream.
pub struct Handler {
    name: String,
    to: Link,
    transactions: Mutex<HashMap<TxKey, mpsc::Sender<ChaincodeMessage>>>,
    open: AtomicBool,
}

/// How a handler reaches its chaincode.
enum Link {
    /// A message stream (classic, chaincode-as-a-service).
    Stream(mpsc::Sender<ChaincodeMessage>),
    /// A contract linked into the binary, called directly: each transaction
    /// runs on a blocking thread whose ledger requests come straight to the
    /// transaction's loop, with no stream in between.
    Direct(Arc<dyn weft_shim::Chaincode>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("name", &self.name).finish()
    }
}

/// Removes a transaction's route when its execution ends, however it ends.
struct Route<'a> {
    handler: &'a Handler,
    key: TxKey,
}

impl Drop for Route<'_> {
    fn drop(&mut self) {
        self.handler.transactions().remove(&self.key);
    }
}

fn reply(to: &ChaincodeMessage, kind: Type, payload: Vec<u8>) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        payload,
        txid: to.txid.clone(),
        channel_id: to.channel_id.clone(),
        ..Default::default()
    }
}

/// The outcome a COMPLETED or ERROR message from the chaincode carries.
fn finished(name: String, message: ChaincodeMessage) -> Result<Executed, ExecError> {
    if message.r#type == Type::Error as i32 {
        return Err(ExecError::Failed {
            name,
            message: String::from_utf8_lossy(&message.payload).into_owned(),
        });
    }
    let response =
        Response::decode(message.payload.as_slice()).map_err(|e| ExecError::Protocol {
            name: name.clone(),
            reason: format!("COMPLETED payload is not a Response: {e}"),
        })?;
    Ok(Executed {
        response,
        event: message.chaincode_event,
    })
}

/// A request the peer refuses, with the reason sent back as ERROR.
struct Refused(String);

impl<E: std::fmt::Display> From<E> for Refused {
    fn from(error: E) -> Self {
        Refused(error.to_string())
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Refused> {
    M::decode(bytes).map_err(|e| Refused(format!("malformed {what}: {e}")))
}

/// The collection `name` of chaincode `namespace`, as defined on the channel.
fn collection<'a>(
    invocation: &'a Invocation,
    namespace: &str,
    name: &str,
) -> Result<&'a Collection, Refused> {
    invocation
        .definitions
        .get(namespace)
        .and_then(|definition| definition.collections.get(name))
        .ok_or_else(|| {
            Refused(format!(
                "collection {name} is not defined for chaincode {namespace} on channel {}",
                invocation.channel_id
            ))
        })
}

/// `collection` checked for the creator's read (or write) access.
fn accessible<'a>(
    invocation: &'a Invocation,
    namespace: &str,
    name: &str,
    write: bool,
) -> Result<&'a Collection, Refused> {
    let collection = collection(invocation, namespace, name)?;
    collection
        .check_access(namespace, &invocation.creator_msp, write)
        .map_err(Refused)?;
    Ok(collection)
}

fn no_private_metadata(collection: &str) -> Result<(), Refused> {
    if collection.is_empty() {
        Ok(())
    } else {
        Err(Refused(format!(
            "metadata of private data is not supported by this peer (collection {collection:?})"
        )))
    }
}

fn page_of(metadata: &[u8]) -> Result<Option<Page>, Refused> {
    if metadata.is_empty() {
        return Ok(None);
    }
    let metadata: QueryMetadata = decode(metadata, "QueryMetadata")?;
    Ok(Some(Page {
        size: usize::try_from(metadata.page_size.max(0)).unwrap_or(0),
        bookmark: metadata.bookmark,
    }))
}

fn kv_bytes(namespace: &str, results: Vec<(String, Vec<u8>)>) -> Vec<Vec<u8>> {
    results
        .into_iter()
        .map(|(key, value)| {
            Kv {
                namespace: namespace.to_owned(),
                key,
                value,
            }
            .encode_to_vec()
        })
        .collect()
}

impl Handler {
    pub fn new(name: String, out: mpsc::Sender<ChaincodeMessage>) -> Self {
        Handler::reaching(name, Link::Stream(out))
    }

    fn reaching(name: String, to: Link) -> Self {
        Handler {
            name,
            to,
            transactions: Mutex::default(),
            open: AtomicBool::new(true),
        }
    }

    /// A handler calling the linked-in `chaincode` directly.
    pub fn in_process(name: String, chaincode: Arc<dyn weft_shim::Chaincode>) -> Self {
        Handler::reaching(name, Link::Direct(chaincode))
    }

    fn transactions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TxKey, mpsc::Sender<ChaincodeMessage>>> {
        self.transactions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
            && match &self.to {
                Link::Stream(out) => !out.is_closed(),
                Link::Direct(_) => true,
            }
    }

    /// The stream ended: every transaction in flight fails as terminated.
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
        self.transactions().clear();
    }

    /// Hands a message from the chaincode to its transaction.
    pub async fn route(&self, message: ChaincodeMessage) {
        if message.r#type == Type::Keepalive as i32 {
            return;
        }
        let key = (message.channel_id.clone(), message.txid.clone());
        let route = self.transactions().get(&key).cloned();
        match route {
            Some(route) => {
                let _ = route.send(message).await;
            }
            None => weft_node::refusal!(
                "chaincode {}: message type {} for unknown transaction {}",
                self.name,
                message.r#type,
                message.txid.escape_debug()
            ),
        }
    }

    pub(super) async fn execute(
        &self,
        support: &Arc<ChaincodeSupport>,
        name: &str,
        invocation: Invocation,
        simulator: &mut Simulator,
        depth: usize,
    ) -> Result<Executed, ExecError> {
        let name = name.to_owned();
        let key = (invocation.channel_id.clone(), invocation.tx_id.clone());
        let (route_tx, mut messages) = mpsc::channel(4);
        {
            let mut transactions = self.transactions();
            if transactions.contains_key(&key) {
                return Err(ExecError::Duplicate {
                    name,
                    tx_id: invocation.tx_id,
                });
            }
            transactions.insert(key.clone(), route_tx.clone());
        }
        // A direct contract sends its requests on the route itself; a
        // stream's messages come through `route`.
        let requests = matches!(self.to, Link::Direct(_)).then_some(route_tx);
        let _route = Route { handler: self, key };
        let terminated = || ExecError::Terminated {
            name: name.clone(),
            tx_id: invocation.tx_id.clone(),
        };
        let start = ChaincodeMessage {
            r#type: if invocation.init {
                Type::Init
            } else {
                Type::Transaction
            } as i32,
            payload: invocation.input.encode_to_vec(),
            txid: invocation.tx_id.clone(),
            channel_id: invocation.channel_id.clone(),
            proposal: invocation.proposal.clone(),
            ..Default::default()
        };
        let timeout = support.limits.execute_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // A linked-in contract on a multi-threaded runtime runs on this
        // thread, its ledger requests answered in place: no task or channel
        // hop per request.
        if let Link::Direct(chaincode) = &self.to
            && tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return self.execute_in_place(
                support,
                &name,
                &invocation,
                chaincode.as_ref(),
                start,
                simulator,
                depth,
                deadline,
            );
        }
        // Where answers to the chaincode's requests go.
        let answers = match &self.to {
            Link::Stream(out) => {
                out.send(start).await.map_err(|_| terminated())?;
                out.clone()
            }
            Link::Direct(chaincode) => {
                let (answers, replies) = mpsc::channel(1);
                let chaincode = Arc::clone(chaincode);
                let requests = requests.ok_or_else(terminated)?;
                tokio::task::spawn_blocking(move || {
                    let done = weft_shim::execute_transaction(
                        chaincode.as_ref(),
                        start,
                        requests.clone(),
                        replies,
                    );
                    let _ = requests.blocking_send(done);
                });
                answers
            }
        };
        loop {
            let message = match tokio::time::timeout_at(deadline, messages.recv()).await {
                Err(_) => {
                    return Err(ExecError::Timeout {
                        name,
                        tx_id: invocation.tx_id,
                        seconds: timeout.as_secs(),
                    });
                }
                Ok(None) => return Err(terminated()),
                Ok(Some(message)) => message,
            };
            match Type::try_from(message.r#type) {
                Ok(Type::Completed | Type::Error) => return finished(name, message),
                _ => {
                    let answer = self
                        .reply_to(support, &name, &invocation, &message, simulator, depth)
                        .await;
                    answers.send(answer).await.map_err(|_| terminated())?;
                }
            }
        }
    }

    /// The RESPONSE or ERROR to one ledger request of a transaction, counted
    /// in the shim request metrics.
    async fn reply_to(
        &self,
        support: &Arc<ChaincodeSupport>,
        name: &str,
        invocation: &Invocation,
        message: &ChaincodeMessage,
        simulator: &mut Simulator,
        depth: usize,
    ) -> ChaincodeMessage {
        let kind = Type::try_from(message.r#type).map_or("UNKNOWN", |k| k.as_str_name());
        let channel = invocation.channel_id.as_str();
        support.metrics.shim_received(kind, channel, name);
        let started = std::time::Instant::now();
        let answered = self
            .answer(support, name, invocation, message, simulator, depth)
            .await;
        support
            .metrics
            .shim_completed(kind, channel, name, answered.is_ok(), started);
        match answered {
            Ok(payload) => reply(message, Type::Response, payload),
            Err(Refused(reason)) => reply(message, Type::Error, reason.into_bytes()),
        }
    }

    /// Runs a linked-in contract's transaction on this worker thread, each
    /// ledger request answered in place (see [`answer_here`]). Past
    /// `deadline`, requests are refused and the transaction fails with a
    /// timeout; a contract that computes without calling the ledger cannot be
    /// interrupted.
    #[allow(clippy::too_many_arguments)]
    fn execute_in_place(
        &self,
        support: &Arc<ChaincodeSupport>,
        name: &str,
        invocation: &Invocation,
        chaincode: &dyn weft_shim::Chaincode,
        start: ChaincodeMessage,
        simulator: &mut Simulator,
        depth: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Executed, ExecError> {
        let runtime = tokio::runtime::Handle::current();
        let mut timed_out = false;
        let mut call = |message: ChaincodeMessage| {
            if tokio::time::Instant::now() >= deadline {
                timed_out = true;
                return None;
            }
            Some(answer_here(
                &runtime,
                self.reply_to(support, name, invocation, &message, simulator, depth),
            ))
        };
        let done = weft_shim::execute_transaction_with(chaincode, start, &mut call);
        if timed_out {
            return Err(ExecError::Timeout {
                name: name.to_owned(),
                tx_id: invocation.tx_id.clone(),
                seconds: support.limits.execute_timeout.as_secs(),
            });
        }
        finished(name.to_owned(), done)
    }

    /// Answers one ledger request of a transaction.
    async fn answer(
        &self,
        support: &Arc<ChaincodeSupport>,
        namespace: &str,
        invocation: &Invocation,
        message: &ChaincodeMessage,
        simulator: &mut Simulator,
        depth: usize,
    ) -> Result<Vec<u8>, Refused> {
        let payload = message.payload.as_slice();
        let kind = Type::try_from(message.r#type)
            .map_err(|_| Refused(format!("unknown message type {}", message.r#type)))?;
        match kind {
            Type::GetState => {
                let request: GetState = decode(payload, "GetState")?;
                if request.collection.is_empty() {
                    return Ok(simulator.get_state(namespace, &request.key)?);
                }
                accessible(invocation, namespace, &request.collection, false)?;
                Ok(simulator.get_private_data(namespace, &request.collection, &request.key)?)
            }
            Type::GetStateMultiple => {
                let request: GetStateMultiple = decode(payload, "GetStateMultiple")?;
                let private = !request.collection.is_empty();
                if private {
                    accessible(invocation, namespace, &request.collection, false)?;
                }
                let mut values = Vec::with_capacity(request.keys.len());
                for key in &request.keys {
                    values.push(if private {
                        simulator.get_private_data(namespace, &request.collection, key)?
                    } else {
                        simulator.get_state(namespace, key)?
                    });
                }
                Ok(GetStateMultipleResult { values }.encode_to_vec())
            }
            Type::PutState => {
                let request: PutState = decode(payload, "PutState")?;
                if request.key.is_empty() {
                    return Err(Refused("PUT_STATE with an empty key".into()));
                }
                self.write(
                    invocation,
                    namespace,
                    simulator,
                    &request.collection,
                    &request.key,
                    Some(request.value),
                )?;
                Ok(Vec::new())
            }
            Type::DelState => {
                let request: DelState = decode(payload, "DelState")?;
                self.write(
                    invocation,
                    namespace,
                    simulator,
                    &request.collection,
                    &request.key,
                    None,
                )?;
                Ok(Vec::new())
            }
            Type::WriteBatchState => {
                let batch: WriteBatchState = decode(payload, "WriteBatchState")?;
                for record in batch.rec {
                    match write_record::Type::try_from(record.r#type) {
                        Ok(write_record::Type::PutState) => self.write(
                            invocation,
                            namespace,
                            simulator,
                            &record.collection,
                            &record.key,
                            Some(record.value),
                        )?,
                        Ok(write_record::Type::DelState) => self.write(
                            invocation,
                            namespace,
                            simulator,
                            &record.collection,
                            &record.key,
                            None,
                        )?,
                        Ok(write_record::Type::PutStateMetadata) => {
                            no_private_metadata(&record.collection)?;
                            let metadata = record.metadata.unwrap_or_default();
                            simulator.put_state_metadata(
                                namespace,
                                &record.key,
                                &metadata.metakey,
                                metadata.value,
                            )
                        }
                        _ => {
                            return Err(Refused(format!(
                                "unsupported write record type {}",
                                record.r#type
                            )));
                        }
                    }
                }
                Ok(Vec::new())
            }
            Type::GetStateMetadata => {
                let request: GetStateMetadata = decode(payload, "GetStateMetadata")?;
                no_private_metadata(&request.collection)?;
                let entries = simulator
                    .get_state_metadata(namespace, &request.key)?
                    .into_iter()
                    .map(|(metakey, value)| StateMetadata { metakey, value })
                    .collect();
                Ok(StateMetadataResult { entries }.encode_to_vec())
            }
            Type::PutStateMetadata => {
                let request: PutStateMetadata = decode(payload, "PutStateMetadata")?;
                no_private_metadata(&request.collection)?;
                let metadata = request
                    .metadata
                    .ok_or_else(|| Refused("PUT_STATE_METADATA without metadata".into()))?;
                simulator.put_state_metadata(
                    namespace,
                    &request.key,
                    &metadata.metakey,
                    metadata.value,
                );
                Ok(Vec::new())
            }
            Type::GetStateByRange => {
                let request: GetStateByRange = decode(payload, "GetStateByRange")?;
                if !request.collection.is_empty() {
                    accessible(invocation, namespace, &request.collection, false)?;
                    if !request.metadata.is_empty() {
                        return Err(Refused(
                            "pagination is not supported for private data range queries".into(),
                        ));
                    }
                    let results = simulator.get_private_data_range(
                        namespace,
                        &request.collection,
                        &request.start_key,
                        &request.end_key,
                    )?;
                    return Ok(self.first_page(simulator, namespace, results, None));
                }
                let page = page_of(&request.metadata)?;
                let (results, bookmark) = simulator.get_state_range(
                    namespace,
                    &request.start_key,
                    &request.end_key,
                    page.as_ref(),
                )?;
                Ok(self.first_page(simulator, namespace, results, page.map(|_| bookmark)))
            }
            Type::GetQueryResult => {
                let request: GetQueryResult = decode(payload, "GetQueryResult")?;
                let page = page_of(&request.metadata)?;
                let queried = if request.collection.is_empty() {
                    namespace.to_owned()
                } else {
                    accessible(invocation, namespace, &request.collection, false)?;
                    if page.is_some() {
                        return Err(Refused(
                            "pagination is not supported for private data queries".into(),
                        ));
                    }
                    weft_ledger::private_namespace(namespace, &request.collection)
                };
                let result =
                    simulator
                        .ledger()
                        .get_query_result(&queried, &request.query, page.as_ref())?;
                Ok(self.first_page(
                    simulator,
                    namespace,
                    result.results,
                    page.map(|_| result.bookmark),
                ))
            }
            Type::GetHistoryForKey => {
                let request: GetHistoryForKey = decode(payload, "GetHistoryForKey")?;
                let entries = simulator
                    .ledger()
                    .get_history_for_key(namespace, &request.key)?;
                let results = entries
                    .into_iter()
                    .map(|entry| {
                        KeyModification {
                            tx_id: entry.tx_id,
                            value: entry.value,
                            timestamp: Some(entry.timestamp),
                            is_delete: entry.is_delete,
                        }
                        .encode_to_vec()
                    })
                    .collect();
                let (first, has_more, id) = simulator.open_iterator(results);
                Ok(query_response(first, has_more, id, Vec::new()))
            }
            Type::QueryStateNext => {
                let request: QueryStateNext = decode(payload, "QueryStateNext")?;
                let (page, has_more) = simulator
                    .next_page(&request.id)
                    .ok_or_else(|| Refused(format!("query iterator {} not found", request.id)))?;
                Ok(query_response(page, has_more, request.id, Vec::new()))
            }
            Type::QueryStateClose => {
                let request: QueryStateClose = decode(payload, "QueryStateClose")?;
                simulator.close_iterator(&request.id);
                Ok(query_response(Vec::new(), false, request.id, Vec::new()))
            }
            Type::InvokeChaincode => {
                let spec: ChaincodeSpec = decode(payload, "ChaincodeSpec")?;
                let target = spec.chaincode_id.map(|id| id.name).unwrap_or_default();
                let (callee, channel) = match target.split_once('/') {
                    Some((callee, channel)) => (callee.to_owned(), channel.to_owned()),
                    None => (target.clone(), invocation.channel_id.clone()),
                };
                if channel != invocation.channel_id {
                    return Err(Refused(format!(
                        "calling chaincode {callee} on another channel ({channel}) is not supported"
                    )));
                }
                if depth >= MAX_CALL_DEPTH {
                    return Err(Refused(format!(
                        "chaincode calls nest deeper than {MAX_CALL_DEPTH}"
                    )));
                }
                let nested = Invocation {
                    input: spec.input.unwrap_or_default(),
                    init: false,
                    ..invocation.clone()
                };
                let executed = support
                    .execute(&callee, nested, simulator, depth + 1)
                    .await?;
                Ok(ChaincodeMessage {
                    r#type: Type::Completed as i32,
                    payload: executed.response.encode_to_vec(),
                    txid: invocation.tx_id.clone(),
                    channel_id: invocation.channel_id.clone(),
                    chaincode_event: executed.event,
                    ..Default::default()
                }
                .encode_to_vec())
            }
            Type::GetPrivateDataHash => {
                let request: GetState = decode(payload, "GetState")?;
                collection(invocation, namespace, &request.collection)?;
                Ok(
                    simulator.get_private_data_hash(
                        namespace,
                        &request.collection,
                        &request.key,
                    )?,
                )
            }
            Type::PurgePrivateData => Err(Refused(
                "purging private data is not supported by this peer; delete the key instead".into(),
            )),
            other => Err(Refused(format!(
                "message type {} is not a request the peer answers",
                other.as_str_name()
            ))),
        }
    }

    /// A public write, or a private one checked against the collection.
    fn write(
        &self,
        invocation: &Invocation,
        namespace: &str,
        simulator: &mut Simulator,
        collection: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<(), Refused> {
        if collection.is_empty() {
            match value {
                Some(value) => simulator.put_state(namespace, key, value),
                None => simulator.del_state(namespace, key),
            }
            return Ok(());
        }
        accessible(invocation, namespace, collection, true)?;
        if key.is_empty() {
            return Err(Refused("a private data key is empty".into()));
        }
        simulator.write_private_data(namespace, collection, key, value);
        Ok(())
    }

    /// The first page of results; paginated queries return their page whole
    /// with the bookmark in the response metadata.
    fn first_page(
        &self,
        simulator: &mut Simulator,
        namespace: &str,
        results: Vec<(String, Vec<u8>)>,
        bookmark: Option<String>,
    ) -> Vec<u8> {
        let count = results.len();
        let results = kv_bytes(namespace, results);
        match bookmark {
            Some(bookmark) => {
                let metadata = QueryResponseMetadata {
                    fetched_records_count: i32::try_from(count).unwrap_or(i32::MAX),
                    bookmark,
                }
                .encode_to_vec();
                query_response(results, false, String::new(), metadata)
            }
            None => {
                let (first, has_more, id) = simulator.open_iterator(results);
                query_response(first, has_more, id, Vec::new())
            }
        }
    }
}

fn query_response(results: Vec<Vec<u8>>, has_more: bool, id: String, metadata: Vec<u8>) -> Vec<u8> {
    QueryResponse {
        results: results
            .into_iter()
            .map(|result_bytes| QueryResultBytes { result_bytes })
            .collect(),
        has_more,
        id,
        metadata,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_ledger::{Ledger, LedgerConfig};
    use weft_protos::peer::ChaincodeInput;

    use super::*;
    use crate::config::Limits;

    const CHANNEL: &str = "mychannel";

    /// A handler whose chaincode end is `to_chaincode`, a support with
    /// `timeout` per execution, and a simulator over an empty ledger.
    struct Rig {
        handler: Arc<Handler>,
        to_chaincode: mpsc::Receiver<ChaincodeMessage>,
        support: Arc<ChaincodeSupport>,
        ledger: Arc<Ledger>,
        simulator: Simulator,
        _dir: tempfile::TempDir,
    }

    fn rig(timeout: Duration) -> Rig {
        let (out, to_chaincode) = mpsc::channel(16);
        let limits = Limits {
            execute_timeout: timeout,
            ..Limits::default()
        };
        let dir = tempfile::tempdir().expect("dir");
        let ledger = Arc::new(
            Ledger::open(dir.path(), CHANNEL, LedgerConfig::default())
                .expect("ledger")
                .0,
        );
        Rig {
            handler: Arc::new(Handler::new("cc".into(), out)),
            to_chaincode,
            support: ChaincodeSupport::new(
                Vec::new(),
                HashMap::new(),
                limits,
                crate::chaincode::credentials::ChaincodeCredentials::new("test").expect("ca"),
                crate::metrics::ChaincodeMetrics::register(
                    &weft_node::metrics::Registry::disabled(),
                ),
            ),
            simulator: Simulator::new(Arc::clone(&ledger)),
            ledger,
            _dir: dir,
        }
    }

    fn invocation(tx_id: &str) -> Invocation {
        Invocation {
            channel_id: CHANNEL.into(),
            tx_id: tx_id.into(),
            input: ChaincodeInput {
                args: vec![b"Fn".to_vec()],
                ..Default::default()
            },
            proposal: None,
            init: false,
            definitions: Arc::default(),
            creator_msp: "Org1MSP".into(),
        }
    }

    fn message(kind: Type, tx_id: &str, payload: Vec<u8>) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: tx_id.into(),
            channel_id: CHANNEL.into(),
            ..Default::default()
        }
    }

    /// Sends `request` as the chaincode and returns the peer's answer.
    async fn ask(
        handler: &Handler,
        to_chaincode: &mut mpsc::Receiver<ChaincodeMessage>,
        request: ChaincodeMessage,
    ) -> ChaincodeMessage {
        handler.route(request).await;
        to_chaincode.recv().await.expect("an answer")
    }

    fn completed(tx_id: &str, payload: &[u8]) -> ChaincodeMessage {
        let response = Response {
            status: 200,
            message: String::new(),
            payload: payload.to_vec(),
        };
        message(Type::Completed, tx_id, response.encode_to_vec())
    }

    /// Reads `k`, writes `k` = its value + "!", reads a private key it may
    /// not see, and returns what it read; notes the thread it ran on.
    #[derive(Default)]
    struct Appender {
        ran_on: Mutex<Option<std::thread::ThreadId>>,
    }

    impl weft_shim::Chaincode for Appender {
        fn invoke(&self, stub: &mut weft_shim::Stub) -> Response {
            *self.ran_on.lock().expect("lock") = Some(std::thread::current().id());
            let old = match stub.get_state("k") {
                Ok(old) => old.unwrap_or_default(),
                Err(e) => return weft_shim::error(e.to_string()),
            };
            let mut new = old.clone();
            new.push(b'!');
            if let Err(e) = stub.put_state("k", new) {
                return weft_shim::error(e.to_string());
            }
            match stub.get_private_data("nosuch", "k") {
                Ok(_) => weft_shim::error("an undefined collection was readable"),
                Err(e) => weft_shim::success(format!("{}|{e}", String::from_utf8_lossy(&old))),
            }
        }
    }

    /// A linked contract's response and the keys it wrote.
    type LinkedOutcome = Result<(Response, Vec<(String, Vec<u8>)>), ExecError>;

    /// Runs [`Appender`] through a linked-in handler; returns its response
    /// and the keys it wrote, and whether it ran on this thread.
    async fn run_linked(timeout: Duration) -> (LinkedOutcome, bool) {
        let mut rig = rig(timeout);
        let appender = Arc::new(Appender::default());
        let handler = Handler::in_process("cc".into(), Arc::clone(&appender) as _);
        let outcome = linked_outcome(&handler, &mut rig).await;
        let ran_here = *appender.ran_on.lock().expect("lock") == Some(std::thread::current().id());
        (outcome, ran_here)
    }

    async fn linked_outcome(handler: &Handler, rig: &mut Rig) -> LinkedOutcome {
        let executed = handler
            .execute(&rig.support, "cc", invocation("tx1"), &mut rig.simulator, 0)
            .await?;
        let results = rig.simulator.results();
        let writes = results
            .public
            .iter()
            .flat_map(|ns| ns.rwset.writes.iter())
            .map(|w| (w.key.clone(), w.value.clone()))
            .collect();
        Ok((executed.response, writes))
    }

    fn check_linked(outcome: LinkedOutcome) {
        let (response, writes) = outcome.expect("executed");
        assert_eq!(response.status, 200, "{response:?}");
        let text = String::from_utf8_lossy(&response.payload).into_owned();
        assert!(
            text.starts_with('|') && text.contains("collection nosuch is not defined"),
            "the read of k was empty and the refusal reached the contract: {text}"
        );
        assert_eq!(writes, [("k".to_owned(), b"!".to_vec())]);
    }

    // On a multi-threaded runtime the contract runs in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_linked_contract_is_answered_in_place() {
        let (outcome, ran_here) = run_linked(Duration::from_secs(10)).await;
        check_linked(outcome);
        assert!(ran_here, "the contract ran on the caller's thread");
    }

    // An answer that has to wait for another task is had on the contract's
    // thread, while the runtime's only worker runs that task elsewhere
    // (without the hand-off this would never finish).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_answer_that_waits_is_finished_on_the_callers_thread() {
        let runtime = tokio::runtime::Handle::current();
        let caller = std::thread::current().id();
        let (sent, received) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = sent.send(7);
        });
        let (answered_on, answer) = answer_here(&runtime, async {
            let answer = received.await.expect("the other task answered");
            (std::thread::current().id(), answer)
        });
        assert_eq!(answered_on, caller);
        assert_eq!(answer, 7);
    }

    // On a current-thread runtime it runs on a blocking thread over channels.
    #[tokio::test]
    async fn a_linked_contract_is_answered_over_channels_on_a_current_thread_runtime() {
        let (outcome, ran_here) = run_linked(Duration::from_secs(10)).await;
        check_linked(outcome);
        assert!(!ran_here, "the contract ran on a blocking thread");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_linked_contract_past_its_deadline_times_out() {
        let (outcome, _) = run_linked(Duration::ZERO).await;
        assert!(
            matches!(outcome, Err(ExecError::Timeout { .. })),
            "{:?}",
            outcome.map(|(response, _)| response)
        );
    }

    #[tokio::test]
    async fn requests_are_answered_until_the_chaincode_completes() {
        let Rig {
            handler,
            mut to_chaincode,
            support,
            mut simulator,
            _dir,
            ..
        } = rig(Duration::from_secs(10));
        let chaincode = {
            let handler = Arc::clone(&handler);
            async move {
                let start = to_chaincode.recv().await.expect("TRANSACTION");
                assert_eq!(start.r#type, Type::Transaction as i32);
                assert_eq!(start.txid, "tx1");
                let input = ChaincodeInput::decode(start.payload.as_slice()).expect("input");
                assert_eq!(input.args, [b"Fn".to_vec()]);

                let put = PutState {
                    key: "k".into(),
                    value: b"v".to_vec(),
                    collection: String::new(),
                };
                let answer = ask(
                    &handler,
                    &mut to_chaincode,
                    message(Type::PutState, "tx1", put.encode_to_vec()),
                )
                .await;
                assert_eq!(answer.r#type, Type::Response as i32);
                let get = GetState {
                    key: "k".into(),
                    collection: String::new(),
                };
                let answer = ask(
                    &handler,
                    &mut to_chaincode,
                    message(Type::GetState, "tx1", get.encode_to_vec()),
                )
                .await;
                assert_eq!(
                    (answer.r#type, answer.payload.as_slice()),
                    (Type::Response as i32, &b""[..]),
                    "no read of its own write"
                );

                let private = GetState {
                    key: "k".into(),
                    collection: "secrets".into(),
                };
                let answer = ask(
                    &handler,
                    &mut to_chaincode,
                    message(Type::GetState, "tx1", private.encode_to_vec()),
                )
                .await;
                assert_eq!(answer.r#type, Type::Error as i32);
                assert!(
                    String::from_utf8_lossy(&answer.payload)
                        .contains("collection secrets is not defined for chaincode cc")
                );
                let answer = ask(
                    &handler,
                    &mut to_chaincode,
                    message(Type::GetState, "tx1", vec![0xff, 0xff]),
                )
                .await;
                assert_eq!(answer.r#type, Type::Error as i32);
                assert!(String::from_utf8_lossy(&answer.payload).starts_with("malformed GetState"));
                let answer = ask(
                    &handler,
                    &mut to_chaincode,
                    message(Type::Register, "tx1", Vec::new()),
                )
                .await;
                assert_eq!(
                    answer.r#type,
                    Type::Error as i32,
                    "REGISTER inside a transaction is refused"
                );

                // Messages of transactions this stream does not run are dropped.
                handler
                    .route(message(Type::GetState, "other", get.encode_to_vec()))
                    .await;
                handler
                    .route(message(Type::Keepalive, "tx1", Vec::new()))
                    .await;
                handler.route(completed("tx1", b"done")).await;
                to_chaincode
            }
        };
        let (executed, mut to_chaincode) = tokio::join!(
            handler.execute(&support, "cc", invocation("tx1"), &mut simulator, 0),
            chaincode
        );
        let executed = executed.expect("executed");
        assert_eq!(executed.response.payload, b"done");
        let rwsets = simulator.results().public;
        assert_eq!(rwsets[0].rwset.writes[0].key, "k");
        assert!(
            to_chaincode.try_recv().is_err(),
            "nothing answered the stray messages"
        );
        assert!(handler.transactions().is_empty(), "the route is gone");
    }

    #[tokio::test]
    async fn duplicate_transactions_errors_timeouts_and_terminations() {
        let Rig {
            handler,
            mut to_chaincode,
            support,
            ledger,
            mut simulator,
            _dir,
        } = rig(Duration::from_millis(300));
        let mut second = Simulator::new(ledger);
        // tx1 runs; the same tx id again is refused, then the chaincode fails tx1.
        let both = async {
            let first = handler.execute(&support, "cc", invocation("tx1"), &mut simulator, 0);
            let duplicate = async {
                to_chaincode.recv().await.expect("TRANSACTION");
                let duplicate = handler
                    .execute(&support, "cc", invocation("tx1"), &mut second, 0)
                    .await;
                handler
                    .route(message(Type::Error, "tx1", b"boom".to_vec()))
                    .await;
                duplicate
            };
            tokio::join!(first, duplicate)
        };
        let (first, duplicate) = both.await;
        assert!(
            matches!(duplicate, Err(ExecError::Duplicate { .. })),
            "{duplicate:?}"
        );
        match first {
            Err(ExecError::Failed { message, .. }) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }

        // No answer within the execution timeout.
        let silent = handler
            .execute(&support, "cc", invocation("tx2"), &mut simulator, 0)
            .await;
        assert!(
            matches!(silent, Err(ExecError::Timeout { .. })),
            "{silent:?}"
        );

        // The stream ends while a transaction waits: it fails as terminated.
        let waiting = handler.execute(&support, "cc", invocation("tx3"), &mut simulator, 0);
        let close = async {
            while to_chaincode.recv().await.map(|m| m.txid) != Some("tx3".into()) {}
            handler.close();
        };
        let (terminated, ()) = tokio::join!(waiting, close);
        assert!(
            matches!(terminated, Err(ExecError::Terminated { .. })),
            "{terminated:?}"
        );
        assert!(!handler.is_open());
    }

    /// Definitions where chaincode `cc` has collection `secrets`, Org1 only,
    /// readable and writable by Org1's clients only.
    fn with_secrets(mut invocation: Invocation, creator_msp: &str) -> Invocation {
        let orgs = vec!["Org1MSP".to_owned(), "Org2MSP".to_owned()];
        let mut collections = crate::private::collections(None, &orgs).expect("implicit");
        let mut secrets = crate::private::Collection::implicit("Org1MSP");
        secrets.name = "secrets".into();
        secrets.member_only_read = true;
        secrets.member_only_write = true;
        collections.insert("secrets".into(), secrets);
        let mut definitions = crate::lifecycle::Definitions::default();
        definitions.chaincodes.insert(
            "cc".into(),
            crate::lifecycle::Definition {
                name: "cc".into(),
                sequence: 1,
                version: "1".into(),
                policy: weft_policy::SignaturePolicy::parse("OR('Org1MSP.peer')").expect("policy"),
                package_id: None,
                collections,
            },
        );
        invocation.definitions = Arc::new(definitions);
        invocation.creator_msp = creator_msp.into();
        invocation
    }

    /// Runs `requests` in one transaction and returns each answer.
    async fn run_requests(
        rig: &mut Rig,
        invocation: Invocation,
        requests: Vec<(Type, Vec<u8>)>,
    ) -> Vec<ChaincodeMessage> {
        let tx_id = invocation.tx_id.clone();
        let handler = Arc::clone(&rig.handler);
        let to_chaincode = &mut rig.to_chaincode;
        let chaincode = async move {
            to_chaincode.recv().await.expect("TRANSACTION");
            let mut answers = Vec::new();
            for (kind, payload) in requests {
                answers.push(ask(&handler, to_chaincode, message(kind, &tx_id, payload)).await);
            }
            handler.route(completed(&tx_id, b"")).await;
            answers
        };
        let (executed, answers) = tokio::join!(
            rig.handler
                .execute(&rig.support, "cc", invocation, &mut rig.simulator, 0),
            chaincode
        );
        executed.expect("executed");
        answers
    }

    fn text(answer: &ChaincodeMessage) -> String {
        String::from_utf8_lossy(&answer.payload).into_owned()
    }

    #[tokio::test]
    async fn private_data_is_hashed_in_the_public_rwset_and_access_is_checked() {
        let mut rig = rig(Duration::from_secs(10));
        let in_secrets = |key: &str| GetState {
            key: key.into(),
            collection: "secrets".into(),
        };
        let put = PutState {
            key: "k".into(),
            value: b"hidden".to_vec(),
            collection: "secrets".into(),
        };
        let del = DelState {
            key: "d".into(),
            collection: "secrets".into(),
        };
        let unknown = GetState {
            key: "k".into(),
            collection: "nosuch".into(),
        };
        let answers = run_requests(
            &mut rig,
            with_secrets(invocation("tx1"), "Org1MSP"),
            vec![
                (Type::PutState, put.encode_to_vec()),
                (Type::DelState, del.encode_to_vec()),
                (Type::GetState, in_secrets("k").encode_to_vec()),
                (Type::GetPrivateDataHash, in_secrets("k").encode_to_vec()),
                (Type::GetState, unknown.encode_to_vec()),
                (Type::PurgePrivateData, in_secrets("k").encode_to_vec()),
            ],
        )
        .await;
        let kinds: Vec<i32> = answers.iter().map(|a| a.r#type).collect();
        let (ok, error) = (Type::Response as i32, Type::Error as i32);
        assert_eq!(kinds, [ok, ok, ok, ok, error, error], "{answers:?}");
        assert!(answers[2].payload.is_empty(), "nothing committed yet");
        assert!(text(&answers[4]).contains("collection nosuch is not defined"));
        assert!(text(&answers[5]).contains("purging private data is not supported"));

        let results = rig.simulator.results();
        let namespace = &results.public[0];
        assert_eq!(namespace.namespace, "cc");
        assert!(
            namespace.rwset.writes.is_empty(),
            "no plain write in public"
        );
        let collection = &namespace.collections[0];
        assert_eq!(collection.name, "secrets");
        let hashed: Vec<(Vec<u8>, bool, Vec<u8>)> = collection
            .hashed
            .hashed_writes
            .iter()
            .map(|w| (w.key_hash.clone(), w.is_delete, w.value_hash.clone()))
            .collect();
        let sha = |b: &[u8]| weft_crypto::sha256(b).to_vec();
        assert_eq!(
            hashed,
            [
                (sha(b"d"), true, Vec::new()),
                (sha(b"k"), false, sha(b"hidden"))
            ]
        );
        assert_eq!(
            collection.hashed.hashed_reads.len(),
            1,
            "one hashed read of k"
        );
        let private = results.private.expect("a private rwset");
        let bytes = &private.ns_pvt_rwset[0].collection_pvt_rwset[0].rwset;
        assert_eq!(collection.pvt_rwset_hash, sha(bytes));
        let writes = weft_protos::kvrwset::KvrwSet::decode(bytes.as_slice()).expect("kvrwset");
        assert_eq!(writes.writes[1].value, b"hidden");

        // A client of Org2 may neither read nor write Org1's collection.
        rig.simulator = Simulator::new(Arc::clone(&rig.ledger));
        let answers = run_requests(
            &mut rig,
            with_secrets(invocation("tx2"), "Org2MSP"),
            vec![
                (Type::PutState, put.encode_to_vec()),
                (Type::GetState, in_secrets("k").encode_to_vec()),
                (Type::GetPrivateDataHash, in_secrets("k").encode_to_vec()),
            ],
        )
        .await;
        assert!(
            text(&answers[0]).contains("does not have write access"),
            "{answers:?}"
        );
        assert!(
            text(&answers[1]).contains("does not have read access"),
            "{answers:?}"
        );
        assert_eq!(answers[2].r#type, ok, "hashes are for everyone");
        assert!(rig.simulator.results().private.is_none());
    }
}
