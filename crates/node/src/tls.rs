//! TLS on every listener and for every dial: the node's certificate and key,
//! and the CA certificates it trusts (for servers it dials and for clients
//! that present certificates).
//!
//! As Fabric's peers and orderers do, a listener asks clients for a
//! certificate but requires none and accepts any at the handshake (the
//! handshake still proves the client holds its key): Fabric's SDKs present
//! a self-signed one. Services that need a trusted client certificate —
//! the admin service — check it against the node's TLS roots themselves
//! ([`ClientVerifier`]); the others bind the presented certificate to
//! exactly the one they expect (Raft consenters, chaincodes) or need none.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// TLS files, Fabric-style: `tls/server.crt`, `tls/server.key`, `tls/ca.crt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates trusted for peers' and clients' certificates.
    pub root_cas: Vec<PathBuf>,
}

/// Where to actually dial a consenter endpoint named in a channel config
/// (NAT, port forwarding, proxies): `"host:port": "other-host:port"`. The
/// TLS server name stays the configured host.
pub type EndpointOverrides = std::collections::BTreeMap<String, String>;

/// Loaded TLS material.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    roots_pem: Vec<u8>,
    overrides: std::sync::Arc<EndpointOverrides>,
    /// One HTTP/2 connection per endpoint, shared by every caller.
    channels: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Channel>>>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Tls {
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        let mut roots_pem = Vec::new();
        for root in &files.root_cas {
            let pem = read(root)?;
            // An empty or partly written file would silently trust nobody.
            if weft_crypto::pem::certificates(&pem).map_or(true, |certs| certs.is_empty()) {
                return Err(format!(
                    "{}: no PEM certificate (tls.root_cas)",
                    root.display()
                ));
            }
            roots_pem.extend(pem);
            roots_pem.push(b'\n');
        }
        if files.root_cas.is_empty() {
            return Err("tls.root_cas: at least one CA certificate is needed".into());
        }
        Ok(Self {
            cert_pem: read(&files.cert)?,
            key_pem: read(&files.key)?,
            roots_pem,
            overrides: Default::default(),
            channels: Default::default(),
        })
    }

    pub fn with_overrides(mut self, overrides: EndpointOverrides) -> Self {
        self.overrides = std::sync::Arc::new(overrides);
        self
    }

    /// tonic's server configuration: our certificate, client certificates
    /// optional and verified against the roots when sent. For listeners
    /// that are not a node's (tests); nodes serve with [`Tls::server`].
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&self.roots_pem))
            .client_auth_optional(true)
    }

    /// A node listener's TLS: our certificate; any client certificate is
    /// accepted at the handshake, none is required (see the module docs).
    pub fn server(&self) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain: Vec<CertificateDer<'static>> = weft_crypto::pem::certificates(&self.cert_pem)
            .map_err(|e| format!("TLS certificate: {e}"))?
            .into_iter()
            .map(Into::into)
            .collect();
        if chain.is_empty() {
            return Err("TLS certificate: no PEM certificate".into());
        }
        let key = weft_crypto::pem::blocks(&self.key_pem)
            .map_err(|e| format!("TLS key: {e}"))?
            .into_iter()
            .find(|block| block.label.ends_with("PRIVATE KEY"))
            .map(|block| block.der)
            .ok_or("TLS key: no private key")?;
        let key = PrivateKeyDer::try_from(key).map_err(|e| format!("TLS key: {e}"))?;
        let mut config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_client_cert_verifier(std::sync::Arc::new(AnyClientCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_single_cert(chain, key)
                .map_err(|e| format!("TLS: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(std::sync::Arc::new(config))
    }

    /// Checks client certificates against this node's TLS roots.
    pub fn client_verifier(&self) -> Result<ClientVerifier, String> {
        ClientVerifier::new(&self.roots_pem)
    }

    /// This node's certificate and key, to present as a server or a client.
    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// The trusted CA certificates, PEM.
    pub fn roots_pem(&self) -> &[u8] {
        &self.roots_pem
    }

    /// A lazily connecting channel to `host:port`, presenting our
    /// certificate; made once per endpoint and reused (it reconnects by itself).
    pub fn channel(&self, endpoint: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = self
            .endpoint(endpoint)?
            .concurrency_limit(256)
            .connect_lazy();
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A channel of its own to `host:port` (Raft traffic, which must not
    /// queue behind forwarded envelopes on a shared connection).
    pub fn connect(&self, endpoint: &str) -> Result<Channel, String> {
        Ok(self.endpoint(endpoint)?.connect_lazy())
    }

    fn endpoint(&self, endpoint: &str) -> Result<Endpoint, String> {
        let host = endpoint
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(endpoint);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.roots_pem))
            .identity(self.identity())
            .domain_name(host.trim_start_matches('[').trim_end_matches(']'));
        let dial = self
            .overrides
            .get(endpoint)
            .map(String::as_str)
            .unwrap_or(endpoint);
        Ok(Endpoint::from_shared(format!("https://{dial}"))
            .map_err(|e| format!("{endpoint}: {e}"))?
            .tls_config(tls)
            .map_err(|e| format!("{endpoint}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10)))
    }
}

/// Accepts any client certificate whose holder signs the handshake with
/// its key (which rustls checks with [`rustls::crypto::verify_tls13_signature`]).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks a presented client certificate chain against CA certificates,
/// as a TLS server that requires trusted clients would.
#[derive(Clone)]
pub struct ClientVerifier(std::sync::Arc<dyn ClientCertVerifier>);

impl std::fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientVerifier")
    }
}

impl ClientVerifier {
    /// Trusting the CA certificates of the PEM bundle `roots`.
    pub fn new(roots: &[u8]) -> Result<Self, String> {
        let mut store = rustls::RootCertStore::empty();
        for der in weft_crypto::pem::certificates(roots).map_err(|e| format!("TLS roots: {e}"))? {
            store
                .add(der.into())
                .map_err(|e| format!("TLS roots: {e}"))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(store),
            provider,
        )
        .build()
        .map_err(|e| format!("TLS roots: {e}"))?;
        Ok(Self(verifier))
    }

    /// Ok when `chain` (leaf first) chains to a trusted CA and is valid now.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The DER certificates of a PEM bundle (to compare presented certificates).
pub fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    weft_crypto::pem::certificates(pem).unwrap_or_default()
}
