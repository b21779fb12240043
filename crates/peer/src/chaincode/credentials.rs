//! Chaincode identity: the peer's own chaincode CA (in memory, new at every
//! start, as Fabric's) issues each chaincode a TLS client certificate, and a
//! classic chaincode's registration is bound to the package id its
//! certificate was issued for. The peer's own TLS key never leaves it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use weft_material::issuer::{EphemeralCa, IssuedCertificate};

/// How long an issued chaincode certificate is valid (a peer restart makes
/// every earlier one useless anyway: its CA is gone).
const VALIDITY_DAYS: i64 = 365;
/// Certificates remembered per package id (relaunches and dev-mode requests).
const PER_PACKAGE_MAX: usize = 8;

/// The chaincode CA and what it issued.
pub struct ChaincodeCredentials {
    ca: EphemeralCa,
    /// SHA-256 of an issued certificate → the package id it is for.
    issued: Mutex<Issued>,
}

#[derive(Default)]
struct Issued {
    by_hash: HashMap<[u8; 32], String>,
    by_package: HashMap<String, VecDeque<[u8; 32]>>,
}

impl std::fmt::Debug for ChaincodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeCredentials")
            .finish_non_exhaustive()
    }
}

impl ChaincodeCredentials {
    pub fn new(peer_name: &str) -> Result<Self, String> {
        let ca = EphemeralCa::new(&format!("{peer_name} chaincode CA"), VALIDITY_DAYS)
            .map_err(|e| format!("creating the chaincode CA: {e}"))?;
        Ok(ChaincodeCredentials {
            ca,
            issued: Mutex::default(),
        })
    }

    /// The CA certificate the peer's listener trusts for chaincode clients.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A new client certificate for `package_id`; the oldest of more than
    /// a few for the same package stops being accepted.
    pub fn issue(&self, package_id: &str) -> Result<IssuedCertificate, String> {
        let issued = self
            .ca
            .issue_client(package_id, VALIDITY_DAYS)
            .map_err(|e| format!("issuing a certificate for chaincode {package_id}: {e}"))?;
        let hash = weft_crypto::sha256(&issued.cert_der);
        let mut state = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let Issued {
            by_hash,
            by_package,
        } = &mut *state;
        let hashes = by_package.entry(package_id.to_owned()).or_default();
        hashes.push_back(hash);
        if hashes.len() > PER_PACKAGE_MAX
            && let Some(old) = hashes.pop_front()
        {
            by_hash.remove(&old);
        }
        by_hash.insert(hash, package_id.to_owned());
        Ok(issued)
    }

    /// The package id a presented TLS client certificate was issued for.
    pub fn package_of(&self, cert_der: &[u8]) -> Option<String> {
        let state = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        state.by_hash.get(&weft_crypto::sha256(cert_der)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_only_its_package() {
        let credentials = ChaincodeCredentials::new("peer0").expect("ca");
        let basic = credentials.issue("basic").expect("basic");
        let other = credentials.issue("other").expect("other");
        assert_eq!(
            credentials.package_of(&basic.cert_der).as_deref(),
            Some("basic")
        );
        assert_eq!(
            credentials.package_of(&other.cert_der).as_deref(),
            Some("other")
        );
        // A certificate from another peer's CA (or the peer's TLS certificate) names nothing.
        let elsewhere = ChaincodeCredentials::new("peer1").expect("ca");
        let foreign = elsewhere.issue("basic").expect("foreign");
        assert_eq!(credentials.package_of(&foreign.cert_der), None);
    }

    #[test]
    fn old_certificates_of_a_package_expire_from_memory() {
        let credentials = ChaincodeCredentials::new("peer0").expect("ca");
        let first = credentials.issue("basic").expect("first");
        for _ in 0..PER_PACKAGE_MAX {
            credentials.issue("basic").expect("again");
        }
        assert_eq!(credentials.package_of(&first.cert_der), None);
    }
}
