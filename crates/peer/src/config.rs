//! The peer's configuration file (`weft peer start --config peer.yaml`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use weft_node::tls::{EndpointOverrides, TlsFiles};

/// A peer node's settings. Relative paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// `host:port` of every service: Gateway, Endorser, Deliver,
    /// ChaincodeSupport (classic chaincode dials in here) and channel admin.
    pub listen_address: String,
    /// The address other nodes and chaincode processes use to reach this
    /// peer (defaults to `listen_address`).
    #[serde(default)]
    pub external_address: Option<String>,
    pub data_dir: PathBuf,
    /// The peer's MSP directory: it signs endorsements.
    pub msp_dir: PathBuf,
    pub msp_id: String,
    pub tls: TlsFiles,
    /// The other peers of this peer's channels: the gateway asks those of
    /// other organisations for endorsements; private data goes to and comes
    /// from those of a collection's member organisations.
    #[serde(default)]
    pub gateway_peers: Vec<GatewayPeer>,
    /// Chaincodes installed on this peer (the packages approvals name).
    #[serde(default)]
    pub chaincodes: Vec<ChaincodeConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// Where to dial endpoints that are not reachable as named.
    #[serde(default)]
    pub endpoint_overrides: EndpointOverrides,
    /// A directory besides `<data_dir>/snapshots` that `joinbysnapshot`
    /// may read snapshots from (where an operator copies them in).
    #[serde(default)]
    pub snapshot_import_dir: Option<PathBuf>,
    /// The operations service (`/metrics`, `/healthz`, `/logspec`,
    /// `/version`); none when absent.
    #[serde(default)]
    pub operations: Option<weft_node::operations::OperationsConfig>,
    /// Bounds on the listener: connections, streams, requests in flight.
    #[serde(default)]
    pub listener: weft_node::serve::ListenerLimits,
}

/// Another organisation's peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayPeer {
    pub msp_id: String,
    pub address: String,
    /// Its enrolment certificate (PEM), which the discovery service reports.
    #[serde(default)]
    pub identity: Option<PathBuf>,
}

/// A chaincode installed on the peer: how the peer reaches its code. What
/// runs on a channel, and under which endorsement policy, is the channel's
/// committed definition (`_lifecycle`), which names the package id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaincodeConfig {
    /// The chaincode's name (its label, and the namespace its indexes go in).
    pub name: String,
    /// The package id: what an organisation's approval names, and what the
    /// chaincode registers with (`CORE_CHAINCODE_ID_NAME` /
    /// `--chaincode-id`); defaults to the name.
    #[serde(default)]
    pub id: Option<String>,
    /// JSON index definitions (Fabric's `META-INF/statedb/couchdb/indexes`).
    #[serde(default)]
    pub indexes: Vec<PathBuf>,
    pub launcher: LauncherConfig,
}

impl ChaincodeConfig {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// How the chaincode runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LauncherConfig {
    /// A Rust contract linked into the `weft` binary.
    Builtin(String),
    /// A local process the peer starts; it dials back (classic mode). It
    /// gets Fabric's `CORE_*` environment; `{peer_address}` and
    /// `{chaincode_id}` in the command's arguments are filled in.
    Process {
        command: Vec<String>,
        #[serde(default)]
        dir: Option<PathBuf>,
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    },
    /// Chaincode-as-a-service: the peer dials the chaincode's server.
    External {
        address: String,
        /// CA certificate of the chaincode server's TLS certificate (plain
        /// TCP when absent).
        #[serde(default)]
        tls_root_ca: Option<PathBuf>,
    },
    /// The user starts the chaincode and it dials the peer (dev mode).
    Wait,
}

/// Bounds on work in flight and on waiting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent gRPC requests per connection.
    pub concurrent_requests: usize,
    /// The longest one chaincode execution may take.
    #[serde(with = "weft_node::duration")]
    pub execute_timeout: Duration,
    /// How long a launched chaincode has to register.
    #[serde(with = "weft_node::duration")]
    pub startup_timeout: Duration,
    /// How far a signed request's timestamp (Deliver seek requests, admin
    /// requests) may be from this peer's clock; Fabric's default, 15 min.
    #[serde(with = "weft_node::duration")]
    pub request_time_window: Duration,
    /// The longest a gateway CommitStatus call waits for its transaction
    /// (a client's shorter deadline wins).
    #[serde(with = "weft_node::duration")]
    pub commit_status_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrent_requests: 2048,
            execute_timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(60),
            request_time_window: weft_node::REQUEST_TIME_WINDOW,
            commit_status_timeout: Duration::from_secs(5 * 60),
        }
    }
}

impl PeerConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut config: PeerConfig =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        config.resolve(&base);
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.msp_dir);
        if let Some(dir) = &mut self.snapshot_import_dir {
            resolve(dir);
        }
        for peer in &mut self.gateway_peers {
            if let Some(identity) = &mut peer.identity {
                resolve(identity);
            }
        }
        resolve(&mut self.tls.cert);
        resolve(&mut self.tls.key);
        self.tls.root_cas.iter_mut().for_each(resolve);
        if let Some(operations) = &mut self.operations {
            operations.resolve(base);
        }
        for chaincode in &mut self.chaincodes {
            chaincode.indexes.iter_mut().for_each(resolve);
            match &mut chaincode.launcher {
                LauncherConfig::Process { dir: Some(dir), .. } => resolve(dir),
                LauncherConfig::External {
                    tls_root_ca: Some(ca),
                    ..
                } => resolve(ca),
                _ => {}
            }
        }
    }

    pub fn external_address(&self) -> &str {
        self.external_address
            .as_deref()
            .unwrap_or(&self.listen_address)
    }
}
