//! A whole weft network on one host, from one spec: what `weft up`,
//! `weft down`, `weft status` and `weft logs` do.
//!
//! - [`cas`]: the organisations' certificate authorities (`certificateAuthorities: true`);
//! - [`dir`]: the network directory's layout;
//! - [`nodes`]: the nodes a spec describes and their config files;
//! - [`prepare`]: crypto material, genesis blocks, configs, connection profiles;
//! - [`profile`]: Fabric common connection profiles;
//! - [`rest`]: the REST gateway's configuration;
//! - [`supervisor`]: node processes kept running, pid files, stopping;
//! - [`admin`]: channel joins, Raft leaders, heights;
//! - [`deploy`]: chaincode definitions approved by every organisation and
//!   committed on their channels (Fabric's lifecycle);
//! - [`up`]: which spec a run uses, and the summary it prints;
//! - [`compose`]: the same network as a docker-compose project.
//!
//! Every step is idempotent, so `weft up` on an existing directory completes
//! what is missing and restarts what is down.

pub mod admin;
pub mod cas;
pub mod compose;
pub mod deploy;
pub mod dir;
pub mod helm;
pub mod k8s;
pub mod monitor;
pub mod nodes;
pub mod prepare;
pub mod profile;
pub mod rest;
pub mod supervisor;
pub mod up;

use std::path::{Path, PathBuf};

pub use dir::NetworkDir;

/// Where `weft up` creates the network when no `--dir` is given.
pub const DEFAULT_DIR: &str = "weft-network";

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{}: no weft network here (no network.yaml); run `weft up` first", .0.display())]
    NoNetwork(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] weft_spec::SpecError),
    /// An operation refused as asked (a channel that exists, say).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Material(String),
    #[error("{0}")]
    Supervisor(String),
    #[error("{node}: {message}")]
    Node { node: String, message: String },
    #[error("chaincode {chaincode} on channel {channel}: {source}")]
    Lifecycle {
        chaincode: String,
        channel: String,
        source: weft_client::ClientError,
    },
}

impl NetworkError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        NetworkError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
