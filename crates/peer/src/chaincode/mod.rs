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

pub mod handler;
pub mod launcher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, watch};
use weft_protos::peer::chaincode_message::Type;
use weft_protos::peer::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, Response, SignedProposal,
};

use crate::config::{ChaincodeConfig, Limits};
use crate::simulator::Simulator;
pub use handler::Handler;
pub use launcher::Launcher;

/// Why an execution produced no chaincode response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("chaincode {0} is not defined on this peer")]
    Unknown(String),
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
}

/// The chaincodes a peer runs, their connected streams and launchers.
pub struct ChaincodeSupport {
    definitions: HashMap<String, ChaincodeConfig>,
    launchers: HashMap<String, Arc<dyn Launcher>>,
    launch_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    handlers: Mutex<HashMap<String, Arc<Handler>>>,
    registrations: watch::Sender<u64>,
    pub limits: Limits,
}

impl std::fmt::Debug for ChaincodeSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeSupport")
            .field("definitions", &self.definitions.keys())
            .finish()
    }
}

impl ChaincodeSupport {
    pub fn new(
        definitions: Vec<ChaincodeConfig>,
        launchers: HashMap<String, Arc<dyn Launcher>>,
        limits: Limits,
    ) -> Arc<Self> {
        let launch_locks = definitions
            .iter()
            .map(|d| (d.id().to_owned(), Arc::default()))
            .collect();
        Arc::new(ChaincodeSupport {
            definitions: definitions
                .into_iter()
                .map(|d| (d.name.clone(), d))
                .collect(),
            launchers,
            launch_locks,
            handlers: Mutex::default(),
            registrations: watch::channel(0).0,
            limits,
        })
    }

    pub fn definition(&self, name: &str) -> Option<&ChaincodeConfig> {
        self.definitions.get(name)
    }

    pub fn definitions(&self) -> impl Iterator<Item = &ChaincodeConfig> {
        self.definitions.values()
    }

    fn handlers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Handler>>> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected(&self, id: &str) -> Option<Arc<Handler>> {
        self.handlers().get(id).filter(|h| h.is_open()).cloned()
    }

    /// Whether chaincode `name` is connected now.
    pub fn is_running(&self, name: &str) -> bool {
        self.definition(name)
            .is_some_and(|d| self.connected(d.id()).is_some())
    }

    /// The connected stream of `definition`, launching it if needed.
    async fn handler(
        self: &Arc<Self>,
        definition: &ChaincodeConfig,
    ) -> Result<Arc<Handler>, ExecError> {
        let id = definition.id();
        if let Some(handler) = self.connected(id) {
            return Ok(handler);
        }
        let lock = self
            .launch_locks
            .get(id)
            .cloned()
            .ok_or_else(|| ExecError::Unknown(definition.name.clone()))?;
        let _launching = lock.lock().await;
        let mut registrations = self.registrations.subscribe();
        if let Some(handler) = self.connected(id) {
            return Ok(handler);
        }
        if let Some(launcher) = self.launchers.get(id) {
            launcher
                .launch(Arc::clone(self))
                .await
                .map_err(|reason| ExecError::Launch {
                    name: definition.name.clone(),
                    reason,
                })?;
        }
        let timeout = self.limits.startup_timeout;
        let wait = async {
            loop {
                if let Some(handler) = self.connected(id) {
                    return handler;
                }
                if registrations.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ExecError::NotRegistered {
                name: definition.name.clone(),
                seconds: timeout.as_secs(),
            })
    }

    /// Takes a chaincode's stream through REGISTER → REGISTERED → READY and
    /// serves it until it closes. `out` carries messages to the chaincode.
    pub async fn serve_stream(
        self: Arc<Self>,
        out: mpsc::Sender<ChaincodeMessage>,
        mut incoming: mpsc::Receiver<ChaincodeMessage>,
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
        let Some(definition) = self.definitions.values().find(|d| d.id() == id).cloned() else {
            return refuse(format!("chaincode id {id:?} is not defined on this peer")).await;
        };
        for kind in [Type::Registered, Type::Ready] {
            out.send(ChaincodeMessage {
                r#type: kind as i32,
                ..Default::default()
            })
            .await
            .map_err(|_| "stream closed during the handshake".to_owned())?;
        }
        let handler = Arc::new(Handler::new(definition.name.clone(), out));
        self.handlers().insert(id.clone(), Arc::clone(&handler));
        self.registrations
            .send_modify(|generation| *generation += 1);
        eprintln!("chaincode {} registered as {id}", definition.name);
        while let Some(message) = incoming.recv().await {
            handler.route(message).await;
        }
        handler.close();
        {
            let mut handlers = self.handlers();
            if handlers.get(&id).is_some_and(|h| Arc::ptr_eq(h, &handler)) {
                handlers.remove(&id);
            }
        }
        eprintln!("chaincode {} ({id}) disconnected", definition.name);
        Ok(())
    }

    /// Runs one transaction of chaincode `name` against `simulator`.
    pub fn execute<'a>(
        self: &'a Arc<Self>,
        name: &'a str,
        invocation: Invocation,
        simulator: &'a mut Simulator,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Executed, ExecError>> + Send + 'a>>
    {
        Box::pin(async move {
            let definition = self
                .definition(name)
                .cloned()
                .ok_or_else(|| ExecError::Unknown(name.to_owned()))?;
            let handler = self.handler(&definition).await?;
            handler
                .execute(self, &definition, invocation, simulator, depth)
                .await
        })
    }
}
