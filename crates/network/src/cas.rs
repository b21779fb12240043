//! A network's certificate authorities (`certificateAuthorities: true`), as
//! Fabric's test-network runs them with `-ca`: one `weft ca` per
//! organisation (`ca-org1` on 7054, `ca-org2` on 8054, `ca-orderer` on
//! 9054), its home at `organizations/fabric-ca/<org>/` (`ca-cert.pem`, the
//! root applications trust; `tls-cert.pem`, its listener's certificate),
//! bootstrap registrar `admin:adminpw`.
//!
//! Every peer, orderer, admin and user of the organisation is registered
//! with its CA and enrolled through it — in this process, through the CA's
//! own registry and issuing code, before the CA serves — so the MSPs are
//! rooted in the CAs, the CAs know every identity (and can revoke it), and
//! identities registered later with any Fabric CA client work at once.
//! TLS certificates still come from the organisation's TLS CA (`tlsca/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_ca::{Authority, CaConfig, InitOptions};
use weft_material::cryptogen::IdentityIssuer;
use weft_spec::{CertificateAuthoritySpec, NetworkSpec};

use crate::NetworkError;
use crate::dir::NetworkDir;

/// `organizations/fabric-ca/<org>`.
pub fn home(organizations: &Path, ca: &CertificateAuthoritySpec) -> PathBuf {
    organizations.join("fabric-ca").join(&ca.directory)
}

/// Per organisation domain, the CA that issues its identities.
pub type Issuers = BTreeMap<String, Arc<dyn IdentityIssuer>>;

/// Creates the CA homes that do not exist yet; answers, per organisation
/// domain, the issuer cryptogen enrols that organisation's identities with.
pub fn prepare(
    spec: &NetworkSpec,
    organizations: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Issuers, NetworkError> {
    let mut issuers = Issuers::new();
    for ca in spec.certificate_authorities() {
        let home = home(organizations, &ca);
        let config = home.join(weft_ca::config::CONFIG_FILE);
        if config.is_file() {
            progress(&format!("{}: kept ({})", ca.name, home.display()));
        } else {
            let mut options = InitOptions::new(&ca.name, ca.port);
            options.common_name = format!("ca.{}", ca.domain);
            options.organization = Some(ca.domain.clone());
            options.hosts = vec!["localhost".into(), "127.0.0.1".into(), ca.name.clone()];
            let mut affiliations = BTreeMap::from([
                (
                    "org1".to_owned(),
                    vec!["department1".to_owned(), "department2".to_owned()],
                ),
                ("org2".to_owned(), vec!["department1".to_owned()]),
            ]);
            affiliations
                .entry(ca.affiliation.clone())
                .or_insert_with(|| vec!["department1".to_owned()]);
            options.affiliations = Some(affiliations);
            options.operations = ca.operations_port.map(|port| format!("127.0.0.1:{port}"));
            weft_ca::config::init(&home, &options).map_err(NetworkError::Material)?;
            progress(&format!(
                "{}: created on port {} (root {})",
                ca.name,
                ca.port,
                home.join(weft_ca::config::CA_CERT_FILE).display()
            ));
        }
        let cert_pem = std::fs::read_to_string(home.join(weft_ca::config::CA_CERT_FILE))
            .map_err(|e| NetworkError::io(&home, e))?;
        issuers.insert(
            ca.domain.clone(),
            Arc::new(LocalCa {
                name: ca.name.clone(),
                config,
                cert_pem,
                authority: Mutex::new(None),
            }),
        );
    }
    Ok(issuers)
}

/// A CA used in this process: opened at its first enrolment (its store is
/// locked while open, so this fails while the CA itself runs).
#[derive(Debug)]
struct LocalCa {
    name: String,
    config: PathBuf,
    cert_pem: String,
    authority: Mutex<Option<Arc<Authority>>>,
}

impl IdentityIssuer for LocalCa {
    fn ca_cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    fn enrol(&self, name: &str, node_ou: &str, csr_pem: &str) -> Result<String, String> {
        let mut slot = self.authority.lock().unwrap_or_else(|p| p.into_inner());
        let authority = match &*slot {
            Some(authority) => Arc::clone(authority),
            None => {
                let config = CaConfig::load(&self.config)?;
                let authority = Authority::open(config).map_err(|e| {
                    format!(
                        "{}: {e} (is the CA running? new identities are enrolled while it is \
                         stopped: `weft down`, then `weft up`; or register them with a Fabric CA client)",
                        self.name
                    )
                })?;
                *slot = Some(Arc::clone(&authority));
                authority
            }
        };
        authority
            .enrol_locally(name, node_ou, csr_pem)
            .map_err(|e| format!("{}: {}", self.name, e.detail))
    }
}

/// Waits until every CA, and the REST gateway, accept connections.
pub fn wait_ready(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    let deadline = Instant::now() + timeout;
    for ca in spec.certificate_authorities() {
        while std::net::TcpStream::connect(("127.0.0.1", ca.port)).is_err() {
            if Instant::now() > deadline {
                return Err(NetworkError::Node {
                    node: ca.name.clone(),
                    message: format!(
                        "not listening on port {} after {}s; see {}",
                        ca.port,
                        timeout.as_secs(),
                        dir.node_log(&ca.name).display()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        progress(&format!("{}: https://localhost:{}", ca.name, ca.port));
    }
    if let Some(port) = spec.rest_port() {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(NetworkError::Node {
                    node: "rest".into(),
                    message: format!(
                        "the REST gateway is not listening on port {port} after {}s; see {}",
                        timeout.as_secs(),
                        crate::rest::dir(dir).join("rest.log").display()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        progress(&format!("REST gateway: http://127.0.0.1:{port}/api/v1"));
    }
    Ok(())
}
