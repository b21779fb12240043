//! weft's peer: the endorser, chaincode support with its launchers, the
//! Fabric Gateway, the committer and block event delivery, all on one TLS
//! listener, so applications and chaincode written for Fabric run unchanged.
//!
//! - [`chaincode`]: the chaincode protocol (classic Register,
//!   chaincode-as-a-service Connect, in-process) and the launcher seam;
//! - [`simulator`]: transaction simulation into read/write sets;
//! - [`endorser`]: proposal checks and Fabric's ProposalResponse;
//! - [`gateway`]: the `gateway.Gateway` service;
//! - [`channel`]: a joined channel and its committer (pulling from orderers);
//! - [`deliver`]: the `protos.Deliver` service;
//! - [`dissemination`]: private data between peers (push at endorsement,
//!   pull at commit);
//! - [`private`]: private data collections and the transient store;
//! - [`install`]: packages installed with `_lifecycle.InstallChaincode`;
//! - [`package`]: Fabric's chaincode install packages (`.tar.gz`);
//! - [`snapshot`]: the `protos.Snapshot` service (ledger snapshots);
//! - [`metrics`]: ledger, endorser and gateway metrics, named as Fabric's;
//! - [`node`]: the node and its listener.

pub mod chaincode;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod discovery;
pub mod dissemination;
pub mod endorser;
pub mod gateway;
pub mod install;
pub mod lifecycle;
pub mod metrics;
pub mod node;
pub mod package;
pub mod private;
pub mod simulator;
pub mod snapshot;

pub use config::PeerConfig;
pub use node::{Peer, serve};

/// weft's own peer-to-peer messages (private data dissemination).
pub mod proto {
    tonic::include_proto!("weft.peer");
}

/// The largest gRPC message a peer sends or accepts.
pub use weft_node::MAX_GRPC_MESSAGE;
