//! TLS to PostgreSQL with rustls (aws-lc-rs, the one crypto provider):
//! the server's certificate must chain to the CA file given and name the
//! host the URL dials. Whether TLS is used is the URL's `sslmode`
//! (`prefer`, tokio-postgres's default, or `require`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::rustls;

use crate::SinkError;

/// Makes a verifying TLS connection per PostgreSQL connection.
#[derive(Clone)]
pub struct PostgresTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresTls")
    }
}

impl PostgresTls {
    /// Trusts the certificates in the PEM file `ca`.
    pub fn from_ca_file(ca: &Path) -> Result<Self, SinkError> {
        let bad = |what: String| SinkError::Tls(format!("{}: {what}", ca.display()));
        let text = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for der in weft_crypto::pem::certificates(&text).map_err(|e| bad(e.to_string()))? {
            roots.add(der.into()).map_err(|e| bad(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(PostgresTls {
            config: Arc::new(config),
        })
    }
}

impl<S> MakeTlsConnect<S> for PostgresTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PostgresTlsStream<S>;
    type TlsConnect = PostgresTlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<PostgresTlsConnect, Self::Error> {
        Ok(PostgresTlsConnect {
            config: Arc::clone(&self.config),
            name: rustls::pki_types::ServerName::try_from(host.to_owned())?,
        })
    }
}

/// One connection's handshake.
pub struct PostgresTlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = std::io::Result<PostgresTlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for PostgresTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PostgresTlsStream<S>;
    type Error = std::io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(PostgresTlsStream(stream))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct PostgresTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PostgresTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PostgresTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PostgresTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM's channel binding is optional (`channel_binding=prefer`).
        ChannelBinding::none()
    }
}
