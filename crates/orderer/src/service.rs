//! The orderer's gRPC services on one TLS listener: Fabric's
//! `orderer.AtomicBroadcast` (Broadcast, Deliver), weft's `Cluster`
//! (Raft and forwarding, consenters only) and `weft.admin.Admin` (channel
//! participation: signed by an admin of the orderer's organisation, see
//! `weft_node::admin`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use weft_protos::Message;
use weft_protos::common::{
    Block, ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader, Status,
};
use weft_protos::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use weft_protos::orderer::{BroadcastResponse, DeliverResponse, SeekInfo, deliver_response};

use crate::channel::{ChannelRuntime, LEADER_WAIT, SubmitError, SubmitResult};
use crate::codec;
use crate::node::{NodeError, Orderer};
use crate::proto;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::cluster_server::{Cluster, ClusterServer};
use weft_node::admin_body;
use weft_node::clock::Clock;
use weft_node::proto::admin_server::{Admin, AdminServer};
use weft_node::proto::{self as admin, SignedAdminRequest};
use weft_node::streams::{CallError, answer_in_order};

pub use weft_node::MAX_GRPC_MESSAGE;

fn now_ms() -> i64 {
    weft_node::SystemClock.now_unix_ms()
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// A request that passed its checks: its channel and its payload.
struct Checked {
    runtime: Arc<ChannelRuntime>,
    payload: Payload,
    creator: Vec<u8>,
}

pub type Refusal = (Status, String);

/// An envelope's parts, decoded but not yet checked against a channel.
pub struct Decoded {
    pub envelope: Envelope,
    pub payload: Payload,
    pub channel_header: ChannelHeader,
    pub signature_header: SignatureHeader,
}

/// Decodes a request envelope; any malformation is a BAD_REQUEST naming the
/// part that is wrong. Total: never panics, whatever the bytes.
pub fn decode_request(bytes: &[u8]) -> Result<Decoded, Refusal> {
    let bad = |what: &str, e: &dyn std::fmt::Display| (Status::BadRequest, format!("{what}: {e}"));
    let envelope = Envelope::decode(bytes).map_err(|e| bad("malformed envelope", &e))?;
    if envelope.payload.is_empty() {
        return Err((Status::BadRequest, "envelope has an empty payload".into()));
    }
    let payload =
        Payload::decode(envelope.payload.as_slice()).map_err(|e| bad("malformed payload", &e))?;
    let header = payload
        .header
        .as_ref()
        .ok_or_else(|| (Status::BadRequest, "payload has no header".to_owned()))?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|e| bad("malformed channel header", &e))?;
    let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(|e| bad("malformed signature header", &e))?;
    if channel_header.channel_id.is_empty() {
        return Err((
            Status::BadRequest,
            "channel header has no channel id".into(),
        ));
    }
    if signature_header.creator.is_empty() {
        return Err((Status::BadRequest, "signature header has no creator".into()));
    }
    Ok(Decoded {
        envelope,
        payload,
        channel_header,
        signature_header,
    })
}

/// Decodes an envelope, finds its channel, runs `precheck` (cheap checks of
/// type and size), then verifies the creator against `policy`.
fn check(
    orderer: &Orderer,
    bytes: &[u8],
    policy: &str,
    precheck: impl FnOnce(&ChannelHeader, &ChannelRuntime) -> Result<(), Refusal>,
) -> Result<Checked, Refusal> {
    let Decoded {
        envelope,
        payload,
        channel_header,
        signature_header,
    } = decode_request(bytes)?;
    let runtime = orderer.channel(&channel_header.channel_id).ok_or_else(|| {
        (
            Status::NotFound,
            format!(
                "channel {} does not exist on this orderer",
                channel_header.channel_id
            ),
        )
    })?;
    precheck(&channel_header, &runtime)?;
    runtime
        .config
        .authorize(
            policy,
            &signature_header.creator,
            &envelope.payload,
            &envelope.signature,
            now_seconds(),
        )
        .map_err(|e| (Status::Forbidden, format!("{policy}: {e}")))?;
    Ok(Checked {
        runtime,
        payload,
        creator: signature_header.creator,
    })
}

/// Checks a Broadcast envelope; returns its channel.
/// The channel and header type an envelope named (for metrics), and
/// whether it may be ordered.
fn check_broadcast(
    orderer: &Orderer,
    bytes: &[u8],
) -> (String, i32, Result<Arc<ChannelRuntime>, Refusal>) {
    let mut named = (String::new(), -1);
    let checked = check(orderer, bytes, "/Channel/Writers", |header, runtime| {
        named = (header.channel_id.clone(), header.r#type);
        match HeaderType::try_from(header.r#type) {
            Ok(HeaderType::EndorserTransaction | HeaderType::Message) => {}
            Ok(HeaderType::ConfigUpdate | HeaderType::Config) => {
                return Err((
                    Status::BadRequest,
                    "channel configuration updates are not supported by this orderer yet".into(),
                ));
            }
            _ => {
                return Err((
                    Status::BadRequest,
                    format!("envelope type {} cannot be broadcast", header.r#type),
                ));
            }
        }
        let max = runtime.config.batch_size.absolute_max_bytes as usize;
        if bytes.len() > max {
            return Err((
                Status::BadRequest,
                format!(
                    "message payload is {} bytes and exceeds maximum allowed {max} bytes",
                    bytes.len()
                ),
            ));
        }
        Ok(())
    });
    (named.0, named.1, checked.map(|c| c.runtime))
}

/// Orders an envelope: locally on the leader, else forwarded to the leader.
/// Retries only while the envelope is certainly not ordered.
async fn order(orderer: &Orderer, runtime: &ChannelRuntime, envelope: Vec<u8>) -> SubmitResult {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        let outcome = if runtime.is_leader() {
            runtime.submit_local(envelope.clone()).await
        } else if let Some(leader) = runtime.leader().filter(|l| *l != runtime.node_id) {
            forward(orderer, runtime, leader, &envelope).await
        } else {
            Err(SubmitError::not_ordered(format!(
                "no Raft leader for channel {}",
                runtime.channel_id()
            )))
        };
        match outcome {
            Err(error) if error.not_ordered && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

async fn forward(
    orderer: &Orderer,
    runtime: &ChannelRuntime,
    leader: u64,
    envelope: &[u8],
) -> SubmitResult {
    let Some(consenter) = runtime.config.consenters.iter().find(|c| c.id == leader) else {
        return Err(SubmitError::not_ordered(format!(
            "leader {leader} is not a consenter"
        )));
    };
    let endpoint = consenter.endpoint();
    let request = || proto::SubmitRequest {
        channel: runtime.channel_id().to_owned(),
        envelope: envelope.to_vec(),
    };
    let response = match orderer.forwarding.call(&endpoint, request()).await {
        Ok(response) => Ok(response),
        // A leader that does not serve Forward handled nothing: Submit.
        Err(CallError::NotHandled(status)) if status.code() == tonic::Code::Unimplemented => {
            let channel = orderer
                .tls
                .channel(&endpoint)
                .map_err(SubmitError::not_ordered)?;
            ClusterClient::new(channel)
                .max_encoding_message_size(MAX_GRPC_MESSAGE)
                .submit(request())
                .await
                .map(Response::into_inner)
        }
        // Nothing was sent, or the stream never opened.
        Err(CallError::NotHandled(status)) => {
            return Err(SubmitError::not_ordered(format!(
                "leader {endpoint} unreachable: {}",
                status.message()
            )));
        }
        Err(CallError::Unanswered(status)) => Err(status),
    };
    match response {
        Ok(response) => {
            if response.status == Status::Success as i32 {
                Ok(())
            } else {
                Err(SubmitError {
                    status: Status::try_from(response.status)
                        .unwrap_or(Status::InternalServerError),
                    reason: response.info,
                    not_ordered: response.not_ordered,
                })
            }
        }
        // The leader could not be reached: nothing was sent to it.
        Err(status) if status.code() == tonic::Code::Unavailable => Err(SubmitError::not_ordered(
            format!("leader {endpoint} unreachable: {}", status.message()),
        )),
        Err(status) => Err(SubmitError::new(
            Status::ServiceUnavailable,
            format!("forwarding to leader {endpoint}: {}", status.message()),
        )),
    }
}

fn broadcast_response(outcome: SubmitResult) -> BroadcastResponse {
    match outcome {
        Ok(()) => BroadcastResponse {
            status: Status::Success as i32,
            info: String::new(),
        },
        Err(error) => BroadcastResponse {
            status: error.status as i32,
            info: error.reason,
        },
    }
}

#[derive(Clone)]
pub struct Services {
    pub orderer: Arc<Orderer>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl AtomicBroadcast for Services {
    type BroadcastStream = ResponseStream<BroadcastResponse>;
    type DeliverStream = ResponseStream<DeliverResponse>;

    async fn broadcast(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, GrpcStatus> {
        let orderer = Arc::clone(&self.orderer);
        let answers = answer_in_order(
            request.into_inner(),
            move |envelope: Envelope| {
                let bytes = envelope.encode_to_vec();
                let orderer = Arc::clone(&orderer);
                async move {
                    let started = std::time::Instant::now();
                    let (channel, kind, checked) = check_broadcast(&orderer, &bytes);
                    let status = match &checked {
                        Ok(_) => Status::Success,
                        Err((status, _)) => *status,
                    };
                    orderer
                        .metrics
                        .validated(&channel, kind, status as i32, started.elapsed());
                    let response = match checked {
                        Ok(runtime) => broadcast_response(order(&orderer, &runtime, bytes).await),
                        Err((status, reason)) => {
                            broadcast_response(Err(SubmitError::new(status, reason)))
                        }
                    };
                    orderer.metrics.broadcast(&channel, kind, response.status);
                    response
                }
            },
            |reason| BroadcastResponse {
                status: Status::InternalServerError as i32,
                info: reason,
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, GrpcStatus> {
        let mut incoming = request.into_inner();
        let (out_tx, out_rx) = mpsc::channel(8);
        let orderer = Arc::clone(&self.orderer);
        tokio::spawn(async move {
            loop {
                let envelope = match incoming.message().await {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) => return,
                    // Unreadable (over the gRPC bound): said, not dropped.
                    Err(status) => {
                        let _ = out_tx.send(Err(status)).await;
                        return;
                    }
                };
                let status = deliver_one(&orderer, &envelope.encode_to_vec(), &out_tx).await;
                let Some(status) = status else { return };
                let response = DeliverResponse {
                    r#type: Some(deliver_response::Type::Status(status as i32)),
                };
                if out_tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// Serves one seek request; returns its final status, or None if the client left.
async fn deliver_one(
    orderer: &Orderer,
    bytes: &[u8],
    out: &mpsc::Sender<Result<DeliverResponse, GrpcStatus>>,
) -> Option<Status> {
    let window = orderer.config.time_window();
    let checked = match check(orderer, bytes, "/Channel/Readers", |header, _| {
        if header.r#type != HeaderType::DeliverSeekInfo as i32 {
            return Err((
                Status::BadRequest,
                format!("envelope type {} is not a seek request", header.r#type),
            ));
        }
        // Fabric's Deliver TimeWindow: an old signed seek is not replayable.
        weft_node::clock::check_timestamp(header.timestamp.as_ref(), now_ms(), window)
            .map_err(|reason| (Status::BadRequest, reason))
    }) {
        Ok(checked) => checked,
        Err((status, reason)) => {
            weft_node::refusal!("deliver refused: {}", reason.escape_debug());
            return Some(status);
        }
    };
    let Ok(seek) = SeekInfo::decode(checked.payload.data.as_slice()) else {
        return Some(Status::BadRequest);
    };
    let chain = Arc::clone(&checked.runtime.chain);
    let height = chain.height.subscribe();
    let first = chain.lock().first_number();
    let sent =
        orderer
            .metrics
            .deliver_blocks_sent
            .with(&[checked.runtime.channel_id(), "false", "block"]);
    let mut removed = checked.runtime.removed();
    let gone = async move {
        let _ = removed.wait_for(|removed| *removed).await;
    };
    weft_node::deliver::serve_seek(&seek, first, height, gone, out, |number| {
        // A long-lived stream ends once its requester's certificate expires.
        if let Err(e) = checked
            .runtime
            .config
            .msps
            .validate(&checked.creator, now_seconds())
        {
            weft_node::refusal!("deliver stream ended: the requester is no longer valid: {e}");
            return Err(Status::Forbidden);
        }
        let bytes = chain
            .lock()
            .block_bytes(number)
            .map_err(|_| Status::InternalServerError)?;
        let block = Block::decode(bytes.as_slice()).map_err(|_| Status::InternalServerError)?;
        sent.inc();
        Ok(DeliverResponse {
            r#type: Some(deliver_response::Type::Block(block)),
        })
    })
    .await
}

/// The certificate a TLS client presented, if any.
fn presented_cert<T>(request: &Request<T>) -> Option<Vec<u8>> {
    Some(request.peer_certs()?.first()?.as_ref().to_vec())
}

/// Whether `presented` is one of the channel's consenter TLS certificates.
fn is_consenter(presented: Option<&[u8]>, runtime: &ChannelRuntime) -> bool {
    presented.is_some_and(|presented| runtime.is_consenter_client_cert(presented))
}

/// Orders an envelope a follower forwarded, if this node leads.
async fn submit_forwarded(runtime: &ChannelRuntime, envelope: Vec<u8>) -> proto::SubmitResponse {
    let outcome = if runtime.is_leader() {
        runtime.submit_local(envelope).await
    } else {
        Err(SubmitError::not_ordered("this orderer is not the leader"))
    };
    match outcome {
        Ok(()) => proto::SubmitResponse {
            status: Status::Success as i32,
            info: String::new(),
            not_ordered: false,
        },
        Err(error) => proto::SubmitResponse {
            status: error.status as i32,
            info: error.reason,
            not_ordered: error.not_ordered,
        },
    }
}

impl Services {
    /// The channel a cluster request names, if the caller presented one of
    /// its consenters' TLS client certificates.
    fn consenter_channel<T>(
        &self,
        request: &Request<T>,
        channel: &str,
    ) -> Result<Arc<ChannelRuntime>, GrpcStatus> {
        consenter_channel(
            &self.orderer,
            presented_cert(request).as_deref(),
            request.remote_addr(),
            channel,
        )
    }
}

/// The channel a cluster request names, if `presented` is one of its
/// consenters' TLS client certificates.
fn consenter_channel(
    orderer: &Orderer,
    presented: Option<&[u8]>,
    remote: Option<std::net::SocketAddr>,
    channel: &str,
) -> Result<Arc<ChannelRuntime>, GrpcStatus> {
    let runtime = orderer
        .channel(channel)
        .ok_or_else(|| GrpcStatus::not_found(format!("channel {channel} does not exist here")))?;
    if !is_consenter(presented, &runtime) {
        weft_node::refusal!(
            "cluster call on channel {channel} from {remote:?} refused: not a consenter's TLS certificate"
        );
        return Err(GrpcStatus::permission_denied(format!(
            "only consenters of channel {channel} may call the cluster service"
        )));
    }
    Ok(runtime)
}

#[tonic::async_trait]
impl Cluster for Services {
    async fn raft(
        &self,
        request: Request<proto::RaftRequest>,
    ) -> Result<Response<proto::RaftResponse>, GrpcStatus> {
        let runtime = self.consenter_channel(&request, &request.get_ref().channel)?;
        let message = request.into_inner();
        // The answer goes back in the format the request came in, so a
        // consenter still writing JSON understands it.
        let format = codec::Format::of(&message.payload);
        let bad = |e: String| GrpcStatus::invalid_argument(e);
        let payload = match proto::RaftKind::try_from(message.kind) {
            Ok(proto::RaftKind::AppendEntries) => {
                let rpc = codec::decode(&message.payload).map_err(bad)?;
                codec::encode_as(format, &runtime.raft.append_entries(rpc).await)
            }
            Ok(proto::RaftKind::Vote) => {
                let rpc = codec::decode(&message.payload).map_err(bad)?;
                codec::encode_as(format, &runtime.raft.vote(rpc).await)
            }
            Ok(proto::RaftKind::InstallSnapshot) => {
                let rpc = codec::decode(&message.payload).map_err(bad)?;
                codec::encode_as(format, &runtime.raft.install_snapshot(rpc).await)
            }
            Err(_) => return Err(GrpcStatus::invalid_argument("unknown Raft message kind")),
        }
        .map_err(GrpcStatus::internal)?;
        Ok(Response::new(proto::RaftResponse { payload }))
    }

    async fn submit(
        &self,
        request: Request<proto::SubmitRequest>,
    ) -> Result<Response<proto::SubmitResponse>, GrpcStatus> {
        let runtime = self.consenter_channel(&request, &request.get_ref().channel)?;
        let envelope = request.into_inner().envelope;
        Ok(Response::new(submit_forwarded(&runtime, envelope).await))
    }

    type ForwardStream = ResponseStream<proto::SubmitResponse>;

    async fn forward(
        &self,
        request: Request<Streaming<proto::SubmitRequest>>,
    ) -> Result<Response<Self::ForwardStream>, GrpcStatus> {
        let presented: Option<Arc<[u8]>> = presented_cert(&request).map(Into::into);
        let remote = request.remote_addr();
        let orderer = Arc::clone(&self.orderer);
        let answers = answer_in_order(
            request.into_inner(),
            move |request: proto::SubmitRequest| {
                let orderer = Arc::clone(&orderer);
                let presented = presented.clone();
                async move {
                    // Each request names its channel: checked as Submit checks it.
                    match consenter_channel(
                        &orderer,
                        presented.as_deref(),
                        remote,
                        &request.channel,
                    ) {
                        Ok(runtime) => submit_forwarded(&runtime, request.envelope).await,
                        Err(status) => proto::SubmitResponse {
                            status: if status.code() == tonic::Code::NotFound {
                                Status::NotFound as i32
                            } else {
                                Status::Forbidden as i32
                            },
                            info: status.message().to_owned(),
                            not_ordered: false,
                        },
                    }
                }
            },
            |reason| proto::SubmitResponse {
                status: Status::InternalServerError as i32,
                info: reason,
                not_ordered: false,
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }
}

fn info(runtime: &ChannelRuntime) -> admin::ChannelInfo {
    let metrics = runtime.raft.metrics().borrow().clone();
    let (first, last, entries) = runtime.store.log_span();
    admin::ChannelInfo {
        name: runtime.channel_id().to_owned(),
        height: runtime.chain.tip().0,
        status: "active".into(),
        consensus_relation: "consenter".into(),
        node_id: runtime.node_id,
        leader_id: metrics.current_leader.unwrap_or_default(),
        term: metrics.current_term,
        raft_log_entries: entries,
        raft_first_index: first,
        raft_last_index: last,
        raft_snapshot_index: metrics.snapshot.map(|s| s.index).unwrap_or_default(),
    }
}

fn node_error(e: NodeError) -> GrpcStatus {
    match e {
        NodeError::Exists(_) => GrpcStatus::already_exists(e.to_string()),
        NodeError::NotFound(_) => GrpcStatus::not_found(e.to_string()),
        NodeError::BadBlock(_) => GrpcStatus::invalid_argument(e.to_string()),
        NodeError::NotConsenter(_) => GrpcStatus::failed_precondition(e.to_string()),
        NodeError::Internal(_) => GrpcStatus::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Admin for Services {
    async fn join(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<admin::ChannelInfo>, GrpcStatus> {
        let authorized = self.orderer.admin.authorize("join", &request)?;
        let join = admin_body!(authorized, Join)?;
        if !join.snapshot_path.is_empty() {
            return Err(GrpcStatus::invalid_argument(
                "an orderer joins a channel from its config block, not from a ledger snapshot",
            ));
        }
        let block = Block::decode(join.config_block.as_slice()).map_err(|e| {
            GrpcStatus::invalid_argument(format!("config block does not decode: {e}"))
        })?;
        let runtime = self.orderer.join(block).await.map_err(node_error)?;
        tracing::info!(
            "joined channel {} (admin {})",
            runtime.channel_id(),
            authorized.admin.subject()
        );
        Ok(Response::new(info(&runtime)))
    }

    async fn list(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<admin::ChannelList>, GrpcStatus> {
        let authorized = self.orderer.admin.authorize("list", &request)?;
        admin_body!(authorized, List)?;
        let channels = self.orderer.channels().iter().map(|r| info(r)).collect();
        Ok(Response::new(admin::ChannelList { channels }))
    }

    async fn info(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<admin::ChannelInfo>, GrpcStatus> {
        let authorized = self.orderer.admin.authorize("info", &request)?;
        let name = admin_body!(authorized, Info)?.channel;
        let runtime = self
            .orderer
            .channel(&name)
            .ok_or_else(|| node_error(NodeError::NotFound(name.clone())))?;
        Ok(Response::new(info(&runtime)))
    }

    async fn remove(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<admin::RemoveResponse>, GrpcStatus> {
        let authorized = self.orderer.admin.authorize("remove", &request)?;
        let name = admin_body!(authorized, Remove)?.channel;
        self.orderer.remove(&name).await.map_err(node_error)?;
        tracing::info!(
            "removed channel {name} (admin {})",
            authorized.admin.subject()
        );
        Ok(Response::new(admin::RemoveResponse {}))
    }

    async fn chaincode_credentials(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<admin::ChaincodeCredentials>, GrpcStatus> {
        self.orderer
            .admin
            .authorize("chaincode credentials", &request)?;
        Err(GrpcStatus::unimplemented("an orderer runs no chaincode"))
    }
}

/// Serves every service on `listener` (bound by the caller to the node's
/// listen address, or to port 0 in tests) until `shutdown` resolves.
pub async fn serve(
    orderer: Arc<Orderer>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let limits = orderer.config.listener.clone();
    let services = Services {
        orderer: Arc::clone(&orderer),
    };
    // Followers forward many envelopes at once over one connection.
    // Any client certificate at the handshake: Raft peers are bound to
    // their consenter certificates, admins checked by the admin service.
    let tls = orderer.tls.server()?;
    let mut builder = weft_node::serve::server(&limits, &orderer.operations.metrics)?;
    let router = builder
        .add_service(
            AtomicBroadcastServer::new(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE)
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            ClusterServer::new(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE)
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(AdminServer::new(services).max_decoding_message_size(MAX_GRPC_MESSAGE));
    weft_node::serve::run(router, listener, &limits, tls, shutdown).await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use weft_protos::common::Header;

    use super::*;

    fn valid() -> Vec<u8> {
        let payload = Payload {
            header: Some(Header {
                channel_header: ChannelHeader {
                    r#type: HeaderType::EndorserTransaction as i32,
                    channel_id: "mychannel".into(),
                    tx_id: "ab".repeat(32),
                    ..Default::default()
                }
                .encode_to_vec(),
                signature_header: SignatureHeader {
                    creator: b"creator".to_vec(),
                    nonce: vec![1; 24],
                }
                .encode_to_vec(),
            }),
            data: vec![7; 64],
        };
        Envelope {
            payload: payload.encode_to_vec(),
            signature: vec![3; 70],
        }
        .encode_to_vec()
    }

    #[test]
    fn each_malformation_is_named() {
        assert!(decode_request(&valid()).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0xff, 0xff, 0xff], "malformed envelope"),
            (Envelope::default().encode_to_vec(), "empty payload"),
            (
                Envelope {
                    payload: vec![0x0a, 0x05, 1],
                    signature: vec![],
                }
                .encode_to_vec(),
                "malformed payload",
            ),
            (
                Envelope {
                    payload: Payload {
                        header: None,
                        data: vec![1],
                    }
                    .encode_to_vec(),
                    signature: vec![],
                }
                .encode_to_vec(),
                "no header",
            ),
        ];
        for (bytes, expected) in cases {
            let (status, reason) = decode_request(&bytes).err().expect("refused");
            assert_eq!(status, Status::BadRequest);
            assert!(reason.contains(expected), "{reason} should say {expected}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err((status, _)) = decode_request(&bytes) {
                prop_assert_eq!(status, Status::BadRequest);
            }
        }

        #[test]
        fn mutated_envelopes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut bytes = valid();
            for (index, value) in flips {
                let i = index.index(bytes.len());
                bytes[i] ^= value;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep);
            if let Err((status, _)) = decode_request(&bytes) {
                prop_assert_eq!(status, Status::BadRequest);
            }
        }
    }
}
