//! Moving private data between peers (weft's `weft.peer.PrivateData`
//! service): an endorsing peer pushes a transaction's private read-write
//! set to peers of the collections' member organisations; a committing
//! member peer that lacks it pulls it from them.
//!
//! Every message is signed by the sending peer. A push is accepted from a
//! peer of a channel organisation and only the collections the receiver's
//! organisation is a member of are kept; a pull is answered only with the
//! collections the asking peer's organisation is a member of. Data is
//! verified against the endorsed hashes when it is committed, so a forged
//! push can at worst occupy transient store space.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tonic::{Request, Response, Status};
use weft_crypto::Signer;
use weft_material::SigningIdentity;
use weft_msp::{Identity, NodeRole};
use weft_node::clock::{Clock, SystemClock};
use weft_node::tls::Tls;
use weft_protos::rwset::TxPvtReadWriteSet;

use crate::channel::{Channels, PeerChannel, now_seconds};
use crate::config::GatewayPeer;
use crate::lifecycle::Definitions;
use crate::private::{Collection, TransientStore, filter, merge};
use crate::proto::private_data_client::PrivateDataClient;
use crate::proto::private_data_server::PrivateData as PrivateDataRpc;
use crate::proto::{
    CollectionName, PullPayload, PullResponse, PushPayload, PushResponse, SignedMessage,
};

/// How long one push or pull to one peer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// This peer's side of private data movement: its transient store, the
/// other peers it knows, and what it signs with.
pub struct Distributor {
    pub transient: TransientStore,
    pub(crate) msp_id: String,
    peers: Vec<GatewayPeer>,
    signer: Arc<SigningIdentity>,
    tls: Tls,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor")
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// The collection `collection` of chaincode `namespace`.
fn find<'a>(
    definitions: &'a Definitions,
    namespace: &str,
    collection: &str,
) -> Option<&'a Collection> {
    definitions.get(namespace)?.collections.get(collection)
}

impl Distributor {
    pub fn new(
        msp_id: String,
        peers: Vec<GatewayPeer>,
        signer: Arc<SigningIdentity>,
        tls: Tls,
    ) -> Self {
        Distributor {
            transient: TransientStore::new(10_000),
            msp_id,
            peers,
            signer,
            tls,
        }
    }

    fn sign(&self, payload: Vec<u8>) -> Result<SignedMessage, String> {
        let signature = self.signer.sign(&payload).map_err(|e| e.to_string())?;
        Ok(SignedMessage {
            payload,
            signer: self.signer.serialized(),
            signature,
        })
    }

    fn client(
        &self,
        address: &str,
    ) -> Result<PrivateDataClient<tonic::transport::Channel>, String> {
        Ok(PrivateDataClient::new(self.tls.channel(address)?)
            .max_decoding_message_size(crate::MAX_GRPC_MESSAGE)
            .max_encoding_message_size(crate::MAX_GRPC_MESSAGE))
    }

    /// Keeps an endorsed private read-write set and sends it to peers of the
    /// member organisations: up to each collection's `maximum_peer_count`,
    /// failing unless `required_peer_count` of them acknowledged.
    pub async fn distribute(
        &self,
        channel: &str,
        definitions: &Definitions,
        tx_id: &str,
        set: &TxPvtReadWriteSet,
    ) -> Result<(), String> {
        self.transient.put(tx_id, set.clone());
        // Which peers get which collections, within each collection's maximum.
        let mut targets: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut required: Vec<(String, String, usize)> = Vec::new();
        for namespace in &set.ns_pvt_rwset {
            for written in &namespace.collection_pvt_rwset {
                let name = &written.collection_name;
                let collection =
                    find(definitions, &namespace.namespace, name).ok_or_else(|| {
                        format!(
                            "collection {name} is not defined for chaincode {}",
                            namespace.namespace
                        )
                    })?;
                let key = (namespace.namespace.clone(), name.clone());
                let candidates = self
                    .peers
                    .iter()
                    .filter(|p| collection.is_member(&p.msp_id))
                    .take(collection.maximum_peer_count);
                for peer in candidates {
                    targets
                        .entry(&peer.address)
                        .or_default()
                        .insert(key.clone());
                }
                if collection.required_peer_count > 0 {
                    required.push((key.0, key.1, collection.required_peer_count));
                }
            }
        }
        let mut pushes = tokio::task::JoinSet::new();
        let mut results = Vec::new();
        for (address, collections) in targets {
            let part = filter(set, |ns, c| {
                collections.contains(&(ns.to_owned(), c.to_owned()))
            });
            let Some(part) = part else { continue };
            let address = address.to_owned();
            match self.push(&address, channel, tx_id, &part) {
                Ok(sent) => {
                    pushes.spawn(async move { (address, collections, sent.await) });
                }
                Err(error) => results.push((address, collections, Err(error))),
            }
        }
        while let Some(joined) = pushes.join_next().await {
            results.push(joined.map_err(|e| e.to_string())?);
        }
        let mut acknowledged: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut failures = Vec::new();
        for (address, collections, result) in results {
            match result {
                Ok(()) => {
                    for key in collections {
                        *acknowledged.entry(key).or_default() += 1;
                    }
                }
                Err(error) => failures.push(format!("{address}: {error}")),
            }
        }
        for (namespace, collection, count) in required {
            let got = acknowledged
                .get(&(namespace.clone(), collection.clone()))
                .copied()
                .unwrap_or(0);
            if got < count {
                return Err(format!(
                    "failed to distribute private data of collection {collection} (chaincode \
                     {namespace}): requiredPeerCount is {count} but {got} peer(s) acknowledged{}",
                    if failures.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", failures.join("; "))
                    }
                ));
            }
        }
        for failure in failures {
            tracing::warn!("private data of {tx_id} not delivered to {failure}");
        }
        Ok(())
    }

    /// A push to one peer, ready to be awaited on its own task.
    fn push(
        &self,
        address: &str,
        channel: &str,
        tx_id: &str,
        part: &TxPvtReadWriteSet,
    ) -> Result<impl std::future::Future<Output = Result<(), String>> + Send + 'static, String>
    {
        let message = self.sign(
            PushPayload {
                channel: channel.to_owned(),
                tx_id: tx_id.to_owned(),
                private_data: part.encode_to_vec(),
                timestamp_unix_ms: SystemClock.now_unix_ms(),
            }
            .encode_to_vec(),
        )?;
        let mut client = self.client(address)?;
        Ok(async move {
            tokio::time::timeout(CALL_TIMEOUT, client.push(message))
                .await
                .map_err(|_| format!("no answer within {} s", CALL_TIMEOUT.as_secs()))?
                .map_err(|e| e.message().to_owned())?;
            Ok(())
        })
    }

    /// Asks peers of the member organisations for the `wanted` collections
    /// of `tx_id`, one peer after another, until every collection is found.
    pub async fn pull(
        &self,
        channel: &str,
        definitions: &Definitions,
        tx_id: &str,
        wanted: &[(String, String)],
    ) -> Option<TxPvtReadWriteSet> {
        let mut found: Option<TxPvtReadWriteSet> = None;
        let mut missing: BTreeSet<(String, String)> = wanted.iter().cloned().collect();
        let message = self
            .sign(
                PullPayload {
                    channel: channel.to_owned(),
                    tx_id: tx_id.to_owned(),
                    collections: wanted
                        .iter()
                        .map(|(namespace, collection)| CollectionName {
                            namespace: namespace.clone(),
                            collection: collection.clone(),
                        })
                        .collect(),
                    timestamp_unix_ms: SystemClock.now_unix_ms(),
                }
                .encode_to_vec(),
            )
            .ok()?;
        for peer in &self.peers {
            let useful = missing
                .iter()
                .any(|(ns, c)| find(definitions, ns, c).is_some_and(|c| c.is_member(&peer.msp_id)));
            if !useful {
                continue;
            }
            let Ok(mut client) = self.client(&peer.address) else {
                continue;
            };
            let answer =
                match tokio::time::timeout(CALL_TIMEOUT, client.pull(message.clone())).await {
                    Ok(Ok(answer)) => answer.into_inner(),
                    Ok(Err(status)) => {
                        tracing::warn!(
                            "pulling private data of {tx_id} from {}: {}",
                            peer.address,
                            status.message()
                        );
                        continue;
                    }
                    Err(_) => continue,
                };
            if answer.private_data.is_empty() {
                continue;
            }
            let Ok(set) = TxPvtReadWriteSet::decode(answer.private_data.as_slice()) else {
                continue;
            };
            for namespace in &set.ns_pvt_rwset {
                for collection in &namespace.collection_pvt_rwset {
                    missing.remove(&(
                        namespace.namespace.clone(),
                        collection.collection_name.clone(),
                    ));
                }
            }
            match &mut found {
                Some(held) => merge(held, set),
                None => found = Some(set),
            }
            if missing.is_empty() {
                break;
            }
        }
        found
    }

    /// The private data this peer holds for the `wanted` collections of a
    /// transaction it is about to commit: from the transient store, or
    /// pulled from other member peers. Only collections of which this
    /// peer's organisation is a member.
    pub async fn for_commit(
        &self,
        channel: &str,
        definitions: &Definitions,
        tx_id: &str,
        wanted: &[(String, String)],
    ) -> Option<TxPvtReadWriteSet> {
        let eligible: BTreeSet<(String, String)> = wanted
            .iter()
            .filter(|(ns, c)| find(definitions, ns, c).is_some_and(|c| c.is_member(&self.msp_id)))
            .cloned()
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let keep = |ns: &str, c: &str| eligible.contains(&(ns.to_owned(), c.to_owned()));
        let mut held = self.transient.get(tx_id).and_then(|set| filter(&set, keep));
        let missing: Vec<(String, String)> = eligible
            .iter()
            .filter(|(ns, c)| {
                !held.as_ref().is_some_and(|set| {
                    set.ns_pvt_rwset.iter().any(|n| {
                        &n.namespace == ns
                            && n.collection_pvt_rwset
                                .iter()
                                .any(|x| &x.collection_name == c)
                    })
                })
            })
            .cloned()
            .collect();
        if !missing.is_empty()
            && let Some(pulled) = self.pull(channel, definitions, tx_id, &missing).await
            && let Some(pulled) = filter(&pulled, keep)
        {
            match &mut held {
                Some(set) => merge(set, pulled),
                None => held = Some(pulled),
            }
        }
        held
    }
}

/// The `weft.peer.PrivateData` service.
#[derive(Clone)]
pub struct PrivateDataService {
    pub channels: Arc<Channels>,
    pub private: Arc<Distributor>,
    /// How fresh a push or pull must be (`limits.request_time_window`).
    pub window: Duration,
}

/// A signed message's payload and its signer, checked: a valid identity of
/// the channel, with the peer role, whose signature verifies.
fn verified<M: Message + Default>(
    channels: &Channels,
    message: &SignedMessage,
    channel_of: impl Fn(&M) -> &str,
) -> Result<(M, Arc<PeerChannel>, Arc<Identity>), Status> {
    let payload = M::decode(message.payload.as_slice())
        .map_err(|e| Status::invalid_argument(format!("malformed payload: {e}")))?;
    let channel_id = channel_of(&payload);
    let channel = channels
        .get(channel_id)
        .ok_or_else(|| Status::not_found(format!("channel {channel_id} not found on this peer")))?;
    let identity = channel
        .config
        .msps
        .validate(&message.signer, now_seconds())
        .map_err(|e| Status::permission_denied(format!("the sender: {e}")))?;
    if identity.role() != Some(NodeRole::Peer) {
        return Err(Status::permission_denied(format!(
            "the sender {} of {} is not a peer",
            identity.subject(),
            identity.msp_id()
        )));
    }
    identity
        .verify(&message.payload, &message.signature)
        .map_err(|e| Status::permission_denied(format!("the sender's signature: {e}")))?;
    Ok((payload, channel, identity))
}

impl PrivateDataService {
    /// Refuses a message signed outside the peer's request time window (a
    /// recorded push or pull replayed later).
    fn fresh(&self, timestamp_unix_ms: i64) -> Result<(), Status> {
        weft_node::clock::check_window(timestamp_unix_ms, SystemClock.now_unix_ms(), self.window)
            .map_err(Status::permission_denied)
    }

    /// A push or pull from a peer of the channel, signed within the time
    /// window; a refusal is logged.
    fn admit<M: Message + Default + Signed>(
        &self,
        request: &Request<SignedMessage>,
        operation: &str,
    ) -> Result<(M, Arc<PeerChannel>, Arc<Identity>), Status> {
        verified::<M>(&self.channels, request.get_ref(), |p| p.channel())
            .and_then(|checked| {
                self.fresh(checked.0.timestamp_unix_ms())?;
                Ok(checked)
            })
            .inspect_err(|status| {
                weft_node::refusal!(
                    "private data {operation} from {:?} refused: {}",
                    request.remote_addr(),
                    status.message().escape_debug()
                );
            })
    }
}

/// What [`PrivateDataService::admit`] reads from a signed payload.
trait Signed {
    fn channel(&self) -> &str;
    fn timestamp_unix_ms(&self) -> i64;
}

impl Signed for PushPayload {
    fn channel(&self) -> &str {
        &self.channel
    }
    fn timestamp_unix_ms(&self) -> i64 {
        self.timestamp_unix_ms
    }
}

impl Signed for PullPayload {
    fn channel(&self) -> &str {
        &self.channel
    }
    fn timestamp_unix_ms(&self) -> i64 {
        self.timestamp_unix_ms
    }
}

#[tonic::async_trait]
impl PrivateDataRpc for PrivateDataService {
    async fn push(
        &self,
        request: Request<SignedMessage>,
    ) -> Result<Response<PushResponse>, Status> {
        let (payload, channel, _) = self.admit::<PushPayload>(&request, "push")?;
        // Data for a committed transaction is never taken again (a replayed
        // push would otherwise sit in the transient store).
        if channel
            .ledger
            .transaction(&payload.tx_id)
            .map_err(|e| Status::internal(e.to_string()))?
            .is_some()
        {
            return Err(Status::failed_precondition(format!(
                "transaction {} is already committed on channel {}",
                payload.tx_id, channel.id
            )));
        }
        let set = TxPvtReadWriteSet::decode(payload.private_data.as_slice())
            .map_err(|e| Status::invalid_argument(format!("malformed private data: {e}")))?;
        let definitions = channel.definitions();
        let mine = &self.private.msp_id;
        if let Some(kept) = filter(&set, |ns, c| {
            find(&definitions, ns, c).is_some_and(|c| c.is_member(mine))
        }) {
            self.private.transient.put(&payload.tx_id, kept);
        }
        Ok(Response::new(PushResponse {}))
    }

    async fn pull(
        &self,
        request: Request<SignedMessage>,
    ) -> Result<Response<PullResponse>, Status> {
        let (payload, channel, asking) = self.admit::<PullPayload>(&request, "pull")?;
        let definitions = channel.definitions();
        let allowed: BTreeSet<(String, String)> = payload
            .collections
            .iter()
            .filter(|c| {
                find(&definitions, &c.namespace, &c.collection)
                    .is_some_and(|c| c.is_member(asking.msp_id()))
            })
            .map(|c| (c.namespace.clone(), c.collection.clone()))
            .collect();
        let keep = |ns: &str, c: &str| allowed.contains(&(ns.to_owned(), c.to_owned()));
        let mut held = self
            .private
            .transient
            .get(&payload.tx_id)
            .and_then(|set| filter(&set, keep));
        if held.is_none()
            && let Some(location) = channel
                .ledger
                .transaction(&payload.tx_id)
                .map_err(|e| Status::internal(e.to_string()))?
        {
            held = channel
                .ledger
                .committed_private_data(location.block, location.tx)
                .map_err(|e| Status::internal(e.to_string()))?
                .and_then(|set| filter(&set, keep));
        }
        Ok(Response::new(PullResponse {
            private_data: held.map(|s| s.encode_to_vec()).unwrap_or_default(),
        }))
    }
}
