//! TLS on every listener and for every dial: the node's certificate and key,
//! and the CA certificates it trusts (for servers it dials and for clients
//! that present certificates).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
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
            roots_pem.extend(read(root)?);
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

    /// Server side: our certificate; client certificates are optional at the
    /// TLS layer (Fabric clients do not send one) but verified against the
    /// roots when sent, and required by the cluster and admin services.
    pub fn server_config(&self) -> ServerTlsConfig {
        self.server_config_trusting(&[])
    }

    /// [`Tls::server_config`], also trusting `extra_client_roots` (PEM) for
    /// client certificates (a peer's chaincode CA).
    pub fn server_config_trusting(&self, extra_client_roots: &[u8]) -> ServerTlsConfig {
        let mut roots = self.roots_pem.clone();
        roots.extend_from_slice(extra_client_roots);
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&roots))
            .client_auth_optional(true)
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

/// The DER certificates of a PEM bundle (to compare presented certificates).
pub fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    weft_crypto::pem::certificates(pem).unwrap_or_default()
}
