//! A peer node: its identity, TLS, channels and chaincodes, and the gRPC
//! listener that serves every service on one TLS port.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use weft_material::SigningIdentity;
use weft_node::admin_body;
use weft_node::proto::admin_server::{Admin, AdminServer};
use weft_node::proto::{
    ChaincodeCredentials, ChannelInfo, ChannelList, RemoveResponse, SignedAdminRequest,
};
use weft_node::tls::Tls;
use weft_protos::common::Block;
use weft_protos::gateway::gateway_server::GatewayServer;
use weft_protos::peer::chaincode_support_server::ChaincodeSupportServer;
use weft_protos::peer::deliver_server::DeliverServer;
use weft_protos::peer::endorser_server::EndorserServer;
use weft_protos::peer::snapshot_server::SnapshotServer;
use weft_shim::Chaincode;

use crate::chaincode::credentials::ChaincodeCredentials as ChaincodeCa;
use crate::chaincode::launcher::{self, Launcher, PeerContact};
use crate::chaincode::{ChaincodeService, ChaincodeSupport};
use crate::channel::{Channels, LedgerSource, PeerChannel};
use crate::config::{LauncherConfig, PeerConfig};
use crate::deliver::DeliverService;
use crate::dissemination::{Distributor, PrivateDataService};
use crate::endorser::{EndorserService, Endorsing};
use crate::gateway::GatewayService;
use crate::metrics::PeerMetrics;
use crate::proto::private_data_server::PrivateDataServer;
use crate::snapshot::SnapshotService;

/// Why a join (by genesis block or snapshot) was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The request itself is wrong: not a genesis block, a bad channel id,
    /// an unreadable snapshot.
    #[error("{0}")]
    BadRequest(String),
    /// The snapshot is where this peer may not read.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Exists(String),
    /// The peer's state does not allow it: not a member, a directory in the way.
    #[error("{0}")]
    Conflict(String),
    /// Opening the ledger failed.
    #[error("{0}")]
    Failed(String),
}

impl JoinError {
    /// The gRPC status the admin service answers with.
    pub fn into_status(self) -> Status {
        match self {
            JoinError::BadRequest(m) => Status::invalid_argument(m),
            JoinError::Forbidden(m) => Status::permission_denied(m),
            JoinError::Exists(m) => Status::already_exists(m),
            JoinError::Conflict(m) => Status::failed_precondition(m),
            JoinError::Failed(m) => Status::failed_precondition(m),
        }
    }
}

/// A running peer: it joins channels and composes the services; each
/// service gets only the parts it needs (the channels, the endorsing
/// context, the private data distributor), never the peer itself.
pub struct Peer {
    config: PeerConfig,
    tls: Tls,
    /// Who may join channels, list them and ask for chaincode credentials.
    admin: Arc<weft_node::AdminAuthority>,
    channels: Arc<Channels>,
    /// Identity, channels, chaincodes and private data, for endorsing.
    endorsing: Arc<Endorsing>,
    /// Metrics and health checks, for the operations service.
    operations: Arc<weft_node::operations::Operations>,
    stop: watch::Sender<bool>,
    join_lock: tokio::sync::Mutex<()>,
    /// Revocation lists of the local MSP, enforced on every channel.
    crls: weft_node::revocation::LocalCrls,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("listen_address", &self.config.listen_address)
            .finish()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Peer {
    /// Loads identity and TLS, re-opens every joined channel and starts
    /// their committers. `builtins` are the contracts linked into the binary.
    pub async fn start(
        config: PeerConfig,
        builtins: &HashMap<String, Arc<dyn Chaincode>>,
    ) -> Result<Arc<Peer>, String> {
        let signer = Arc::new(
            SigningIdentity::load(&config.msp_dir, &config.msp_id)
                .map_err(|e| format!("{}: {e}", config.msp_dir.display()))?,
        );
        let tls = Tls::load(&config.tls)?.with_overrides(config.endpoint_overrides.clone());
        let chaincode_dir = config.data_dir.join("chaincode");
        std::fs::create_dir_all(&chaincode_dir)
            .map_err(|e| format!("{}: {e}", chaincode_dir.display()))?;
        let roots_path = chaincode_dir.join("peer-tls-roots.pem");
        std::fs::write(&roots_path, tls.roots_pem())
            .map_err(|e| format!("{}: {e}", roots_path.display()))?;
        let contact = PeerContact {
            address: config.external_address().to_owned(),
            msp_id: config.msp_id.clone(),
            tls_root_cert: roots_path,
        };
        let admin = Arc::new(
            weft_node::AdminAuthority::load(
                &config.msp_dir,
                &config.msp_id,
                Arc::new(weft_node::SystemClock),
                config.limits.request_time_window,
            )?
            .trusting_tls_clients(tls.client_verifier()?),
        );
        let mut launchers: HashMap<String, Arc<dyn Launcher>> = HashMap::new();
        let mut broken = Vec::new();
        for chaincode in &config.chaincodes {
            let id = chaincode.id().to_owned();
            weft_protoutil::check_package_id(&id)
                .map_err(|e| format!("chaincode {}: {e}", chaincode.name))?;
            let made: Result<Arc<dyn Launcher>, String> = (|| {
                Ok::<Arc<dyn Launcher>, String>(match &chaincode.launcher {
                    LauncherConfig::Builtin(name) => Arc::new(launcher::InProcess {
                        id: id.clone(),
                        chaincode: builtins.get(name).cloned().ok_or_else(|| {
                            let mut known: Vec<_> = builtins.keys().cloned().collect();
                            known.sort();
                            format!(
                                "chaincode {}: no built-in chaincode {name:?} (built in: {})",
                                chaincode.name,
                                known.join(", ")
                            )
                        })?,
                    }),
                    LauncherConfig::Process { command, dir, env } => Arc::new(launcher::Process {
                        id: id.clone(),
                        command: command.clone(),
                        dir: dir.clone(),
                        env: env.clone(),
                        contact: contact.clone(),
                        work_dir: chaincode_dir.join(id.replace(':', "_")),
                        child: Default::default(),
                    }),
                    LauncherConfig::External {
                        address,
                        tls_root_ca,
                    } => Arc::new(launcher::External {
                        id: id.clone(),
                        address: address.clone(),
                        tls_root_ca: tls_root_ca.as_deref().map(read).transpose()?,
                        client_identity: tls.identity(),
                    }),
                    LauncherConfig::Wait => Arc::new(launcher::Wait),
                })
            })();
            // One chaincode's bad config never keeps the peer down: its
            // transactions fail with the reason, `/healthz` reports it.
            let launcher = made.unwrap_or_else(|reason| {
                tracing::error!("chaincode {}: {reason}; its transactions fail until the peer's config is fixed", chaincode.name);
                broken.push((id.clone(), reason.clone()));
                Arc::new(launcher::Broken { reason })
            });
            launchers.insert(id, launcher);
        }
        let operations = weft_node::operations::Operations::for_node(
            config.operations.as_ref(),
            &config.data_dir,
            &config.msp_dir,
            &config.tls.cert,
        )?;
        let chaincodes = ChaincodeSupport::new(
            config.chaincodes.clone(),
            launchers,
            config.limits.clone(),
            ChaincodeCa::new(config.external_address())?,
            crate::metrics::ChaincodeMetrics::register(&operations.metrics),
        );
        let private = Arc::new(Distributor::new(
            config.msp_id.clone(),
            config.gateway_peers.clone(),
            Arc::clone(&signer),
            tls.clone(),
        ));
        let channels = Arc::new(Channels::default());
        let metrics = PeerMetrics::register(&operations.metrics);
        operations
            .metrics
            .collect(crate::metrics::signature_cache_collector(Arc::clone(
                &channels,
            )));
        for (id, reason) in &broken {
            chaincodes.mark_unreachable(id, reason);
        }
        let packages = Arc::new(crate::install::Packages::open(
            &config.data_dir,
            crate::install::LaunchContext {
                contact: contact.clone(),
                tls_identity: tls.identity(),
                chaincode_dir: chaincode_dir.clone(),
            },
            &chaincodes,
        )?);
        let support = Arc::clone(&chaincodes);
        operations.check("chaincode", Box::new(move || support.health()));
        let endorsing = Arc::new(Endorsing {
            msp_id: config.msp_id.clone(),
            signer,
            channels: Arc::clone(&channels),
            chaincodes,
            private,
            metrics,
            packages,
            admin: Arc::clone(&admin),
        });
        let peer = Arc::new(Peer {
            tls,
            admin,
            channels,
            endorsing,
            operations,
            stop: watch::channel(false).0,
            join_lock: tokio::sync::Mutex::new(()),
            crls: weft_node::revocation::LocalCrls::new(&config.msp_dir),
            config,
        });
        peer.crls.reload();
        let ledgers = peer.config.data_dir.join("ledgers");
        std::fs::create_dir_all(&ledgers).map_err(|e| format!("{}: {e}", ledgers.display()))?;
        let mut dirs: Vec<_> = std::fs::read_dir(&ledgers)
            .map_err(|e| format!("{}: {e}", ledgers.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name.strip_suffix(".importing").unwrap_or(&name);
            if let Err(e) = weft_protoutil::check_channel_id(stem) {
                tracing::warn!("skipping {}: {e}", dir.display());
                continue;
            }
            if dir.extension().is_some_and(|e| e == "importing") {
                // A join by snapshot interrupted before its ledger was complete.
                tracing::warn!("removing {}: an interrupted snapshot import", dir.display());
                std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                continue;
            }
            let chaincodes: Vec<_> = peer.config.chaincodes.iter().collect();
            let channel = tokio::task::block_in_place(|| {
                PeerChannel::open(
                    &dir,
                    LedgerSource::Existing,
                    &peer.config.msp_id,
                    &chaincodes,
                    &peer.snapshot_dir(),
                )
            })?;
            tracing::info!(
                "channel {}: opened at height {}",
                channel.id,
                *channel.height.borrow()
            );
            peer.activate(Arc::new(channel));
        }
        tokio::spawn(Arc::clone(&peer).watch_revocation_lists());
        Ok(peer)
    }

    /// Reads the local MSP's `crls/` again every few seconds and enforces
    /// what changed on every channel.
    async fn watch_revocation_lists(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(weft_node::revocation::POLL) => {}
                _ = stop.changed() => return,
            }
            let peer = Arc::clone(&self);
            let changed = tokio::task::spawn_blocking(move || {
                if peer.crls.reload().is_some() {
                    for channel in peer.channels() {
                        peer.crls.apply(&channel.id, &channel.config.msps);
                    }
                }
            })
            .await;
            if changed.is_err() {
                return;
            }
        }
    }

    fn activate(&self, channel: Arc<PeerChannel>) {
        self.crls.apply(&channel.id, &channel.config.msps);
        self.channels.insert(Arc::clone(&channel));
        tokio::spawn(channel.run_committer(
            self.tls.clone(),
            Arc::clone(&self.endorsing.signer),
            Arc::clone(&self.endorsing.private),
            Arc::clone(&self.endorsing.metrics),
            self.stop.subscribe(),
        ));
    }

    pub fn channel(&self, id: &str) -> Option<Arc<PeerChannel>> {
        self.channels.get(id)
    }

    pub fn channels(&self) -> Vec<Arc<PeerChannel>> {
        self.channels.all()
    }

    /// What the operations service serves for this peer.
    pub fn operations(&self) -> Arc<weft_node::operations::Operations> {
        Arc::clone(&self.operations)
    }

    /// Where snapshots are kept: `<data_dir>/snapshots`.
    pub fn snapshot_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("snapshots")
    }

    /// Joins the channel whose genesis block this is.
    pub async fn join(self: &Arc<Self>, genesis: Block) -> Result<Arc<PeerChannel>, JoinError> {
        if genesis.header.as_ref().map_or(0, |h| h.number) != 0 {
            return Err(JoinError::BadRequest(
                "joining needs the channel's genesis block (block 0)".into(),
            ));
        }
        let (channel_id, _) = weft_channel::config_envelope(&genesis)
            .map_err(|e| JoinError::BadRequest(format!("genesis block: {e}")))?;
        self.join_from(&channel_id, LedgerSource::Genesis(genesis))
            .await
    }

    /// Joins a channel from a snapshot directory on this peer's file system
    /// (Fabric's `peer channel joinbysnapshot`): the ledger starts at the
    /// snapshot's height and the committer pulls the blocks after it.
    pub async fn join_by_snapshot(
        self: &Arc<Self>,
        snapshot: &std::path::Path,
    ) -> Result<Arc<PeerChannel>, JoinError> {
        let snapshot = &self.importable_snapshot(snapshot)?;
        let metadata = weft_ledger::SnapshotMetadata::read(snapshot)
            .map_err(|e| JoinError::BadRequest(e.to_string()))?;
        self.join_from(
            &metadata.channel_id,
            LedgerSource::Snapshot(snapshot.to_path_buf()),
        )
        .await
    }

    /// `path` if it is a directory under this peer's snapshot area or its
    /// configured import directory (after resolving links), else a refusal:
    /// a join request must not make the peer read any file it can reach.
    fn importable_snapshot(&self, path: &std::path::Path) -> Result<std::path::PathBuf, JoinError> {
        let resolved = std::fs::canonicalize(path)
            .map_err(|e| JoinError::BadRequest(format!("snapshot {}: {e}", path.display())))?;
        let mut areas = vec![self.snapshot_dir()];
        areas.extend(self.config.snapshot_import_dir.clone());
        let allowed = areas
            .iter()
            .any(|area| std::fs::canonicalize(area).is_ok_and(|area| resolved.starts_with(area)));
        if !allowed {
            return Err(JoinError::Forbidden(format!(
                "snapshot {} is outside this peer's snapshot area ({}){}; copy it there first",
                path.display(),
                self.snapshot_dir().display(),
                self.config
                    .snapshot_import_dir
                    .as_ref()
                    .map(|d| format!(" and its import directory ({})", d.display()))
                    .unwrap_or_default()
            )));
        }
        Ok(resolved)
    }

    async fn join_from(
        self: &Arc<Self>,
        channel_id: &str,
        source: LedgerSource,
    ) -> Result<Arc<PeerChannel>, JoinError> {
        let _joining = self.join_lock.lock().await;
        if self.channel(channel_id).is_some() {
            return Err(JoinError::Exists(format!(
                "this peer has already joined channel {channel_id}"
            )));
        }
        // Config blocks are checked when parsed, snapshot metadata is not:
        // the id must be one plain path component. A directory this peer
        // does not serve is never replaced or deleted.
        weft_protoutil::check_channel_id(channel_id)
            .map_err(|e| JoinError::BadRequest(e.to_string()))?;
        let dir = self.config.data_dir.join("ledgers").join(channel_id);
        if dir.exists() {
            return Err(JoinError::Conflict(format!(
                "{} exists but is not a channel this peer serves; move it away to join {channel_id}",
                dir.display()
            )));
        }
        let chaincodes: Vec<_> = self.config.chaincodes.iter().collect();
        let opened = tokio::task::block_in_place(|| {
            PeerChannel::open(
                &dir,
                source,
                &self.config.msp_id,
                &chaincodes,
                &self.snapshot_dir(),
            )
        })
        .map_err(JoinError::Failed)
        .and_then(|channel| {
            self.check_member(channel_id, &channel.config)?;
            Ok(channel)
        });
        let channel = match opened {
            Ok(channel) => Arc::new(channel),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(error);
            }
        };
        self.activate(Arc::clone(&channel));
        Ok(channel)
    }

    fn check_member(
        &self,
        channel_id: &str,
        config: &weft_channel::ChannelConfig,
    ) -> Result<(), JoinError> {
        if config.application_orgs.contains(&self.config.msp_id) {
            return Ok(());
        }
        Err(JoinError::Conflict(format!(
            "{} is not an organisation of channel {channel_id} (members: {})",
            self.config.msp_id,
            config.application_orgs.join(", ")
        )))
    }

    /// Stops committers.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// The `weft.admin.Admin` service: joining and listing channels, chaincode
/// credentials; the one service that holds the peer itself.
#[derive(Clone)]
struct AdminService {
    peer: Arc<Peer>,
}

fn info(channel: &PeerChannel) -> ChannelInfo {
    ChannelInfo {
        name: channel.id.clone(),
        height: *channel.height.borrow(),
        status: "active".into(),
        consensus_relation: "peer".into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn join(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<ChannelInfo>, Status> {
        let authorized = self.peer.admin.authorize("join", &request)?;
        let subject = authorized.admin.subject().to_owned();
        let join = admin_body!(authorized, Join)?;
        let joined = if join.snapshot_path.is_empty() {
            let block = Block::decode(join.config_block.as_slice())
                .map_err(|e| Status::invalid_argument(format!("config block: {e}")))?;
            self.peer.join(block).await
        } else {
            self.peer
                .join_by_snapshot(std::path::Path::new(&join.snapshot_path))
                .await
        };
        let channel = joined.map_err(JoinError::into_status)?;
        tracing::info!(
            "channel {}: joined at height {} (admin {subject})",
            channel.id,
            *channel.height.borrow()
        );
        Ok(Response::new(info(&channel)))
    }

    async fn list(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<ChannelList>, Status> {
        let authorized = self.peer.admin.authorize("list", &request)?;
        admin_body!(authorized, List)?;
        Ok(Response::new(ChannelList {
            channels: self.peer.channels().iter().map(|c| info(c)).collect(),
        }))
    }

    async fn info(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<ChannelInfo>, Status> {
        let authorized = self.peer.admin.authorize("info", &request)?;
        let name = admin_body!(authorized, Info)?.channel;
        let channel = self
            .peer
            .channel(&name)
            .ok_or_else(|| Status::not_found(format!("channel {name} not found on this peer")))?;
        Ok(Response::new(info(&channel)))
    }

    async fn remove(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        self.peer.admin.authorize("remove", &request)?;
        Err(Status::unimplemented("a peer cannot leave a channel"))
    }

    async fn chaincode_credentials(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<ChaincodeCredentials>, Status> {
        let authorized = self
            .peer
            .admin
            .authorize("chaincode credentials", &request)?;
        let subject = authorized.admin.subject().to_owned();
        let package_id = admin_body!(authorized, ChaincodeCredentials)?.package_id;
        let chaincodes = &self.peer.endorsing.chaincodes;
        if !chaincodes.is_installed(&package_id) {
            return Err(Status::not_found(format!(
                "chaincode package {package_id:?} is not installed on this peer"
            )));
        }
        let issued = chaincodes
            .credentials
            .issue(&package_id)
            .map_err(Status::internal)?;
        let roots = self.peer.tls.roots_pem().to_vec();
        tracing::info!("issued chaincode credentials for {package_id} to admin {subject}");
        Ok(Response::new(ChaincodeCredentials {
            client_cert_pem: issued.cert_pem.into_bytes(),
            client_key_pem: issued.key_pem.into_bytes(),
            peer_root_cert_pem: roots,
            peer_address: self.peer.config.external_address().to_owned(),
        }))
    }
}

/// Serves every peer service on `listener` (bound by the caller to the
/// peer's listen address, or to port 0 in tests) until `shutdown` resolves.
pub async fn serve(
    peer: Arc<Peer>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let limits = peer.config.listener.clone();
    let window = peer.config.limits.request_time_window;
    let max = crate::MAX_GRPC_MESSAGE;
    let chaincodes = &peer.endorsing.chaincodes;
    // Any client certificate at the handshake: chaincodes are bound to the
    // exact certificate this peer issued them, admins checked by the admin
    // service, Fabric SDKs' self-signed certificates ignored.
    let tls = peer.tls.server()?;
    let mut builder = weft_node::serve::server(&limits, &peer.operations.metrics)?
        .concurrency_limit_per_connection(peer.config.limits.concurrent_requests)
        .max_concurrent_streams(
            u32::try_from(peer.config.limits.concurrent_requests)
                .unwrap_or(u32::MAX)
                .min(limits.streams_per_connection_max),
        );
    let gateway = GatewayService::new(
        Arc::clone(&peer.endorsing),
        peer.tls.clone(),
        peer.config.external_address().to_owned(),
        peer.config.gateway_peers.clone(),
        peer.config.limits.commit_status_timeout,
    );
    let router = builder
        .add_service(
            GatewayServer::new(gateway)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            EndorserServer::new(EndorserService(Arc::clone(&peer.endorsing)))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            DeliverServer::new(DeliverService {
                channels: Arc::clone(&peer.channels),
                window,
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            ChaincodeSupportServer::new(ChaincodeService(Arc::clone(chaincodes)))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(SnapshotServer::new(SnapshotService {
            channels: Arc::clone(&peer.channels),
            msp_id: peer.config.msp_id.clone(),
        }))
        .add_service(
            PrivateDataServer::new(PrivateDataService {
                channels: Arc::clone(&peer.channels),
                private: Arc::clone(&peer.endorsing.private),
                window,
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            AdminServer::new(AdminService {
                peer: Arc::clone(&peer),
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            weft_protos::discovery::discovery_server::DiscoveryServer::new(
                crate::discovery::DiscoveryService::new(
                    Arc::clone(&peer.channels),
                    Arc::clone(&peer.endorsing.signer),
                    Arc::clone(&peer.admin),
                    peer.tls.clone(),
                    peer.config.external_address(),
                    &peer.config.gateway_peers,
                ),
            )
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        );
    weft_node::serve::run(router, listener, &limits, tls, shutdown).await
}
