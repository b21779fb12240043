//! Fixtures for weft's tests: the default network's crypto material (made
//! by weft's own cryptogen in a temporary directory), signed endorser
//! transactions built from read-write sets, and hash-chained blocks.
//!
//! Test-only code: it panics with a message instead of returning errors.
#![allow(clippy::expect_used, clippy::panic)]

pub mod chain;
pub mod network;

pub use chain::{Chain, Submitter};
pub use network::{ORDERER_ORG, ORGS, TestNetwork};
