//! Launchers: what makes a chaincode connect when the peer needs it. One
//! seam for every way chaincode runs (a Docker or Kubernetes launcher is one
//! more implementation): `launch` returns once the chaincode is on its way;
//! [`ChaincodeSupport`] then waits for its REGISTER.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use weft_protos::peer::ChaincodeMessage;
use weft_protos::peer::chaincode_client::ChaincodeClient;
use weft_shim::Chaincode;

use super::ChaincodeSupport;

pub type LaunchFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Makes one chaincode connect to the peer.
pub trait Launcher: Send + Sync {
    fn launch(&self, support: Arc<ChaincodeSupport>) -> LaunchFuture;

    /// Why the chaincode cannot register any more (its process exited), so
    /// a transaction waiting for it fails now rather than at the timeout.
    fn gone(&self) -> Option<String> {
        None
    }
}

/// Depth of the message queues between the peer and a chaincode stream.
const QUEUE: usize = 256;

/// A Rust contract linked into the binary (Fabric's in-process VM), called
/// directly: no stream, each transaction on a blocking thread whose ledger
/// requests go straight to the transaction's loop.
pub struct InProcess {
    pub id: String,
    pub chaincode: Arc<dyn Chaincode>,
}

impl Launcher for InProcess {
    fn launch(&self, support: Arc<ChaincodeSupport>) -> LaunchFuture {
        let registered = support.register_in_process(&self.id, Arc::clone(&self.chaincode));
        Box::pin(async { registered })
    }
}

/// Chaincode-as-a-service: dials the chaincode's `/protos.Chaincode/Connect`.
/// Over TLS the peer presents its own TLS client certificate, as Fabric's
/// peers do; the stream may register only as package `id`.
pub struct External {
    pub id: String,
    pub address: String,
    pub tls_root_ca: Option<Vec<u8>>,
    /// The peer's TLS certificate and key, presented to the chaincode server.
    pub client_identity: tonic::transport::Identity,
}

impl Launcher for External {
    fn launch(&self, support: Arc<ChaincodeSupport>) -> LaunchFuture {
        let address = self.address.clone();
        let ca = self.tls_root_ca.clone();
        let identity = self.client_identity.clone();
        let bound = self.id.clone();
        Box::pin(async move {
            let endpoint = match &ca {
                None => tonic::transport::Endpoint::from_shared(format!("http://{address}")),
                Some(_) => tonic::transport::Endpoint::from_shared(format!("https://{address}")),
            }
            .map_err(|e| format!("{address}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .tcp_nodelay(true);
            let endpoint = match ca {
                None => endpoint,
                Some(ca) => {
                    let tls = tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .identity(identity);
                    endpoint
                        .tls_config(tls)
                        .map_err(|e| format!("{address}: {e}"))?
                }
            };
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| format!("cannot reach chaincode server {address}: {e}"))?;
            let (to_chaincode, outgoing) = mpsc::channel(QUEUE);
            let mut client = ChaincodeClient::new(channel)
                .max_decoding_message_size(crate::MAX_GRPC_MESSAGE)
                .max_encoding_message_size(crate::MAX_GRPC_MESSAGE);
            // The chaincode answers the stream's headers with its REGISTER; bound the wait.
            let incoming = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.connect(ReceiverStream::new(outgoing)),
            )
            .await
            .map_err(|_| format!("chaincode server {address} did not answer within 10 s"))?
            .map_err(|e| format!("chaincode server {address}: {}", e.message()))?
            .into_inner();
            let from_chaincode = forward(incoming);
            tokio::spawn(async move {
                if let Err(error) = support
                    .serve_stream(to_chaincode, from_chaincode, bound)
                    .await
                {
                    tracing::warn!("chaincode server {address}: {error}");
                }
            });
            Ok(())
        })
    }
}

/// Copies a gRPC stream into a channel (ending at the first error).
pub fn forward(
    incoming: impl tokio_stream::Stream<Item = Result<ChaincodeMessage, tonic::Status>>
    + Send
    + Unpin
    + 'static,
) -> mpsc::Receiver<ChaincodeMessage> {
    weft_shim::forward(incoming, QUEUE)
}

/// What a chaincode process needs to dial the peer (Fabric's `CORE_*`
/// environment); its TLS client certificate is issued at each launch.
#[derive(Debug, Clone)]
pub struct PeerContact {
    pub address: String,
    pub msp_id: String,
    /// The CA certificate of the peer's TLS certificate.
    pub tls_root_cert: PathBuf,
}

/// Writes a chaincode's TLS client certificate and key where its shim looks
/// for them: PEM (`client.crt`, `client.key`: Fabric's Go shim,
/// `CORE_TLS_CLIENT_*_FILE`) and base64 of the PEM (`client.crt.b64`,
/// `client.key.b64`: the Node and Java shims, `CORE_TLS_CLIENT_*_PATH`).
/// Keys are readable by the owner only. Returns the four paths.
pub fn write_credentials(
    dir: &std::path::Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<[PathBuf; 4], String> {
    use weft_material::files::{write, write_private_key};
    let paths = [
        "client.crt",
        "client.key",
        "client.crt.b64",
        "client.key.b64",
    ]
    .map(|f| dir.join(f));
    let [cert, key, cert_b64, key_b64] = &paths;
    write(cert, cert_pem)
        .and_then(|()| write_private_key(key, key_pem))
        .and_then(|()| write(cert_b64, weft_crypto::pem::base64(cert_pem).as_bytes()))
        .and_then(|()| write_private_key(key_b64, weft_crypto::pem::base64(key_pem).as_bytes()))
        .map_err(|e| e.to_string())?;
    Ok(paths)
}

/// Classic mode: the peer starts a local process, which dials back.
pub struct Process {
    pub id: String,
    pub command: Vec<String>,
    pub dir: Option<PathBuf>,
    pub env: std::collections::BTreeMap<String, String>,
    pub contact: PeerContact,
    /// Where the chaincode's files (TLS copies, log) go.
    pub work_dir: PathBuf,
    pub child: Mutex<Option<tokio::process::Child>>,
}

impl Process {
    fn spawn(&self, support: &ChaincodeSupport) -> Result<tokio::process::Child, String> {
        let program = self
            .command
            .first()
            .ok_or_else(|| format!("chaincode {}: empty command", self.id))?;
        // A certificate of its own, issued for this package at this launch.
        let issued = support.credentials.issue(&self.id)?;
        let [cert_file, key_file, cert_path, key_path] = write_credentials(
            &self.work_dir,
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )?;
        let log_path = self.work_dir.join("chaincode.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        // `{peer_address}` and `{chaincode_id}` in arguments are filled in
        // (the Node shim wants `--peer.address` on its command line).
        let args = self.command[1..].iter().map(|arg| {
            arg.replace("{peer_address}", &self.contact.address)
                .replace("{chaincode_id}", &self.id)
        });
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env("CORE_CHAINCODE_ID_NAME", &self.id)
            .env("CORE_PEER_ADDRESS", &self.contact.address)
            .env("CORE_PEER_LOCALMSPID", &self.contact.msp_id)
            .env("CORE_PEER_TLS_ENABLED", "true")
            .env("CORE_PEER_TLS_ROOTCERT_FILE", &self.contact.tls_root_cert)
            .env("CORE_TLS_CLIENT_KEY_PATH", &key_path)
            .env("CORE_TLS_CLIENT_CERT_PATH", &cert_path)
            .env("CORE_TLS_CLIENT_KEY_FILE", &key_file)
            .env("CORE_TLS_CLIENT_CERT_FILE", &cert_file)
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))
    }
}

impl Launcher for Process {
    fn launch(&self, support: Arc<ChaincodeSupport>) -> LaunchFuture {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        // A process that is still running but not connected is replaced.
        if let Some(mut old) = child.take() {
            let _ = old.start_kill();
        }
        let result = self.spawn(&support).map(|spawned| {
            tracing::info!(
                "chaincode {}: started {:?} (pid {:?}), log {}",
                self.id,
                self.command,
                spawned.id(),
                self.work_dir.join("chaincode.log").display()
            );
            *child = Some(spawned);
        });
        Box::pin(async move { result })
    }

    fn gone(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let status = child.as_mut()?.try_wait().ok()??;
        let log = self.work_dir.join("chaincode.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        Some(format!(
            "its process exited ({status}) before registering with the peer; last lines of {}:\n{tail}",
            log.display()
        ))
    }
}

/// Dev mode: the user starts the chaincode; the peer only waits for it.
pub struct Wait;

/// A chaincode whose launcher could not be made from the peer's config (an
/// unreadable TLS root, an unknown built-in): the peer runs on, and every
/// transaction to this chaincode fails with the reason.
pub struct Broken {
    pub reason: String,
}

impl Launcher for Broken {
    fn launch(&self, _support: Arc<ChaincodeSupport>) -> LaunchFuture {
        let reason = self.reason.clone();
        Box::pin(async move { Err(reason) })
    }

    fn gone(&self) -> Option<String> {
        Some(self.reason.clone())
    }
}

impl Launcher for Wait {
    fn launch(&self, _support: Arc<ChaincodeSupport>) -> LaunchFuture {
        Box::pin(async { Ok(()) })
    }
}
