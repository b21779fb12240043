//! A ledger in memory that answers a contract's [`Stub`] calls, for unit
//! tests of chaincode without a peer (Fabric Go's `shimtest.MockStub` idea).
//!
//! Each [`MockLedger::invoke`] runs one transaction with Fabric's
//! semantics: reads see the committed state only (not the transaction's own
//! writes), and the writes are committed when the response status is below
//! 400. Range and composite-key queries and key history are answered; rich
//! (Mango) queries and chaincode-to-chaincode calls need a peer and fail
//! with a clear error.

use std::collections::BTreeMap;

use prost::Message;
use tokio::sync::mpsc;
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::{
    ChaincodeEvent, ChaincodeMessage, DelState, GetHistoryForKey, GetState, GetStateByRange,
    PutState, QueryResponse, QueryResultBytes, Response,
};
use weft_protos::queryresult::{KeyModification, Kv};

use crate::{Chaincode, ERROR_THRESHOLD, Stub};

/// What one transaction did.
#[derive(Debug, Clone)]
pub struct MockOutcome {
    pub tx_id: String,
    pub response: Response,
    pub event: Option<ChaincodeEvent>,
    /// Every key written (None: deleted), committed only when the response
    /// succeeded and the transaction was invoked, not evaluated.
    pub writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl MockOutcome {
    /// The payload as text, or the error message when the status is 400 or
    /// above.
    pub fn result(&self) -> Result<String, String> {
        if self.response.status < ERROR_THRESHOLD {
            Ok(String::from_utf8_lossy(&self.response.payload).into_owned())
        } else {
            Err(self.response.message.clone())
        }
    }
}

/// World state and key history of one channel, in memory.
#[derive(Debug, Clone, Default)]
pub struct MockLedger {
    channel_id: String,
    state: BTreeMap<String, Vec<u8>>,
    history: BTreeMap<String, Vec<KeyModification>>,
    creator: Vec<u8>,
    transient: BTreeMap<String, Vec<u8>>,
    transactions: u64,
}

impl MockLedger {
    pub fn new(channel_id: impl Into<String>) -> Self {
        Self {
            channel_id: channel_id.into(),
            ..Self::default()
        }
    }

    /// Transactions are signed by this identity (certificate PEM), as
    /// [`Stub::creator`] and [`Stub::client_identity`] show it.
    pub fn with_creator(mut self, msp_id: &str, certificate_pem: &[u8]) -> Self {
        self.creator = SerializedIdentity {
            mspid: msp_id.into(),
            id_bytes: certificate_pem.to_vec(),
        }
        .encode_to_vec();
        self
    }

    /// Transient data for the following transactions.
    pub fn set_transient(&mut self, transient: BTreeMap<String, Vec<u8>>) {
        self.transient = transient;
    }

    /// The committed world state.
    pub fn state(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.state
    }

    /// Writes `key` directly, as a committed transaction would.
    pub fn put(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        self.record(key, Some(value), "mock-setup");
    }

    fn record(&mut self, key: &str, value: Option<Vec<u8>>, tx_id: &str) {
        let modification = KeyModification {
            tx_id: tx_id.into(),
            value: value.clone().unwrap_or_default(),
            timestamp: None,
            is_delete: value.is_none(),
        };
        self.history
            .entry(key.to_owned())
            .or_default()
            .push(modification);
        match value {
            Some(value) => self.state.insert(key.to_owned(), value),
            None => self.state.remove(key),
        };
    }

    /// Runs a transaction and commits its writes if it succeeded.
    pub fn invoke(&mut self, chaincode: &dyn Chaincode, args: &[&str]) -> MockOutcome {
        let outcome = self.run(chaincode, args);
        if outcome.response.status < ERROR_THRESHOLD {
            for (key, value) in &outcome.writes {
                self.record(key, value.clone(), &outcome.tx_id);
            }
        }
        outcome
    }

    /// Runs a transaction and commits nothing (a query).
    pub fn evaluate(&mut self, chaincode: &dyn Chaincode, args: &[&str]) -> MockOutcome {
        self.run(chaincode, args)
    }

    fn run(&mut self, chaincode: &dyn Chaincode, args: &[&str]) -> MockOutcome {
        self.transactions += 1;
        let tx_id = format!("mock-tx-{}", self.transactions);
        let (out, mut requests) = mpsc::channel(1);
        let (replies_tx, replies) = mpsc::channel(1);
        let mut stub = Stub {
            channel_id: self.channel_id.clone(),
            tx_id: tx_id.clone(),
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            proposal: None,
            creator: self.creator.clone(),
            transient: self.transient.clone(),
            event: None,
            peer: crate::PeerLink::Channels { out, replies },
        };
        let mut writes = BTreeMap::new();
        let (response, event) = std::thread::scope(|scope| {
            let transaction = scope.spawn(move || {
                let response = chaincode.invoke(&mut stub);
                (response, stub.event.take())
            });
            while let Some(request) = requests.blocking_recv() {
                let reply = self.answer(&request, &mut writes);
                if replies_tx.blocking_send(reply).is_err() {
                    break;
                }
            }
            transaction
                .join()
                .unwrap_or_else(|_| (crate::error("the chaincode panicked"), None))
        });
        MockOutcome {
            tx_id,
            response,
            event,
            writes,
        }
    }

    fn answer(
        &self,
        request: &ChaincodeMessage,
        writes: &mut BTreeMap<String, Option<Vec<u8>>>,
    ) -> ChaincodeMessage {
        let outcome = self.serve(request, writes);
        let (kind, payload) = match outcome {
            Ok(payload) => (Type::Response, payload),
            Err(message) => (Type::Error, message.into_bytes()),
        };
        ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: request.txid.clone(),
            channel_id: request.channel_id.clone(),
            ..Default::default()
        }
    }

    fn serve(
        &self,
        request: &ChaincodeMessage,
        writes: &mut BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<Vec<u8>, String> {
        let payload = request.payload.as_slice();
        let malformed = |e: prost::DecodeError| format!("malformed request: {e}");
        let public = |collection: &str| {
            if collection.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "private data (collection {collection}) is not supported by the mock ledger; test it against a peer"
                ))
            }
        };
        match Type::try_from(request.r#type) {
            Ok(Type::GetState) => {
                let get = GetState::decode(payload).map_err(malformed)?;
                public(&get.collection)?;
                Ok(self.state.get(&get.key).cloned().unwrap_or_default())
            }
            Ok(Type::PutState) => {
                let put = PutState::decode(payload).map_err(malformed)?;
                public(&put.collection)?;
                if put.key.is_empty() {
                    return Err("an empty key is not allowed".into());
                }
                writes.insert(put.key, Some(put.value));
                Ok(Vec::new())
            }
            Ok(Type::DelState) => {
                let del = DelState::decode(payload).map_err(malformed)?;
                public(&del.collection)?;
                writes.insert(del.key, None);
                Ok(Vec::new())
            }
            Ok(Type::GetStateByRange) => {
                let range = GetStateByRange::decode(payload).map_err(malformed)?;
                public(&range.collection)?;
                let results = self
                    .state
                    .range(range.start_key.clone()..)
                    .take_while(|(key, _)| range.end_key.is_empty() || **key < range.end_key)
                    .map(|(key, value)| QueryResultBytes {
                        result_bytes: Kv {
                            namespace: String::new(),
                            key: key.clone(),
                            value: value.clone(),
                        }
                        .encode_to_vec(),
                    })
                    .collect();
                Ok(QueryResponse {
                    results,
                    ..Default::default()
                }
                .encode_to_vec())
            }
            Ok(Type::GetHistoryForKey) => {
                let history = GetHistoryForKey::decode(payload).map_err(malformed)?;
                let results = self
                    .history
                    .get(&history.key)
                    .into_iter()
                    .flatten()
                    .map(|m| QueryResultBytes {
                        result_bytes: m.encode_to_vec(),
                    })
                    .collect();
                Ok(QueryResponse {
                    results,
                    ..Default::default()
                }
                .encode_to_vec())
            }
            Ok(other) => Err(format!(
                "{} is not supported by the mock ledger; test it against a peer",
                other.as_str_name()
            )),
            Err(_) => Err(format!("unknown request type {}", request.r#type)),
        }
    }
}
