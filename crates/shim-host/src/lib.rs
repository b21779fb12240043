//! Runs a [`weft_shim::Chaincode`] as a process of its own, the two ways
//! Fabric chaincode runs:
//!
//! - [`run_classic`]: the chaincode dials the peer's
//!   `/protos.ChaincodeSupport/Register`, configured by Fabric's `CORE_*`
//!   environment (what a peer's process launcher, or a developer in dev mode,
//!   sets);
//! - [`serve`]: chaincode-as-a-service; it listens and the peer dials
//!   `/protos.Chaincode/Connect`.
//!
//! The message flow over either stream is `weft_shim::run`, the same one
//! built-in contracts use in-process. [`start`] picks the mode from the
//! environment, so a chaincode binary's `main` is one line.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use weft_protos::peer::ChaincodeMessage;
use weft_protos::peer::chaincode_server::{Chaincode as ChaincodeService, ChaincodeServer};
use weft_protos::peer::chaincode_support_client::ChaincodeSupportClient;
use weft_shim::Chaincode;

const QUEUE: usize = 1024;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A TLS file the shims read: base64 of the PEM (Fabric's convention for
/// `CORE_TLS_CLIENT_*_PATH`), or the PEM itself.
fn read_tls_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = read(path)?;
    if bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not text", path.display()))?;
    weft_crypto::pem::unbase64(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Classic mode: dials `CORE_PEER_ADDRESS` as `CORE_CHAINCODE_ID_NAME`
/// (TLS when `CORE_PEER_TLS_ENABLED` is true, with
/// `CORE_PEER_TLS_ROOTCERT_FILE`, `CORE_TLS_CLIENT_CERT_PATH` and
/// `CORE_TLS_CLIENT_KEY_PATH`) and serves transactions until the peer closes
/// the stream. `peer_address` overrides `CORE_PEER_ADDRESS`.
pub async fn run_classic(
    chaincode: Arc<dyn Chaincode>,
    peer_address: Option<String>,
) -> Result<(), String> {
    let id = env("CORE_CHAINCODE_ID_NAME")?;
    let address = match peer_address {
        Some(address) => address,
        None => env("CORE_PEER_ADDRESS")?,
    };
    let tls = std::env::var("CORE_PEER_TLS_ENABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = if tls {
        let root = read(Path::new(&env("CORE_PEER_TLS_ROOTCERT_FILE")?))?;
        let cert = read_tls_file(Path::new(&env("CORE_TLS_CLIENT_CERT_PATH")?))?;
        let key = read_tls_file(Path::new(&env("CORE_TLS_CLIENT_KEY_PATH")?))?;
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        Endpoint::from_shared(format!("https://{address}"))
            .and_then(|e| {
                e.tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(root))
                        .identity(Identity::from_pem(cert, key))
                        .domain_name(host),
                )
            })
            .map_err(|e| format!("{address}: {e}"))?
    } else {
        Endpoint::from_shared(format!("http://{address}")).map_err(|e| format!("{address}: {e}"))?
    };
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting to the peer at {address}: {e}"))?;
    let (to_peer, outgoing) = mpsc::channel(QUEUE);
    let incoming = ChaincodeSupportClient::new(channel)
        .register(ReceiverStream::new(outgoing))
        .await
        .map_err(|e| format!("registering with the peer at {address}: {}", e.message()))?
        .into_inner();
    weft_shim::run(chaincode, &id, to_peer, weft_shim::forward(incoming, QUEUE))
        .await
        .map_err(|e| format!("chaincode {id}: {e}"))
}

struct Service {
    chaincode: Arc<dyn Chaincode>,
    id: String,
}

#[tonic::async_trait]
impl ChaincodeService for Service {
    type ConnectStream = ReceiverStream<Result<ChaincodeMessage, tonic::Status>>;

    async fn connect(
        &self,
        request: tonic::Request<tonic::Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::ConnectStream>, tonic::Status> {
        let incoming = weft_shim::forward(request.into_inner(), QUEUE);
        let (to_peer, mut outgoing) = mpsc::channel(QUEUE);
        let (stream_tx, stream_rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if stream_tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        let (chaincode, id) = (Arc::clone(&self.chaincode), self.id.clone());
        tokio::spawn(async move {
            if let Err(error) = weft_shim::run(chaincode, &id, to_peer, incoming).await {
                eprintln!("chaincode {id}: {error}");
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(stream_rx)))
    }
}

/// TLS for a chaincode server: its certificate and key (PEM files).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Chaincode-as-a-service: serves `/protos.Chaincode/Connect` on `address`
/// as `id` until `shutdown` completes.
pub async fn serve(
    chaincode: Arc<dyn Chaincode>,
    id: String,
    address: std::net::SocketAddr,
    tls: Option<ServerTls>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server
            .tls_config(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?)),
            )
            .map_err(|e| e.to_string())?;
    }
    server
        .add_service(ChaincodeServer::new(Service { chaincode, id }))
        .serve_with_shutdown(address, shutdown)
        .await
        .map_err(|e| format!("chaincode server on {address}: {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Runs `chaincode` until the peer closes the stream or a signal arrives,
/// the way Fabric's shims decide: chaincode-as-a-service when
/// `CHAINCODE_SERVER_ADDRESS` is set (as `CHAINCODE_ID`, with TLS when
/// `CHAINCODE_TLS_CERT` and `CHAINCODE_TLS_KEY` name PEM files), otherwise
/// classic mode from the `CORE_*` environment a peer's launcher sets.
pub fn start(chaincode: Arc<dyn Chaincode>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let Ok(address) = std::env::var("CHAINCODE_SERVER_ADDRESS") else {
        return runtime.block_on(run_classic(chaincode, None));
    };
    let address = address
        .parse()
        .map_err(|e| format!("CHAINCODE_SERVER_ADDRESS {address:?}: {e}"))?;
    let id = env("CHAINCODE_ID")?;
    let tls = match (
        std::env::var_os("CHAINCODE_TLS_CERT"),
        std::env::var_os("CHAINCODE_TLS_KEY"),
    ) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, None) => None,
        _ => return Err("set both CHAINCODE_TLS_CERT and CHAINCODE_TLS_KEY, or neither".into()),
    };
    runtime.block_on(serve(chaincode, id, address, tls, shutdown_signal()))
}
