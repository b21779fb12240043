//! Generates crypto material like Fabric's `cryptogen`, in the test-network layout.
//!
//! Re-running is safe and resumable: CAs and identities already on disk are
//! kept (a crash mid-way leaves at most one incomplete identity, which the next
//! run writes again); only missing ones are created. If an organisation's CA had
//! to be created anew, every identity of that organisation is re-issued, since
//! the old ones would no longer chain to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use time::{Duration, OffsetDateTime};
use weft_spec::{NetworkSpec, SignatureAlgorithm};

use crate::MaterialError;
use crate::files::{write, write_private_key};
use crate::layout::{self, KEY_FILE, SIGNCERT_FILE, ca_cert_file};

/// Settings of a generation run.
#[derive(Debug, Clone)]
pub struct CryptogenConfig {
    /// When certificates start being valid (backdated 5 minutes for clock skew).
    pub now: OffsetDateTime,
    /// How long CA and identity certificates stay valid.
    pub validity_days: i64,
    /// Organisations (by domain) whose signing identities a certificate
    /// authority issues instead of a CA of cryptogen's own.
    pub issuers: BTreeMap<String, Arc<dyn IdentityIssuer>>,
    /// Other names nodes are dialled at (a Kubernetes Service's), by node
    /// name: their TLS certificates carry them too.
    pub node_hosts: BTreeMap<String, String>,
}

impl Default for CryptogenConfig {
    fn default() -> Self {
        Self {
            now: OffsetDateTime::now_utc(),
            validity_days: 3650,
            issuers: BTreeMap::new(),
            node_hosts: BTreeMap::new(),
        }
    }
}

/// A certificate authority that issues an organisation's signing identities
/// (`weft ca`): cryptogen makes each key and a CSR for it, the CA registers
/// the identity and enrols it.
pub trait IdentityIssuer: Send + Sync + std::fmt::Debug {
    /// The CA certificate (PEM) the identities chain to: the root of the
    /// organisation's MSP.
    fn ca_cert_pem(&self) -> String;
    /// Registers `name` with type `node_ou` (`peer`, `orderer`, `admin`,
    /// `client`) unless it is registered, and enrols it with `csr_pem`;
    /// answers the certificate (PEM).
    fn enrol(&self, name: &str, node_ou: &str, csr_pem: &str) -> Result<String, String>;
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptogenReport {
    pub identities_written: usize,
    pub identities_kept: usize,
    pub cas_written: usize,
    pub cas_kept: usize,
}

/// The kind of identity, which decides its NodeOU and TLS role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Peer,
    Orderer,
    Admin,
    Client,
}

impl Kind {
    fn organizational_unit(self) -> &'static str {
        match self {
            Kind::Peer => "peer",
            Kind::Orderer => "orderer",
            Kind::Admin => "admin",
            Kind::Client => "client",
        }
    }

    fn is_node(self) -> bool {
        matches!(self, Kind::Peer | Kind::Orderer)
    }
}

struct Ca {
    name: String,
    cert_pem: String,
    issuer: CaIssuer,
}

/// Who signs a CA's certificates: its own key, or a certificate authority.
enum CaIssuer {
    Own(Box<Issuer<'static, KeyPair>>),
    External(Arc<dyn IdentityIssuer>),
}

impl CaIssuer {
    fn own(&self, name: &str) -> Result<&Issuer<'static, KeyPair>, MaterialError> {
        match self {
            CaIssuer::Own(issuer) => Ok(issuer),
            CaIssuer::External(_) => Err(MaterialError::invalid(
                name,
                "a certificate authority's CA cannot sign TLS certificates here",
            )),
        }
    }
}

struct Org<'a> {
    domain: &'a str,
    dir: PathBuf,
    ca: Ca,
    tls_ca: Ca,
    /// Whether a CA was created in this run (then every identity is re-issued).
    fresh_ca: bool,
    /// The key type of new signing identities.
    signatures: SignatureAlgorithm,
}

/// Writes the material for every organisation of `spec` under `output`
/// (the `organizations/` directory). `progress` receives one line per step.
pub fn generate(
    spec: &NetworkSpec,
    output: &Path,
    config: &CryptogenConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<CryptogenReport, MaterialError> {
    let mut report = CryptogenReport::default();
    for (org_index, org) in spec.organizations.iter().enumerate() {
        let dir = layout::peer_org_dir(output, &org.domain);
        let mut state = open_org(
            &org.domain,
            dir,
            spec.signature_algorithm,
            config,
            &mut report,
        )?;
        progress(&format!(
            "{} ({}): CA ca.{}",
            org.name, org.msp_id, org.domain
        ));
        for index in 0..org.peers {
            let name = format!("peer{index}.{}", org.domain);
            let node_dir = layout::peer_dir(output, &org.domain, index);
            identity(
                &mut state,
                &node_dir,
                Subject {
                    name: &name,
                    short_host: &format!("peer{index}"),
                    address: spec.peer_host(org_index, index).map(|h| h.address.as_str()),
                },
                Kind::Peer,
                config,
                &mut report,
            )?;
            progress(&format!("  {name}"));
        }
        users(&mut state, org.users, config, &mut report, progress)?;
    }
    let orderer = &spec.orderers.organization;
    let dir = layout::orderer_org_dir(output, &orderer.domain);
    let mut state = open_org(
        &orderer.domain,
        dir,
        spec.signature_algorithm,
        config,
        &mut report,
    )?;
    progress(&format!(
        "{} ({}): CA ca.{}",
        orderer.name, orderer.msp_id, orderer.domain
    ));
    for index in 0..spec.orderers.nodes {
        let host = layout::orderer_host(index);
        let name = format!("{host}.{}", orderer.domain);
        let node_dir = layout::orderer_dir(output, &orderer.domain, index);
        identity(
            &mut state,
            &node_dir,
            Subject {
                name: &name,
                short_host: &host,
                address: spec.orderer_host(index).map(|h| h.address.as_str()),
            },
            Kind::Orderer,
            config,
            &mut report,
        )?;
        progress(&format!("  {name}"));
    }
    users(&mut state, 0, config, &mut report, progress)?;
    Ok(report)
}

fn users(
    org: &mut Org<'_>,
    count: u32,
    config: &CryptogenConfig,
    report: &mut CryptogenReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), MaterialError> {
    let domain = org.domain;
    let names = std::iter::once(("Admin".to_owned(), Kind::Admin))
        .chain((1..=count).map(|i| (format!("User{i}"), Kind::Client)));
    for (user, kind) in names {
        let dir = layout::user_dir(&org.dir, &user, domain);
        let name = format!("{user}@{domain}");
        let subject = Subject {
            name: &name,
            short_host: &user,
            address: None,
        };
        identity(org, &dir, subject, kind, config, report)?;
        progress(&format!("  {name}"));
    }
    Ok(())
}

/// `signatures`: the key type of the signing CA and its identities (TLS is
/// always ECDSA P-256).
fn open_org<'a>(
    domain: &'a str,
    dir: PathBuf,
    signatures: SignatureAlgorithm,
    config: &CryptogenConfig,
    report: &mut CryptogenReport,
) -> Result<Org<'a>, MaterialError> {
    let (ca, ca_fresh) = match config.issuers.get(domain) {
        Some(external) => {
            let name = format!("ca.{domain}");
            let cert_pem = external.ca_cert_pem();
            let cert_path = dir.join("ca").join(ca_cert_file(&name));
            // The CA's key stays with the CA; `ca/` holds its certificate.
            let fresh = std::fs::read_to_string(&cert_path).ok().as_deref() != Some(&cert_pem);
            write(&cert_path, cert_pem.as_bytes())?;
            if fresh {
                report.cas_written += 1;
            } else {
                report.cas_kept += 1;
            }
            (
                Ca {
                    name,
                    cert_pem,
                    issuer: CaIssuer::External(Arc::clone(external)),
                },
                fresh,
            )
        }
        None => open_ca(
            &dir.join("ca"),
            &format!("ca.{domain}"),
            domain,
            signatures,
            config,
            report,
        )?,
    };
    let (tls_ca, tls_fresh) = open_ca(
        &dir.join("tlsca"),
        &format!("tlsca.{domain}"),
        domain,
        SignatureAlgorithm::Ecdsa,
        config,
        report,
    )?;
    let msp = dir.join("msp");
    write(
        &msp.join("cacerts").join(ca_cert_file(&ca.name)),
        ca.cert_pem.as_bytes(),
    )?;
    write(
        &msp.join("tlscacerts").join(ca_cert_file(&tls_ca.name)),
        tls_ca.cert_pem.as_bytes(),
    )?;
    write(&msp.join("config.yaml"), node_ous_yaml(&ca.name).as_bytes())?;
    Ok(Org {
        domain,
        dir,
        ca,
        tls_ca,
        fresh_ca: ca_fresh || tls_fresh,
        signatures,
    })
}

fn open_ca(
    dir: &Path,
    name: &str,
    domain: &str,
    algorithm: SignatureAlgorithm,
    config: &CryptogenConfig,
    report: &mut CryptogenReport,
) -> Result<(Ca, bool), MaterialError> {
    let cert_path = dir.join(ca_cert_file(name));
    let key_path = dir.join("priv_sk");
    if cert_path.exists() && key_path.exists() {
        let cert_pem = read_string(&cert_path)?;
        let key = KeyPair::from_pem(&read_string(&key_path)?)
            .map_err(|e| MaterialError::invalid(&key_path, format!("not a usable CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| {
            MaterialError::invalid(&cert_path, format!("not a usable CA certificate: {e}"))
        })?;
        report.cas_kept += 1;
        return Ok((
            Ca {
                name: name.to_owned(),
                cert_pem,
                issuer: CaIssuer::Own(Box::new(issuer)),
            },
            false,
        ));
    }

    let key = new_key(name, algorithm)?;
    let mut params = base_params(vec![], config);
    params.distinguished_name = dn(domain, None, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.self_signed(&key).map_err(cert_error(name))?;
    // Key first: a CA certificate on disk always has its key beside it.
    write_private_key(&key_path, key.serialize_pem().as_bytes())?;
    write(&cert_path, cert.pem().as_bytes())?;
    report.cas_written += 1;
    Ok((
        Ca {
            name: name.to_owned(),
            cert_pem: cert.pem(),
            issuer: CaIssuer::Own(Box::new(Issuer::new(params, key))),
        },
        true,
    ))
}

/// One identity: `msp/` (signing) and `tls/`, written only if incomplete.
/// Who an identity is: its full name, short host name and, for a node
/// placed on a host of the spec, the address it is dialled at.
struct Subject<'a> {
    name: &'a str,
    short_host: &'a str,
    address: Option<&'a str>,
}

fn identity(
    org: &mut Org<'_>,
    dir: &Path,
    subject: Subject<'_>,
    kind: Kind,
    config: &CryptogenConfig,
    report: &mut CryptogenReport,
) -> Result<(), MaterialError> {
    let Subject {
        name,
        short_host,
        address,
    } = subject;
    let (tls_cert, tls_key) = if kind.is_node() {
        ("server.crt", "server.key")
    } else {
        ("client.crt", "client.key")
    };
    let msp = dir.join("msp");
    let tls = dir.join("tls");
    let files = [
        msp.join(SIGNCERT_FILE),
        msp.join(KEY_FILE),
        tls.join(tls_cert),
        tls.join(tls_key),
        tls.join("ca.crt"),
    ];
    if !org.fresh_ca && files.iter().all(|f| f.exists()) {
        report.identities_kept += 1;
        return Ok(());
    }

    // Signing identity, with its NodeOU.
    let key = new_key(name, org.signatures)?;
    let mut params = base_params(vec![], config);
    params.distinguished_name = dn(org.domain, Some(kind.organizational_unit()), name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert_pem = match &org.ca.issuer {
        CaIssuer::Own(issuer) => params
            .signed_by(&key, issuer)
            .map_err(cert_error(name))?
            .pem(),
        CaIssuer::External(external) => {
            // A CSR carries the subject only; the CA decides the rest.
            let mut request = CertificateParams::default();
            request.distinguished_name = params.distinguished_name.clone();
            let csr = request
                .serialize_request(&key)
                .and_then(|csr| csr.pem())
                .map_err(cert_error(name))?;
            external
                .enrol(name, kind.organizational_unit(), &csr)
                .map_err(|e| MaterialError::invalid(&msp, format!("enrolling {name}: {e}")))?
        }
    };
    let key_file = msp.join(KEY_FILE);
    write_private_key(&key_file, identity_key_pem(&key_file, &key)?.as_bytes())?;
    write(
        &msp.join("cacerts").join(ca_cert_file(&org.ca.name)),
        org.ca.cert_pem.as_bytes(),
    )?;
    write(
        &msp.join("tlscacerts").join(ca_cert_file(&org.tls_ca.name)),
        org.tls_ca.cert_pem.as_bytes(),
    )?;
    write(
        &msp.join("config.yaml"),
        node_ous_yaml(&org.ca.name).as_bytes(),
    )?;
    write(&msp.join(SIGNCERT_FILE), cert_pem.as_bytes())?;

    // TLS: servers answer to their full name, short name and loopback, so a
    // network started on one machine verifies without extra settings.
    let key = new_key(name, SignatureAlgorithm::Ecdsa)?;
    let mut sans = vec![name.to_owned(), short_host.to_owned()];
    if kind.is_node() {
        sans.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
        // A node placed on a host of the spec is also dialled at its address.
        sans.extend(address.map(str::to_owned));
        if let Some(host) = config.node_hosts.get(name).filter(|h| !sans.contains(h)) {
            sans.push(host.clone());
        }
    }
    let mut params = base_params(sans, config);
    params.distinguished_name = dn(org.domain, None, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .signed_by(&key, org.tls_ca.issuer.own(name)?)
        .map_err(cert_error(name))?;
    write_private_key(&tls.join(tls_key), key.serialize_pem().as_bytes())?;
    write(&tls.join("ca.crt"), org.tls_ca.cert_pem.as_bytes())?;
    write(&tls.join(tls_cert), cert.pem().as_bytes())?;
    report.identities_written += 1;
    Ok(())
}

fn base_params(sans: Vec<String>, config: &CryptogenConfig) -> CertificateParams {
    // Only invalid SAN strings make `new` fail; ours are DNS names and an IP.
    let mut params = CertificateParams::new(sans).unwrap_or_default();
    params.not_before = config.now - Duration::minutes(5);
    params.not_after = config.now + Duration::days(config.validity_days);
    params.use_authority_key_identifier_extension = true;
    params
}

fn dn(domain: &str, organizational_unit: Option<&str>, common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "California");
    dn.push(DnType::LocalityName, "San Francisco");
    dn.push(DnType::OrganizationName, domain);
    if let Some(ou) = organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// An identity's private key as PEM PKCS#8 version 1 (for Ed25519, the seed
/// alone): OpenSSL 3.0, Node.js and Go read it, while the version-2 form
/// (with the public key) that key generation yields for Ed25519 is refused
/// by OpenSSL 3.0.
fn identity_key_pem(path: &Path, key: &KeyPair) -> Result<String, MaterialError> {
    weft_crypto::SigningKey::from_der(&key.serialize_der())
        .and_then(|key| key.to_pkcs8_pem())
        .map_err(|e| MaterialError::invalid(path, format!("a new key as PKCS#8: {e}")))
}

fn new_key(name: &str, algorithm: SignatureAlgorithm) -> Result<KeyPair, MaterialError> {
    let algorithm = match algorithm {
        SignatureAlgorithm::Ecdsa => &PKCS_ECDSA_P256_SHA256,
        SignatureAlgorithm::Ed25519 => &PKCS_ED25519,
    };
    KeyPair::generate_for(algorithm).map_err(cert_error(name))
}

fn cert_error(name: &str) -> impl FnOnce(rcgen::Error) -> MaterialError + '_ {
    move |source| MaterialError::Certificate {
        what: name.to_owned(),
        source,
    }
}

/// The MSP `config.yaml` enabling NodeOUs, as Fabric's cryptogen writes it.
fn node_ous_yaml(ca_name: &str) -> String {
    let cert = format!("cacerts/{}", ca_cert_file(ca_name));
    let mut out = String::from("NodeOUs:\n  Enable: true\n");
    for (key, ou) in [
        ("ClientOUIdentifier", "client"),
        ("PeerOUIdentifier", "peer"),
        ("AdminOUIdentifier", "admin"),
        ("OrdererOUIdentifier", "orderer"),
    ] {
        out.push_str(&format!(
            "  {key}:\n    Certificate: {cert}\n    OrganizationalUnitIdentifier: {ou}\n"
        ));
    }
    out
}

fn read_string(path: &Path) -> Result<String, MaterialError> {
    std::fs::read_to_string(path).map_err(MaterialError::io(path))
}
