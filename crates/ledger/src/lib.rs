//! weft's peer ledger, one per channel: a hash-chained block store, a
//! versioned world state with Mango rich queries over secondary indexes, a
//! history index, and the deterministic validate-and-commit of blocks.
//!
//! Invariant: the ledger knows nothing about gRPC, chaincode or the wall
//! clock. Time comes from transaction headers; identities from the MSPs
//! the caller passes in.

pub mod block_store;
pub mod error;
pub mod history;
pub mod ledger;
pub mod private;
pub mod query;
pub mod snapshot;
pub mod state;
pub mod validation;

pub use block_store::{BlockStore, BlockStoreConfig, Truncation};
pub use error::LedgerError;
pub use history::HistoryEntry;
pub use ledger::{
    CommitOutcome, Ledger, LedgerConfig, OpenReport, Page, QueryPage, RangePage, TxLocation,
    TxOutcome,
};
pub use private::{
    MissingPrivateData, PrivateData, hashed_namespace, private_namespace, wanted_in_block,
};
pub use query::{IndexDefinition, Query, QueryError};
pub use snapshot::SnapshotMetadata;
pub use state::{MAX_UNICODE_RUNE, VALIDATION_PARAMETER, Version, VersionedValue, composite_key};
pub use validation::{CollectionPolicy, EndorsementPolicies, Invalid, SignatureCache, Validator};
