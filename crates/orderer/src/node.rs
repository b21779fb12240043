//! An orderer node: its configuration file, its channels (each restored from
//! disk at start), and joining/removing channels.
//!
//! On disk, under `data_dir`: one directory per channel holding `chains/`
//! (the block store, block 0 being the channel's genesis block) and `raft/`
//! (the Raft log, vote and snapshot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use weft_channel::ChannelConfig;
use weft_ledger::{BlockStore, BlockStoreConfig};
use weft_material::SigningIdentity;
use weft_protos::common::Block;

use crate::channel::{ChannelRuntime, RaftTiming};
use crate::client::BlockPuller;
use crate::metrics::OrdererMetrics;
use crate::network::Network;
use crate::raft::{Chain, Raft, RaftStore, StateMachine, members};
use weft_node::tls::{Tls, TlsFiles, pem_ders};

/// `orderer.yaml`: where the node listens, its identity and TLS files, where
/// it keeps data. Relative paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdererConfig {
    /// `host:port` for Broadcast, Deliver, the cluster and the admin service.
    pub listen_address: String,
    pub data_dir: PathBuf,
    /// The node's MSP directory (`signcerts/`, `keystore/`): it signs blocks.
    pub msp_dir: PathBuf,
    pub msp_id: String,
    pub tls: TlsFiles,
    #[serde(default)]
    pub raft: RaftTiming,
    /// `adaptive` (default): also cut a block as soon as none waits for
    /// Raft; `timeout`: only at the batch size limits or BatchTimeout, as Fabric.
    #[serde(default)]
    pub block_cutting: crate::channel::Cutting,
    /// Where to dial consenter endpoints that are not reachable as named.
    #[serde(default)]
    pub endpoint_overrides: weft_node::tls::EndpointOverrides,
    /// How far a signed request's timestamp (Deliver seek requests, admin
    /// requests) may be from this node's clock; Fabric's default, 15 min.
    #[serde(default = "default_time_window_s")]
    pub request_time_window_s: u64,
    /// The operations service (`/metrics`, `/healthz`, `/logspec`,
    /// `/version`); none when absent.
    #[serde(default)]
    pub operations: Option<weft_node::operations::OperationsConfig>,
    /// Bounds on the listener: connections, streams, requests in flight.
    #[serde(default)]
    pub listener: weft_node::serve::ListenerLimits,
}

fn default_time_window_s() -> u64 {
    weft_node::REQUEST_TIME_WINDOW.as_secs()
}

impl OrdererConfig {
    pub fn time_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_time_window_s)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut config: OrdererConfig =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.data_dir);
        resolve(&mut config.msp_dir);
        resolve(&mut config.tls.cert);
        resolve(&mut config.tls.key);
        config.tls.root_cas.iter_mut().for_each(resolve);
        if let Some(operations) = &mut config.operations {
            operations.resolve(base);
        }
        Ok(config)
    }
}

/// Why a channel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("channel {0} already exists on this orderer")]
    Exists(String),
    #[error("channel {0} does not exist on this orderer")]
    NotFound(String),
    #[error("bad config block: {0}")]
    BadBlock(String),
    #[error(
        "this orderer is not a consenter of channel {0}: its TLS certificate is not in the consenter set"
    )]
    NotConsenter(String),
    #[error("{0}")]
    Internal(String),
}

pub struct Orderer {
    pub config: OrdererConfig,
    pub tls: Tls,
    /// Who may join, list, inspect and remove channels.
    pub admin: weft_node::AdminAuthority,
    pub signer: Arc<SigningIdentity>,
    own_cert_der: Vec<u8>,
    channels: RwLock<BTreeMap<String, Arc<ChannelRuntime>>>,
    /// Serialises joins and removals.
    admin_lock: tokio::sync::Mutex<()>,
    /// Metrics and health checks, for the operations service.
    pub operations: Arc<weft_node::operations::Operations>,
    pub metrics: Arc<OrdererMetrics>,
    /// Revocation lists of the local MSP, enforced on every channel.
    crls: weft_node::revocation::LocalCrls,
    /// The forwarding streams to other consenters (when they lead).
    pub forwarding: weft_node::streams::OrderedStreams<
        crate::proto::SubmitRequest,
        crate::proto::SubmitResponse,
    >,
}

impl Orderer {
    /// Loads identity and TLS material and resumes every channel on disk.
    pub async fn start(config: OrdererConfig) -> Result<Arc<Self>, String> {
        let tls = Tls::load(&config.tls)?.with_overrides(config.endpoint_overrides.clone());
        let signer =
            SigningIdentity::load(&config.msp_dir, &config.msp_id).map_err(|e| e.to_string())?;
        let admin = weft_node::AdminAuthority::load(
            &config.msp_dir,
            &config.msp_id,
            Arc::new(weft_node::SystemClock),
            config.time_window(),
        )?
        .trusting_tls_clients(tls.client_verifier()?);
        let own_cert_der = pem_ders(&tls.cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", config.tls.cert.display()))?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
        let operations = weft_node::operations::Operations::for_node(
            config.operations.as_ref(),
            &config.data_dir,
            &config.msp_dir,
            &config.tls.cert,
        )?;
        let metrics = OrdererMetrics::register(&operations.metrics);
        let config_msp_dir = config.msp_dir.clone();
        let forwarding = weft_node::streams::OrderedStreams::new(
            tls.clone(),
            Arc::new(|connection, requests| {
                Box::pin(async move {
                    crate::proto::cluster_client::ClusterClient::new(connection)
                        .max_encoding_message_size(crate::service::MAX_GRPC_MESSAGE)
                        .forward(requests)
                        .await
                        .map(tonic::Response::into_inner)
                })
            }),
        );
        let orderer = Arc::new(Self {
            config,
            tls,
            forwarding,
            admin,
            signer: Arc::new(signer),
            own_cert_der,
            channels: RwLock::new(BTreeMap::new()),
            admin_lock: tokio::sync::Mutex::new(()),
            operations,
            metrics,
            crls: weft_node::revocation::LocalCrls::new(&config_msp_dir),
        });
        orderer.crls.reload();
        let weak = Arc::downgrade(&orderer);
        orderer.operations.check(
            "consensus",
            Box::new(move || {
                let Some(orderer) = weak.upgrade() else {
                    return Ok(());
                };
                let leaderless: Vec<String> = orderer
                    .channels()
                    .iter()
                    .filter(|runtime| runtime.leader().is_none())
                    .map(|runtime| runtime.channel_id().to_owned())
                    .collect();
                if leaderless.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "no Raft leader for channel(s) {}",
                        leaderless.join(", ")
                    ))
                }
            }),
        );
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&orderer.config.data_dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().join("chains").is_dir() {
                continue;
            }
            if let Err(e) = weft_protoutil::check_channel_id(&name) {
                tracing::warn!("skipping {}: {e}", entry.path().display());
                continue;
            }
            names.push(name);
        }
        names.sort();
        for name in names {
            let runtime = orderer
                .open_channel(&orderer.config.data_dir.join(&name), None)
                .await
                .map_err(|e| format!("channel {name}: {e}"))?;
            tracing::info!("resumed channel {name} at height {}", runtime.chain.tip().0);
            orderer.insert(runtime);
        }
        tokio::spawn(watch_revocation_lists(Arc::downgrade(&orderer)));
        Ok(orderer)
    }

    fn insert(&self, runtime: Arc<ChannelRuntime>) {
        self.metrics.watch(&runtime);
        self.crls.apply(runtime.channel_id(), &runtime.config.msps);
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(runtime.channel_id().to_owned(), runtime);
    }

    pub fn channel(&self, name: &str) -> Option<Arc<ChannelRuntime>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn channels(&self) -> Vec<Arc<ChannelRuntime>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Joins a channel from its genesis (config) block.
    pub async fn join(&self, block: Block) -> Result<Arc<ChannelRuntime>, NodeError> {
        let _guard = self.admin_lock.lock().await;
        let config =
            ChannelConfig::from_block(&block).map_err(|e| NodeError::BadBlock(e.to_string()))?;
        let number = block.header.as_ref().map(|h| h.number).unwrap_or_default();
        if number != 0 {
            return Err(NodeError::BadBlock(format!(
                "block {number} is not a genesis block; joining from a later config block is not supported yet"
            )));
        }
        let name = config.channel_id.clone();
        if self.channel(&name).is_some() {
            return Err(NodeError::Exists(name));
        }
        self.consenter_id(&config)
            .ok_or_else(|| NodeError::NotConsenter(name.clone()))?;
        // The config's channel id passed Fabric's rule, so it is one plain
        // path component; a directory this node does not serve is never
        // deleted to make room (it may be an operator's).
        let dir = self.config.data_dir.join(&name);
        if dir.exists() {
            return Err(NodeError::Internal(format!(
                "{} exists but is not a channel this orderer serves; move it away to join {name}",
                dir.display()
            )));
        }
        let runtime = match self.open_channel(&dir, Some(&block)).await {
            Ok(runtime) => runtime,
            Err(error) => {
                // Only what this join created goes.
                let _ = std::fs::remove_dir_all(&dir);
                return Err(NodeError::Internal(error));
            }
        };
        // Every consenter initialises with the same membership; openraft
        // refuses a second initialisation harmlessly.
        let _ = runtime
            .raft
            .initialize(members(&runtime.config.consenters))
            .await;
        self.insert(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Leaves a channel: stops its Raft node and deletes its data.
    pub async fn remove(&self, name: &str) -> Result<(), NodeError> {
        let _guard = self.admin_lock.lock().await;
        let runtime = self
            .channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| NodeError::NotFound(name.to_owned()))?;
        runtime.shutdown().await;
        drop(runtime);
        // `name` is a channel this node served, so a valid channel id.
        let dir = self.config.data_dir.join(name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| NodeError::Internal(format!("{}: {e}", dir.display())))
    }

    fn consenter_id(&self, config: &ChannelConfig) -> Option<u64> {
        config
            .consenters
            .iter()
            .find(|c| pem_ders(&c.server_tls_cert).first() == Some(&self.own_cert_der))
            .map(|c| c.id)
    }

    async fn open_channel(
        &self,
        dir: &Path,
        genesis: Option<&Block>,
    ) -> Result<Arc<ChannelRuntime>, String> {
        let chains = dir.join("chains");
        let (mut store, truncation) =
            BlockStore::open(&chains, BlockStoreConfig::default()).map_err(|e| e.to_string())?;
        if let Some(truncation) = truncation {
            tracing::warn!("{}: cut a torn tail: {truncation:?}", chains.display());
        }
        if let Some(genesis) = genesis {
            store.append(genesis).map_err(|e| e.to_string())?;
        }
        let block0 = store
            .block(0)
            .map_err(|e| format!("reading the genesis block: {e}"))?;
        let config = Arc::new(ChannelConfig::from_block(&block0).map_err(|e| e.to_string())?);
        let node_id = self
            .consenter_id(&config)
            .ok_or_else(|| NodeError::NotConsenter(config.channel_id.clone()).to_string())?;
        let chain = Chain::new(store);
        let raft_store = RaftStore::open(&dir.join("raft")).map_err(|e| e.to_string())?;
        let puller = BlockPuller {
            channel_id: config.channel_id.clone(),
            endpoints: config
                .consenters
                .iter()
                .filter(|c| c.id != node_id)
                .map(|c| c.endpoint())
                .collect(),
            tls: self.tls.clone(),
            signer: Arc::clone(&self.signer),
            config: Arc::clone(&config),
        };
        let state_machine =
            StateMachine::new(raft_store.clone(), Arc::clone(&chain), Arc::new(puller));
        let network = Network {
            channel_id: config.channel_id.clone(),
            tls: self.tls.clone(),
        };
        let raft_config = Arc::new(self.config.raft.openraft_config(&config.channel_id)?);
        let raft = Raft::new(
            node_id,
            raft_config,
            network,
            raft_store.clone(),
            state_machine,
        )
        .await
        .map_err(|e| e.to_string())?;
        let block_fill = self.metrics.block_fill(&config.channel_id);
        Ok(Arc::new(ChannelRuntime::new(
            config,
            chain,
            raft,
            raft_store,
            node_id,
            Arc::clone(&self.signer),
            crate::channel::CuttingSetup {
                mode: self.config.block_cutting,
                block_fill,
            },
        )))
    }
}

/// Reads the local MSP's `crls/` again every few seconds and enforces what
/// changed on every channel, for as long as the orderer lives.
async fn watch_revocation_lists(orderer: std::sync::Weak<Orderer>) {
    loop {
        tokio::time::sleep(weft_node::revocation::POLL).await;
        let Some(orderer) = orderer.upgrade() else {
            return;
        };
        let changed = tokio::task::spawn_blocking(move || {
            if orderer.crls.reload().is_some() {
                for runtime in orderer.channels() {
                    orderer
                        .crls
                        .apply(runtime.channel_id(), &runtime.config.msps);
                }
            }
        })
        .await;
        if changed.is_err() {
            return;
        }
    }
}
