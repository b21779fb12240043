//! Certificates: the CA's own root and TLS material (`weft ca init`),
//! certificate signing requests, the certificates the CA issues, and its
//! revocation lists.
//!
//! Issued certificates are written field by field (not through a template
//! library) so that the subject carries what Fabric CA puts there: the
//! request's C, ST, L and O, then one OU for the identity's type and one per
//! level of its affiliation (`OU=client, OU=org1, OU=department1`), then
//! `CN=<enrolment id>` — which Fabric's NodeOU classification and OU-based
//! policies read.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use weft_crypto::{PublicKey, Signer as _, SigningKey};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};

/// Fabric CA's attribute extension (`1.2.3.4.5.6.7.8.1`): the identity's
/// requested attributes as `{"attrs":{name:value}}`, raw JSON in the
/// extension value. Fabric's `cid` library and fabric-shim read it.
pub const ATTRIBUTES_OID: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 1];

const OID_COUNTRY: &[u64] = &[2, 5, 4, 6];
const OID_STATE: &[u64] = &[2, 5, 4, 8];
const OID_LOCALITY: &[u64] = &[2, 5, 4, 7];
const OID_ORGANIZATION: &[u64] = &[2, 5, 4, 10];
const OID_ORGANIZATIONAL_UNIT: &[u64] = &[2, 5, 4, 11];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const OID_AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const OID_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_ED25519: &[u64] = &[1, 3, 101, 112];

/// The PEM files of a new CA.
#[derive(Debug)]
pub struct RootMaterial {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
}

impl RootMaterial {
    /// A P-256 root valid for 15 years (Fabric CA's default), and a TLS
    /// server certificate it issues for `hosts`, valid for one year.
    pub fn generate(
        common_name: &str,
        organization: Option<&str>,
        hosts: &[String],
    ) -> Result<Self, String> {
        let failed = |what: &'static str| move |e: rcgen::Error| format!("{what}: {e}");
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed("CA key"))?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, common_name);
        if let Some(organization) = organization {
            ca.distinguished_name
                .push(DnType::OrganizationName, organization);
        }
        ca.not_before = now - Duration::minutes(5);
        ca.not_after = now + Duration::days(15 * 365);
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        ca.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        ca.serial_number = Some(SerialNumber::from_slice(&positive(
            weft_crypto::random_bytes::<20>(),
        )));
        let ca_cert = ca.self_signed(&ca_key).map_err(failed("CA certificate"))?;

        let tls_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed("TLS key"))?;
        let mut tls = CertificateParams::default();
        tls.distinguished_name.push(
            DnType::CommonName,
            hosts.first().map(String::as_str).unwrap_or(common_name),
        );
        for host in hosts {
            tls.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .map_err(|e| format!("TLS host {host:?}: {e}"))?,
                ),
            });
        }
        tls.not_before = now - Duration::minutes(5);
        tls.not_after = now + Duration::days(365);
        tls.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        tls.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        tls.use_authority_key_identifier_extension = true;
        tls.serial_number = Some(SerialNumber::from_slice(&positive(
            weft_crypto::random_bytes::<20>(),
        )));
        let issuer = Issuer::new(ca, ca_key);
        let tls_cert = tls
            .signed_by(&tls_key, &issuer)
            .map_err(failed("TLS certificate"))?;
        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem: issuer.key().serialize_pem(),
            tls_cert_pem: tls_cert.pem(),
            tls_key_pem: tls_key.serialize_pem(),
        })
    }
}

/// A serial number's bytes with the top bit cleared (DER INTEGERs are
/// signed; a certificate serial is positive).
fn positive<const N: usize>(mut bytes: [u8; N]) -> [u8; N] {
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    bytes
}

/// The subject fields a CSR may set besides CN (Fabric CA keeps C, ST, L
/// and O from the request and replaces the OUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    pub common_name: String,
    pub country: Vec<String>,
    pub state: Vec<String>,
    pub locality: Vec<String>,
    pub organization: Vec<String>,
    /// The DER SubjectPublicKeyInfo.
    pub public_key_info: Vec<u8>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<Vec<u8>>,
    /// The CSR asks for a CA certificate (BasicConstraints cA).
    pub is_ca: bool,
}

/// Parses a PEM CSR and checks its signature and key (P-256 or Ed25519)
/// and Fabric CA's field length limits.
pub fn parse_csr(pem: &str) -> Result<Csr, String> {
    let block = weft_crypto::pem::blocks(pem.as_bytes())
        .map_err(|e| format!("the certificate request is not PEM: {e}"))?
        .into_iter()
        .next()
        .ok_or("the certificate request is not PEM")?;
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(format!(
            "the PEM block is a {}, not a CERTIFICATE REQUEST",
            block.label
        ));
    }
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.der)
            .map_err(|e| format!("the certificate request is malformed: {e}"))?;
    if !rest.is_empty() {
        return Err("the certificate request has trailing bytes".into());
    }
    csr.verify_signature()
        .map_err(|e| format!("the certificate request's signature does not verify: {e}"))?;
    let info = &csr.certification_request_info;
    PublicKey::from_spki(&info.subject_pki)
        .map_err(|e| format!("the certificate request's key: {e}"))?;
    let values = |iter: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>,
                  field: &str,
                  limit: usize|
     -> Result<Vec<String>, String> {
        iter.map(|value| {
            let text = value
                .as_str()
                .map_err(|e| format!("the {field} is not a string: {e}"))?;
            if text.len() > limit {
                return Err(format!(
                    "The {field} '{text}' exceeds the maximum character limit of {limit}"
                ));
            }
            Ok(text.to_owned())
        })
        .collect()
    };
    let subject = &info.subject;
    let common_name = values(&mut subject.iter_common_name(), "CN", 64)?
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut parsed = Csr {
        common_name,
        country: values(&mut subject.iter_country(), "country name", 2)?,
        state: values(&mut subject.iter_state_or_province(), "state name", 128)?,
        locality: values(&mut subject.iter_locality(), "locality name", 128)?,
        organization: values(&mut subject.iter_organization(), "organization name", 64)?,
        public_key_info: info.subject_pki.raw.to_vec(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        is_ca: false,
    };
    if let Some(extensions) = csr.requested_extensions() {
        for extension in extensions {
            match extension {
                ParsedExtension::SubjectAlternativeName(names) => {
                    for name in &names.general_names {
                        match name {
                            GeneralName::DNSName(dns) => parsed.dns_names.push((*dns).to_owned()),
                            GeneralName::IPAddress(ip) => parsed.ip_addresses.push(ip.to_vec()),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::BasicConstraints(constraints) => parsed.is_ca = constraints.ca,
                _ => {}
            }
        }
    }
    Ok(parsed)
}

/// What to put in one issued certificate.
#[derive(Debug)]
pub struct Issue<'a> {
    pub serial: &'a [u8],
    pub csr: &'a Csr,
    /// OUs: the identity's type, then its affiliation's levels.
    pub organizational_units: Vec<String>,
    /// Extra SANs (Fabric CA's `hosts` in the request).
    pub hosts: &'a [String],
    pub validity: std::time::Duration,
    /// The `tls` profile: server and client authentication, key encipherment.
    pub tls: bool,
    /// The attribute extension's JSON, if any attributes go in.
    pub attributes: Option<Vec<u8>>,
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    /// Fabric CA's notation: lowercase hex without leading zeros.
    pub serial: String,
    pub aki: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// Lowercase hex without leading zeros, as Fabric CA writes serials and AKIs.
pub fn fabric_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_owned()
    }
}

/// The CA's signing side: its certificate and key.
pub struct CaSigner {
    key: SigningKey,
    signature_oid: &'static [u64],
    cert_der: Vec<u8>,
    cert_pem: String,
    subject_der: Vec<u8>,
    key_id: Vec<u8>,
    not_after: i64,
    crl_issuer: Issuer<'static, KeyPair>,
    can_sign_crls: bool,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner").finish_non_exhaustive()
    }
}

impl CaSigner {
    /// Loads the CA certificate and its key, checking that they match and
    /// that the certificate is a CA.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, String> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .map_err(|e| format!("ca.certfile {}: {e}", cert_path.display()))?;
        let key_pem = std::fs::read_to_string(key_path)
            .map_err(|e| format!("ca.keyfile {}: {e}", key_path.display()))?;
        let cert_der = weft_crypto::pem::certificates(cert_pem.as_bytes())
            .map_err(|e| format!("ca.certfile {}: {e}", cert_path.display()))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("ca.certfile {}: no certificate", cert_path.display()))?;
        let key = SigningKey::from_pem(key_pem.as_bytes())
            .map_err(|e| format!("ca.keyfile {}: {e}", key_path.display()))?;
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| format!("ca.certfile {}: {e}", cert_path.display()))?;
        if !cert.is_ca() {
            return Err(format!(
                "ca.certfile {}: not a CA certificate",
                cert_path.display()
            ));
        }
        let public = PublicKey::from_spki(cert.public_key())
            .map_err(|e| format!("ca.certfile {}: {e}", cert_path.display()))?;
        if public != key.public_key() {
            return Err(format!(
                "ca.keyfile {} is not the key of ca.certfile {}",
                key_path.display(),
                cert_path.display()
            ));
        }
        let signature_oid = match public {
            PublicKey::EcdsaP256(_) => OID_ECDSA_SHA256,
            PublicKey::Ed25519(_) => OID_ED25519,
        };
        let mut key_id = None;
        let mut can_sign_crls = true;
        for extension in cert.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => key_id = Some(id.0.to_vec()),
                ParsedExtension::KeyUsage(usage) => can_sign_crls = usage.crl_sign(),
                _ => {}
            }
        }
        let key_id = key_id.unwrap_or_else(|| {
            weft_crypto::sha256(&cert.public_key().subject_public_key.data)[..20].to_vec()
        });
        let crl_key = KeyPair::from_pem(&key_pem)
            .map_err(|e| format!("ca.keyfile {}: {e}", key_path.display()))?;
        let crl_issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), crl_key)
            .map_err(|e| format!("ca.certfile {}: {e}", cert_path.display()))?;
        Ok(Self {
            signature_oid,
            subject_der: cert.subject().as_raw().to_vec(),
            not_after: cert.validity().not_after.timestamp(),
            key,
            cert_pem: weft_crypto::pem::encode("CERTIFICATE", &cert_der),
            cert_der,
            key_id,
            crl_issuer,
            can_sign_crls,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Checks that `der` is a certificate this CA issued (its issuer name
    /// and signature) and returns it parsed.
    pub fn check_issued<'a>(&self, der: &'a [u8]) -> Result<X509Certificate<'a>, String> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("malformed certificate: {e}"))?;
        let (_, ca) = X509Certificate::from_der(&self.cert_der)
            .map_err(|e| format!("CA certificate: {e}"))?;
        if cert.issuer().as_raw() != self.subject_der.as_slice() {
            return Err(format!("issued by {}, not by this CA", cert.issuer()));
        }
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| "not signed by this CA's key".to_owned())?;
        Ok(cert)
    }

    /// Issues a certificate. Its validity ends no later than the CA's.
    pub fn issue(&self, issue: &Issue<'_>) -> Result<Issued, String> {
        let now = OffsetDateTime::now_utc();
        let not_before = now - Duration::minutes(5);
        let wanted = now + Duration::try_from(issue.validity).map_err(|e| e.to_string())?;
        let ca_end =
            OffsetDateTime::from_unix_timestamp(self.not_after).map_err(|e| e.to_string())?;
        let not_after = wanted.min(ca_end);
        let csr = issue.csr;
        let mut names: Vec<(&[u64], &str)> = Vec::new();
        names.extend(csr.country.iter().map(|v| (OID_COUNTRY, v.as_str())));
        names.extend(csr.state.iter().map(|v| (OID_STATE, v.as_str())));
        names.extend(csr.locality.iter().map(|v| (OID_LOCALITY, v.as_str())));
        names.extend(
            csr.organization
                .iter()
                .map(|v| (OID_ORGANIZATION, v.as_str())),
        );
        names.extend(
            issue
                .organizational_units
                .iter()
                .filter(|ou| !ou.is_empty())
                .map(|v| (OID_ORGANIZATIONAL_UNIT, v.as_str())),
        );
        names.push((OID_COMMON_NAME, csr.common_name.as_str()));
        let subject = yasna::construct_der(|w| {
            w.write_sequence_of(|w| {
                for (oid, value) in &names {
                    w.next().write_set_of(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
                            if *oid == OID_COUNTRY {
                                w.next().write_printable_string(value);
                            } else {
                                w.next().write_utf8_string(value);
                            }
                        })
                    })
                }
            })
        });
        let spki_bits = {
            let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&csr.public_key_info)
                .map_err(|e| format!("public key: {e}"))?;
            spki.subject_public_key.data.to_vec()
        };
        let subject_key_id = weft_crypto::sha256(&spki_bits)[..20].to_vec();
        let mut dns: Vec<String> = csr.dns_names.clone();
        let mut ips: Vec<Vec<u8>> = csr.ip_addresses.clone();
        for host in issue.hosts {
            match host.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => ips.push(ip.octets().to_vec()),
                Ok(IpAddr::V6(ip)) => ips.push(ip.octets().to_vec()),
                Err(_) if !host.is_empty() => dns.push(host.clone()),
                Err(_) => {}
            }
        }
        dns.dedup();
        ips.dedup();

        let mut extensions: Vec<(&[u64], bool, Vec<u8>)> = Vec::new();
        // digitalSignature (bit 0), plus keyEncipherment (bit 2) for TLS.
        let key_usage = if issue.tls { (0xa0u8, 3) } else { (0x80u8, 1) };
        extensions.push((
            OID_KEY_USAGE,
            true,
            yasna::construct_der(|w| w.write_bitvec_bytes(&[key_usage.0], key_usage.1)),
        ));
        extensions.push((
            OID_BASIC_CONSTRAINTS,
            true,
            yasna::construct_der(|w| w.write_sequence(|_| {})),
        ));
        if issue.tls {
            extensions.push((
                OID_EXTENDED_KEY_USAGE,
                false,
                yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        w.next()
                            .write_oid(&ObjectIdentifier::from_slice(OID_SERVER_AUTH));
                        w.next()
                            .write_oid(&ObjectIdentifier::from_slice(OID_CLIENT_AUTH));
                    })
                }),
            ));
        }
        extensions.push((
            OID_SUBJECT_KEY_ID,
            false,
            yasna::construct_der(|w| w.write_bytes(&subject_key_id)),
        ));
        extensions.push((
            OID_AUTHORITY_KEY_ID,
            false,
            yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next().write_tagged_implicit(yasna::Tag::context(0), |w| {
                        w.write_bytes(&self.key_id)
                    })
                })
            }),
        ));
        if !dns.is_empty() || !ips.is_empty() {
            extensions.push((
                OID_SUBJECT_ALT_NAME,
                false,
                yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        for name in &dns {
                            w.next().write_tagged_implicit(yasna::Tag::context(2), |w| {
                                w.write_ia5_string(name)
                            });
                        }
                        for ip in &ips {
                            w.next().write_tagged_implicit(yasna::Tag::context(7), |w| {
                                w.write_bytes(ip)
                            });
                        }
                    })
                }),
            ));
        }
        if let Some(attributes) = &issue.attributes {
            extensions.push((ATTRIBUTES_OID, false, attributes.clone()));
        }

        let algorithm = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(self.signature_oid))
            })
        });
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_tagged(yasna::Tag::context(0), |w| w.write_u8(2));
                w.next().write_bigint_bytes(issue.serial, true);
                w.next().write_der(&algorithm);
                w.next().write_der(&self.subject_der);
                w.next().write_sequence(|w| {
                    write_time(w.next(), not_before);
                    write_time(w.next(), not_after);
                });
                w.next().write_der(&subject);
                w.next().write_der(&csr.public_key_info);
                w.next().write_tagged(yasna::Tag::context(3), |w| {
                    w.write_sequence(|w| {
                        for (oid, critical, value) in &extensions {
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&ObjectIdentifier::from_slice(oid));
                                if *critical {
                                    w.next().write_bool(true);
                                }
                                w.next().write_bytes(value);
                            })
                        }
                    })
                });
            })
        });
        let signature = self
            .key
            .sign(&tbs)
            .map_err(|e| format!("signing the certificate: {e}"))?;
        let der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                w.next().write_der(&algorithm);
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            })
        });
        Ok(Issued {
            pem: weft_crypto::pem::encode("CERTIFICATE", &der),
            serial: fabric_hex(issue.serial),
            aki: fabric_hex(&self.key_id),
            not_before: not_before.unix_timestamp(),
            not_after: not_after.unix_timestamp(),
        })
    }

    /// This CA's key identifier, in Fabric CA's hex.
    pub fn aki(&self) -> String {
        fabric_hex(&self.key_id)
    }

    /// A CRL (PEM) listing `revoked`, numbered `number`, current for `validity`.
    pub fn crl(
        &self,
        revoked: &[Revoked],
        number: u64,
        validity: std::time::Duration,
    ) -> Result<String, String> {
        if !self.can_sign_crls {
            return Err("the CA certificate does not have the 'crl sign' key usage".into());
        }
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::try_from(validity).map_err(|e| e.to_string())?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|entry| {
                    Ok(RevokedCertParams {
                        serial_number: SerialNumber::from_slice(&entry.serial),
                        revocation_time: OffsetDateTime::from_unix_timestamp(entry.revoked_at)
                            .map_err(|e| e.to_string())?,
                        reason_code: reason_from_code(entry.reason),
                        invalidity_date: None,
                    })
                })
                .collect::<Result<_, String>>()?,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        let crl = params
            .signed_by(&self.crl_issuer)
            .map_err(|e| format!("signing the CRL: {e}"))?;
        crl.pem().map_err(|e| format!("CRL: {e}"))
    }
}

/// One entry of a CRL.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: u8,
}

fn write_time(writer: yasna::DERWriter<'_>, at: OffsetDateTime) {
    // RFC 5280: whole seconds; UTCTime through 2049, GeneralizedTime from 2050.
    let at = at.replace_nanosecond(0).unwrap_or(at);
    if at.year() < 2050 {
        writer.write_utctime(&UTCTime::from_datetime(at));
    } else {
        writer.write_generalized_time(&GeneralizedTime::from_datetime(at));
    }
}

/// RFC 5280's reason codes by the names Fabric CA clients send
/// (`keycompromise`, `superseded`, …) or their numbers.
pub fn reason_code(name: &str) -> Option<u8> {
    let names = [
        "unspecified",
        "keycompromise",
        "cacompromise",
        "affiliationchanged",
        "superseded",
        "cessationofoperation",
        "certificatehold",
        "",
        "removefromcrl",
        "privilegewithdrawn",
        "aacompromise",
    ];
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Some(0);
    }
    if let Ok(number) = lower.parse::<u8>() {
        return (usize::from(number) < names.len() && number != 7).then_some(number);
    }
    names
        .iter()
        .position(|candidate| !candidate.is_empty() && *candidate == lower)
        .and_then(|index| u8::try_from(index).ok())
}

fn reason_from_code(code: u8) -> Option<RevocationReason> {
    Some(match code {
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> (tempfile::TempDir, CaSigner) {
        let dir = tempfile::tempdir().expect("dir");
        let root =
            RootMaterial::generate("ca-test", Some("org1.example.com"), &["localhost".into()])
                .expect("root");
        std::fs::write(dir.path().join("cert.pem"), &root.ca_cert_pem).expect("cert");
        std::fs::write(dir.path().join("key.pem"), &root.ca_key_pem).expect("key");
        let signer = CaSigner::load(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .expect("signer");
        (dir, signer)
    }

    fn csr_for(common_name: &str) -> (KeyPair, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::CountryName, "US");
        let csr = params.serialize_request(&key).expect("csr");
        (key, csr.pem().expect("pem"))
    }

    #[test]
    fn issued_certificates_carry_fabric_ca_subjects_and_attributes() {
        let (_dir, signer) = signer();
        let (_key, pem) = csr_for("user1");
        let csr = parse_csr(&pem).expect("csr parses");
        assert_eq!(csr.common_name, "user1");
        let issued = signer
            .issue(&Issue {
                serial: &[0x00, 0x12, 0x34],
                csr: &csr,
                organizational_units: vec!["client".into(), "org1".into(), "department1".into()],
                hosts: &[],
                validity: std::time::Duration::from_secs(3600),
                tls: false,
                attributes: Some(br#"{"attrs":{"role":"auditor"}}"#.to_vec()),
            })
            .expect("issued");
        assert_eq!(issued.serial, "1234");
        let der = weft_crypto::pem::certificates(issued.pem.as_bytes())
            .expect("pem")
            .remove(0);
        let cert = signer.check_issued(&der).expect("chains to the CA");
        let units: Vec<&str> = cert
            .subject()
            .iter_organizational_unit()
            .map(|ou| ou.as_str().expect("text"))
            .collect();
        assert_eq!(units, ["client", "org1", "department1"]);
        assert_eq!(
            cert.subject()
                .iter_country()
                .next()
                .map(|c| c.as_str().expect("c")),
            Some("US")
        );
        let attributes = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.2.3.4.5.6.7.8.1")
            .expect("attribute extension");
        assert_eq!(attributes.value, br#"{"attrs":{"role":"auditor"}}"#);
        assert!(!cert.is_ca());
        assert_eq!(cert.validity().not_after.timestamp(), issued.not_after);
    }

    #[test]
    fn tampered_or_foreign_requests_and_certificates_are_refused() {
        let (_dir, signer) = signer();
        let (_key, pem) = csr_for("user1");
        let mut der = weft_crypto::pem::blocks(pem.as_bytes())
            .expect("pem")
            .remove(0)
            .der;
        let last = der.len() - 1;
        der[last] ^= 1;
        let tampered = weft_crypto::pem::encode("CERTIFICATE REQUEST", &der);
        assert!(
            parse_csr(&tampered)
                .expect_err("refused")
                .contains("signature")
        );
        assert!(parse_csr("not pem").is_err());
        let (_other_dir, other) = signer_pair();
        let csr = parse_csr(&pem).expect("csr");
        let foreign = other
            .issue(&Issue {
                serial: &[1],
                csr: &csr,
                organizational_units: vec!["client".into()],
                hosts: &[],
                validity: std::time::Duration::from_secs(60),
                tls: true,
                attributes: None,
            })
            .expect("issued");
        let foreign = weft_crypto::pem::certificates(foreign.pem.as_bytes())
            .expect("pem")
            .remove(0);
        assert!(signer.check_issued(&foreign).is_err());
    }

    fn signer_pair() -> (tempfile::TempDir, CaSigner) {
        signer()
    }

    #[test]
    fn crls_list_revoked_serials_with_reasons() {
        let (_dir, signer) = signer();
        let pem = signer
            .crl(
                &[Revoked {
                    serial: vec![0x12, 0x34],
                    revoked_at: 1_700_000_000,
                    reason: 1,
                }],
                7,
                std::time::Duration::from_secs(86_400),
            )
            .expect("crl");
        let der = weft_crypto::pem::blocks(pem.as_bytes())
            .expect("pem")
            .remove(0)
            .der;
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&der).expect("crl");
        let serials: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| fabric_hex(r.raw_serial()))
            .collect();
        assert_eq!(serials, ["1234"]);
        assert_eq!(reason_code("KeyCompromise"), Some(1));
        assert_eq!(reason_code("7"), None);
        assert_eq!(reason_code("nonsense"), None);
    }
}
