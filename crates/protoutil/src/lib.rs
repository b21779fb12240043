//! Fabric blocks and transaction envelopes, as the wire defines them.
//!
//! The hashes here are Fabric's: a block's data hash is SHA-256 over the
//! concatenated envelopes, its header hash is SHA-256 over the ASN.1 DER of
//! (number, previous hash, data hash), and a transaction id is
//! `hex(SHA-256(nonce ‖ creator))`. Tools that verify a Fabric chain agree with them.

pub mod block;
pub mod duration;
pub mod names;
pub mod transaction;

pub use block::{
    MetadataSlot, block_data_hash, block_envelopes, block_header_bytes, block_header_hash,
    last_config_index, new_block, transactions_filter,
};
pub use duration::{format_duration, parse_duration};
pub use names::{NameError, check_chaincode_name, check_channel_id, check_package_id};
pub use transaction::{
    CollectionHashedRwSet, EndorsedAction, EndorserTransaction, EnvelopeError, NamespaceRwSet,
    TransactionBuilder, compute_tx_id, hex, parse_envelope, proposal_hash, unhex,
};
