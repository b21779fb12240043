//! The operations port's listeners: plain TCP, or TLS as Fabric's
//! `operations.tls` (client certificates verified when presented, or
//! required with `client_auth_required`). Each connection carries a
//! [`Client`]: whether it presented a verified certificate, which
//! `/metrics` and `/logspec` need when TLS is on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// `operations.tls`: HTTPS on the operations port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsTls {
    /// The server certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates a client certificate must chain to. `/metrics` and
    /// `/logspec` answer only clients presenting such a certificate.
    pub client_root_cas: Vec<PathBuf>,
    /// Refuse every connection without a verified client certificate
    /// (`/healthz` and `/version` included).
    #[serde(default)]
    pub client_auth_required: bool,
}

impl OperationsTls {
    pub(crate) fn resolve(&mut self, base: &Path) {
        for path in [&mut self.cert, &mut self.key]
            .into_iter()
            .chain(self.client_root_cas.iter_mut())
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The rustls server configuration, or what is wrong with the files.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let bad = |path: &Path| {
            let path = path.display().to_string();
            move |e: &dyn std::fmt::Display| format!("operations.tls: {path}: {e}")
        };
        let read = |path: &Path| std::fs::read(path).map_err(|e| bad(path)(&e));
        if self.client_root_cas.is_empty() {
            return Err(
                "operations.tls.client_root_cas is empty: /metrics and /logspec \
                 would refuse every client; name the CAs of the clients that scrape"
                    .into(),
            );
        }
        let mut roots = rustls::RootCertStore::empty();
        for path in &self.client_root_cas {
            let ders = weft_crypto::pem::certificates(&read(path)?).map_err(|e| bad(path)(&e))?;
            if ders.is_empty() {
                return Err(bad(path)(&"no certificate"));
            }
            for der in ders {
                roots.add(der.into()).map_err(|e| bad(path)(&e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), {
                Arc::clone(&provider)
            });
        let verifier = if self.client_auth_required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        }
        .build()
        .map_err(|e| format!("operations.tls.client_root_cas: {e}"))?;
        let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
            weft_crypto::pem::certificates(&read(&self.cert)?)
                .map_err(|e| bad(&self.cert)(&e))?
                .into_iter()
                .map(Into::into)
                .collect();
        let key = rustls::pki_types::PrivateKeyDer::try_from(
            weft_crypto::pem::blocks(&read(&self.key)?)
                .map_err(|e| bad(&self.key)(&e))?
                .into_iter()
                .find(|block| block.label.ends_with("PRIVATE KEY"))
                .map(|block| block.der)
                .ok_or_else(|| bad(&self.key)(&"no private key"))?,
        )
        .map_err(|e| bad(&self.key)(&e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("operations.tls: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("operations.tls: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Who is on the other end of an operations connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: SocketAddr,
    /// Came over TLS.
    pub tls: bool,
    /// Presented a certificate that chains to `client_root_cas`.
    pub verified: bool,
}

/// Plain HTTP.
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Client;

    async fn accept(&mut self) -> (TcpStream, Client) {
        let (stream, address) = Listener::accept(&mut self.0).await;
        (
            stream,
            Client {
                address,
                tls: false,
                verified: false,
            },
        )
    }

    fn local_addr(&self) -> std::io::Result<Client> {
        Ok(Client {
            address: self.0.local_addr()?,
            tls: false,
            verified: false,
        })
    }
}

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; connections beyond are closed at once.
const HANDSHAKES_MAX: usize = 128;

/// HTTPS: connections are accepted and their handshakes run in the
/// background (a slow client holds up nobody; at most [`HANDSHAKES_MAX`] at
/// once, each within [`HANDSHAKE_TIMEOUT`]), finished ones are served.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, Client)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
        tokio::spawn(async move {
            loop {
                let (stream, address) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors and the like: wait, then try again.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    return;
                }
                let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                    // Dropped: closed.
                    continue;
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let verified = tls.get_ref().1.peer_certificates().is_some();
                    let client = Client {
                        address,
                        tls: true,
                        verified,
                    };
                    let _ = sender.send((tls, client)).await;
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Client;

    async fn accept(&mut self) -> (TlsStream<TcpStream>, Client) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Client> {
        Ok(Client {
            address: self.local,
            tls: true,
            verified: false,
        })
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for Client {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Client {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}
