//! One channel's ledger: the block store plus the state database (world
//! state, indexes, history, tx ids, savepoint), committed together.
//!
//! Commit order: validate, append the block (with its validation codes) to
//! the block store and fsync, then apply state, indexes, history, tx ids and
//! the savepoint in one atomic, fsync'd batch. On open, any block past the
//! savepoint is re-applied from the block store using its recorded codes, so
//! a crash at any instant loses nothing and never half-applies a block.

mod commit;
mod mvcc;
mod open;
mod reads;
mod rich_query;
mod updates;

use updates::{RangeCheck, Updates};

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
    /// The envelope's header type (ENDORSER_TRANSACTION, CONFIG, …; -1 if
    /// unreadable) and the chaincode it invoked (empty if none): what
    /// Fabric's `ledger_transaction_count` is labelled with.
    pub header_type: i32,
    pub chaincode: String,
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
    /// Where the commit's time went.
    pub timings: CommitTimings,
}

/// The phases of a block commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitTimings {
    /// Checking every transaction: signatures, policies, MVCC.
    pub validation: std::time::Duration,
    /// Appending the block (and its private data) to the block store.
    pub block_storage: std::time::Duration,
    /// Writing the valid transactions' updates to the state database.
    pub state: std::time::Duration,
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

/// A value that is a JSON object is a queryable document; anything else is not.
pub(crate) fn json_document(value: &[u8]) -> Option<Value> {
    if value.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Value>(value)
        .ok()
        .filter(Value::is_object)
}
