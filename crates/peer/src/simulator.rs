//! Transaction simulation: chaincode reads committed state and buffers its
//! writes; what it read (with versions) and wrote becomes the read/write set
//! an endorsement signs.
//!
//! Fabric's rules: reads see committed state only (not the transaction's own
//! writes); the first read of a key records its version; range reads record
//! every key they returned, so the committer can detect phantoms; rich
//! queries and history reads are not recorded (Fabric does not protect them).
//!
//! Private data: reads record the version of the key's committed hash;
//! writes are kept in plain for the private read-write set (which goes to
//! the transient store and member peers) and hashed for the public one
//! (which the endorsement signs, with the SHA-256 of the private set's
//! bytes). Private range reads and queries are not recorded, as in Fabric.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use prost::Message;
use weft_crypto::sha256;
use weft_ledger::{Ledger, LedgerError, Page, Version};
use weft_protos::kvrwset::{HashedRwSet, KvReadHash, KvWriteHash};
use weft_protos::kvrwset::{
    KvMetadataEntry, KvMetadataWrite, KvRead, KvWrite, KvrwSet, QueryReads, RangeQueryInfo,
    range_query_info::ReadsInfo,
};
use weft_protos::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet};
use weft_protoutil::{CollectionHashedRwSet, NamespaceRwSet};

/// Results the chaincode has not fetched yet, for QUERY_STATE_NEXT.
pub const PAGE: usize = 100;

#[derive(Debug, Default)]
struct Namespace {
    reads: BTreeMap<String, Option<Version>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    metadata_writes: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ranges: Vec<RangeQueryInfo>,
    collections: BTreeMap<String, Collection>,
}

/// One collection's reads (the version of each key's hash) and writes.
#[derive(Debug, Default)]
struct Collection {
    reads: BTreeMap<String, Option<Version>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

/// A private value this peer cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum PrivateReadError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The hash is committed but this peer lacks the matching value (it is
    /// not a member, or the data has not reached it).
    #[error(
        "private data matching public hash version is not available. Public hash version = {hash}, Private data version = {value}"
    )]
    Unavailable { hash: String, value: String },
}

/// A transaction's read/write sets: the public one (collections hashed)
/// and, when it wrote private data, the private one.
#[derive(Debug)]
pub struct Results {
    pub public: Vec<NamespaceRwSet>,
    pub private: Option<TxPvtReadWriteSet>,
}

/// Keys and values of a range read, and the bookmark to continue from.
pub type RangeResult = (Vec<(String, Vec<u8>)>, String);

/// One transaction's simulation over a channel's ledger.
pub struct Simulator {
    ledger: Arc<Ledger>,
    namespaces: BTreeMap<String, Namespace>,
    iterators: HashMap<String, VecDeque<Vec<u8>>>,
    next_iterator: u64,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("namespaces", &self.namespaces.keys())
            .finish()
    }
}

fn to_proto(version: Version) -> weft_protos::kvrwset::Version {
    weft_protos::kvrwset::Version {
        block_num: version.block,
        tx_num: version.tx,
    }
}

/// Buffered writes (`None`: a delete) as the rwset's writes, in key order.
fn kv_writes(writes: &BTreeMap<String, Option<Vec<u8>>>) -> Vec<KvWrite> {
    writes
        .iter()
        .map(|(key, value)| KvWrite {
            key: key.clone(),
            is_delete: value.is_none(),
            value: value.clone().unwrap_or_default(),
        })
        .collect()
}

impl Simulator {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Simulator {
            ledger,
            namespaces: BTreeMap::new(),
            iterators: HashMap::new(),
            next_iterator: 0,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn namespace(&mut self, namespace: &str) -> &mut Namespace {
        self.namespaces.entry(namespace.to_owned()).or_default()
    }

    /// Committed value of `key` (empty when absent), recording the read.
    pub fn get_state(&mut self, namespace: &str, key: &str) -> Result<Vec<u8>, LedgerError> {
        let value = self.ledger.get_state(namespace, key)?;
        self.namespace(namespace)
            .reads
            .entry(key.to_owned())
            .or_insert(value.as_ref().map(|v| v.version));
        Ok(value.map(|v| v.value).unwrap_or_default())
    }

    /// Committed metadata of `key`, recording the read.
    pub fn get_state_metadata(
        &mut self,
        namespace: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, LedgerError> {
        let value = self.ledger.get_state(namespace, key)?;
        self.namespace(namespace)
            .reads
            .entry(key.to_owned())
            .or_insert(value.as_ref().map(|v| v.version));
        Ok(value.map(|v| v.metadata).unwrap_or_default())
    }

    pub fn put_state(&mut self, namespace: &str, key: &str, value: Vec<u8>) {
        self.namespace(namespace)
            .writes
            .insert(key.to_owned(), Some(value));
    }

    pub fn del_state(&mut self, namespace: &str, key: &str) {
        self.namespace(namespace)
            .writes
            .insert(key.to_owned(), None);
    }

    pub fn put_state_metadata(&mut self, namespace: &str, key: &str, name: &str, value: Vec<u8>) {
        self.namespace(namespace)
            .metadata_writes
            .entry(key.to_owned())
            .or_default()
            .insert(name.to_owned(), value);
    }

    /// Keys in `[start, end)`, recorded as one range read. With `page`, one
    /// page and the bookmark to continue from.
    pub fn get_state_range(
        &mut self,
        namespace: &str,
        start: &str,
        end: &str,
        page: Option<&Page>,
    ) -> Result<RangeResult, LedgerError> {
        let result = self.ledger.get_state_range(namespace, start, end, page)?;
        let exhausted = result.bookmark.is_empty();
        let recorded_start = match page {
            Some(page) if !page.bookmark.is_empty() => page.bookmark.clone(),
            _ => start.to_owned(),
        };
        let info = RangeQueryInfo {
            start_key: recorded_start,
            end_key: end.to_owned(),
            itr_exhausted: exhausted,
            reads_info: Some(ReadsInfo::RawReads(QueryReads {
                kv_reads: result
                    .results
                    .iter()
                    .map(|(key, value)| KvRead {
                        key: key.clone(),
                        version: Some(to_proto(value.version)),
                    })
                    .collect(),
            })),
        };
        self.namespace(namespace).ranges.push(info);
        Ok((
            result
                .results
                .into_iter()
                .map(|(key, value)| (key, value.value))
                .collect(),
            result.bookmark,
        ))
    }

    /// Keeps `results` for QUERY_STATE_NEXT and returns the first page, whether
    /// more remain, and the iterator id.
    pub fn open_iterator(&mut self, results: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, bool, String) {
        self.next_iterator += 1;
        let id = self.next_iterator.to_string();
        let mut rest: VecDeque<Vec<u8>> = results.into();
        let first: Vec<Vec<u8>> = rest.drain(..rest.len().min(PAGE)).collect();
        let more = !rest.is_empty();
        if more {
            self.iterators.insert(id.clone(), rest);
        }
        (first, more, id)
    }

    /// The next page of iterator `id` (None: unknown or closed).
    pub fn next_page(&mut self, id: &str) -> Option<(Vec<Vec<u8>>, bool)> {
        let rest = self.iterators.get_mut(id)?;
        let page: Vec<Vec<u8>> = rest.drain(..rest.len().min(PAGE)).collect();
        let more = !rest.is_empty();
        if !more {
            self.iterators.remove(id);
        }
        Some((page, more))
    }

    pub fn close_iterator(&mut self, id: &str) {
        self.iterators.remove(id);
    }

    fn collection(&mut self, namespace: &str, collection: &str) -> &mut Collection {
        self.namespace(namespace)
            .collections
            .entry(collection.to_owned())
            .or_default()
    }

    /// Committed private value of `key` (empty when absent), recording the
    /// version of its hash. Fails when the hash is committed but this peer
    /// does not hold the matching value.
    pub fn get_private_data(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Vec<u8>, PrivateReadError> {
        let Some(hash_version) = self
            .read_hash(namespace, collection, key)?
            .map(|h| h.version)
        else {
            return Ok(Vec::new());
        };
        match self.ledger.get_private_data(namespace, collection, key)? {
            Some(value) if value.version == hash_version => Ok(value.value),
            other => Err(PrivateReadError::Unavailable {
                hash: hash_version.to_string(),
                value: other.map_or("nil".into(), |v| v.version.to_string()),
            }),
        }
    }

    /// The committed SHA-256 of a private value (empty when absent), which
    /// every peer has; the read is recorded.
    pub fn get_private_data_hash(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Vec<u8>, LedgerError> {
        let hash = self.read_hash(namespace, collection, key)?;
        Ok(hash.map(|h| h.value).unwrap_or_default())
    }

    /// The committed hash of a private key, recording the read of its version.
    fn read_hash(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<weft_ledger::VersionedValue>, LedgerError> {
        let hash = self
            .ledger
            .get_private_data_hash(namespace, collection, key)?;
        self.collection(namespace, collection)
            .reads
            .entry(key.to_owned())
            .or_insert(hash.as_ref().map(|h| h.version));
        Ok(hash)
    }

    /// Writes (`Some`) or deletes (`None`) a private value.
    pub fn write_private_data(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) {
        self.collection(namespace, collection)
            .writes
            .insert(key.to_owned(), value);
    }

    /// Private keys in `[start, end)` this peer holds (not recorded).
    pub fn get_private_data_range(
        &mut self,
        namespace: &str,
        collection: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let private = weft_ledger::private_namespace(namespace, collection);
        let result = self.ledger.get_state_range(&private, start, end, None)?;
        Ok(result
            .results
            .into_iter()
            .map(|(key, value)| (key, value.value))
            .collect())
    }

    /// Whether the simulation wrote anything.
    pub fn has_writes(&self) -> bool {
        self.namespaces.values().any(|ns| {
            !ns.writes.is_empty()
                || !ns.metadata_writes.is_empty()
                || ns.collections.values().any(|c| !c.writes.is_empty())
        })
    }

    /// The public read/write set (collections hashed) and the private one.
    pub fn results(&self) -> Results {
        let mut public = self.rwsets();
        let mut private = Vec::new();
        for (rwset, (name, ns)) in public.iter_mut().zip(&self.namespaces) {
            let mut collections = Vec::new();
            for (collection, sim) in &ns.collections {
                let hashed = HashedRwSet {
                    hashed_reads: sim
                        .reads
                        .iter()
                        .map(|(key, version)| KvReadHash {
                            key_hash: sha256(key.as_bytes()).to_vec(),
                            version: version.map(to_proto),
                        })
                        .collect(),
                    hashed_writes: sim
                        .writes
                        .iter()
                        .map(|(key, value)| KvWriteHash {
                            key_hash: sha256(key.as_bytes()).to_vec(),
                            is_delete: value.is_none(),
                            value_hash: value
                                .as_ref()
                                .map(|v| sha256(v).to_vec())
                                .unwrap_or_default(),
                            is_purge: false,
                        })
                        .collect(),
                    metadata_writes: Vec::new(),
                };
                let mut pvt_rwset_hash = Vec::new();
                if !sim.writes.is_empty() {
                    let bytes = KvrwSet {
                        writes: kv_writes(&sim.writes),
                        ..Default::default()
                    }
                    .encode_to_vec();
                    pvt_rwset_hash = sha256(&bytes).to_vec();
                    collections.push(CollectionPvtReadWriteSet {
                        collection_name: collection.clone(),
                        rwset: bytes,
                    });
                }
                rwset.collections.push(CollectionHashedRwSet {
                    name: collection.clone(),
                    hashed,
                    pvt_rwset_hash,
                });
            }
            if !collections.is_empty() {
                private.push(NsPvtReadWriteSet {
                    namespace: name.clone(),
                    collection_pvt_rwset: collections,
                });
            }
        }
        Results {
            public,
            private: (!private.is_empty()).then_some(TxPvtReadWriteSet {
                data_model: 0,
                ns_pvt_rwset: private,
            }),
        }
    }

    /// The public read/write set without collections, namespaces and keys
    /// in order (as Fabric sorts them).
    fn rwsets(&self) -> Vec<NamespaceRwSet> {
        self.namespaces
            .iter()
            .map(|(name, ns)| NamespaceRwSet {
                namespace: name.clone(),
                rwset: KvrwSet {
                    reads: ns
                        .reads
                        .iter()
                        .map(|(key, version)| KvRead {
                            key: key.clone(),
                            version: version.map(to_proto),
                        })
                        .collect(),
                    range_queries_info: ns.ranges.clone(),
                    writes: kv_writes(&ns.writes),
                    metadata_writes: ns
                        .metadata_writes
                        .iter()
                        .map(|(key, entries)| KvMetadataWrite {
                            key: key.clone(),
                            entries: entries
                                .iter()
                                .map(|(name, value)| KvMetadataEntry {
                                    name: name.clone(),
                                    value: value.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                },
                collections: Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ledger::{EndorsementPolicies, LedgerConfig, SignatureCache, Validator};
    use weft_msp::MspManagerConfig;
    use weft_testkit::{Chain, TestNetwork};

    const CC: &str = "cc";

    /// A ledger whose block 0 wrote a=1, b=2, c=3, d=4 in `cc`.
    fn ledger(dir: &std::path::Path) -> Arc<Ledger> {
        let network = TestNetwork::generate();
        let ledger = Ledger::open(dir, "mychannel", LedgerConfig::default())
            .expect("open")
            .0;
        let writes = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, key)| KvWrite {
                key: (*key).into(),
                is_delete: false,
                value: (i + 1).to_string().into_bytes(),
            })
            .collect();
        let (_, envelope) = network.submitter("mychannel").transaction(
            CC,
            vec![NamespaceRwSet {
                namespace: CC.into(),
                rwset: KvrwSet {
                    writes,
                    ..Default::default()
                },
                ..Default::default()
            }],
        );
        let mut policies = EndorsementPolicies::new();
        policies.set(
            CC,
            weft_policy::SignaturePolicy::parse("OR('Org1MSP.peer')").expect("policy"),
        );
        let msp = network.msp_manager(MspManagerConfig::default());
        let validator = Validator {
            msp: &msp,
            policies: &policies,
            signatures: &SignatureCache::new(0),
            threads: 1,
        };
        let outcome = ledger
            .commit(Chain::default().block(vec![envelope]), &validator)
            .expect("commit");
        assert_eq!(
            outcome.transactions[0].code,
            weft_protos::peer::TxValidationCode::Valid
        );
        Arc::new(ledger)
    }

    #[test]
    fn reads_see_committed_state_and_record_the_first_version() {
        let dir = tempfile::tempdir().expect("dir");
        let mut sim = Simulator::new(ledger(dir.path()));
        sim.put_state(CC, "a", b"new".to_vec());
        // Fabric: a transaction does not read its own writes.
        assert_eq!(sim.get_state(CC, "a").expect("a"), b"1");
        assert_eq!(sim.get_state(CC, "zz").expect("zz"), b"");
        sim.del_state(CC, "b");
        sim.put_state("other", "k", b"v".to_vec());
        assert!(sim.has_writes());
        let rwsets = sim.results().public;
        let namespaces: Vec<&str> = rwsets.iter().map(|n| n.namespace.as_str()).collect();
        assert_eq!(namespaces, ["cc", "other"]);
        let cc = &rwsets[0].rwset;
        let reads: Vec<_> = cc
            .reads
            .iter()
            .map(|r| (r.key.as_str(), r.version.map(|v| (v.block_num, v.tx_num))))
            .collect();
        assert_eq!(reads, [("a", Some((0, 0))), ("zz", None)]);
        let writes: Vec<_> = cc
            .writes
            .iter()
            .map(|w| (w.key.as_str(), w.is_delete, w.value.as_slice()))
            .collect();
        assert_eq!(writes, [("a", false, &b"new"[..]), ("b", true, &b""[..])]);
    }

    #[test]
    fn range_reads_record_every_key_returned_page_by_page() {
        let dir = tempfile::tempdir().expect("dir");
        let mut sim = Simulator::new(ledger(dir.path()));
        let page = Page {
            size: 2,
            bookmark: String::new(),
        };
        let (first, bookmark) = sim
            .get_state_range(CC, "a", "", Some(&page))
            .expect("page 1");
        assert_eq!(
            first.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(bookmark, "c");
        let next = Page { size: 2, bookmark };
        let (second, bookmark) = sim
            .get_state_range(CC, "a", "", Some(&next))
            .expect("page 2");
        assert_eq!(
            second.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
        assert!(bookmark.is_empty());
        let ranges = &sim.results().public[0].rwset.range_queries_info;
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            (ranges[0].start_key.as_str(), ranges[0].itr_exhausted),
            ("a", false)
        );
        assert_eq!(
            (ranges[1].start_key.as_str(), ranges[1].itr_exhausted),
            ("c", true)
        );
        let Some(ReadsInfo::RawReads(reads)) = &ranges[1].reads_info else {
            panic!("raw reads expected");
        };
        let keys: Vec<&str> = reads.kv_reads.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["c", "d"]);
        assert!(reads.kv_reads.iter().all(|r| r.version.is_some()));
    }

    #[test]
    fn iterators_hand_out_pages_until_exhausted_or_closed() {
        let dir = tempfile::tempdir().expect("dir");
        let mut sim = Simulator::new(ledger(dir.path()));
        let results: Vec<Vec<u8>> = (0..PAGE * 2 + 1)
            .map(|i| i.to_string().into_bytes())
            .collect();
        let (first, more, id) = sim.open_iterator(results.clone());
        assert_eq!((first.len(), more), (PAGE, true));
        let (second, more) = sim.next_page(&id).expect("second page");
        assert_eq!((second.len(), more), (PAGE, true));
        let (last, more) = sim.next_page(&id).expect("last page");
        assert_eq!((last, more), (vec![results[PAGE * 2].clone()], false));
        assert!(
            sim.next_page(&id).is_none(),
            "an exhausted iterator is gone"
        );
        let (_, more, other) = sim.open_iterator(results);
        assert!(more && other != id);
        sim.close_iterator(&other);
        assert!(sim.next_page(&other).is_none());
        assert!(!sim.has_writes());
    }
}
