//! One channel's ledger: the block store plus the state database (world
//! state, indexes, history, tx ids, savepoint), committed together.
//!
//! Commit order: validate, append the block (with its validation codes) to
//! the block store and fsync, then apply state, indexes, history, tx ids and
//! the savepoint in one atomic, fsync'd batch. On open, any block past the
//! savepoint is re-applied from the block store using its recorded codes, so
//! a crash at any instant loses nothing and never half-applies a block.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde_json::Value;
use weft_policy::SignaturePolicy;
use weft_protos::Message;
use weft_protos::common::{Block, BlockMetadata, SignaturePolicyEnvelope};
use weft_protos::peer::TxValidationCode;
use weft_protos::rwset::TxPvtReadWriteSet;
use weft_protoutil::{EndorserTransaction, MetadataSlot, hex, parse_envelope};

use crate::block_store::{BlockStore, BlockStoreConfig, Truncation};
use crate::error::LedgerError;
use crate::history::{self, HistoryEntry};
use crate::private::{
    self, MissingPrivateData, PrivateData, PrivateWrites, hashed_namespace, private_namespace,
};
use crate::query::collate::successor;
use crate::query::{IndexDefinition, Query, QueryError};
use crate::state::{
    Version, VersionedValue, check_namespace, decode_value, encode_value, namespace_prefix,
    state_key,
};
use crate::validation::{Checked, CollectionPolicy, Invalid, Validator, check_block};
use weft_protoutil::unhex;

const SAVEPOINT: &[u8] = b"savepoint";

/// Settings of a ledger.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub block_store: BlockStoreConfig,
    /// The most results one query returns (Fabric's `totalQueryLimit`).
    pub total_query_limit: usize,
    /// State database block cache.
    pub cache_bytes: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            block_store: BlockStoreConfig::default(),
            total_query_limit: 100_000,
            cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What opening a ledger found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// A torn or corrupt block store tail that was cut off.
    pub truncated: Option<Truncation>,
    /// Blocks in the block store past the state savepoint, re-applied.
    pub replayed_blocks: u64,
}

/// The outcome of one transaction in a committed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    pub tx_id: String,
    pub code: TxValidationCode,
    /// Why the transaction is invalid (`None` when valid).
    pub reason: Option<String>,
}

/// A committed block's transaction outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    pub number: u64,
    pub transactions: Vec<TxOutcome>,
    /// The namespaces the block's valid transactions wrote.
    pub written: BTreeSet<String>,
    /// Collections of valid transactions whose private data was not
    /// committed (not provided, or not matching the endorsed hash).
    pub missing_private_data: Vec<MissingPrivateData>,
}

/// Where a transaction was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub block: u64,
    pub tx: u64,
    pub code: TxValidationCode,
}

/// A page request: at most `size` results, continuing from `bookmark`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub size: usize,
    pub bookmark: String,
}

/// A page of `GetStateByRange` results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    pub results: Vec<(String, VersionedValue)>,
    /// The key the next page starts at; empty when the range is exhausted.
    pub bookmark: String,
}

/// A page of `GetQueryResult` results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPage {
    pub results: Vec<(String, Vec<u8>)>,
    /// Where the next page continues; empty when there are no more results.
    pub bookmark: String,
    /// The index that answered the query, if any.
    pub index: Option<String>,
    /// Documents read to answer the query (a full scan reads the whole namespace).
    pub docs_examined: u64,
}

pub(crate) struct Keyspaces {
    pub state: Keyspace,
    pub index: Keyspace,
    pub index_definitions: Keyspace,
    pub history: Keyspace,
    pub txids: Keyspace,
    pub meta: Keyspace,
    pub private_data: Keyspace,
}

/// One channel's ledger.
pub struct Ledger {
    pub(crate) channel_id: String,
    pub(crate) dir: PathBuf,
    pub(crate) config: LedgerConfig,
    pub(crate) blocks: RwLock<BlockStore>,
    pub(crate) db: Database,
    pub(crate) keyspaces: Keyspaces,
    pub(crate) indexes: RwLock<BTreeMap<String, Vec<IndexDefinition>>>,
    pub(crate) commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("channel_id", &self.channel_id)
            .field("dir", &self.dir)
            .finish()
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a transaction did not pass the stateful checks: a verdict every
/// peer reaches alike, or a failure of this peer's storage.
enum Refusal {
    Invalid(Invalid),
    Storage(LedgerError),
}

impl From<Invalid> for Refusal {
    fn from(invalid: Invalid) -> Self {
        Refusal::Invalid(invalid)
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.into(),
    }
}

fn key_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code_from_u8(code: u8) -> TxValidationCode {
    TxValidationCode::try_from(i32::from(code)).unwrap_or(TxValidationCode::InvalidOtherReason)
}

impl Ledger {
    /// Opens (or creates) the ledger of `channel_id` in `dir`, repairing a
    /// torn block store tail and re-applying blocks past the state savepoint.
    pub fn open(
        dir: &Path,
        channel_id: &str,
        config: LedgerConfig,
    ) -> Result<(Ledger, OpenReport), LedgerError> {
        let (blocks, truncated) =
            BlockStore::open(&dir.join("chains"), config.block_store.clone())?;
        let ledger = Ledger::assemble(dir, channel_id, config, blocks)?;
        let replayed_blocks = ledger.recover()?;
        Ok((
            ledger,
            OpenReport {
                truncated,
                replayed_blocks,
            },
        ))
    }

    pub(crate) fn assemble(
        dir: &Path,
        channel_id: &str,
        config: LedgerConfig,
        blocks: BlockStore,
    ) -> Result<Ledger, LedgerError> {
        let db = Database::builder(dir.join("state"))
            .cache_size(config.cache_bytes)
            .open()?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let keyspaces = Keyspaces {
            state: keyspace("state")?,
            index: keyspace("index")?,
            index_definitions: keyspace("index_definitions")?,
            history: keyspace("history")?,
            txids: keyspace("txids")?,
            meta: keyspace("meta")?,
            private_data: keyspace("private_data")?,
        };
        let mut indexes: BTreeMap<String, Vec<IndexDefinition>> = BTreeMap::new();
        for entry in keyspaces.index_definitions.iter() {
            let (key, source) = entry.into_inner()?;
            let namespace = key.split(|byte| *byte == 0).next().unwrap_or_default();
            let definition = std::str::from_utf8(&source)
                .map_err(|error| error.to_string())
                .and_then(|text| IndexDefinition::parse(text).map_err(|error| error.to_string()))
                .map_err(|reason| {
                    corrupt(&dir.join("state"), format!("index definition: {reason}"))
                })?;
            indexes
                .entry(key_string(namespace))
                .or_default()
                .push(definition);
        }
        Ok(Ledger {
            channel_id: channel_id.to_string(),
            dir: dir.to_path_buf(),
            config,
            blocks: RwLock::new(blocks),
            db,
            keyspaces,
            indexes: RwLock::new(indexes),
            commit_lock: Mutex::new(()),
        })
    }

    fn savepoint(&self) -> Result<Option<u64>, LedgerError> {
        Ok(match self.keyspaces.meta.get(SAVEPOINT)? {
            None => None,
            Some(bytes) => Some(u64::from_be_bytes(bytes.as_ref().try_into().map_err(
                |_| corrupt(&self.dir.join("state"), "the savepoint is not 8 bytes"),
            )?)),
        })
    }

    fn recover(&self) -> Result<u64, LedgerError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let committed = self.height()?;
        let stored = read_lock(&self.blocks).height();
        if committed > stored {
            return Err(LedgerError::StateAhead {
                savepoint: committed - 1,
                height: stored,
            });
        }
        for number in committed..stored {
            let block = read_lock(&self.blocks).block(number)?;
            self.reapply(&block)?;
        }
        Ok(stored - committed)
    }

    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// The number of the next block to commit.
    pub fn height(&self) -> Result<u64, LedgerError> {
        Ok(match self.savepoint()? {
            Some(number) => number + 1,
            None => read_lock(&self.blocks).first_number(),
        })
    }

    /// Header hash of the newest block.
    pub fn last_block_hash(&self) -> Vec<u8> {
        read_lock(&self.blocks).last_hash().to_vec()
    }

    /// The oldest block held (0 unless the ledger started from a snapshot).
    pub fn first_block_number(&self) -> u64 {
        read_lock(&self.blocks).first_number()
    }

    pub fn block(&self, number: u64) -> Result<Block, LedgerError> {
        if number >= self.height()? {
            return Err(LedgerError::NoSuchBlock(number));
        }
        read_lock(&self.blocks).block(number)
    }

    pub fn block_bytes(&self, number: u64) -> Result<Vec<u8>, LedgerError> {
        if number >= self.height()? {
            return Err(LedgerError::NoSuchBlock(number));
        }
        read_lock(&self.blocks).block_bytes(number)
    }

    /// Where transaction `tx_id` was committed, with its validation code.
    pub fn transaction(&self, tx_id: &str) -> Result<Option<TxLocation>, LedgerError> {
        let Some(bytes) = self.keyspaces.txids.get(tx_id.as_bytes())? else {
            return Ok(None);
        };
        if bytes.len() != 17 {
            return Err(corrupt(
                &self.dir.join("state"),
                format!("tx id record of {tx_id}"),
            ));
        }
        Ok(Some(TxLocation {
            block: u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            tx: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
            code: code_from_u8(bytes[16]),
        }))
    }

    /// The block holding transaction `tx_id`.
    pub fn block_by_tx_id(&self, tx_id: &str) -> Result<Option<Block>, LedgerError> {
        match self.transaction(tx_id)? {
            Some(location) => Ok(Some(self.block(location.block)?)),
            None => Ok(None),
        }
    }

    /// Validates `block` and commits it. Transactions that fail validation are
    /// recorded with their code and change no state; an `Err` means the block
    /// itself was refused (wrong number, broken chain) or storage failed, and
    /// nothing was written.
    pub fn commit(
        &self,
        block: Block,
        validator: &Validator<'_>,
    ) -> Result<CommitOutcome, LedgerError> {
        self.commit_with_private_data(block, validator, &PrivateData::new())
    }

    /// [`Ledger::commit`], also committing the private data offered for the
    /// block's valid transactions (see [`crate::private`]), gathered by the
    /// caller beforehand ([`crate::private::wanted_in_block`]).
    pub fn commit_with_private_data(
        &self,
        mut block: Block,
        validator: &Validator<'_>,
        private: &PrivateData,
    ) -> Result<CommitOutcome, LedgerError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let height = self.height()?;
        read_lock(&self.blocks).check_extends(&block)?;
        let number = height;

        let envelopes = weft_protoutil::block_envelopes(&block);
        let checked = check_block(envelopes, &self.channel_id, validator);
        let mut updates = Updates::new(self);
        let mut outcomes = Vec::with_capacity(checked.len());
        let mut seen_in_block = HashSet::new();
        let mut written = BTreeSet::new();
        let mut missing_private_data = Vec::new();
        let mut stored_private = Vec::new();
        for (tx_number, result) in checked.into_iter().enumerate() {
            let version = Version::new(number, tx_number as u64);
            // A storage failure stops the commit: turned into a verdict, it
            // would make this peer's ledger differ from the others'.
            let result = match result {
                Ok(checked) => {
                    match self.check_stateful(&updates, &checked, validator, &mut seen_in_block) {
                        Ok(()) => Ok(checked),
                        Err(Refusal::Invalid(invalid)) => Err(invalid),
                        Err(Refusal::Storage(error)) => return Err(error),
                    }
                }
                Err(invalid) => Err(invalid),
            };
            match result {
                Ok(checked) => {
                    if let Some(action) = &checked.transaction.action {
                        written.extend(
                            action
                                .rwsets
                                .iter()
                                .filter(|ns| {
                                    !ns.rwset.writes.is_empty()
                                        || !ns.rwset.metadata_writes.is_empty()
                                })
                                .map(|ns| ns.namespace.clone()),
                        );
                    }
                    let offered = private.get(checked.transaction.tx_id());
                    let (private_writes, missing) = private::verify(&checked.transaction, offered);
                    missing_private_data.extend(missing);
                    if !private_writes.is_empty() {
                        stored_private.push((
                            private::stored_key(number, tx_number as u64),
                            private::encode_stored(&private_writes),
                        ));
                    }
                    updates.apply(&checked.transaction, version, &private_writes)?;
                    updates.record_tx_id(
                        checked.transaction.tx_id(),
                        version,
                        TxValidationCode::Valid,
                    );
                    outcomes.push(TxOutcome {
                        tx_id: checked.transaction.tx_id().to_string(),
                        code: TxValidationCode::Valid,
                        reason: None,
                    });
                }
                Err(invalid) => {
                    let tx_id = parse_envelope(&envelopes[tx_number])
                        .map(|tx| tx.tx_id().to_string())
                        .unwrap_or_default();
                    if invalid.code != TxValidationCode::DuplicateTxid {
                        updates.record_tx_id(&tx_id, version, invalid.code);
                    }
                    outcomes.push(TxOutcome {
                        tx_id,
                        code: invalid.code,
                        reason: Some(invalid.reason),
                    });
                }
            }
        }

        let filter: Vec<u8> = outcomes
            .iter()
            .map(|outcome| outcome.code as i32 as u8)
            .collect();
        let metadata = block.metadata.get_or_insert_with(BlockMetadata::default);
        let slot = MetadataSlot::TransactionsFilter as usize;
        if metadata.metadata.len() <= slot {
            metadata.metadata.resize(slot + 1, Vec::new());
        }
        metadata.metadata[slot] = filter;

        // Private data first: re-applying the block after a crash needs it.
        // Entries left for this block number by an earlier attempt that
        // crashed before its block was appended are replaced. Blocks without
        // private data cost one prefix lookup, no write.
        let stale: Vec<_> = self
            .keyspaces
            .private_data
            .prefix(number.to_be_bytes())
            .map(|entry| entry.key())
            .collect::<Result<_, _>>()?;
        if !stale.is_empty() || !stored_private.is_empty() {
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
            for key in stale {
                batch.remove(&self.keyspaces.private_data, key);
            }
            for (key, value) in stored_private {
                batch.insert(&self.keyspaces.private_data, key, value);
            }
            batch.commit()?;
        }

        write_lock(&self.blocks).append(&block)?;
        updates.persist(number)?;
        Ok(CommitOutcome {
            number,
            transactions: outcomes,
            written,
            missing_private_data,
        })
    }

    /// Re-applies a block already in the block store, using its recorded codes.
    fn reapply(&self, block: &Block) -> Result<(), LedgerError> {
        let number = block
            .header
            .as_ref()
            .map(|header| header.number)
            .unwrap_or_default();
        let envelopes = weft_protoutil::block_envelopes(block);
        let filter = weft_protoutil::transactions_filter(block).unwrap_or(&[]);
        if filter.len() != envelopes.len() {
            return Err(LedgerError::MalformedBlock {
                number,
                reason: format!(
                    "{} validation codes for {} transactions",
                    filter.len(),
                    envelopes.len()
                ),
            });
        }
        let mut updates = Updates::new(self);
        for (tx_number, (envelope, code)) in envelopes.iter().zip(filter).enumerate() {
            let version = Version::new(number, tx_number as u64);
            let code = code_from_u8(*code);
            let parsed = parse_envelope(envelope);
            let tx_id = parsed
                .as_ref()
                .map(|tx| tx.tx_id().to_string())
                .unwrap_or_default();
            if code == TxValidationCode::Valid {
                let transaction = parsed.map_err(|error| LedgerError::MalformedBlock {
                    number,
                    reason: format!("transaction {tx_number} is marked valid but {error}"),
                })?;
                let stored = self
                    .keyspaces
                    .private_data
                    .get(private::stored_key(number, tx_number as u64))?
                    .map(|bytes| TxPvtReadWriteSet::decode(bytes.as_ref()))
                    .transpose()
                    .map_err(|error| {
                        corrupt(
                            &self.dir.join("state"),
                            format!("private data of block {number} tx {tx_number}: {error}"),
                        )
                    })?;
                let (private_writes, _) = private::verify(&transaction, stored.as_ref());
                updates.apply(&transaction, version, &private_writes)?;
            }
            if code != TxValidationCode::DuplicateTxid {
                updates.record_tx_id(&tx_id, version, code);
            }
        }
        updates.persist(number)
    }

    /// Duplicate tx id, endorsement policies (chaincode and key-level), MVCC.
    fn check_stateful(
        &self,
        updates: &Updates<'_>,
        checked: &Checked,
        validator: &Validator<'_>,
        seen_in_block: &mut HashSet<String>,
    ) -> Result<(), Refusal> {
        let transaction = &checked.transaction;
        let tx_id = transaction.tx_id();
        let storage = Refusal::Storage;
        if !tx_id.is_empty() {
            let committed = self
                .keyspaces
                .txids
                .contains_key(tx_id.as_bytes())
                .map_err(|e| storage(e.into()))?;
            if committed || !seen_in_block.insert(tx_id.to_string()) {
                return Err(Invalid::new(
                    TxValidationCode::DuplicateTxid,
                    format!("tx id {tx_id} was already used"),
                )
                .into());
            }
        }
        let Some(action) = &transaction.action else {
            return Ok(());
        };
        for rwset in &action.rwsets {
            for collection in &rwset.collections {
                let mut hashes = HashSet::new();
                if collection
                    .hashed
                    .hashed_writes
                    .iter()
                    .any(|write| !hashes.insert(write.key_hash.as_slice()))
                {
                    return Err(Invalid::new(
                        TxValidationCode::BadRwset,
                        format!(
                            "a key of collection {} in {} is written twice",
                            collection.name, rwset.namespace
                        ),
                    )
                    .into());
                }
            }
            let mut keys = HashSet::with_capacity(rwset.rwset.writes.len());
            if let Some(write) = rwset
                .rwset
                .writes
                .iter()
                .find(|write| !keys.insert(write.key.as_str()))
            {
                return Err(Invalid::new(
                    TxValidationCode::BadRwset,
                    format!(
                        "key {:?} in {} is written twice",
                        write.key, rwset.namespace
                    ),
                )
                .into());
            }
        }

        // Endorsement policies: the invoked chaincode always, and every namespace written.
        let mut namespaces: BTreeMap<&str, bool> = BTreeMap::new();
        namespaces.insert(&action.chaincode_id.name, false);
        for rwset in &action.rwsets {
            let writes = !rwset.rwset.writes.is_empty() || !rwset.rwset.metadata_writes.is_empty();
            *namespaces.entry(&rwset.namespace).or_default() |= writes;
        }
        for (namespace, _) in namespaces {
            let written: Vec<&str> = action
                .rwsets
                .iter()
                .filter(|rwset| rwset.namespace == namespace)
                .flat_map(|rwset| {
                    let writes = rwset.rwset.writes.iter().map(|write| write.key.as_str());
                    let metadata = rwset
                        .rwset
                        .metadata_writes
                        .iter()
                        .map(|write| write.key.as_str());
                    writes.chain(metadata)
                })
                .collect();
            // Collection writes need the collection's endorsement policy, or
            // the chaincode's when the collection has none.
            let mut needs_chaincode_policy = written.is_empty();
            for collection in action
                .rwsets
                .iter()
                .filter(|rwset| rwset.namespace == namespace)
                .flat_map(|rwset| &rwset.collections)
                .filter(|c| !c.hashed.hashed_writes.is_empty())
            {
                match validator
                    .policies
                    .collection_policy(namespace, &collection.name)
                {
                    CollectionPolicy::Chaincode => needs_chaincode_policy = true,
                    CollectionPolicy::Collection(policy) => {
                        policy.evaluate(&checked.endorsers).map_err(|error| {
                            Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!(
                                    "collection {} of {namespace}: endorsement policy {policy} not satisfied: {error}",
                                    collection.name
                                ),
                            )
                        })?;
                    }
                    CollectionPolicy::Undefined => {
                        return Err(Invalid::new(
                            TxValidationCode::EndorsementPolicyFailure,
                            format!(
                                "collection {} is not defined for chaincode {namespace}",
                                collection.name
                            ),
                        )
                        .into());
                    }
                }
            }
            for key in written {
                let current = updates
                    .current(namespace, key.as_bytes())
                    .map_err(storage)?;
                match current
                    .as_ref()
                    .and_then(VersionedValue::validation_parameter)
                {
                    Some(parameter) => {
                        let policy = SignaturePolicyEnvelope::decode(parameter)
                            .map_err(|error| error.to_string())
                            .and_then(|envelope| {
                                SignaturePolicy::from_envelope(&envelope).map_err(|e| e.to_string())
                            })
                            .map_err(|reason| {
                                Invalid::new(
                                    TxValidationCode::EndorsementPolicyFailure,
                                    format!("key {key:?} in {namespace}: its key-level policy is malformed: {reason}"),
                                )
                            })?;
                        policy.evaluate(&checked.endorsers).map_err(|error| {
                            Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!("key {key:?} in {namespace}: key-level policy {policy} not satisfied: {error}"),
                            )
                        })?;
                    }
                    None => match validator.policies.owner_policy(namespace, key) {
                        Ok(Some(policy)) => {
                            policy.evaluate(&checked.endorsers).map_err(|error| {
                                Invalid::new(
                                    TxValidationCode::EndorsementPolicyFailure,
                                    format!("key {key:?} in {namespace} belongs to an organisation: {policy} not satisfied: {error}"),
                                )
                            })?;
                        }
                        Ok(None) => needs_chaincode_policy = true,
                        Err(reason) => {
                            return Err(Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!("in {namespace}: {reason}"),
                            )
                            .into());
                        }
                    },
                }
            }
            if needs_chaincode_policy {
                let policy = validator.policies.get(namespace).ok_or_else(|| {
                    Invalid::new(
                        TxValidationCode::InvalidChaincode,
                        format!(
                            "chaincode {namespace} is not defined on channel {}",
                            self.channel_id
                        ),
                    )
                })?;
                policy.evaluate(&checked.endorsers).map_err(|error| {
                    Invalid::new(
                        TxValidationCode::EndorsementPolicyFailure,
                        format!(
                            "chaincode {namespace}: endorsement policy {policy} not satisfied by {} valid endorsement(s): {error}",
                            checked.endorsers.len()
                        ),
                    )
                })?;
            }
        }

        // MVCC in block order: every read still current, every range unchanged.
        for rwset in &action.rwsets {
            let namespace = rwset.namespace.as_str();
            // A read is valid while the key is still at the version read.
            let check = |state_namespace: &str,
                         key: &[u8],
                         version: Option<&weft_protos::kvrwset::Version>,
                         what: &dyn Fn() -> String|
             -> Result<(), Refusal> {
                let current = updates
                    .current(state_namespace, key)
                    .map_err(storage)?
                    .map(|value| value.version);
                let expected = version.map(|v| Version::new(v.block_num, v.tx_num));
                if current == expected {
                    return Ok(());
                }
                Err(Invalid::new(
                    TxValidationCode::MvccReadConflict,
                    format!(
                        "{} was read at version {} but is now at {}",
                        what(),
                        expected.map_or("(absent)".into(), |v| v.to_string()),
                        current.map_or("(absent)".into(), |v| v.to_string()),
                    ),
                )
                .into())
            };
            for read in &rwset.rwset.reads {
                check(
                    namespace,
                    read.key.as_bytes(),
                    read.version.as_ref(),
                    &|| format!("key {:?} in {namespace}", read.key),
                )?;
            }
            for collection in &rwset.collections {
                let hashed = hashed_namespace(namespace, &collection.name);
                for read in &collection.hashed.hashed_reads {
                    check(&hashed, &read.key_hash, read.version.as_ref(), &|| {
                        format!("a key of collection {} in {namespace}", collection.name)
                    })?;
                }
            }
            for range in &rwset.rwset.range_queries_info {
                updates
                    .check_range(namespace, range)
                    .map_err(|error| match error {
                        RangeCheck::Phantom(reason) => {
                            Invalid::new(TxValidationCode::PhantomReadConflict, reason).into()
                        }
                        RangeCheck::Unsupported(reason) => {
                            Invalid::new(TxValidationCode::InvalidOtherReason, reason).into()
                        }
                        RangeCheck::Storage(error) => storage(error),
                    })?;
            }
        }
        Ok(())
    }

    /// The committed value of `key` in `namespace`.
    pub fn get_state(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        check_namespace(namespace)?;
        self.read_state(&state_key(namespace, key.as_bytes()))
    }

    /// A private value of `collection` in `chaincode`, as this peer
    /// committed it (absent when the peer never held it).
    pub fn get_private_data(
        &self,
        chaincode: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        self.get_state(&private_namespace(chaincode, collection), key)
    }

    /// The committed hash of a private value (every peer has it): the value
    /// is the SHA-256 of the private value.
    pub fn get_private_data_hash(
        &self,
        chaincode: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        let namespace = hashed_namespace(chaincode, collection);
        check_namespace(&namespace)?;
        self.read_state(&state_key(&namespace, &weft_crypto::sha256(key.as_bytes())))
    }

    /// The private read-write set this peer committed for a transaction.
    pub fn committed_private_data(
        &self,
        block: u64,
        tx: u64,
    ) -> Result<Option<TxPvtReadWriteSet>, LedgerError> {
        self.keyspaces
            .private_data
            .get(private::stored_key(block, tx))?
            .map(|bytes| TxPvtReadWriteSet::decode(bytes.as_ref()))
            .transpose()
            .map_err(|error| corrupt(&self.dir.join("state"), error.to_string()))
    }

    pub(crate) fn read_state(
        &self,
        state_key: &[u8],
    ) -> Result<Option<VersionedValue>, LedgerError> {
        match self.keyspaces.state.get(state_key)? {
            None => Ok(None),
            Some(bytes) => decode_value(&bytes)
                .map(Some)
                .map_err(|reason| corrupt(&self.dir.join("state"), reason)),
        }
    }

    fn state_bounds(namespace: &str, start: &str, end: &str) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let prefix = namespace_prefix(namespace);
        let lower = Bound::Included(state_key(namespace, start.as_bytes()));
        let upper = if end.is_empty() {
            successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded)
        } else {
            Bound::Excluded(state_key(namespace, end.as_bytes()))
        };
        (lower, upper)
    }

    /// Keys in `[start, end)` of `namespace` in key order (`end` empty: to the end),
    /// a page at a time when `page` is given (bookmark: the key to resume at).
    pub fn get_state_range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        page: Option<&Page>,
    ) -> Result<RangePage, LedgerError> {
        check_namespace(namespace)?;
        let start = match page {
            Some(page) if !page.bookmark.is_empty() => page.bookmark.as_str(),
            _ => start,
        };
        let limit = page
            .map(|page| page.size)
            .filter(|size| *size > 0)
            .unwrap_or(self.config.total_query_limit)
            .min(self.config.total_query_limit);
        let prefix_length = namespace.len() + 1;
        let mut results = Vec::new();
        let mut bookmark = String::new();
        if !end.is_empty() && start >= end {
            return Ok(RangePage { results, bookmark });
        }
        for entry in self
            .keyspaces
            .state
            .range(Self::state_bounds(namespace, start, end))
        {
            let (key, value) = entry.into_inner()?;
            let key = key_string(&key[prefix_length..]);
            if results.len() == limit {
                bookmark = key;
                break;
            }
            let value =
                decode_value(&value).map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
            results.push((key, value));
        }
        Ok(RangePage { results, bookmark })
    }

    /// Every committed write of `key` in `namespace`, in commit order.
    pub fn get_history_for_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        check_namespace(namespace)?;
        let mut entries = Vec::new();
        for entry in self
            .keyspaces
            .history
            .prefix(history::key_prefix(namespace, key.as_bytes()))
        {
            let (entry_key, bytes) = entry.into_inner()?;
            entries.push(
                history::decode_entry(&entry_key, &bytes)
                    .map_err(|reason| corrupt(&self.dir.join("state"), reason))?,
            );
        }
        Ok(entries)
    }

    /// Declares a JSON index in `namespace` (Fabric's
    /// `META-INF/statedb/couchdb/indexes/*.json`) and builds it over the
    /// current state. Re-declaring an index with the same name replaces it.
    pub fn define_index(
        &self,
        namespace: &str,
        definition: &str,
    ) -> Result<IndexDefinition, LedgerError> {
        check_namespace(namespace)?;
        let definition =
            IndexDefinition::parse(definition).map_err(|error| LedgerError::InvalidIndex {
                namespace: namespace.into(),
                name: String::new(),
                reason: error.to_string(),
            })?;
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let existing = read_lock(&self.indexes)
            .get(namespace)
            .and_then(|defined| defined.iter().find(|d| d.name == definition.name).cloned());
        if existing
            .as_ref()
            .is_some_and(|existing| existing.fields == definition.fields)
        {
            return Ok(definition);
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        if let Some(existing) = &existing {
            for entry in self.keyspaces.index.prefix(existing.prefix(namespace)) {
                batch.remove(&self.keyspaces.index, entry.key()?);
            }
        }
        let prefix_length = namespace.len() + 1;
        for entry in self.keyspaces.state.prefix(namespace_prefix(namespace)) {
            let (key, bytes) = entry.into_inner()?;
            let value =
                decode_value(&bytes).map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
            if let Some(doc) = json_document(&value.value)
                && let Some(entry) = definition.entry(namespace, &key[prefix_length..], &doc)
            {
                batch.insert(&self.keyspaces.index, entry, &key[prefix_length..]);
            }
        }
        let mut definition_key = namespace.as_bytes().to_vec();
        definition_key.push(0);
        definition_key.extend_from_slice(definition.name.as_bytes());
        batch.insert(
            &self.keyspaces.index_definitions,
            definition_key,
            definition.source.as_bytes(),
        );
        batch.commit()?;
        let mut indexes = write_lock(&self.indexes);
        let defined = indexes.entry(namespace.to_string()).or_default();
        defined.retain(|d| d.name != definition.name);
        defined.push(definition.clone());
        Ok(definition)
    }

    /// The indexes declared in `namespace`.
    pub fn indexes(&self, namespace: &str) -> Vec<IndexDefinition> {
        read_lock(&self.indexes)
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs a Mango query (`GetQueryResult`) over the JSON values of `namespace`,
    /// through an index when one can answer it.
    pub fn get_query_result(
        &self,
        namespace: &str,
        query: &str,
        page: Option<&Page>,
    ) -> Result<QueryPage, LedgerError> {
        check_namespace(namespace)?;
        let query = Query::parse(query)?;
        let bookmark = page
            .map(|page| page.bookmark.clone())
            .filter(|bookmark| !bookmark.is_empty())
            .or_else(|| query.bookmark.clone());
        let limit = page
            .map(|page| page.size)
            .filter(|size| *size > 0)
            .or(query.limit)
            .unwrap_or(self.config.total_query_limit)
            .min(self.config.total_query_limit);

        let indexes = self.indexes(namespace);
        let named = query.use_index.as_ref().and_then(|(ddoc, name)| {
            indexes
                .iter()
                .find(|index| index.is_named(ddoc, name.as_deref()))
        });
        let chosen = named
            .and_then(|index| {
                index
                    .plan(namespace, &query.selector)
                    .map(|scan| (index, scan))
            })
            .or_else(|| {
                indexes
                    .iter()
                    .filter_map(|index| {
                        index
                            .plan(namespace, &query.selector)
                            .map(|scan| (index, scan))
                    })
                    .max_by_key(|(index, scan)| {
                        (scan.equalities, std::cmp::Reverse(index.fields.len()))
                    })
            });

        // Candidates in a stable order, each with the position to resume after it.
        let (lower, upper, keyspace) = match &chosen {
            Some((_, scan)) => (
                scan.lower.clone(),
                scan.upper.clone(),
                &self.keyspaces.index,
            ),
            None => {
                let (lower, upper) = Self::state_bounds(namespace, "", "");
                (lower, upper, &self.keyspaces.state)
            }
        };
        let sorted = !query.sort.is_empty();
        let mut skip = query.skip;
        let mut lower = lower;
        let mut offset = 0usize;
        if let Some(bookmark) = &bookmark {
            let invalid = || LedgerError::Query(QueryError::Bookmark(bookmark.clone()));
            if sorted {
                offset = bookmark
                    .strip_prefix('o')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(invalid)?;
            } else {
                let position = bookmark
                    .strip_prefix('k')
                    .and_then(unhex)
                    .ok_or_else(invalid)?;
                lower = Bound::Excluded(position);
            }
            skip = 0;
        }

        let prefix_length = namespace.len() + 1;
        let mut docs_examined = 0u64;
        let mut matches: Vec<(String, Vec<u8>, Value)> = Vec::new();
        let mut next_bookmark = String::new();
        for entry in keyspace.range((lower, upper)) {
            let (position, stored) = entry.into_inner()?;
            docs_examined += 1;
            let (key, value) = if chosen.is_some() {
                match self.read_state(&state_key(namespace, &stored))? {
                    Some(value) => (stored.to_vec(), value.value),
                    None => continue,
                }
            } else {
                let value = decode_value(&stored)
                    .map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
                (position[prefix_length..].to_vec(), value.value)
            };
            let Some(doc) = json_document(&value) else {
                continue;
            };
            if !query.selector.matches(&doc) {
                continue;
            }
            if sorted {
                if matches.len() >= self.config.total_query_limit {
                    return Err(QueryError::TooManyResults {
                        limit: self.config.total_query_limit,
                    }
                    .into());
                }
            } else {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if matches.len() == limit {
                    break;
                }
            }
            matches.push((key_string(&key), value, doc));
            if !sorted && matches.len() == limit {
                next_bookmark = format!("k{}", hex(&position));
            }
        }

        if sorted {
            matches.sort_by(|a, b| query.sort_order(&a.2, &b.2).then_with(|| a.0.cmp(&b.0)));
            let start = offset.max(skip).min(matches.len());
            let end = start.saturating_add(limit).min(matches.len());
            if end < matches.len() {
                next_bookmark = format!("o{end}");
            }
            matches = matches.drain(start..end).collect();
        }
        let results = matches
            .into_iter()
            .map(|(key, value, doc)| {
                let value = if query.fields.is_some() {
                    query.project(doc).to_string().into_bytes()
                } else {
                    value
                };
                (key, value)
            })
            .collect();
        Ok(QueryPage {
            results,
            bookmark: next_bookmark,
            index: chosen.map(|(index, _)| index.name.clone()),
            docs_examined,
        })
    }
}

/// A value that is a JSON object is a queryable document; anything else is not.
pub(crate) fn json_document(value: &[u8]) -> Option<Value> {
    if value.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Value>(value)
        .ok()
        .filter(Value::is_object)
}

enum RangeCheck {
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
struct Updates<'l> {
    ledger: &'l Ledger,
    changes: BTreeMap<Vec<u8>, Option<VersionedValue>>,
    history: Vec<HistoryWrite>,
    txids: Vec<(String, Version, TxValidationCode)>,
}

impl<'l> Updates<'l> {
    fn new(ledger: &'l Ledger) -> Self {
        Updates {
            ledger,
            changes: BTreeMap::new(),
            history: Vec::new(),
            txids: Vec::new(),
        }
    }

    fn current(&self, namespace: &str, key: &[u8]) -> Result<Option<VersionedValue>, LedgerError> {
        let state_key = state_key(namespace, key);
        match self.changes.get(&state_key) {
            Some(change) => Ok(change.clone()),
            None => self.ledger.read_state(&state_key),
        }
    }

    fn record_tx_id(&mut self, tx_id: &str, version: Version, code: TxValidationCode) {
        if !tx_id.is_empty() {
            self.txids.push((tx_id.to_string(), version, code));
        }
    }

    /// Applies a valid transaction's writes, then its metadata writes.
    fn apply(
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
    fn check_range(
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
    fn persist(self, number: u64) -> Result<(), LedgerError> {
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
