//! Shared fixture of the ledger tests: the default network's identities, a
//! submitter endorsed by both peer orgs, and read-write set helpers.
#![allow(dead_code)]

use std::path::Path;

use weft_ledger::{
    CommitOutcome, EndorsementPolicies, Ledger, LedgerConfig, SignatureCache, Validator,
};
use weft_msp::{MspManager, MspManagerConfig};
use weft_policy::SignaturePolicy;
use weft_protos::common::Block;
use weft_protos::kvrwset::{KvRead, KvWrite, KvrwSet, RangeQueryInfo, Version as KvVersion};
use weft_protos::peer::TxValidationCode;
use weft_protoutil::NamespaceRwSet;
use weft_testkit::{Chain, Submitter, TestNetwork};

pub const CHANNEL: &str = "mychannel";
pub const CHAINCODE: &str = "basic";

pub struct Fixture {
    pub network: TestNetwork,
    pub msp: MspManager,
    pub policies: EndorsementPolicies,
    pub signatures: SignatureCache,
    pub submitter: Submitter,
    pub chain: Chain,
}

impl Fixture {
    pub fn new() -> Fixture {
        let network = TestNetwork::generate();
        let msp = network.msp_manager(MspManagerConfig::default());
        let mut policies = EndorsementPolicies::new();
        policies.set(
            CHAINCODE,
            SignaturePolicy::parse("AND('Org1MSP.peer', 'Org2MSP.peer')").expect("policy"),
        );
        let submitter = network.submitter(CHANNEL);
        Fixture {
            network,
            msp,
            policies,
            signatures: SignatureCache::new(0),
            submitter,
            chain: Chain::default(),
        }
    }

    pub fn validator(&self) -> Validator<'_> {
        Validator {
            msp: &self.msp,
            policies: &self.policies,
            signatures: &self.signatures,
            threads: 2,
        }
    }

    /// A signed, fully endorsed transaction on the fixture's chaincode.
    pub fn tx(&mut self, rwset: KvrwSet) -> Vec<u8> {
        self.submitter
            .transaction(CHAINCODE, vec![ns(CHAINCODE, rwset)])
            .1
    }

    pub fn block(&mut self, envelopes: Vec<Vec<u8>>) -> Block {
        self.chain.block(envelopes)
    }

    /// Cuts a block of `envelopes` and commits it.
    pub fn commit(&mut self, ledger: &Ledger, envelopes: Vec<Vec<u8>>) -> CommitOutcome {
        let block = self.block(envelopes);
        ledger.commit(block, &self.validator()).expect("commit")
    }

    pub fn codes(&mut self, ledger: &Ledger, envelopes: Vec<Vec<u8>>) -> Vec<TxValidationCode> {
        self.commit(ledger, envelopes)
            .transactions
            .into_iter()
            .map(|tx| tx.code)
            .collect()
    }
}

pub fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, CHANNEL, LedgerConfig::default())
        .expect("open ledger")
        .0
}

pub fn ns(namespace: &str, rwset: KvrwSet) -> NamespaceRwSet {
    NamespaceRwSet {
        namespace: namespace.into(),
        rwset,
        ..Default::default()
    }
}

pub fn writes(pairs: &[(&str, &[u8])]) -> KvrwSet {
    KvrwSet {
        writes: pairs
            .iter()
            .map(|(key, value)| KvWrite {
                key: (*key).into(),
                is_delete: false,
                value: value.to_vec(),
            })
            .collect(),
        ..KvrwSet::default()
    }
}

pub fn delete(key: &str) -> KvWrite {
    KvWrite {
        key: key.into(),
        is_delete: true,
        value: Vec::new(),
    }
}

pub fn read(key: &str, version: Option<(u64, u64)>) -> KvRead {
    KvRead {
        key: key.into(),
        version: version.map(|(block_num, tx_num)| KvVersion { block_num, tx_num }),
    }
}

pub fn range(start: &str, end: &str, exhausted: bool, reads: Vec<KvRead>) -> RangeQueryInfo {
    use weft_protos::kvrwset::QueryReads;
    use weft_protos::kvrwset::range_query_info::ReadsInfo;
    RangeQueryInfo {
        start_key: start.into(),
        end_key: end.into(),
        itr_exhausted: exhausted,
        reads_info: Some(ReadsInfo::RawReads(QueryReads { kv_reads: reads })),
    }
}

/// A naive reference: an in-memory map applying Fabric's MVCC rules in block order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub state: std::collections::BTreeMap<String, (Vec<u8>, (u64, u64))>,
    pub history: std::collections::BTreeMap<String, Vec<(String, bool, Vec<u8>)>>,
    pub txids: std::collections::HashSet<String>,
}

impl Model {
    /// The version a simulation against this state would record for `key`.
    pub fn version(&self, key: &str) -> Option<(u64, u64)> {
        self.state.get(key).map(|(_, version)| *version)
    }

    /// Applies a block of (tx id, rwset) and returns the expected codes.
    pub fn apply_block(&mut self, number: u64, txs: &[(String, KvrwSet)]) -> Vec<TxValidationCode> {
        let mut seen = std::collections::HashSet::new();
        let mut codes = Vec::new();
        for (index, (tx_id, rwset)) in txs.iter().enumerate() {
            if self.txids.contains(tx_id) || !seen.insert(tx_id.clone()) {
                codes.push(TxValidationCode::DuplicateTxid);
                continue;
            }
            let mut written = std::collections::HashSet::new();
            if !rwset
                .writes
                .iter()
                .all(|write| written.insert(write.key.clone()))
            {
                self.txids.insert(tx_id.clone());
                codes.push(TxValidationCode::BadRwset);
                continue;
            }
            let reads_ok = rwset.reads.iter().all(|read| {
                self.version(&read.key) == read.version.map(|v| (v.block_num, v.tx_num))
            });
            let ranges_ok = rwset.range_queries_info.iter().all(|range| {
                use weft_protos::kvrwset::range_query_info::ReadsInfo;
                let Some(ReadsInfo::RawReads(reads)) = &range.reads_info else {
                    return false;
                };
                let now: Vec<(String, Option<(u64, u64)>)> = self
                    .state
                    .iter()
                    .filter(|(key, _)| {
                        key.as_str() >= range.start_key.as_str()
                            && (range.end_key.is_empty() || key.as_str() < range.end_key.as_str())
                    })
                    .map(|(key, (_, version))| (key.clone(), Some(*version)))
                    .collect();
                let recorded: Vec<(String, Option<(u64, u64)>)> = reads
                    .kv_reads
                    .iter()
                    .map(|read| {
                        (
                            read.key.clone(),
                            read.version.map(|v| (v.block_num, v.tx_num)),
                        )
                    })
                    .collect();
                now == recorded
            });
            let code = if !reads_ok {
                TxValidationCode::MvccReadConflict
            } else if !ranges_ok {
                TxValidationCode::PhantomReadConflict
            } else {
                for write in &rwset.writes {
                    if write.is_delete {
                        self.state.remove(&write.key);
                    } else {
                        self.state.insert(
                            write.key.clone(),
                            (write.value.clone(), (number, index as u64)),
                        );
                    }
                    self.history.entry(write.key.clone()).or_default().push((
                        tx_id.clone(),
                        write.is_delete,
                        if write.is_delete {
                            Vec::new()
                        } else {
                            write.value.clone()
                        },
                    ));
                }
                TxValidationCode::Valid
            };
            self.txids.insert(tx_id.clone());
            codes.push(code);
        }
        codes
    }

    /// Checks the ledger's state and history against the model.
    pub fn assert_matches(&self, ledger: &Ledger) {
        let page = ledger
            .get_state_range(CHAINCODE, "", "", None)
            .expect("range");
        let state: std::collections::BTreeMap<String, (Vec<u8>, (u64, u64))> = page
            .results
            .into_iter()
            .map(|(key, value)| (key, (value.value, (value.version.block, value.version.tx))))
            .collect();
        assert_eq!(state, self.state, "world state");
        for (key, expected) in &self.history {
            let history: Vec<(String, bool, Vec<u8>)> = ledger
                .get_history_for_key(CHAINCODE, key)
                .expect("history")
                .into_iter()
                .map(|entry| (entry.tx_id, entry.is_delete, entry.value))
                .collect();
            assert_eq!(&history, expected, "history of {key}");
        }
    }
}
