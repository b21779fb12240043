//! The operations service, as Fabric's: HTTP on its own port
//! (`operations.listen_address`, 127.0.0.1 by default), or HTTPS with
//! `operations.tls`, serving
//!
//! - `GET /metrics`: every metric in Prometheus' text format;
//! - `GET /healthz`: `{"status":"OK","time":…}`, or 503 with the
//!   `failed_checks` (`component`, `reason`) of the node's health checks;
//! - `GET /logspec` (`{"spec":…}`) and `PUT /logspec` (the same body; 204,
//!   or 400 with `{"Error":…}` for a bad spec): the log spec at run time;
//! - `GET /version`: `{"CommitSHA":…,"Version":…}`.
//!
//! With TLS, as Fabric: a client certificate is verified when presented
//! (required for every request with `client_auth_required`), and `/metrics`
//! and `/logspec` answer 401 to a client without one; `/healthz` and
//! `/version` stay open to load balancers.
//!
//! A node without an operations service keeps no metrics (Fabric's
//! `metrics.provider: disabled`): nobody could read them.

mod https;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

pub use https::{Client, OperationsTls, PlainListener, TlsListener};

use crate::metrics::Registry;

/// The operations port of a node's configuration (`operations:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsConfig {
    /// Where `/metrics`, `/healthz`, `/logspec` and `/version` are served.
    pub listen_address: String,
    /// HTTPS instead of HTTP (Fabric's `operations.tls`).
    #[serde(default)]
    pub tls: Option<OperationsTls>,
}

impl OperationsConfig {
    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.resolve(base);
        }
    }

    /// Binds the port and loads the TLS material: a port in use or a bad
    /// certificate stops the node before it starts, naming what is wrong.
    pub async fn bind(&self) -> Result<OperationsListener, String> {
        let tls = self
            .tls
            .as_ref()
            .map(OperationsTls::server_config)
            .transpose()?;
        let listener = crate::serve::bind(&self.listen_address)
            .await
            .map_err(|e| format!("operations: {e}"))?;
        Ok(OperationsListener {
            listener,
            tls,
            address: self.listen_address.clone(),
        })
    }
}

/// A bound operations port, ready to [`serve`].
pub struct OperationsListener {
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    address: String,
}

impl std::fmt::Debug for OperationsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl OperationsListener {
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// `http(s)://<listen address>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }
}

/// One component's check: `Err(reason)` makes the node unhealthy.
pub type HealthCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the operations service serves for one node.
pub struct Operations {
    pub metrics: Arc<Registry>,
    checks: Mutex<Vec<(String, HealthCheck)>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

/// weft's version, as `/version` and `fabric_version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Operations {
    /// A registry with the metrics every node has: `fabric_version` and
    /// the process metrics.
    pub fn new() -> Arc<Self> {
        Self::with_registry(Registry::default())
    }

    fn with_registry(metrics: Registry) -> Arc<Self> {
        let metrics = Arc::new(metrics);
        metrics
            .gauge(
                "fabric_version",
                "The active version of the node (weft's).",
                &["version"],
            )
            .with(&[VERSION])
            .set(1.0);
        metrics.collect(crate::metrics::process_collector());
        Arc::new(Operations {
            metrics,
            checks: Mutex::default(),
        })
    }

    /// A node's operations: metrics kept only when it has an operations
    /// service (`config`); a `ledger` health check that `data_dir` is
    /// writable; the data directory's disk use and the expiry of the
    /// node's enrolment certificate (in `msp_dir/signcerts`) and TLS
    /// certificate exported.
    pub fn for_node(
        config: Option<&OperationsConfig>,
        data_dir: &Path,
        msp_dir: &Path,
        tls_cert: &Path,
    ) -> Result<Arc<Self>, String> {
        let operations = Self::with_registry(match config {
            Some(_) => Registry::default(),
            None => Registry::disabled(),
        });
        let dir = data_dir.to_path_buf();
        operations.check("ledger", Box::new(move || writable(&dir)));
        operations
            .metrics
            .collect(watch::data_dir_collector(data_dir.to_path_buf()));
        if !operations.metrics.is_disabled() {
            let mut certificates = vec![("tls", tls_cert.to_path_buf())];
            certificates.extend(watch::signcert(msp_dir).map(|cert| ("enrollment", cert)));
            watch::register_certificates(&operations.metrics, &certificates)?;
        }
        Ok(operations)
    }

    /// Adds a component's health check.
    pub fn check(&self, component: &str, check: HealthCheck) {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((component.to_owned(), check));
    }

    /// The failed checks: (component, reason).
    pub fn failed_checks(&self) -> Vec<(String, String)> {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(component, check)| {
                check().err().map(|reason| (component.clone(), reason))
            })
            .collect()
    }
}

/// A health check for a data directory: a file can be created in it.
pub fn writable(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".healthz");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("{} is not writable: {e}", dir.display()))
}

/// 401 for a client over TLS without a verified certificate (Fabric's
/// `RequireCert`); without TLS, every client is served.
fn refused(client: &Client) -> Option<Response> {
    (client.tls && !client.verified).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "client certificate required".into(),
        )
    })
}

async fn metrics(
    State(ops): State<Arc<Operations>>,
    ConnectInfo(client): ConnectInfo<Client>,
) -> Response {
    if let Some(refusal) = refused(&client) {
        return refusal;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(ops): State<Arc<Operations>>) -> Response {
    let failed = ops.failed_checks();
    let time = crate::clock::utc_now();
    if failed.is_empty() {
        return Json(serde_json::json!({"status": "OK", "time": time})).into_response();
    }
    let failed_checks: Vec<_> = failed
        .into_iter()
        .map(|(component, reason)| serde_json::json!({"component": component, "reason": reason}))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "status": "Service Unavailable",
            "time": time,
            "failed_checks": failed_checks,
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LogSpec {
    spec: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "Error": message }))).into_response()
}

async fn get_logspec(ConnectInfo(client): ConnectInfo<Client>) -> Response {
    if let Some(refusal) = refused(&client) {
        return refusal;
    }
    match crate::logging::spec() {
        Some(spec) => Json(serde_json::json!({ "spec": spec })).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node's logger is not installed".into(),
        ),
    }
}

async fn put_logspec(
    ConnectInfo(client): ConnectInfo<Client>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = refused(&client) {
        return refusal;
    }
    let spec: LogSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"spec\": \"<log spec>\"}}: {e}"),
            );
        }
    };
    match crate::logging::set_spec(&spec.spec) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn version() -> Response {
    Json(serde_json::json!({
        "CommitSHA": option_env!("WEFT_COMMIT").unwrap_or("development build"),
        "Version": VERSION,
    }))
    .into_response()
}

/// Serves `ops` on `listener` until `shutdown` resolves.
pub async fn serve(
    ops: Arc<Operations>,
    listener: OperationsListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/logspec", get(get_logspec).put(put_logspec))
        .route("/version", get(version))
        .with_state(ops)
        .into_make_service_with_connect_info::<Client>();
    let served = match listener.tls {
        Some(config) => {
            let listener = TlsListener::new(listener.listener, config)
                .map_err(|e| format!("operations service: {e}"))?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(PlainListener(listener.listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.map_err(|e| format!("operations service: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn times_are_rfc3339_utc() {
        let time = crate::clock::utc_now();
        assert_eq!(time.len(), 20, "{time}");
        assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
    }

    fn plain() -> OperationsConfig {
        OperationsConfig {
            listen_address: "127.0.0.1:0".into(),
            tls: None,
        }
    }

    async fn get_text(address: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        parse_response(&response).expect("an HTTP response")
    }

    /// (status, body) of an HTTP/1.1 response.
    fn parse_response(response: &str) -> Result<(u16, String), String> {
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not HTTP: {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    #[tokio::test]
    async fn healthz_reports_failed_checks_and_metrics_are_served() {
        let ops = Operations::new();
        let listener = plain().bind().await.expect("bind");
        let address = listener.local_addr().expect("address");
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = Arc::clone(&healthy);
        ops.check(
            "ledger",
            Box::new(move || {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err("not writable".into())
                }
            }),
        );
        tokio::spawn(serve(Arc::clone(&ops), listener, std::future::pending()));
        let (status, body) = get_text(address, "/healthz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"status\":\"OK\""), "{body}");
        healthy.store(false, std::sync::atomic::Ordering::Relaxed);
        let (status, body) = get_text(address, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("\"component\":\"ledger\"") && body.contains("not writable"),
            "{body}"
        );
        let (status, body) = get_text(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("fabric_version{{version=\"{VERSION}\"}} 1")),
            "{body}"
        );
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        let (status, body) = get_text(address, "/version").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("\"Version\":\"{VERSION}\"")),
            "{body}"
        );
    }

    /// GET over TLS, presenting `identity` ((cert, key) PEM files) if any:
    /// Err when the handshake or connection fails.
    async fn get_tls(
        address: std::net::SocketAddr,
        path: &str,
        ca: &Path,
        identity: Option<(PathBuf, PathBuf)>,
    ) -> Result<(u16, String), String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for der in weft_crypto::pem::certificates(&std::fs::read(ca).expect("ca")).expect("pem") {
            roots.add(der.into()).expect("root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = weft_crypto::pem::certificates(&std::fs::read(cert).expect("cert"))
                    .expect("pem")
                    .into_iter()
                    .map(Into::into)
                    .collect();
                let key = weft_crypto::pem::blocks(&std::fs::read(key).expect("key"))
                    .expect("pem")
                    .remove(0)
                    .der;
                builder
                    .with_client_auth_cert(
                        chain,
                        rustls::pki_types::PrivateKeyDer::try_from(key).expect("key"),
                    )
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        parse_response(&String::from_utf8_lossy(&response))
    }

    #[tokio::test]
    async fn with_tls_metrics_and_logspec_need_a_verified_client_certificate() {
        let network = weft_testkit::TestNetwork::generate();
        let org1 = network.org_dir("org1.example.com");
        let org2 = network.org_dir("org2.example.com");
        let server = org1.join("peers/peer0.org1.example.com/tls");
        let ca = server.join("ca.crt");
        let client = |org: &Path, user: &str| {
            let tls = org.join("users").join(user).join("tls");
            Some((tls.join("client.crt"), tls.join("client.key")))
        };
        let config = |required: bool| OperationsConfig {
            listen_address: "127.0.0.1:0".into(),
            tls: Some(OperationsTls {
                cert: server.join("server.crt"),
                key: server.join("server.key"),
                // Only Org1's TLS CA is trusted for clients.
                client_root_cas: vec![ca.clone()],
                client_auth_required: required,
            }),
        };
        let listener = config(false).bind().await.expect("bind");
        assert!(listener.url().starts_with("https://"), "{}", listener.url());
        let address = listener.local_addr().expect("address");
        tokio::spawn(serve(Operations::new(), listener, std::future::pending()));

        let anonymous = get_tls(address, "/healthz", &ca, None)
            .await
            .expect("healthz");
        assert_eq!(anonymous.0, 200, "{anonymous:?}");
        let (status, body) = get_tls(address, "/metrics", &ca, None)
            .await
            .expect("metrics");
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("client certificate required"), "{body}");
        let (status, _) = get_tls(address, "/logspec", &ca, None)
            .await
            .expect("logspec");
        assert_eq!(status, 401);
        let user = client(&org1, "User1@org1.example.com");
        let (status, body) = get_tls(address, "/metrics", &ca, user.clone())
            .await
            .expect("metrics with a certificate");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("fabric_version"), "{body}");
        // A certificate from a CA the port does not trust ends the handshake.
        let stranger = client(&org2, "User1@org2.example.com");
        assert!(get_tls(address, "/metrics", &ca, stranger).await.is_err());
        // Plain HTTP on the TLS port gets no HTTP answer.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
            let mut response = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read_to_end(&mut response),
            )
            .await;
            assert!(!response.starts_with(b"HTTP/"), "{response:?}");
        }

        let listener = config(true).bind().await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(serve(Operations::new(), listener, std::future::pending()));
        assert!(get_tls(address, "/healthz", &ca, None).await.is_err());
        let (status, _) = get_tls(address, "/healthz", &ca, user)
            .await
            .expect("healthz with a certificate");
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn tls_without_client_roots_is_refused() {
        let config = OperationsConfig {
            listen_address: "127.0.0.1:0".into(),
            tls: Some(OperationsTls {
                cert: "server.crt".into(),
                key: "server.key".into(),
                client_root_cas: vec![],
                client_auth_required: false,
            }),
        };
        let error = config.bind().await.expect_err("refused");
        assert!(error.contains("client_root_cas"), "{error}");
    }
}
