use thiserror::Error;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The bytes are not a DER `SEQUENCE { INTEGER r, INTEGER s }` with valid ranges.
    #[error("signature is not a valid DER-encoded ECDSA signature: {0}")]
    Malformed(&'static str),
    /// S is above half the curve order: a valid but malleable form Fabric rejects.
    #[error("signature has a high S value (Fabric accepts only low-S ECDSA signatures)")]
    HighS,
    /// The signature is well formed but does not match the message and key.
    #[error("signature does not verify: the message was altered or signed by another key")]
    Mismatch,
}

/// Why a key could not be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// No PEM block with an expected label was found.
    #[error("no {expected} PEM block found")]
    NoPemBlock { expected: &'static str },
    /// The PEM text itself could not be decoded.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The DER structure is not a supported private key.
    #[error(
        "unsupported or malformed private key (expected a PKCS#8 or SEC1 ECDSA P-256, or PKCS#8 Ed25519 key)"
    )]
    UnsupportedPrivateKey,
    /// The public key uses an algorithm or curve weft does not accept.
    #[error("unsupported public key: {0}")]
    UnsupportedPublicKey(String),
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    #[error("the signing key failed to produce a signature")]
    Failed,
}
