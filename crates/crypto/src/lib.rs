//! Hashes and signatures exactly as Fabric uses them.
//!
//! - SHA-256 ([`sha256`], [`Sha256`]).
//! - ECDSA P-256 over SHA-256 with DER-encoded signatures. Fabric's MSP rejects
//!   high-S signatures and aws-lc-rs neither normalises nor rejects them, so this
//!   crate does both: [`SigningKey::sign`] always produces low-S and
//!   [`PublicKey::verify`] refuses high-S.
//! - Ed25519, which Fabric 3 identities may use.
//! - PEM decoding of private keys and certificates ([`pem`]).
//! - The [`Signer`] seam: whatever holds a private key (a software key today, an
//!   HSM later) signs through it.
//!
//! Invariant: no file system, no clock, no async. Loading keys from an MSP
//! directory lives in `weft-material`; this crate only parses bytes.

mod ecdsa_der;
mod error;
mod hash;
mod key;
pub mod pem;

pub use error::{KeyError, SignError, SignatureError};
pub use hash::{Sha256, sha256};
pub use key::{HashedMessage, PublicKey, Signer, SigningKey, VerifyingKey, high_s_twin};

/// `N` bytes from the system's secure random source (nonces).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system source only fails when the OS has no entropy source at all.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    bytes
}
