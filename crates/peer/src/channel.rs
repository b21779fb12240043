//! A channel on the peer: its ledger and configuration, and the committer
//! that pulls blocks from the ordering service (Deliver, failing over between
//! orderers), checks the orderers' signatures and commits them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use weft_channel::ChannelConfig;
use weft_ledger::{
    EndorsementPolicies, Ledger, LedgerConfig, PrivateData, SignatureCache, Validator,
};
use weft_material::SigningIdentity;
use weft_node::seek::{seek_envelope, specified};
use weft_node::tls::Tls;
use weft_protos::common::Block;
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;

use crate::config::ChaincodeConfig;
use crate::dissemination::Distributor;
use crate::lifecycle::{Definitions, LIFECYCLE};
use crate::metrics::PeerMetrics;
use crate::snapshot::Snapshots;

/// The channels a peer has joined, by id: what every service looks a
/// request's channel up in.
#[derive(Default)]
pub struct Channels(std::sync::RwLock<std::collections::HashMap<String, Arc<PeerChannel>>>);

impl Channels {
    pub fn get(&self, id: &str) -> Option<Arc<PeerChannel>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Every joined channel, by id.
    pub fn all(&self) -> Vec<Arc<PeerChannel>> {
        let mut channels: Vec<_> = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        channels.sort_by(|a, b| a.id.cmp(&b.id));
        channels
    }

    pub(crate) fn insert(&self, channel: Arc<PeerChannel>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.id.clone(), channel);
    }
}

pub(crate) fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// How long gathering one block's private data may spend pulling what is
/// missing from other peers; what is still missing then is committed
/// without its values.
const PULL_BUDGET: Duration = Duration::from_secs(5);

/// The private data of a block's transactions this peer may hold: from the
/// transient store, else pulled from other member peers, within one
/// deadline per block. Gathered before the ledger commits, so the commit
/// never waits on the network while it holds the ledger's lock.
async fn gather_private_data(
    channel: &str,
    definitions: &Definitions,
    private: &Distributor,
    block: &Block,
) -> PrivateData {
    let deadline = tokio::time::Instant::now() + PULL_BUDGET;
    let mut gathered = PrivateData::new();
    for (tx_id, wanted) in weft_ledger::wanted_in_block(block) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wanted = if left.is_zero() { &[][..] } else { &wanted[..] };
        let found = tokio::time::timeout(
            left.max(Duration::from_millis(1)),
            private.for_commit(channel, definitions, &tx_id, wanted),
        )
        .await
        .ok()
        .flatten();
        if let Some(set) = found {
            gathered.insert(tx_id, set);
        }
    }
    gathered
}

/// Calls waiting for transactions to commit, by tx id. The committer answers
/// each from the block's outcomes, so a block costs one lookup per
/// transaction it holds, however many calls wait.
#[derive(Default)]
pub struct CommitWaiters {
    waiting: std::sync::Mutex<std::collections::HashMap<String, Vec<(u64, Notice)>>>,
    next: std::sync::atomic::AtomicU64,
}

type Notice = tokio::sync::oneshot::Sender<(weft_protos::peer::TxValidationCode, u64)>;

/// One registered wait; dropping it unregisters.
pub struct CommitWaiter<'a> {
    waiters: &'a CommitWaiters,
    tx_id: String,
    id: u64,
    /// The transaction's validation code and block, once committed.
    pub committed: tokio::sync::oneshot::Receiver<(weft_protos::peer::TxValidationCode, u64)>,
}

impl CommitWaiters {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<(u64, Notice)>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `tx_id`. Register before looking in the ledger, so a
    /// commit between the two is not missed.
    pub fn register(&self, tx_id: &str) -> CommitWaiter<'_> {
        let (notice, committed) = tokio::sync::oneshot::channel();
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock()
            .entry(tx_id.to_owned())
            .or_default()
            .push((id, notice));
        CommitWaiter {
            waiters: self,
            tx_id: tx_id.to_owned(),
            id,
            committed,
        }
    }

    /// Answers the waiters of a committed block's transactions (the first
    /// occurrence of a tx id is its outcome, as the ledger records it).
    fn notify(&self, block: u64, transactions: &[weft_ledger::TxOutcome]) {
        let mut waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        for tx in transactions {
            if let Some(notices) = waiting.remove(&tx.tx_id) {
                for (_, notice) in notices {
                    let _ = notice.send((tx.code, block));
                }
            }
        }
    }
}

impl Drop for CommitWaiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        if let Some(notices) = waiting.get_mut(&self.tx_id) {
            notices.retain(|(id, _)| *id != self.id);
            if notices.is_empty() {
                waiting.remove(&self.tx_id);
            }
        }
    }
}

/// One joined channel.
pub struct PeerChannel {
    pub id: String,
    pub ledger: Arc<Ledger>,
    pub config: Arc<ChannelConfig>,
    /// The ledger height, updated after every commit.
    pub height: watch::Sender<u64>,
    /// Gateway CommitStatus calls waiting for their transaction.
    pub commit_waiters: CommitWaiters,
    /// The committed chaincode definitions, re-read after a block that
    /// wrote `_lifecycle`.
    definitions: std::sync::RwLock<Arc<Definitions>>,
    /// This peer's organisation.
    msp_id: String,
    /// Signatures verified in earlier blocks or made by this peer.
    pub(crate) signatures: SignatureCache,
    /// Where blocks were last pulled from (for status output).
    pub source: std::sync::Mutex<String>,
    /// Pending snapshot requests. Held while a block commits, so a snapshot
    /// is always taken at exactly the block it names.
    pub(crate) snapshots: std::sync::Mutex<Snapshots>,
}

/// The channel configuration from the ledger's last config block, checked
/// to be this channel's.
fn channel_config(ledger: &Ledger) -> Result<ChannelConfig, String> {
    let channel_id = ledger.channel_id();
    let block = ledger
        .last_config_block()
        .map_err(|e| format!("channel {channel_id}: config block: {e}"))?;
    let (named, _) = weft_channel::config_envelope(&block)
        .map_err(|e| format!("channel {channel_id}: config block: {e}"))?;
    if named != channel_id {
        return Err(format!(
            "channel {channel_id}: its config block is channel {named}'s"
        ));
    }
    ChannelConfig::from_block(&block).map_err(|e| format!("channel {channel_id}: {e}"))
}

impl std::fmt::Debug for PeerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerChannel").field("id", &self.id).finish()
    }
}

/// Where a channel's ledger comes from when the peer opens it.
#[derive(Debug)]
pub enum LedgerSource {
    /// The ledger directory exists (a channel joined before).
    Existing,
    /// A new ledger: its first block is the channel's genesis block.
    Genesis(Block),
    /// A new ledger started from a snapshot directory (join by snapshot):
    /// it continues after the snapshot's last block.
    Snapshot(std::path::PathBuf),
}

impl PeerChannel {
    /// Opens the channel's ledger in `dir` from `source`. `msp_id` is the
    /// peer's organisation; the indexes of the installed `chaincodes` are
    /// declared in their namespaces; `snapshots` is the peer's snapshot
    /// directory (pending requests, completed snapshots).
    pub fn open(
        dir: &std::path::Path,
        source: LedgerSource,
        msp_id: &str,
        chaincodes: &[&ChaincodeConfig],
        snapshots: &std::path::Path,
    ) -> Result<Self, String> {
        let signatures = SignatureCache::new(100_000);
        let (ledger, config) = match source {
            LedgerSource::Genesis(block) => {
                let (channel_id, _) = weft_channel::config_envelope(&block)
                    .map_err(|e| format!("genesis block: {e}"))?;
                let (ledger, _) = Ledger::open(dir, &channel_id, LedgerConfig::default())
                    .map_err(|e| format!("channel {channel_id}: {e}"))?;
                let config = ChannelConfig::from_block(&block)
                    .map_err(|e| format!("channel {channel_id}: {e}"))?;
                if ledger.height().map_err(|e| e.to_string())? == 0 {
                    let empty = EndorsementPolicies::new();
                    let validator = Validator {
                        msp: &config.msps,
                        policies: &empty,
                        signatures: &signatures,
                        threads: 1,
                    };
                    ledger
                        .commit(block, &validator)
                        .map_err(|e| format!("channel {channel_id}: genesis block: {e}"))?;
                }
                (ledger, config)
            }
            LedgerSource::Snapshot(path) => {
                let (ledger, metadata) = Ledger::from_snapshot(&path, dir, LedgerConfig::default())
                    .map_err(|e| e.to_string())?;
                let config = channel_config(&ledger)?;
                tracing::info!(
                    "channel {}: started from the snapshot at block {} ({})",
                    metadata.channel_id,
                    metadata.last_block_number,
                    path.display()
                );
                (ledger, config)
            }
            LedgerSource::Existing => {
                let channel_id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| format!("{}: not a channel directory", dir.display()))?;
                let (ledger, report) = Ledger::open(dir, &channel_id, LedgerConfig::default())
                    .map_err(|e| format!("channel {channel_id}: {e}"))?;
                if let Some(truncated) = &report.truncated {
                    tracing::warn!(
                        "channel {channel_id}: cut a damaged block store tail: {truncated:?}"
                    );
                }
                if ledger.height().map_err(|e| e.to_string())? == 0 {
                    return Err(format!(
                        "channel {channel_id}: the ledger in {} is empty",
                        dir.display()
                    ));
                }
                let config = channel_config(&ledger)?;
                (ledger, config)
            }
        };
        let channel_id = ledger.channel_id().to_owned();
        for chaincode in chaincodes {
            for path in &chaincode.indexes {
                let definition = std::fs::read_to_string(path)
                    .map_err(|e| format!("index {}: {e}", path.display()))?;
                ledger
                    .define_index(&chaincode.name, &definition)
                    .map_err(|e| format!("index {}: {e}", path.display()))?;
            }
        }
        let definitions = Definitions::read(&ledger, msp_id, &config.application_orgs)
            .map_err(|e| format!("channel {channel_id}: {e}"))?;
        let height = ledger.height().map_err(|e| e.to_string())?;
        let snapshots = Snapshots::open(snapshots, &channel_id)?;
        Ok(PeerChannel {
            snapshots: std::sync::Mutex::new(snapshots),
            id: channel_id,
            ledger: Arc::new(ledger),
            config: Arc::new(config),
            height: watch::channel(height).0,
            commit_waiters: CommitWaiters::default(),
            definitions: std::sync::RwLock::new(Arc::new(definitions)),
            msp_id: msp_id.to_owned(),
            signatures,
            source: Default::default(),
        })
    }

    /// The chaincode definitions committed on the channel, as of the last
    /// committed block.
    pub fn definitions(&self) -> Arc<Definitions> {
        Arc::clone(&self.definitions.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Orderer endpoints from the channel configuration.
    pub fn orderer_endpoints(&self) -> Vec<String> {
        let mut endpoints: BTreeSet<String> = self
            .config
            .orderer_endpoints
            .values()
            .flatten()
            .cloned()
            .collect();
        if endpoints.is_empty() {
            endpoints = self
                .config
                .consenters
                .iter()
                .map(|c| c.endpoint())
                .collect();
        }
        endpoints.into_iter().collect()
    }

    /// Validates and commits `block` (on a blocking thread), with the
    /// private data this peer holds or can pull for it.
    async fn commit(
        self: &Arc<Self>,
        block: Block,
        private: &Arc<Distributor>,
        metrics: &Arc<PeerMetrics>,
    ) -> Result<(), String> {
        let started = std::time::Instant::now();
        weft_channel::verify_block_signatures(&self.config, &block, now_seconds()).map_err(
            |e| {
                format!(
                    "block {} refused: {e}",
                    block.header.as_ref().map_or(0, |h| h.number)
                )
            },
        )?;
        let definitions = self.definitions();
        let gathered = gather_private_data(&self.id, &definitions, private, &block).await;
        let channel = Arc::clone(self);
        let private = Arc::clone(private);
        let metrics = Arc::clone(metrics);
        tokio::task::spawn_blocking(move || {
            let validator = Validator {
                msp: &channel.config.msps,
                policies: &definitions.policies,
                signatures: &channel.signatures,
                threads: 2,
            };
            let mut snapshots = channel.snapshots.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = channel
                .ledger
                .commit_with_private_data(block, &validator, &gathered)
                .map_err(|e| e.to_string())?;
            snapshots.after_commit(&channel.ledger, outcome.number);
            metrics.committed(&channel.id, &outcome, started);
            let valid = outcome
                .transactions
                .iter()
                .filter(|t| t.code == weft_protos::peer::TxValidationCode::Valid)
                .count();
            tracing::info!(
                "channel {}: committed block {} ({} txs, {valid} valid)",
                channel.id,
                outcome.number,
                outcome.transactions.len()
            );
            for missing in &outcome.missing_private_data {
                let eligible = definitions
                    .get(&missing.namespace)
                    .and_then(|d| d.collections.get(&missing.collection))
                    .is_some_and(|c| c.is_member(&channel.msp_id));
                if eligible {
                    tracing::warn!(
                        "channel {}: block {}: private data of {} (collection {} of {}) not committed: {}",
                        channel.id,
                        outcome.number,
                        missing.tx_id,
                        missing.collection,
                        missing.namespace,
                        missing.reason
                    );
                }
            }
            private
                .transient
                .remove(outcome.transactions.iter().map(|t| t.tx_id.as_str()));
            // Definitions change only with a `_lifecycle` write.
            if outcome.written.contains(LIFECYCLE) {
                let refreshed = Definitions::read(
                    &channel.ledger,
                    &channel.msp_id,
                    &channel.config.application_orgs,
                )
                .map_err(|e| format!("block {}: chaincode definitions: {e}", outcome.number))?;
                *channel
                    .definitions
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(refreshed);
            }
            channel
                .commit_waiters
                .notify(outcome.number, &outcome.transactions);
            channel.height.send_replace(outcome.number + 1);
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Pulls and commits blocks until `stop` turns true, failing over
    /// between the channel's orderers.
    pub async fn run_committer(
        self: Arc<Self>,
        tls: Tls,
        signer: Arc<SigningIdentity>,
        private: Arc<Distributor>,
        metrics: Arc<PeerMetrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        metrics.height(&self.id, *self.height.borrow());
        let endpoints = self.orderer_endpoints();
        if endpoints.is_empty() {
            tracing::warn!(
                "channel {}: no orderer endpoints in the channel configuration",
                self.id
            );
            return;
        }
        let mut next = 0usize;
        let mut failures = 0u32;
        loop {
            let endpoint = &endpoints[next % endpoints.len()];
            let before = *self.height.borrow();
            let result = tokio::select! {
                result = self.pull_from(endpoint, &tls, &signer, &private, &metrics) => result,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let progressed = *self.height.borrow() > before;
            if let Err(error) = result {
                if failures == 0 || progressed {
                    tracing::warn!("channel {}: deliver from {endpoint}: {error}", self.id);
                }
                failures = if progressed { 0 } else { failures + 1 };
                next += 1;
            }
            let backoff = Duration::from_millis(100 * u64::from(failures.min(20)));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn pull_from(
        self: &Arc<Self>,
        endpoint: &str,
        tls: &Tls,
        signer: &SigningIdentity,
        private: &Arc<Distributor>,
        metrics: &Arc<PeerMetrics>,
    ) -> Result<(), String> {
        let from = self.ledger.height().map_err(|e| e.to_string())?;
        let channel = tls.channel(endpoint)?;
        let mut client =
            AtomicBroadcastClient::new(channel).max_decoding_message_size(crate::MAX_GRPC_MESSAGE);
        let seek = seek_envelope(
            signer,
            &self.id,
            specified(from),
            specified(u64::MAX),
            SeekBehavior::BlockUntilReady,
        )
        .map_err(|e| e.to_string())?;
        let mut stream = client
            .deliver(tokio_stream::once(seek))
            .await
            .map_err(|e| e.message().to_owned())?
            .into_inner();
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = endpoint.to_owned();
        while let Some(response) = stream.message().await.map_err(|e| e.message().to_owned())? {
            match response.r#type {
                Some(DeliverType::Block(block)) => self.commit(block, private, metrics).await?,
                Some(DeliverType::Status(status)) => {
                    return Err(format!("deliver ended with status {status}"));
                }
                None => {}
            }
        }
        Err("the orderer closed the stream".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_protos::peer::TxValidationCode;

    fn outcome(tx_id: &str, code: TxValidationCode) -> weft_ledger::TxOutcome {
        weft_ledger::TxOutcome {
            tx_id: tx_id.into(),
            header_type: 3,
            chaincode: "basic".into(),
            code,
            reason: None,
        }
    }

    #[test]
    fn commit_waiters_hear_their_transaction_once_and_unregister_when_dropped() {
        let waiters = CommitWaiters::default();
        let mut first = waiters.register("t1");
        let mut second = waiters.register("t1");
        let gone = waiters.register("t2");
        drop(gone);
        assert_eq!(waiters.lock().len(), 1, "a dropped wait is forgotten");
        waiters.notify(
            7,
            &[
                outcome("other", TxValidationCode::Valid),
                outcome("t1", TxValidationCode::MvccReadConflict),
                // A duplicate later in the block is not its outcome.
                outcome("t1", TxValidationCode::DuplicateTxid),
            ],
        );
        for waiter in [&mut first, &mut second] {
            assert_eq!(
                waiter.committed.try_recv().expect("answered"),
                (TxValidationCode::MvccReadConflict, 7)
            );
        }
        assert!(waiters.lock().is_empty());
    }
}
