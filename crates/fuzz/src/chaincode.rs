//! The chaincode session harness: a fake chaincode registers with a real
//! `ChaincodeSupport` and answers each transaction with a script of
//! (mutated) chaincode messages — ledger reads and writes, range and rich
//! queries with pagination, iterators, private data, metadata, calls to
//! other chaincodes — which the peer's handler answers against a ledger
//! that holds committed state. A panic in the handler, the simulator or the
//! stream task is a crash.
//!
//! An input is a sequence of length-delimited `ChaincodeMessage`s (at most
//! [`SCRIPT_MAX`]); each message's transaction and channel are set to the
//! running transaction's, so every one reaches the handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use weft_ledger::{EndorsementPolicies, Ledger, LedgerConfig, SignatureCache, Validator};
use weft_peer::chaincode::{ChaincodeSupport, ExecError, Executed, Invocation};
use weft_peer::config::{ChaincodeConfig, LauncherConfig, Limits};
use weft_peer::lifecycle::{Definition, Definitions};
use weft_peer::simulator::Simulator;
use weft_protos::kvrwset::{KvWrite, KvrwSet};
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::{
    ChaincodeId, ChaincodeInput, ChaincodeMessage, ChaincodeSpec, DelState, GetHistoryForKey,
    GetQueryResult, GetState, GetStateByRange, GetStateMetadata, PutState, PutStateMetadata,
    QueryMetadata, QueryStateClose, QueryStateNext, StateMetadata,
};
use weft_protoutil::NamespaceRwSet;
use weft_testkit::{Chain, TestNetwork};

/// The chaincode's name and package id.
const NAME: &str = "fuzzcc";
const PACKAGE: &str = "fuzzcc:1";
const CHANNEL: &str = "mychannel";
const ORG: &str = "Org1MSP";
/// Messages of one script that reach the handler.
pub const SCRIPT_MAX: usize = 16;

/// One peer side and one fake chaincode, kept across inputs.
struct Rig {
    runtime: tokio::runtime::Runtime,
    support: Arc<ChaincodeSupport>,
    ledger: Arc<Ledger>,
    definitions: Arc<Definitions>,
    script: Arc<Mutex<Vec<ChaincodeMessage>>>,
    stream: tokio::task::JoinHandle<Result<(), String>>,
    transactions: u64,
    _dir: tempfile::TempDir,
}

/// Runs one input; rebuilds the rig after a crash.
pub fn session() -> impl Fn(&[u8]) + Send + Sync {
    let rig: Mutex<Option<Rig>> = Mutex::new(None);
    move |bytes: &[u8]| {
        let mut slot = rig.lock().unwrap_or_else(|p| p.into_inner());
        // A rig whose last input panicked is dropped and built again.
        let rig = match slot.take() {
            Some(rig) => slot.insert(rig),
            None => slot.insert(Rig::new()),
        };
        let (_, simulator) = rig.run(bytes);
        // What the endorser builds from a simulation.
        let _ = simulator.results();
        if rig.stream.is_finished() {
            let rig = slot.take().expect("rig");
            match rig.runtime.block_on(rig.stream) {
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                ended => panic!("the chaincode stream ended: {ended:?}"),
            }
        }
    }
}

fn decode_script(mut bytes: &[u8]) -> Vec<ChaincodeMessage> {
    let mut script = Vec::new();
    while !bytes.is_empty() && script.len() < SCRIPT_MAX {
        match ChaincodeMessage::decode_length_delimited(&mut bytes) {
            Ok(message) => script.push(message),
            Err(_) => break,
        }
    }
    script
}

impl Rig {
    /// Runs one transaction whose chaincode answers with `bytes`' script.
    fn run(&mut self, bytes: &[u8]) -> (Result<Executed, ExecError>, Simulator) {
        let script = decode_script(bytes);
        *self.script.lock().unwrap_or_else(|p| p.into_inner()) = script;
        self.transactions += 1;
        let invocation = Invocation {
            channel_id: CHANNEL.into(),
            tx_id: format!("{:064x}", self.transactions),
            input: ChaincodeInput {
                args: vec![b"Run".to_vec()],
                ..Default::default()
            },
            proposal: None,
            init: false,
            definitions: Arc::clone(&self.definitions),
            creator_msp: ORG.into(),
        };
        let mut simulator = Simulator::new(Arc::clone(&self.ledger));
        let support = Arc::clone(&self.support);
        let executed = self
            .runtime
            .block_on(support.execute(NAME, invocation, &mut simulator, 0));
        (executed, simulator)
    }

    fn new() -> Rig {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ledger = committed_ledger(dir.path());
        let orgs = vec![ORG.to_owned()];
        let mut chaincodes = std::collections::BTreeMap::new();
        chaincodes.insert(
            NAME.to_owned(),
            Definition {
                name: NAME.into(),
                sequence: 1,
                version: "1".into(),
                policy: weft_peer::lifecycle::majority(&orgs),
                package_id: Some(PACKAGE.into()),
                collections: weft_peer::private::collections(None, &orgs)
                    .expect("implicit collections"),
            },
        );
        let definitions = Arc::new(Definitions {
            chaincodes,
            policies: EndorsementPolicies::new(),
        });
        let limits = Limits {
            execute_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let support = ChaincodeSupport::new(
            vec![ChaincodeConfig {
                name: NAME.into(),
                id: Some(PACKAGE.into()),
                indexes: Vec::new(),
                launcher: LauncherConfig::Wait,
            }],
            HashMap::new(),
            limits,
            weft_peer::chaincode::credentials::ChaincodeCredentials::new("fuzz").expect("ca"),
            weft_peer::metrics::ChaincodeMetrics::register(
                &weft_node::metrics::Registry::disabled(),
            ),
        );
        let script = Arc::new(Mutex::new(Vec::new()));
        let (to_chaincode, from_peer) = mpsc::channel(256);
        let (to_peer, from_chaincode) = mpsc::channel(256);
        let stream = runtime.spawn(Arc::clone(&support).serve_stream(
            to_chaincode,
            from_chaincode,
            PACKAGE.into(),
        ));
        runtime.spawn(fake_chaincode(from_peer, to_peer, Arc::clone(&script)));
        Rig {
            runtime,
            support,
            ledger,
            definitions,
            script,
            stream,
            transactions: 0,
            _dir: dir,
        }
    }
}

/// Registers, then answers every TRANSACTION (or INIT) with the current
/// script and a COMPLETED; the peer's answers are read and dropped.
async fn fake_chaincode(
    mut from_peer: mpsc::Receiver<ChaincodeMessage>,
    to_peer: mpsc::Sender<ChaincodeMessage>,
    script: Arc<Mutex<Vec<ChaincodeMessage>>>,
) {
    let register = message(
        Type::Register,
        ChaincodeId {
            name: PACKAGE.into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    if to_peer.send(register).await.is_err() {
        return;
    }
    while let Some(received) = from_peer.recv().await {
        if received.r#type != Type::Transaction as i32 && received.r#type != Type::Init as i32 {
            continue;
        }
        let steps = script.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let completed = weft_protos::peer::Response {
            status: 200,
            ..Default::default()
        };
        for step in steps
            .into_iter()
            .chain([message(Type::Completed, completed.encode_to_vec())])
        {
            let step = ChaincodeMessage {
                txid: received.txid.clone(),
                channel_id: received.channel_id.clone(),
                ..step
            };
            if to_peer.send(step).await.is_err() {
                return;
            }
        }
    }
}

fn message(kind: Type, payload: Vec<u8>) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        payload,
        ..Default::default()
    }
}

/// A ledger whose block 0 wrote JSON documents `a`…`f` in the chaincode's namespace.
fn committed_ledger(dir: &std::path::Path) -> Arc<Ledger> {
    let network = TestNetwork::generate();
    let ledger = Ledger::open(dir, CHANNEL, LedgerConfig::default())
        .expect("ledger")
        .0;
    let writes = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .enumerate()
        .map(|(i, key)| KvWrite {
            key: (*key).into(),
            is_delete: false,
            value: format!(r#"{{"docType":"asset","ID":"{key}","Size":{i}}}"#).into_bytes(),
        })
        .collect();
    let (_, envelope) = network.submitter(CHANNEL).transaction(
        NAME,
        vec![NamespaceRwSet {
            namespace: NAME.into(),
            rwset: KvrwSet {
                writes,
                ..Default::default()
            },
            ..Default::default()
        }],
    );
    let mut policies = EndorsementPolicies::new();
    policies.set(NAME, weft_peer::lifecycle::majority(&[ORG.to_owned()]));
    let msp = network.msp_manager(weft_msp::MspManagerConfig::default());
    let validator = Validator {
        msp: &msp,
        policies: &policies,
        signatures: &SignatureCache::new(0),
        threads: 1,
    };
    ledger
        .commit(Chain::default().block(vec![envelope]), &validator)
        .expect("commit");
    Arc::new(ledger)
}

/// Scripts of valid requests, each message length-delimited.
pub fn seeds() -> Vec<Vec<u8>> {
    let implicit = format!("_implicit_org_{ORG}");
    let paged = QueryMetadata {
        page_size: 2,
        bookmark: String::new(),
    }
    .encode_to_vec();
    let scripts: Vec<Vec<ChaincodeMessage>> = vec![
        vec![
            message(
                Type::GetState,
                GetState {
                    key: "a".into(),
                    collection: String::new(),
                }
                .encode_to_vec(),
            ),
            message(
                Type::PutState,
                PutState {
                    key: "z".into(),
                    value: b"{}".to_vec(),
                    collection: String::new(),
                }
                .encode_to_vec(),
            ),
            message(
                Type::DelState,
                DelState {
                    key: "b".into(),
                    collection: String::new(),
                }
                .encode_to_vec(),
            ),
        ],
        vec![
            message(
                Type::GetStateByRange,
                GetStateByRange {
                    start_key: "a".into(),
                    end_key: "e".into(),
                    collection: String::new(),
                    metadata: paged.clone(),
                }
                .encode_to_vec(),
            ),
            message(
                Type::QueryStateNext,
                QueryStateNext { id: "1".into() }.encode_to_vec(),
            ),
            message(
                Type::QueryStateClose,
                QueryStateClose { id: "1".into() }.encode_to_vec(),
            ),
        ],
        vec![
            message(
                Type::GetQueryResult,
                GetQueryResult {
                    query: r#"{"selector":{"docType":"asset","Size":{"$gt":1}},"sort":[{"Size":"desc"}]}"#
                        .into(),
                    collection: String::new(),
                    metadata: paged,
                }
                .encode_to_vec(),
            ),
            message(
                Type::GetHistoryForKey,
                GetHistoryForKey { key: "a".into() }.encode_to_vec(),
            ),
        ],
        vec![
            message(
                Type::PutState,
                PutState {
                    key: "secret".into(),
                    value: b"v".to_vec(),
                    collection: implicit.clone(),
                }
                .encode_to_vec(),
            ),
            message(
                Type::GetState,
                GetState {
                    key: "secret".into(),
                    collection: implicit.clone(),
                }
                .encode_to_vec(),
            ),
            message(
                Type::GetPrivateDataHash,
                GetState {
                    key: "secret".into(),
                    collection: implicit,
                }
                .encode_to_vec(),
            ),
        ],
        vec![
            message(
                Type::PutStateMetadata,
                PutStateMetadata {
                    key: "a".into(),
                    collection: String::new(),
                    metadata: Some(StateMetadata {
                        metakey: "VALIDATION_PARAMETER".into(),
                        value: b"policy".to_vec(),
                    }),
                }
                .encode_to_vec(),
            ),
            message(
                Type::GetStateMetadata,
                GetStateMetadata {
                    key: "a".into(),
                    collection: String::new(),
                }
                .encode_to_vec(),
            ),
        ],
        vec![message(
            Type::InvokeChaincode,
            ChaincodeSpec {
                chaincode_id: Some(ChaincodeId {
                    name: NAME.into(),
                    ..Default::default()
                }),
                input: Some(ChaincodeInput {
                    args: vec![b"Nested".to_vec()],
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        )],
    ];
    scripts
        .into_iter()
        .map(|script| {
            let mut bytes = Vec::new();
            for message in script {
                message
                    .encode_length_delimited(&mut bytes)
                    .expect("encode into a Vec");
            }
            bytes
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach the handler: reads and writes land in the
    /// simulation, range and rich queries see the committed documents.
    #[test]
    fn seed_scripts_run_against_the_committed_ledger() {
        let mut rig = Rig::new();
        let seeds = seeds();
        let (executed, simulator) = rig.run(&seeds[0]);
        assert_eq!(executed.expect("executed").response.status, 200);
        assert!(simulator.has_writes());
        let (executed, simulator) = rig.run(&seeds[1]);
        executed.expect("executed");
        // The paged range read the committed `a` and `b`.
        let results = simulator.results();
        let ranges = &results.public[0].rwset.range_queries_info;
        assert_eq!(ranges.len(), 1, "{results:?}");
        assert_eq!(ranges[0].start_key, "a", "{results:?}");
        // A script that ends the transaction early, then more messages.
        let mut early = Vec::new();
        for message in [
            message(Type::Error, b"stop".to_vec()),
            message(Type::GetState, GetState::default().encode_to_vec()),
        ] {
            message.encode_length_delimited(&mut early).expect("encode");
        }
        let (executed, _) = rig.run(&early);
        assert!(executed.is_err());
        // The stream still serves the next transaction.
        let (executed, _) = rig.run(&seeds[0]);
        executed.expect("executed after an early end");
        assert!(!rig.stream.is_finished());
    }
}
