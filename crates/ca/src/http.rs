//! The REST API on the CA's port: `/api/v1/<endpoint>` (and `/<endpoint>`,
//! as Fabric CA also serves), JSON in and out, answers wrapped as
//! `{"success","result","errors","messages"}`. HTTPS with `tls.enabled`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::json;
use tokio_rustls::rustls;
use weft_node::metrics::{Counter, Family, Histogram, Registry};
use weft_node::operations::{Client, PlainListener, TlsListener};

use crate::CaError;
use crate::authority::{Authority, Reply, Request};
use crate::config::CaConfig;
use crate::error::codes;

/// Which operation a route serves.
#[derive(Debug, Clone, Copy)]
enum Op {
    CaInfo,
    Enroll,
    Reenroll,
    Register,
    Revoke,
    GenCrl,
    ListIdentities,
    AddIdentity,
    GetIdentity,
    ModifyIdentity,
    RemoveIdentity,
    ListAffiliations,
    AddAffiliation,
    GetAffiliation,
    ModifyAffiliation,
    RemoveAffiliation,
    Certificates,
}

impl Op {
    /// The `api_name` label: the path without the version prefix.
    fn api_name(self) -> &'static str {
        match self {
            Op::CaInfo => "cainfo",
            Op::Enroll => "enroll",
            Op::Reenroll => "reenroll",
            Op::Register => "register",
            Op::Revoke => "revoke",
            Op::GenCrl => "gencrl",
            Op::ListIdentities | Op::AddIdentity => "identities",
            Op::GetIdentity | Op::ModifyIdentity | Op::RemoveIdentity => "identities/{id}",
            Op::ListAffiliations | Op::AddAffiliation => "affiliations",
            Op::GetAffiliation | Op::ModifyAffiliation | Op::RemoveAffiliation => {
                "affiliations/{affiliation}"
            }
            Op::Certificates => "certificates",
        }
    }
}

/// Fabric CA's request metrics.
#[derive(Clone)]
pub struct ApiMetrics {
    count: Arc<Family<Counter>>,
    duration: Arc<Family<Histogram>>,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiMetrics")
    }
}

impl ApiMetrics {
    pub fn new(registry: &Registry) -> Self {
        const LABELS: &[&str] = &["ca_name", "api_name", "status_code"];
        Self {
            count: registry.counter(
                "api_request_count",
                "Number of requests made to an API",
                LABELS,
            ),
            duration: registry.histogram(
                "api_request_duration",
                "Time taken in seconds for the request to an API to be completed",
                LABELS,
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
        }
    }
}

fn run(ca: &Authority, op: Op, request: &Request, target: &str) -> Result<Reply, CaError> {
    match op {
        Op::CaInfo => ca.cainfo(request),
        Op::Enroll => ca.enroll(request),
        Op::Reenroll => ca.reenroll(request),
        Op::Register => ca.register(request),
        Op::Revoke => ca.revoke(request),
        Op::GenCrl => ca.gencrl(request),
        Op::ListIdentities => ca.list_identities(request),
        Op::AddIdentity => ca.add_identity_request(request),
        Op::GetIdentity => ca.get_identity(request, target),
        Op::ModifyIdentity => ca.modify_identity(request, target),
        Op::RemoveIdentity => ca.remove_identity(request, target),
        Op::ListAffiliations => ca.list_affiliations(request),
        Op::AddAffiliation => ca.add_affiliation(request),
        Op::GetAffiliation => ca.get_affiliation(request, target),
        Op::ModifyAffiliation => ca.modify_affiliation(request, target),
        Op::RemoveAffiliation => ca.remove_affiliation(request, target),
        Op::Certificates => ca.list_certificates(request),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    ca: Arc<Authority>,
    metrics: ApiMetrics,
    op: Op,
    client: Client,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    target: String,
    body: Bytes,
) -> Response {
    let request = Request {
        method: method.as_str().to_owned(),
        uri: uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| uri.path().to_owned()),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
        query: weft_node::query::pairs(uri.query().unwrap_or("")),
    };
    let target = weft_node::query::decode(&target);
    let started = std::time::Instant::now();
    let answer = {
        let ca = Arc::clone(&ca);
        let request = request.clone();
        tokio::task::spawn_blocking(move || run(&ca, op, &request, &target)).await
    };
    let answer = answer.unwrap_or_else(|e| Err(CaError::internal(format!("request failed: {e}"))));
    let status = match &answer {
        Ok(reply) => reply.status,
        Err(error) => error.status,
    }
    .to_string();
    let labels = [ca.name(), op.api_name(), status.as_str()];
    metrics.count.with(&labels).inc();
    metrics.duration.with(&labels).observe_since(started);
    match answer {
        Ok(reply) => {
            tracing::info!(
                "{} {} {} {} 0 \"OK\"",
                client.address,
                request.method,
                request.uri,
                reply.status
            );
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            (
                status,
                axum::Json(json!({
                    "success": true,
                    "result": reply.result,
                    "errors": [],
                    "messages": [],
                })),
            )
                .into_response()
        }
        Err(error) => {
            tracing::info!(
                "{} {} {} {} {} \"{}\"",
                client.address,
                request.method,
                request.uri,
                error.status,
                error.local_code,
                error.detail
            );
            error_response(&error)
        }
    }
}

fn error_response(error: &CaError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(error.body())).into_response()
}

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// What every route shares.
#[derive(Clone)]
struct Shared {
    ca: Arc<Authority>,
    metrics: ApiMetrics,
}

fn route(
    shared: &Shared,
    op: Op,
) -> impl Fn(ConnectInfo<Client>, Method, Uri, HeaderMap, Bytes) -> Answer + Clone + Send + Sync + 'static
{
    let shared = shared.clone();
    move |ConnectInfo(client): ConnectInfo<Client>, method, uri, headers, body| {
        let Shared { ca, metrics } = shared.clone();
        Box::pin(handle(
            ca,
            metrics,
            op,
            client,
            method,
            uri,
            headers,
            String::new(),
            body,
        ))
    }
}

fn route_with_target(
    shared: &Shared,
    op: Op,
) -> impl Fn(ConnectInfo<Client>, Path<String>, Method, Uri, HeaderMap, Bytes) -> Answer
+ Clone
+ Send
+ Sync
+ 'static {
    let shared = shared.clone();
    move |ConnectInfo(client): ConnectInfo<Client>,
          Path(target): Path<String>,
          method,
          uri,
          headers,
          body| {
        let Shared { ca, metrics } = shared.clone();
        Box::pin(handle(
            ca, metrics, op, client, method, uri, headers, target, body,
        ))
    }
}

async fn method_not_allowed(method: Method) -> Response {
    error_response(&CaError::http(
        405,
        codes::METHOD_NOT_ALLOWED,
        format!("Method {method} is not allowed"),
    ))
}

/// The endpoints under `prefix` (routes are not nested: a nested router
/// sees the URI without its prefix, and the token signs the URI as sent).
fn endpoints(ca: &Shared, prefix: &str) -> Router {
    let path = |endpoint: &str| format!("{prefix}/{endpoint}");
    let with_405 = |router: MethodRouter| router.fallback(method_not_allowed);
    Router::new()
        .route(
            &path("cainfo"),
            with_405(get(route(ca, Op::CaInfo)).post(route(ca, Op::CaInfo))),
        )
        .route(&path("enroll"), with_405(post(route(ca, Op::Enroll))))
        .route(&path("reenroll"), with_405(post(route(ca, Op::Reenroll))))
        .route(&path("register"), with_405(post(route(ca, Op::Register))))
        .route(&path("revoke"), with_405(post(route(ca, Op::Revoke))))
        .route(&path("gencrl"), with_405(post(route(ca, Op::GenCrl))))
        .route(
            &path("identities"),
            with_405(get(route(ca, Op::ListIdentities)).post(route(ca, Op::AddIdentity))),
        )
        .route(
            &path("identities/{id}"),
            with_405(
                get(route_with_target(ca, Op::GetIdentity))
                    .put(route_with_target(ca, Op::ModifyIdentity))
                    .delete(route_with_target(ca, Op::RemoveIdentity)),
            ),
        )
        .route(
            &path("affiliations"),
            with_405(get(route(ca, Op::ListAffiliations)).post(route(ca, Op::AddAffiliation))),
        )
        .route(
            &path("affiliations/{name}"),
            with_405(
                get(route_with_target(ca, Op::GetAffiliation))
                    .put(route_with_target(ca, Op::ModifyAffiliation))
                    .delete(route_with_target(ca, Op::RemoveAffiliation)),
            ),
        )
        .route(
            &path("certificates"),
            with_405(get(route(ca, Op::Certificates))),
        )
}

/// The CA's router: every endpoint under `/api/v1` and at the top.
pub fn router(ca: &Arc<Authority>, metrics: ApiMetrics) -> Router {
    let shared = Shared {
        ca: Arc::clone(ca),
        metrics,
    };
    Router::new()
        .merge(endpoints(&shared, "/api/v1"))
        .merge(endpoints(&shared, ""))
        .fallback(not_found)
}

async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    let message = if path.contains("idemix") {
        format!("{path}: Idemix credentials are not provided by weft's CA (X.509 only)")
    } else {
        format!("{path}: no such endpoint")
    };
    error_response(&CaError::http(404, codes::UNKNOWN, message))
}

/// The listener's TLS configuration (no client certificates: callers
/// authenticate with secrets and signed tokens).
pub fn tls_config(config: &CaConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
    };
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        weft_crypto::pem::certificates(&read(&config.tls.certfile, "tls.certfile")?)
            .map_err(|e| format!("tls.certfile {}: {e}", config.tls.certfile.display()))?
            .into_iter()
            .map(Into::into)
            .collect();
    if chain.is_empty() {
        return Err(format!(
            "tls.certfile {}: no certificate",
            config.tls.certfile.display()
        ));
    }
    let key = weft_crypto::pem::blocks(&read(&config.tls.keyfile, "tls.keyfile")?)
        .map_err(|e| format!("tls.keyfile {}: {e}", config.tls.keyfile.display()))?
        .into_iter()
        .find(|block| block.label.ends_with("PRIVATE KEY"))
        .map(|block| block.der)
        .ok_or_else(|| {
            format!(
                "tls.keyfile {}: no private key",
                config.tls.keyfile.display()
            )
        })?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(key)
        .map_err(|e| format!("tls.keyfile {}: {e}", config.tls.keyfile.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls: {e}"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Serves the REST API on `listener` until `shutdown` resolves.
pub async fn serve(
    ca: Arc<Authority>,
    metrics: ApiMetrics,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = router(&ca, metrics).into_make_service_with_connect_info::<Client>();
    let served = match tls {
        Some(config) => {
            let listener =
                TlsListener::new(listener, config).map_err(|e| format!("CA listener: {e}"))?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(PlainListener(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.map_err(|e| format!("CA listener: {e}"))
}
