use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use weft_protos::Message;
use weft_protos::msp::SerializedIdentity;

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
        }
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
        msp.validate_certificate(&certs.swap_remove(0), now_unix_seconds)
    }

    /// Number of cached identities.
    pub fn cached_identities(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}
