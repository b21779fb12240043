//! The operations service, as Fabric's: plain HTTP on its own port
//! (`operations.listen_address`, 127.0.0.1 by default) serving
//!
//! - `GET /metrics`: every metric in Prometheus' text format;
//! - `GET /healthz`: `{"status":"OK","time":…}`, or 503 with the
//!   `failed_checks` (`component`, `reason`) of the node's health checks;
//! - `GET /logspec` (`{"spec":…}`) and `PUT /logspec` (the same body; 204,
//!   or 400 with `{"Error":…}` for a bad spec): the log spec at run time;
//! - `GET /version`: `{"CommitSHA":…,"Version":…}`.
//!
//! Not yet: TLS and client authentication on this port (Fabric's
//! `operations.tls`); keep it on loopback or behind a proxy that adds them.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::metrics::Registry;

/// The operations port of a node's configuration (`operations:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsConfig {
    /// Where `/metrics`, `/healthz`, `/logspec` and `/version` are served.
    pub listen_address: String,
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
        let metrics = Arc::new(Registry::default());
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

async fn metrics(State(ops): State<Arc<Operations>>) -> Response {
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

async fn get_logspec() -> Response {
    match crate::logging::spec() {
        Some(spec) => Json(serde_json::json!({ "spec": spec })).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node's logger is not installed".into(),
        ),
    }
}

async fn put_logspec(body: axum::body::Bytes) -> Response {
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
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/logspec", get(get_logspec).put(put_logspec))
        .route("/version", get(version))
        .with_state(ops);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("operations service: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let time = crate::clock::utc_now();
        assert_eq!(time.len(), 20, "{time}");
        assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
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
        let status = response[9..12].parse().expect("status");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn healthz_reports_failed_checks_and_metrics_are_served() {
        let ops = Operations::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
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
}
