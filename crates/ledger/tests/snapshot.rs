//! Snapshots: a ledger started from one has the same state, tx ids and
//! indexes, continues the same chain, and refuses a tampered snapshot.

mod common;

use common::*;
use serde_json::json;
use weft_ledger::{Ledger, LedgerConfig, LedgerError};
use weft_protos::peer::TxValidationCode as Code;

#[test]
fn a_ledger_started_from_a_snapshot_continues_the_chain() {
    let dir = tempfile::tempdir().expect("dir");
    let original = open(&dir.path().join("original"));
    let mut f = Fixture::new();
    original
        .define_index(
            CHAINCODE,
            r#"{"index": {"fields": ["color"]}, "name": "byColor"}"#,
        )
        .expect("index");
    let mut old_txs = Vec::new();
    for i in 0..5 {
        let value = json!({"color": if i % 2 == 0 { "red" } else { "blue" }, "n": i}).to_string();
        let (tx_id, envelope) = f.submitter.transaction(
            CHAINCODE,
            vec![ns(
                CHAINCODE,
                writes(&[(&format!("asset{i}"), value.as_bytes())]),
            )],
        );
        old_txs.push((tx_id, envelope.clone()));
        assert_eq!(f.codes(&original, vec![envelope]), [Code::Valid]);
    }

    let snapshot = dir.path().join("snapshot");
    let metadata = original.export_snapshot(&snapshot).expect("export");
    assert_eq!(metadata.last_block_number, 4);
    assert_eq!(metadata.last_block_hash, original.last_block_hash());
    assert!(snapshot.join("_snapshot_signable_metadata.json").is_file());
    assert!(
        original.export_snapshot(&snapshot).is_err(),
        "an existing snapshot is not overwritten"
    );

    let (joined, _) = Ledger::from_snapshot(
        &snapshot,
        &dir.path().join("joined"),
        LedgerConfig::default(),
    )
    .expect("import");
    assert_eq!(joined.height().expect("height"), 5);
    assert_eq!(joined.first_block_number(), 5);
    assert!(
        joined.block(4).is_err(),
        "blocks before the snapshot are not held"
    );
    // The channel's config block travels with the snapshot (these blocks
    // name none, so it is block 0).
    let config_block = original.block(0).expect("block 0");
    assert_eq!(joined.last_config_block().expect("config"), config_block);
    let all = |ledger: &Ledger| {
        ledger
            .get_state_range(CHAINCODE, "", "", None)
            .expect("range")
            .results
    };
    assert_eq!(all(&joined), all(&original));
    let red = json!({"selector": {"color": "red"}}).to_string();
    let page = joined
        .get_query_result(CHAINCODE, &red, None)
        .expect("query");
    assert_eq!(page.index.as_deref(), Some("byColor"));
    assert_eq!(page.results.len(), 3);

    // The next block commits identically on both; an old tx id is still a duplicate.
    let next = vec![f.tx(writes(&[("asset9", b"{}")])), old_txs[0].1.clone()];
    let block = f.block(next);
    let validator = f.validator();
    let mut on_original = original.commit(block.clone(), &validator).expect("commit");
    let mut on_joined = joined.commit(block, &validator).expect("commit on joined");
    // The same outcome (how long each took may differ).
    on_original.timings = Default::default();
    on_joined.timings = Default::default();
    assert_eq!(on_original, on_joined);
    assert_eq!(on_joined.transactions[1].code, Code::DuplicateTxid);
    assert_eq!(all(&joined), all(&original));
    assert_eq!(joined.last_block_hash(), original.last_block_hash());
    assert_eq!(joined.last_config_block().expect("config"), config_block);
    // It survives a reopen.
    drop(joined);
    let joined = open(&dir.path().join("joined"));
    assert_eq!(joined.height().expect("height"), 6);
}

#[test]
fn a_tampered_snapshot_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let original = open(&dir.path().join("original"));
    let mut f = Fixture::new();
    let tx = f.tx(writes(&[("a", b"1")]));
    f.commit(&original, vec![tx]);
    let snapshot = dir.path().join("snapshot");
    original.export_snapshot(&snapshot).expect("export");

    let state = snapshot.join("public_state.data");
    let mut bytes = std::fs::read(&state).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&state, bytes).expect("write");
    let target = dir.path().join("joined");
    let error =
        Ledger::from_snapshot(&snapshot, &target, LedgerConfig::default()).expect_err("tampered");
    assert!(matches!(error, LedgerError::Snapshot { .. }), "{error}");
    assert!(error.to_string().contains("public_state.data"), "{error}");
    assert!(!target.exists());
}
