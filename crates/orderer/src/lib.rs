//! weft's ordering service: what Fabric's etcdraft orderer does, on openraft.
//!
//! One orderer process serves many channels; each channel is its own Raft
//! group (members: the consenters of its config) with its own block store.
//! The leader cuts blocks ([`blockcutter`]), signs them, and replicates each
//! block as one Raft entry; every consenter appends committed blocks to its
//! chain. Broadcast answers SUCCESS once the envelope's block is committed;
//! followers forward envelopes to the leader. Raft snapshots carry only the
//! chain's height and last hash, so the log stays bounded and a lagging node
//! pulls the blocks it lacks from the others over Deliver.
//!
//! Layers: [`blockcutter`] is pure (time is an argument); [`raft`] holds
//! openraft's storage and state machine; [`network`] and [`service`] are the
//! gRPC edges; [`node`] ties a process together.

pub mod blockcutter;
pub mod channel;
pub mod client;
pub mod codec;
pub mod metrics;
pub mod network;
pub mod node;
pub mod raft;
pub mod service;

/// weft's own orderer services (cluster, admin).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("weft.orderer");
}

pub use node::{NodeError, Orderer, OrdererConfig};
pub use service::serve;
