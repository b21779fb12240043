//! The routes, authentication, and the calls into the network.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use weft_sdk::config::{OrgConfig, Settings};
use weft_sdk::{Checkpoint, Client, Committed, SdkError};

use crate::config::{RestConfig, Timing};
use crate::error::ApiError;
use crate::keys::KeyStore;
use crate::openapi;

/// Async requests remembered for `GET …/transactions/{txId}`.
const TRACKED_MAX: usize = 10_000;

/// Where an `?async=true` request stands.
#[derive(Debug, Clone)]
enum Tracked {
    Pending,
    Committed(Committed),
    Failed(ApiError),
}

/// The gateway's state.
pub struct Rest {
    config: RestConfig,
    timing: Timing,
    keys: KeyStore,
    clients: Mutex<HashMap<(String, String), Client>>,
    in_flight: Arc<Semaphore>,
    tracked: Mutex<(HashMap<String, Tracked>, VecDeque<String>)>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.is_ascii())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            weft_crypto::random_bytes::<8>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A chaincode's answer: JSON when it is JSON, else text.
pub fn payload_value(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// What a transaction or query request says.
#[derive(Debug)]
struct Call {
    function: String,
    args: Vec<String>,
    transient: BTreeMap<String, Vec<u8>>,
}

/// Reads a request body, naming the field that is wrong.
fn call(body: &[u8]) -> Result<Call, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"function\": …, \"args\": […]}",
        ));
    };
    for key in object.keys() {
        if !["function", "args", "transient"].contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown field `{key}` (fields: function, args, transient)"
            )));
        }
    }
    let function = match object.get("function") {
        Some(Value::String(f)) if !f.is_empty() => f.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `function`: expected a non-empty string",
            ));
        }
        None => return Err(ApiError::bad_request("field `function` is missing")),
    };
    let args = match object.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::bad_request(format!(
                    "field `args[{i}]`: expected a string, got {item}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `args`: expected an array of strings",
            ));
        }
    };
    let transient = match object.get("transient") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key.clone(), s.as_bytes().to_vec())),
                _ => Err(ApiError::bad_request(format!(
                    "field `transient.{key}`: expected a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `transient`: expected an object of strings",
            ));
        }
    };
    Ok(Call {
        function,
        args,
        transient,
    })
}

impl Rest {
    pub fn new(config: RestConfig, timing: Timing) -> Result<Arc<Self>, String> {
        let keys = KeyStore::open(&config.keys)?;
        Ok(Arc::new(Rest {
            in_flight: Arc::new(Semaphore::new(config.limits.max_in_flight)),
            config,
            timing,
            keys,
            clients: Mutex::new(HashMap::new()),
            tracked: Mutex::new((HashMap::new(), VecDeque::new())),
        }))
    }

    /// The identity an `Authorization: Bearer <key>` header acts as.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(String, String), ApiError> {
        let unauthorized =
            |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("no `Authorization: Bearer <key>` header"))?;
        let key = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <key>`"))?;
        self.keys
            .identity(key.trim())
            .ok_or_else(|| unauthorized("unknown or revoked API key"))
    }

    fn client(&self, identity: &str, channel: &str) -> Result<Client, ApiError> {
        weft_protoutil::check_channel_id(channel)
            .map_err(|e| ApiError::bad_request(format!("`{channel}`: {e}")))?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&(identity.to_owned(), channel.to_owned())) {
            return Ok(client.clone());
        }
        let spec = self.config.identities.get(identity).ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("the key's identity {identity} is not configured on this gateway"),
            )
        })?;
        let settings = Settings {
            org: OrgConfig {
                msp_id: spec.msp_id.clone(),
                identity: spec.identity.clone(),
                gateway: spec.gateway.clone(),
                channel: channel.to_owned(),
                chaincodes: BTreeMap::new(),
                default_chaincode: None,
                retry: self.config.retry.clone(),
                timeout: self.config.timeout.clone(),
                commit_check: self.config.commit_check.clone(),
            },
            timeout: self.timing.timeout,
            commit_check: self.timing.commit_check,
            backoff: self.timing.backoff,
            max_backoff: self.timing.max_backoff,
        };
        let client = Client::from_settings(settings).map_err(|e| ApiError::from_sdk(&e))?;
        clients.insert((identity.to_owned(), channel.to_owned()), client.clone());
        Ok(client)
    }

    fn track(&self, tx_id: &str, state: Tracked) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
        if !tracked.0.contains_key(tx_id) {
            tracked.1.push_back(tx_id.to_owned());
            if tracked.1.len() > TRACKED_MAX
                && let Some(oldest) = tracked.1.pop_front()
            {
                tracked.0.remove(&oldest);
            }
        }
        tracked.0.insert(tx_id.to_owned(), state);
    }

    async fn read_body(&self, body: Body) -> Result<Vec<u8>, ApiError> {
        axum::body::to_bytes(body, self.config.limits.max_body_bytes)
            .await
            .map(|b| b.to_vec())
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    format!(
                        "the body is larger than {} bytes (limits.maxBodyBytes)",
                        self.config.limits.max_body_bytes
                    ),
                )
            })
    }
}

/// Runs `work` within the in-flight limit, logging and answering as the
/// gateway does.
async fn guarded<F>(rest: &Rest, headers: &HeaderMap, what: &str, work: F) -> Response
where
    F: std::future::Future<Output = Result<Response, ApiError>>,
{
    let request_id = request_id(headers);
    let Ok(_permit) = Arc::clone(&rest.in_flight).try_acquire_owned() else {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!(
                "{} requests are in flight (limits.maxInFlight); try again shortly",
                rest.config.limits.max_in_flight
            ),
        )
        .with_request(&request_id);
        tracing::warn!(request = %request_id, "{what}: {}", error.message);
        return with_request_id(error.into_response(), &request_id);
    };
    let started = std::time::Instant::now();
    let response = match work.await {
        Ok(response) => {
            tracing::info!(request = %request_id, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "{what}");
            response
        }
        Err(error) => {
            let error = error.with_request(&request_id);
            tracing::warn!(request = %request_id, status = error.status.as_u16(), code = error.code, "{what}: {}", error.message);
            error.into_response()
        }
    };
    with_request_id(response, &request_id)
}

async fn transactions(
    State(rest): State<Arc<Rest>>,
    Path((channel, chaincode)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let what = format!("submit {channel}/{chaincode}");
    let query = weft_node::query::pairs(uri.query().unwrap_or(""));
    let work = async {
        let (_, identity) = rest.authenticate(&headers)?;
        let asynchronous = match query.get("async").map(String::as_str) {
            None | Some("false") => false,
            Some("true") | Some("") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "query parameter `async`: expected true or false, got {other:?}"
                )));
            }
        };
        let call = call(&rest.read_body(body).await?)?;
        let client = rest.client(&identity, &channel)?;
        let contract = client.contract(&chaincode).with_transient(call.transient);
        if asynchronous {
            let pending = contract
                .submit_async(&call.function, &call.args)
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            let tx_id = pending.tx_id.clone();
            rest.track(&tx_id, Tracked::Pending);
            let tracker = Arc::clone(&rest);
            let first = tx_id.clone();
            tokio::spawn(async move {
                let state = match pending.committed().await {
                    Ok(committed) => Tracked::Committed(committed),
                    Err(error) => Tracked::Failed(ApiError::from_sdk(&error)),
                };
                tracker.track(&first, state);
            });
            return Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({"txId": tx_id, "status": "PENDING"})),
            )
                .into_response());
        }
        let committed = contract
            .invoke(&call.function, &call.args)
            .await
            .map_err(|e| ApiError::from_sdk(&e))?;
        Ok(axum::Json(json!({
            "txId": committed.tx_id,
            "status": "VALID",
            "blockNumber": committed.block,
            "result": payload_value(&committed.result),
            "attempts": committed.attempts,
        }))
        .into_response())
    };
    guarded(&rest, &headers, &what, work).await
}

async fn query(
    State(rest): State<Arc<Rest>>,
    Path((channel, chaincode)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let what = format!("query {channel}/{chaincode}");
    let work = async {
        let (_, identity) = rest.authenticate(&headers)?;
        let call = call(&rest.read_body(body).await?)?;
        let client = rest.client(&identity, &channel)?;
        let payload = client
            .contract(&chaincode)
            .with_transient(call.transient)
            .query(&call.function, &call.args)
            .await
            .map_err(|e| ApiError::from_sdk(&e))?;
        Ok(axum::Json(json!({ "result": payload_value(&payload) })).into_response())
    };
    guarded(&rest, &headers, &what, work).await
}

async fn transaction(
    State(rest): State<Arc<Rest>>,
    Path((channel, tx_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let what = format!("status {channel}/{tx_id}");
    let work = async {
        let (_, identity) = rest.authenticate(&headers)?;
        let client = rest.client(&identity, &channel)?;
        let tracked = rest
            .tracked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(&tx_id)
            .cloned();
        let body = match tracked {
            Some(Tracked::Pending) => json!({"txId": tx_id, "status": "PENDING"}),
            Some(Tracked::Committed(committed)) if committed.tx_id == tx_id => json!({
                "txId": tx_id, "status": "VALID", "blockNumber": committed.block,
                "result": payload_value(&committed.result),
            }),
            Some(Tracked::Committed(committed)) => json!({
                "txId": tx_id, "status": "RETRIED", "committedTxId": committed.tx_id,
                "blockNumber": committed.block, "attempts": committed.attempts,
                "result": payload_value(&committed.result),
            }),
            Some(Tracked::Failed(error)) => {
                json!({"txId": tx_id, "status": "FAILED", "error": error.body()["error"]})
            }
            None => match client.commit_status(&tx_id, Duration::from_secs(1)).await {
                Ok(block) => json!({"txId": tx_id, "status": "VALID", "blockNumber": block}),
                Err(SdkError::Commit {
                    code: Some(code),
                    block,
                    ..
                }) => json!({"txId": tx_id, "status": code.as_str_name(), "blockNumber": block}),
                Err(SdkError::Commit { code: None, .. }) => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!(
                            "transaction {tx_id} has not committed on channel {channel} (or not yet)"
                        ),
                    ));
                }
                Err(error) => return Err(ApiError::from_sdk(&error)),
            },
        };
        Ok(axum::Json(body).into_response())
    };
    guarded(&rest, &headers, &what, work).await
}

fn checkpoint(text: &str, after: bool) -> Result<Checkpoint, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "`{text}` is not a position: a block number, or block:transaction as in an event's id"
        ))
    };
    let (block, tx) = match text.split_once(':') {
        Some((block, tx)) => (block, Some(tx)),
        None => (text, None),
    };
    let block: u64 = block.parse().map_err(|_| bad())?;
    let tx_index: u32 = match tx {
        Some(tx) => tx.parse().map_err(|_| bad())?,
        None => 0,
    };
    Ok(Checkpoint {
        block,
        tx_index: if after { tx_index + 1 } else { tx_index },
    })
}

/// `GET …/events?chaincode=…&since=…`: Server-Sent Events, one per chaincode
/// event of a valid transaction, `id: <block>:<tx>` (what `since` and
/// `Last-Event-ID` resume after), `event: <name>`, JSON data.
async fn events(
    State(rest): State<Arc<Rest>>,
    Path(channel): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    let query = weft_node::query::pairs(uri.query().unwrap_or(""));
    let started = async {
        let (_, identity) = rest.authenticate(&headers)?;
        let chaincode = query
            .get("chaincode")
            .cloned()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::bad_request("query parameter `chaincode` is missing"))?;
        let client = rest.client(&identity, &channel)?;
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|id| checkpoint(id, true))
            .transpose()?;
        let from = match (resume, query.get("since").map(String::as_str)) {
            (Some(after), _) => after,
            (None, Some(since)) => checkpoint(since, since.contains(':'))?,
            (None, None) => Checkpoint {
                block: client.height().await.map_err(|e| ApiError::from_sdk(&e))?,
                tx_index: 0,
            },
        };
        let mut stream = client
            .chaincode_events(&chaincode, from)
            .await
            .map_err(|e| ApiError::from_sdk(&e))?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
        let log_id = request_id.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    () = sender.closed() => return,
                };
                let event = match next {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::warn!(request = %log_id, "event stream ended: {error}");
                        let _ = sender
                            .send(Ok(Event::default().event("error").data(error.to_string())))
                            .await;
                        return;
                    }
                };
                let data = json!({
                    "txId": event.tx_id,
                    "blockNumber": event.block,
                    "txIndex": event.tx_index,
                    "chaincode": event.chaincode,
                    "name": event.name,
                    "payload": payload_value(&event.payload),
                });
                let message = Event::default()
                    .id(format!("{}:{}", event.block, event.tx_index))
                    .event(event.name.replace(['\n', '\r'], " "))
                    .data(data.to_string());
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        tracing::info!(request = %request_id, "events {channel}/{chaincode} from {}:{}", from.block, from.tx_index);
        Ok::<_, ApiError>(
            Sse::new(tokio_stream::wrappers::ReceiverStream::new(receiver))
                .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
                .into_response(),
        )
    };
    let response = match started.await {
        Ok(response) => response,
        Err(error) => {
            let error = error.with_request(&request_id);
            tracing::warn!(request = %request_id, status = error.status.as_u16(), "events: {}", error.message);
            error.into_response()
        }
    };
    with_request_id(response, &request_id)
}

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!(
            "{}: no such endpoint (see /api/v1/openapi.json)",
            uri.path()
        ),
    )
    .into_response()
}

/// The routes, as the OpenAPI document lists them.
pub fn router(rest: Arc<Rest>) -> Router {
    Router::new()
        .route(openapi::TRANSACTIONS, post(transactions))
        .route(openapi::QUERY, post(query))
        .route(openapi::TRANSACTION, get(transaction))
        .route(openapi::EVENTS, get(events))
        .route(openapi::DOCUMENT, get(openapi_document))
        .fallback(not_found)
        .with_state(rest)
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(
    rest: Arc<Rest>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    axum::serve(listener, router(rest))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("REST gateway: {e}"))
}
