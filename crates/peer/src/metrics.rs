//! The peer's metrics, named and labelled as Fabric's (ledger, endorser,
//! gateway), registered in the node's operations registry.

use std::sync::Arc;
use std::time::Instant;

use weft_ledger::CommitOutcome;
use weft_node::metrics::{
    Counter, DEFAULT_BUCKETS, Family, Gauge, Histogram, Registry, write_family,
};

/// Fabric's `success` label value.
fn success_label(success: bool) -> &'static str {
    if success { "true" } else { "false" }
}

/// Every metric the peer updates.
pub struct PeerMetrics {
    height: Arc<Family<Gauge>>,
    transactions: Arc<Family<Counter>>,
    block_processing: Arc<Family<Histogram>>,
    block_validation: Arc<Family<Histogram>>,
    blockstorage_commit: Arc<Family<Histogram>>,
    statedb_commit: Arc<Family<Histogram>>,
    pub proposals_received: Arc<Counter>,
    pub successful_proposals: Arc<Counter>,
    proposal_duration: Arc<Family<Histogram>>,
    gateway_received: Arc<Family<Counter>>,
    gateway_completed: Arc<Family<Counter>>,
    gateway_duration: Arc<Family<Histogram>>,
}

impl PeerMetrics {
    pub fn register(registry: &Registry) -> Arc<Self> {
        Arc::new(PeerMetrics {
            height: registry.gauge(
                "ledger_blockchain_height",
                "Height of the chain in blocks.",
                &["channel"],
            ),
            transactions: registry.counter(
                "ledger_transaction_count",
                "Number of transactions processed.",
                &[
                    "channel",
                    "transaction_type",
                    "chaincode",
                    "validation_code",
                ],
            ),
            block_processing: registry.histogram(
                "ledger_block_processing_time",
                "Time taken in seconds for ledger block processing.",
                &["channel"],
                DEFAULT_BUCKETS,
            ),
            block_validation: registry.histogram(
                "weft_ledger_block_validation_time",
                "Time taken in seconds to validate a block's transactions (signatures, policies, MVCC).",
                &["channel"],
                DEFAULT_BUCKETS,
            ),
            blockstorage_commit: registry.histogram(
                "ledger_blockstorage_commit_time",
                "Time taken in seconds for committing the block and private data to storage.",
                &["channel"],
                DEFAULT_BUCKETS,
            ),
            statedb_commit: registry.histogram(
                "ledger_statedb_commit_time",
                "Time taken in seconds for committing block changes to state db.",
                &["channel"],
                DEFAULT_BUCKETS,
            ),
            proposals_received: registry
                .counter(
                    "endorser_proposals_received",
                    "The number of proposals received.",
                    &[],
                )
                .with(&[]),
            successful_proposals: registry
                .counter(
                    "endorser_successful_proposals",
                    "The number of successful proposals.",
                    &[],
                )
                .with(&[]),
            proposal_duration: registry.histogram(
                "endorser_proposal_duration",
                "The time to complete a proposal.",
                &["channel", "chaincode", "success"],
                DEFAULT_BUCKETS,
            ),
            gateway_received: registry.counter(
                "gateway_requests_received",
                "The number of requests received.",
                &["method"],
            ),
            gateway_completed: registry.counter(
                "gateway_requests_completed",
                "The number of requests completed.",
                &["method", "success"],
            ),
            gateway_duration: registry.histogram(
                "gateway_request_duration",
                "The time to complete a gateway request.",
                &["method", "success"],
                DEFAULT_BUCKETS,
            ),
        })
    }

    /// A channel's height (at open, and after each block).
    pub fn height(&self, channel: &str, height: u64) {
        self.height.with(&[channel]).set(height as f64);
    }

    /// A committed block: its processing time and each transaction's verdict.
    pub fn committed(&self, channel: &str, outcome: &CommitOutcome, started: Instant) {
        self.block_processing
            .with(&[channel])
            .observe_since(started);
        let timings = &outcome.timings;
        self.block_validation
            .with(&[channel])
            .observe(timings.validation.as_secs_f64());
        self.blockstorage_commit
            .with(&[channel])
            .observe(timings.block_storage.as_secs_f64());
        self.statedb_commit
            .with(&[channel])
            .observe(timings.state.as_secs_f64());
        self.height(channel, outcome.number + 1);
        for tx in &outcome.transactions {
            let kind = weft_protos::common::HeaderType::try_from(tx.header_type)
                .map_or("UNKNOWN", |t| t.as_str_name());
            self.transactions
                .with(&[channel, kind, &tx.chaincode, tx.code.as_str_name()])
                .inc();
        }
    }

    /// A proposal processed by the endorser.
    pub fn proposal(&self, channel: &str, chaincode: &str, success: bool, started: Instant) {
        if success {
            self.successful_proposals.inc();
        }
        self.proposal_duration
            .with(&[channel, chaincode, success_label(success)])
            .observe_since(started);
    }

    /// A gateway call started: counts it; [`GatewayCall::end`] records how it ended.
    pub fn gateway_call(self: &Arc<Self>, method: &'static str) -> GatewayCall {
        self.gateway_received.with(&[method]).inc();
        GatewayCall {
            metrics: Arc::clone(self),
            method,
            started: Instant::now(),
        }
    }
}

/// A gateway call in progress.
pub struct GatewayCall {
    metrics: Arc<PeerMetrics>,
    method: &'static str,
    started: Instant,
}

impl GatewayCall {
    pub fn end<T, E>(self, result: Result<T, E>) -> Result<T, E> {
        let success = success_label(result.is_ok());
        self.metrics
            .gateway_completed
            .with(&[self.method, success])
            .inc();
        self.metrics
            .gateway_duration
            .with(&[self.method, success])
            .observe_since(self.started);
        result
    }
}

/// The chaincode support's metrics, as Fabric's.
pub struct ChaincodeMetrics {
    launch_duration: Arc<Family<Histogram>>,
    launch_failures: Arc<Family<Counter>>,
    shim_received: Arc<Family<Counter>>,
    shim_completed: Arc<Family<Counter>>,
    shim_duration: Arc<Family<Histogram>>,
}

impl ChaincodeMetrics {
    pub fn register(registry: &Registry) -> Arc<Self> {
        Arc::new(ChaincodeMetrics {
            launch_duration: registry.histogram(
                "chaincode_launch_duration",
                "The time to launch a chaincode.",
                &["chaincode", "success"],
                DEFAULT_BUCKETS,
            ),
            launch_failures: registry.counter(
                "chaincode_launch_failures",
                "The number of chaincode launches that have failed.",
                &["chaincode"],
            ),
            shim_received: registry.counter(
                "chaincode_shim_requests_received",
                "The number of chaincode shim requests received.",
                &["type", "channel", "chaincode"],
            ),
            shim_completed: registry.counter(
                "chaincode_shim_requests_completed",
                "The number of chaincode shim requests completed.",
                &["type", "channel", "chaincode", "success"],
            ),
            shim_duration: registry.histogram(
                "chaincode_shim_request_duration",
                "The time to complete chaincode shim requests.",
                &["type", "channel", "chaincode", "success"],
                DEFAULT_BUCKETS,
            ),
        })
    }

    /// A launch (start or dial, then registration) of `chaincode` ended.
    pub fn launched(&self, chaincode: &str, success: bool, started: Instant) {
        self.launch_duration
            .with(&[chaincode, success_label(success)])
            .observe_since(started);
        if !success {
            self.launch_failures.with(&[chaincode]).inc();
        }
    }

    /// A shim request (`GET_STATE`, …) of `chaincode` on `channel` arrived.
    pub fn shim_received(&self, kind: &str, channel: &str, chaincode: &str) {
        self.shim_received.with(&[kind, channel, chaincode]).inc();
    }

    /// It was answered.
    pub fn shim_completed(
        &self,
        kind: &str,
        channel: &str,
        chaincode: &str,
        success: bool,
        started: Instant,
    ) {
        let labels = [kind, channel, chaincode, success_label(success)];
        self.shim_completed.with(&labels).inc();
        self.shim_duration.with(&labels).observe_since(started);
    }
}

/// At each scrape, per channel: `weft_signature_cache_hits` (signatures
/// found verified before: endorsements this peer made, or seen in an
/// earlier block) and `weft_signature_cache_misses` (signatures verified).
pub fn signature_cache_collector(
    channels: Arc<crate::channel::Channels>,
) -> weft_node::metrics::Collector {
    Box::new(move |out: &mut String| {
        let channels = channels.all();
        let labels: Vec<[(&str, &str); 1]> = channels
            .iter()
            .map(|channel| [("channel", channel.id.as_str())])
            .collect();
        let counts: Vec<(u64, u64)> = channels.iter().map(|c| c.signatures.counts()).collect();
        let samples = |pick: fn(&(u64, u64)) -> u64| {
            labels
                .iter()
                .zip(&counts)
                .map(move |(labels, count)| (&labels[..], pick(count) as f64))
        };
        write_family(
            out,
            "weft_signature_cache_hits",
            "Signatures found verified before (made by this peer or seen in an earlier block).",
            "counter",
            samples(|(hits, _)| *hits),
        );
        write_family(
            out,
            "weft_signature_cache_misses",
            "Signatures verified while validating blocks.",
            "counter",
            samples(|(_, misses)| *misses),
        );
    })
}
