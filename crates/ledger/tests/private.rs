//! Private data collections: every peer commits the hashes, a peer given
//! the private read-write set (matching the endorsed hash) also commits the
//! values; hashed reads are MVCC-checked; snapshots carry hashes only.

mod common;

use common::*;
use weft_crypto::sha256;
use weft_ledger::{Ledger, LedgerConfig, PrivateData};
use weft_protos::Message;
use weft_protos::kvrwset::{HashedRwSet, KvReadHash, KvWriteHash, KvrwSet, Version as KvVersion};
use weft_protos::peer::TxValidationCode as Code;
use weft_protos::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet};
use weft_protoutil::CollectionHashedRwSet;

const COLLECTION: &str = "secrets";

/// A transaction writing `pairs` into the collection, reading `reads` (key,
/// version) from it; returns (tx id, envelope, private read-write set).
fn private_tx(
    f: &mut Fixture,
    pairs: &[(&str, &[u8])],
    reads: &[(&str, Option<(u64, u64)>)],
) -> (String, Vec<u8>, TxPvtReadWriteSet) {
    let private = writes(pairs);
    let bytes = private.encode_to_vec();
    let hashed = HashedRwSet {
        hashed_reads: reads
            .iter()
            .map(|(key, version)| KvReadHash {
                key_hash: sha256(key.as_bytes()).to_vec(),
                version: version.map(|(block_num, tx_num)| KvVersion { block_num, tx_num }),
            })
            .collect(),
        hashed_writes: pairs
            .iter()
            .map(|(key, value)| KvWriteHash {
                key_hash: sha256(key.as_bytes()).to_vec(),
                is_delete: false,
                value_hash: sha256(value).to_vec(),
                is_purge: false,
            })
            .collect(),
        metadata_writes: Vec::new(),
    };
    let mut namespace = ns(CHAINCODE, KvrwSet::default());
    namespace.collections.push(CollectionHashedRwSet {
        name: COLLECTION.into(),
        hashed,
        pvt_rwset_hash: sha256(&bytes).to_vec(),
    });
    let (tx_id, envelope) = f.submitter.transaction(CHAINCODE, vec![namespace]);
    let private = TxPvtReadWriteSet {
        data_model: 0,
        ns_pvt_rwset: vec![NsPvtReadWriteSet {
            namespace: CHAINCODE.into(),
            collection_pvt_rwset: vec![CollectionPvtReadWriteSet {
                collection_name: COLLECTION.into(),
                rwset: bytes,
            }],
        }],
    };
    (tx_id, envelope, private)
}

#[test]
fn members_commit_values_and_everyone_commits_hashes() {
    let dir = tempfile::tempdir().expect("dir");
    let member = open(&dir.path().join("member"));
    let other = open(&dir.path().join("other"));
    let forged = open(&dir.path().join("forged"));
    let mut f = Fixture::new();
    let (tx_id, envelope, private) = private_tx(&mut f, &[("k1", b"v1")], &[]);
    let block = f.block(vec![envelope]);
    let validator = f.validator();

    let offered = PrivateData::from([(tx_id.clone(), private.clone())]);
    let outcome = member
        .commit_with_private_data(block.clone(), &validator, &offered)
        .expect("commit");
    assert_eq!(outcome.transactions[0].code, Code::Valid);
    assert!(outcome.missing_private_data.is_empty());
    let value = member
        .get_private_data(CHAINCODE, COLLECTION, "k1")
        .expect("read")
        .expect("the member holds the value");
    assert_eq!(value.value, b"v1");
    assert_eq!(
        member.committed_private_data(0, 0).expect("stored"),
        Some(private.clone())
    );

    // Without the data: the hash only, and the gap reported.
    let outcome = other.commit(block.clone(), &validator).expect("commit");
    assert_eq!(outcome.transactions[0].code, Code::Valid);
    assert_eq!(outcome.missing_private_data.len(), 1);
    assert_eq!(outcome.missing_private_data[0].tx_id, tx_id);
    assert_eq!(outcome.missing_private_data[0].reason, "not provided");
    assert_eq!(
        other
            .get_private_data(CHAINCODE, COLLECTION, "k1")
            .expect("read"),
        None
    );
    for ledger in [&member, &other] {
        let hash = ledger
            .get_private_data_hash(CHAINCODE, COLLECTION, "k1")
            .expect("hash")
            .expect("every peer has the hash");
        assert_eq!(hash.value, sha256(b"v1"));
        assert_eq!(hash.version, value.version);
    }
    // Public state is untouched by collection writes.
    assert_eq!(member.get_state(CHAINCODE, "k1").expect("read"), None);

    // Data that does not match the endorsed hash is refused.
    let mut tampered = private.clone();
    tampered.ns_pvt_rwset[0].collection_pvt_rwset[0].rwset =
        writes(&[("k1", b"v2")]).encode_to_vec();
    let outcome = forged
        .commit_with_private_data(block, &validator, &PrivateData::from([(tx_id, tampered)]))
        .expect("commit");
    assert!(
        outcome.missing_private_data[0]
            .reason
            .contains("does not match the endorsed hash")
    );
    assert_eq!(
        forged
            .get_private_data(CHAINCODE, COLLECTION, "k1")
            .expect("read"),
        None
    );

    // The values survive a reopen.
    drop(member);
    let member = open(&dir.path().join("member"));
    assert!(
        member
            .get_private_data(CHAINCODE, COLLECTION, "k1")
            .expect("read")
            .is_some()
    );
}

#[test]
fn hashed_reads_are_checked_and_duplicate_hashed_writes_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(&dir.path().join("ledger"));
    let mut f = Fixture::new();
    let (_, first, _) = private_tx(&mut f, &[("k", b"1")], &[]);
    f.commit(&ledger, vec![first]);
    // Two updates that both read version (0, 0): the second conflicts.
    let (_, a, _) = private_tx(&mut f, &[("k", b"2")], &[("k", Some((0, 0)))]);
    let (_, b, _) = private_tx(&mut f, &[("k", b"3")], &[("k", Some((0, 0)))]);
    // A read of a key never written must say absent.
    let (_, c, _) = private_tx(&mut f, &[("other", b"x")], &[("missing", Some((0, 0)))]);
    let (_, twice, _) = private_tx(&mut f, &[("d", b"1"), ("d", b"2")], &[]);
    assert_eq!(
        f.codes(&ledger, vec![a, b, c, twice]),
        [
            Code::Valid,
            Code::MvccReadConflict,
            Code::MvccReadConflict,
            Code::BadRwset
        ]
    );
    let hash = ledger
        .get_private_data_hash(CHAINCODE, COLLECTION, "k")
        .expect("hash")
        .expect("present");
    assert_eq!(hash.value, sha256(b"2"));
}

#[test]
fn snapshots_carry_private_hashes_but_not_values() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(&dir.path().join("ledger"));
    let mut f = Fixture::new();
    let (tx_id, envelope, private) = private_tx(&mut f, &[("k", b"hidden-value-42")], &[]);
    let block = f.block(vec![envelope]);
    ledger
        .commit_with_private_data(
            block,
            &f.validator(),
            &PrivateData::from([(tx_id, private)]),
        )
        .expect("commit");
    let snapshot = dir.path().join("snapshot");
    ledger.export_snapshot(&snapshot).expect("export");
    let state = std::fs::read(snapshot.join("public_state.data")).expect("state file");
    assert!(
        !state.windows(15).any(|w| w == b"hidden-value-42"),
        "no private value in the snapshot"
    );
    let (joined, _) = Ledger::from_snapshot(
        &snapshot,
        &dir.path().join("joined"),
        LedgerConfig::default(),
    )
    .expect("import");
    assert_eq!(
        joined
            .get_private_data(CHAINCODE, COLLECTION, "k")
            .expect("read"),
        None
    );
    assert_eq!(
        joined
            .get_private_data_hash(CHAINCODE, COLLECTION, "k")
            .expect("hash"),
        ledger
            .get_private_data_hash(CHAINCODE, COLLECTION, "k")
            .expect("hash")
    );
}

#[test]
fn collection_writes_need_a_defined_collection_and_its_own_policy() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(&dir.path().join("ledger"));
    let mut f = Fixture::new();
    let policy = |text: &str| Some(weft_policy::SignaturePolicy::parse(text).expect("policy"));
    // The submitter's transactions carry Org1's and Org2's endorsements.
    f.policies.set_collections(
        CHAINCODE,
        std::collections::BTreeMap::from([
            (COLLECTION.to_owned(), None),
            ("org1only".to_owned(), policy("OR('Org1MSP.peer')")),
            (
                "strict".to_owned(),
                policy("AND('Org1MSP.peer', 'Org1MSP.admin')"),
            ),
        ]),
    );
    let in_collection = |f: &mut Fixture, collection: &str| {
        let private = writes(&[("k", b"v")]);
        let mut namespace = ns(CHAINCODE, KvrwSet::default());
        namespace.collections.push(CollectionHashedRwSet {
            name: collection.into(),
            hashed: HashedRwSet {
                hashed_writes: vec![KvWriteHash {
                    key_hash: sha256(b"k").to_vec(),
                    is_delete: false,
                    value_hash: sha256(b"v").to_vec(),
                    is_purge: false,
                }],
                ..Default::default()
            },
            pvt_rwset_hash: sha256(&private.encode_to_vec()).to_vec(),
        });
        f.submitter.transaction(CHAINCODE, vec![namespace]).1
    };
    let declared = in_collection(&mut f, COLLECTION);
    let own_policy = in_collection(&mut f, "org1only");
    let unsatisfied = in_collection(&mut f, "strict");
    let undeclared = in_collection(&mut f, "nosuch");
    // Only read: no private read-write set, so nothing is missing.
    let mut read_only = ns(CHAINCODE, KvrwSet::default());
    read_only.collections.push(CollectionHashedRwSet {
        name: COLLECTION.into(),
        hashed: HashedRwSet {
            hashed_reads: vec![KvReadHash {
                key_hash: sha256(b"never-written").to_vec(),
                version: None,
            }],
            ..Default::default()
        },
        pvt_rwset_hash: Vec::new(),
    });
    let (_, read_only) = f.submitter.transaction(CHAINCODE, vec![read_only]);
    let block = f.block(vec![
        declared,
        own_policy,
        unsatisfied,
        undeclared,
        read_only,
    ]);
    let outcome = ledger.commit(block, &f.validator()).expect("commit");
    let codes: Vec<Code> = outcome.transactions.iter().map(|t| t.code).collect();
    assert_eq!(
        codes,
        [
            Code::Valid,
            Code::Valid,
            Code::EndorsementPolicyFailure,
            Code::EndorsementPolicyFailure,
            Code::Valid
        ]
    );
    let reasons: Vec<&str> = outcome
        .transactions
        .iter()
        .filter_map(|t| t.reason.as_deref())
        .collect();
    assert!(reasons[0].contains("collection strict"), "{reasons:?}");
    assert!(
        reasons[1].contains("collection nosuch is not defined"),
        "{reasons:?}"
    );
    let missing: Vec<&str> = outcome
        .missing_private_data
        .iter()
        .map(|m| m.collection.as_str())
        .collect();
    assert_eq!(
        missing,
        [COLLECTION, "org1only"],
        "read-only sets need no data"
    );
}
