//! A block's pending changes over the committed state: what validation
//! of later transactions reads, range re-checks for phantoms, and the one
//! fsync'd batch a commit writes.

use super::*;

/// Why a range read no longer holds, or could not be checked.
pub(super) enum RangeCheck {
    Phantom(String),
    Unsupported(String),
    Storage(LedgerError),
}

struct HistoryWrite {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A block's pending changes over the committed state: what validation of
/// later transactions in the block reads, and what commit writes.
pub(super) struct Updates<'l> {
    ledger: &'l Ledger,
    changes: BTreeMap<Vec<u8>, Option<VersionedValue>>,
    history: Vec<HistoryWrite>,
    txids: Vec<(String, Version, TxValidationCode)>,
}

impl<'l> Updates<'l> {
    pub(super) fn new(ledger: &'l Ledger) -> Self {
        Updates {
            ledger,
            changes: BTreeMap::new(),
            history: Vec::new(),
            txids: Vec::new(),
        }
    }

    pub(super) fn current(
        &self,
        namespace: &str,
        key: &[u8],
    ) -> Result<Option<VersionedValue>, LedgerError> {
        let state_key = state_key(namespace, key);
        match self.changes.get(&state_key) {
            Some(change) => Ok(change.clone()),
            None => self.ledger.read_state(&state_key),
        }
    }

    pub(super) fn record_tx_id(&mut self, tx_id: &str, version: Version, code: TxValidationCode) {
        if !tx_id.is_empty() {
            self.txids.push((tx_id.to_string(), version, code));
        }
    }

    /// Applies a valid transaction's writes, then its metadata writes.
    pub(super) fn apply(
        &mut self,
        transaction: &EndorserTransaction,
        version: Version,
        private_writes: &[PrivateWrites],
    ) -> Result<(), LedgerError> {
        let Some(action) = &transaction.action else {
            return Ok(());
        };
        let timestamp = transaction.channel_header.timestamp.unwrap_or_default();
        for rwset in &action.rwsets {
            let namespace = rwset.namespace.as_str();
            check_namespace(namespace)?;
            for write in &rwset.rwset.writes {
                let key = write.key.as_bytes();
                let change = if write.is_delete {
                    None
                } else {
                    let metadata = self
                        .current(namespace, key)?
                        .map(|value| value.metadata)
                        .unwrap_or_default();
                    Some(VersionedValue {
                        value: write.value.clone(),
                        metadata,
                        version,
                    })
                };
                self.changes.insert(state_key(namespace, key), change);
                self.history.push(HistoryWrite {
                    key: history::entry_key(namespace, key, version),
                    value: history::encode_entry(
                        transaction.tx_id(),
                        timestamp,
                        write.is_delete,
                        if write.is_delete { &[] } else { &write.value },
                    ),
                });
            }
            for collection in &rwset.collections {
                let hashed = hashed_namespace(namespace, &collection.name);
                check_namespace(&hashed)?;
                for write in &collection.hashed.hashed_writes {
                    let change = (!write.is_delete).then(|| VersionedValue {
                        value: write.value_hash.clone(),
                        metadata: Default::default(),
                        version,
                    });
                    self.changes
                        .insert(state_key(&hashed, &write.key_hash), change);
                }
            }
            for write in &rwset.rwset.metadata_writes {
                let key = write.key.as_bytes();
                if let Some(mut value) = self.current(namespace, key)? {
                    value.metadata = write
                        .entries
                        .iter()
                        .map(|entry| (entry.name.clone(), entry.value.clone()))
                        .filter(|(_, value)| !value.is_empty())
                        .collect();
                    value.version = version;
                    self.changes.insert(state_key(namespace, key), Some(value));
                }
            }
        }
        for private in private_writes {
            let namespace = private_namespace(&private.namespace, &private.collection);
            check_namespace(&namespace)?;
            for write in &private.rwset.writes {
                let change = (!write.is_delete).then(|| VersionedValue {
                    value: write.value.clone(),
                    metadata: Default::default(),
                    version,
                });
                self.changes
                    .insert(state_key(&namespace, write.key.as_bytes()), change);
            }
        }
        Ok(())
    }

    /// Re-runs a recorded range query against the current state.
    pub(super) fn check_range(
        &self,
        namespace: &str,
        range: &weft_protos::kvrwset::RangeQueryInfo,
    ) -> Result<(), RangeCheck> {
        use weft_protos::kvrwset::range_query_info::ReadsInfo;
        let reads = match &range.reads_info {
            Some(ReadsInfo::RawReads(reads)) => &reads.kv_reads,
            Some(ReadsInfo::ReadsMerkleHashes(_)) => {
                return Err(RangeCheck::Unsupported(format!(
                    "range [{:?}, {:?}) in {namespace} is recorded as merkle hashes, which weft does not verify",
                    range.start_key, range.end_key
                )));
            }
            None if range.itr_exhausted => &Vec::new(),
            None => {
                return Err(RangeCheck::Unsupported(
                    "a range query without reads".into(),
                ));
            }
        };
        // The range as recorded: to its end if the iterator was exhausted, else to the last key read.
        let end = if range.itr_exhausted {
            range.end_key.clone()
        } else {
            match reads.last() {
                Some(last) => format!("{}\0", last.key),
                None => return Ok(()),
            }
        };
        let prefix_length = namespace.len() + 1;
        let mut current: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
        let bounds = Ledger::state_bounds(namespace, &range.start_key, &end);
        let inverted = !end.is_empty() && range.start_key.as_str() >= end.as_str();
        let (db_range, block_range) = if inverted {
            (None, None)
        } else {
            (
                Some(self.ledger.keyspaces.state.range(bounds.clone())),
                Some(self.changes.range(bounds)),
            )
        };
        for entry in db_range.into_iter().flatten() {
            let (key, value) = entry
                .into_inner()
                .map_err(|error| RangeCheck::Storage(error.into()))?;
            let value = decode_value(&value).map_err(|reason| {
                RangeCheck::Storage(corrupt(&self.ledger.dir.join("state"), reason))
            })?;
            current.insert(key[prefix_length..].to_vec(), value.version);
        }
        for (key, change) in block_range.into_iter().flatten() {
            let key = key[prefix_length..].to_vec();
            match change {
                Some(value) => current.insert(key, value.version),
                None => current.remove(&key),
            };
        }
        let recorded: Vec<(Vec<u8>, Option<Version>)> = reads
            .iter()
            .map(|read| {
                (
                    read.key.as_bytes().to_vec(),
                    read.version.map(|v| Version::new(v.block_num, v.tx_num)),
                )
            })
            .collect();
        let now: Vec<(Vec<u8>, Option<Version>)> = current
            .into_iter()
            .map(|(key, version)| (key, Some(version)))
            .collect();
        if recorded != now {
            return Err(RangeCheck::Phantom(format!(
                "range [{:?}, {:?}) in {namespace} returned {} key(s) at simulation and {} now, or with other versions",
                range.start_key,
                range.end_key,
                recorded.len(),
                now.len()
            )));
        }
        Ok(())
    }

    /// Writes the block's changes, indexes, history, tx ids and the savepoint atomically.
    pub(super) fn persist(self, number: u64) -> Result<(), LedgerError> {
        let ledger = self.ledger;
        let keyspaces = &ledger.keyspaces;
        let mut batch = ledger.db.batch().durability(Some(PersistMode::SyncData));
        let indexes = read_lock(&ledger.indexes);
        for (state_key, change) in &self.changes {
            let split = state_key.iter().position(|byte| *byte == 0).unwrap_or(0);
            let namespace = std::str::from_utf8(&state_key[..split]).unwrap_or_default();
            let key = &state_key[split + 1..];
            if let Some(defined) = indexes.get(namespace).filter(|defined| !defined.is_empty()) {
                let old = ledger
                    .read_state(state_key)?
                    .and_then(|v| json_document(&v.value));
                let new = change.as_ref().and_then(|v| json_document(&v.value));
                for index in defined {
                    let old_entry = old
                        .as_ref()
                        .and_then(|doc| index.entry(namespace, key, doc));
                    let new_entry = new
                        .as_ref()
                        .and_then(|doc| index.entry(namespace, key, doc));
                    if old_entry != new_entry {
                        if let Some(entry) = old_entry {
                            batch.remove(&keyspaces.index, entry);
                        }
                        if let Some(entry) = new_entry {
                            batch.insert(&keyspaces.index, entry, key);
                        }
                    }
                }
            }
            match change {
                Some(value) => {
                    batch.insert(&keyspaces.state, state_key.as_slice(), encode_value(value))
                }
                None => batch.remove(&keyspaces.state, state_key.as_slice()),
            }
        }
        drop(indexes);
        for write in self.history {
            batch.insert(&keyspaces.history, write.key, write.value);
        }
        let mut recorded = HashSet::new();
        for (tx_id, version, code) in &self.txids {
            if !recorded.insert(tx_id.as_str()) || keyspaces.txids.contains_key(tx_id.as_bytes())? {
                continue;
            }
            let mut value = Vec::with_capacity(17);
            value.extend_from_slice(&version.block.to_be_bytes());
            value.extend_from_slice(&version.tx.to_be_bytes());
            value.push(*code as i32 as u8);
            batch.insert(&keyspaces.txids, tx_id.as_bytes(), value);
        }
        batch.insert(&keyspaces.meta, SAVEPOINT, number.to_be_bytes());
        batch.commit()?;
        Ok(())
    }
}
