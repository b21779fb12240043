//! The CA's registry: identities, the certificates it issued, affiliations
//! and counters, in an embedded store (fjall) under `db.datasource`.
//!
//! Every change is one atomic batch written durably (fdatasync) before the
//! request is answered: an enrolment acknowledged is never forgotten, and the
//! enrolment count, the serial counter and the new certificate are written
//! together, so a crash cannot hand out a serial twice or let a secret enrol
//! beyond its maximum. Writers are serialised; readers read committed state.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch as WriteBatch, PersistMode,
};
use serde::{Deserialize, Serialize};

use crate::CaError;

/// An attribute of an identity (`{"name","value","ecert"}`, as Fabric CA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    /// Put into enrolment certificates when the enrol request names no attributes.
    #[serde(default)]
    pub ecert: bool,
}

/// A registered identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub name: String,
    /// The enrolment secret, hashed (see [`crate::secret`]).
    pub secret: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Dotted (`org1.department1`); empty is the root.
    pub affiliation: String,
    pub attrs: Vec<Attribute>,
    /// -1: unlimited.
    pub max_enrollments: i32,
    pub enrollments: i32,
    /// Revoked identities cannot enrol or authenticate.
    pub revoked: bool,
}

impl IdentityRecord {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|attribute| attribute.name == name)
            .map(|attribute| attribute.value.as_str())
    }

    /// `hf.Revoker` and the other boolean rights: true only when set to true.
    pub fn has_right(&self, name: &str) -> bool {
        self.attribute(name)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }

    /// The affiliation's levels, root first.
    pub fn affiliation_path(&self) -> Vec<String> {
        if self.affiliation.is_empty() {
            Vec::new()
        } else {
            self.affiliation.split('.').map(str::to_owned).collect()
        }
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: String,
    pub aki: String,
    pub id: String,
    pub revoked: bool,
    pub reason: u8,
    pub revoked_at: Option<i64>,
    pub not_before: i64,
    pub not_after: i64,
    pub pem: String,
}

/// The store.
pub struct Store {
    db: Database,
    identities: Keyspace,
    certificates: Keyspace,
    affiliations: Keyspace,
    meta: Keyspace,
    writer: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, CaError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CaError::internal(format!("CA store: a {what} record is corrupt: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Counters in `meta`.
pub const SERIAL_COUNTER: &str = "serial";
pub const CRL_COUNTER: &str = "crl_number";
const INITIALISED: &str = "initialised";

impl Store {
    pub fn open(dir: &Path) -> Result<Self, CaError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CaError::internal(format!("CA store {}: {e}", dir.display())))?;
        let db = Database::builder(dir).open()?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Self {
            identities: keyspace("identities")?,
            certificates: keyspace("certificates")?,
            affiliations: keyspace("affiliations")?,
            meta: keyspace("meta")?,
            db,
            writer: Mutex::new(()),
        })
    }

    /// Whether the bootstrap identities and affiliations were loaded.
    pub fn initialised(&self) -> Result<bool, CaError> {
        Ok(self.meta.get(INITIALISED)?.is_some())
    }

    pub fn identity(&self, name: &str) -> Result<Option<IdentityRecord>, CaError> {
        self.identities
            .get(name)?
            .map(|bytes| decode("identity", &bytes))
            .transpose()
    }

    pub fn identities(&self) -> Result<Vec<IdentityRecord>, CaError> {
        self.identities
            .iter()
            .map(|entry| {
                let (_, value) = entry.into_inner()?;
                decode("identity", &value)
            })
            .collect()
    }

    pub fn certificate(&self, serial: &str) -> Result<Option<CertRecord>, CaError> {
        self.certificates
            .get(serial)?
            .map(|bytes| decode("certificate", &bytes))
            .transpose()
    }

    pub fn certificates(&self) -> Result<Vec<CertRecord>, CaError> {
        self.certificates
            .iter()
            .map(|entry| {
                let (_, value) = entry.into_inner()?;
                decode("certificate", &value)
            })
            .collect()
    }

    pub fn affiliations(&self) -> Result<BTreeSet<String>, CaError> {
        self.affiliations
            .iter()
            .map(|entry| {
                let key = entry.key()?;
                String::from_utf8(key.to_vec())
                    .map_err(|_| CaError::internal("CA store: an affiliation is not UTF-8"))
            })
            .collect()
    }

    pub fn counter(&self, name: &str) -> Result<u64, CaError> {
        Ok(match self.meta.get(name)? {
            Some(bytes) => {
                let array: [u8; 8] = bytes.as_ref().try_into().map_err(|_| {
                    CaError::internal(format!("CA store: counter {name} is corrupt"))
                })?;
                u64::from_be_bytes(array)
            }
            None => 0,
        })
    }

    /// Starts a change: other writers wait until it is committed or dropped.
    pub fn write(&self) -> Write<'_> {
        Write {
            _guard: self
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            batch: self.db.batch().durability(Some(PersistMode::SyncData)),
            store: self,
        }
    }
}

/// One atomic, durable change.
pub struct Write<'a> {
    _guard: MutexGuard<'a, ()>,
    batch: WriteBatch,
    store: &'a Store,
}

impl Write<'_> {
    pub fn put_identity(&mut self, identity: &IdentityRecord) {
        self.batch.insert(
            &self.store.identities,
            identity.name.as_str(),
            encode(identity),
        );
    }

    pub fn remove_identity(&mut self, name: &str) {
        self.batch.remove(&self.store.identities, name);
    }

    pub fn put_certificate(&mut self, certificate: &CertRecord) {
        self.batch.insert(
            &self.store.certificates,
            certificate.serial.as_str(),
            encode(certificate),
        );
    }

    pub fn put_affiliation(&mut self, name: &str) {
        self.batch
            .insert(&self.store.affiliations, name, b"".as_slice());
    }

    pub fn remove_affiliation(&mut self, name: &str) {
        self.batch.remove(&self.store.affiliations, name);
    }

    pub fn set_counter(&mut self, name: &str, value: u64) {
        self.batch
            .insert(&self.store.meta, name, value.to_be_bytes().as_slice());
    }

    pub fn mark_initialised(&mut self) {
        self.batch
            .insert(&self.store.meta, INITIALISED, b"1".as_slice());
    }

    /// The store as it is (reads within a change see committed state).
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Writes the change durably.
    pub fn commit(self) -> Result<(), CaError> {
        self.batch.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_atomic_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Store::open(dir.path()).expect("open");
            let mut write = store.write();
            write.put_affiliation("org1");
            write.set_counter(SERIAL_COUNTER, 5);
            write.commit().expect("commit");
            let mut dropped = store.write();
            dropped.put_affiliation("org2");
            drop(dropped);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.counter(SERIAL_COUNTER).expect("counter"), 5);
        assert_eq!(
            store
                .affiliations()
                .expect("affiliations")
                .into_iter()
                .collect::<Vec<_>>(),
            ["org1"]
        );
    }
}
