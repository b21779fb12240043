//! Fabric's wire messages and gRPC services, generated from weft's own `.proto`
//! files under `proto/`.
//!
//! Package and field numbering follow Fabric exactly (checked against Fabric's
//! published descriptors by `compat/`), so gRPC paths such as
//! `/gateway.Gateway/Evaluate` and bytes on the wire are what Fabric clients expect.
//!
//! Invariant: this crate holds data definitions only. The gRPC stubs exist only
//! with the `grpc` feature, so the wire, domain and state-machine layers never
//! pull in tonic or tokio.

#![allow(clippy::all, missing_docs)]

// Module names mirror the protobuf package names: prost resolves cross-package
// references as sibling modules (`super::common::Envelope`).

/// Envelopes, headers, blocks, channel configuration, policies, MSP principals.
pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}

/// Serialized identities and MSP configuration.
pub mod msp {
    include!(concat!(env!("OUT_DIR"), "/msp.rs"));
}

/// Peer messages (Fabric's package `protos`): proposals, the chaincode
/// protocol, transactions, events.
pub mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

/// The peer messages under the name Fabric's Go code uses for them.
pub use self::protos as peer;

/// Chaincode lifecycle arguments and results.
pub mod lifecycle {
    include!(concat!(env!("OUT_DIR"), "/lifecycle.rs"));
}

/// Transaction read/write sets.
pub mod rwset {
    include!(concat!(env!("OUT_DIR"), "/rwset.rs"));
}

/// Key-value reads and writes inside a namespace's read/write set.
pub mod kvrwset {
    include!(concat!(env!("OUT_DIR"), "/kvrwset.rs"));
}

/// Query results handed to chaincode.
pub mod queryresult {
    include!(concat!(env!("OUT_DIR"), "/queryresult.rs"));
}

/// The Fabric Gateway service.
pub mod gateway {
    include!(concat!(env!("OUT_DIR"), "/gateway.rs"));
}

/// The ordering service.
pub mod orderer {
    include!(concat!(env!("OUT_DIR"), "/orderer.rs"));
}

/// Raft consenter configuration and block metadata.
pub mod etcdraft {
    include!(concat!(env!("OUT_DIR"), "/etcdraft.rs"));
}

/// Fabric's discovery service.
pub mod discovery {
    include!(concat!(env!("OUT_DIR"), "/discovery.rs"));
}

/// The gossip envelope discovery answers carry.
pub mod gossip {
    include!(concat!(env!("OUT_DIR"), "/gossip.rs"));
}

/// `google.rpc.Status`, the rich error carried in `grpc-status-details-bin`.
pub mod google {
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

pub use prost;
pub use prost::Message;
pub use prost_types::{Any, Timestamp};

/// The encoded `google.protobuf.FileDescriptorSet` of every weft `.proto` file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/weft_descriptor_set.bin"));
