//! Crypto material on disk, in Fabric's directory layout.
//!
//! [`cryptogen`] writes what Fabric's `cryptogen` writes for the test network:
//! per organisation a signing CA and a TLS CA, and peer, orderer, admin and user
//! identities with NodeOU roles, under `organizations/peerOrganizations/…` and
//! `organizations/ordererOrganizations/…`, so applications that hard-code those
//! paths run unchanged. [`msp_dir`] reads such directories back: an MSP
//! definition (`msp.FabricMSPConfig`) from `msp/`, and a signing identity
//! (`signcerts/` + `keystore/`).
//!
//! Invariant: this is the only crate that knows the on-disk layout; the `msp`
//! and `crypto` crates see bytes only.

pub mod channel;
pub mod cryptogen;
mod error;
pub mod files;
pub mod issuer;
pub mod layout;
pub mod msp_dir;

pub use error::MaterialError;
pub use msp_dir::SigningIdentity;
