use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use weft_protos::Message;
use weft_protos::msp::SerializedIdentity;
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

use crate::{Identity, IdentityError, Msp};

/// Settings of an [`MspManager`].
#[derive(Debug, Clone)]
pub struct MspManagerConfig {
    /// Validated identities kept; beyond it, entries are evicted.
    pub cache_entries_max: usize,
}

impl Default for MspManagerConfig {
    fn default() -> Self {
        Self {
            cache_entries_max: 8192,
        }
    }
}

/// The MSPs of one channel, and the cache of identities they validated.
///
/// The cache is keyed by the exact serialized identity bytes. A hit is
/// re-checked against the certificate chain's validity window, so an identity
/// that expires after being cached is refused, with the same error a fresh
/// validation gives.
#[derive(Debug)]
pub struct MspManager {
    msps: BTreeMap<String, Msp>,
    cache: RwLock<HashMap<Vec<u8>, Arc<Identity>>>,
    config: MspManagerConfig,
    /// Revocation lists from outside the channel configuration (a node's
    /// local MSP `crls/`): per issuer name, the serials it revoked.
    local_revocations: RwLock<BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>>,
}

/// What [`MspManager::set_local_revocation_lists`] did with each list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalRevocations {
    /// Lists signed by a CA of one of the channel's MSPs, now enforced.
    pub applied: usize,
    /// Serials they revoke.
    pub serials: usize,
    /// Lists not signed by any of the channel's CAs (another channel's
    /// organisation, say), or malformed: why each was left out.
    pub skipped: Vec<String>,
}

impl MspManager {
    pub fn new(msps: impl IntoIterator<Item = Msp>, config: MspManagerConfig) -> Self {
        Self {
            msps: msps
                .into_iter()
                .map(|msp| (msp.id().to_owned(), msp))
                .collect(),
            cache: RwLock::new(HashMap::new()),
            config,
            local_revocations: RwLock::new(BTreeMap::new()),
        }
    }

    /// Enforces the revocation lists (PEM, `X509 CRL` blocks) a node keeps
    /// in its local MSP's `crls/`, besides those of the channel
    /// configuration: a list counts for the channel when one of its MSPs'
    /// CAs signed it. Replaces the lists set before, and forgets the
    /// identities validated so far, so a revoked one is refused from the
    /// next request on.
    pub fn set_local_revocation_lists(&self, pems: &[Vec<u8>]) -> LocalRevocations {
        let mut outcome = LocalRevocations::default();
        let mut revoked: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for pem in pems {
            let blocks = match weft_crypto::pem::blocks(pem) {
                Ok(blocks) => blocks,
                Err(e) => {
                    outcome.skipped.push(format!("not PEM: {e}"));
                    continue;
                }
            };
            for block in blocks.into_iter().filter(|b| b.label == "X509 CRL") {
                let crl = match CertificateRevocationList::from_der(&block.der) {
                    Ok((_, crl)) => crl,
                    Err(e) => {
                        outcome.skipped.push(format!("malformed CRL: {e}"));
                        continue;
                    }
                };
                if !self
                    .msps
                    .values()
                    .any(|msp| msp.signed_revocation_list(&crl))
                {
                    outcome.skipped.push(format!(
                        "CRL of {} is not signed by a CA of this channel",
                        crl.issuer()
                    ));
                    continue;
                }
                let serials = revoked.entry(crl.issuer().as_raw().to_vec()).or_default();
                for entry in crl.iter_revoked_certificates() {
                    serials.insert(entry.raw_serial().to_vec());
                }
                outcome.applied += 1;
            }
        }
        outcome.serials = revoked.values().map(BTreeSet::len).sum();
        *self
            .local_revocations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = revoked;
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        outcome
    }

    fn check_local_revocations(&self, identity: &Identity) -> Result<(), IdentityError> {
        let revoked = self
            .local_revocations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if revoked.is_empty() {
            return Ok(());
        }
        let Ok((_, cert)) = X509Certificate::from_der(identity.certificate_der()) else {
            return Ok(());
        };
        let serial = cert.raw_serial();
        if revoked
            .get(cert.issuer().as_raw())
            .is_some_and(|serials| serials.contains(serial))
        {
            return Err(IdentityError::Revoked {
                msp_id: identity.msp_id().to_owned(),
                subject: identity.subject().to_owned(),
                serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        Ok(())
    }

    pub fn msp(&self, msp_id: &str) -> Option<&Msp> {
        self.msps.get(msp_id)
    }

    pub fn msp_ids(&self) -> impl Iterator<Item = &str> {
        self.msps.keys().map(String::as_str)
    }

    /// Turns `msp.SerializedIdentity` bytes (a header's creator, an
    /// endorsement's endorser) into a validated identity at `now_unix_seconds`.
    pub fn validate(
        &self,
        serialized_identity: &[u8],
        now_unix_seconds: i64,
    ) -> Result<Arc<Identity>, IdentityError> {
        {
            let cache = self
                .cache
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(identity) = cache.get(serialized_identity)
                && identity.is_valid_at(now_unix_seconds)
            {
                return Ok(Arc::clone(identity));
            }
        }
        let identity = Arc::new(self.validate_uncached(serialized_identity, now_unix_seconds)?);
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= self.config.cache_entries_max {
            // Bounded: drop an arbitrary entry. Whatever is dropped is simply validated again.
            if let Some(key) = cache.keys().next().cloned() {
                cache.remove(&key);
            }
        }
        if self.config.cache_entries_max > 0 {
            cache.insert(serialized_identity.to_vec(), Arc::clone(&identity));
        }
        Ok(identity)
    }

    /// Full validation, bypassing the cache.
    pub fn validate_uncached(
        &self,
        serialized_identity: &[u8],
        now_unix_seconds: i64,
    ) -> Result<Identity, IdentityError> {
        let serialized = SerializedIdentity::decode(serialized_identity)
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let msp = self
            .msps
            .get(&serialized.mspid)
            .ok_or_else(|| IdentityError::UnknownMsp {
                msp_id: serialized.mspid.clone(),
            })?;
        let bad = |reason: String| IdentityError::BadCertificate {
            msp_id: serialized.mspid.clone(),
            reason,
        };
        let mut certs =
            weft_crypto::pem::certificates(&serialized.id_bytes).map_err(|e| bad(e.to_string()))?;
        if certs.len() != 1 {
            return Err(bad(format!(
                "expected one PEM certificate, found {}",
                certs.len()
            )));
        }
        let identity = msp.validate_certificate(&certs.swap_remove(0), now_unix_seconds)?;
        self.check_local_revocations(&identity)?;
        Ok(identity)
    }

    /// Number of cached identities.
    pub fn cached_identities(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}
