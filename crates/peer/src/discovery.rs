//! Fabric's discovery service (`discovery.Discovery/Discover`), which
//! Fabric's SDKs (`fabric-network` with `discovery: {enabled: true}`) ask
//! which orderers, MSPs and peers a channel has and which peers can
//! together endorse a chaincode:
//!
//! - config query: the channel's MSP definitions (with their TLS roots, which
//!   clients dial peers and orderers with) and orderer endpoints;
//! - peer membership query: the channel's peers — this peer and the peers it
//!   knows (`gateway_peers` of its configuration) of the channel's
//!   organisations — each with its identity, endpoint, ledger height and the
//!   chaincodes defined on the channel, in the gossip messages Fabric's SDKs read;
//! - chaincode query: endorsement descriptors — groups of peers and layouts
//!   (how many of each group) computed from the chaincode's endorsement
//!   policy, narrowed to the member organisations of the collections named,
//!   and combined for chaincode-to-chaincode calls;
//! - local peers query: the peers of this peer's organisation, for its admins.
//!
//! Authorisation as Fabric's: a channel query's request must be signed by
//! an identity satisfying the channel's Readers policy, a local query by an
//! admin of the peer's organisation; a client TLS certificate hash in the
//! request must be that of the certificate the connection presented.
//!
//! weft runs no gossip: this peer asks the other peers of a channel for
//! their heights (a filtered Deliver of the newest block, signed by this
//! peer, answered within 500 ms and remembered for 2 s; a peer that does not
//! answer in time is reported at this peer's height), and only this peer's
//! own alive and state messages are signed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use tonic::{Request, Response, Status};
use weft_material::SigningIdentity;
use weft_msp::{MspRole, Principal};
use weft_protos::discovery::discovery_server::Discovery;
use weft_protos::discovery::query::Query as QueryKind;
use weft_protos::discovery::query_result::Result as QueryResultKind;
use weft_protos::discovery::{
    self, AuthInfo, ChaincodeQueryResult, ConfigResult, EndorsementDescriptor, Endpoint, Endpoints,
    Layout, PeerMembershipResult, Peers, QueryResult, SignedRequest,
};
use weft_protos::gossip;
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::ChaincodeInterest;

use crate::channel::{Channels, PeerChannel};
use crate::config::GatewayPeer;

/// Principal sets (policy combinations) considered per chaincode.
const PRINCIPAL_SETS_MAX: usize = 1024;
/// How long another peer has to tell its height.
const HEIGHT_WAIT: Duration = Duration::from_millis(500);
/// How long a peer's height is remembered.
const HEIGHT_TTL: Duration = Duration::from_secs(2);

/// Heights of a channel's peers, by endpoint.
type Heights = HashMap<String, u64>;

// The messages of Fabric's `gossip.GossipMessage` that discovery answers
// carry (field numbers as Fabric's `gossip/message.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct GossipMessage {
    #[prost(uint64, tag = "1")]
    nonce: u64,
    #[prost(bytes = "vec", tag = "2")]
    channel: Vec<u8>,
    /// `GossipMessage.Tag`: EMPTY = 1, CHAN_ONLY = 5.
    #[prost(int32, tag = "3")]
    tag: i32,
    #[prost(message, optional, tag = "5")]
    alive_msg: Option<AliveMessage>,
    #[prost(message, optional, tag = "15")]
    state_info: Option<StateInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AliveMessage {
    #[prost(message, optional, tag = "1")]
    membership: Option<Member>,
    #[prost(message, optional, tag = "2")]
    timestamp: Option<PeerTime>,
    #[prost(bytes = "vec", tag = "4")]
    identity: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Member {
    #[prost(string, tag = "1")]
    endpoint: String,
    #[prost(bytes = "vec", tag = "2")]
    metadata: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pki_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PeerTime {
    #[prost(uint64, tag = "1")]
    inc_num: u64,
    #[prost(uint64, tag = "2")]
    seq_num: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StateInfo {
    #[prost(message, optional, tag = "2")]
    timestamp: Option<PeerTime>,
    #[prost(bytes = "vec", tag = "3")]
    pki_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    channel_mac: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    properties: Option<Properties>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Properties {
    #[prost(uint64, tag = "1")]
    ledger_height: u64,
    #[prost(bool, tag = "2")]
    left_channel: bool,
    #[prost(message, repeated, tag = "3")]
    chaincodes: Vec<GossipChaincode>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GossipChaincode {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
    #[prost(bytes = "vec", tag = "3")]
    metadata: Vec<u8>,
}

const TAG_EMPTY: i32 = 1;
const TAG_CHAN_ONLY: i32 = 5;

/// A peer as discovery describes it.
#[derive(Debug, Clone)]
struct KnownPeer {
    msp_id: String,
    endpoint: String,
    /// `msp.SerializedIdentity` bytes.
    identity: Vec<u8>,
    /// This peer itself (whose messages it signs).
    own: bool,
}

/// The discovery service of one peer.
pub struct DiscoveryService {
    channels: Arc<Channels>,
    signer: Arc<SigningIdentity>,
    admin: Arc<weft_node::AdminAuthority>,
    peers: Vec<KnownPeer>,
    started: u64,
    tls: weft_node::Tls,
    /// (channel, endpoint) → when asked, the height.
    heights: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl std::fmt::Debug for DiscoveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryService").finish_non_exhaustive()
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl DiscoveryService {
    /// `gateway_peers` without an `identity` certificate are left out (a
    /// client could not tell which organisation they serve).
    pub fn new(
        channels: Arc<Channels>,
        signer: Arc<SigningIdentity>,
        admin: Arc<weft_node::AdminAuthority>,
        tls: weft_node::Tls,
        own_endpoint: &str,
        gateway_peers: &[GatewayPeer],
    ) -> Self {
        let mut peers = vec![KnownPeer {
            msp_id: signer.msp_id().to_owned(),
            endpoint: own_endpoint.to_owned(),
            identity: signer.serialized(),
            own: true,
        }];
        for peer in gateway_peers {
            let Some(path) = &peer.identity else { continue };
            match std::fs::read(path) {
                Ok(pem) => peers.push(KnownPeer {
                    msp_id: peer.msp_id.clone(),
                    endpoint: peer.address.clone(),
                    identity: SerializedIdentity {
                        mspid: peer.msp_id.clone(),
                        id_bytes: pem,
                    }
                    .encode_to_vec(),
                    own: false,
                }),
                Err(e) => tracing::warn!(
                    "discovery leaves out {}: {}: {e}",
                    peer.address,
                    path.display()
                ),
            }
        }
        DiscoveryService {
            channels,
            signer,
            admin,
            peers,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            tls,
            heights: Mutex::new(HashMap::new()),
        }
    }

    /// The heights of `channel`'s peers: this peer's own, the others asked
    /// side by side (remembered for [`HEIGHT_TTL`]; this peer's height for
    /// one that does not answer within [`HEIGHT_WAIT`]).
    async fn heights(&self, channel: &PeerChannel) -> Heights {
        let own = *channel.height.borrow();
        let now = Instant::now();
        let mut heights = Heights::new();
        let mut asks = tokio::task::JoinSet::new();
        for peer in self.channel_peers(channel) {
            if peer.own {
                heights.insert(peer.endpoint.clone(), own);
                continue;
            }
            let key = (channel.id.clone(), peer.endpoint.clone());
            let remembered = self
                .heights
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|(at, _)| now.duration_since(*at) < HEIGHT_TTL)
                .map(|(_, height)| *height);
            if let Some(height) = remembered {
                heights.insert(peer.endpoint.clone(), height);
                continue;
            }
            let (tls, signer) = (self.tls.clone(), Arc::clone(&self.signer));
            let (channel_id, endpoint) = key;
            asks.spawn(async move {
                let asker = HeightAsker { tls, signer };
                let asked =
                    tokio::time::timeout(HEIGHT_WAIT, asker.ask(&channel_id, &endpoint)).await;
                (endpoint, asked)
            });
        }
        while let Some(Ok((endpoint, asked))) = asks.join_next().await {
            let height = match asked {
                Ok(Ok(height)) => {
                    self.heights
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((channel.id.clone(), endpoint.clone()), (now, height));
                    height
                }
                Ok(Err(e)) => {
                    tracing::debug!("discovery: the height of {endpoint}: {e}");
                    own
                }
                Err(_) => own,
            };
            heights.insert(endpoint, height);
        }
        heights
    }

    fn envelope(&self, peer: &KnownPeer, message: &GossipMessage) -> gossip::Envelope {
        let payload = message.encode_to_vec();
        let signature = if peer.own {
            weft_crypto::Signer::sign(self.signer.as_ref(), &payload).unwrap_or_default()
        } else {
            Vec::new()
        };
        gossip::Envelope {
            payload,
            signature,
            secret_envelope: None,
        }
    }

    fn describe(
        &self,
        peer: &KnownPeer,
        channel: Option<(&PeerChannel, &Heights)>,
    ) -> discovery::Peer {
        let pki_id = weft_crypto::sha256(&peer.identity).to_vec();
        let timestamp = Some(PeerTime {
            inc_num: self.started,
            seq_num: u64::try_from(now_seconds()).unwrap_or_default(),
        });
        let alive = GossipMessage {
            tag: TAG_EMPTY,
            alive_msg: Some(AliveMessage {
                membership: Some(Member {
                    endpoint: peer.endpoint.clone(),
                    metadata: Vec::new(),
                    pki_id: pki_id.clone(),
                }),
                timestamp: timestamp.clone(),
                identity: Vec::new(),
            }),
            ..GossipMessage::default()
        };
        let state_info = channel.map(|(channel, heights)| {
            let definitions = channel.definitions();
            let state = GossipMessage {
                channel: channel.id.as_bytes().to_vec(),
                tag: TAG_CHAN_ONLY,
                state_info: Some(StateInfo {
                    timestamp,
                    pki_id,
                    channel_mac: Vec::new(),
                    properties: Some(Properties {
                        ledger_height: heights
                            .get(&peer.endpoint)
                            .copied()
                            .unwrap_or_else(|| *channel.height.borrow()),
                        left_channel: false,
                        chaincodes: definitions
                            .chaincodes
                            .values()
                            .map(|d| GossipChaincode {
                                name: d.name.clone(),
                                version: d.version.clone(),
                                metadata: Vec::new(),
                            })
                            .collect(),
                    }),
                }),
                ..GossipMessage::default()
            };
            self.envelope(peer, &state)
        });
        discovery::Peer {
            state_info,
            membership_info: Some(self.envelope(peer, &alive)),
            identity: peer.identity.clone(),
        }
    }

    /// The channel's peers: those of its application organisations.
    fn channel_peers(&self, channel: &PeerChannel) -> Vec<&KnownPeer> {
        let orgs = &channel.config.application_orgs;
        self.peers
            .iter()
            .filter(|peer| orgs.contains(&peer.msp_id))
            .collect()
    }

    fn by_org(
        &self,
        peers: &[&KnownPeer],
        channel: Option<(&PeerChannel, &Heights)>,
    ) -> BTreeMap<String, Peers> {
        let mut out: BTreeMap<String, Peers> = BTreeMap::new();
        for peer in peers {
            out.entry(peer.msp_id.clone())
                .or_default()
                .peers
                .push(self.describe(peer, channel));
        }
        out
    }

    fn config_result(channel: &PeerChannel) -> ConfigResult {
        let orderers = channel
            .config
            .orderer_endpoints
            .iter()
            .map(|(msp_id, addresses)| {
                let endpoint = addresses
                    .iter()
                    .filter_map(|address| {
                        let (host, port) = address.rsplit_once(':')?;
                        Some(Endpoint {
                            host: host.to_owned(),
                            port: port.parse().ok()?,
                        })
                    })
                    .collect();
                (msp_id.clone(), Endpoints { endpoint })
            })
            .collect();
        ConfigResult {
            msps: channel.config.msp_configs(),
            orderers,
        }
    }

    /// Whether `peer` satisfies `principal` (a peer is a member and a peer
    /// of its organisation, and carries the `peer` OU).
    fn satisfies(peer: &KnownPeer, principal: &Principal) -> bool {
        match principal {
            Principal::Role { msp_id, role } => {
                msp_id == &peer.msp_id && matches!(role, MspRole::Member | MspRole::Peer)
            }
            Principal::OrganizationUnit {
                msp_id,
                organizational_unit,
                ..
            } => msp_id == &peer.msp_id && organizational_unit == "peer",
            Principal::Identity { msp_id, .. } => {
                msp_id == &peer.msp_id && principal_matches_identity(principal, &peer.identity)
            }
        }
    }

    fn endorsement(
        &self,
        channel: &PeerChannel,
        heights: &Heights,
        interest: &ChaincodeInterest,
    ) -> Result<EndorsementDescriptor, String> {
        let first = interest
            .chaincodes
            .first()
            .ok_or("the chaincode interest names no chaincode")?;
        let definitions = channel.definitions();
        let mut peers = self.channel_peers(channel);
        // Principals, and the combined principal sets (one per way to satisfy
        // every chaincode called), each a count per principal.
        let mut principals: Vec<Principal> = Vec::new();
        let mut combined: Vec<BTreeMap<usize, u32>> = vec![BTreeMap::new()];
        for call in &interest.chaincodes {
            let definition = definitions.chaincodes.get(&call.name).ok_or_else(|| {
                format!(
                    "chaincode {} is not defined on channel {}",
                    call.name, channel.id
                )
            })?;
            for name in &call.collection_names {
                let collection = definition
                    .collections
                    .get(name)
                    .ok_or_else(|| format!("chaincode {} has no collection {name}", call.name))?;
                peers.retain(|p| collection.members.contains(&p.msp_id));
            }
            let policy = &definition.policy;
            let sets = policy.principal_sets(PRINCIPAL_SETS_MAX).ok_or_else(|| {
                format!(
                    "the endorsement policy of {} has too many combinations",
                    call.name
                )
            })?;
            let index: Vec<usize> = policy
                .principals()
                .iter()
                .map(
                    |principal| match principals.iter().position(|p| p == principal) {
                        Some(i) => i,
                        None => {
                            principals.push(principal.clone());
                            principals.len() - 1
                        }
                    },
                )
                .collect();
            let mut next = Vec::new();
            for base in &combined {
                for set in &sets {
                    let mut counts: BTreeMap<usize, u32> = BTreeMap::new();
                    for &p in set {
                        *counts.entry(index[p]).or_default() += 1;
                    }
                    let mut merged = base.clone();
                    for (p, n) in counts {
                        let entry = merged.entry(p).or_default();
                        *entry = (*entry).max(n);
                    }
                    if !next.contains(&merged) {
                        next.push(merged);
                    }
                    if next.len() > PRINCIPAL_SETS_MAX {
                        return Err("the endorsement policies have too many combinations".into());
                    }
                }
            }
            combined = next;
        }
        let groups: Vec<(String, Vec<&KnownPeer>)> = principals
            .iter()
            .enumerate()
            .map(|(i, principal)| {
                (
                    format!("G{i}"),
                    peers
                        .iter()
                        .copied()
                        .filter(|peer| Self::satisfies(peer, principal))
                        .collect(),
                )
            })
            .collect();
        let layouts: Vec<Layout> = combined
            .iter()
            .filter(|set| {
                set.iter()
                    .all(|(&group, &count)| groups[group].1.len() >= count as usize)
            })
            .map(|set| Layout {
                quantities_by_group: set
                    .iter()
                    .map(|(&group, &count)| (groups[group].0.clone(), count))
                    .collect(),
            })
            .collect();
        if layouts.is_empty() {
            return Err(format!(
                "no combination of the channel's peers satisfies the endorsement policy of {}",
                first.name
            ));
        }
        let used: BTreeSet<&String> = layouts
            .iter()
            .flat_map(|l| l.quantities_by_group.keys())
            .collect();
        Ok(EndorsementDescriptor {
            chaincode: first.name.clone(),
            endorsers_by_groups: groups
                .iter()
                .filter(|(name, _)| used.contains(name))
                .map(|(name, members)| {
                    (
                        name.clone(),
                        Peers {
                            peers: members
                                .iter()
                                .map(|peer| self.describe(peer, Some((channel, heights))))
                                .collect(),
                        },
                    )
                })
                .collect(),
            layouts,
        })
    }

    async fn answer(
        &self,
        query: &discovery::Query,
        auth: &AuthInfo,
        signed: &SignedRequest,
    ) -> Result<QueryResultKind, String> {
        let kind = query.query.as_ref().ok_or("a query of no kind")?;
        if let QueryKind::LocalPeers(_) = kind {
            self.admin
                .check_signed_by_admin(
                    &auth.client_identity,
                    &signed.payload,
                    &signed.signature,
                    now_seconds(),
                )
                .map_err(|e| format!("access denied: {e}"))?;
            let own: Vec<&KnownPeer> = self
                .peers
                .iter()
                .filter(|p| p.msp_id == self.signer.msp_id())
                .collect();
            return Ok(QueryResultKind::Members(PeerMembershipResult {
                peers_by_org: self.by_org(&own, None),
            }));
        }
        let channel = self.channels.get(&query.channel).ok_or_else(|| {
            format!(
                "access denied: channel {} is not joined by this peer",
                query.channel
            )
        })?;
        channel
            .config
            .authorize(
                "/Channel/Application/Readers",
                &auth.client_identity,
                &signed.payload,
                &signed.signature,
                now_seconds(),
            )
            .map_err(|e| format!("access denied: {e}"))?;
        let heights = match kind {
            QueryKind::ConfigQuery(_) => Heights::new(),
            _ => self.heights(&channel).await,
        };
        Ok(match kind {
            QueryKind::ConfigQuery(_) => {
                QueryResultKind::ConfigResult(Self::config_result(&channel))
            }
            QueryKind::PeerQuery(query) => {
                let mut peers = self.channel_peers(&channel);
                if let Some(filter) = query.filter.as_ref().filter(|f| !f.chaincodes.is_empty()) {
                    let descriptor = self.endorsement(&channel, &heights, filter)?;
                    let eligible: BTreeSet<Vec<u8>> = descriptor
                        .endorsers_by_groups
                        .values()
                        .flat_map(|g| g.peers.iter().map(|p| p.identity.clone()))
                        .collect();
                    peers.retain(|p| eligible.contains(&p.identity));
                }
                QueryResultKind::Members(PeerMembershipResult {
                    peers_by_org: self.by_org(&peers, Some((&channel, &heights))),
                })
            }
            QueryKind::CcQuery(query) => QueryResultKind::CcQueryRes(ChaincodeQueryResult {
                content: query
                    .interests
                    .iter()
                    .map(|interest| self.endorsement(&channel, &heights, interest))
                    .collect::<Result<_, _>>()?,
            }),
            QueryKind::LocalPeers(_) => return Err("unreachable".into()),
        })
    }
}

/// Whether an `Identity` principal names `serialized_identity`'s certificate.
fn principal_matches_identity(principal: &Principal, serialized_identity: &[u8]) -> bool {
    let Ok(identity) = SerializedIdentity::decode(serialized_identity) else {
        return false;
    };
    match principal {
        Principal::Identity {
            certificate_der, ..
        } => weft_crypto::pem::certificates(&identity.id_bytes)
            .ok()
            .and_then(|mut ders| (!ders.is_empty()).then(|| ders.remove(0)))
            .is_some_and(|der| &der == certificate_der),
        _ => false,
    }
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    async fn discover(
        &self,
        request: Request<SignedRequest>,
    ) -> Result<Response<discovery::Response>, Status> {
        let presented = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| weft_crypto::sha256(c).to_vec()));
        let signed = request.into_inner();
        let inner = discovery::Request::decode(signed.payload.as_slice())
            .map_err(|e| Status::invalid_argument(format!("discovery request: {e}")))?;
        let auth = inner.authentication.clone().ok_or_else(|| {
            Status::invalid_argument("a discovery request needs its authentication")
        })?;
        if !auth.client_tls_cert_hash.is_empty()
            && presented.as_deref() != Some(auth.client_tls_cert_hash.as_slice())
        {
            return Err(Status::permission_denied(
                "the request names another TLS client certificate than the one it arrived with",
            ));
        }
        let mut results = Vec::with_capacity(inner.queries.len());
        for query in &inner.queries {
            results.push(QueryResult {
                result: Some(match self.answer(query, &auth, &signed).await {
                    Ok(result) => result,
                    Err(content) => {
                        weft_node::refusal!("discovery query refused: {}", content.escape_debug());
                        QueryResultKind::Error(discovery::Error { content })
                    }
                }),
            });
        }
        Ok(Response::new(discovery::Response { results }))
    }
}

/// What asking another peer for its height needs.
struct HeightAsker {
    tls: weft_node::Tls,
    signer: Arc<SigningIdentity>,
}

impl HeightAsker {
    /// The height of `channel` at `endpoint`, asked with a filtered Deliver
    /// of the newest block, signed by this peer.
    async fn ask(&self, channel: &str, endpoint: &str) -> Result<u64, String> {
        use weft_protos::orderer::seek_info::SeekBehavior;
        use weft_protos::orderer::{SeekNewest, SeekPosition, seek_position};
        use weft_protos::peer::deliver_response::Type;
        let newest = || SeekPosition {
            r#type: Some(seek_position::Type::Newest(SeekNewest {})),
        };
        let seek = weft_node::seek::seek_envelope(
            &self.signer,
            channel,
            newest(),
            newest(),
            SeekBehavior::FailIfNotReady,
        )
        .map_err(|e| e.to_string())?;
        let connection = self.tls.channel(endpoint)?;
        let mut stream = weft_protos::peer::deliver_client::DeliverClient::new(connection)
            .deliver_filtered(tokio_stream::iter([seek]))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        while let Some(response) = stream.message().await.map_err(|e| e.to_string())? {
            if let Some(Type::FilteredBlock(block)) = response.r#type {
                return Ok(block.number + 1);
            }
        }
        Err("no block".into())
    }
}
