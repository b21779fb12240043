//! A CA that lives only in memory: a peer makes one at start and issues each
//! chaincode it launches (or an admin asks for, in dev mode) a TLS client
//! certificate of its own, as Fabric's peers do. Nothing is written to disk;
//! a restarted peer has a new CA, so certificates of the previous run stop
//! working with it.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use crate::MaterialError;

/// An in-memory TLS CA.
pub struct EphemeralCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for EphemeralCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralCa").finish_non_exhaustive()
    }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

fn error(what: &str) -> impl FnOnce(rcgen::Error) -> MaterialError + '_ {
    move |source| MaterialError::Certificate {
        what: what.to_owned(),
        source,
    }
}

fn params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

impl EphemeralCa {
    /// A new CA named `common_name`, valid for `days`.
    pub fn new(common_name: &str, days: i64) -> Result<Self, MaterialError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(error(common_name))?;
        let mut params = params(common_name, days);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(error(common_name))?;
        Ok(EphemeralCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS client certificate (client authentication only) for `common_name`.
    pub fn issue_client(
        &self,
        common_name: &str,
        days: i64,
    ) -> Result<IssuedCertificate, MaterialError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(error(common_name))?;
        let mut params = params(common_name, days);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(error(common_name))?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        let ca = EphemeralCa::new("chaincode CA", 1).expect("ca");
        let issued = ca.issue_client("basic", 1).expect("issued");
        let ca_der = weft_crypto::pem::certificates(ca.cert_pem().as_bytes())
            .expect("ca pem")
            .remove(0);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("ca parses");
        let (_, leaf) = x509_parser::parse_x509_certificate(&issued.cert_der).expect("leaf");
        leaf.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        let other = EphemeralCa::new("chaincode CA", 1).expect("other");
        let other_der = weft_crypto::pem::certificates(other.cert_pem().as_bytes())
            .expect("other pem")
            .remove(0);
        let (_, other_cert) = x509_parser::parse_x509_certificate(&other_der).expect("other");
        assert!(
            leaf.verify_signature(Some(other_cert.public_key()))
                .is_err()
        );
    }
}
