//! The client configuration: per organisation its identity, its gateway
//! peer, its channel and chaincodes (with, per function, the organisations
//! that endorse it), retry and timeout settings — the source platform's
//! `blockchain_client.yaml`, in YAML where anchors and merge keys
//! (`<<: *chaincode`) work and top-level `x-…` blocks hold them.
//!
//! ```yaml
//! x-basic: &basic
//!   name: basic
//!   version: "1.0"
//!   functions:
//!     CreateAsset: {orgs: "Org1MSP;Org2MSP"}
//! clients:
//!   Org1:
//!     mspId: Org1MSP
//!     identity: {msp: organizations/.../users/User1@org1.example.com/msp}
//!     gateway: {endpoint: "127.0.0.1:7051", tlsCaCert: organizations/.../tls/ca.crt}
//!     channel: mychannel
//!     chaincodes:
//!       basic: *basic
//!     retry: {attempts: 5, backoff: 50ms, maxBackoff: 2s}
//!     timeout: 30s
//! ```
//!
//! Relative paths are relative to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::SdkError;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientConfig {
    pub clients: BTreeMap<String, OrgConfig>,
}

/// One organisation's client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgConfig {
    pub msp_id: String,
    pub identity: IdentityConfig,
    pub gateway: GatewayConfig,
    pub channel: String,
    #[serde(default)]
    pub chaincodes: BTreeMap<String, ChaincodeConfig>,
    /// The chaincode of `Client::invoke` / `query` (default: the only one).
    #[serde(default)]
    pub default_chaincode: Option<String>,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Deadline of each call to the gateway (Go duration).
    #[serde(default = "thirty_seconds")]
    pub timeout: String,
    /// After a submit whose answer was lost, how long to wait for the
    /// transaction's commit status before sending it again.
    #[serde(default = "ten_seconds")]
    pub commit_check: String,
}

fn thirty_seconds() -> String {
    "30s".into()
}

fn ten_seconds() -> String {
    "10s".into()
}

/// The signing identity: an MSP directory, or a certificate and key file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum IdentityConfig {
    Msp { msp: PathBuf },
    Files { cert: PathBuf, key: PathBuf },
}

/// The organisation's gateway peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    /// `host:port`.
    pub endpoint: String,
    /// The CA of the peer's TLS certificate (PEM).
    pub tls_ca_cert: PathBuf,
}

/// A chaincode and, per function, who endorses it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChaincodeConfig {
    /// Its name on the channel (default: the key it is listed under).
    #[serde(default)]
    pub name: Option<String>,
    /// For the reader; the peer runs whatever version is committed.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionConfig>,
}

/// One function's endorsing organisations (MSP ids), as a list or
/// `"Org1MSP;Org2MSP"`; none lets the gateway follow the chaincode's policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    #[serde(default)]
    pub orgs: Option<Orgs>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Orgs {
    List(Vec<String>),
    Text(String),
}

impl Orgs {
    pub fn list(&self) -> Vec<String> {
        match self {
            Orgs::List(list) => list.clone(),
            Orgs::Text(text) => text
                .split([';', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// MVCC retries: attempts in all, and a jittered exponential back-off.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "five")]
    pub attempts: u32,
    #[serde(default = "fifty_ms")]
    pub backoff: String,
    #[serde(default = "two_seconds")]
    pub max_backoff: String,
}

fn five() -> u32 {
    5
}

fn fifty_ms() -> String {
    "50ms".into()
}

fn two_seconds() -> String {
    "2s".into()
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: five(),
            backoff: fifty_ms(),
            max_backoff: two_seconds(),
        }
    }
}

impl IdentityConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match self {
            IdentityConfig::Msp { msp } => resolve(msp),
            IdentityConfig::Files { cert, key } => {
                resolve(cert);
                resolve(key);
            }
        }
    }
}

impl GatewayConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        if self.tls_ca_cert.is_relative() {
            self.tls_ca_cert = base.join(&self.tls_ca_cert);
        }
    }
}

/// The settings of one organisation, checked and with paths resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub org: OrgConfig,
    pub timeout: Duration,
    pub commit_check: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// A Go duration (`30s`, `250ms`), as Fabric's configuration writes them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    weft_protoutil::parse_duration(text)
}

fn duration(field: &str, text: &str) -> Result<Duration, SdkError> {
    weft_protoutil::parse_duration(text)
        .map_err(|e| SdkError::Config(format!("{field}: {text:?}: {e}")))
}

/// Reads `path` and the settings of organisation `org` in it.
pub fn load(path: &Path, org: &str) -> Result<Settings, SdkError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SdkError::Config(format!("{}: {e}", path.display())))?;
    let fail = |message: String| SdkError::Config(format!("{}: {message}", path.display()));
    let keys: BTreeMap<String, serde::de::IgnoredAny> =
        serde_saphyr::from_str(&text).map_err(|e| fail(e.to_string()))?;
    if let Some(key) = keys
        .keys()
        .find(|k| k.as_str() != "clients" && !k.starts_with("x-"))
    {
        return Err(fail(format!(
            "unknown top-level key {key:?} (expected `clients`, or `x-…` blocks for anchors)"
        )));
    }
    let config: ClientConfig = serde_saphyr::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let mut org_config = config.clients.get(org).cloned().ok_or_else(|| {
        fail(format!(
            "no client {org:?} (clients: {})",
            config
                .clients
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    org_config.identity.resolve(base);
    org_config.gateway.resolve(base);
    if org_config.retry.attempts == 0 {
        return Err(fail(format!(
            "clients.{org}.retry.attempts is 0: use 1 for no retries"
        )));
    }
    if let Some(default) = &org_config.default_chaincode
        && !org_config.chaincodes.contains_key(default)
    {
        return Err(fail(format!(
            "clients.{org}.defaultChaincode {default:?} is not among its chaincodes"
        )));
    }
    let field = |name: &str| format!("clients.{org}.{name}");
    Ok(Settings {
        timeout: duration(&field("timeout"), &org_config.timeout)?,
        commit_check: duration(&field("commitCheck"), &org_config.commit_check)?,
        backoff: duration(&field("retry.backoff"), &org_config.retry.backoff)?,
        max_backoff: duration(&field("retry.maxBackoff"), &org_config.retry.max_backoff)?,
        org: org_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHORED: &str = r#"
x-basic: &basic
  version: "1.0"
  functions:
    CreateAsset: {orgs: "Org1MSP;Org2MSP"}
    TransferAsset: {orgs: [Org1MSP]}
clients:
  Org1:
    mspId: Org1MSP
    identity: {msp: users/User1/msp}
    gateway: {endpoint: "127.0.0.1:7051", tlsCaCert: tls/ca.crt}
    channel: mychannel
    chaincodes:
      basic:
        <<: *basic
        name: basic
    retry: {attempts: 3}
"#;

    #[test]
    fn anchors_merge_keys_and_relative_paths() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("client.yaml");
        std::fs::write(&path, ANCHORED).expect("write");
        let settings = load(&path, "Org1").expect("loads");
        let basic = &settings.org.chaincodes["basic"];
        assert_eq!(basic.version.as_deref(), Some("1.0"));
        assert_eq!(
            basic.functions["CreateAsset"]
                .orgs
                .as_ref()
                .expect("orgs")
                .list(),
            ["Org1MSP", "Org2MSP"]
        );
        assert_eq!(
            basic.functions["TransferAsset"]
                .orgs
                .as_ref()
                .expect("orgs")
                .list(),
            ["Org1MSP"]
        );
        assert_eq!(settings.org.retry.attempts, 3);
        assert_eq!(settings.timeout, Duration::from_secs(30));
        assert!(settings.org.gateway.tls_ca_cert.starts_with(dir.path()));
        let missing = load(&path, "Org9").expect_err("no such org").to_string();
        assert!(
            missing.contains("no client \"Org9\" (clients: Org1)"),
            "{missing}"
        );
        std::fs::write(&path, format!("{ANCHORED}extra: 1\n")).expect("write");
        let unknown = load(&path, "Org1").expect_err("unknown key").to_string();
        assert!(
            unknown.contains("unknown top-level key \"extra\""),
            "{unknown}"
        );
        std::fs::write(
            &path,
            ANCHORED.replace("attempts: 3", "attempts: 3, tries: 2"),
        )
        .expect("write");
        let typo = load(&path, "Org1").expect_err("typo").to_string();
        assert!(typo.contains("tries"), "{typo}");
    }
}
