//! Chaincode support: the peer side of Fabric's chaincode protocol.
//!
//! Every chaincode, however it runs, is one message stream to the peer
//! (`protos.ChaincodeMessage`): classic chaincode dials
//! `ChaincodeSupport/Register`, chaincode-as-a-service is dialled at
//! `Chaincode/Connect`, and built-in contracts are linked in and talk over
//! an in-memory channel. [`ChaincodeSupport::serve_stream`] takes any of
//! them through the handshake and then routes messages by (channel, tx id),
//! so many transactions share one stream. A [`launcher::Launcher`] makes a
//! chaincode connect when the peer needs it.
//!
//! Every stream is bound to one package id before it may register: a
//! classic chaincode by the TLS client certificate the peer issued it
//! ([`credentials`]), a built-in or chaincode-as-a-service one by the
//! launcher that opened it. A registration for another package, or for a
//! package whose chaincode is connected, is refused.

pub mod credentials;
pub mod handler;
pub mod launcher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status, Streaming};
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::chaincode_support_server::ChaincodeSupport as ChaincodeSupportRpc;
use weft_protos::peer::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, Response, SignedProposal,
};

use crate::config::{ChaincodeConfig, Limits};
use crate::lifecycle::Definitions;
use crate::simulator::Simulator;
pub use handler::Handler;
pub use launcher::Launcher;

/// Why an execution produced no chaincode response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("chaincode {0} is not defined on this channel")]
    Unknown(String),
    #[error("chaincode {name} is defined on the channel but cannot run on this peer: {reason}")]
    NotInstalled { name: String, reason: String },
    #[error("chaincode {name} could not be started: {reason}")]
    Launch { name: String, reason: String },
    #[error("chaincode {name} did not register within {seconds} s")]
    NotRegistered { name: String, seconds: u64 },
    #[error("chaincode {name} terminated during transaction {tx_id}")]
    Terminated { name: String, tx_id: String },
    #[error("chaincode {name} did not complete transaction {tx_id} within {seconds} s")]
    Timeout {
        name: String,
        tx_id: String,
        seconds: u64,
    },
    #[error("transaction {tx_id} is already executing in chaincode {name}")]
    Duplicate { name: String, tx_id: String },
    /// The chaincode answered ERROR (the shim failed the transaction).
    #[error("chaincode {name} failed: {message}")]
    Failed { name: String, message: String },
    #[error("chaincode {name}: {reason}")]
    Protocol { name: String, reason: String },
}

/// A chaincode's answer to one transaction.
#[derive(Debug, Clone)]
pub struct Executed {
    pub response: Response,
    pub event: Option<ChaincodeEvent>,
}

/// What an execution is about.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub channel_id: String,
    pub tx_id: String,
    pub input: ChaincodeInput,
    pub proposal: Option<SignedProposal>,
    pub init: bool,
    /// The channel's chaincode definitions when the transaction started
    /// (chaincode-to-chaincode calls resolve through them).
    pub definitions: Arc<Definitions>,
    /// The MSP id of the proposal's creator (private data access checks).
    pub creator_msp: String,
}

/// The chaincodes installed on a peer (by package id), their connected
/// streams and launchers.
pub struct ChaincodeSupport {
    /// By package id: from the peer's config at start, and from install
    /// packages (at start, and installed while the peer runs).
    installed: std::sync::RwLock<HashMap<String, Arc<Installed>>>,
    handlers: Mutex<HashMap<String, Arc<Handler>>>,
    /// Package ids whose registration is between REGISTER and READY.
    handshaking: Mutex<std::collections::HashSet<String>>,
    registrations: watch::Sender<u64>,
    /// Why the last attempt to reach a package failed (launch error or no
    /// registration in time), until it registers: the peer's health.
    unreachable: Mutex<HashMap<String, String>>,
    pub metrics: Arc<crate::metrics::ChaincodeMetrics>,
    pub limits: Limits,
    /// The chaincode CA: classic chaincodes' TLS client certificates.
    pub credentials: credentials::ChaincodeCredentials,
}

/// One installed package.
struct Installed {
    /// The chaincode's name in the peer's config, or the package's label:
    /// what logs call it.
    name: String,
    /// None: the chaincode connects by itself (tests).
    launcher: Option<Arc<dyn Launcher>>,
    /// Held while launching, so one transaction launches and the others wait.
    launching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ChaincodeSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeSupport")
            .field("installed", &self.installed_ids())
            .finish()
    }
}

impl ChaincodeSupport {
    pub fn new(
        installed: Vec<ChaincodeConfig>,
        launchers: HashMap<String, Arc<dyn Launcher>>,
        limits: Limits,
        credentials: credentials::ChaincodeCredentials,
        metrics: Arc<crate::metrics::ChaincodeMetrics>,
    ) -> Arc<Self> {
        let mut launchers = launchers;
        let installed = installed
            .into_iter()
            .map(|config| {
                let id = config.id().to_owned();
                let entry = Installed {
                    name: config.name,
                    launcher: launchers.remove(&id),
                    launching: tokio::sync::Mutex::new(()),
                };
                (id, Arc::new(entry))
            })
            .collect();
        Arc::new(ChaincodeSupport {
            installed: std::sync::RwLock::new(installed),
            handlers: Mutex::default(),
            handshaking: Mutex::default(),
            registrations: watch::channel(0).0,
            unreachable: Mutex::default(),
            metrics,
            limits,
            credentials,
        })
    }

    /// The installed package ids, in order.
    pub fn installed_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.installed_map().keys().cloned().collect();
        ids.sort();
        ids
    }

    fn installed_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Installed>>> {
        self.installed.read().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, id: &str) -> Option<Arc<Installed>> {
        self.installed_map().get(id).cloned()
    }

    /// Installs package `id` (chaincode `name`) while the peer runs; Err if
    /// a package with that id is installed already.
    pub fn install(&self, id: &str, name: &str, launcher: Arc<dyn Launcher>) -> Result<(), String> {
        let mut installed = self.installed.write().unwrap_or_else(|p| p.into_inner());
        if installed.contains_key(id) {
            return Err(format!(
                "chaincode already successfully installed (package ID '{id}')"
            ));
        }
        installed.insert(
            id.to_owned(),
            Arc::new(Installed {
                name: name.to_owned(),
                launcher: Some(launcher),
                launching: tokio::sync::Mutex::new(()),
            }),
        );
        Ok(())
    }

    fn handlers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Handler>>> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handshaking(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.handshaking.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected(&self, id: &str) -> Option<Arc<Handler>> {
        self.handlers().get(id).filter(|h| h.is_open()).cloned()
    }

    /// Reports package `id` unreachable for `reason` until it registers
    /// (`/healthz` fails with component `chaincode`).
    pub fn mark_unreachable(&self, id: &str, reason: &str) {
        self.unreachable().insert(id.to_owned(), reason.to_owned());
    }

    fn unreachable(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `chaincode` health check: Err naming each installed chaincode
    /// whose last launch failed or that did not register in time (and has
    /// not registered since).
    pub fn health(&self) -> Result<(), String> {
        let unreachable = self.unreachable();
        if unreachable.is_empty() {
            return Ok(());
        }
        let mut reasons: Vec<String> = unreachable
            .iter()
            .map(|(id, reason)| format!("{id}: {reason}"))
            .collect();
        reasons.sort();
        Err(format!("chaincode unreachable: {}", reasons.join("; ")))
    }

    /// The connected stream of package `id` (chaincode `name`), launching
    /// it if needed.
    async fn handler(self: &Arc<Self>, name: &str, id: &str) -> Result<Arc<Handler>, ExecError> {
        if let Some(handler) = self.connected(id) {
            return Ok(handler);
        }
        let installed = self.entry(id).ok_or_else(|| ExecError::NotInstalled {
            name: name.to_owned(),
            reason: format!("package {id} is not installed on this peer"),
        })?;
        let _launching = installed.launching.lock().await;
        // Subscribed before the check, so a registration after it wakes the wait.
        let registrations = self.registrations.subscribe();
        // Calls that waited while another launched it use its stream; as in
        // Fabric, only the call that launches counts as a launch.
        if let Some(handler) = self.connected(id) {
            return Ok(handler);
        }
        let started = std::time::Instant::now();
        let reached = self.launch(name, id, &installed, registrations).await;
        match &reached {
            Err(error @ (ExecError::Launch { .. } | ExecError::NotRegistered { .. })) => {
                self.unreachable().insert(id.to_owned(), error.to_string());
                self.metrics.launched(name, false, started);
            }
            Ok(_) => self.metrics.launched(name, true, started),
            Err(_) => {}
        }
        reached
    }

    /// Starts (or dials) package `id` and waits until its stream registers
    /// (`registrations` wakes the wait).
    async fn launch(
        self: &Arc<Self>,
        name: &str,
        id: &str,
        installed: &Installed,
        mut registrations: watch::Receiver<u64>,
    ) -> Result<Arc<Handler>, ExecError> {
        let launcher = installed.launcher.as_ref();
        if let Some(launcher) = launcher {
            launcher
                .launch(Arc::clone(self))
                .await
                .map_err(|reason| ExecError::Launch {
                    name: name.to_owned(),
                    reason,
                })?;
        }
        let timeout = self.limits.startup_timeout;
        let wait = async {
            loop {
                if let Some(handler) = self.connected(id) {
                    return Ok(handler);
                }
                if let Some(reason) = launcher.and_then(|l| l.gone()) {
                    return Err(ExecError::Launch {
                        name: name.to_owned(),
                        reason,
                    });
                }
                // Registrations wake the wait; a process exit is polled.
                let poll = std::time::Duration::from_millis(100);
                if let Ok(Err(_)) = tokio::time::timeout(poll, registrations.changed()).await {
                    tokio::time::sleep(poll).await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ExecError::NotRegistered {
                name: name.to_owned(),
                seconds: timeout.as_secs(),
            })?
    }

    /// Whether package `id` is installed here.
    pub fn is_installed(&self, id: &str) -> bool {
        self.installed_map().contains_key(id)
    }

    /// Takes a chaincode's stream through REGISTER → REGISTERED → READY and
    /// serves it until it closes. `out` carries messages to the chaincode;
    /// `bound` is the package id the stream was authenticated as, the only
    /// one it may register.
    pub async fn serve_stream(
        self: Arc<Self>,
        out: mpsc::Sender<ChaincodeMessage>,
        mut incoming: mpsc::Receiver<ChaincodeMessage>,
        bound: String,
    ) -> Result<(), String> {
        let first = tokio::time::timeout(Duration::from_secs(30), incoming.recv())
            .await
            .map_err(|_| "no REGISTER within 30 s".to_owned())?
            .ok_or("stream closed before REGISTER")?;
        let refuse = |reason: String| {
            let out = out.clone();
            async move {
                let _ = out
                    .send(ChaincodeMessage {
                        r#type: Type::Error as i32,
                        payload: reason.clone().into_bytes(),
                        ..Default::default()
                    })
                    .await;
                Err::<(), String>(reason)
            }
        };
        if first.r#type != Type::Register as i32 {
            return refuse(format!(
                "expected REGISTER first, got message type {}",
                first.r#type
            ))
            .await;
        }
        let Ok(chaincode_id) = ChaincodeId::decode(first.payload.as_slice()) else {
            return refuse("REGISTER payload is not a ChaincodeID".into()).await;
        };
        let id = chaincode_id.name;
        if id != bound {
            return refuse(format!(
                "chaincode {bound:?} may not register as {id:?}: its credentials were issued for {bound:?}"
            ))
            .await;
        }
        let Some(installed) = self.entry(&id) else {
            return refuse(format!("chaincode id {id:?} is not installed on this peer")).await;
        };
        // Checked and claimed under one lock: of two racing registrations,
        // exactly one wins; transactions see the stream only after READY.
        let claimed = {
            let handlers = self.handlers();
            let mut handshaking = self.handshaking();
            !handlers.get(&id).is_some_and(|h| h.is_open()) && handshaking.insert(id.clone())
        };
        if !claimed {
            return refuse(format!(
                "chaincode {id:?} is already registered on a live stream; a second registration never replaces it"
            ))
            .await;
        }
        let mut handshake = Ok(());
        for kind in [Type::Registered, Type::Ready] {
            let message = ChaincodeMessage {
                r#type: kind as i32,
                ..Default::default()
            };
            if out.send(message).await.is_err() {
                handshake = Err("stream closed during the handshake".to_owned());
                break;
            }
        }
        let handler = Arc::new(Handler::new(installed.name.clone(), out));
        {
            let mut handlers = self.handlers();
            self.handshaking().remove(&id);
            if handshake.is_ok() {
                handlers.insert(id.clone(), Arc::clone(&handler));
                self.unreachable().remove(&id);
            }
        }
        handshake?;
        self.registrations
            .send_modify(|generation| *generation += 1);
        tracing::info!("chaincode {} registered as {id}", installed.name);
        while let Some(message) = incoming.recv().await {
            handler.route(message).await;
        }
        handler.close();
        self.release(&id, &handler);
        tracing::info!("chaincode {} ({id}) disconnected", installed.name);
        Ok(())
    }

    /// Registers the linked-in contract `chaincode` as package `id`, called
    /// directly (no stream, no handshake: it is part of the peer).
    pub fn register_in_process(
        &self,
        id: &str,
        chaincode: Arc<dyn weft_shim::Chaincode>,
    ) -> Result<(), String> {
        let installed = self
            .entry(id)
            .ok_or_else(|| format!("chaincode id {id:?} is not installed on this peer"))?;
        {
            let mut handlers = self.handlers();
            if handlers.get(id).is_some_and(|h| h.is_open()) {
                return Ok(());
            }
            let handler = Handler::in_process(installed.name.clone(), chaincode);
            handlers.insert(id.to_owned(), Arc::new(handler));
            self.unreachable().remove(id);
        }
        self.registrations
            .send_modify(|generation| *generation += 1);
        tracing::info!("chaincode {} registered as {id}", installed.name);
        Ok(())
    }

    /// Forgets `handler` as package `id`'s stream, if it still is.
    fn release(&self, id: &str, handler: &Arc<Handler>) {
        let mut handlers = self.handlers();
        if handlers.get(id).is_some_and(|h| Arc::ptr_eq(h, handler)) {
            handlers.remove(id);
        }
    }

    /// Runs one transaction of chaincode `name`, as defined on the
    /// invocation's channel, against `simulator`.
    pub fn execute<'a>(
        self: &'a Arc<Self>,
        name: &'a str,
        invocation: Invocation,
        simulator: &'a mut Simulator,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Executed, ExecError>> + Send + 'a>>
    {
        Box::pin(async move {
            let definition = invocation
                .definitions
                .get(name)
                .ok_or_else(|| ExecError::Unknown(name.to_owned()))?;
            let package_id = definition.package_id.clone().ok_or_else(|| ExecError::NotInstalled {
                name: name.to_owned(),
                reason: "this peer's organisation has not approved a package for its current definition"
                    .into(),
            })?;
            let handler = self.handler(name, &package_id).await?;
            handler
                .execute(self, name, invocation, simulator, depth)
                .await
        })
    }
}

/// The `protos.ChaincodeSupport` service: chaincode processes the peer
/// launched (or a developer started with its credentials) register here.
#[derive(Clone)]
pub struct ChaincodeService(pub Arc<ChaincodeSupport>);

type ChaincodeStream = Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ChaincodeSupportRpc for ChaincodeService {
    type RegisterStream = ChaincodeStream;

    async fn register(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::RegisterStream>, Status> {
        // Only a chaincode this peer issued a certificate to may register,
        // and only as the package the certificate is for.
        let support = Arc::clone(&self.0);
        let bound = request
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|c| support.credentials.package_of(c)))
            .ok_or_else(|| {
                let from = request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                weft_node::refusal!("chaincode registration from {from} refused: no chaincode certificate");
                Status::unauthenticated(
                    "chaincode registration requires the TLS client certificate this peer issued to the chaincode",
                )
            })?;
        let incoming = launcher::forward(request.into_inner());
        let (out, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            if let Err(error) = support.serve_stream(out, incoming, bound).await {
                weft_node::refusal!("chaincode registration refused: {}", error.escape_debug());
            }
        });
        Ok(tonic::Response::new(Box::pin(
            ReceiverStream::new(rx).map(Ok),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LauncherConfig;
    use launcher::LaunchFuture;

    struct Succeeds;

    impl weft_shim::Chaincode for Succeeds {
        fn invoke(&self, _stub: &mut weft_shim::Stub) -> weft_protos::peer::Response {
            weft_shim::success(Vec::new())
        }
    }

    /// Registers a linked contract after a pause, as a process or a
    /// chaincode service takes a while to come up; counts its launches.
    struct Slow {
        launches: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Launcher for Slow {
        fn launch(&self, support: Arc<ChaincodeSupport>) -> LaunchFuture {
            self.launches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                support.register_in_process("cc", Arc::new(Succeeds))
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_waiting_for_a_launch_count_as_one_launch() {
        let launches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let registry = weft_node::metrics::Registry::default();
        let launcher: Arc<dyn Launcher> = Arc::new(Slow {
            launches: Arc::clone(&launches),
        });
        let support = ChaincodeSupport::new(
            vec![ChaincodeConfig {
                name: "cc".into(),
                id: None,
                indexes: Vec::new(),
                launcher: LauncherConfig::Builtin("cc".into()),
            }],
            HashMap::from([("cc".to_owned(), launcher)]),
            Limits::default(),
            credentials::ChaincodeCredentials::new("test").expect("ca"),
            crate::metrics::ChaincodeMetrics::register(&registry),
        );
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let support = Arc::clone(&support);
                tokio::spawn(async move { support.handler("cc", "cc").await.map(|_| ()) })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("reached");
        }
        // And a call after it registered.
        support.handler("cc", "cc").await.expect("reached");
        assert_eq!(launches.load(std::sync::atomic::Ordering::SeqCst), 1);
        let metrics = registry.encode();
        assert!(
            metrics
                .contains("chaincode_launch_duration_count{chaincode=\"cc\",success=\"true\"} 1\n"),
            "{metrics}"
        );
        assert!(!metrics.contains("chaincode_launch_failures{"), "{metrics}");
    }
}
