//! One Raft group per channel, on openraft: the log store (fjall), the state
//! machine (the channel's block store), and the network (weft's `Cluster`
//! gRPC service between orderers).
//!
//! Each Raft entry is one block, cut and signed by the leader. Applying an
//! entry appends the block; applying is idempotent by block number, so an
//! entry re-applied after a crash is skipped. A snapshot is only "height and
//! last hash": a follower that receives one pulls the missing blocks from the
//! other orderers (as Fabric's etcdraft does), so the Raft log stays bounded.

// openraft's storage traits fix the error type (`StorageError`, 224 bytes);
// the helpers here return what those traits return.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use weft_ledger::BlockStore;
use weft_protos::Message;
use weft_protos::common::Block;

use crate::codec;

openraft::declare_raft_types!(
    /// Raft types of an ordering channel: entries carry blocks.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// A block proposed by the leader (its protobuf bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    #[serde(with = "crate::codec::bytes")]
    pub block: Vec<u8>,
}

impl Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "block of {} bytes", self.block.len())
    }
}

/// What applying an entry did: the block number appended, if any.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub number: Option<u64>,
}

fn io_error(e: impl Display) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn sm_error(e: impl Display) -> StorageError<u64> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

/// The durable Raft state of one channel on one orderer: log entries, vote,
/// the state machine's progress and the latest snapshot.
#[derive(Clone)]
pub struct RaftStore {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
}

/// The most Raft log data held in memory before it is flushed to disk.
/// Entries are whole blocks and are purged a few hundred entries after
/// they are applied, so fjall's default (64 MiB) made the log's memtable
/// most of an orderer's memory under load. fjall applies it when the
/// keyspace is created; an existing channel's log keeps its size.
const LOG_MEMTABLE_BYTES: u64 = 16 << 20;

impl RaftStore {
    pub fn open(dir: &std::path::Path) -> Result<Self, fjall::Error> {
        let db = Database::builder(dir).cache_size(8 << 20).open()?;
        let log = db.keyspace("log", || {
            KeyspaceCreateOptions::default().max_memtable_size(LOG_MEMTABLE_BYTES)
        })?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(Self { db, log, meta })
    }

    fn get_record<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError<u64>> {
        match self.meta.get(key).map_err(io_error)? {
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(io_error),
            None => Ok(None),
        }
    }

    fn put_record(&self, key: &str, value: &impl Serialize) -> Result<(), StorageError<u64>> {
        self.put_record_as(key, value, PersistMode::SyncData)
    }

    fn put_record_as(
        &self,
        key: &str,
        value: &impl Serialize,
        durability: PersistMode,
    ) -> Result<(), StorageError<u64>> {
        let bytes = codec::encode(value).map_err(io_error)?;
        let mut batch = self.db.batch().durability(Some(durability));
        batch.insert(&self.meta, key, bytes);
        batch.commit().map_err(io_error)
    }

    /// (first index, last index, entry count) of the log as stored now.
    pub fn log_span(&self) -> (u64, u64, u64) {
        let first = self
            .log
            .first_key_value()
            .and_then(|kv| kv.key().ok())
            .map(|k| index_of(&k));
        let last = self
            .log
            .last_key_value()
            .and_then(|kv| kv.key().ok())
            .map(|k| index_of(&k));
        match (first, last) {
            (Some(first), Some(last)) => (first, last, last - first + 1),
            _ => (0, 0, 0),
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[..8.min(key.len())]);
    u64::from_be_bytes(bytes)
}

impl RaftLogReader<TypeConfig> for RaftStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.log.range(index_key(start)..) {
            let (key, value) = item.into_inner().map_err(io_error)?;
            if !range.contains(&index_of(&key)) {
                break;
            }
            entries.push(codec::decode(&value).map_err(io_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RaftStore {
    type LogReader = RaftStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId<u64>> = self.get_record("purged")?;
        let last = match self.log.last_key_value() {
            Some(kv) => {
                let (_, value) = kv.into_inner().map_err(io_error)?;
                let entry: Entry<TypeConfig> = codec::decode(&value).map_err(io_error)?;
                Some(entry.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.put_record("vote", vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.get_record("vote")
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // A hint for restarts (openraft re-learns the commit index from the
        // leader), so not synced here: the journal is one sequential file,
        // and the next synced write (the next log append) makes it durable.
        self.put_record_as("committed", &committed, PersistMode::Buffer)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self
            .get_record::<Option<LogId<u64>>>("committed")?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(io_error)?;
            batch.insert(&self.log, index_key(entry.log_id.index), bytes);
        }
        let result = batch
            .commit()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(io_error(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for item in self.log.range(index_key(log_id.index)..) {
            let key = item.key().map_err(io_error)?;
            batch.remove(&self.log, key);
        }
        batch.commit().map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(
            &self.meta,
            "purged",
            codec::encode(&Some(log_id)).map_err(io_error)?,
        );
        for item in self.log.range(..=index_key(log_id.index)) {
            let key = item.key().map_err(io_error)?;
            batch.remove(&self.log, key);
        }
        batch.commit().map_err(io_error)
    }
}

/// The channel's chain as the orderer serves it: the block store, and a watch
/// of its height that Deliver streams follow.
pub struct Chain {
    pub store: Mutex<BlockStore>,
    pub height: watch::Sender<u64>,
}

impl Chain {
    pub fn new(store: BlockStore) -> Arc<Self> {
        let height = store.height();
        Arc::new(Self {
            store: Mutex::new(store),
            height: watch::Sender::new(height),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, BlockStore> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// (height, hash of the last block's header).
    pub fn tip(&self) -> (u64, Vec<u8>) {
        let store = self.lock();
        (store.height(), store.last_hash().to_vec())
    }

    /// Appends `block` if it is the next one; a block already present is
    /// skipped (re-applied entries). Anything else is an error.
    pub fn append(&self, block: &Block) -> Result<Option<u64>, String> {
        let number = block.header.as_ref().map(|h| h.number).unwrap_or_default();
        let mut store = self.lock();
        let height = store.height();
        if number < height {
            let existing = store.block(number).map_err(|e| e.to_string())?;
            if existing.header != block.header {
                return Err(format!(
                    "block {number} differs from the one already stored"
                ));
            }
            return Ok(None);
        }
        let previous = block.header.as_ref().map(|h| h.previous_hash.as_slice());
        if number > height || previous != Some(store.last_hash()) {
            // A block cut on a chain this node does not have (a deposed
            // leader's). Skipped: its submitters are not acknowledged.
            tracing::warn!(
                "skipping block {number}: it does not extend the chain at height {height}"
            );
            return Ok(None);
        }
        store.append(block).map_err(|e| e.to_string())?;
        drop(store);
        self.height.send_replace(number + 1);
        Ok(Some(number))
    }
}

/// Where a follower fetches blocks it missed (after a snapshot).
pub trait BlockSource: Send + Sync + 'static {
    /// Pulls blocks `[from, to)` from other orderers and appends them to `chain`.
    fn pull(
        &self,
        chain: Arc<Chain>,
        from: u64,
        to: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotContent {
    height: u64,
    #[serde(with = "crate::codec::bytes")]
    last_hash: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: SnapshotContent,
}

/// The state machine: applies blocks to the chain.
#[derive(Clone)]
pub struct StateMachine {
    store: RaftStore,
    pub chain: Arc<Chain>,
    source: Arc<dyn BlockSource>,
}

impl StateMachine {
    pub fn new(store: RaftStore, chain: Arc<Chain>, source: Arc<dyn BlockSource>) -> Self {
        Self {
            store,
            chain,
            source,
        }
    }

    fn snapshot_now(&self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let applied: Option<LogId<u64>> = self
            .store
            .get_record::<Option<LogId<u64>>>("applied")?
            .flatten();
        let membership: StoredMembership<u64, BasicNode> =
            self.store.get_record("membership")?.unwrap_or_default();
        let (height, last_hash) = self.chain.tip();
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: format!("{}-{height}", applied.map(|l| l.index).unwrap_or_default()),
        };
        let data = SnapshotContent { height, last_hash };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.store.put_record("snapshot", &stored)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(codec::encode(&data).map_err(sm_error)?)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        self.snapshot_now()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self
            .store
            .get_record::<Option<LogId<u64>>>("applied")?
            .flatten();
        let membership = self.store.get_record("membership")?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(Applied::default()),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    results.push(Applied::default());
                }
                EntryPayload::Normal(proposal) => {
                    let block = Block::decode(proposal.block.as_slice()).map_err(sm_error)?;
                    let chain = Arc::clone(&self.chain);
                    let number = tokio::task::spawn_blocking(move || chain.append(&block))
                        .await
                        .map_err(sm_error)?
                        .map_err(sm_error)?;
                    results.push(Applied { number });
                }
            }
        }
        // Blocks are durable (the block store syncs each append) before the
        // progress that covers them is written. The progress itself is not
        // synced unless it records a membership: the journal is one
        // sequential file, so the next synced write (the next log append, a
        // purge, a snapshot) makes it durable, and until then a crash only
        // leaves it older, which re-applies entries still in the log
        // (purging syncs first) and skips their blocks by number.
        let durability = if membership.is_some() {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        let mut batch = self.store.db.batch().durability(Some(durability));
        if let Some(last) = last {
            batch.insert(
                &self.store.meta,
                "applied",
                codec::encode(&Some(last)).map_err(sm_error)?,
            );
        }
        if let Some(membership) = membership {
            batch.insert(
                &self.store.meta,
                "membership",
                codec::encode(&membership).map_err(sm_error)?,
            );
        }
        batch.commit().map_err(sm_error)?;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data: SnapshotContent = codec::decode(snapshot.get_ref()).map_err(sm_error)?;
        let (height, _) = self.chain.tip();
        if height < data.height {
            self.source
                .pull(Arc::clone(&self.chain), height, data.height)
                .await
                .map_err(sm_error)?;
        }
        let (height, last_hash) = self.chain.tip();
        if height < data.height || (height == data.height && last_hash != data.last_hash) {
            return Err(sm_error(format!(
                "after catching up the chain is at height {height}, the snapshot expects {} with another last hash",
                data.height
            )));
        }
        let mut batch = self
            .store
            .db
            .batch()
            .durability(Some(PersistMode::SyncData));
        batch.insert(
            &self.store.meta,
            "applied",
            codec::encode(&meta.last_log_id).map_err(sm_error)?,
        );
        batch.insert(
            &self.store.meta,
            "membership",
            codec::encode(&meta.last_membership).map_err(sm_error)?,
        );
        batch.insert(
            &self.store.meta,
            "snapshot",
            codec::encode(&StoredSnapshot {
                meta: meta.clone(),
                data,
            })
            .map_err(sm_error)?,
        );
        batch.commit().map_err(sm_error)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let stored: Option<StoredSnapshot> = self.store.get_record("snapshot")?;
        Ok(match stored {
            Some(stored) => Some(Snapshot {
                meta: stored.meta,
                snapshot: Box::new(Cursor::new(codec::encode(&stored.data).map_err(sm_error)?)),
            }),
            None => None,
        })
    }
}

/// The membership of a channel's Raft group: consenter id → endpoint.
pub fn members(consenters: &[weft_channel::Consenter]) -> BTreeMap<u64, BasicNode> {
    consenters
        .iter()
        .map(|c| (c.id, BasicNode::new(c.endpoint())))
        .collect()
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use weft_protoutil::{block_header_hash, new_block};

    use super::*;

    struct NoSource;

    impl BlockSource for NoSource {
        fn pull(
            &self,
            _chain: Arc<Chain>,
            _from: u64,
            _to: u64,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>
        {
            Box::pin(async { Err("no other orderers in this test".to_owned()) })
        }
    }

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn open(dir: &std::path::Path) -> StateMachine {
        let store = RaftStore::open(&dir.join("raft")).expect("raft store");
        let (blocks, _) = BlockStore::open(&dir.join("chain"), Default::default()).expect("chain");
        StateMachine::new(store, Chain::new(blocks), Arc::new(NoSource))
    }

    /// The progress record is written without a sync of its own, so a power
    /// loss may leave it older than the (synced) chain: entries are then
    /// applied again, and each block already stored is skipped.
    #[tokio::test]
    async fn progress_older_than_the_chain_re_applies_entries_without_changing_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut entries = Vec::new();
        let mut previous = Vec::new();
        for number in 0..3u64 {
            let block = new_block(number, previous, vec![vec![number as u8; 100]]);
            previous = block_header_hash(block.header.as_ref().expect("header")).to_vec();
            entries.push(Entry {
                log_id: log_id(number + 1),
                payload: EntryPayload::Normal(Proposal {
                    block: block.encode_to_vec(),
                }),
            });
        }

        let mut machine = open(dir.path());
        let applied = machine.apply(entries.clone()).await.expect("apply");
        assert_eq!(
            applied.iter().map(|a| a.number).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2)]
        );
        let tip = machine.chain.tip();
        assert_eq!(tip.0, 3);
        // What a lost unsynced write leaves: the progress after entry 1.
        machine
            .store
            .put_record("applied", &Some(log_id(1)))
            .expect("older progress");
        drop(machine);

        let mut machine = open(dir.path());
        assert_eq!(machine.chain.tip(), tip, "the synced chain is intact");
        let (progress, _) = machine.applied_state().await.expect("applied state");
        assert_eq!(progress, Some(log_id(1)));
        let again = machine
            .apply(entries[1..].to_vec())
            .await
            .expect("re-apply");
        assert!(
            again.iter().all(|a| a.number.is_none()),
            "blocks already stored are skipped: {again:?}"
        );
        assert_eq!(machine.chain.tip(), tip, "nothing appended twice");
        let (progress, _) = machine.applied_state().await.expect("applied state");
        assert_eq!(progress, Some(log_id(3)));
    }
}
