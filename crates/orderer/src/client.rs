//! Clients of Fabric's `AtomicBroadcast`: signed seek requests, block pulling
//! between orderers (catch-up after a Raft snapshot).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_channel::ChannelConfig;
use weft_material::SigningIdentity;
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;

use crate::raft::{BlockSource, Chain};
use weft_node::seek::{seek_envelope, specified};
use weft_node::tls::Tls;

/// Pulls blocks from the other consenters of a channel, verifying each
/// block's orderer signatures against the channel's BlockValidation policy.
pub struct BlockPuller {
    pub channel_id: String,
    pub endpoints: Vec<String>,
    pub tls: Tls,
    pub signer: Arc<SigningIdentity>,
    pub config: Arc<ChannelConfig>,
}

impl BlockPuller {
    async fn pull_from(&self, endpoint: &str, chain: &Arc<Chain>, to: u64) -> Result<(), String> {
        let from = chain.tip().0;
        if from >= to {
            return Ok(());
        }
        let channel = self.tls.channel(endpoint)?;
        let mut client = AtomicBroadcastClient::new(channel)
            .max_decoding_message_size(weft_node::MAX_GRPC_MESSAGE);
        let envelope = seek_envelope(
            &self.signer,
            &self.channel_id,
            specified(from),
            specified(to - 1),
            SeekBehavior::FailIfNotReady,
        )
        .map_err(|e| e.to_string())?;
        let mut stream = client
            .deliver(tokio_stream::once(envelope))
            .await
            .map_err(|e| format!("{endpoint}: {}", e.message()))?
            .into_inner();
        while let Some(response) = stream
            .message()
            .await
            .map_err(|e| format!("{endpoint}: {}", e.message()))?
        {
            match response.r#type {
                Some(DeliverType::Block(block)) => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs() as i64;
                    weft_channel::verify_block_signatures(&self.config, &block, now)
                        .map_err(|e| format!("{endpoint}: block refused: {e}"))?;
                    let chain = Arc::clone(chain);
                    tokio::task::spawn_blocking(move || chain.append(&block))
                        .await
                        .map_err(|e| e.to_string())??;
                }
                Some(DeliverType::Status(status)) => {
                    if chain.tip().0 >= to {
                        return Ok(());
                    }
                    return Err(format!("{endpoint}: deliver ended with status {status}"));
                }
                None => {}
            }
        }
        Err(format!(
            "{endpoint}: stream closed at height {}",
            chain.tip().0
        ))
    }
}

impl BlockSource for BlockPuller {
    fn pull(
        &self,
        chain: Arc<Chain>,
        _from: u64,
        to: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for round in 0..10 {
                for endpoint in &self.endpoints {
                    match self.pull_from(endpoint, &chain, to).await {
                        Ok(()) if chain.tip().0 >= to => return Ok(()),
                        Ok(()) => {}
                        Err(e) => errors.push(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(200 * (round + 1))).await;
            }
            Err(format!(
                "could not pull blocks up to {to} from {:?}: {}",
                self.endpoints,
                errors.join("; ")
            ))
        })
    }
}
