//! Ledger benchmarks:
//! - validate + commit of blocks of 500 simple-asset transactions, each with
//!   2 endorsements (AND(Org1, Org2)), with every signature verified, and
//!   with signatures already verified (the committing peer endorsed or saw
//!   them before);
//! - a Mango query over 100,000 JSON documents through an index and by a
//!   full scan.
//!
//! Peak RSS is printed at the end.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use serde_json::json;
use weft_ledger::{EndorsementPolicies, Ledger, LedgerConfig, SignatureCache, Validator};
use weft_msp::{MspManager, MspManagerConfig};
use weft_policy::SignaturePolicy;
use weft_protos::common::Block;
use weft_protos::kvrwset::{KvRead, KvWrite, KvrwSet};
use weft_protoutil::NamespaceRwSet;
use weft_testkit::{Chain, TestNetwork};

const CHANNEL: &str = "mychannel";
const TXS_PER_BLOCK: usize = 500;
const BLOCKS: usize = 6;
const DOCUMENTS: usize = 100_000;

struct Setup {
    network: TestNetwork,
    msp: MspManager,
    policies: EndorsementPolicies,
}

fn setup() -> Setup {
    let network = TestNetwork::generate();
    let msp = network.msp_manager(MspManagerConfig::default());
    let mut policies = EndorsementPolicies::new();
    let policy = SignaturePolicy::parse("AND('Org1MSP.peer', 'Org2MSP.peer')").expect("policy");
    for namespace in ["basic", "indexed", "plain"] {
        policies.set(namespace, policy.clone());
    }
    Setup {
        network,
        msp,
        policies,
    }
}

/// Blocks of simple-asset creations: each transaction reads its asset key
/// (absent) and writes the asset as JSON, as asset-transfer-basic's CreateAsset does.
fn asset_blocks(network: &TestNetwork) -> Vec<Block> {
    let mut submitter = network.submitter(CHANNEL);
    let mut chain = Chain::default();
    (0..BLOCKS)
        .map(|block| {
            let envelopes = (0..TXS_PER_BLOCK)
                .map(|tx| {
                    let key = format!("asset{block}_{tx}");
                    let value = json!({"ID": key, "Color": "blue", "Size": 5, "Owner": "Tomoko", "AppraisedValue": 300});
                    let rwset = KvrwSet {
                        reads: vec![KvRead { key: key.clone(), version: None }],
                        writes: vec![KvWrite { key, is_delete: false, value: value.to_string().into_bytes() }],
                        ..KvrwSet::default()
                    };
                    submitter
                        .transaction("basic", vec![NamespaceRwSet { namespace: "basic".into(), rwset, ..Default::default() }])
                        .1
                })
                .collect();
            chain.block(envelopes)
        })
        .collect()
}

fn commit_all(setup: &Setup, blocks: &[Block], signatures: &SignatureCache) -> Duration {
    let dir = tempfile::tempdir().expect("dir");
    let (ledger, _) = Ledger::open(dir.path(), CHANNEL, LedgerConfig::default()).expect("open");
    let validator = Validator {
        msp: &setup.msp,
        policies: &setup.policies,
        signatures,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let started = Instant::now();
    for block in blocks {
        let outcome = ledger.commit(block.clone(), &validator).expect("commit");
        assert!(
            outcome
                .transactions
                .iter()
                .all(|tx| tx.code == weft_protos::peer::TxValidationCode::Valid)
        );
    }
    started.elapsed()
}

fn commit(c: &mut Criterion) {
    let setup = setup();
    let blocks = asset_blocks(&setup.network);
    let mut group = c.benchmark_group("ledger_commit_500tx_blocks");
    group.sample_size(10);
    group.throughput(Throughput::Elements((TXS_PER_BLOCK * BLOCKS) as u64));
    group.bench_function("full_signature_verification", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| commit_all(&setup, &blocks, &SignatureCache::new(0)))
                .sum()
        })
    });
    let warm = SignatureCache::new(1 << 16);
    commit_all(&setup, &blocks, &warm);
    group.bench_function("signatures_already_verified", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| commit_all(&setup, &blocks, &warm))
                .sum()
        })
    });
    group.finish();
}

fn rich_query(c: &mut Criterion) {
    let setup = setup();
    let dir = tempfile::tempdir().expect("dir");
    let (ledger, _) = Ledger::open(dir.path(), CHANNEL, LedgerConfig::default()).expect("open");
    ledger
        .define_index(
            "indexed",
            r#"{"index": {"fields": ["owner"]}, "ddoc": "indexOwnerDoc", "name": "indexOwner"}"#,
        )
        .expect("index");
    let mut submitter = setup.network.submitter(CHANNEL);
    let mut chain = Chain::default();
    let signatures = SignatureCache::new(0);
    let validator = Validator {
        msp: &setup.msp,
        policies: &setup.policies,
        signatures: &signatures,
        threads: 2,
    };
    for batch in 0..DOCUMENTS / 10_000 {
        let writes: Vec<KvWrite> = (0..10_000)
            .map(|i| {
                let n = batch * 10_000 + i;
                let doc = json!({"docType": "asset", "owner": format!("owner{}", n % 1000), "size": n % 50, "color": "red"});
                KvWrite { key: format!("asset{n:06}"), is_delete: false, value: doc.to_string().into_bytes() }
            })
            .collect();
        let rwsets = ["indexed", "plain"]
            .map(|namespace| NamespaceRwSet {
                namespace: namespace.into(),
                rwset: KvrwSet {
                    writes: writes.clone(),
                    ..KvrwSet::default()
                },
                ..Default::default()
            })
            .to_vec();
        let (_, envelope) = submitter.transaction("indexed", rwsets);
        let outcome = ledger
            .commit(chain.block(vec![envelope]), &validator)
            .expect("commit");
        assert_eq!(
            outcome.transactions[0].code,
            weft_protos::peer::TxValidationCode::Valid
        );
    }
    let query = json!({"selector": {"owner": "owner42"}}).to_string();
    let mut group = c.benchmark_group("rich_query_100k_documents");
    group.sample_size(10);
    for namespace in ["indexed", "plain"] {
        let page = ledger
            .get_query_result(namespace, &query, None)
            .expect("query");
        assert_eq!(page.results.len(), DOCUMENTS / 1000);
        println!(
            "{namespace}: index {:?}, {} documents examined",
            page.index, page.docs_examined
        );
        group.bench_function(
            if namespace == "indexed" {
                "indexed_owner_eq"
            } else {
                "full_scan_owner_eq"
            },
            |b| {
                b.iter(|| {
                    ledger
                        .get_query_result(namespace, &query, None)
                        .expect("query")
                })
            },
        );
    }
    group.finish();
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "VmHWM unavailable".into())
}

criterion_group!(benches, commit, rich_query);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("peak RSS of the benchmark process: {}", peak_rss());
}
