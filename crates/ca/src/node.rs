//! `weft ca start`: the CA as a node, like peers and orderers — its REST
//! API on its port, and the operations service (`/healthz`, `/metrics` with
//! Fabric CA's `api_request_count` and `api_request_duration`) when
//! configured.

use std::sync::Arc;

use weft_node::operations::{Operations, OperationsListener};

use crate::http::{self, ApiMetrics};
use crate::{Authority, CaConfig};

/// A CA whose ports are bound, ready to [`serve`](BoundCa::serve).
pub struct BoundCa {
    pub authority: Arc<Authority>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    operations: Option<OperationsListener>,
}

impl std::fmt::Debug for BoundCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl BoundCa {
    /// Opens the CA (key, certificate, store) and binds its ports: a bad
    /// file or a port in use stops it before it serves, naming which.
    pub async fn bind(config: CaConfig) -> Result<Self, String> {
        let tls = if config.tls.enabled {
            Some(http::tls_config(&config)?)
        } else {
            None
        };
        let operations = match &config.operations {
            Some(operations) => Some(operations.bind().await?),
            None => None,
        };
        let address = format!("{}:{}", config.address, config.port);
        let listener = weft_node::serve::bind(&address).await?;
        let authority = tokio::task::spawn_blocking(move || Authority::open(config))
            .await
            .map_err(|e| e.to_string())??;
        Ok(Self {
            authority,
            listener,
            tls,
            operations,
        })
    }

    /// `https://127.0.0.1:7054` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.listener.local_addr() {
            Ok(address) => format!("{scheme}://{address}"),
            Err(_) => format!("{scheme}://?"),
        }
    }

    pub fn operations_url(&self) -> Option<String> {
        self.operations.as_ref().map(OperationsListener::url)
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let operations = Operations::new();
        let store_dir = self.authority.config().db.datasource.clone();
        operations.check(
            "store",
            Box::new(move || weft_node::operations::writable(&store_dir)),
        );
        let metrics = ApiMetrics::new(&operations.metrics);
        if let Some(listener) = self.operations {
            let operations = Arc::clone(&operations);
            tokio::spawn(async move {
                if let Err(e) =
                    weft_node::operations::serve(operations, listener, std::future::pending()).await
                {
                    tracing::error!("{e}");
                }
            });
        }
        http::serve(self.authority, metrics, self.listener, self.tls, shutdown).await
    }
}
