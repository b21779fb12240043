//! The CA's configuration file (`ca.yaml`), with Fabric CA's key names where
//! weft has the setting (`port`, `ca.name`, `ca.certfile`, `ca.keyfile`,
//! `tls.enabled`, `registry.maxenrollments`, `registry.identities`,
//! `affiliations`, `signing.default.expiry`, `crl.expiry`,
//! `cfg.identities.allowremove`, `cfg.affiliations.allowremove`), and
//! `weft ca init`, which writes one with the CA's key and certificates.
//!
//! Relative paths are relative to the directory of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use weft_node::operations::OperationsConfig;

/// A CA's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The address the REST API listens on (127.0.0.1 unless told).
    #[serde(default = "default_address")]
    pub address: String,
    pub port: u16,
    pub ca: CaFiles,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub registry: RegistrySettings,
    /// The affiliation tree: `org1: [department1, department2]`, nested maps
    /// for deeper trees. Loaded into the store when it is created.
    #[serde(default)]
    pub affiliations: BTreeMap<String, Affiliations>,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub crl: CrlSettings,
    #[serde(default)]
    pub db: DbSettings,
    #[serde(default)]
    pub cfg: Cfg,
    /// The operations service (`/healthz`, `/metrics`), as on peers and orderers.
    #[serde(default)]
    pub operations: Option<OperationsConfig>,
}

fn default_address() -> String {
    "127.0.0.1".into()
}

/// `ca:`: the CA's name and its signing certificate and key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaFiles {
    pub name: String,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

/// `tls:`: HTTPS on the listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub certfile: PathBuf,
    #[serde(default)]
    pub keyfile: PathBuf,
}

/// `registry:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// How many times one secret may enrol: -1 unlimited, 0 enrolment disabled.
    #[serde(default = "unlimited")]
    pub maxenrollments: i32,
    /// Identities created when the store is created (the bootstrap admin).
    #[serde(default)]
    pub identities: Vec<BootstrapIdentity>,
}

fn unlimited() -> i32 {
    -1
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            maxenrollments: -1,
            identities: Vec::new(),
        }
    }
}

/// One `registry.identities` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapIdentity {
    pub name: String,
    pub pass: String,
    #[serde(default = "client", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub affiliation: String,
    #[serde(default)]
    pub maxenrollments: i32,
    #[serde(default)]
    pub attrs: BTreeMap<String, Scalar>,
}

fn client() -> String {
    "client".into()
}

/// An attribute value as YAML writes it: `true`, `"*"`, `5`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Integer(i64),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(value) => write!(f, "{value}"),
            Scalar::Integer(value) => write!(f, "{value}"),
            Scalar::Text(value) => f.write_str(value),
        }
    }
}

/// Children of an affiliation: a list of leaves, or a map of subtrees.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Affiliations {
    Leaves(Vec<String>),
    Tree(BTreeMap<String, Affiliations>),
    None(()),
}

/// Every affiliation of the tree, dotted (`org1`, `org1.department1`).
pub fn affiliation_names(tree: &BTreeMap<String, Affiliations>) -> Vec<String> {
    fn walk(prefix: &str, tree: &BTreeMap<String, Affiliations>, out: &mut Vec<String>) {
        for (name, children) in tree {
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(full.clone());
            match children {
                Affiliations::Leaves(leaves) => {
                    out.extend(leaves.iter().map(|leaf| format!("{full}.{leaf}")));
                }
                Affiliations::Tree(subtree) => walk(&full, subtree, out),
                Affiliations::None(()) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

/// `signing:`: how long issued certificates are valid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    #[serde(default)]
    pub default: Profile,
    /// The `tls` enrolment profile (`profile: tls` in an enrol request).
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default = "year")]
    pub expiry: String,
}

fn year() -> String {
    "8760h".into()
}

impl Default for Profile {
    fn default() -> Self {
        Self { expiry: year() }
    }
}

/// `crl:`: how long a generated CRL says it is current.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSettings {
    #[serde(default = "day")]
    pub expiry: String,
}

fn day() -> String {
    "24h".into()
}

impl Default for CrlSettings {
    fn default() -> Self {
        Self { expiry: day() }
    }
}

/// `db:`: where the CA keeps identities and certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSettings {
    /// A directory (weft's embedded store).
    #[serde(default = "store_dir")]
    pub datasource: PathBuf,
}

fn store_dir() -> PathBuf {
    "ca-db".into()
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            datasource: store_dir(),
        }
    }
}

/// `cfg:`: whether identities and affiliations may be removed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cfg {
    #[serde(default)]
    pub identities: AllowRemove,
    #[serde(default)]
    pub affiliations: AllowRemove,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRemove {
    #[serde(default)]
    pub allowremove: bool,
}

impl CaConfig {
    /// Reads `path`, making its relative paths relative to its directory.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CA configuration {}: {e}", path.display()))?;
        let mut config: CaConfig = serde_saphyr::from_str(&text)
            .map_err(|e| format!("CA configuration {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.ca.certfile,
            &mut config.ca.keyfile,
            &mut config.tls.certfile,
            &mut config.tls.keyfile,
            &mut config.db.datasource,
        ] {
            if !file.as_os_str().is_empty() && file.is_relative() {
                *file = base.join(&*file);
            }
        }
        if let Some(operations) = &mut config.operations {
            operations.resolve(base);
        }
        config
            .check()
            .map_err(|e| format!("CA configuration {}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.ca.name.is_empty() {
            return Err("ca.name is empty".into());
        }
        if self.registry.maxenrollments < -1 {
            return Err(format!(
                "registry.maxenrollments is {}: use -1 (unlimited), 0 (enrolment disabled) or a positive count",
                self.registry.maxenrollments
            ));
        }
        if self.tls.enabled
            && (self.tls.certfile.as_os_str().is_empty() || self.tls.keyfile.as_os_str().is_empty())
        {
            return Err("tls.enabled needs tls.certfile and tls.keyfile".into());
        }
        self.certificate_validity(None)?;
        self.crl_validity()?;
        for identity in &self.registry.identities {
            if identity.name.is_empty() || identity.pass.is_empty() {
                return Err("registry.identities: every identity needs a name and a pass".into());
            }
        }
        Ok(())
    }

    /// How long a certificate of `profile` (None: the default) is valid.
    pub fn certificate_validity(&self, profile: Option<&str>) -> Result<Duration, String> {
        let expiry = match profile {
            Some(name) => {
                &self
                    .signing
                    .profiles
                    .get(name)
                    .unwrap_or(&self.signing.default)
                    .expiry
            }
            None => &self.signing.default.expiry,
        };
        weft_protoutil::parse_duration(expiry)
            .map_err(|e| format!("signing expiry {expiry:?}: {e}"))
    }

    /// How long a generated CRL is current (its nextUpdate).
    pub fn crl_validity(&self) -> Result<Duration, String> {
        weft_protoutil::parse_duration(&self.crl.expiry)
            .map_err(|e| format!("crl.expiry {:?}: {e}", self.crl.expiry))
    }
}

/// What `weft ca init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The CA's name (`ca-org1`), which clients may address it by.
    pub name: String,
    pub port: u16,
    pub address: String,
    /// The bootstrap identity (`admin`, `adminpw`).
    pub bootstrap: (String, String),
    /// Host names and addresses in the TLS certificate.
    pub hosts: Vec<String>,
    /// The CA certificate's common name and organisation.
    pub common_name: String,
    pub organization: Option<String>,
    /// Affiliations: Fabric CA's defaults when None.
    pub affiliations: Option<BTreeMap<String, Vec<String>>>,
    pub tls: bool,
    /// Where the operations service listens (`127.0.0.1:17054`), if anywhere.
    pub operations: Option<String>,
}

impl InitOptions {
    /// Fabric CA's defaults for a CA named `name` on `port`.
    pub fn new(name: &str, port: u16) -> Self {
        Self {
            name: name.into(),
            port,
            address: default_address(),
            bootstrap: ("admin".into(), "adminpw".into()),
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            common_name: name.into(),
            organization: None,
            affiliations: None,
            tls: true,
            operations: None,
        }
    }
}

/// The file `weft ca init` writes, and `weft ca start --home` reads.
pub const CONFIG_FILE: &str = "ca.yaml";
/// The CA certificate, at the home's top as Fabric CA writes it.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The listener's TLS certificate.
pub const TLS_CERT_FILE: &str = "tls-cert.pem";
const CA_KEY_FILE: &str = "msp/keystore/ca-key.pem";
const TLS_KEY_FILE: &str = "msp/keystore/tls-key.pem";

/// Creates a CA home: a P-256 root key and self-signed certificate, a TLS
/// certificate it issues for `hosts`, and `ca.yaml`. Refuses a home that
/// already has a configuration (a CA's key is never replaced silently).
pub fn init(home: &Path, options: &InitOptions) -> Result<PathBuf, String> {
    let config_path = home.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(format!(
            "{} already exists: this CA is initialised (remove the directory to start over)",
            config_path.display()
        ));
    }
    let (user, pass) = &options.bootstrap;
    if user.is_empty() || pass.is_empty() || user.contains(':') {
        return Err("the bootstrap identity is written user:password, both non-empty".into());
    }
    let root = crate::cert::RootMaterial::generate(
        &options.common_name,
        options.organization.as_deref(),
        &options.hosts,
    )?;
    let write = |relative: &str, contents: &str, private: bool| -> Result<(), String> {
        let path = home.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        write_file(&path, contents.as_bytes(), private)
    };
    write(CA_KEY_FILE, &root.ca_key_pem, true)?;
    write(CA_CERT_FILE, &root.ca_cert_pem, false)?;
    write(TLS_KEY_FILE, &root.tls_key_pem, true)?;
    write(TLS_CERT_FILE, &root.tls_cert_pem, false)?;
    write(CONFIG_FILE, &config_text(options), true)?;
    Ok(config_path)
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), String> {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = open
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn yaml_string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

fn config_text(options: &InitOptions) -> String {
    let (user, pass) = &options.bootstrap;
    let mut affiliations = String::new();
    let defaults: BTreeMap<String, Vec<String>> = [
        ("org1", vec!["department1", "department2"]),
        ("org2", vec!["department1"]),
    ]
    .into_iter()
    .map(|(org, departments)| {
        (
            org.to_owned(),
            departments.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    for (org, departments) in options.affiliations.as_ref().unwrap_or(&defaults) {
        let list: Vec<String> = departments.iter().map(|d| yaml_string(d)).collect();
        affiliations.push_str(&format!("  {}: [{}]\n", yaml_string(org), list.join(", ")));
    }
    if affiliations.is_empty() {
        affiliations.push_str("  {}\n");
    }
    let operations = options
        .operations
        .as_ref()
        .map(|address| format!("operations:\n  listen_address: {}\n", yaml_string(address)))
        .unwrap_or_default();
    format!(
        "# weft CA configuration: Fabric CA's key names where weft has the setting.\n\
         # Paths are relative to this file.\n\
         address: {address}\n\
         port: {port}\n\
         ca:\n  name: {name}\n  certfile: {ca_cert}\n  keyfile: {ca_key}\n\
         tls:\n  enabled: {tls}\n  certfile: {tls_cert}\n  keyfile: {tls_key}\n\
         registry:\n  # -1: a secret enrols any number of times; 0: enrolment disabled\n  maxenrollments: -1\n  identities:\n\
         \x20   - name: {user}\n      pass: {pass}\n      type: client\n      affiliation: \"\"\n      attrs:\n\
         \x20       hf.Registrar.Roles: \"*\"\n        hf.Registrar.DelegateRoles: \"*\"\n\
         \x20       hf.Revoker: true\n        hf.IntermediateCA: true\n        hf.GenCRL: true\n\
         \x20       hf.Registrar.Attributes: \"*\"\n        hf.AffiliationMgr: true\n\
         affiliations:\n{affiliations}\
         signing:\n  default:\n    expiry: 8760h\n  profiles:\n    tls:\n      expiry: 8760h\n\
         crl:\n  expiry: 24h\n\
         db:\n  datasource: ca-db\n\
         cfg:\n  identities:\n    allowremove: false\n  affiliations:\n    allowremove: false\n\
         {operations}",
        address = yaml_string(&options.address),
        port = options.port,
        name = yaml_string(&options.name),
        ca_cert = CA_CERT_FILE,
        ca_key = CA_KEY_FILE,
        tls = options.tls,
        tls_cert = TLS_CERT_FILE,
        tls_key = TLS_KEY_FILE,
        user = yaml_string(user),
        pass = yaml_string(pass),
        operations = operations,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_config_that_loads_with_fabric_ca_defaults() {
        let home = tempfile::tempdir().expect("home");
        let path = init(home.path(), &InitOptions::new("ca-org1", 7054)).expect("init");
        let config = CaConfig::load(&path).expect("loads");
        assert_eq!(config.ca.name, "ca-org1");
        assert_eq!(config.port, 7054);
        assert!(config.tls.enabled);
        assert_eq!(config.registry.identities[0].name, "admin");
        assert_eq!(
            config.registry.identities[0].attrs["hf.Revoker"].to_string(),
            "true"
        );
        assert_eq!(
            affiliation_names(&config.affiliations),
            [
                "org1",
                "org1.department1",
                "org1.department2",
                "org2",
                "org2.department1"
            ]
        );
        assert!(config.ca.certfile.is_absolute());
        let again = init(home.path(), &InitOptions::new("ca-org1", 7054)).expect_err("refused");
        assert!(again.contains("already exists"), "{again}");
    }

    #[test]
    fn nested_affiliations_and_bad_settings() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("ca.yaml");
        std::fs::write(
            &path,
            "port: 1\nca: {name: x, certfile: c, keyfile: k}\n\
             affiliations:\n  a:\n    b: [c]\n    d: ~\n",
        )
        .expect("write");
        let config = CaConfig::load(&path).expect("loads");
        assert_eq!(
            affiliation_names(&config.affiliations),
            ["a", "a.b", "a.b.c", "a.d"]
        );
        std::fs::write(
            &path,
            "port: 1\nca: {name: x, certfile: c, keyfile: k}\nregistry: {maxenrollments: -2}\n",
        )
        .expect("write");
        let error = CaConfig::load(&path).expect_err("refused");
        assert!(error.contains("maxenrollments"), "{error}");
        std::fs::write(
            &path,
            "port: 1\nca: {name: x, certfile: c, keyfile: k}\nsigning: {default: {expiry: soon}}\n",
        )
        .expect("write");
        let error = CaConfig::load(&path).expect_err("refused");
        assert!(error.contains("soon"), "{error}");
    }
}
