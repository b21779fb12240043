//! Block events from a peer's `protos.Deliver` service, as an identity of
//! an organisation: full blocks with the private data its organisation may
//! read (`DeliverWithPrivateData`), and the channel's height (a filtered
//! seek of the newest block).

use std::path::Path;
use std::sync::Arc;

use tonic::Streaming;
use tonic::transport::Channel;
use weft_material::SigningIdentity;
use weft_protos::common::{Block, Envelope, Status};
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekNewest, SeekPosition, seek_position};
use weft_protos::peer::deliver_client::DeliverClient;
use weft_protos::peer::{DeliverResponse, deliver_response};
use weft_protos::rwset::TxPvtReadWriteSet;

use crate::{ClientError, read_pem, tls_channel};

/// A block and the private data of its transactions that the requester's
/// organisation may read, by transaction index.
#[derive(Debug, Clone)]
pub struct BlockWithPrivateData {
    pub block: Block,
    pub private_data: std::collections::HashMap<u64, TxPvtReadWriteSet>,
}

/// What ended a block stream, or one message of it.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The connection failed or broke: worth retrying.
    #[error("deliver: {0}")]
    Transport(String),
    /// The peer ended the stream with a Fabric status other than SUCCESS.
    #[error("the peer ended the block stream with {status:?}{}", hint(*.status))]
    Refused { status: Status },
}

fn hint(status: Status) -> &'static str {
    match status {
        Status::Forbidden => {
            " (the identity does not satisfy the channel's Readers policy, or its certificate is not trusted)"
        }
        Status::NotFound => " (no such channel on this peer, or no such block yet)",
        Status::BadRequest => " (the peer refused the seek request)",
        _ => "",
    }
}

/// A connection to one peer's Deliver service, as one identity.
#[derive(Clone)]
pub struct Deliverer {
    client: DeliverClient<Channel>,
    identity: Arc<SigningIdentity>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("msp_id", &self.identity.msp_id())
            .finish()
    }
}

impl Deliverer {
    /// A lazily connecting client for the peer at `host:port`, trusting
    /// `tls_ca` for its TLS certificate.
    pub fn connect(
        endpoint: &str,
        tls_ca: &Path,
        identity: SigningIdentity,
    ) -> Result<Self, ClientError> {
        let channel = tls_channel(endpoint, read_pem(tls_ca)?)?;
        Ok(Deliverer {
            client: DeliverClient::new(channel)
                .max_decoding_message_size(256 * 1024 * 1024)
                .max_encoding_message_size(16 * 1024 * 1024),
            identity: Arc::new(identity),
        })
    }

    /// The request stream of one signed seek (the peer answers it, then the
    /// stream ends).
    fn seek(
        &self,
        channel: &str,
        start: SeekPosition,
        stop: SeekPosition,
        behavior: SeekBehavior,
    ) -> Result<tokio_stream::Iter<std::array::IntoIter<Envelope, 1>>, DeliverError> {
        let envelope =
            weft_node::seek::seek_envelope(&self.identity, channel, start, stop, behavior)
                .map_err(ClientError::from)?;
        Ok(tokio_stream::iter([envelope]))
    }

    /// Blocks of `channel` from `start` on. With `follow` the stream waits
    /// for blocks still to be committed; without, it ends at the channel's
    /// current height (see [`BlockStream::next`]).
    pub async fn blocks(
        &self,
        channel: &str,
        start: u64,
        follow: bool,
    ) -> Result<BlockStream, DeliverError> {
        let behavior = if follow {
            SeekBehavior::BlockUntilReady
        } else {
            SeekBehavior::FailIfNotReady
        };
        let request = self.seek(
            channel,
            weft_node::seek::specified(start),
            weft_node::seek::specified(u64::MAX),
            behavior,
        )?;
        let stream = self
            .client
            .clone()
            .deliver_with_private_data(request)
            .await
            .map_err(transport)?
            .into_inner();
        Ok(BlockStream {
            stream,
            follow,
            done: false,
        })
    }

    /// Block `number` of `channel` (committed already: the peer does not
    /// wait for it).
    pub async fn block(&self, channel: &str, number: u64) -> Result<Block, DeliverError> {
        let request = self.seek(
            channel,
            weft_node::seek::specified(number),
            weft_node::seek::specified(number),
            SeekBehavior::FailIfNotReady,
        )?;
        let stream = self
            .client
            .clone()
            .deliver(request)
            .await
            .map_err(transport)?
            .into_inner();
        let mut blocks = BlockStream {
            stream,
            follow: true,
            done: false,
        };
        blocks
            .next()
            .await?
            .map(|b| b.block)
            .ok_or_else(|| DeliverError::Transport("the stream ended early".into()))
    }

    /// The channel's height on the peer: one more than its newest block.
    pub async fn height(&self, channel: &str) -> Result<u64, DeliverError> {
        let newest = || SeekPosition {
            r#type: Some(seek_position::Type::Newest(SeekNewest {})),
        };
        let request = self.seek(channel, newest(), newest(), SeekBehavior::FailIfNotReady)?;
        let mut stream = self
            .client
            .clone()
            .deliver_filtered(request)
            .await
            .map_err(transport)?
            .into_inner();
        loop {
            let response = stream
                .message()
                .await
                .map_err(transport)?
                .ok_or_else(|| DeliverError::Transport("the stream ended early".into()))?;
            match response.r#type {
                Some(deliver_response::Type::FilteredBlock(block)) => return Ok(block.number + 1),
                Some(deliver_response::Type::Status(code)) => {
                    return Err(DeliverError::Refused {
                        status: Status::try_from(code).unwrap_or(Status::Unknown),
                    });
                }
                _ => continue,
            }
        }
    }
}

/// A gRPC failure of the stream: worth retrying.
fn transport(status: tonic::Status) -> DeliverError {
    DeliverError::Transport(status.message().to_owned())
}

/// A stream of blocks in order.
pub struct BlockStream {
    stream: Streaming<DeliverResponse>,
    follow: bool,
    done: bool,
}

impl std::fmt::Debug for BlockStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStream")
            .field("follow", &self.follow)
            .finish()
    }
}

impl BlockStream {
    /// The next block; `Ok(None)` once a stream that does not follow has
    /// reached the channel's height.
    pub async fn next(&mut self) -> Result<Option<BlockWithPrivateData>, DeliverError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let response = self.stream.message().await.map_err(transport)?;
            let Some(response) = response else {
                return Err(DeliverError::Transport(
                    "the peer closed the block stream".into(),
                ));
            };
            match response.r#type {
                Some(deliver_response::Type::BlockAndPrivateData(data)) => {
                    let block = data.block.ok_or_else(|| {
                        DeliverError::Transport("a response without its block".into())
                    })?;
                    return Ok(Some(BlockWithPrivateData {
                        block,
                        private_data: data.private_data_map.into_iter().collect(),
                    }));
                }
                Some(deliver_response::Type::Block(block)) => {
                    return Ok(Some(BlockWithPrivateData {
                        block,
                        private_data: Default::default(),
                    }));
                }
                Some(deliver_response::Type::Status(code)) => {
                    let status = Status::try_from(code).unwrap_or(Status::Unknown);
                    // Without `follow`, NOT_FOUND is the head of the chain.
                    if !self.follow && status == Status::NotFound {
                        self.done = true;
                        return Ok(None);
                    }
                    return Err(DeliverError::Refused { status });
                }
                _ => continue,
            }
        }
    }
}
