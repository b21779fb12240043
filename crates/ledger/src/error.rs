//! What can go wrong opening, reading or committing to a ledger.

use std::path::PathBuf;

/// A ledger operation failed. Validation outcomes of transactions are not
/// errors: they are validation codes in the committed block.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    Database(#[from] fjall::Error),
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("block {number} does not extend the chain: {reason}")]
    Chain { number: u64, reason: String },
    #[error("block {number} is malformed: {reason}")]
    MalformedBlock { number: u64, reason: String },
    #[error(
        "the state database is at block {savepoint} but the block store ends before it \
         (height {height}); the block store lost blocks the state was built from"
    )]
    StateAhead { savepoint: u64, height: u64 },
    #[error("block {0} is not in the ledger")]
    NoSuchBlock(u64),
    #[error("namespace {namespace:?} is invalid: {reason}")]
    InvalidNamespace { namespace: String, reason: String },
    #[error("index {name:?} in namespace {namespace}: {reason}")]
    InvalidIndex {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("query: {0}")]
    Query(#[from] crate::query::QueryError),
    #[error("snapshot {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
}

impl LedgerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LedgerError {
        let path = path.into();
        move |source| LedgerError::Io { path, source }
    }
}
