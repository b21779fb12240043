//! What every weft node (peer and orderer) shares at its edges:
//!
//! - [`tls`]: TLS files, server and client configuration, shared connections;
//! - [`admin`]: the node administration service's rule (an admin of the
//!   node's organisation signs, within the time window, once, over mutual
//!   TLS) for the server, and [`admin::AdminConnection`] for callers;
//! - [`clock`]: the clock seam and request time windows (Fabric's 15 min);
//! - [`deliver`]: the Deliver seek loop both node kinds serve;
//! - [`duration`]: Go-style durations in node configuration;
//! - [`limits`]: process limits a server needs (open files raised to the hard limit);
//! - [`logging`]: node logs with Fabric's log spec syntax, text or JSON,
//!   and [`refusal!`], the rate-limited log line for refused network input;
//! - [`metrics`]: metrics in Prometheus' text format, named as Fabric's;
//! - [`operations`]: the operations service (`/metrics`, `/healthz`,
//!   `/logspec`, `/version`) on its own port;
//! - [`query`]: URL query strings of the HTTP services;
//! - [`revocation`]: revocation lists of the local MSP, enforced on every channel;
//! - [`seek`]: signed Deliver seek requests;
//! - [`serve`]: serving until shutdown with a grace period for long streams;
//! - [`streams`]: long-lived gRPC streams answered in request order, shared
//!   by many callers (Broadcast, forwarding to the Raft leader).
//!
//! L2: it knows tonic and the file system (TLS and MSP files), and nothing
//! of ledgers, Raft or chaincode.

pub mod admin;
pub mod clock;
pub mod deliver;
pub mod duration;
pub mod grpc_metrics;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod operations;
pub mod query;
pub mod revocation;
pub mod seek;
pub mod serve;
pub mod streams;
pub mod tls;

/// weft's node administration service (`weft.admin.Admin`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("weft.admin");
}

pub use admin::{AdminAuthority, AdminConnection, AdminSigner, Authorized};
pub use clock::{Clock, REQUEST_TIME_WINDOW, SystemClock};
pub use tls::{EndpointOverrides, Tls, TlsFiles};

/// The largest gRPC message a node accepts or sends: Fabric's default
/// (`MaxRecvMsgSize`/`MaxSendMsgSize`, 100 MiB). Envelopes are further
/// bounded by their channel's AbsoluteMaxBytes (10 MB by default), so a
/// block, or a Raft append of a few blocks, fits.
pub const MAX_GRPC_MESSAGE: usize = 100 << 20;
