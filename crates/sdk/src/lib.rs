//! weft's application SDK: most parameters in a YAML file ([`config`]),
//! one line per call.
//!
//! ```no_run
//! # async fn run() -> Result<(), weft_sdk::SdkError> {
//! let client = weft_sdk::Client::from_config("client.yaml", "Org1")?;
//! let committed = client.invoke("CreateAsset", &["asset1", "blue", "5", "Tom", "100"]).await?;
//! println!("{} in block {}", committed.tx_id, committed.block);
//! let asset = client.query("ReadAsset", &["asset1"]).await?;
//! # Ok(()) }
//! ```
//!
//! Built in: a transaction committed as an MVCC read conflict (or phantom
//! read) is endorsed and submitted again, as a new transaction, with a
//! jittered back-off (`retry.attempts`); a submit whose answer is lost (a
//! timeout, a broken connection) is followed by a check of that
//! transaction id's commit status, and, if it has not committed, by the
//! same signed transaction again — never a new one — so it cannot commit
//! twice. Errors name the phase that failed (endorse, submit, commit).
//!
//! L2, on top of `weft-client`; one gateway peer per organisation.

pub mod client;
pub mod config;
mod error;

pub use client::{ChaincodeEvent, Checkpoint, Client, Committed, Contract, EventStream, Pending};
pub use error::{Phase, SdkError};
