//! Private data collections, as Fabric keeps them.
//!
//! Every peer commits a transaction's *hashed* collection writes: SHA-256 of
//! each key and value, in the namespace `<chaincode>$$h<collection>` (key: the
//! 32-byte key hash, value: the value hash), and validates its hashed reads
//! (MVCC) against them. A peer that holds a transaction's private read-write
//! set (it endorsed the transaction, or was sent the data) — and whose bytes
//! hash to the `pvt_rwset_hash` the endorsers signed — also commits the
//! plain writes in `<chaincode>$$p<collection>`, at the same version. Which
//! collections a peer may hold is the peer's business; the ledger commits what
//! it is given and reports what it was not.
//!
//! The private read-write sets a block committed are kept in the keyspace
//! `private_data` (block ‖ tx → `rwset.TxPvtReadWriteSet`), written before
//! the block is appended, so re-applying a block after a crash restores them.
//! Snapshots leave private values out (joining peers get hashes only, as in
//! Fabric).

use std::collections::BTreeMap;

use weft_crypto::sha256;
use weft_protos::Message as _;
use weft_protos::kvrwset::KvrwSet;
use weft_protos::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet};
use weft_protoutil::EndorserTransaction;

/// Private read-write sets offered for a block's transactions, by tx id.
pub type PrivateData = BTreeMap<String, TxPvtReadWriteSet>;

/// What a block's transactions want from private data collections: for
/// each transaction that wrote private data (valid or not: the verdicts come
/// later), its tx id and (namespace, collection) pairs. The committer gathers
/// these before it calls the ledger, so no commit waits on the network.
pub fn wanted_in_block(block: &weft_protos::common::Block) -> Vec<(String, Vec<(String, String)>)> {
    weft_protoutil::block_envelopes(block)
        .iter()
        .filter_map(|envelope| weft_protoutil::parse_envelope(envelope).ok())
        .filter_map(|transaction| {
            let wanted = wanted(&transaction);
            (!wanted.is_empty()).then(|| (transaction.tx_id().to_owned(), wanted))
        })
        .collect()
}

/// The collections of a transaction that carry private writes.
pub(crate) fn wanted(transaction: &EndorserTransaction) -> Vec<(String, String)> {
    let Some(action) = &transaction.action else {
        return Vec::new();
    };
    action
        .rwsets
        .iter()
        .flat_map(|namespace| {
            namespace
                .collections
                .iter()
                .filter(|c| !c.pvt_rwset_hash.is_empty())
                .map(|c| (namespace.namespace.clone(), c.name.clone()))
        })
        .collect()
}

/// The namespace of a collection's plain keys and values.
pub fn private_namespace(chaincode: &str, collection: &str) -> String {
    format!("{chaincode}$$p{collection}")
}

/// The namespace of a collection's key and value hashes.
pub fn hashed_namespace(chaincode: &str, collection: &str) -> String {
    format!("{chaincode}$$h{collection}")
}

/// Whether a state namespace holds private values (left out of snapshots).
pub(crate) fn is_private_namespace(namespace: &[u8]) -> bool {
    namespace.windows(3).any(|w| w == b"$$p")
}

/// A valid transaction's collection whose private data was not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPrivateData {
    pub tx_id: String,
    pub namespace: String,
    pub collection: String,
    /// "not provided", or why the provided data was refused.
    pub reason: String,
}

/// One collection's verified private writes.
#[derive(Debug, Clone)]
pub(crate) struct PrivateWrites {
    pub namespace: String,
    pub collection: String,
    pub rwset: KvrwSet,
    /// The bytes the endorsers' `pvt_rwset_hash` covers.
    pub bytes: Vec<u8>,
}

/// Matches `offered` private data against a transaction's hashed collection
/// sets: each collection's bytes must hash to the endorsed `pvt_rwset_hash`
/// and decode. Returns what can be committed and what is missing.
pub(crate) fn verify(
    transaction: &EndorserTransaction,
    offered: Option<&TxPvtReadWriteSet>,
) -> (Vec<PrivateWrites>, Vec<MissingPrivateData>) {
    let mut writes = Vec::new();
    let mut missing = Vec::new();
    let Some(action) = &transaction.action else {
        return (writes, missing);
    };
    let mut by_collection: BTreeMap<(&str, &str), &[u8]> = BTreeMap::new();
    for namespace in offered.map(|o| o.ns_pvt_rwset.as_slice()).unwrap_or(&[]) {
        for collection in &namespace.collection_pvt_rwset {
            by_collection.insert(
                (&namespace.namespace, &collection.collection_name),
                &collection.rwset,
            );
        }
    }
    for namespace in &action.rwsets {
        // A collection only read has no private read-write set.
        for collection in namespace
            .collections
            .iter()
            .filter(|c| !c.pvt_rwset_hash.is_empty())
        {
            let lack = |reason: String| MissingPrivateData {
                tx_id: transaction.tx_id().to_owned(),
                namespace: namespace.namespace.clone(),
                collection: collection.name.clone(),
                reason,
            };
            let Some(bytes) =
                by_collection.get(&(namespace.namespace.as_str(), collection.name.as_str()))
            else {
                missing.push(lack("not provided".into()));
                continue;
            };
            if sha256(bytes).as_slice() != collection.pvt_rwset_hash.as_slice() {
                missing.push(lack(
                    "the private read-write set does not match the endorsed hash".into(),
                ));
                continue;
            }
            match KvrwSet::decode(*bytes) {
                Ok(rwset) => writes.push(PrivateWrites {
                    namespace: namespace.namespace.clone(),
                    collection: collection.name.clone(),
                    rwset,
                    bytes: bytes.to_vec(),
                }),
                Err(error) => missing.push(lack(format!(
                    "the private read-write set does not decode: {error}"
                ))),
            }
        }
    }
    (writes, missing)
}

/// The committed private read-write sets of one transaction, as stored.
pub(crate) fn encode_stored(writes: &[PrivateWrites]) -> Vec<u8> {
    let mut namespaces: Vec<NsPvtReadWriteSet> = Vec::new();
    for write in writes {
        let collection = CollectionPvtReadWriteSet {
            collection_name: write.collection.clone(),
            rwset: write.bytes.clone(),
        };
        match namespaces
            .iter_mut()
            .find(|n| n.namespace == write.namespace)
        {
            Some(namespace) => namespace.collection_pvt_rwset.push(collection),
            None => namespaces.push(NsPvtReadWriteSet {
                namespace: write.namespace.clone(),
                collection_pvt_rwset: vec![collection],
            }),
        }
    }
    TxPvtReadWriteSet {
        data_model: 0,
        ns_pvt_rwset: namespaces,
    }
    .encode_to_vec()
}

/// Key of a transaction's stored private data.
pub(crate) fn stored_key(block: u64, tx: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&block.to_be_bytes());
    key[8..].copy_from_slice(&tx.to_be_bytes());
    key
}
