//! Validation and commit of blocks: each validation code from a real
//! malformed, mis-signed or conflicting transaction, and what commit writes.

mod common;

use common::*;
use weft_crypto::{Signer, high_s_twin};
use weft_ledger::{Ledger, LedgerConfig, LedgerError, Version, composite_key};
use weft_policy::parse_signature_policy;
use weft_protos::Message;
use weft_protos::common::{Envelope, Payload};
use weft_protos::kvrwset::{KvMetadataEntry, KvMetadataWrite, KvrwSet};
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::TxValidationCode as Code;
use weft_protoutil::{block_header_hash, transactions_filter};

#[test]
fn a_valid_transaction_updates_state_history_and_tx_index() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let (tx_id, envelope) = f.submitter.transaction(
        CHAINCODE,
        vec![ns(CHAINCODE, writes(&[("asset1", b"{\"v\":1}")]))],
    );
    let outcome = f.commit(&ledger, vec![envelope]);
    assert_eq!(outcome.number, 0);
    assert_eq!(
        outcome.transactions[0].code,
        Code::Valid,
        "{:?}",
        outcome.transactions[0]
    );
    assert_eq!(outcome.transactions[0].tx_id, tx_id);

    let value = ledger
        .get_state(CHAINCODE, "asset1")
        .expect("read")
        .expect("present");
    assert_eq!(value.value, b"{\"v\":1}");
    assert_eq!(value.version, Version::new(0, 0));
    assert_eq!(ledger.height().expect("height"), 1);

    let location = ledger
        .transaction(&tx_id)
        .expect("lookup")
        .expect("indexed");
    assert_eq!(
        (location.block, location.tx, location.code),
        (0, 0, Code::Valid)
    );
    let block = ledger
        .block_by_tx_id(&tx_id)
        .expect("lookup")
        .expect("block");
    assert_eq!(transactions_filter(&block), Some(&[Code::Valid as u8][..]));

    let history = ledger
        .get_history_for_key(CHAINCODE, "asset1")
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].tx_id, tx_id);
    assert_eq!(history[0].timestamp.seconds, f.network.now);
    assert!(!history[0].is_delete);
}

#[test]
fn blocks_that_do_not_extend_the_chain_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let tx = f.tx(writes(&[("a", b"1")]));
    f.commit(&ledger, vec![tx]);

    let envelope = f.tx(writes(&[("b", b"2")]));
    let mut skipping = f.chain.clone();
    skipping.next_number += 1;
    let error = ledger
        .commit(skipping.block(vec![envelope.clone()]), &f.validator())
        .expect_err("gap");
    assert!(
        matches!(error, LedgerError::Chain { number: 2, .. }),
        "{error}"
    );

    let mut forked = f.chain.clone();
    forked.previous_hash = vec![0; 32];
    let error = ledger
        .commit(forked.block(vec![envelope.clone()]), &f.validator())
        .expect_err("fork");
    assert!(error.to_string().contains("previous hash"), "{error}");

    let mut tampered = f.chain.clone().block(vec![envelope.clone()]);
    tampered
        .data
        .as_mut()
        .expect("data")
        .data
        .push(b"extra".to_vec());
    let error = ledger
        .commit(tampered, &f.validator())
        .expect_err("data hash");
    assert!(error.to_string().contains("data hash"), "{error}");

    assert_eq!(ledger.height().expect("height"), 1);
    assert_eq!(ledger.get_state(CHAINCODE, "b").expect("read"), None);
    assert_eq!(f.codes(&ledger, vec![envelope]), [Code::Valid]);
}

#[test]
fn malformed_and_missigned_transactions_get_fabrics_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();

    let good = f.tx(writes(&[("k", b"v")]));
    let mut envelope = Envelope::decode(good.as_slice()).expect("envelope");

    // A flipped byte in the signed payload: the creator's signature no longer verifies.
    let mut tampered = envelope.clone();
    let last = tampered.payload.len() - 1;
    tampered.payload[last] ^= 1;

    // The same signature in its high-S form.
    let mut high_s = envelope.clone();
    high_s.signature = high_s_twin(&envelope.signature).expect("twin");

    // A creator from an MSP the channel does not know (tx id and signature consistent).
    let mut unknown_msp = f
        .submitter
        .builder(CHAINCODE, vec![ns(CHAINCODE, writes(&[("u", b"1")]))]);
    let mut creator = SerializedIdentity::decode(unknown_msp.creator.as_slice()).expect("id");
    creator.mspid = "Org9MSP".into();
    unknown_msp.creator = creator.encode_to_vec();
    let unknown_msp =
        Envelope::decode(f.submitter.sign(&unknown_msp).as_slice()).expect("envelope");

    // Not a protobuf envelope at all, and an empty one.
    let garbage = vec![0xff, 0xff, 0xff];
    let empty = Vec::new();

    // A transaction for another channel.
    let mut other_channel = f
        .submitter
        .builder(CHAINCODE, vec![ns(CHAINCODE, writes(&[("x", b"1")]))]);
    other_channel.channel_id = "otherchannel".into();
    let other_channel = f.submitter.sign(&other_channel);

    // A tx id that is not hex(SHA-256(nonce ‖ creator)) (rebuilt and re-signed).
    let bad_tx_id = {
        let payload = Payload::decode(envelope.payload.as_slice()).expect("payload");
        let mut header = payload.header.clone().expect("header");
        let mut channel_header =
            weft_protos::common::ChannelHeader::decode(header.channel_header.as_slice())
                .expect("ch");
        channel_header.tx_id = "0".repeat(64);
        header.channel_header = channel_header.encode_to_vec();
        let payload = Payload {
            header: Some(header),
            data: payload.data,
        }
        .encode_to_vec();
        Envelope {
            signature: f.submitter.creator.sign(&payload).expect("sign"),
            payload,
        }
    };

    envelope.signature = f
        .submitter
        .creator
        .sign(&envelope.payload)
        .expect("re-sign");
    let codes = f.codes(
        &ledger,
        vec![
            tampered.encode_to_vec(),
            high_s.encode_to_vec(),
            unknown_msp.encode_to_vec(),
            garbage,
            empty,
            other_channel,
            bad_tx_id.encode_to_vec(),
            envelope.encode_to_vec(),
        ],
    );
    assert_eq!(
        codes,
        [
            Code::BadCreatorSignature,
            Code::BadCreatorSignature,
            Code::BadCreatorSignature,
            Code::InvalidOtherReason,
            Code::NilEnvelope,
            Code::TargetChainNotFound,
            Code::BadProposalTxid,
            Code::Valid,
        ]
    );
    // Only the valid transaction wrote.
    assert_eq!(
        ledger
            .get_state(CHAINCODE, "k")
            .expect("read")
            .expect("k")
            .version,
        Version::new(0, 7)
    );
    assert_eq!(ledger.get_state(CHAINCODE, "x").expect("read"), None);
}

#[test]
fn the_reason_names_what_was_wrong() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let good = f.tx(writes(&[("k", b"v")]));
    let mut high_s = Envelope::decode(good.as_slice()).expect("envelope");
    high_s.signature = high_s_twin(&high_s.signature).expect("twin");
    let outcome = f.commit(&ledger, vec![high_s.encode_to_vec()]);
    let reason = outcome.transactions[0].reason.clone().expect("reason");
    assert!(reason.starts_with("creator signature:"), "{reason}");
    assert!(reason.contains("high S"), "{reason}");
}

#[test]
fn endorsement_policies_are_enforced() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();

    // Only Org1 endorses an AND(Org1, Org2) chaincode.
    let org2_peer = f.submitter.endorsers.pop().expect("org2 peer");
    let one_endorsement = f.tx(writes(&[("a", b"1")]));
    // Org1 endorses twice: still one organisation.
    let org1_peer = f.network.peer("org1.example.com", "Org1MSP");
    f.submitter.endorsers.push(org1_peer);
    let same_org_twice = f.tx(writes(&[("b", b"1")]));
    f.submitter.endorsers.pop();
    f.submitter.endorsers.push(org2_peer);

    // Both endorse, but one endorsement's signature is corrupted.
    let builder = f
        .submitter
        .builder(CHAINCODE, vec![ns(CHAINCODE, writes(&[("c", b"1")]))]);
    let good = f.submitter.sign(&builder);
    let mut envelope = Envelope::decode(good.as_slice()).expect("envelope");
    let payload = Payload::decode(envelope.payload.as_slice()).expect("payload");
    let mut transaction =
        weft_protos::peer::Transaction::decode(payload.data.as_slice()).expect("tx");
    let mut action_payload = weft_protos::peer::ChaincodeActionPayload::decode(
        transaction.actions[0].payload.as_slice(),
    )
    .expect("cap");
    let endorsed = action_payload.action.as_mut().expect("action");
    let signature = &mut endorsed.endorsements[1].signature;
    let last = signature.len() - 2;
    signature[last] ^= 1;
    transaction.actions[0].payload = action_payload.encode_to_vec();
    let payload = Payload {
        header: payload.header,
        data: transaction.encode_to_vec(),
    }
    .encode_to_vec();
    envelope.signature = f.submitter.creator.sign(&payload).expect("sign");
    envelope.payload = payload;
    let bad_endorsement = envelope.encode_to_vec();

    // A chaincode the channel does not define.
    let (_, undefined) = f
        .submitter
        .transaction("unknowncc", vec![ns("unknowncc", writes(&[("a", b"1")]))]);

    // A valid transaction that also writes another chaincode's namespace whose policy Org1 alone satisfies.
    f.policies.set(
        "other",
        weft_policy::SignaturePolicy::parse("OR('Org1MSP.peer')").expect("p"),
    );
    let (_, cross) = f.submitter.transaction(
        CHAINCODE,
        vec![
            ns(CHAINCODE, writes(&[("d", b"1")])),
            ns("other", writes(&[("e", b"1")])),
        ],
    );

    let codes = f.codes(
        &ledger,
        vec![
            one_endorsement,
            same_org_twice,
            bad_endorsement,
            undefined,
            cross,
        ],
    );
    assert_eq!(
        codes,
        [
            Code::EndorsementPolicyFailure,
            Code::EndorsementPolicyFailure,
            Code::EndorsementPolicyFailure,
            Code::InvalidChaincode,
            Code::Valid,
        ]
    );
    assert!(ledger.get_state("other", "e").expect("read").is_some());
}

#[test]
fn key_level_endorsement_policies_override_the_chaincode_policy() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    // The chaincode policy is satisfied by Org1 alone; the key "guarded" demands Org2.
    f.policies.set(
        CHAINCODE,
        weft_policy::SignaturePolicy::parse("OR('Org1MSP.peer')").expect("p"),
    );
    let org2_only = parse_signature_policy("OR('Org2MSP.peer')")
        .expect("policy")
        .encode_to_vec();
    let mut set_policy = writes(&[("guarded", b"0")]);
    set_policy.metadata_writes.push(KvMetadataWrite {
        key: "guarded".into(),
        entries: vec![KvMetadataEntry {
            name: weft_ledger::VALIDATION_PARAMETER.into(),
            value: org2_only,
        }],
    });
    let set = f.tx(set_policy);
    assert_eq!(f.codes(&ledger, vec![set]), [Code::Valid]);
    let stored = ledger
        .get_state(CHAINCODE, "guarded")
        .expect("read")
        .expect("present");
    assert!(stored.validation_parameter().is_some());

    // Org1 alone may write other keys but not the guarded one.
    let org2_peer = f.submitter.endorsers.pop().expect("org2");
    let free = f.tx(writes(&[("free", b"1")]));
    let guarded = f.tx(writes(&[("guarded", b"1")]));
    assert_eq!(
        f.codes(&ledger, vec![free, guarded]),
        [Code::Valid, Code::EndorsementPolicyFailure]
    );

    // With Org2's endorsement the guarded key can be written, and its policy survives the write.
    f.submitter.endorsers.push(org2_peer);
    let guarded = f.tx(writes(&[("guarded", b"2")]));
    assert_eq!(f.codes(&ledger, vec![guarded]), [Code::Valid]);
    let stored = ledger
        .get_state(CHAINCODE, "guarded")
        .expect("read")
        .expect("present");
    assert_eq!(stored.value, b"2");
    assert!(stored.validation_parameter().is_some());
}

#[test]
fn org_owned_keys_need_their_organisation_and_no_other() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    f.policies.set_org_owned(CHAINCODE, "approvals/");
    // Org1's peer alone: it may write Org1's keys, not Org2's, nor a key the
    // chaincode's AND(Org1, Org2) policy guards.
    let org2_peer = f.submitter.endorsers.pop().expect("org2");
    let own = f.tx(writes(&[("approvals/Org1MSP/basic", b"1")]));
    let foreign = f.tx(writes(&[("approvals/Org2MSP/basic", b"1")]));
    let shared = f.tx(writes(&[("namespaces/basic", b"1")]));
    let nameless = f.tx(writes(&[("approvals/", b"1")]));
    assert_eq!(
        f.codes(&ledger, vec![own, foreign, shared, nameless]),
        [
            Code::Valid,
            Code::EndorsementPolicyFailure,
            Code::EndorsementPolicyFailure,
            Code::EndorsementPolicyFailure
        ]
    );
    // Only valid transactions' namespaces count as written.
    let refused = f.tx(writes(&[("namespaces/basic", b"1")]));
    assert!(f.commit(&ledger, vec![refused]).written.is_empty());
    f.submitter.endorsers.push(org2_peer);
    let shared = f.tx(writes(&[("namespaces/basic", b"1")]));
    let outcome = f.commit(&ledger, vec![shared]);
    assert_eq!(outcome.transactions[0].code, Code::Valid);
    assert_eq!(outcome.written.iter().collect::<Vec<_>>(), [CHAINCODE]);
    assert!(
        ledger
            .get_state(CHAINCODE, "approvals/Org2MSP/basic")
            .expect("read")
            .is_none()
    );
}

#[test]
fn duplicate_tx_ids_are_refused_within_and_across_blocks() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let (tx_id, envelope) = f
        .submitter
        .transaction(CHAINCODE, vec![ns(CHAINCODE, writes(&[("a", b"1")]))]);
    assert_eq!(
        f.codes(&ledger, vec![envelope.clone(), envelope.clone()]),
        [Code::Valid, Code::DuplicateTxid]
    );
    assert_eq!(f.codes(&ledger, vec![envelope]), [Code::DuplicateTxid]);
    // The index still points at the original.
    let location = ledger
        .transaction(&tx_id)
        .expect("lookup")
        .expect("indexed");
    assert_eq!((location.block, location.tx), (0, 0));
}

#[test]
fn mvcc_and_phantom_conflicts_are_detected_in_block_order() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let setup = f.tx(writes(&[("a", b"1"), ("b", b"1"), ("c", b"1")]));
    assert_eq!(f.codes(&ledger, vec![setup]), [Code::Valid]);

    // Two transactions read a@(0,0) and write it: the first wins, the second conflicts.
    let read_write = |value: &[u8]| KvrwSet {
        reads: vec![read("a", Some((0, 0)))],
        ..writes(&[("a", value)])
    };
    let first = f.tx(read_write(b"2"));
    let second = f.tx(read_write(b"3"));
    // Reading a key as absent that exists conflicts too.
    let absent = f.tx(KvrwSet {
        reads: vec![read("b", None)],
        ..writes(&[("z", b"1")])
    });
    assert_eq!(
        f.codes(&ledger, vec![first, second, absent]),
        [Code::Valid, Code::MvccReadConflict, Code::MvccReadConflict]
    );
    assert_eq!(
        ledger
            .get_state(CHAINCODE, "a")
            .expect("read")
            .expect("a")
            .value,
        b"2"
    );

    // A range read of [a, d) that saw a, b, c: inserting "bb" earlier in the block is a phantom.
    let range_reads = vec![
        read("a", Some((1, 0))),
        read("b", Some((0, 0))),
        read("c", Some((0, 0))),
    ];
    let scan = |f: &mut Fixture| {
        f.tx(KvrwSet {
            range_queries_info: vec![range("a", "d", true, range_reads.clone())],
            ..writes(&[("summary", b"3")])
        })
    };
    let unchanged = scan(&mut f);
    let insert = f.tx(writes(&[("bb", b"1")]));
    let phantom = scan(&mut f);
    // A deletion inside the range is a phantom too.
    let delete_tx = f.tx(KvrwSet {
        writes: vec![delete("c")],
        ..KvrwSet::default()
    });
    assert_eq!(
        f.codes(&ledger, vec![unchanged, insert, phantom, delete_tx]),
        [
            Code::Valid,
            Code::Valid,
            Code::PhantomReadConflict,
            Code::Valid
        ]
    );

    // A non-exhausted range only covers keys up to the last one read.
    let partial = f.tx(KvrwSet {
        range_queries_info: vec![range("a", "", false, vec![read("a", Some((1, 0)))])],
        ..writes(&[("y", b"1")])
    });
    assert_eq!(f.codes(&ledger, vec![partial]), [Code::Valid]);
    assert_eq!(ledger.get_state(CHAINCODE, "c").expect("read"), None);
    let history = ledger.get_history_for_key(CHAINCODE, "c").expect("history");
    assert_eq!(
        history.iter().map(|h| h.is_delete).collect::<Vec<_>>(),
        [false, true]
    );
}

#[test]
fn range_reads_with_pagination_and_composite_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = open(dir.path());
    let mut f = Fixture::new();
    let red1 = composite_key("color~name", &["red", "1"]);
    let red2 = composite_key("color~name", &["red", "2"]);
    let blue = composite_key("color~name", &["blue", "1"]);
    let keys: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    let mut pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    pairs.extend([
        (red1.as_str(), &b"r1"[..]),
        (red2.as_str(), &b"r2"[..]),
        (blue.as_str(), &b"b"[..]),
    ]);
    let tx = f.tx(writes(&pairs));
    assert_eq!(f.codes(&ledger, vec![tx]), [Code::Valid]);

    let page = |bookmark: &str| {
        ledger
            .get_state_range(
                CHAINCODE,
                "k05",
                "k20",
                Some(&weft_ledger::Page {
                    size: 10,
                    bookmark: bookmark.into(),
                }),
            )
            .expect("range")
    };
    let first = page("");
    assert_eq!(first.results.len(), 10);
    assert_eq!(first.results[0].0, "k05");
    assert_eq!(first.bookmark, "k15");
    let second = page(&first.bookmark);
    assert_eq!(
        second
            .results
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["k15", "k16", "k17", "k18", "k19"]
    );
    assert_eq!(second.bookmark, "");

    // Partial composite key: start = prefix, end = prefix + U+10FFFF.
    let prefix = composite_key("color~name", &["red"]);
    let end = format!("{prefix}{}", weft_ledger::MAX_UNICODE_RUNE);
    let reds = ledger
        .get_state_range(CHAINCODE, &prefix, &end, None)
        .expect("range");
    assert_eq!(
        reds.results
            .iter()
            .map(|(_, v)| v.value.as_slice())
            .collect::<Vec<_>>(),
        [&b"r1"[..], &b"r2"[..]]
    );
}

#[test]
fn blocks_past_the_savepoint_are_replayed_on_open() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let committed = {
        let ledger = open(dir.path());
        let tx = f.tx(writes(&[("a", b"1")]));
        f.commit(&ledger, vec![tx]);
        let tx = f.tx(writes(&[("b", b"2")]));
        f.commit(&ledger, vec![tx]);
        ledger.block(1).expect("block 1")
    };
    // Simulate a crash after the block store append of a third block but
    // before its state batch: append it to the block store directly.
    let third = {
        let ledger = open(dir.path());
        let tx = f.tx(writes(&[("c", b"3")]));
        let mut block = f.block(vec![tx]);
        let outcome = {
            let scratch = tempfile::tempdir().expect("scratch");
            let (copy, _) =
                Ledger::open(scratch.path(), CHANNEL, LedgerConfig::default()).expect("copy");
            // Bring a scratch ledger to the same height to learn the codes.
            copy.commit(ledger.block(0).expect("0"), &f.validator())
                .expect("0");
            copy.commit(committed.clone(), &f.validator()).expect("1");
            copy.commit(block.clone(), &f.validator()).expect("2")
        };
        let codes: Vec<u8> = outcome
            .transactions
            .iter()
            .map(|t| t.code as i32 as u8)
            .collect();
        block.metadata.as_mut().expect("metadata").metadata[2] = codes;
        block
    };
    {
        let (mut store, _) =
            weft_ledger::BlockStore::open(&dir.path().join("chains"), Default::default())
                .expect("store");
        store.append(&third).expect("append");
    }
    let (ledger, report) =
        Ledger::open(dir.path(), CHANNEL, LedgerConfig::default()).expect("open");
    assert_eq!(report.replayed_blocks, 1);
    assert_eq!(ledger.height().expect("height"), 3);
    assert_eq!(
        ledger
            .get_state(CHAINCODE, "c")
            .expect("read")
            .expect("c")
            .version,
        Version::new(2, 0)
    );
    assert_eq!(
        ledger
            .get_history_for_key(CHAINCODE, "c")
            .expect("history")
            .len(),
        1
    );
    assert_eq!(
        ledger.last_block_hash(),
        block_header_hash(third.header.as_ref().expect("header")).to_vec()
    );
}
