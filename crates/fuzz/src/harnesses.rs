//! One harness per decoder reachable from the network, each seeded with
//! valid messages of the default test network.

use prost::Message;
use weft_channel::BatchSettings;
use weft_material::SigningIdentity;
use weft_node::proto::{AdminRequest, SignedAdminRequest};
use weft_orderer::raft::TypeConfig;
use weft_protos::common::{Block, Envelope, Payload};
use weft_protos::kvrwset::{KvRead, KvWrite, KvrwSet};
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekInfo, SeekNewest, SeekPosition, seek_position};
use weft_protos::peer::chaincode_message::Type as CcType;
use weft_protos::peer::{
    ChaincodeId, ChaincodeInput, ChaincodeMessage, GetHistoryForKey, GetQueryResult, GetState,
    GetStateByRange, PutState, SignedProposal,
};
use weft_protos::rwset::TxPvtReadWriteSet;
use weft_protoutil::NamespaceRwSet;
use weft_testkit::{Submitter, TestNetwork};

use crate::Harness;

/// Every harness, with seeds from one generated network.
pub fn all() -> Vec<Harness> {
    let network = TestNetwork::generate();
    let mut submitter = network.submitter("mychannel");
    let envelopes: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            submitter
                .transaction("basic", vec![rwset(&format!("k{i}"), true)])
                .1
        })
        .collect();
    let genesis = weft_channel::genesis_block(&network.channel_profile(
        "mychannel",
        &[("127.0.0.1", 7050, 0)],
        BatchSettings::default(),
    ))
    .expect("genesis block")
    .encode_to_vec();
    let user = network.user("org1.example.com", "User1", "Org1MSP");
    let seek = oldest_to_newest(&user, SeekBehavior::BlockUntilReady).expect("seek");
    let seek_info = Payload::decode(
        Envelope::decode(seek.as_slice())
            .expect("envelope")
            .payload
            .as_slice(),
    )
    .expect("payload")
    .data;
    let proposals: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            submitter
                .builder("basic", vec![rwset(&format!("p{i}"), false)])
                .signed_proposal(&user)
                .expect("proposal")
                .encode_to_vec()
        })
        .collect();

    vec![
        Harness {
            name: "envelope (a block's transactions, validation)",
            seeds: envelopes.clone(),
            run: Box::new(|bytes| {
                let _ = weft_protoutil::parse_envelope(bytes);
            }),
        },
        Harness {
            name: "broadcast request (orderer)",
            seeds: envelopes.iter().cloned().chain([seek.clone()]).collect(),
            run: Box::new(|bytes| {
                let _ = weft_orderer::service::decode_request(bytes);
            }),
        },
        Harness {
            name: "signed proposal (endorser, gateway)",
            seeds: proposals,
            run: Box::new(|bytes| {
                if let Ok(signed) = SignedProposal::decode(bytes) {
                    let _ = weft_peer::endorser::unpack(&signed);
                }
            }),
        },
        Harness {
            name: "chaincode install package (_lifecycle InstallChaincode)",
            seeds: install_packages(),
            run: Box::new(|bytes| {
                if let Ok(package) = weft_peer::package::Package::parse(bytes) {
                    let _ = package.runtime();
                    let _ = package.indexes();
                }
            }),
        },
        Harness {
            name: "config block (channel join on peers and orderers)",
            seeds: vec![genesis.clone()],
            run: Box::new(|bytes| {
                let Ok(block) = Block::decode(bytes) else { return };
                let Ok(config) = weft_channel::ChannelConfig::from_block(&block) else {
                    return;
                };
                // What a peer derives from a joined channel's config.
                let orgs = &config.application_orgs;
                let _ = weft_peer::lifecycle::majority(orgs);
                let _ = weft_peer::lifecycle::endorsement_policy(&[], orgs);
                let _ = weft_peer::private::collections(None, orgs);
            }),
        },
        Harness {
            name: "seek info (deliver on peers and orderers)",
            seeds: vec![seek_info],
            run: Box::new(|bytes| {
                if let Ok(seek) = SeekInfo::decode(bytes) {
                    let _ = weft_node::deliver::seek_range(&seek, 3, 10);
                }
            }),
        },
        Harness {
            name: "chaincode message (chaincode support)",
            seeds: chaincode_messages(),
            run: Box::new(|bytes| {
                let Ok(message) = ChaincodeMessage::decode(bytes) else {
                    return;
                };
                let payload = message.payload.as_slice();
                match CcType::try_from(message.r#type) {
                    Ok(CcType::Register) => {
                        if let Ok(id) = ChaincodeId::decode(payload) {
                            let _ = weft_protoutil::check_package_id(&id.name);
                        }
                    }
                    Ok(CcType::GetState) => drop(GetState::decode(payload)),
                    Ok(CcType::PutState) => drop(PutState::decode(payload)),
                    Ok(CcType::GetStateByRange) => drop(GetStateByRange::decode(payload)),
                    Ok(CcType::GetQueryResult) => {
                        // A rich query: the ledger parses the Mango selector.
                        if let Ok(query) = GetQueryResult::decode(payload) {
                            let _ = weft_ledger::query::Query::parse(&query.query);
                        }
                    }
                    Ok(CcType::GetHistoryForKey) => drop(GetHistoryForKey::decode(payload)),
                    _ => drop(weft_protos::peer::Response::decode(payload)),
                }
            }),
        },
        Harness {
            name: "rich query (chaincode GetQueryResult)",
            seeds: vec![
                br#"{"selector":{"docType":"asset","Owner":{"$in":["Tom","Ann"]},"Size":{"$gt":3}},"sort":[{"Size":"desc"}],"fields":["ID"],"limit":10}"#.to_vec(),
                br#"{"selector":{"$or":[{"a.b":{"$regex":"^x"}},{"c":{"$exists":true}}]},"use_index":["_design/d","i"]}"#.to_vec(),
            ],
            run: Box::new(|bytes| {
                if let Ok(text) = std::str::from_utf8(bytes) {
                    let _ = weft_ledger::query::Query::parse(text);
                }
            }),
        },
        Harness {
            name: "private data push/pull (peer to peer)",
            seeds: private_data_messages(&network.peer("org1.example.com", "Org1MSP")),
            run: Box::new(|bytes| {
                let Ok(signed) = weft_peer::proto::SignedMessage::decode(bytes) else {
                    return;
                };
                if let Ok(push) = weft_peer::proto::PushPayload::decode(signed.payload.as_slice())
                {
                    let _ = TxPvtReadWriteSet::decode(push.private_data.as_slice());
                }
                let _ = weft_peer::proto::PullPayload::decode(signed.payload.as_slice());
            }),
        },
        Harness {
            name: "raft messages (orderer cluster)",
            seeds: raft_messages(&genesis),
            run: Box::new(|bytes| {
                let _ = weft_orderer::codec::decode::<
                    openraft::raft::AppendEntriesRequest<TypeConfig>,
                >(bytes);
                let _ = weft_orderer::codec::decode::<openraft::raft::VoteRequest<u64>>(bytes);
                let _ = weft_orderer::codec::decode::<
                    openraft::raft::InstallSnapshotRequest<TypeConfig>,
                >(bytes);
            }),
        },
        Harness {
            name: "admin request (peers and orderers)",
            seeds: vec![admin_request(&network.user(
                "org1.example.com",
                "Admin",
                "Org1MSP",
            ))],
            run: Box::new(|bytes| {
                if let Ok(signed) = SignedAdminRequest::decode(bytes)
                    && let Ok(request) = AdminRequest::decode(signed.request.as_slice())
                    && let Some(weft_node::proto::admin_request::Body::Join(join)) = request.body
                {
                    let _ = Block::decode(join.config_block.as_slice());
                }
            }),
        },
        Harness {
            name: "chaincode session (peer handler against a ledger)",
            seeds: crate::chaincode::seeds(),
            run: Box::new(crate::chaincode::session()),
        },
    ]
}

/// A signed seek of `mychannel` from block 0 to the newest, as bytes.
fn oldest_to_newest(user: &SigningIdentity, behavior: SeekBehavior) -> Result<Vec<u8>, String> {
    let newest = SeekPosition {
        r#type: Some(seek_position::Type::Newest(SeekNewest {})),
    };
    weft_node::seek::seek_envelope(
        user,
        "mychannel",
        weft_node::seek::specified(0),
        newest,
        behavior,
    )
    .map(|envelope| envelope.encode_to_vec())
    .map_err(|e| e.to_string())
}

/// `basic`'s writes (and a read) of `key`.
/// A `ccaas` package with an index and a `node` package.
fn install_packages() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    let indexes = root.join("ccaas/META-INF/statedb/couchdb/indexes");
    std::fs::create_dir_all(&indexes).expect("dir");
    std::fs::write(
        root.join("ccaas/connection.json"),
        r#"{"address":"127.0.0.1:9999","tls_required":false}"#,
    )
    .expect("connection.json");
    std::fs::write(
        indexes.join("owner.json"),
        r#"{"index":{"fields":["owner"]},"name":"owner"}"#,
    )
    .expect("index");
    std::fs::create_dir_all(root.join("node")).expect("dir");
    std::fs::write(
        root.join("node/package.json"),
        r#"{"scripts":{"start":"fabric-chaincode-node start"}}"#,
    )
    .expect("package.json");
    vec![
        weft_peer::package::build("ccaas", "cc_1", &root.join("ccaas")).expect("ccaas package"),
        weft_peer::package::build("node", "node_1", &root.join("node")).expect("node package"),
    ]
}

fn rwset(key: &str, read: bool) -> NamespaceRwSet {
    NamespaceRwSet {
        namespace: "basic".into(),
        rwset: KvrwSet {
            reads: read
                .then(|| KvRead {
                    key: key.to_owned(),
                    version: None,
                })
                .into_iter()
                .collect(),
            writes: vec![KvWrite {
                key: key.to_owned(),
                value: format!("{{\"ID\":\"{key}\"}}").into_bytes(),
                is_delete: false,
            }],
            ..Default::default()
        },
        collections: Vec::new(),
    }
}

fn chaincode_messages() -> Vec<Vec<u8>> {
    let message = |kind: CcType, payload: Vec<u8>| {
        ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: "ab".repeat(32),
            channel_id: "mychannel".into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    vec![
        message(
            CcType::Register,
            ChaincodeId {
                name: "basic".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        message(
            CcType::GetState,
            GetState {
                key: "asset1".into(),
                collection: String::new(),
            }
            .encode_to_vec(),
        ),
        message(
            CcType::PutState,
            PutState {
                key: "asset1".into(),
                value: b"{\"ID\":\"asset1\"}".to_vec(),
                collection: String::new(),
            }
            .encode_to_vec(),
        ),
        message(
            CcType::GetStateByRange,
            GetStateByRange {
                start_key: "a".into(),
                end_key: "z".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        message(
            CcType::Transaction,
            ChaincodeInput {
                args: vec![b"ReadAsset".to_vec(), b"asset1".to_vec()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ]
}

fn private_data_messages(peer: &SigningIdentity) -> Vec<Vec<u8>> {
    let payload = weft_peer::proto::PushPayload {
        channel: "mychannel".into(),
        tx_id: "ab".repeat(32),
        private_data: TxPvtReadWriteSet::default().encode_to_vec(),
        timestamp_unix_ms: 1,
    }
    .encode_to_vec();
    vec![
        weft_peer::proto::SignedMessage {
            signer: peer.serialized(),
            signature: vec![0x30; 70],
            payload,
        }
        .encode_to_vec(),
    ]
}

fn raft_messages(block: &[u8]) -> Vec<Vec<u8>> {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    let entry = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 42),
        payload: EntryPayload::Normal(weft_orderer::raft::Proposal {
            block: block.to_vec(),
        }),
    };
    let append = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 41)),
        entries: vec![entry],
        leader_commit: Some(LogId::new(CommittedLeaderId::new(3, 1), 40)),
    };
    let vote = openraft::raft::VoteRequest::<u64> {
        vote: Vote::new(4, 2),
        last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 42)),
    };
    vec![
        weft_orderer::codec::encode(&append).expect("append"),
        weft_orderer::codec::encode(&vote).expect("vote"),
    ]
}

fn admin_request(creator: &SigningIdentity) -> Vec<u8> {
    let request = AdminRequest {
        creator: creator.serialized(),
        timestamp_unix_ms: 1,
        nonce: vec![7; 24],
        tls_cert_hash: vec![1; 32],
        body: Some(weft_node::proto::admin_request::Body::List(
            weft_node::proto::ListRequest {},
        )),
    }
    .encode_to_vec();
    SignedAdminRequest {
        request,
        signature: vec![0x30; 70],
    }
    .encode_to_vec()
}

/// Seeds for hostile requests to a live network, per service, made with
/// the network's own User1 of Org1 (and endorsed by its peers, as a real
/// client's transactions are): valid requests and the material mutations
/// start from.
#[derive(Debug, Default)]
pub struct NetworkSeeds {
    pub admin: Vec<Vec<u8>>,
    pub envelopes: Vec<Vec<u8>>,
    pub seeks: Vec<Vec<u8>>,
    pub raft: Vec<Vec<u8>>,
    pub proposals: Vec<Vec<u8>>,
    pub chaincode: Vec<Vec<u8>>,
    pub private: Vec<Vec<u8>>,
}

pub fn network_seeds(
    network: &weft_network::NetworkDir,
    spec: &weft_spec::NetworkSpec,
) -> Result<NetworkSeeds, String> {
    use weft_material::layout;
    let organizations = network.organizations();
    let load = |dir: std::path::PathBuf, msp_id: &str| {
        SigningIdentity::load(&dir, msp_id).map_err(|e| format!("{}: {e}", dir.display()))
    };
    let org_dir = |domain: &str| layout::peer_org_dir(&organizations, domain);
    let user = load(
        layout::user_dir(&org_dir("org1.example.com"), "User1", "org1.example.com").join("msp"),
        "Org1MSP",
    )?;
    let endorsers = spec
        .organizations
        .iter()
        .map(|org| {
            load(
                layout::peer_dir(&organizations, &org.domain, 0).join("msp"),
                &org.msp_id,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut submitter = Submitter::new(
        "mychannel",
        load(
            layout::user_dir(&org_dir("org1.example.com"), "User1", "org1.example.com").join("msp"),
            "Org1MSP",
        )?,
        endorsers,
    );
    submitter.timestamp_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let envelopes = (0..4)
        .map(|i| {
            submitter
                .transaction("basic", vec![rwset(&format!("hostile-{i}"), false)])
                .1
        })
        .collect();
    let proposals = (0..2)
        .map(|i| {
            submitter
                .builder("basic", vec![rwset(&format!("hostile-p{i}"), false)])
                .signed_proposal(&user)
                .map(|p| p.encode_to_vec())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let seek = oldest_to_newest(&user, SeekBehavior::FailIfNotReady)?;
    let genesis = std::fs::read(network.block("mychannel"))
        .map_err(|e| format!("{}: {e}", network.block("mychannel").display()))?;
    Ok(NetworkSeeds {
        admin: vec![admin_request(&user)],
        envelopes,
        seeks: vec![seek],
        raft: raft_messages(&genesis),
        proposals,
        chaincode: chaincode_messages(),
        private: private_data_messages(&user),
    })
}
