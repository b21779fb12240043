//! Block events (`/protos.Deliver`): full blocks, filtered blocks (tx ids,
//! validation codes, chaincode event names without payloads) and blocks with
//! private data (the collections the requester's organisation is a member of).
//! Seek semantics as the orderer's Deliver; the requester must satisfy the
//! channel's `/Channel/Application/Readers` policy.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weft_protos::common::{
    Block, ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader, Status as FabricStatus,
};
use weft_protos::msp::SerializedIdentity;
use weft_protos::orderer::SeekInfo;
use weft_protos::peer::deliver_server::Deliver;
use weft_protos::peer::{
    BlockAndPrivateData, ChaincodeEvent, DeliverResponse, FilteredBlock, FilteredChaincodeAction,
    FilteredTransaction, FilteredTransactionActions, deliver_response, filtered_transaction,
};
use weft_protos::rwset::TxPvtReadWriteSet;
use weft_protoutil::parse_envelope;

use crate::channel::{Channels, PeerChannel, now_seconds};
use weft_node::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Full,
    Filtered,
    WithPrivateData,
}

/// The `protos.Deliver` service over the peer's channels.
#[derive(Clone)]
pub struct DeliverService {
    pub channels: Arc<Channels>,
    /// How fresh a seek request must be (`limits.request_time_window`).
    pub window: std::time::Duration,
}

type DeliverStream = Pin<Box<dyn Stream<Item = Result<DeliverResponse, Status>> + Send>>;

impl DeliverService {
    fn open(&self, request: Request<Streaming<Envelope>>, form: Form) -> Response<DeliverStream> {
        let mut incoming = request.into_inner();
        let (out, rx) = mpsc::channel(8);
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                let envelope = match incoming.message().await {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) => return,
                    // Unreadable (over the gRPC bound): said, not dropped.
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                };
                let Some(status) = serve_seek(&service, &envelope, form, &out).await else {
                    return;
                };
                let response = DeliverResponse {
                    r#type: Some(deliver_response::Type::Status(status as i32)),
                };
                if out.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl Deliver for DeliverService {
    type DeliverStream = DeliverStream;
    type DeliverFilteredStream = DeliverStream;
    type DeliverWithPrivateDataStream = DeliverStream;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<DeliverStream>, Status> {
        Ok(self.open(request, Form::Full))
    }

    async fn deliver_filtered(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<DeliverStream>, Status> {
        Ok(self.open(request, Form::Filtered))
    }

    async fn deliver_with_private_data(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<DeliverStream>, Status> {
        Ok(self.open(request, Form::WithPrivateData))
    }
}

/// A seek request that passed its checks: its channel, what it asks for,
/// and its creator (re-checked as blocks are sent).
type Checked = (Arc<PeerChannel>, SeekInfo, Vec<u8>);

/// Checks a seek request: structure, type, time window, channel, Readers policy.
fn check(service: &DeliverService, envelope: &Envelope) -> Result<Checked, (FabricStatus, String)> {
    let bad = |what: String| (FabricStatus::BadRequest, what);
    let payload =
        Payload::decode(envelope.payload.as_slice()).map_err(|e| bad(format!("payload: {e}")))?;
    let header = payload
        .header
        .ok_or_else(|| bad("payload without header".into()))?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|e| bad(format!("channel header: {e}")))?;
    let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(|e| bad(format!("signature header: {e}")))?;
    if channel_header.r#type != HeaderType::DeliverSeekInfo as i32 {
        return Err(bad(format!(
            "envelope type {} is not a seek request",
            channel_header.r#type
        )));
    }
    // Fabric's Deliver TimeWindow: an old signed seek is not replayable.
    weft_node::clock::check_timestamp(
        channel_header.timestamp.as_ref(),
        weft_node::SystemClock.now_unix_ms(),
        service.window,
    )
    .map_err(bad)?;
    let channel = service
        .channels
        .get(&channel_header.channel_id)
        .ok_or_else(|| {
            (
                FabricStatus::NotFound,
                format!("channel {} not found", channel_header.channel_id),
            )
        })?;
    channel
        .config
        .authorize(
            "/Channel/Application/Readers",
            &signature_header.creator,
            &envelope.payload,
            &envelope.signature,
            now_seconds(),
        )
        .map_err(|e| (FabricStatus::Forbidden, e.to_string()))?;
    let seek =
        SeekInfo::decode(payload.data.as_slice()).map_err(|e| bad(format!("seek info: {e}")))?;
    Ok((channel, seek, signature_header.creator))
}

/// Serves one seek request; its final status, or None if the client left.
async fn serve_seek(
    service: &DeliverService,
    envelope: &Envelope,
    form: Form,
    out: &mpsc::Sender<Result<DeliverResponse, Status>>,
) -> Option<FabricStatus> {
    let (channel, seek, creator) = match check(service, envelope) {
        Ok(checked) => checked,
        Err((status, reason)) => {
            weft_node::refusal!("deliver refused: {}", reason.escape_debug());
            return Some(status);
        }
    };
    let requester_msp = SerializedIdentity::decode(creator.as_slice())
        .map(|identity| identity.mspid)
        .unwrap_or_default();
    let height = channel.height.subscribe();
    let first = channel.ledger.first_block_number();
    // A peer never leaves a channel, so a stream waits for as long as the client does.
    weft_node::deliver::serve_seek(
        &seek,
        first,
        height,
        std::future::pending(),
        out,
        |number| {
            // A long-lived stream ends once its requester's certificate expires.
            if let Err(e) = channel.config.msps.validate(&creator, now_seconds()) {
                weft_node::refusal!(
                    "deliver stream on channel {} ended: the requester is no longer valid: {e}",
                    channel.id
                );
                return Err(FabricStatus::Forbidden);
            }
            let block = channel
                .ledger
                .block(number)
                .map_err(|_| FabricStatus::InternalServerError)?;
            let response = match form {
                Form::Full => deliver_response::Type::Block(block),
                Form::Filtered => {
                    deliver_response::Type::FilteredBlock(filtered(&channel.id, &block))
                }
                Form::WithPrivateData => {
                    let private_data_map = private_data_of(&channel, &block, &requester_msp)
                        .map_err(|_| FabricStatus::InternalServerError)?;
                    deliver_response::Type::BlockAndPrivateData(BlockAndPrivateData {
                        block: Some(block),
                        private_data_map,
                    })
                }
            };
            Ok(DeliverResponse {
                r#type: Some(response),
            })
        },
    )
    .await
}

/// The private data this peer committed for `block`'s transactions, by
/// transaction number, reduced to the collections whose member
/// organisations include the requester's.
fn private_data_of(
    channel: &PeerChannel,
    block: &Block,
    requester_msp: &str,
) -> Result<BTreeMap<u64, TxPvtReadWriteSet>, weft_ledger::LedgerError> {
    let number = block.header.as_ref().map_or(0, |h| h.number);
    let count = block.data.as_ref().map_or(0, |d| d.data.len()) as u64;
    let definitions = channel.definitions();
    let mut map = BTreeMap::new();
    for tx in 0..count {
        let Some(set) = channel.ledger.committed_private_data(number, tx)? else {
            continue;
        };
        let readable = crate::private::filter(&set, |namespace, collection| {
            definitions
                .get(namespace)
                .and_then(|d| d.collections.get(collection))
                .is_some_and(|c| c.is_member(requester_msp))
        });
        if let Some(readable) = readable {
            map.insert(tx, readable);
        }
    }
    Ok(map)
}

/// A block reduced to what Fabric's filtered events carry.
pub fn filtered(channel_id: &str, block: &Block) -> FilteredBlock {
    let filter = weft_protoutil::transactions_filter(block).unwrap_or(&[]);
    let envelopes = weft_protoutil::block_envelopes(block);
    let filtered_transactions = envelopes
        .iter()
        .enumerate()
        .filter_map(|(index, envelope)| {
            let tx = parse_envelope(envelope).ok()?;
            let code = i32::from(filter.get(index).copied().unwrap_or(255));
            let actions = tx.action.as_ref().map(|action| {
                let event = ChaincodeEvent::decode(action.events.as_slice())
                    .ok()
                    .filter(|e| !e.event_name.is_empty());
                FilteredTransactionActions {
                    chaincode_actions: vec![FilteredChaincodeAction {
                        chaincode_event: event.map(|e| ChaincodeEvent {
                            payload: Vec::new(),
                            ..e
                        }),
                    }],
                }
            });
            Some(FilteredTransaction {
                txid: tx.tx_id().to_owned(),
                r#type: tx.channel_header.r#type,
                tx_validation_code: code,
                data: actions.map(filtered_transaction::Data::TransactionActions),
            })
        })
        .collect();
    FilteredBlock {
        channel_id: channel_id.to_owned(),
        number: block.header.as_ref().map_or(0, |h| h.number),
        filtered_transactions,
    }
}
