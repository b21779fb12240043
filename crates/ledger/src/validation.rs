//! The stateless half of block validation, run in parallel across cores:
//! envelope structure, channel, creator signature and identity, endorsement
//! signatures and identities. The stateful half (duplicate tx ids,
//! endorsement policies, MVCC) runs in block order in [`crate::Ledger`].
//!
//! Deterministic: identities are validated at the transaction's own
//! timestamp, never at the wall clock, so every peer reaches the same codes.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use weft_crypto::{HashedMessage, PublicKey, Sha256, SignatureError};
use weft_msp::{Identity, MspManager};
use weft_policy::SignaturePolicy;
use weft_protos::peer::TxValidationCode;
use weft_protoutil::{EndorserTransaction, parse_envelope};

/// Each chaincode's endorsement policy, by namespace, the namespaces whose
/// keys are owned by organisations, and each chaincode's private data
/// collections.
#[derive(Debug, Clone, Default)]
pub struct EndorsementPolicies {
    policies: BTreeMap<String, SignaturePolicy>,
    org_owned: BTreeMap<String, String>,
    collections: BTreeMap<String, BTreeMap<String, Option<SignaturePolicy>>>,
}

/// The policy a write to a private data collection needs.
#[derive(Debug, PartialEq)]
pub enum CollectionPolicy<'a> {
    /// The chaincode's own endorsement policy.
    Chaincode,
    /// The collection's endorsement policy, which replaces the chaincode's.
    Collection(&'a SignaturePolicy),
    /// The chaincode defines no such collection.
    Undefined,
}

impl EndorsementPolicies {
    pub fn new() -> Self {
        EndorsementPolicies::default()
    }

    pub fn set(&mut self, namespace: impl Into<String>, policy: SignaturePolicy) {
        self.policies.insert(namespace.into(), policy);
    }

    pub fn get(&self, namespace: &str) -> Option<&SignaturePolicy> {
        self.policies.get(namespace)
    }

    /// Keys `<prefix><MSP id>/…` of `namespace` belong to that organisation:
    /// writing one needs an endorsement by one of its peers, instead of the
    /// namespace's policy (how an org's chaincode approvals are guarded).
    pub fn set_org_owned(&mut self, namespace: impl Into<String>, prefix: impl Into<String>) {
        self.org_owned.insert(namespace.into(), prefix.into());
    }

    /// Declares the private data collections of chaincode `namespace`, each
    /// with its own endorsement policy or none (the chaincode's applies).
    /// Writes to any other collection of the namespace are refused; a
    /// namespace never declared accepts every collection under the
    /// chaincode's policy.
    pub fn set_collections(
        &mut self,
        namespace: impl Into<String>,
        collections: BTreeMap<String, Option<SignaturePolicy>>,
    ) {
        self.collections.insert(namespace.into(), collections);
    }

    /// The policy writes to `collection` of `namespace` need.
    pub fn collection_policy(&self, namespace: &str, collection: &str) -> CollectionPolicy<'_> {
        match self.collections.get(namespace) {
            None => CollectionPolicy::Chaincode,
            Some(declared) => match declared.get(collection) {
                None => CollectionPolicy::Undefined,
                Some(None) => CollectionPolicy::Chaincode,
                Some(Some(policy)) => CollectionPolicy::Collection(policy),
            },
        }
    }

    /// The policy guarding `key` in `namespace` when an organisation owns it:
    /// `Ok(None)` when the namespace's own policy applies.
    pub fn owner_policy(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<SignaturePolicy>, String> {
        let Some(prefix) = self.org_owned.get(namespace) else {
            return Ok(None);
        };
        let Some(rest) = key.strip_prefix(prefix.as_str()) else {
            return Ok(None);
        };
        let msp_id = rest.split('/').next().unwrap_or_default();
        if msp_id.is_empty() || msp_id.contains('\'') {
            return Err(format!(
                "key {key:?} names no organisation after {prefix:?}"
            ));
        }
        SignaturePolicy::parse(&format!("OR('{msp_id}.peer')"))
            .map(Some)
            .map_err(|e| format!("key {key:?}: {e}"))
    }
}

/// Signatures already verified (in an earlier block), or made by this peer
/// itself when it endorsed, so they are not verified twice. Bounded; an
/// entry only says "this public key's signature over these bytes is good":
/// whether the identity holding the key is valid is checked every time.
#[derive(Debug)]
pub struct SignatureCache {
    entries: Mutex<HashSet<[u8; 32]>>,
    entries_max: usize,
    /// Signatures found verified before, and verified now.
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl SignatureCache {
    pub fn new(entries_max: usize) -> Self {
        SignatureCache {
            entries: Mutex::new(HashSet::with_capacity(entries_max.min(1 << 16))),
            entries_max,
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// (hits, misses) since the cache was made: how many signatures were
    /// found verified before, and how many were verified.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// The entry for `public`'s `signature` over the message hashed to `digest`.
    fn key(public: &PublicKey, digest: &[u8], signature: &[u8]) -> [u8; 32] {
        let (algorithm, key): (u8, &[u8]) = match public {
            PublicKey::EcdsaP256(point) => (0, point),
            PublicKey::Ed25519(key) => (1, key),
        };
        let mut hasher = Sha256::new();
        hasher
            .update(&[algorithm])
            .update(&(key.len() as u64).to_be_bytes())
            .update(key)
            .update(&(signature.len() as u64).to_be_bytes())
            .update(signature)
            .update(digest);
        hasher.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, key: [u8; 32]) {
        let mut entries = self.lock();
        if entries.len() >= self.entries_max {
            // Whatever is dropped is simply verified again.
            entries.clear();
        }
        entries.insert(key);
    }

    /// Records a signature this peer has just made with its own key over
    /// `message`, so validating the block that carries it (an endorsement
    /// it produced) does not verify it again.
    pub fn remember(&self, public: &PublicKey, message: &[u8], signature: &[u8]) {
        if self.entries_max > 0 {
            let digest = weft_crypto::sha256(message);
            self.insert(Self::key(public, &digest, signature));
        }
    }

    /// Verifies `signature` by `identity` over `message`, or finds it verified before.
    pub fn verify(
        &self,
        identity: &Identity,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.entries_max == 0 {
            self.misses.fetch_add(1, Relaxed);
            return identity.verify(message, signature);
        }
        // The message is hashed once, for the entry and the check.
        let message = HashedMessage::new(message);
        let key = Self::key(identity.public_key(), message.digest(), signature);
        if self.lock().contains(&key) {
            self.hits.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.misses.fetch_add(1, Relaxed);
        identity.verify_hashed(&message, signature)?;
        self.insert(key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What block validation needs from the peer: its MSPs, the chaincodes'
/// policies, and caches.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'a> {
    pub msp: &'a MspManager,
    pub policies: &'a EndorsementPolicies,
    pub signatures: &'a SignatureCache,
    /// Worker threads for signature checks (1 = on the caller's thread).
    pub threads: usize,
}

/// A transaction that passed the stateless checks.
#[derive(Debug)]
pub(crate) struct Checked {
    pub transaction: EndorserTransaction,
    /// Endorsers whose identity and signature are valid (invalid ones simply do not count).
    pub endorsers: Vec<Arc<Identity>>,
}

/// A validation code with the reason behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: TxValidationCode,
    pub reason: String,
}

impl Invalid {
    pub(crate) fn new(code: TxValidationCode, reason: impl Into<String>) -> Self {
        Invalid {
            code,
            reason: reason.into(),
        }
    }
}

/// Runs [`check_transaction`] over every envelope, in parallel.
pub(crate) fn check_block(
    envelopes: &[Vec<u8>],
    channel_id: &str,
    validator: &Validator<'_>,
) -> Vec<Result<Checked, Invalid>> {
    let threads = validator.threads.clamp(1, 64).min(envelopes.len().max(1));
    if threads == 1 {
        return envelopes
            .iter()
            .map(|envelope| check_transaction(envelope, channel_id, validator))
            .collect();
    }
    let chunk = envelopes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = envelopes
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|envelope| check_transaction(envelope, channel_id, validator))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The stateless checks of one transaction envelope.
pub(crate) fn check_transaction(
    envelope: &[u8],
    channel_id: &str,
    validator: &Validator<'_>,
) -> Result<Checked, Invalid> {
    let transaction =
        parse_envelope(envelope).map_err(|error| Invalid::new(error.code(), error.to_string()))?;
    let header = &transaction.channel_header;
    if header.channel_id != channel_id {
        return Err(Invalid::new(
            TxValidationCode::TargetChainNotFound,
            format!(
                "the transaction is for channel {:?}, not {channel_id:?}",
                header.channel_id
            ),
        ));
    }
    if transaction.is_config() {
        // Config transactions are checked by the channel configuration, not here.
        return Ok(Checked {
            transaction,
            endorsers: Vec::new(),
        });
    }
    let now = header
        .timestamp
        .as_ref()
        .map(|timestamp| timestamp.seconds)
        .ok_or_else(|| {
            Invalid::new(
                TxValidationCode::BadChannelHeader,
                "the channel header has no timestamp",
            )
        })?;

    let creator = validator
        .msp
        .validate(&transaction.signature_header.creator, now)
        .map_err(|error| {
            Invalid::new(
                TxValidationCode::BadCreatorSignature,
                format!("creator: {error}"),
            )
        })?;
    validator
        .signatures
        .verify(&creator, &transaction.payload, &transaction.signature)
        .map_err(|error| {
            Invalid::new(
                TxValidationCode::BadCreatorSignature,
                format!("creator signature: {error}"),
            )
        })?;

    let action = transaction
        .action
        .as_ref()
        .expect("endorser transactions have an action");
    let mut endorsers = Vec::with_capacity(action.endorsements.len());
    let mut signed = Vec::with_capacity(action.proposal_response_payload.len() + 1024);
    for endorsement in &action.endorsements {
        let Ok(endorser) = validator.msp.validate(&endorsement.endorser, now) else {
            continue;
        };
        signed.clear();
        signed.extend_from_slice(&action.proposal_response_payload);
        signed.extend_from_slice(&endorsement.endorser);
        if validator
            .signatures
            .verify(&endorser, &signed, &endorsement.signature)
            .is_ok()
        {
            endorsers.push(endorser);
        }
    }
    Ok(Checked {
        transaction,
        endorsers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_crypto::Signer;
    use weft_msp::MspManagerConfig;
    use weft_testkit::TestNetwork;

    #[test]
    fn a_remembered_signature_is_not_verified_again_and_nothing_else_is_trusted() {
        let network = TestNetwork::generate();
        let msp = network.msp_manager(MspManagerConfig::default());
        let peer = network.peer("org1.example.com", "Org1MSP");
        let other = network.peer("org2.example.com", "Org2MSP");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let identity = msp
            .validate(&peer.serialized(), now)
            .expect("peer identity");
        let other_identity = msp
            .validate(&other.serialized(), now)
            .expect("org2 identity");

        let message = b"proposal response payload and endorser";
        let good = peer.sign(message).expect("signs");
        let cache = SignatureCache::new(16);
        cache
            .verify(&identity, message, &good)
            .expect("a good signature verifies");

        // Remembering is what the endorser does with its own signature; a
        // remembered entry is trusted exactly for that key, message and
        // signature. Shown with bytes that are no signature at all.
        let bogus = b"not a signature".to_vec();
        assert!(cache.verify(&identity, message, &bogus).is_err());
        cache.remember(&peer.public_key(), message, &bogus);
        cache
            .verify(&identity, message, &bogus)
            .expect("remembered");
        assert!(cache.verify(&identity, b"another message", &bogus).is_err());
        assert!(cache.verify(&other_identity, message, &bogus).is_err());

        // A cache of size 0 remembers nothing.
        let off = SignatureCache::new(0);
        off.remember(&peer.public_key(), message, &bogus);
        assert!(off.verify(&identity, message, &bogus).is_err());
        assert!(off.is_empty());
    }
}
