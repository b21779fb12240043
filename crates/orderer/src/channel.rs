//! One channel on one orderer: its config, chain, Raft group, and the leader's
//! block cutting loop.
//!
//! Blocks are cut at the channel's MaxMessageCount and PreferredMaxBytes,
//! and at the latest BatchTimeout after their first envelope, as Fabric
//! does. With [`Cutting::Adaptive`] (the default) the leader also cuts as
//! soon as no block of its own is waiting for Raft: an idle orderer orders
//! an envelope at once instead of waiting out the timeout, while under load
//! envelopes gather during each Raft round, so blocks stay large (group
//! commit). [`Cutting::Timeout`] is Fabric's behaviour exactly.
//!
//! Only the leader cuts blocks. On winning an election it first waits until
//! everything committed before its term is applied (`ensure_linearizable`), so
//! its first block extends the chain every node agrees on. A submission is
//! answered SUCCESS only once its block is committed by a Raft majority and
//! applied: an acknowledged envelope is never lost when a leader dies.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::ServerState;
use tokio::sync::{Semaphore, mpsc, oneshot};
use weft_channel::ChannelConfig;
use weft_crypto::Sha256;
use weft_material::SigningIdentity;
use weft_protos::Message;
use weft_protos::common::Status;
use weft_protoutil::{block_header_hash, new_block};

use crate::blockcutter::{BlockCutter, CutterConfig};
use crate::raft::{Chain, Proposal, Raft, RaftStore};

/// Why a submission did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitError {
    /// The status Broadcast answers.
    pub status: Status,
    pub reason: String,
    /// Whether the envelope was certainly not proposed, so the receiving
    /// orderer may retry it (with another leader) without a duplicate.
    pub not_ordered: bool,
}

impl SubmitError {
    /// A refusal that may or may not have left the envelope ordered.
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        SubmitError {
            status,
            reason: reason.into(),
            not_ordered: false,
        }
    }

    /// SERVICE_UNAVAILABLE for an envelope certainly not proposed.
    pub fn not_ordered(reason: impl Into<String>) -> Self {
        SubmitError {
            status: Status::ServiceUnavailable,
            reason: reason.into(),
            not_ordered: true,
        }
    }
}

/// The outcome of one submission: SUCCESS, or why not.
pub type SubmitResult = Result<(), SubmitError>;

/// An envelope waiting to be ordered.
pub struct Submission {
    pub envelope: Vec<u8>,
    pub respond: oneshot::Sender<SubmitResult>,
}

/// Blocks proposed but not yet committed, per leader (Fabric's MaxInflightBlocks).
const MAX_INFLIGHT_BLOCKS: usize = 5;

/// The least time between an adaptive cut and the block before it. Every
/// node pays a fixed cost per block (a signature, Raft round trips, two
/// fsyncs on each orderer, two on each peer); without a floor, a busy
/// channel whose Raft rounds are quick would be cut into blocks of a few
/// transactions that cost more to order and commit than large ones. An
/// envelope reaching an idle channel is still cut at once. Measured with
/// `weft bench` (default network): 50 ms rather than 20 ms raises 448 in
/// flight from ~1,020 to ~1,150 tx/s and lowers server CPU per transaction
/// ~10 %; it costs latency where load is light (open loop 600 tx/s: p50
/// 25 → 48 ms; 64 in flight: ~870 → ~730 tx/s).
const MIN_ADAPTIVE_GAP: Duration = Duration::from_millis(50);

/// How this node's leader loop cuts blocks of a channel, and where it
/// records how long blocks took to fill.
pub struct CuttingSetup {
    pub mode: Cutting,
    /// `blockcutter_block_fill_duration` of the channel.
    pub block_fill: Arc<weft_node::metrics::Histogram>,
}

/// When the leader cuts a block besides the channel's size limits and
/// BatchTimeout (local tuning, not part of the channel config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cutting {
    /// Also as soon as none of its blocks is waiting for Raft (group commit).
    #[default]
    Adaptive,
    /// Only at the size limits or BatchTimeout, as Fabric.
    Timeout,
}

pub struct ChannelRuntime {
    pub config: Arc<ChannelConfig>,
    pub chain: Arc<Chain>,
    pub raft: Raft,
    pub store: RaftStore,
    pub node_id: u64,
    /// The consenters' TLS client certificates (DER), decoded once from the
    /// config this runtime serves: cluster calls are checked against them.
    consenter_client_certs: Vec<Vec<u8>>,
    submit: mpsc::Sender<Submission>,
    cutter: tokio::task::JoinHandle<()>,
    /// True once the channel is removed from this node: open Deliver
    /// streams end rather than wait for blocks that will never come.
    removed: tokio::sync::watch::Sender<bool>,
}

impl ChannelRuntime {
    pub fn new(
        config: Arc<ChannelConfig>,
        chain: Arc<Chain>,
        raft: Raft,
        store: RaftStore,
        node_id: u64,
        signer: Arc<SigningIdentity>,
        cutting: CuttingSetup,
    ) -> Self {
        let CuttingSetup {
            mode: cutting,
            block_fill,
        } = cutting;
        let (submit, submissions) = mpsc::channel(10_000);
        let leader = Leader {
            config: Arc::clone(&config),
            chain: Arc::clone(&chain),
            raft: raft.clone(),
            node_id,
            signer,
            block_fill,
            inflight: Arc::new(Semaphore::new(MAX_INFLIGHT_BLOCKS)),
            committed: Arc::new(tokio::sync::Notify::new()),
            cutting,
            epoch: Instant::now(),
        };
        let cutter = tokio::spawn(leader.run(submissions));
        let consenter_client_certs = config
            .consenters
            .iter()
            .filter_map(|c| {
                weft_node::tls::pem_ders(&c.client_tls_cert)
                    .into_iter()
                    .next()
            })
            .collect();
        Self {
            consenter_client_certs,
            config,
            chain,
            raft,
            store,
            node_id,
            submit,
            cutter,
            removed: tokio::sync::watch::channel(false).0,
        }
    }

    pub fn channel_id(&self) -> &str {
        &self.config.channel_id
    }

    /// Whether `der` is one of the channel's consenters' TLS client certificates.
    pub fn is_consenter_client_cert(&self, der: &[u8]) -> bool {
        self.consenter_client_certs
            .iter()
            .any(|cert| cert.as_slice() == der)
    }

    /// The leader's id, if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.current_leader == Some(self.node_id) && m.state == ServerState::Leader
    }

    /// Orders `envelope` through this node (which must be the leader); waits
    /// until its block is committed.
    pub async fn submit_local(&self, envelope: Vec<u8>) -> SubmitResult {
        let (respond, answer) = oneshot::channel();
        self.submit
            .send(Submission { envelope, respond })
            .await
            .map_err(|_| SubmitError::not_ordered("channel is shutting down"))?;
        answer.await.unwrap_or_else(|_| {
            Err(SubmitError::new(
                Status::ServiceUnavailable,
                "channel is shutting down",
            ))
        })
    }

    /// Whether (and when) the channel leaves this node.
    pub fn removed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.removed.subscribe()
    }

    pub async fn shutdown(&self) {
        self.removed.send_replace(true);
        self.cutter.abort();
        let _ = self.raft.shutdown().await;
    }
}

/// What the leader loop needs.
struct Leader {
    config: Arc<ChannelConfig>,
    chain: Arc<Chain>,
    raft: Raft,
    node_id: u64,
    signer: Arc<SigningIdentity>,
    inflight: Arc<Semaphore>,
    /// Signalled when one of this leader's blocks is committed (or failed).
    committed: Arc<tokio::sync::Notify>,
    cutting: Cutting,
    /// What the cutter's times count from.
    epoch: Instant,
    /// `blockcutter_block_fill_duration` of this channel.
    block_fill: Arc<weft_node::metrics::Histogram>,
}

/// The leader's position while it leads one term.
struct Term {
    term: u64,
    next_number: u64,
    previous_hash: Vec<u8>,
    cutter: BlockCutter<Submission>,
    /// When the last block was cut (since the loop's epoch).
    last_cut: Duration,
}

impl Leader {
    fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        (m.current_leader == Some(self.node_id) && m.state == ServerState::Leader)
            .then_some(m.current_term)
    }

    async fn run(self, mut submissions: mpsc::Receiver<Submission>) {
        let epoch = self.epoch;
        let mut metrics = self.raft.metrics();
        let mut term: Option<Term> = None;
        loop {
            // Follow leadership: start a term, or give one up.
            match self.leading_term() {
                Some(t) if term.as_ref().is_none_or(|current| current.term != t) => {
                    fail_pending(term.take(), "leadership changed, resubmit");
                    term = self.start_term(t).await;
                }
                None if term.is_some() => {
                    fail_pending(term.take(), "this orderer is no longer the leader")
                }
                _ => {}
            }
            let deadline = term
                .as_ref()
                .and_then(|t| {
                    let timeout = t.cutter.deadline();
                    let adaptive = (self.cutting == Cutting::Adaptive && t.cutter.pending() > 0)
                        .then(|| t.last_cut + MIN_ADAPTIVE_GAP);
                    timeout.into_iter().chain(adaptive).min()
                })
                .map(|d| tokio::time::Instant::from_std(epoch + d));
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        fail_pending(term.take(), "raft stopped");
                        return;
                    }
                }
                submission = submissions.recv() => {
                    let Some(submission) = submission else { return };
                    match term.as_mut() {
                        Some(current) => {
                            self.order(current, submission).await;
                            self.cut_if_idle(current, &mut submissions, epoch).await;
                        }
                        None => {
                            let _ = submission.respond.send(Err(SubmitError::not_ordered(
                                "this orderer is not the leader",
                            )));
                        }
                    }
                }
                _ = self.committed.notified() => {
                    if let Some(current) = term.as_mut() {
                        self.cut_if_idle(current, &mut submissions, epoch).await;
                    }
                }
                _ = sleep_until(deadline) => {
                    let now = epoch.elapsed();
                    if let Some(current) = term.as_mut() {
                        let since = current.cutter.filling_since();
                        if let Some(batch) = current.cutter.tick(now) {
                            self.filled(since, now);
                            self.propose(current, batch).await;
                        }
                        self.cut_if_idle(current, &mut submissions, epoch).await;
                    }
                }
            }
        }
    }

    /// Adds `submission` to the pending batch, proposing every batch the
    /// size limits cut.
    async fn order(&self, term: &mut Term, submission: Submission) {
        let size = submission.envelope.len() as u64;
        let now = self.epoch.elapsed();
        let since = term.cutter.filling_since();
        for batch in term.cutter.ordered(submission, size, now) {
            self.filled(since, now);
            self.propose(term, batch).await;
        }
    }

    /// With adaptive cutting, cuts what is pending when none of this
    /// leader's blocks waits for Raft. Envelopes already queued are taken
    /// first (up to the size limits), so a burst becomes one block.
    async fn cut_if_idle(
        &self,
        term: &mut Term,
        submissions: &mut mpsc::Receiver<Submission>,
        epoch: Instant,
    ) {
        if self.cutting != Cutting::Adaptive
            || self.inflight.available_permits() < MAX_INFLIGHT_BLOCKS
            || epoch.elapsed() < term.last_cut + MIN_ADAPTIVE_GAP
        {
            return;
        }
        while let Ok(submission) = submissions.try_recv() {
            self.order(term, submission).await;
            if self.inflight.available_permits() < MAX_INFLIGHT_BLOCKS {
                return;
            }
        }
        let now = epoch.elapsed();
        let since = term.cutter.filling_since();
        if let Some(batch) = term.cutter.cut() {
            self.filled(since, now);
            self.propose(term, batch).await;
        }
    }

    /// A batch was cut at `now`, its first message having come at `since`.
    fn filled(&self, since: Option<Duration>, now: Duration) {
        let fill = since.map_or(Duration::ZERO, |since| now.saturating_sub(since));
        self.block_fill.observe(fill.as_secs_f64());
    }

    async fn start_term(&self, term: u64) -> Option<Term> {
        // Bounded, so submissions are never stuck behind a leadership that
        // cannot be confirmed; the loop tries again.
        match tokio::time::timeout(LEADER_WAIT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(
                    "{}: term {term}: leadership not confirmed: {e}",
                    self.config.channel_id
                );
                return None;
            }
            Err(_) => {
                tracing::warn!(
                    "{}: term {term}: leadership not confirmed within {LEADER_WAIT:?}",
                    self.config.channel_id
                );
                return None;
            }
        }
        let (next_number, previous_hash) = self.chain.tip();
        tracing::info!(
            "{}: leading term {term} from block {next_number}",
            self.config.channel_id
        );
        let batch = &self.config.batch_size;
        Some(Term {
            term,
            next_number,
            previous_hash,
            cutter: BlockCutter::new(CutterConfig {
                max_message_count: batch.max_message_count,
                preferred_max_bytes: batch.preferred_max_bytes,
                timeout: self.config.batch_timeout,
            }),
            last_cut: Duration::ZERO,
        })
    }

    /// Builds, signs and proposes the next block; its submitters are answered
    /// when it is committed.
    async fn propose(&self, term: &mut Term, batch: Vec<Submission>) {
        let (envelopes, responders): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|s| (s.envelope, s.respond)).unzip();
        let number = term.next_number;
        let mut block = new_block(number, term.previous_hash.clone(), envelopes);
        let header_hash = block_header_hash(block.header.as_ref().unwrap_or(&Default::default()));
        let nonce = {
            let mut hasher = Sha256::new();
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            hasher
                .update(&header_hash)
                .update(&self.node_id.to_be_bytes())
                .update(&term.term.to_be_bytes())
                .update(&nanos.to_be_bytes());
            hasher.finish()[..24].to_vec()
        };
        let consenter_metadata = weft_protos::etcdraft::BlockMetadata {
            consenter_ids: self.config.consenters.iter().map(|c| c.id).collect(),
            next_consenter_id: self.config.consenters.len() as u64 + 1,
            raft_index: 0,
        }
        .encode_to_vec();
        if let Err(e) = weft_channel::sign_block(
            &mut block,
            self.signer.as_ref(),
            self.signer.serialized(),
            nonce,
            0,
            consenter_metadata,
        ) {
            respond_all(
                responders,
                Err(SubmitError::new(
                    Status::InternalServerError,
                    format!("signing block {number}: {e}"),
                )),
            );
            return;
        }
        let Ok(permit) = Arc::clone(&self.inflight).acquire_owned().await else {
            respond_all(responders, Err(SubmitError::not_ordered("shutting down")));
            return;
        };
        let receiver = match self
            .raft
            .client_write_ff(Proposal {
                block: block.encode_to_vec(),
            })
            .await
        {
            Ok(receiver) => receiver,
            Err(e) => {
                respond_all(
                    responders,
                    Err(SubmitError::new(
                        Status::ServiceUnavailable,
                        format!("raft: {e}"),
                    )),
                );
                return;
            }
        };
        term.next_number += 1;
        term.previous_hash = header_hash.to_vec();
        term.last_cut = self.epoch.elapsed();
        let committed = Arc::clone(&self.committed);
        tokio::spawn(async move {
            let outcome = match receiver.await {
                Ok(Ok(response)) if response.data.number == Some(number) => Ok(()),
                Ok(Ok(_)) => Err(SubmitError::new(
                    Status::ServiceUnavailable,
                    format!("block {number} was superseded by a new leader; resubmit"),
                )),
                Ok(Err(e)) => Err(SubmitError::new(
                    Status::ServiceUnavailable,
                    format!("block {number} not committed: {e}"),
                )),
                Err(_) => Err(SubmitError::new(
                    Status::ServiceUnavailable,
                    format!("block {number}: raft stopped"),
                )),
            };
            drop(permit);
            committed.notify_one();
            respond_all(responders, outcome);
        });
    }
}

fn respond_all(responders: Vec<oneshot::Sender<SubmitResult>>, outcome: SubmitResult) {
    for responder in responders {
        let _ = responder.send(outcome.clone());
    }
}

fn fail_pending(term: Option<Term>, reason: &str) {
    if let Some(mut term) = term
        && let Some(batch) = term.cutter.cut()
    {
        respond_all(
            batch.into_iter().map(|s| s.respond).collect(),
            Err(SubmitError::not_ordered(reason)),
        );
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Raft timing of an orderer (not part of the channel config: local tuning).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot (and compact the log) every this many entries.
    pub snapshot_every_entries: u64,
    /// Entries kept after a snapshot, for followers slightly behind.
    pub keep_after_snapshot: u64,
    /// Blocks per AppendEntries. openraft gives each AppendEntries one
    /// heartbeat interval to complete; a follower catching up on a large
    /// batch would time out again and again and never catch up.
    pub max_blocks_per_append: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat_ms: 200,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            snapshot_every_entries: 200,
            keep_after_snapshot: 50,
            max_blocks_per_append: 4,
        }
    }
}

impl RaftTiming {
    pub fn openraft_config(&self, channel_id: &str) -> Result<openraft::Config, String> {
        openraft::Config {
            cluster_name: channel_id.to_owned(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            purge_batch_size: 16,
            max_payload_entries: self.max_blocks_per_append,
            install_snapshot_timeout: 60_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    }
}

/// How long a submitter waits for its block to commit.
pub const COMMIT_WAIT: Duration = Duration::from_secs(20);

/// How long a follower keeps retrying to reach a leader before answering
/// SERVICE_UNAVAILABLE.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);
