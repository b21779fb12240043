//! The Fabric Gateway (`/gateway.Gateway`): Evaluate, Endorse (gathering
//! endorsements from other organisations' peers until the chaincode's
//! endorsement policy is satisfied), Submit (to the ordering service, failing
//! over between orderers), CommitStatus and ChaincodeEvents. Errors are gRPC
//! statuses with `gateway.ErrorDetail`s, as the official clients read them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_node::streams::OrderedStreams;
use weft_protos::Any;
use weft_protos::common::{Envelope, Header, Payload};
use weft_protos::gateway::gateway_server::Gateway;
use weft_protos::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, CommitStatusResponse,
    EndorseRequest, EndorseResponse, ErrorDetail, EvaluateRequest, EvaluateResponse,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::{BroadcastResponse, SeekPosition, seek_position};
use weft_protos::peer::endorser_client::EndorserClient;
use weft_protos::peer::{
    ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeEvent, ChaincodeProposalPayload,
    ProposalResponse, SignedProposal, Transaction, TransactionAction, TxValidationCode,
};
use weft_protoutil::parse_envelope;

use crate::channel::{PeerChannel, now_seconds};
use crate::config::GatewayPeer;
use crate::endorser::{EndorseError, Endorsing, Purpose, process_proposal, unpack};
use crate::lifecycle;

/// A gRPC status carrying `gateway.ErrorDetail`s in `grpc-status-details-bin`.
pub fn status_with_details(
    code: tonic::Code,
    message: String,
    details: Vec<ErrorDetail>,
) -> Status {
    let rpc = weft_protos::google::rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: details
            .into_iter()
            .map(|detail| Any {
                type_url: "type.googleapis.com/gateway.ErrorDetail".into(),
                value: detail.encode_to_vec(),
            })
            .collect(),
    };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// The deadline a client set (`grpc-timeout`), if any.
pub fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// One endorser's answer.
struct Endorsed {
    msp_id: String,
    address: String,
    response: ProposalResponse,
}

/// The `gateway.Gateway` service.
#[derive(Clone)]
pub struct GatewayService {
    endorsing: Arc<Endorsing>,
    /// Connections to other peers and to the orderers.
    tls: weft_node::Tls,
    /// This peer's address, as other organisations reach it.
    address: String,
    /// Other organisations' peers, which endorse for them.
    other_peers: Arc<[GatewayPeer]>,
    /// The longest a CommitStatus waits (`limits.commit_status_timeout`).
    commit_status_timeout: Duration,
    /// Which orderer a submission tries first (round robin).
    orderer_cursor: Arc<AtomicUsize>,
    /// One long-lived Broadcast stream per orderer.
    broadcasts: Arc<OrderedStreams<Envelope, BroadcastResponse>>,
}

impl GatewayService {
    pub fn new(
        endorsing: Arc<Endorsing>,
        tls: weft_node::Tls,
        address: String,
        other_peers: Vec<GatewayPeer>,
        commit_status_timeout: Duration,
    ) -> Self {
        GatewayService {
            endorsing,
            broadcasts: Arc::new(OrderedStreams::new(
                tls.clone(),
                Arc::new(|connection, envelopes| {
                    Box::pin(async move {
                        AtomicBroadcastClient::new(connection)
                            .max_encoding_message_size(crate::MAX_GRPC_MESSAGE)
                            .broadcast(envelopes)
                            .await
                            .map(Response::into_inner)
                    })
                }),
            )),
            tls,
            address,
            other_peers: other_peers.into(),
            commit_status_timeout,
            orderer_cursor: Arc::default(),
        }
    }

    fn local_detail(&self, message: String) -> ErrorDetail {
        ErrorDetail {
            address: self.address.clone(),
            msp_id: self.endorsing.msp_id.clone(),
            message,
        }
    }

    /// Which of `count` orderers to try first.
    fn next_orderer(&self, count: usize) -> usize {
        self.orderer_cursor.fetch_add(1, Ordering::Relaxed) % count.max(1)
    }

    fn channel(&self, channel_id: &str) -> Result<Arc<PeerChannel>, Status> {
        self.endorsing.channels.get(channel_id).ok_or_else(|| {
            Status::not_found(format!("channel {channel_id} not found on this peer"))
        })
    }

    /// Decodes a signed request and checks that its identity signed it and
    /// may read the channel it names.
    fn signed_request<M: Message + Default>(
        &self,
        request: &[u8],
        signature: &[u8],
        parts: impl Fn(&M) -> (String, Vec<u8>),
    ) -> Result<(M, Arc<PeerChannel>), Status> {
        let decoded = M::decode(request).map_err(|e| {
            Status::invalid_argument(format!("malformed {}: {e}", std::any::type_name::<M>()))
        })?;
        let (channel_id, identity) = parts(&decoded);
        let channel = self.channel(&channel_id)?;
        channel
            .config
            .authorize(
                "/Channel/Application/Readers",
                &identity,
                request,
                signature,
                now_seconds(),
            )
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        Ok((decoded, channel))
    }

    async fn endorse_local(&self, proposal: &SignedProposal) -> Result<Endorsed, ErrorDetail> {
        process_proposal(&self.endorsing, proposal, Purpose::Endorse)
            .await
            .map(|response| Endorsed {
                msp_id: self.endorsing.msp_id.clone(),
                address: self.address.clone(),
                response,
            })
            .map_err(|e| self.local_detail(e.to_string()))
    }

    async fn endorse_remote(
        &self,
        msp_id: &str,
        address: &str,
        proposal: &SignedProposal,
    ) -> Result<Endorsed, ErrorDetail> {
        let detail = |message: String| ErrorDetail {
            address: address.to_owned(),
            msp_id: msp_id.to_owned(),
            message,
        };
        let channel = self.tls.channel(address).map_err(detail)?;
        let mut client = EndorserClient::new(channel)
            .max_decoding_message_size(crate::MAX_GRPC_MESSAGE)
            .max_encoding_message_size(crate::MAX_GRPC_MESSAGE);
        let response = client
            .process_proposal(proposal.clone())
            .await
            .map_err(|e| detail(e.message().to_owned()))?
            .into_inner();
        Ok(Endorsed {
            msp_id: msp_id.to_owned(),
            address: address.to_owned(),
            response,
        })
    }

    /// Endorsements that satisfy the chaincode's policy (or come from exactly
    /// the organisations the client named).
    async fn gather(
        &self,
        channel: &PeerChannel,
        chaincode: &str,
        proposal: &SignedProposal,
        organizations: &[String],
    ) -> Result<Vec<Endorsed>, Status> {
        let local_msp = self.endorsing.msp_id.clone();
        let definitions = channel.definitions();
        let policy = definitions.policies.get(chaincode);
        // An approval is for the caller's own organisation: its peers alone
        // endorse it (Fabric clients target their own peer for it).
        let organizations = if organizations.is_empty() && is_approval(chaincode, proposal) {
            std::slice::from_ref(&local_msp)
        } else {
            organizations
        };
        let mut wanted: Vec<String> = if organizations.is_empty() {
            let mut orgs = vec![local_msp.clone()];
            if let Some(policy) = policy {
                for principal in policy.principals() {
                    let msp = principal.msp_id().to_owned();
                    if !orgs.contains(&msp) {
                        orgs.push(msp);
                    }
                }
            }
            orgs
        } else {
            organizations.to_vec()
        };
        let mut endorsed: Vec<Endorsed> = Vec::new();
        let mut failures = Vec::new();
        let satisfied = |endorsed: &[Endorsed]| {
            let Some(policy) = policy else {
                return false;
            };
            let identities: Vec<_> = endorsed
                .iter()
                .filter_map(|e| e.response.endorsement.as_ref())
                .filter_map(|e| {
                    channel
                        .config
                        .msps
                        .validate(&e.endorser, now_seconds())
                        .ok()
                })
                .collect();
            policy.is_satisfied_by(&identities)
        };
        let named = !organizations.is_empty();
        // The local org first; then one more organisation at a time until satisfied.
        while !wanted.is_empty() {
            if !named && !endorsed.is_empty() && satisfied(&endorsed) {
                break;
            }
            let msp = wanted.remove(0);
            let result = if msp == local_msp {
                self.endorse_local(proposal).await
            } else {
                let Some(remote) = self.other_peers.iter().find(|p| p.msp_id == msp) else {
                    failures.push(ErrorDetail {
                        address: String::new(),
                        msp_id: msp.clone(),
                        message: format!("no peer of {msp} is known to this gateway"),
                    });
                    continue;
                };
                self.endorse_remote(&msp, &remote.address, proposal).await
            };
            match result {
                Ok(e) => {
                    let status = e.response.response.as_ref().map_or(0, |r| r.status);
                    if (200..400).contains(&status) && e.response.endorsement.is_some() {
                        endorsed.push(e);
                    } else {
                        let message = e
                            .response
                            .response
                            .as_ref()
                            .map(|r| r.message.clone())
                            .unwrap_or_default();
                        failures.push(ErrorDetail {
                            address: e.address,
                            msp_id: e.msp_id,
                            message: format!("chaincode response {status}, {message}"),
                        });
                        // A chaincode that refused the transaction refuses it everywhere.
                        break;
                    }
                }
                Err(detail) => failures.push(detail),
            }
        }
        if !failures.is_empty() || (!named && !satisfied(&endorsed)) || endorsed.is_empty() {
            if failures.is_empty() {
                failures.push(self.local_detail(format!(
                    "the endorsements gathered do not satisfy the endorsement policy of chaincode {chaincode}"
                )));
            }
            return Err(status_with_details(
                tonic::Code::Aborted,
                "failed to endorse transaction, see attached details for more info".into(),
                failures,
            ));
        }
        Ok(endorsed)
    }
}

fn endorse_error_status(error: EndorseError, detail: ErrorDetail, prefix: &str) -> Status {
    let message = format!("{prefix}: {error}");
    status_with_details(error.code(), message, vec![detail])
}

type EventStream = Pin<Box<dyn Stream<Item = Result<ChaincodeEventsResponse, Status>> + Send>>;

/// The pauses before endorsing again when the endorsers' results differ.
const MISMATCH_RETRIES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(50),
    std::time::Duration::from_millis(150),
    std::time::Duration::from_millis(400),
];

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let call = self.endorsing.metrics.gateway_call("Evaluate");
        call.end(
            async move {
                let request = request.into_inner();
                let proposal = request.proposed_transaction.ok_or_else(|| {
                    Status::invalid_argument("a proposed transaction is required")
                })?;
                let response = process_proposal(&self.endorsing, &proposal, Purpose::Evaluate)
                    .await
                    .map_err(|e| {
                        let detail = self.local_detail(e.to_string());
                        endorse_error_status(e, detail, "evaluate call to endorser returned error")
                    })?;
                let result = response.response.unwrap_or_default();
                if !(200..400).contains(&result.status) {
                    let message =
                        format!("chaincode response {}, {}", result.status, result.message);
                    return Err(status_with_details(
                        tonic::Code::Unknown,
                        format!("evaluate call to endorser returned error: {message}"),
                        vec![self.local_detail(message.clone())],
                    ));
                }
                Ok(Response::new(EvaluateResponse {
                    result: Some(result),
                }))
            }
            .await,
        )
    }

    async fn endorse(
        &self,
        request: Request<EndorseRequest>,
    ) -> Result<Response<EndorseResponse>, Status> {
        let call = self.endorsing.metrics.gateway_call("Endorse");
        call.end(async move {
            let request = request.into_inner();
            let proposal = request
                .proposed_transaction
                .ok_or_else(|| Status::invalid_argument("a proposed transaction is required"))?;
            let unpacked = unpack(&proposal).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let channel = self.channel(&unpacked.channel_header.channel_id)?;
            // Peers a block apart read different versions and so simulate
            // different results; the one behind catches up within a block.
            // Asking again a few times spares the client an ABORTED that a
            // moment's wait cures (a non-deterministic chaincode still fails).
            let mut pauses = MISMATCH_RETRIES.into_iter();
            let endorsed = loop {
                let endorsed = self
                    .gather(
                        &channel,
                        &unpacked.chaincode,
                        &proposal,
                        &request.endorsing_organizations,
                    )
                    .await?;
                let first = &endorsed[0].response.payload;
                if endorsed.iter().all(|e| &e.response.payload == first) {
                    break endorsed;
                }
                match pauses.next() {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => break endorsed,
                }
            };
            let payload = &endorsed[0].response.payload;
            if let Some(other) = endorsed.iter().find(|e| &e.response.payload != payload) {
                return Err(status_with_details(
                    tonic::Code::Aborted,
                    "ProposalResponsePayloads do not match".into(),
                    vec![ErrorDetail {
                        address: other.address.clone(),
                        msp_id: other.msp_id.clone(),
                        message: "this endorser simulated a different result (non-deterministic chaincode, or state that differs between peers)".into(),
                    }],
                ));
            }
            let chaincode_proposal_payload = ChaincodeProposalPayload {
                input: unpacked.payload.input.clone(),
                transient_map: Default::default(),
            }
            .encode_to_vec();
            let action = ChaincodeActionPayload {
                chaincode_proposal_payload,
                action: Some(ChaincodeEndorsedAction {
                    proposal_response_payload: payload.clone(),
                    endorsements: endorsed
                        .iter()
                        .filter_map(|e| e.response.endorsement.clone())
                        .collect(),
                }),
            };
            let transaction = Transaction {
                actions: vec![TransactionAction {
                    header: unpacked.header.signature_header.clone(),
                    payload: action.encode_to_vec(),
                }],
            };
            let payload = Payload {
                header: Some(Header {
                    channel_header: unpacked.header.channel_header.clone(),
                    signature_header: unpacked.header.signature_header.clone(),
                }),
                data: transaction.encode_to_vec(),
            };
            Ok(Response::new(EndorseResponse {
                prepared_transaction: Some(Envelope {
                    payload: payload.encode_to_vec(),
                    signature: Vec::new(),
                }),
            }))
        }
        .await)
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let call = self.endorsing.metrics.gateway_call("Submit");
        call.end(
            async move {
                let request = request.into_inner();
                let envelope = request.prepared_transaction.ok_or_else(|| {
                    Status::invalid_argument("a prepared transaction is required")
                })?;
                if envelope.signature.is_empty() {
                    return Err(Status::invalid_argument(
                        "the prepared transaction is not signed",
                    ));
                }
                let channel = self.channel(&request.channel_id)?;
                let endpoints = channel.orderer_endpoints();
                let mut failures = Vec::new();
                // Whether an orderer answered with a refusal (not just unavailability).
                let mut rejected = false;
                let start = self.next_orderer(endpoints.len());
                for offset in 0..endpoints.len() {
                    let endpoint = &endpoints[(start + offset) % endpoints.len()];
                    let detail = |message: String| ErrorDetail {
                        address: endpoint.clone(),
                        msp_id: String::new(),
                        message,
                    };
                    match self.broadcasts.call(endpoint, envelope.clone()).await {
                        Ok(response)
                            if response.status == weft_protos::common::Status::Success as i32 =>
                        {
                            return Ok(Response::new(SubmitResponse {}));
                        }
                        // Any failure moves on to the next orderer: one orderer may
                        // have lost the channel, be overloaded or be partitioned
                        // while the others order the transaction.
                        Ok(response) => {
                            let status = weft_protos::common::Status::try_from(response.status)
                                .map(|s| s.as_str_name().to_owned())
                                .unwrap_or_else(|_| response.status.to_string());
                            if response.status
                                != weft_protos::common::Status::ServiceUnavailable as i32
                            {
                                rejected = true;
                            }
                            failures.push(detail(format!(
                            "received unsuccessful response from orderer: status={status}, info={}",
                            response.info
                        )));
                        }
                        Err(e) => failures.push(detail(e.status().message().to_owned())),
                    }
                }
                if rejected {
                    return Err(status_with_details(
                        tonic::Code::Aborted,
                        "rejected by the ordering service, see attached details for more info"
                            .into(),
                        failures,
                    ));
                }
                Err(status_with_details(
                    tonic::Code::Unavailable,
                    "no orderer accepted the transaction, see attached details for more info"
                        .into(),
                    failures,
                ))
            }
            .await,
        )
    }

    async fn commit_status(
        &self,
        request: Request<SignedCommitStatusRequest>,
    ) -> Result<Response<CommitStatusResponse>, Status> {
        let call = self.endorsing.metrics.gateway_call("CommitStatus");
        call.end(
            async move {
                // The client's deadline, bounded by the peer's own: a request
                // without one never holds a task forever.
                let cap = self.commit_status_timeout;
                let wait = deadline(&request).map_or(cap, |wait| wait.min(cap));
                let signed = request.into_inner();
                let (inner, channel) = self.signed_request(
                    &signed.request,
                    &signed.signature,
                    |r: &CommitStatusRequest| (r.channel_id.clone(), r.identity.clone()),
                )?;
                // Registered first: a commit between the lookup and the
                // wait still answers it.
                let mut waiter = channel.commit_waiters.register(&inner.transaction_id);
                if let Some(location) = channel
                    .ledger
                    .transaction(&inner.transaction_id)
                    .map_err(|e| Status::internal(e.to_string()))?
                {
                    return Ok(Response::new(CommitStatusResponse {
                        result: location.code as i32,
                        block_number: location.block,
                    }));
                }
                let until = tokio::time::Instant::now() + wait;
                match tokio::time::timeout_at(until, &mut waiter.committed).await {
                    Ok(Ok((code, block))) => Ok(Response::new(CommitStatusResponse {
                        result: code as i32,
                        block_number: block,
                    })),
                    Ok(Err(_)) => Err(Status::unavailable("the peer is shutting down")),
                    Err(_) => Err(Status::deadline_exceeded(format!(
                        "transaction {} was not committed within {} s",
                        inner.transaction_id,
                        wait.as_secs()
                    ))),
                }
            }
            .await,
        )
    }

    type ChaincodeEventsStream = EventStream;

    async fn chaincode_events(
        &self,
        request: Request<SignedChaincodeEventsRequest>,
    ) -> Result<Response<Self::ChaincodeEventsStream>, Status> {
        let call = self.endorsing.metrics.gateway_call("ChaincodeEvents");
        call.end(
            async move {
                let signed = request.into_inner();
                let (inner, channel) = self.signed_request(
                    &signed.request,
                    &signed.signature,
                    |r: &ChaincodeEventsRequest| (r.channel_id.clone(), r.identity.clone()),
                )?;
                let start = start_block(&channel, inner.start_position.as_ref())?;
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(stream_events(
                    channel,
                    inner.chaincode_id,
                    start,
                    inner.after_transaction_id,
                    tx,
                ));
                let stream: EventStream = Box::pin(ReceiverStream::new(rx));
                Ok(Response::new(stream))
            }
            .await,
        )
    }
}

/// Where a stream starts: `SeekNextCommit` (the default), oldest, newest or a block number.
pub fn start_block(channel: &PeerChannel, position: Option<&SeekPosition>) -> Result<u64, Status> {
    let height = *channel.height.borrow();
    let first = channel.ledger.first_block_number();
    let start = match position.and_then(|p| p.r#type.as_ref()) {
        None | Some(seek_position::Type::NextCommit(_)) => height,
        Some(seek_position::Type::Oldest(_)) => first,
        Some(seek_position::Type::Newest(_)) => height.saturating_sub(1),
        Some(seek_position::Type::Specified(s)) => s.number,
    };
    if start < first {
        return Err(Status::out_of_range(format!(
            "block {start} is before this peer's first block {first} on channel {} \
             (the peer joined the channel from a snapshot)",
            channel.id
        )));
    }
    Ok(start)
}

/// The chaincode events of `chaincode` in a committed block's valid
/// transactions, after transaction `after` when it is in the block.
pub fn block_events(
    block: &weft_protos::common::Block,
    chaincode: &str,
    after: Option<&str>,
) -> Vec<ChaincodeEvent> {
    let filter = weft_protoutil::transactions_filter(block).unwrap_or(&[]);
    let envelopes = weft_protoutil::block_envelopes(block);
    let transactions: Vec<_> = envelopes
        .iter()
        .map(|envelope| parse_envelope(envelope).ok())
        .collect();
    let skip = after
        .and_then(|after| {
            transactions
                .iter()
                .position(|tx| tx.as_ref().is_some_and(|tx| tx.tx_id() == after))
        })
        .map_or(0, |position| position + 1);
    transactions
        .into_iter()
        .enumerate()
        .skip(skip)
        .filter(|(index, _)| filter.get(*index).copied() == Some(TxValidationCode::Valid as u8))
        .filter_map(|(_, tx)| tx?.action)
        .filter_map(|action| ChaincodeEvent::decode(action.events.as_slice()).ok())
        .filter(|event| event.chaincode_id == chaincode && !event.event_name.is_empty())
        .collect()
}

async fn stream_events(
    channel: Arc<PeerChannel>,
    chaincode: String,
    start: u64,
    after_tx_id: String,
    out: mpsc::Sender<Result<ChaincodeEventsResponse, Status>>,
) {
    let mut height = channel.height.subscribe();
    let mut number = start;
    let mut skip_until = (!after_tx_id.is_empty()).then_some(after_tx_id);
    loop {
        if *height.borrow_and_update() <= number {
            tokio::select! {
                changed = height.changed() => if changed.is_err() { return },
                _ = out.closed() => return,
            }
            continue;
        }
        let block = match channel.ledger.block(number) {
            Ok(block) => block,
            Err(e) => {
                let _ = out.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
        };
        // A checkpoint resumes after its transaction in the start block.
        let after = skip_until.take();
        let events = block_events(&block, &chaincode, after.as_deref());
        if !events.is_empty() {
            let response = ChaincodeEventsResponse {
                events,
                block_number: number,
            };
            if out.send(Ok(response)).await.is_err() {
                return;
            }
        }
        number += 1;
    }
}

/// Whether `proposal` approves a chaincode definition for an organisation.
fn is_approval(chaincode: &str, proposal: &SignedProposal) -> bool {
    chaincode == lifecycle::LIFECYCLE
        && unpack(proposal).is_ok_and(|unpacked| {
            unpacked
                .spec
                .chaincode_spec
                .and_then(|spec| spec.input)
                .and_then(|input| input.args.into_iter().next())
                .is_some_and(|function| function == lifecycle::APPROVE.as_bytes())
        })
}
