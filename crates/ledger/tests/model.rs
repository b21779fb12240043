//! Property: committing random blocks gives the same codes, state and
//! history as the naive reference model, and the hash chain stays continuous.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use weft_ledger::{EndorsementPolicies, SignatureCache, Validator};
use weft_msp::{MspManager, MspManagerConfig};
use weft_policy::SignaturePolicy;
use weft_protos::kvrwset::{KvWrite, KvrwSet};
use weft_protoutil::{block_header_hash, transactions_filter};
use weft_testkit::{Chain, TestNetwork};

const KEYS: usize = 8;

fn network() -> &'static TestNetwork {
    static NETWORK: OnceLock<TestNetwork> = OnceLock::new();
    NETWORK.get_or_init(TestNetwork::generate)
}

#[derive(Debug, Clone)]
struct TxSpec {
    reads: Vec<(usize, bool)>,
    writes: Vec<(usize, Option<u8>)>,
    range: Option<(usize, usize, bool)>,
    resubmit_previous: bool,
}

fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        prop::collection::vec((0..KEYS, prop::bool::weighted(0.15)), 0..3),
        prop::collection::vec((0..KEYS, prop::option::weighted(0.8, any::<u8>())), 0..3),
        prop::option::weighted(0.3, (0..KEYS, 0..=KEYS, prop::bool::weighted(0.1))),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(reads, writes, range, resubmit_previous)| TxSpec {
            reads,
            writes,
            range,
            resubmit_previous,
        })
}

fn key(index: usize) -> String {
    format!("key{index}")
}

/// The rwset a chaincode simulating `spec` against the committed state `model` records.
fn simulate(spec: &TxSpec, model: &Model) -> KvrwSet {
    let version = |key: &str| model.version(key);
    let reads = spec
        .reads
        .iter()
        .map(|(index, stale)| {
            let key = key(*index);
            let version = match (version(&key), stale) {
                (found, false) => found,
                (Some(_), true) => None,
                (None, true) => Some((999, 0)),
            };
            read(&key, version)
        })
        .collect();
    let range_queries_info = spec
        .range
        .iter()
        .map(|(start, end, stale)| {
            let (start, end) = (
                key(*start),
                if *end == KEYS {
                    String::new()
                } else {
                    key(*end)
                },
            );
            let mut reads: Vec<_> = model
                .state
                .iter()
                .filter(|(k, _)| {
                    k.as_str() >= start.as_str() && (end.is_empty() || k.as_str() < end.as_str())
                })
                .map(|(k, (_, v))| read(k, Some(*v)))
                .collect();
            if *stale {
                reads.push(read("key9", Some((999, 9))));
            }
            range(&start, &end, true, reads)
        })
        .collect();
    let writes = spec
        .writes
        .iter()
        .map(|(index, value)| match value {
            Some(value) => KvWrite {
                key: key(*index),
                is_delete: false,
                value: vec![*value],
            },
            None => delete(&key(*index)),
        })
        .collect();
    KvrwSet {
        reads,
        range_queries_info,
        writes,
        metadata_writes: Vec::new(),
    }
}

fn run(blocks: Vec<Vec<TxSpec>>) {
    let network = network();
    let msp: MspManager = network.msp_manager(MspManagerConfig::default());
    let mut policies = EndorsementPolicies::new();
    policies.set(
        CHAINCODE,
        SignaturePolicy::parse("AND('Org1MSP.peer', 'Org2MSP.peer')").expect("p"),
    );
    let signatures = SignatureCache::new(1024);
    let validator = Validator {
        msp: &msp,
        policies: &policies,
        signatures: &signatures,
        threads: 2,
    };
    let mut submitter = network.submitter(CHANNEL);

    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut model = Model::default();
    let mut chain = Chain::default();
    let mut previous: Option<(String, KvrwSet, Vec<u8>)> = None;
    for (number, specs) in blocks.into_iter().enumerate() {
        let committed = model.clone();
        let mut txs = Vec::new();
        let mut envelopes = Vec::new();
        for spec in &specs {
            let (tx_id, rwset, envelope) = match (&previous, spec.resubmit_previous) {
                (Some(previous), true) => previous.clone(),
                _ => {
                    let rwset = simulate(spec, &committed);
                    let (tx_id, envelope) =
                        submitter.transaction(CHAINCODE, vec![ns(CHAINCODE, rwset.clone())]);
                    (tx_id, rwset, envelope)
                }
            };
            previous = Some((tx_id.clone(), rwset.clone(), envelope.clone()));
            txs.push((tx_id, rwset));
            envelopes.push(envelope);
        }
        let expected = model.apply_block(number as u64, &txs);
        let block = chain.block(envelopes);
        let outcome = ledger.commit(block, &validator).expect("commit");
        let codes: Vec<_> = outcome.transactions.iter().map(|tx| tx.code).collect();
        assert_eq!(
            codes, expected,
            "block {number}: {:?}",
            outcome.transactions
        );
    }
    model.assert_matches(&ledger);

    // The chain is continuous and each block carries its codes.
    let height = ledger.height().expect("height");
    let mut previous_hash = Vec::new();
    for number in 0..height {
        let block = ledger.block(number).expect("block");
        let header = block.header.as_ref().expect("header");
        assert_eq!(header.previous_hash, previous_hash, "block {number}");
        previous_hash = block_header_hash(header).to_vec();
        let filter = transactions_filter(&block).expect("filter");
        assert_eq!(
            filter.len(),
            block.data.as_ref().map_or(0, |d| d.data.len())
        );
    }
    assert_eq!(ledger.last_block_hash(), previous_hash);
    // Every transaction is findable by id.
    for tx_id in &model.txids {
        assert!(
            ledger.transaction(tx_id).expect("lookup").is_some(),
            "{tx_id}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_blocks_commit_like_the_reference_model(
        blocks in prop::collection::vec(prop::collection::vec(tx_spec(), 1..6), 1..5)
    ) {
        run(blocks);
    }
}
