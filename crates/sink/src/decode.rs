//! A block as rows: the block itself, its transactions (decoded as far as
//! their bytes allow: a malformed transaction is still a row, marked by its
//! validation code), the writes of valid transactions (public, and private
//! where the block came with private data) and their chaincode events.

use std::collections::HashMap;

use weft_protos::Message;
use weft_protos::common::{Block, ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};
use weft_protos::kvrwset::KvrwSet;
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::{
    ChaincodeActionPayload, ChaincodeEvent, ChaincodeInvocationSpec, ChaincodeProposalPayload,
    Transaction, TxValidationCode,
};
use weft_protos::rwset::TxPvtReadWriteSet;
use weft_protoutil::{block_envelopes, block_header_hash, parse_envelope, transactions_filter};

/// The rows of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRows {
    pub number: u64,
    pub hash: Vec<u8>,
    pub previous_hash: Vec<u8>,
    pub data_hash: Vec<u8>,
    /// The first transaction's timestamp (Fabric blocks carry none of their
    /// own), in seconds since the epoch.
    pub timestamp: Option<f64>,
    pub transactions: Vec<TransactionRow>,
    pub writes: Vec<WriteRow>,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRow {
    pub index: u32,
    pub tx_id: String,
    /// `ENDORSER_TRANSACTION`, `CONFIG`, … (the header type's name).
    pub kind: String,
    pub creator_msp: Option<String>,
    /// The creator certificate's subject, in its own order
    /// (`C=US, …, OU=client, CN=User1@org1.example.com`).
    pub creator_subject: Option<String>,
    /// The validation code's name (`VALID`, `MVCC_READ_CONFLICT`, …).
    pub validation_code: String,
    pub valid: bool,
    pub chaincode: Option<String>,
    pub function: Option<String>,
    /// The arguments after the function: JSON strings, or `{"hex": …}` for
    /// arguments that are not UTF-8.
    pub args: Option<serde_json::Value>,
    pub timestamp: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteRow {
    pub tx_index: u32,
    pub namespace: String,
    /// Empty for public state; the collection's name for private data.
    pub collection: String,
    pub key: String,
    pub value: Vec<u8>,
    pub is_delete: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub tx_index: u32,
    pub tx_id: String,
    pub chaincode: String,
    pub name: String,
    pub payload: Vec<u8>,
}

/// The rows of `block`; `private_data` (by transaction index) adds the
/// private writes of valid transactions.
pub fn block_rows(block: &Block, private_data: &HashMap<u64, TxPvtReadWriteSet>) -> BlockRows {
    let header = block.header.clone().unwrap_or_default();
    let filter = transactions_filter(block).unwrap_or_default();
    let mut rows = BlockRows {
        number: header.number,
        hash: block_header_hash(&header).to_vec(),
        previous_hash: header.previous_hash.clone(),
        data_hash: header.data_hash.clone(),
        timestamp: None,
        transactions: Vec::new(),
        writes: Vec::new(),
        events: Vec::new(),
    };
    for (index, bytes) in block_envelopes(block).iter().enumerate() {
        let index = index as u32;
        let code = filter
            .get(index as usize)
            .map(|c| i32::from(*c))
            .and_then(|c| TxValidationCode::try_from(c).ok())
            // A block without the committer's filter: as Fabric's
            // `NOT_VALIDATED`.
            .unwrap_or(TxValidationCode::NotValidated);
        let valid = code == TxValidationCode::Valid;
        let mut row = transaction_row(index, bytes);
        row.validation_code = code.as_str_name().to_owned();
        row.valid = valid;
        if rows.timestamp.is_none() {
            rows.timestamp = row.timestamp;
        }
        if valid && let Ok(parsed) = parse_envelope(bytes) {
            if let Some(action) = &parsed.action {
                for namespace in &action.rwsets {
                    for write in &namespace.rwset.writes {
                        rows.writes.push(WriteRow {
                            tx_index: index,
                            namespace: namespace.namespace.clone(),
                            collection: String::new(),
                            key: write.key.clone(),
                            value: write.value.clone(),
                            is_delete: write.is_delete,
                        });
                    }
                }
                if let Ok(event) = ChaincodeEvent::decode(action.events.as_slice())
                    && !event.event_name.is_empty()
                {
                    rows.events.push(EventRow {
                        tx_index: index,
                        tx_id: row.tx_id.clone(),
                        chaincode: event.chaincode_id,
                        name: event.event_name,
                        payload: event.payload,
                    });
                }
            }
            if let Some(private) = private_data.get(&u64::from(index)) {
                private_writes(index, private, &mut rows.writes);
            }
        }
        rows.transactions.push(row);
    }
    rows
}

fn private_writes(index: u32, private: &TxPvtReadWriteSet, out: &mut Vec<WriteRow>) {
    for namespace in &private.ns_pvt_rwset {
        for collection in &namespace.collection_pvt_rwset {
            let Ok(rwset) = KvrwSet::decode(collection.rwset.as_slice()) else {
                continue;
            };
            for write in rwset.writes {
                out.push(WriteRow {
                    tx_index: index,
                    namespace: namespace.namespace.clone(),
                    collection: collection.collection_name.clone(),
                    key: write.key,
                    value: write.value,
                    is_delete: write.is_delete,
                });
            }
        }
    }
}

/// What can be read from a transaction's bytes, however malformed.
fn transaction_row(index: u32, bytes: &[u8]) -> TransactionRow {
    let mut row = TransactionRow {
        index,
        tx_id: String::new(),
        kind: "UNKNOWN".into(),
        creator_msp: None,
        creator_subject: None,
        validation_code: String::new(),
        valid: false,
        chaincode: None,
        function: None,
        args: None,
        timestamp: None,
    };
    let Some(payload) = Envelope::decode(bytes)
        .ok()
        .and_then(|envelope| Payload::decode(envelope.payload.as_slice()).ok())
    else {
        return row;
    };
    let header = payload.header.unwrap_or_default();
    if let Ok(channel_header) = ChannelHeader::decode(header.channel_header.as_slice()) {
        row.tx_id = channel_header.tx_id;
        row.kind = HeaderType::try_from(channel_header.r#type)
            .map(|t| t.as_str_name().to_owned())
            .unwrap_or_else(|_| format!("TYPE_{}", channel_header.r#type));
        row.timestamp = channel_header
            .timestamp
            .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
    }
    if let Some(creator) = SignatureHeader::decode(header.signature_header.as_slice())
        .ok()
        .and_then(|h| SerializedIdentity::decode(h.creator.as_slice()).ok())
    {
        row.creator_subject = subject(&creator.id_bytes);
        row.creator_msp = Some(creator.mspid);
    }
    if row.kind == HeaderType::EndorserTransaction.as_str_name()
        && let Some(spec) = invocation(&payload.data)
    {
        row.chaincode = spec
            .chaincode_spec
            .as_ref()
            .and_then(|s| s.chaincode_id.as_ref())
            .map(|id| id.name.clone());
        let args = spec
            .chaincode_spec
            .and_then(|s| s.input)
            .map(|input| input.args)
            .unwrap_or_default();
        if let Some((function, rest)) = args.split_first() {
            row.function = Some(String::from_utf8_lossy(function).into_owned());
            row.args = Some(serde_json::Value::Array(
                rest.iter().map(|a| arg(a)).collect(),
            ));
        }
    }
    row
}

/// The chaincode invocation a transaction's proposal carried.
fn invocation(data: &[u8]) -> Option<ChaincodeInvocationSpec> {
    let transaction = Transaction::decode(data).ok()?;
    let action = transaction.actions.first()?;
    let payload = ChaincodeActionPayload::decode(action.payload.as_slice()).ok()?;
    let proposal =
        ChaincodeProposalPayload::decode(payload.chaincode_proposal_payload.as_slice()).ok()?;
    ChaincodeInvocationSpec::decode(proposal.input.as_slice()).ok()
}

/// An argument as JSON: its text, or `{"hex": …}` where it is binary (not
/// UTF-8, or with control characters other than tab and line breaks, as
/// serialized protobuf messages are; `jsonb` also refuses U+0000).
fn arg(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
        {
            serde_json::Value::String(text.to_owned())
        }
        _ => serde_json::json!({ "hex": weft_protoutil::hex(bytes) }),
    }
}

/// The subject of a PEM certificate.
fn subject(pem: &[u8]) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.subject().to_string())
}

/// `payload` as JSON when it parses as JSON that PostgreSQL's `jsonb`
/// can hold (it refuses the character U+0000).
pub fn json(payload: &[u8]) -> Option<serde_json::Value> {
    if payload.is_empty() || payload.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// `text` as PostgreSQL's `text` can hold it: U+0000 (the separator of
/// Fabric's composite keys) becomes U+2400 `␀`.
pub fn text(text: &str) -> String {
    text.replace('\0', "\u{2400}")
}

#[cfg(test)]
mod tests {
    use weft_protos::kvrwset::{KvWrite, KvrwSet};
    use weft_protos::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet};
    use weft_protoutil::{MetadataSlot, NamespaceRwSet, new_block};
    use weft_testkit::TestNetwork;

    use super::*;

    fn writes(pairs: &[(&str, &[u8], bool)]) -> Vec<NamespaceRwSet> {
        vec![NamespaceRwSet {
            namespace: "basic".into(),
            rwset: KvrwSet {
                writes: pairs
                    .iter()
                    .map(|(key, value, is_delete)| KvWrite {
                        key: (*key).into(),
                        value: value.to_vec(),
                        is_delete: *is_delete,
                    })
                    .collect(),
                ..Default::default()
            },
            collections: Vec::new(),
        }]
    }

    #[test]
    fn a_block_becomes_rows_with_only_valid_writes() {
        let network = TestNetwork::generate();
        let mut submitter = network.submitter("mychannel");
        let mut first = submitter.builder(
            "basic",
            writes(&[
                ("asset1", br#"{"ID":"asset1"}"#, false),
                ("\0color~name\0blue\0asset1\0", b"", true),
            ]),
        );
        first.args = vec![
            b"UpdateAsset".to_vec(),
            b"asset1".to_vec(),
            vec![0x08, 0x01],
        ];
        let first_id = first.tx_id();
        let first = submitter.sign(&first);
        let (second_id, second) =
            submitter.transaction("basic", writes(&[("asset9", b"not json", false)]));
        let mut block = new_block(7, vec![1; 32], vec![first, second, b"\x0a\x01".to_vec()]);
        block.metadata.as_mut().expect("metadata").metadata
            [MetadataSlot::TransactionsFilter as usize] = vec![
            TxValidationCode::Valid as u8,
            TxValidationCode::MvccReadConflict as u8,
            TxValidationCode::BadPayload as u8,
        ];
        let private = HashMap::from([(
            0,
            TxPvtReadWriteSet {
                ns_pvt_rwset: vec![NsPvtReadWriteSet {
                    namespace: "basic".into(),
                    collection_pvt_rwset: vec![CollectionPvtReadWriteSet {
                        collection_name: "secrets".into(),
                        rwset: KvrwSet {
                            writes: vec![KvWrite {
                                key: "p1".into(),
                                value: b"42".to_vec(),
                                is_delete: false,
                            }],
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    }],
                }],
                ..Default::default()
            },
        )]);

        let rows = block_rows(&block, &private);
        assert_eq!(rows.number, 7);
        assert_eq!(rows.previous_hash, vec![1; 32]);
        assert_eq!(
            rows.hash,
            block_header_hash(block.header.as_ref().expect("header")).to_vec()
        );
        let [valid, conflict, garbage] = rows.transactions.as_slice() else {
            panic!("three transactions: {:?}", rows.transactions);
        };
        assert_eq!(valid.tx_id, first_id);
        assert!(valid.valid);
        assert_eq!(valid.validation_code, "VALID");
        assert_eq!(valid.kind, "ENDORSER_TRANSACTION");
        assert_eq!(valid.creator_msp.as_deref(), Some("Org1MSP"));
        assert!(
            valid
                .creator_subject
                .as_deref()
                .is_some_and(|s| s.contains("CN=User1@org1.example.com")),
            "{valid:?}"
        );
        assert_eq!(valid.chaincode.as_deref(), Some("basic"));
        assert_eq!(valid.function.as_deref(), Some("UpdateAsset"));
        assert_eq!(
            valid.args,
            Some(serde_json::json!(["asset1", {"hex": "0801"}]))
        );
        assert_eq!(conflict.tx_id, second_id);
        assert!(!conflict.valid);
        assert_eq!(conflict.validation_code, "MVCC_READ_CONFLICT");
        assert_eq!(garbage.kind, "UNKNOWN");
        assert_eq!(garbage.validation_code, "BAD_PAYLOAD");

        // The invalid transaction's write is not there; the private write is.
        let written: Vec<(&str, &str, bool)> = rows
            .writes
            .iter()
            .map(|w| (w.collection.as_str(), w.key.as_str(), w.is_delete))
            .collect();
        assert_eq!(
            written,
            vec![
                ("", "asset1", false),
                ("", "\0color~name\0blue\0asset1\0", true),
                ("secrets", "p1", false),
            ]
        );
        assert!(rows.writes.iter().all(|w| w.tx_index == 0));
    }

    #[test]
    fn a_block_without_the_committers_flags_is_not_validated() {
        let network = TestNetwork::generate();
        let mut submitter = network.submitter("mychannel");
        let (_, envelope) = submitter.transaction("basic", writes(&[("k", b"1", false)]));
        let rows = block_rows(&new_block(1, vec![0; 32], vec![envelope]), &HashMap::new());
        assert_eq!(rows.transactions[0].validation_code, "NOT_VALIDATED");
        assert!(rows.writes.is_empty());
    }

    #[test]
    fn text_and_json_are_what_postgresql_accepts() {
        assert_eq!(text("\0a\0"), "\u{2400}a\u{2400}");
        assert_eq!(json(br#"{"a":1}"#), Some(serde_json::json!({"a": 1})));
        assert_eq!(json(br#"{"a":"\u0000"}"#), None);
        assert_eq!(json(b"plain"), None);
        assert_eq!(json(b""), None);
        assert_eq!(arg(b"line\nbreak"), serde_json::json!("line\nbreak"));
        assert_eq!(arg(&[0xff]), serde_json::json!({"hex": "ff"}));
    }
}
