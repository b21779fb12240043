use std::collections::BTreeSet;

use weft_protos::msp::{FabricMspConfig, FabricOuIdentifier};
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::identity::{Identity, NodeRole};
use crate::time::display;
use crate::{IdentityError, MspError};

/// Longest CA chain accepted (root, intermediates, issuing CA).
const CHAIN_DEPTH_MAX: usize = 8;

/// A CA certificate of the MSP, with what validation needs kept owned.
#[derive(Debug, Clone)]
struct Ca {
    der: Vec<u8>,
    subject: String,
    subject_raw: Vec<u8>,
    serial_raw: Vec<u8>,
    spki_raw: Vec<u8>,
    not_before: i64,
    not_after: i64,
    /// Index of the issuing CA; `None` for roots.
    parent: Option<usize>,
    /// Serials this CA has revoked, from the MSP's revocation lists.
    revoked_serials: BTreeSet<Vec<u8>>,
}

/// A NodeOU identifier: the OU value, optionally restricted to one CA's subtree.
#[derive(Debug, Clone)]
struct NodeOu {
    organizational_unit: String,
    ca: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct NodeOus {
    client: Option<NodeOu>,
    peer: Option<NodeOu>,
    admin: Option<NodeOu>,
    orderer: Option<NodeOu>,
}

/// One organisation's membership service provider.
#[derive(Debug, Clone)]
pub struct Msp {
    id: String,
    cas: Vec<Ca>,
    admins: Vec<Vec<u8>>,
    node_ous: Option<NodeOus>,
}

fn parse_certificate<'a>(
    der: &'a [u8],
    msp_id: &str,
    what: &str,
) -> Result<X509Certificate<'a>, MspError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(MspError::BadCertificate {
            msp_id: msp_id.into(),
            what: what.into(),
            reason: "trailing bytes after the certificate".into(),
        }),
        Err(e) => Err(MspError::BadCertificate {
            msp_id: msp_id.into(),
            what: what.into(),
            reason: e.to_string(),
        }),
    }
}

fn pem_certificates(pem: &[u8], msp_id: &str, what: &str) -> Result<Vec<Vec<u8>>, MspError> {
    weft_crypto::pem::certificates(pem).map_err(|e| MspError::BadCertificate {
        msp_id: msp_id.into(),
        what: what.into(),
        reason: e.to_string(),
    })
}

fn signed_by(cert: &X509Certificate<'_>, issuer_spki_raw: &[u8]) -> bool {
    SubjectPublicKeyInfo::from_der(issuer_spki_raw)
        .map(|(_, spki)| cert.verify_signature(Some(&spki)).is_ok())
        .unwrap_or(false)
}

impl Ca {
    fn new(der: Vec<u8>, msp_id: &str, what: &str) -> Result<Self, MspError> {
        let cert = parse_certificate(&der, msp_id, what)?;
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(MspError::NotACertificateAuthority {
                msp_id: msp_id.into(),
                what: what.into(),
                subject,
            });
        }
        let ca = Ca {
            subject,
            subject_raw: cert.subject().as_raw().to_vec(),
            serial_raw: cert.raw_serial().to_vec(),
            spki_raw: cert.public_key().raw.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            parent: None,
            revoked_serials: BTreeSet::new(),
            der: Vec::new(),
        };
        Ok(Ca { der, ..ca })
    }
}

impl Msp {
    /// Builds an MSP from its channel-configuration definition. Fails if a
    /// certificate is malformed or not a CA, a root is not self-signed, an
    /// intermediate does not chain to a root, or a revocation list is not
    /// signed by one of the MSP's CAs.
    pub fn from_config(config: &FabricMspConfig) -> Result<Self, MspError> {
        let id = config.name.clone();
        if id.is_empty() {
            return Err(MspError::EmptyName);
        }
        let mut cas = Vec::new();
        for pem in &config.root_certs {
            for der in pem_certificates(pem, &id, "root certificate")? {
                let ca = Ca::new(der, &id, "root certificate")?;
                let cert = parse_certificate(&ca.der, &id, "root certificate")?;
                if cert.subject().as_raw() != cert.issuer().as_raw()
                    || !signed_by(&cert, &ca.spki_raw)
                {
                    return Err(MspError::RootNotSelfSigned {
                        msp_id: id,
                        subject: ca.subject,
                    });
                }
                cas.push(ca);
            }
        }
        if cas.is_empty() {
            return Err(MspError::NoRootCertificate { msp_id: id });
        }
        let roots = cas.len();

        let mut pending = Vec::new();
        for pem in &config.intermediate_certs {
            for der in pem_certificates(pem, &id, "intermediate certificate")? {
                pending.push(Ca::new(der, &id, "intermediate certificate")?);
            }
        }
        // Intermediates may be listed in any order: link them level by level.
        while !pending.is_empty() {
            let before = pending.len();
            let mut unlinked = Vec::new();
            for mut ca in pending {
                let cert = parse_certificate(&ca.der, &id, "intermediate certificate")?;
                let parent = cas.iter().position(|p| {
                    p.subject_raw == cert.issuer().as_raw() && signed_by(&cert, &p.spki_raw)
                });
                drop(cert);
                match parent {
                    Some(parent) => {
                        ca.parent = Some(parent);
                        cas.push(ca);
                    }
                    None => unlinked.push(ca),
                }
            }
            if unlinked.len() == before {
                return Err(MspError::IntermediateNotChained {
                    msp_id: id,
                    subject: unlinked.swap_remove(0).subject,
                });
            }
            pending = unlinked;
        }
        debug_assert!(cas.len() >= roots);

        let mut msp = Msp {
            id,
            cas,
            admins: Vec::new(),
            node_ous: None,
        };
        for pem in &config.admins {
            msp.admins
                .extend(pem_certificates(pem, &msp.id, "admin certificate")?);
        }
        for crl in &config.revocation_list {
            msp.add_revocation_list(crl)?;
        }
        if let Some(node_ous) = config.fabric_node_ous.as_ref().filter(|n| n.enable) {
            msp.node_ous = Some(NodeOus {
                client: msp.node_ou(node_ous.client_ou_identifier.as_ref(), "client")?,
                peer: msp.node_ou(node_ous.peer_ou_identifier.as_ref(), "peer")?,
                admin: msp.node_ou(node_ous.admin_ou_identifier.as_ref(), "admin")?,
                orderer: msp.node_ou(node_ous.orderer_ou_identifier.as_ref(), "orderer")?,
            });
        }
        Ok(msp)
    }

    fn node_ou(
        &self,
        identifier: Option<&FabricOuIdentifier>,
        role: &'static str,
    ) -> Result<Option<NodeOu>, MspError> {
        let Some(identifier) = identifier else {
            return Ok(None);
        };
        let ca = if identifier.certificate.is_empty() {
            None
        } else {
            let der = pem_certificates(&identifier.certificate, &self.id, "NodeOU certificate")?
                .swap_remove(0);
            let index = self.cas.iter().position(|ca| ca.der == der).ok_or(
                MspError::NodeOuCertificateUnknown {
                    msp_id: self.id.clone(),
                    role,
                },
            )?;
            Some(index)
        };
        Ok(Some(NodeOu {
            organizational_unit: identifier.organizational_unit_identifier.clone(),
            ca,
        }))
    }

    /// Whether one of this MSP's CAs signed `crl` (its issuer name and signature).
    pub(crate) fn signed_revocation_list(&self, crl: &CertificateRevocationList<'_>) -> bool {
        self.cas.iter().any(|ca| {
            ca.subject_raw == crl.issuer().as_raw()
                && SubjectPublicKeyInfo::from_der(&ca.spki_raw)
                    .map(|(_, spki)| crl.verify_signature(&spki).is_ok())
                    .unwrap_or(false)
        })
    }

    fn add_revocation_list(&mut self, pem: &[u8]) -> Result<(), MspError> {
        let bad = |reason: String| MspError::BadRevocationList {
            msp_id: self.id.clone(),
            reason,
        };
        let blocks = weft_crypto::pem::blocks(pem).map_err(|e| bad(e.to_string()))?;
        let block = blocks
            .into_iter()
            .find(|b| b.label == "X509 CRL")
            .ok_or_else(|| bad("no X509 CRL PEM block".into()))?;
        let (_, crl) =
            CertificateRevocationList::from_der(&block.der).map_err(|e| bad(e.to_string()))?;
        let issuer = self.cas.iter().position(|ca| {
            ca.subject_raw == crl.issuer().as_raw()
                && SubjectPublicKeyInfo::from_der(&ca.spki_raw)
                    .map(|(_, spki)| crl.verify_signature(&spki).is_ok())
                    .unwrap_or(false)
        });
        let Some(issuer) = issuer else {
            return Err(MspError::RevocationListNotTrusted {
                msp_id: self.id.clone(),
                issuer: crl.issuer().to_string(),
            });
        };
        let serials: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        self.cas[issuer].revoked_serials.extend(serials);
        Ok(())
    }

    /// The MSP identifier (`Org1MSP`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether NodeOU roles (client, peer, admin, orderer) are in force.
    pub fn node_ous_enabled(&self) -> bool {
        self.node_ous.is_some()
    }

    /// Validates a DER certificate as an identity of this MSP at `now_unix_seconds`.
    pub fn validate_certificate(
        &self,
        der: &[u8],
        now_unix_seconds: i64,
    ) -> Result<Identity, IdentityError> {
        let msp_id = || self.id.clone();
        let cert = match X509Certificate::from_der(der) {
            Ok(([], cert)) => cert,
            Ok(_) => {
                return Err(IdentityError::BadCertificate {
                    msp_id: msp_id(),
                    reason: "trailing bytes after the certificate".into(),
                });
            }
            Err(e) => {
                return Err(IdentityError::BadCertificate {
                    msp_id: msp_id(),
                    reason: e.to_string(),
                });
            }
        };
        let subject = cert.subject().to_string();
        if cert.is_ca() {
            return Err(IdentityError::CertificateAuthorityAsIdentity {
                msp_id: msp_id(),
                subject,
            });
        }
        let issuer = self
            .cas
            .iter()
            .position(|ca| {
                ca.subject_raw == cert.issuer().as_raw() && signed_by(&cert, &ca.spki_raw)
            })
            .ok_or_else(|| IdentityError::UnknownIssuer {
                msp_id: msp_id(),
                subject: subject.clone(),
            })?;

        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if now_unix_seconds < not_before {
            return Err(IdentityError::NotYetValid {
                msp_id: msp_id(),
                subject,
                not_before: display(not_before),
            });
        }
        if now_unix_seconds > not_after {
            return Err(IdentityError::Expired {
                msp_id: msp_id(),
                subject,
                not_after: display(not_after),
            });
        }

        // Walk issuer -> root: validity, revocation, and the chain identifier.
        let mut valid_from = not_before;
        let mut valid_until = not_after;
        let mut chain = Vec::new();
        let mut serial = cert.raw_serial().to_vec();
        let mut serial_subject = subject.clone();
        let mut at = Some(issuer);
        while let Some(index) = at {
            if chain.len() == CHAIN_DEPTH_MAX {
                return Err(IdentityError::UnknownIssuer {
                    msp_id: msp_id(),
                    subject,
                });
            }
            let ca = &self.cas[index];
            if now_unix_seconds < ca.not_before || now_unix_seconds > ca.not_after {
                return Err(IdentityError::IssuerOutOfValidity {
                    msp_id: msp_id(),
                    subject,
                    ca: ca.subject.clone(),
                });
            }
            if ca.revoked_serials.contains(&serial) {
                return Err(IdentityError::Revoked {
                    msp_id: msp_id(),
                    subject: serial_subject,
                    serial: hex(&serial),
                });
            }
            valid_from = valid_from.max(ca.not_before);
            valid_until = valid_until.min(ca.not_after);
            chain.push(index);
            serial.clone_from(&ca.serial_raw);
            serial_subject.clone_from(&ca.subject);
            at = ca.parent;
        }

        let organizational_units: Vec<String> = cert
            .subject()
            .iter_organizational_unit()
            .filter_map(|ou| ou.as_str().ok().map(str::to_owned))
            .collect();
        let role = match &self.node_ous {
            None => None,
            Some(node_ous) => {
                let matches = |node_ou: &Option<NodeOu>| {
                    node_ou.as_ref().is_some_and(|n| {
                        organizational_units.contains(&n.organizational_unit)
                            && n.ca.is_none_or(|ca| chain.contains(&ca))
                    })
                };
                let roles: Vec<NodeRole> = [
                    (NodeRole::Client, &node_ous.client),
                    (NodeRole::Peer, &node_ous.peer),
                    (NodeRole::Admin, &node_ous.admin),
                    (NodeRole::Orderer, &node_ous.orderer),
                ]
                .into_iter()
                .filter(|(_, node_ou)| matches(node_ou))
                .map(|(role, _)| role)
                .collect();
                match roles.as_slice() {
                    [role] => Some(*role),
                    [] => {
                        return Err(IdentityError::NoNodeRole {
                            msp_id: msp_id(),
                            subject,
                            ous: organizational_units,
                        });
                    }
                    several => {
                        return Err(IdentityError::SeveralNodeRoles {
                            msp_id: msp_id(),
                            subject,
                            roles: several.iter().map(|r| r.name()).collect(),
                        });
                    }
                }
            }
        };
        let admin = role == Some(NodeRole::Admin) || self.admins.iter().any(|a| a == der);
        let public_key = weft_crypto::PublicKey::from_spki(cert.public_key())
            .and_then(weft_crypto::VerifyingKey::new)
            .map_err(|e| IdentityError::BadCertificate {
                msp_id: msp_id(),
                reason: e.to_string(),
            })?;
        let mut certifiers = weft_crypto::Sha256::new();
        for index in &chain {
            certifiers.update(&self.cas[*index].der);
        }

        Ok(Identity {
            msp_id: self.id.clone(),
            subject,
            certificate_der: der.to_vec(),
            public_key,
            role,
            admin,
            organizational_units,
            certifiers_identifier: certifiers.finish(),
            valid_from,
            valid_until,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
