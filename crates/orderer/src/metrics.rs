//! The orderer's metrics, named and labelled as Fabric's (etcdraft
//! consensus, broadcast, deliver, ledger height), registered in the node's
//! operations registry.

use std::sync::Arc;

use weft_node::metrics::{Counter, DEFAULT_BUCKETS, Family, Gauge, Histogram, Registry};

use crate::channel::ChannelRuntime;

/// The `type` and `status` label values of a Broadcast envelope.
fn type_and_status(kind: i32, status: i32) -> (&'static str, &'static str) {
    (
        weft_protos::common::HeaderType::try_from(kind).map_or("", |t| t.as_str_name()),
        weft_protos::common::Status::try_from(status).map_or("UNKNOWN", |s| s.as_str_name()),
    )
}

/// Every metric the orderer updates.
pub struct OrdererMetrics {
    is_leader: Arc<Family<Gauge>>,
    leader_changes: Arc<Family<Counter>>,
    cluster_size: Arc<Family<Gauge>>,
    committed_block_number: Arc<Family<Gauge>>,
    raft_log_entries: Arc<Family<Gauge>>,
    height: Arc<Family<Gauge>>,
    broadcast_processed: Arc<Family<Counter>>,
    broadcast_validate: Arc<Family<Histogram>>,
    block_fill: Arc<Family<Histogram>>,
    pub deliver_blocks_sent: Arc<Family<Counter>>,
}

impl OrdererMetrics {
    pub fn register(registry: &Registry) -> Arc<Self> {
        Arc::new(OrdererMetrics {
            is_leader: registry.gauge(
                "consensus_etcdraft_is_leader",
                "The leadership status of the current node: 1 if it is the leader else 0.",
                &["channel"],
            ),
            leader_changes: registry.counter(
                "consensus_etcdraft_leader_changes",
                "The number of leader changes since process start.",
                &["channel"],
            ),
            cluster_size: registry.gauge(
                "consensus_etcdraft_cluster_size",
                "Number of nodes in this channel.",
                &["channel"],
            ),
            committed_block_number: registry.gauge(
                "consensus_etcdraft_committed_block_number",
                "The block number of the latest block committed.",
                &["channel"],
            ),
            raft_log_entries: registry.gauge(
                "weft_raft_log_entries",
                "Raft log entries this node keeps for the channel (not yet compacted into a snapshot).",
                &["channel"],
            ),
            height: registry.gauge(
                "ledger_blockchain_height",
                "Height of the chain in blocks.",
                &["channel"],
            ),
            broadcast_processed: registry.counter(
                "broadcast_processed_count",
                "The number of transactions processed.",
                &["channel", "type", "status"],
            ),
            broadcast_validate: registry.histogram(
                "broadcast_validate_duration",
                "The time to validate a transaction in seconds.",
                &["channel", "type", "status"],
                DEFAULT_BUCKETS,
            ),
            block_fill: registry.histogram(
                "blockcutter_block_fill_duration",
                "The time from first transaction enqueing to the block being cut in seconds.",
                &["channel"],
                DEFAULT_BUCKETS,
            ),
            deliver_blocks_sent: registry.counter(
                "deliver_blocks_sent",
                "The number of blocks sent by the deliver service.",
                &["channel", "filtered", "data_type"],
            ),
        })
    }

    /// One Broadcast envelope checked (signature, policy, size) in `took`.
    pub fn validated(&self, channel: &str, kind: i32, status: i32, took: std::time::Duration) {
        let (kind, status) = type_and_status(kind, status);
        self.broadcast_validate
            .with(&[channel, kind, status])
            .observe(took.as_secs_f64());
    }

    /// The `blockcutter_block_fill_duration` of `channel`.
    pub fn block_fill(&self, channel: &str) -> Arc<Histogram> {
        self.block_fill.with(&[channel])
    }

    /// One Broadcast envelope answered.
    pub fn broadcast(&self, channel: &str, kind: i32, status: i32) {
        let (kind, status) = type_and_status(kind, status);
        self.broadcast_processed
            .with(&[channel, kind, status])
            .inc();
    }

    /// Keeps a channel's consensus and height metrics current until the
    /// channel leaves the node.
    pub fn watch(self: &Arc<Self>, runtime: &Arc<ChannelRuntime>) {
        let channel = runtime.channel_id().to_owned();
        let is_leader = self.is_leader.with(&[&channel]);
        let leader_changes = self.leader_changes.with(&[&channel]);
        let cluster_size = self.cluster_size.with(&[&channel]);
        let committed = self.committed_block_number.with(&[&channel]);
        let log_entries = self.raft_log_entries.with(&[&channel]);
        let height = self.height.with(&[&channel]);
        cluster_size.set(runtime.config.consenters.len() as f64);
        let mut raft = runtime.raft.metrics();
        let mut heights = runtime.chain.height.subscribe();
        let mut removed = runtime.removed();
        let node_id = runtime.node_id;
        tokio::spawn(async move {
            let mut leader = None;
            loop {
                let (current_leader, leading) = {
                    let m = raft.borrow_and_update();
                    let first = m.purged.map_or(0, |purged| purged.index + 1);
                    let kept = m
                        .last_log_index
                        .map_or(0, |last| (last + 1).saturating_sub(first));
                    log_entries.set(kept as f64);
                    (
                        m.current_leader,
                        m.current_leader == Some(node_id)
                            && m.state == openraft::ServerState::Leader,
                    )
                };
                // As Fabric counts: every new leader, the first election included.
                if current_leader.is_some() && current_leader != leader {
                    leader_changes.inc();
                    leader = current_leader;
                }
                is_leader.set(if leading { 1.0 } else { 0.0 });
                let tip = *heights.borrow_and_update();
                height.set(tip as f64);
                committed.set(tip.saturating_sub(1) as f64);
                tokio::select! {
                    changed = raft.changed() => if changed.is_err() { break },
                    changed = heights.changed() => if changed.is_err() { break },
                    _ = removed.wait_for(|removed| *removed) => break,
                }
            }
            // A removed channel is no longer led or served here.
            is_leader.set(0.0);
        });
    }
}
