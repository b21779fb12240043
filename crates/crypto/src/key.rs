use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, ParsedPublicKey,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::ecdsa_der::RawSignature;
use crate::{KeyError, SignError, SignatureError, pem};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// Produces signatures in Fabric's format. The seam every holder of a private
/// key (software key, HSM, remote signer) implements.
pub trait Signer: Send + Sync {
    /// Signs `message` (the signer hashes it): ECDSA P-256 signatures are DER
    /// and low-S, Ed25519 signatures are the raw 64 bytes.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// The public key matching the signatures.
    fn public_key(&self) -> PublicKey;
}

/// A public key that verifies Fabric signatures.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point (65 bytes).
    EcdsaP256(Vec<u8>),
    /// Raw 32-byte key.
    Ed25519(Vec<u8>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EcdsaP256(_) => f.write_str("PublicKey::EcdsaP256"),
            Self::Ed25519(_) => f.write_str("PublicKey::Ed25519"),
        }
    }
}

impl PublicKey {
    /// Reads a DER `SubjectPublicKeyInfo` (as found in a certificate).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|e| {
            KeyError::UnsupportedPublicKey(format!("malformed SubjectPublicKeyInfo: {e}"))
        })?;
        Self::from_spki(&spki)
    }

    /// The public key of a DER X.509 certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| KeyError::UnsupportedPublicKey(format!("malformed certificate: {e}")))?;
        Self::from_spki(cert.public_key())
    }

    /// Reads a parsed `SubjectPublicKeyInfo`.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let key = spki.subject_public_key.data.to_vec();
        match algorithm.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string())
                    .unwrap_or_default();
                if curve != OID_P256 {
                    return Err(KeyError::UnsupportedPublicKey(format!(
                        "ECDSA curve {curve} (only P-256 is supported)"
                    )));
                }
                if key.len() != 65 || key[0] != 0x04 {
                    return Err(KeyError::UnsupportedPublicKey(
                        "P-256 key is not an uncompressed point".into(),
                    ));
                }
                Ok(Self::EcdsaP256(key))
            }
            OID_ED25519 if key.len() == 32 => Ok(Self::Ed25519(key)),
            OID_ED25519 => Err(KeyError::UnsupportedPublicKey(
                "Ed25519 key is not 32 bytes".into(),
            )),
            other => Err(KeyError::UnsupportedPublicKey(format!("algorithm {other}"))),
        }
    }

    /// Verifies a signature over `message` the way Fabric's MSP does: ECDSA
    /// signatures must be strict DER and low-S.
    /// A key used many times is better parsed once ([`VerifyingKey`]).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        // A point that does not parse verifies nothing.
        VerifyingKey::new(self.clone())
            .map_err(|_| SignatureError::Mismatch)?
            .verify(message, signature)
    }
}

/// A message and its SHA-256, hashed once: the digest both keys a cache of
/// verified signatures and is what an ECDSA signature is checked against.
pub struct HashedMessage<'a> {
    message: &'a [u8],
    digest: digest::Digest,
}

impl<'a> HashedMessage<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Self {
            message,
            digest: digest::digest(&digest::SHA256, message),
        }
    }

    /// SHA-256 of the message.
    pub fn digest(&self) -> &[u8] {
        self.digest.as_ref()
    }
}

/// A public key parsed once, for the many signatures of one identity (an
/// MSP keeps one per validated identity): parsing the point on each
/// verification costs about 2 µs of its ~53 µs.
#[derive(Clone)]
pub struct VerifyingKey {
    key: PublicKey,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifyingKey").field(&self.key).finish()
    }
}

impl VerifyingKey {
    pub fn new(key: PublicKey) -> Result<Self, KeyError> {
        let parsed = match &key {
            PublicKey::EcdsaP256(point) => ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point),
            PublicKey::Ed25519(raw) => ParsedPublicKey::new(&signature::ED25519, raw),
        }
        .map_err(|e| KeyError::UnsupportedPublicKey(format!("unusable public key: {e}")))?;
        Ok(Self { key, parsed })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Verifies a signature over `message` the way Fabric's MSP does: ECDSA
    /// signatures must be strict DER and low-S.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.checked(signature, |parsed| parsed.verify_sig(message, signature))
    }

    /// As [`VerifyingKey::verify`], over a message already hashed: ECDSA
    /// checks the digest, Ed25519 (which hashes with SHA-512 itself) the
    /// message.
    pub fn verify_hashed(
        &self,
        message: &HashedMessage<'_>,
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.checked(signature, |parsed| match self.key {
            PublicKey::EcdsaP256(_) => parsed.verify_digest_sig(&message.digest, signature),
            PublicKey::Ed25519(_) => parsed.verify_sig(message.message, signature),
        })
    }

    /// Fabric's rule on ECDSA signatures (strict DER, low-S; aws-lc-rs
    /// enforces neither), then `verify`.
    fn checked(
        &self,
        signature: &[u8],
        verify: impl FnOnce(&ParsedPublicKey) -> Result<(), aws_lc_rs::error::Unspecified>,
    ) -> Result<(), SignatureError> {
        if matches!(self.key, PublicKey::EcdsaP256(_))
            && !RawSignature::from_der(signature)?.is_low_s()
        {
            return Err(SignatureError::HighS);
        }
        verify(&self.parsed).map_err(|_| SignatureError::Mismatch)
    }
}

enum KeyPairKind {
    EcdsaP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A software private key.
pub struct SigningKey {
    pair: KeyPairKind,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKey")
            .field(&self.public_key())
            .finish()
    }
}

impl SigningKey {
    /// A fresh random P-256 key.
    pub fn generate_p256() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeyError::UnsupportedPrivateKey)?;
        Ok(Self {
            pair: KeyPairKind::EcdsaP256(pair),
            rng: SystemRandom::new(),
        })
    }

    /// Reads a DER private key: PKCS#8 or SEC1 (RFC 5915) P-256, or PKCS#8 Ed25519.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = if let Ok(pair) =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
        {
            KeyPairKind::EcdsaP256(pair)
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            KeyPairKind::Ed25519(pair)
        } else {
            return Err(KeyError::UnsupportedPrivateKey);
        };
        Ok(Self {
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// Reads the first `PRIVATE KEY` or `EC PRIVATE KEY` block of a PEM file
    /// (what Fabric writes to `keystore/*_sk`).
    pub fn from_pem(text: &[u8]) -> Result<Self, KeyError> {
        let block = pem::blocks(text)?
            .into_iter()
            .find(|b| b.label == "PRIVATE KEY" || b.label == "EC PRIVATE KEY")
            .ok_or(KeyError::NoPemBlock {
                expected: "PRIVATE KEY",
            })?;
        Self::from_der(&block.der)
    }

    /// The private key as PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            KeyPairKind::EcdsaP256(pair) => pair
                .to_pkcs8v1()
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| KeyError::UnsupportedPrivateKey),
            KeyPairKind::Ed25519(pair) => pair
                .to_pkcs8v1()
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| KeyError::UnsupportedPrivateKey),
        }
    }

    /// The private key as a PKCS#8 PEM file, as Fabric's cryptogen writes it.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(pem::encode("PRIVATE KEY", &self.to_pkcs8_der()?))
    }
}

impl Signer for SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            KeyPairKind::EcdsaP256(pair) => {
                let der = pair
                    .sign(&self.rng, message)
                    .map_err(|_| SignError::Failed)?;
                let mut raw =
                    RawSignature::from_der(der.as_ref()).map_err(|_| SignError::Failed)?;
                raw.normalize_s();
                Ok(raw.to_der())
            }
            KeyPairKind::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    fn public_key(&self) -> PublicKey {
        match &self.pair {
            KeyPairKind::EcdsaP256(pair) => {
                PublicKey::EcdsaP256(pair.public_key().as_ref().to_vec())
            }
            KeyPairKind::Ed25519(pair) => PublicKey::Ed25519(pair.public_key().as_ref().to_vec()),
        }
    }
}

/// Turns a low-S ECDSA signature into its high-S twin, which verifies
/// mathematically but which Fabric (and weft) must reject. For tests of that rule.
pub fn high_s_twin(signature: &[u8]) -> Result<Vec<u8>, SignatureError> {
    crate::ecdsa_der::flip_s(signature)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::UnparsedPublicKey;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate_p256().expect("key")
    }

    fn ed25519_key() -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("ed25519 key");
        SigningKey::from_der(pkcs8.as_ref()).expect("ed25519 key")
    }

    /// `public`'s verdict on `signature`, the same from the key as from its
    /// parsed form, over the message or its digest.
    fn verdict(public: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let once = public.verify(message, signature);
        let parsed = VerifyingKey::new(public.clone()).expect("parses");
        assert_eq!(parsed.verify(message, signature), once);
        assert_eq!(
            parsed.verify_hashed(&HashedMessage::new(message), signature),
            once
        );
        once
    }

    #[test]
    fn signatures_are_low_s_and_verify() {
        let key = key();
        for i in 0..64u32 {
            let msg = i.to_be_bytes();
            let sig = key.sign(&msg).expect("sign");
            assert!(RawSignature::from_der(&sig).expect("der").is_low_s());
            verdict(&key.public_key(), &msg, &sig).expect("verifies");
        }
    }

    #[test]
    fn ed25519_signatures_verify_and_tampering_is_rejected() {
        let key = ed25519_key();
        let sig = key.sign(b"transfer 10").expect("sign");
        assert_eq!(sig.len(), 64);
        verdict(&key.public_key(), b"transfer 10", &sig).expect("verifies");
        assert_eq!(
            verdict(&key.public_key(), b"transfer 99", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verdict(&ed25519_key().public_key(), b"transfer 10", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn high_s_twin_is_rejected_with_its_own_error() {
        let key = key();
        let sig = key.sign(b"proposal").expect("sign");
        let twin = high_s_twin(&sig).expect("twin");
        // aws-lc-rs alone accepts the twin: the rule is weft's.
        assert!(
            UnparsedPublicKey::new(
                &ECDSA_P256_SHA256_ASN1,
                match key.public_key() {
                    PublicKey::EcdsaP256(p) => p,
                    PublicKey::Ed25519(_) => unreachable!("p256 key"),
                }
            )
            .verify(b"proposal", &twin)
            .is_ok()
        );
        assert_eq!(
            verdict(&key.public_key(), b"proposal", &twin),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn tampered_message_and_other_key_are_rejected() {
        let key = key();
        let sig = key.sign(b"transfer 10").expect("sign");
        assert_eq!(
            verdict(&key.public_key(), b"transfer 99", &sig),
            Err(SignatureError::Mismatch)
        );
        let other = SigningKey::generate_p256().expect("key");
        assert_eq!(
            verdict(&other.public_key(), b"transfer 10", &sig),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verdict(&key.public_key(), b"transfer 10", b"garbage"),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn pkcs8_pem_round_trip() {
        let key = key();
        let pem = key.to_pkcs8_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = SigningKey::from_pem(pem.as_bytes()).expect("parse");
        assert_eq!(back.public_key(), key.public_key());
        let sig = back.sign(b"m").expect("sign");
        key.public_key().verify(b"m", &sig).expect("same key");
    }

    #[test]
    fn unsupported_keys_are_named() {
        assert_eq!(
            SigningKey::from_pem(b"nothing here").unwrap_err(),
            KeyError::NoPemBlock {
                expected: "PRIVATE KEY"
            }
        );
        let bogus = pem::encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00");
        assert_eq!(
            SigningKey::from_pem(bogus.as_bytes()).unwrap_err(),
            KeyError::UnsupportedPrivateKey
        );
    }
}
